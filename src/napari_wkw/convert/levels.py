"""Converting inputs that bring their own pyramid: every level becomes a mag, copied.

:func:`convert_pyramids` is :func:`engine.convert_layers` for layers whose input has
several levels (an OME-Zarr multiscale, the mags of a WEBKNOSSOS zarr layer). It keeps
the engine's contract and reuses its pieces (the same flow as ``convert_layers``, which
this function mirrors: keep the two in step): the checks of specs and target, the layer
locks, one hidden staging dataset per layer (``TARGET/.<layer>.converting`` with
``conversion.json``), resuming a killed run file by file, installing only a finished
layer and listing it atomically. What differs:

- the staged layer gets a mag for every level up front, and the data files of all of
  them are cubed in one pass of the runner (units of whole WKW files, as the engine's):
  coarse levels fill the workers that the few mag-1 files leave idle, and nothing is
  downsampled that the input already holds;
- the pyramid is built (with ``pyramid``) only beyond the input's coarsest level;
- a layer can carry its bounding box, largest segment id and other properties keys.

Each unit reads its boxes in single calls (``threads=1``): tensorstore decodes the
chunks of one read on all cores itself, while reading slice by slice, as the engine's
threads do for slices of image stacks, would decode every 32-deep chunk 32 times.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..core.dataset import Dataset, Layer
from ..core.downsample import build_pyramid, default_interpolation
from ..core.errors import WKWError
from ..core.geometry import BoundingBox, Mag, Vec3
from ..core.locks import locked
from ..core.progress import CancelToken, ProgressCallback
from ..core.properties import PROPERTIES_FILE, DatasetProperties, read_properties, write_properties
from ..core.staging import remove_abandoned
from ..core.wkw_file import BLOCK_LZ4, BLOCK_RAW, suggested_file_len
from ..jobs.runner import JobSettings, Runner
from . import engine
from .cubing import cube_unit, largest_in_file, plan_cube_units
from .engine import STAGING_SUFFIX, ConversionResult, ConversionSettings, LayerSpec
from .source import VolumeSource


@dataclass(frozen=True)
class Level:
    """One level of an input's pyramid: its mag, its voxels, where they land (voxels of ``mag``)."""

    mag: Mag
    source: VolumeSource
    offset: Vec3 = (0, 0, 0)


@dataclass
class PyramidSpec(LayerSpec):
    """A layer whose input has levels: ``source``/``mag``/``offset`` are the finest one's."""

    levels: list[Level] = field(default_factory=list)  # every level, finest first
    bounding_box: BoundingBox | None = None  # mag-1 voxels [default: the finest level's extent]
    largest_segment_id: int | None = None  # [default: computed from the finest level]
    properties_extra: dict = field(default_factory=dict)  # other keys of the layer's properties

    @classmethod
    def of(cls, levels: Sequence[Level], name: str, category: str, dtype=None, **extra) -> PyramidSpec:
        levels = sorted(levels, key=lambda level: level.mag.sort_key())
        if not levels:
            raise WKWError(f"layer {name!r}: the input has no level to convert")
        finest = levels[0]
        return cls(finest.source, name, category, dtype, finest.offset, finest.mag, levels=list(levels), **extra)

    @property
    def layer_box(self) -> BoundingBox:
        if self.bounding_box is not None:
            return self.bounding_box
        return BoundingBox(tuple(self.offset), tuple(self.source.size)).from_mag(self.mag)  # type: ignore[arg-type]


def convert_pyramids(
    target: str | os.PathLike,
    specs: Sequence[PyramidSpec],
    settings: ConversionSettings | None = None,
    *,
    dataset_extra: dict | None = None,
    jobs: JobSettings | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> ConversionResult:
    """Convert each spec, all its levels as mags, into a layer of the dataset at ``target``.

    ``dataset_extra``: keys of a source dataset's properties to add to the target's
    where it does not have them (never replacing any).
    """
    settings = settings or ConversionSettings()
    target = Path(target).expanduser().absolute()
    engine._check_specs(specs)
    for spec in specs:
        _check_levels(spec)
    voxel_size = engine._voxel_size(specs, settings)
    records = {spec.name: _job_record(spec, settings, voxel_size) for spec in specs}
    engine._check_target_now(target, specs, records, voxel_size, settings.overwrite)
    target.mkdir(parents=True, exist_ok=True)
    with engine._layer_locks(target, specs):
        # again, now that no other run converts these layers: one may have installed them meanwhile
        engine._check_target_now(target, specs, records, voxel_size, settings.overwrite)
        result = ConversionResult(target, voxel_size=voxel_size)
        with Runner(jobs, progress, cancel) as runner:
            for spec in specs:
                staging = target / f".{spec.name}{STAGING_SUFFIX}"
                record = engine._claim(staging, records[spec.name])
                if record.get("stage", "new") != "new":
                    result.resumed.append(spec.name)
                if record.get("stage") != "installed":
                    if not engine._moved_in(target, spec.name, record):  # else only its listing is missing
                        layer = _staged_layer(staging, spec, settings, voxel_size, record)
                        _build(layer, spec, settings, runner, staging, record)
                    engine._install(target, staging, spec.name, voxel_size, record)
                result.layers[spec.name] = engine._listed_mags(target, spec.name)
        if dataset_extra:
            _add_dataset_keys(target, dataset_extra)
        for spec in specs:  # the whole job is done: the records are not needed to resume any more
            shutil.rmtree(target / f".{spec.name}{STAGING_SUFFIX}", ignore_errors=True)
    return result


def _check_levels(spec: PyramidSpec) -> None:
    for level in spec.levels:
        if level.source.dtype != spec.source.dtype or level.source.num_channels != spec.source.num_channels:
            raise WKWError(
                f"{level.source.description}: mag {level.mag.folder_name()} holds {level.source.num_channels} x "
                f"{level.source.dtype}, the finest level {spec.source.num_channels} x {spec.source.dtype}"
            )
        if any(m % f for m, f in zip(level.mag.xyz, spec.mag.xyz)):
            raise WKWError(f"{level.source.description}: mag {level.mag} is not a multiple of mag {spec.mag}")


def _job_record(spec: PyramidSpec, settings: ConversionSettings, voxel_size) -> dict:
    record = engine._job_record(spec, settings, voxel_size)
    record["job"]["levels"] = json.loads(
        json.dumps(
            [
                {"mag": level.mag.folder_name(), "source": level.source.fingerprint(), "offset": list(level.offset)}
                for level in spec.levels
            ]
        )
    )
    record["job"]["box"] = spec.layer_box.to_json()
    record["job"]["largest"] = spec.largest_segment_id
    record["job"]["extra"] = json.loads(json.dumps(spec.properties_extra))
    return record


def _staged_layer(staging: Path, spec: PyramidSpec, settings, voxel_size, record: dict) -> Layer:
    """The staging dataset's layer with a mag per level: created once, reopened when resuming."""
    if record["stage"] != "new" and (staging / PROPERTIES_FILE).exists():
        dataset = Dataset.open(staging)
        layer = dataset.layers.get(spec.name)
        if layer is not None and all(level.mag in layer.mags for level in spec.levels):
            remove_abandoned(layer.path)
            return layer
    for child in staging.iterdir():
        if child.name != engine.RECORD_FILE:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    write_properties(
        staging / PROPERTIES_FILE,
        DatasetProperties(name=staging.parent.name, voxel_size=tuple(voxel_size)),  # type: ignore[arg-type]
    )
    dataset = Dataset.open(staging)
    layer = dataset.add_layer(
        spec.name,
        spec.category,
        spec.stored_dtype,
        num_channels=spec.source.num_channels,
        bounding_box=spec.layer_box,
    )
    layer.properties.extra = dict(spec.properties_extra)
    for level in spec.levels:
        extent = BoundingBox(tuple(level.offset), tuple(level.source.size)).bottomright  # type: ignore[arg-type]
        layer.add_mag(
            level.mag,
            block_type=BLOCK_LZ4 if settings.compress else BLOCK_RAW,
            file_len=suggested_file_len(extent),
        )
    dataset.save_properties()
    record["stage"] = "cubing"
    engine._write_record(staging, record)
    return layer


def _build(layer: Layer, spec: PyramidSpec, settings, runner: Runner, staging: Path, record: dict) -> None:
    """Cube every level into its mag in one pass, then build the mags beyond the coarsest."""
    if record["stage"] == "cubing":
        find_max = spec.category == "segmentation" and spec.largest_segment_id is None
        finest = layer.mag_view(spec.mag)
        done_before = finest.files()  # by a killed run: complete (each file is renamed into place)
        units = []
        for index, level in enumerate(spec.levels):
            mag = layer.mag_view(level.mag)
            planned = plan_cube_units(
                level.source,
                mag,
                level.offset,
                spec.stored_dtype,
                z_step=settings.batch_size,
                workers=runner.workers,
                find_max=find_max and index == 0,
            )
            units += [replace(unit, threads=1) for unit in planned]
        names = ", ".join(level.mag.folder_name() for level in spec.levels)
        label = f"copying {spec.name} mag{'s' if len(spec.levels) > 1 else ''} {names}"
        tops = runner.map(cube_unit, units, label)
        if spec.category == "segmentation":
            if spec.largest_segment_id is not None:
                record["largest"] = int(spec.largest_segment_id)
            else:
                size = finest.header.file_size
                layer_box = BoundingBox(tuple(spec.offset), tuple(spec.source.size))  # type: ignore[arg-type]
                boxes = [
                    layer_box.intersection(BoundingBox(tuple(c * size for c in f), (size,) * 3))  # type: ignore[arg-type]
                    for f in done_before
                ]
                tops += runner.map(largest_in_file, [(str(finest.path), box) for box in boxes], "reading segment ids")
                known = [t for t in tops if t is not None]
                record["largest"] = int(max(known)) if known else 0
        record["stage"] = "pyramid"
        engine._write_record(staging, record)
    if spec.category == "segmentation":
        layer.properties.largest_segment_id = int(record.get("largest") or 0)
        layer.dataset.save_properties()
    if settings.pyramid:
        build_pyramid(
            layer,
            coarsest=settings.max_mag,
            method=settings.interpolation or default_interpolation(spec.category),
            block_type=BLOCK_LZ4 if settings.compress else BLOCK_RAW,
            runner=runner,
            from_mag=spec.levels[-1].mag,
        )
    record["stage"] = "built"
    engine._write_record(staging, record)


def _add_dataset_keys(target: Path, extra: dict) -> None:
    with locked(target / PROPERTIES_FILE):  # as the engine installs layers: one writer at a time
        properties = read_properties(target / PROPERTIES_FILE)
        missing = {key: value for key, value in extra.items() if key not in properties.extra}
        if missing:
            properties.extra.update(missing)
            write_properties(target / PROPERTIES_FILE, properties)


__all__ = ["Level", "PyramidSpec", "convert_pyramids"]
