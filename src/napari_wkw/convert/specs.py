"""Layer specs for each kind of input, with the options the CLI and the wizards share.

The command line and the napari wizards build their conversions here, so an image
stack becomes the same layers whichever shell started it.
"""

from __future__ import annotations

import os

from ..core.errors import WKWError
from ..core.geometry import Mag
from .engine import LayerSpec


def layer_category(category: str | None, layer_name: str) -> str:
    """The category asked for, else guessed from the layer name (seg/label -> segmentation)."""
    from ..ops.metadata import guess_category

    return category or guess_category(layer_name)


def image_stack_specs(
    source: str | os.PathLike,
    layer_name: str,
    *,
    category: str | None = None,
    dtype=None,
    start_z: int = 0,
    skip_first: int = 0,
    pad: bool = False,
    channel_index: int | None = None,
    sample_index: int | None = None,
    mag: Mag | None = None,
    prefer: str | None = None,
) -> list[LayerSpec]:
    """Layer specs for an image stack: one layer, or one per channel (named NAME_0, NAME_1 ...)."""
    from .image_stack import open_image_stack

    if channel_index is not None and sample_index is not None:
        raise WKWError("give a channel index or a sample index, not both")
    sources = open_image_stack(
        source,
        pad=pad,
        skip_first=skip_first,
        channel_index=channel_index,
        sample_index=sample_index,
        prefer=prefer,
    )
    names = [layer_name] if len(sources) == 1 else [f"{layer_name}_{c}" for c in range(len(sources))]
    return [
        LayerSpec(stack, name, layer_category(category, layer_name), dtype, (0, 0, start_z), mag or Mag(1, 1, 1))
        for stack, name in zip(sources, names)
    ]


def input_specs(
    kind: str, source: str | os.PathLike, layer_name: str | None, category: str | None, dtype
) -> list[LayerSpec]:
    """Layer specs for a detected input (see :func:`detect.detect_input`), every option at its default."""
    name = layer_name or ("segmentation" if category == "segmentation" else "color")
    if kind == "image-stack":
        return image_stack_specs(source, name, category=category, dtype=dtype)
    if kind == "tiled-stack":
        from .tiles import build_tile_specs

        return build_tile_specs(source, layer_name=name, category=layer_category(category, name), dtype=dtype)
    if kind == "knossos":
        from .knossos import build_knossos_specs

        return build_knossos_specs(source, layer_name=name, category=layer_category(category, name), dtype=dtype)
    from .nifti import build_nifti_specs

    return build_nifti_specs(source, layer_name=layer_name, category=category, dtype=dtype)


__all__ = ["image_stack_specs", "input_specs", "layer_category"]
