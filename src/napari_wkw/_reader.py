"""napari reader: WKW dataset / layer / mag / properties file -> LayerData tuples
(WEBKNOSSOS annotations: :mod:`._annotation_reader`).

Only translation lives here; opening and lazy reading are in :mod:`napari_wkw.core`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .core import Dataset, DatasetFormatError, Layer, Mag, Selection, WKWWarning, locate, looks_like_wkw
from .core.annotation import looks_like_annotation

#: contrast limits are computed from the coarsest mag only, and only when it is this small
CONTRAST_VOXEL_LIMIT = 16 * 1024**2


def napari_get_reader(path: str | list[str]):
    """:func:`read_wkw` for WKW and WEBKNOSSOS zarr paths, :func:`read_annotation` for
    annotation ZIPs and NML files, None for anything else (never raises, reads no voxels)."""
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, str | os.PathLike):
        return None
    if looks_like_wkw(path):
        return read_wkw
    if looks_like_annotation(path):
        from ._annotation_reader import read_annotation

        return read_annotation
    return None


def read_wkw(path: str | list[str]) -> list[tuple]:
    """One LayerData tuple per WKW layer: color as image, segmentation as labels."""
    if isinstance(path, list | tuple):
        path = path[0]
    selection = _locate_best_effort(Path(path))
    layers = [item for layer in selection.layers if layer.mags for item in layer_data(layer, selection.mag)]
    if not layers:  # napari takes an empty list for a failed read: say why instead
        what = "the dataset has no layers" if not selection.layers else "no layer has a readable mag"
        raise DatasetFormatError(f"{selection.dataset.path}: {what}")
    return layers


def _locate_best_effort(path: Path) -> Selection:
    try:
        return locate(path)
    except DatasetFormatError as error:
        root = path.parent if path.is_file() else path
        try:
            dataset = Dataset.discover(root)
        except Exception:
            raise error from None
        warnings.warn(f"{error}; showing the layers found on disk instead (voxel size 1)", WKWWarning, stacklevel=2)
        return Selection(dataset, list(dataset.layers.values()))


def layer_data(layer: Layer, mag: Mag | None = None) -> list[tuple]:
    """(data, kwargs, layer_type) tuples for one WKW layer (one per channel for
    multi-channel color layers other than RGB), with all levels or a single mag."""
    dataset = layer.dataset
    voxel = np.array(dataset.voxel_size)
    if mag is None:
        arrays = layer.view_pyramid(on_error="warn")
        finest = next(iter(layer.mags))
        origin = layer.aligned_box().topleft
    else:
        view = layer.mags[mag]
        box = layer.bounding_box.in_mag(mag)
        arrays = [view.view(box, on_error="warn")]
        finest = mag
        origin = box.from_mag(mag).topleft
    scale = (voxel * np.array(finest.xyz))[::-1]
    translate = (voxel * np.array(origin))[::-1]
    name = f"{layer.name} ({dataset.name})" if mag is None else f"{layer.name} mag {mag.folder_name()} ({dataset.name})"
    kwargs: dict = {
        "name": name,
        "scale": tuple(float(v) for v in scale),
        "translate": tuple(float(v) for v in translate),
        "axis_labels": ("z", "y", "x"),
        "units": (dataset.properties.unit,) * 3,
        "multiscale": len(arrays) > 1,
        "metadata": {
            "wkw_dataset": str(dataset.path),
            "wkw_layer": layer.name,
            "wkw_mags": [m.folder_name() for m in (layer.mags if mag is None else [mag])],
            "wkw_element_class": layer.properties.element_class,
            "wkw_voxel_size": tuple(dataset.voxel_size),
        },
    }
    if layer.category == "segmentation" and layer.num_channels == 1:
        return [(_levels(arrays), kwargs, "labels")]
    if layer.num_channels == 1 or layer.is_rgb:
        kwargs["rgb"] = layer.is_rgb
        limits = _contrast_limits(arrays[-1], layer)
        if limits is not None:
            kwargs["contrast_limits"] = limits
        return [(_levels(arrays), kwargs, "image")]
    # other multi-channel layers: one image per channel, each a lazy channel view
    out = []
    for index in range(layer.num_channels):
        channel = [array.channel(index) for array in arrays]
        channel_kwargs = {**kwargs, "name": f"{name} c{index}", "rgb": False, "blending": "additive"}
        limits = _contrast_limits(channel[-1], layer)
        if limits is not None:
            channel_kwargs["contrast_limits"] = limits
        out.append((_levels(channel), channel_kwargs, "image"))
    return out


def _levels(arrays: list) -> list | object:
    return arrays if len(arrays) > 1 else arrays[0]


def _contrast_limits(coarsest, layer: Layer) -> list[float] | None:
    """Min/max of the coarsest level when it is small; None lets napari decide (uint8: 0-255)."""
    if layer.dtype == np.uint8 or np.prod(coarsest.shape) > CONTRAST_VOXEL_LIMIT:
        return None
    return _span(np.asarray(coarsest))


def _span(values: np.ndarray) -> list[float]:
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size == 0:
        return [0.0, 1.0]
    low, high = float(finite.min()), float(finite.max())
    return [low, high if high > low else low + 1.0]
