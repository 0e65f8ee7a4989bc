"""``upsample``: finer mags from a coarser one by repetition (nearest), as WEBKNOSSOS does.

Which mags: the reference tool's (``webknossos upsample``, ``Layer.upsample``): the mags
a downsampling from ``target_mag`` up to ``from_mag`` would build, in reverse, each
from the previous one, ending at ``target_mag``. For 11.24 x 11.24 x 25 nm and
``--from-mag 4-4-2`` that is 2-2-1, then 1. In ``constant-z`` mode z stays at the source's;
``isotropic`` halves every axis per step. Every voxel of a coarse mag becomes its
factor's block of voxels in the finer one: an exact repetition (the reference writes
only the first and last voxel of each group, which is the same for its factors of 2).

Where: into the layer itself, creating only the mags it lacks (an existing one is
never overwritten: one there already is kept and used as the source of the next
finer mag; ``target_mag`` existing is refused), or into a new layer (``into_layer``)
so that an existing mag 1 is kept: the new layer is built in a hidden
``DATASET/.<new>.upsampling`` folder, holding copies of ``from_mag`` and every coarser
mag plus the upsampled ones, and moved into the dataset and listed only when complete.

How: one work unit per target WKW file (units whose source region holds no data file
are skipped); each mag is built in a hidden folder and renamed into place when complete,
as the pyramid is. A killed run leaves complete mags only; running the same command
again builds the rest (a new layer's staging folder is taken over and continued).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.dataset import Dataset, Layer, MagView
from ..core.downsample import SAMPLING_MODES, plan_mags
from ..core.errors import TargetExistsError, WKWError
from ..core.geometry import BoundingBox, Mag, Vec3
from ..core.progress import CancelToken, ProgressCallback, check_cancelled
from ..core.properties import (
    PROPERTIES_FILE,
    DatasetProperties,
    LayerProperties,
    MagEntry,
    list_layer,
    write_properties,
)
from ..core.staging import owner_tag, remove_abandoned
from ..core.units import UnitRunner
from ..core.wkw_file import BLOCK_LZ4, BLOCK_RAW, existing_files, suggested_file_len
from ..jobs.runner import JobSettings, Runner
from .common import open_dataset, select_layers

STAGING_SUFFIX = ".upsampling"
RECORD_FILE = "conversion.json"  # the conversion engine's record: owner, job, stage


def upsample_chain(from_mag: Mag, target_mag: Mag, voxel_size, sampling_mode: str = "anisotropic") -> list[Mag]:
    """The mags to build, coarsest first, ending at ``target_mag`` (see the module docstring)."""
    if sampling_mode not in SAMPLING_MODES:
        raise WKWError(f"sampling mode must be one of {', '.join(SAMPLING_MODES)}, not {sampling_mode!r}")
    if sampling_mode == "constant-z":
        target_mag = Mag(target_mag.x, target_mag.y, from_mag.z)
    if target_mag == from_mag or any(t > f or f % t for f, t in zip(from_mag.xyz, target_mag.xyz)):
        raise WKWError(
            f"cannot upsample from mag {from_mag.folder_name()} to mag {target_mag.folder_name()}: the target "
            "must be finer along every axis, by whole factors"
        )
    if sampling_mode == "anisotropic":
        down = plan_mags(target_mag, from_mag, voxel_size, "anisotropic")
    else:
        down = plan_mags(target_mag, from_mag, None, "isotropic")
    chain = [*reversed(down)][1:] + [target_mag]
    previous = from_mag
    for mag in chain:
        if any(p % m for p, m in zip(previous.xyz, mag.xyz)):
            raise WKWError(
                f"cannot upsample from mag {from_mag.folder_name()}: mag {previous.folder_name()} is not a whole "
                f"multiple of {mag.folder_name()} (mags must be powers of two)"
            )
        previous = mag
    return chain


@dataclass
class UpsamplePlan:
    """What ``upsample`` will do for one layer (the CLI prints it before starting)."""

    layer: str  # the layer read
    into: str  # the layer written (``layer``, or a new one)
    source: Mag
    chain: list[Mag]  # every mag between, coarsest first, ending at the target
    mags: list[Mag]  # the ones to build (missing ones)
    copied: list[Mag] = field(default_factory=list)  # mags copied into a new layer


@dataclass(frozen=True)
class UpsampleUnit:
    """One target WKW file's part of an upsampling step: paths and boxes only."""

    source: str  # source mag folder
    target: str  # target mag folder
    factor: Vec3  # source mag / target mag, per axis (x, y, z)
    box: BoundingBox  # target-mag voxels, inside one target file
    threads: int = 1


def repeat_voxels(data: np.ndarray, factor: Vec3) -> np.ndarray:
    """Each voxel of a (z, y, x[, c]) array as a block of ``factor`` (x, y, z) voxels."""
    fx, fy, fz = factor
    z, y, x = data.shape[:3]
    rest = data.shape[3:]
    expanded = np.broadcast_to(data[:, None, :, None, :, None], (z, fz, y, fy, x, fx, *rest))
    return expanded.reshape(z * fz, y * fy, x * fx, *rest)


def upsample_file(unit: UpsampleUnit) -> None:
    """Fill ``unit.box`` of the target mag from the coarser source mag by repetition."""
    source = MagView.at(Path(unit.source))
    target = MagView.at(Path(unit.target))

    def fetch(sub: BoundingBox) -> np.ndarray:
        lo = [a // f for a, f in zip(sub.topleft, unit.factor)]
        hi = [-(-b // f) for b, f in zip(sub.bottomright, unit.factor)]
        data = repeat_voxels(source.read(BoundingBox.from_bounds(lo, hi)), unit.factor)
        x0, y0, z0 = (a - low * f for a, low, f in zip(sub.topleft, lo, unit.factor))
        width, height, depth = sub.size
        return data[z0 : z0 + depth, y0 : y0 + height, x0 : x0 + width]

    target.write_file(unit.box, fetch, threads=unit.threads, find_max=False)


def upsample_mag(layer: Layer, source: MagView, target: MagView, runner: UnitRunner) -> None:
    """Fill ``target`` from the coarser ``source``, one target WKW file per work unit."""
    factor = tuple(s // t for s, t in zip(source.mag.xyz, target.mag.xyz))
    boxes = list(layer.bounding_box.in_mag(target.mag).chunks((target.header.file_size,) * 3))
    with_data = set(existing_files(source.path))
    size = source.header.file_size
    units = []
    for box in boxes:
        lo = [a // f // size for a, f in zip(box.topleft, factor)]
        hi = [(-(-b // f) - 1) // size for b, f in zip(box.bottomright, factor)]
        files = {
            (x, y, z) for x in range(lo[0], hi[0] + 1) for y in range(lo[1], hi[1] + 1) for z in range(lo[2], hi[2] + 1)
        }
        if files & with_data:
            units.append(box)
    threads = max(1, runner.workers // max(1, len(units)))
    work = [UpsampleUnit(str(source.path), str(target.path), factor, box, threads) for box in units]  # type: ignore[arg-type]
    runner.map(upsample_file, work, f"upsampling {layer.name} mag {target.mag.folder_name()}")


def _build(layer: Layer, from_mag: Mag, chain: list[Mag], block_type: int, runner: UnitRunner) -> list[Mag]:
    """Every missing mag of ``chain``, each from the previous (existing ones are sources)."""
    previous = layer.mag_view(from_mag)
    built = []
    for mag in chain:
        if mag in layer.mags:
            previous = layer.mags[mag]
            continue
        extent = layer.bounding_box.in_mag(mag).bottomright
        block_len = previous.header.block_len
        staged = layer.stage_mag(
            mag, block_type=block_type, file_len=suggested_file_len(extent, block_len), block_len=block_len
        )
        try:
            upsample_mag(layer, previous, staged, runner)
        except BaseException:
            shutil.rmtree(staged.path, ignore_errors=True)
            raise
        previous = layer.commit_mag(staged)
        # each finished mag is listed at once, none before; under the properties' lock, so a layer
        # another process lists meanwhile stays listed
        list_layer(layer.dataset.path, layer.properties, layer.dataset.properties)
        built.append(mag)
    return built


def _plans(
    dataset: Dataset,
    layer_name: str | None,
    from_mag: Mag,
    target_mag: Mag,
    sampling_mode: str,
    into_layer: str | None,
) -> list[UpsamplePlan]:
    if into_layer is not None and layer_name is None:
        raise WKWError("--into-layer names the new layer for one layer: give --layer-name too")
    plans = []
    for layer in select_layers(dataset, layer_name):
        layer.mag_view(from_mag)  # an error listing the mags there are
        chain = upsample_chain(from_mag, target_mag, dataset.voxel_size, sampling_mode)
        if into_layer is None:
            if chain[-1] in layer.mags:
                raise TargetExistsError(
                    f"{layer.path}: layer {layer.name!r} has mag {chain[-1].folder_name()} already; upsampling would "
                    "overwrite it: write into a new layer with --into-layer NAME (the existing mag is kept)"
                )
            missing = [mag for mag in chain if mag not in layer.mags]
            plans.append(UpsamplePlan(layer.name, layer.name, from_mag, chain, missing))
            continue
        _check_new_layer(dataset, into_layer)
        copied = [mag for mag in layer.mags if all(m >= f for m, f in zip(mag.xyz, from_mag.xyz))]
        plans.append(UpsamplePlan(layer.name, into_layer, from_mag, chain, list(chain), copied))
    return plans


def _check_new_layer(dataset: Dataset, name: str) -> None:
    if not name or name.startswith(".") or "/" in name or os.sep in name:
        raise WKWError(f"{name!r} cannot be a layer name (a folder name without '/' or a leading '.')")
    if name in dataset.layers or (dataset.path / name).exists():
        raise TargetExistsError(f"{dataset.path}: layer {name!r} exists already; choose another name for --into-layer")


def plan_upsampling(
    path: str | os.PathLike,
    *,
    layer_name: str | None = None,
    from_mag: Mag | str | int,
    target_mag: Mag | str | int = 1,
    sampling_mode: str = "anisotropic",
    into_layer: str | None = None,
) -> list[UpsamplePlan]:
    """The mags each layer would get, without writing anything (the checks ``upsample`` makes)."""
    return _plans(open_dataset(path), layer_name, Mag.parse(from_mag), Mag.parse(target_mag), sampling_mode, into_layer)


def upsample(
    path: str | os.PathLike,
    *,
    layer_name: str | None = None,
    from_mag: Mag | str | int,
    target_mag: Mag | str | int = 1,
    sampling_mode: str = "anisotropic",
    into_layer: str | None = None,
    compress: bool = True,
    jobs: JobSettings | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, list[Mag]]:
    """Upsample every layer (or ``layer_name``) from ``from_mag`` down to ``target_mag``.

    Returns the mags built per layer written (``into_layer`` for a new layer).
    """
    dataset = open_dataset(path)
    from_mag, target_mag = Mag.parse(from_mag), Mag.parse(target_mag)
    plans = _plans(dataset, layer_name, from_mag, target_mag, sampling_mode, into_layer)
    block_type = BLOCK_LZ4 if compress else BLOCK_RAW
    built: dict[str, list[Mag]] = {}
    with Runner(jobs, progress, cancel) as runner:
        for plan in plans:
            layer = dataset.layers[plan.layer]
            if plan.into == plan.layer:
                remove_abandoned(layer.path)
                built[plan.layer] = _build(layer, from_mag, plan.chain, block_type, runner)
            else:
                built[plan.into] = _into_new_layer(dataset, layer, plan, sampling_mode, compress, block_type, runner)
    return built


# ---- a new layer ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyUnit:
    source: str  # a mag folder
    target: str  # the mag folder to create (copied to a hidden name, renamed into place)


def copy_mag(unit: CopyUnit) -> None:
    target = Path(unit.target)
    if target.exists():  # by a killed run: complete (renamed into place)
        return
    partial = target.with_name(f".{target.name}.partial-{owner_tag()}")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(unit.source, partial, ignore=shutil.ignore_patterns(".*"))
    check_cancelled()
    os.rename(partial, target)


def _into_new_layer(
    dataset: Dataset, layer: Layer, plan: UpsamplePlan, sampling_mode: str, compress: bool, block_type, runner
) -> list[Mag]:
    from ..convert import engine

    staging = dataset.path / f".{plan.into}{STAGING_SUFFIX}"
    job = {
        "from_layer": layer.name,
        "from_mag": plan.source.folder_name(),
        "chain": [mag.folder_name() for mag in plan.chain],
        "sampling_mode": sampling_mode,
        "compress": compress,
        "copied": {mag.folder_name(): len(layer.mags[mag].files()) for mag in plan.copied},
    }
    record = engine._claim(staging, {"job": job})
    if record.get("stage", "new") == "new":
        _start_new_layer(dataset, layer, plan, staging)
        record["stage"] = "copying"
        engine._write_record(staging, record)
    staged = Dataset.open(staging).layers[plan.into]
    remove_abandoned(staged.path)
    if record["stage"] == "copying":
        units = [
            CopyUnit(str(layer.mags[mag].path), str(staged.path / mag.folder_name()))
            for mag in plan.copied
            if mag not in staged.mags
        ]
        runner.map(copy_mag, units, f"copying {layer.name} mags {', '.join(m.folder_name() for m in plan.copied)}")
        for mag in plan.copied:
            entry = next(e for e in layer.properties.mags if e.mag == mag)
            if mag not in staged.mags:
                staged.properties.mags.append(MagEntry(mag, f"./{plan.into}/{mag.folder_name()}", dict(entry.extra)))
        staged.dataset.save_properties()
        record["stage"] = "upsampling"
        engine._write_record(staging, record)
        staged = Dataset.open(staging).layers[plan.into]
    built = []
    if record["stage"] == "upsampling":
        built = _build(staged, plan.source, plan.chain, block_type, runner)
        record["stage"] = "built"
        record["built"] = [mag.folder_name() for mag in built]
        engine._write_record(staging, record)
    if record["stage"] == "built":
        engine._install(dataset.path, staging, plan.into, dataset.voxel_size, record)
    shutil.rmtree(staging, ignore_errors=True)
    return [Mag.parse(name) for name in record.get("built", [])] or built


def _start_new_layer(dataset: Dataset, layer: Layer, plan: UpsamplePlan, staging: Path) -> None:
    """The staging folder: a one-layer dataset whose layer has the source's properties, no mags yet."""
    for child in staging.iterdir():
        if child.name != RECORD_FILE:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    source = layer.properties
    properties = LayerProperties(
        name=plan.into,
        category=source.category,
        bounding_box=source.bounding_box,
        element_class=source.element_class,
        num_channels=source.num_channels,
        mags=[],
        largest_segment_id=source.largest_segment_id,
        data_format=source.data_format,
        extra=dict(source.extra),
    )
    (staging / plan.into).mkdir()
    write_properties(
        staging / PROPERTIES_FILE,
        DatasetProperties(
            name=dataset.name, voxel_size=dataset.voxel_size, unit=dataset.properties.unit, layers=[properties]
        ),
    )


__all__ = ["UpsamplePlan", "plan_upsampling", "repeat_voxels", "upsample", "upsample_chain"]
