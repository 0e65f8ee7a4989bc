"""``downsample``: build a layer's missing mags, each from the previous one.

Defaults follow the reference tooling so both write the same pyramid: median for
color and mode for segmentation, anisotropic mags for anisotropic voxels (11.24 x
11.24 x 25 nm gives 2-2-1, 4-4-2, 8-8-4 ...), up to the mag where the larger of x
and y is about 100 voxels (at least mag 4), new mags compressed (LZ4).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..core.dataset import Dataset
from ..core.downsample import SAMPLING_MODES, build_pyramid, default_coarsest_mag, default_interpolation, plan_mags
from ..core.errors import WKWError
from ..core.geometry import Mag
from ..core.progress import CancelToken, ProgressCallback
from ..core.staging import remove_abandoned
from ..core.wkw_file import BLOCK_LZ4, BLOCK_RAW
from ..jobs.runner import JobSettings, Runner
from .common import open_dataset, select_layers


@dataclass
class DownsamplePlan:
    """What ``downsample`` will do for one layer (the CLI prints it before starting)."""

    layer: str
    source: Mag
    coarsest: Mag
    interpolation: str
    mags: list[Mag]  # to build (missing ones only)


def plan_downsampling(
    path: str | os.PathLike,
    *,
    layer_name: str | None = None,
    from_mag: Mag | None = None,
    max_mag: Mag | None = None,
    interpolation: str | None = None,
    sampling_mode: str = "anisotropic",
) -> list[DownsamplePlan]:
    """The mags each layer would get, without writing anything."""
    return _plans(open_dataset(path), layer_name, from_mag, max_mag, interpolation, sampling_mode)


def _plans(
    dataset: Dataset,
    layer_name: str | None,
    from_mag: Mag | None,
    max_mag: Mag | None,
    interpolation: str | None,
    sampling_mode: str,
) -> list[DownsamplePlan]:
    if sampling_mode not in SAMPLING_MODES:
        raise WKWError(f"sampling mode must be one of {', '.join(SAMPLING_MODES)}, not {sampling_mode!r}")
    plans = []
    for layer in select_layers(dataset, layer_name):
        source = layer.mag_view(from_mag).mag if from_mag is not None else layer.finest_mag.mag
        coarsest = max_mag or default_coarsest_mag(layer.bounding_box.size)
        wanted = plan_mags(source, coarsest, dataset.voxel_size, sampling_mode)
        plans.append(
            DownsamplePlan(
                layer.name,
                source,
                coarsest,
                interpolation or default_interpolation(layer.category),
                [mag for mag in wanted if mag not in layer.mags],
            )
        )
    return plans


def downsample(
    path: str | os.PathLike,
    *,
    layer_name: str | None = None,
    from_mag: Mag | None = None,
    max_mag: Mag | None = None,
    interpolation: str | None = None,
    sampling_mode: str = "anisotropic",
    compress: bool = True,
    jobs: JobSettings | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, list[Mag]]:
    """Build the missing mags of every layer (or ``layer_name``); returns the mags built.

    Each mag is built in a hidden folder, renamed into place and added to the
    properties when complete; a cancelled or failed run leaves the mags finished so
    far, listed, and nothing else (the next run builds the rest).
    """
    dataset = open_dataset(path)
    plans = _plans(dataset, layer_name, from_mag, max_mag, interpolation, sampling_mode)
    built: dict[str, list[Mag]] = {}
    with Runner(jobs, progress, cancel) as runner:
        for plan in plans:
            layer = dataset.layers[plan.layer]
            remove_abandoned(layer.path)
            built[plan.layer] = build_pyramid(
                layer,
                coarsest=plan.coarsest,
                method=plan.interpolation,
                sampling_mode=sampling_mode,
                block_type=BLOCK_LZ4 if compress else BLOCK_RAW,
                runner=runner,
                from_mag=plan.source,
            )
    return built
