"""The one conversion engine: sources -> complete layers of a WKW dataset, resumably.

Every layer is built in a hidden folder inside the target, ``.<layer>.converting``,
which is a small dataset of its own: its properties list mag 1 once every file is
cubed and each coarser mag once it is complete, and ``conversion.json`` records who
builds it and from what. A run that is killed or cancelled leaves that folder; the
same command run again finds it, checks the input and options are the same, and
goes on: files and mags already written are kept. Only a finished layer is moved
into the target and listed in its ``datasource-properties.json``, so the target
never shows a half-converted layer, and an existing layer is replaced only with
``overwrite`` (the old one is removed after the new one is in place).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.dataset import HEADER_FILE, Dataset, Layer, MagView
from ..core.downsample import (
    INTERPOLATIONS,
    NOT_LISTED,
    build_pyramid,
    default_coarsest_mag,
    default_interpolation,
    plan_mags,
)
from ..core.element_class import WKW_DTYPES
from ..core.errors import TargetExistsError, WKWError, WKWWarning
from ..core.geometry import BoundingBox, Mag, Vec3
from ..core.locks import locked
from ..core.progress import CancelToken, ProgressCallback
from ..core.properties import PROPERTIES_FILE, DatasetProperties, list_layer, read_properties, write_properties
from ..core.staging import left_by_dead_process, owner_tag, process_alive, remove_abandoned
from ..core.wkw_file import BLOCK_LZ4, BLOCK_RAW, WKWHeader, suggested_file_len
from ..jobs.runner import JobSettings, Runner
from .cubing import (
    PassLevel,
    assemble_file,
    cube_unit,
    largest_in_file,
    piece_path,
    plan_assembly,
    plan_cube_units,
    remove_abandoned_pieces,
)
from .source import VolumeSource

STAGING_SUFFIX = ".converting"
RECORD_FILE = "conversion.json"
#: the folder of the staging dataset holding the one-pass pieces (see cubing.py)
PIECES = "pieces"
CATEGORIES = ("color", "segmentation")


@dataclass
class LayerSpec:
    """One layer to convert: where its voxels come from and how to store them."""

    source: VolumeSource
    name: str
    category: str = "color"
    dtype: np.dtype | str | None = None  # stored voxel type [default: the source's]
    offset: Vec3 = (0, 0, 0)  # where source voxel (0, 0, 0) lands, in voxels of ``mag``
    mag: Mag = field(default_factory=lambda: Mag(1, 1, 1))  # the mag the source's voxels are

    @property
    def stored_dtype(self) -> np.dtype:
        return np.dtype(self.dtype if self.dtype is not None else self.source.dtype)


@dataclass
class ConversionSettings:
    """Options every conversion shares (the command line's shared options)."""

    voxel_size: tuple[float, float, float] | None = None  # nm, x, y, z [default: the source's]
    compress: bool = True
    pyramid: bool = True
    max_mag: Mag | None = None
    interpolation: str | None = None
    overwrite: bool = False
    batch_size: int = 32  # slices read at once (rounded up to whole blocks)
    #: build the finer mags of the pyramid while cubing, from the slabs in memory (False: every
    #: mag from the previous one after cubing, reading mag 1 back; the same voxels, slower)
    one_pass: bool = True


@dataclass
class ConversionResult:
    path: Path
    layers: dict[str, list[Mag]] = field(default_factory=dict)  # mags of each layer written
    resumed: list[str] = field(default_factory=list)  # layers continued from a killed run
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0)


def convert_layers(
    target: str | os.PathLike,
    specs: Sequence[LayerSpec],
    settings: ConversionSettings | None = None,
    *,
    jobs: JobSettings | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> ConversionResult:
    """Convert each spec into a layer of the dataset at ``target`` (created if missing)."""
    settings = settings or ConversionSettings()
    target = Path(target).expanduser().absolute()
    _check_specs(specs)
    voxel_size = _voxel_size(specs, settings)
    records = {spec.name: _job_record(spec, settings, voxel_size) for spec in specs}
    _check_target_now(target, specs, records, voxel_size, settings.overwrite)
    target.mkdir(parents=True, exist_ok=True)
    with _layer_locks(target, specs):
        # again, now that no other run converts these layers: one may have installed them meanwhile
        _check_target_now(target, specs, records, voxel_size, settings.overwrite)
        result = ConversionResult(target, voxel_size=voxel_size)
        with Runner(jobs, progress, cancel) as runner:
            for spec in specs:
                staging = target / f".{spec.name}{STAGING_SUFFIX}"
                record = _claim(staging, records[spec.name])
                if record.get("stage", "new") != "new":
                    result.resumed.append(spec.name)
                if record.get("stage") != "installed":
                    if not _moved_in(target, spec.name, record):  # else only its listing is missing
                        layer = _staged_layer(staging, spec, settings, voxel_size, record)
                        _build(layer, spec, settings, runner, staging, record)
                    _install(target, staging, spec.name, voxel_size, record)
                result.layers[spec.name] = _listed_mags(target, spec.name)
        for spec in specs:  # the whole job is done: the records are not needed to resume any more
            shutil.rmtree(target / f".{spec.name}{STAGING_SUFFIX}", ignore_errors=True)
    return result


def _check_target_now(target: Path, *args) -> None:
    """:func:`_check_target` under the properties' lock when the target exists: another run
    installing a layer moves its folder in and lists it under that lock, and a check between
    the two would take the unlisted folder for a dataset without properties."""
    if not target.is_dir():
        return _check_target(target, *args)
    with locked(target / PROPERTIES_FILE):
        return _check_target(target, *args)


@contextlib.contextmanager
def _layer_locks(target: Path, specs: Sequence[LayerSpec]) -> Iterator[None]:
    """Hold, for the whole conversion, the lock of each layer's staging folder in ``target``
    (``.<layer>.converting.lock``): a second run converting a layer of the same name into the
    same target is refused at once, in one sentence, instead of interleaving with this one."""
    with contextlib.ExitStack() as held:
        for spec in specs:
            busy = (
                f"{target}: another napari-wkw run is converting layer {spec.name!r} into this dataset; "
                "wait for it to end, or choose another layer name or target"
            )
            held.enter_context(locked(target / f".{spec.name}{STAGING_SUFFIX}", wait=False, busy=busy))
        yield


# ----------------------------------------------------------------------------- checks


def _check_specs(specs: Sequence[LayerSpec]) -> None:
    names = [spec.name for spec in specs]
    if not specs:
        raise WKWError("nothing to convert")
    if len(set(names)) != len(names):
        raise WKWError(f"layer names must differ, got {', '.join(names)}")
    for spec in specs:
        if not spec.name or spec.name.startswith(".") or "/" in spec.name or os.sep in spec.name:
            raise WKWError(f"{spec.name!r} cannot be a layer name (a folder name without '/' or a leading '.')")
        if spec.category not in CATEGORIES:
            raise WKWError(f"category must be color or segmentation, not {spec.category!r}")
        dtype = spec.stored_dtype
        if dtype not in WKW_DTYPES:
            raise WKWError(f"{spec.source.description}: WKW cannot store {dtype} voxels; pick another --dtype")
        if spec.category == "segmentation" and dtype.kind not in "ui":
            raise WKWError(
                f"{spec.source.description}: segmentation needs integer voxels, not {dtype}; "
                "give --dtype uint32 (or another integer type)"
            )
        if spec.source.num_channels not in (1, 3) or (spec.source.num_channels == 3 and dtype != np.uint8):
            raise WKWError(
                f"{spec.source.description}: {spec.source.num_channels} channels of {dtype} cannot be one WKW layer "
                "(only 3 x uint8, RGB); convert one layer per channel"
            )
        if min(spec.source.size) <= 0:
            raise WKWError(f"{spec.source.description}: the input holds no voxels")


def _voxel_size(specs: Sequence[LayerSpec], settings: ConversionSettings) -> tuple[float, float, float]:
    if settings.voxel_size is not None:
        return tuple(float(v) for v in settings.voxel_size)  # type: ignore[return-value]
    stated = [spec.source.voxel_size for spec in specs if spec.source.voxel_size is not None]
    if stated:
        first = tuple(float(v) for v in stated[0])
        return first  # type: ignore[return-value]
    warnings.warn(
        f"no voxel size given (--voxel-size X,Y,Z) and none stated by the input ({specs[0].source.description}); "
        "using 1,1,1 nm",
        WKWWarning,
        stacklevel=3,
    )
    return (1.0, 1.0, 1.0)


def _check_target(
    target: Path,
    specs: Sequence[LayerSpec],
    records: dict[str, dict],
    voxel_size: tuple[float, float, float],
    overwrite: bool,
) -> None:
    """Refuse, before writing anything, what would overwrite data without ``overwrite``."""
    if target.exists() and not target.is_dir():
        raise TargetExistsError(f"{target}: the target exists and is not a folder")
    if not target.is_dir():
        parent = next(p for p in target.parents if p.exists())
        if not os.access(parent, os.W_OK):
            raise WKWError(f"{parent}: cannot write here (permission denied)")
        return
    visible = {child.name for child in target.iterdir() if not child.name.startswith(".")}
    if not (target / PROPERTIES_FILE).exists() and all(
        name in records and _installed_by(target, name, records[name]) for name in visible
    ):
        return  # empty, or only layers this job moved in before it was killed: still a new target
    if not ((target / PROPERTIES_FILE).exists() or _has_layers(target)):
        raise TargetExistsError(
            f"{target}: the target folder exists and is not a WKW dataset (refusing to write into it)"
        )
    dataset = Dataset.open(target)
    if not np.allclose(dataset.voxel_size, voxel_size, rtol=1e-6):
        size = ",".join(f"{v:g}" for v in dataset.voxel_size)
        raise WKWError(
            f"{target}: the dataset has voxel size {size} nm; convert with --voxel-size {size} or into another folder"
        )
    for spec in specs:
        taken = spec.name in dataset.layers or (target / spec.name).exists()
        if taken and not overwrite and not _installed_by(target, spec.name, records[spec.name]):
            raise TargetExistsError(f"{target}: layer {spec.name!r} exists already (pass --overwrite to replace it)")


def _has_layers(path: Path) -> bool:
    return any(child.is_dir() and any(child.glob(f"*/{HEADER_FILE}")) for child in path.iterdir())


def _installed_by(target: Path, name: str, record: dict) -> bool:
    """Whether this very job (same input and options) installed the layer, or moved it into
    the target, before a kill."""
    old = _read_record(target / f".{name}{STAGING_SUFFIX}")
    if old is None or old.get("job") != record["job"]:
        return False
    return old.get("stage") == "installed" or _moved_in(target, name, old)


def _moved_in(target: Path, name: str, record: dict) -> bool:
    """Whether a run killed in :func:`_install` moved the finished layer into the target
    without listing it there yet: built, gone from the staging folder, in the target."""
    staging = target / f".{name}{STAGING_SUFFIX}"
    return record.get("stage") == "built" and not (staging / name).exists() and (target / name).is_dir()


# ----------------------------------------------------------------------------- staging


def _job_record(spec: LayerSpec, settings: ConversionSettings, voxel_size) -> dict:
    """What must be equal for a rerun to continue a killed one."""
    job = {
        "source": spec.source.fingerprint(),
        "category": spec.category,
        "dtype": spec.stored_dtype.str,
        "offset": list(spec.offset),
        "mag": spec.mag.folder_name(),
        "voxel_size": list(voxel_size),
        "compress": settings.compress,
        "pyramid": settings.pyramid,
        "max_mag": settings.max_mag.folder_name() if settings.max_mag else None,
        "interpolation": settings.interpolation,
    }
    return {"job": json.loads(json.dumps(job))}


def _read_record(staging: Path) -> dict | None:
    try:
        return json.loads((staging / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_record(staging: Path, record: dict) -> None:
    partial = staging / f".{RECORD_FILE}.{os.getpid()}.partial"
    partial.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, staging / RECORD_FILE)


def _claim(staging: Path, fresh: dict) -> dict:
    """Take over the staging folder of a layer: resume it if it is this job's, else start anew."""
    old = _read_record(staging)
    host, pid = socket.gethostname(), os.getpid()
    if old is not None:
        owner = old.get("owner", {})
        owner_host, owner_pid = owner.get("host", host), int(owner.get("pid") or 0)  # no host: this one's
        # judged by host and pid: a pid that is dead here may run on the owner's host (another node)
        if owner_host != host or (owner_pid != pid and process_alive(owner_pid)):
            raise WKWError(
                f"{staging}: another napari-wkw run (pid {owner.get('pid')} on {owner.get('host')}) is converting "
                "this layer; wait for it to end or stop it (if there is no such run, delete this folder)"
            )
        if old.get("job") != fresh["job"]:
            warnings.warn(
                f"{staging}: an unfinished conversion with other input or options was here; starting over",
                WKWWarning,
                stacklevel=3,
            )
            old = None
    if old is None:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        old = {"job": fresh["job"], "stage": "new"}
    old["owner"] = {"pid": pid, "host": host}
    _write_record(staging, old)
    return old


def _staged_layer(staging: Path, spec: LayerSpec, settings: ConversionSettings, voxel_size, record: dict) -> Layer:
    """The staging dataset's layer: created on the first run, reopened on a resumed one."""
    if record["stage"] != "new" and (staging / PROPERTIES_FILE).exists():
        dataset = Dataset.open(staging)
        if spec.name in dataset.layers and spec.mag in dataset.layers[spec.name].mags:
            remove_abandoned(dataset.layers[spec.name].path)
            return dataset.layers[spec.name]
    for child in staging.iterdir():
        if child.name != RECORD_FILE:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    write_properties(
        staging / PROPERTIES_FILE,
        DatasetProperties(name=staging.parent.name, voxel_size=tuple(voxel_size)),  # type: ignore[arg-type]
    )
    dataset = Dataset.open(staging)
    size = tuple(spec.source.size)
    box = BoundingBox(tuple(spec.offset), size).from_mag(spec.mag)  # type: ignore[arg-type]
    layer = dataset.add_layer(
        spec.name, spec.category, spec.stored_dtype, num_channels=spec.source.num_channels, bounding_box=box
    )
    extent = BoundingBox(tuple(spec.offset), size).bottomright  # type: ignore[arg-type]
    layer.add_mag(
        spec.mag,
        block_type=BLOCK_LZ4 if settings.compress else BLOCK_RAW,
        file_len=suggested_file_len(extent),
    )
    dataset.save_properties()
    record["stage"] = "cubing"
    _write_record(staging, record)
    return layer


def _build(layer: Layer, spec: LayerSpec, settings, runner: Runner, staging: Path, record: dict) -> None:
    """Cube the source into the layer's mag (and the one-pass mags into pieces), then build
    the pyramid: one-pass mags assembled from the pieces, the rest each from the previous
    mag (each step resumable)."""
    method = settings.interpolation or default_interpolation(spec.category)
    if record["stage"] == "cubing":
        mag = layer.mag_view(spec.mag)
        if "one_pass" not in record:  # decided once: a resumed run goes on the same way
            record["one_pass"] = [m.folder_name() for m in _one_pass_mags(layer, spec, settings, method)]
            _write_record(staging, record)
        levels = _pass_levels(layer, spec, record["one_pass"])
        find_max = spec.category == "segmentation"
        done_before = mag.files()  # by a killed run: complete (each file is renamed into place)
        if levels:
            remove_abandoned_pieces(staging / PIECES)
        units = plan_cube_units(
            spec.source,
            mag,
            spec.offset,
            spec.stored_dtype,
            z_step=settings.batch_size,
            workers=runner.workers,
            find_max=find_max,
            levels=levels,
            method=method,
            pieces=staging / PIECES,
        )
        tops = runner.map(cube_unit, units, f"cubing {spec.name} mag {spec.mag.folder_name()}")
        if find_max:
            size = mag.header.file_size
            layer_box = BoundingBox(tuple(spec.offset), tuple(spec.source.size))  # type: ignore[arg-type]
            boxes = [layer_box.intersection(BoundingBox(tuple(c * size for c in f), (size,) * 3)) for f in done_before]  # type: ignore[arg-type]
            tops += runner.map(largest_in_file, [(str(mag.path), box) for box in boxes], "reading segment ids")
            known = [t for t in tops if t is not None]
            record["largest"] = int(max(known)) if known else 0
        record["stage"] = "pyramid"
        _write_record(staging, record)
    if spec.category == "segmentation":
        layer.properties.largest_segment_id = int(record.get("largest") or 0)
        layer.dataset.save_properties()
    if settings.pyramid:
        levels = _pass_levels(layer, spec, record.get("one_pass") or [])
        if levels:
            _assemble(layer, spec, levels, runner, staging)
        build_pyramid(  # lists the assembled mags, builds the coarser ones from the last of them
            layer,
            coarsest=settings.max_mag,
            method=method,
            block_type=BLOCK_LZ4 if settings.compress else BLOCK_RAW,
            runner=runner,
            from_mag=spec.mag,
        )
    _remove_assembling(layer)
    shutil.rmtree(staging / PIECES, ignore_errors=True)
    record["stage"] = "built"
    _write_record(staging, record)


def _one_pass_mags(layer: Layer, spec: LayerSpec, settings: ConversionSettings, method: str) -> list[Mag]:
    """The mags of the pyramid that cubing builds as well: the first ones, as long as each is an
    integer step of the one before and one of its blocks covers at most one data file of the
    cubed mag (so one unit holds all the voxels it depends on). Compressed layers only (the
    pieces hold LZ4 blocks); none without a pyramid or with an unknown filter (which the
    pyramid step then reports)."""
    if not (settings.one_pass and settings.pyramid and settings.compress) or method not in (*INTERPOLATIONS, "mean"):
        return []
    header = layer.mag_view(spec.mag).header
    coarsest = settings.max_mag or default_coarsest_mag(layer.bounding_box.size)
    mags = []
    previous = spec.mag
    for mag in plan_mags(spec.mag, coarsest, layer.dataset.voxel_size):
        steps = [m // p for m, p in zip(mag.xyz, previous.xyz)]
        scale = [m // s for m, s in zip(mag.xyz, spec.mag.xyz)]
        if any(s * p != m for s, p, m in zip(steps, previous.xyz, mag.xyz)) or any(
            s * b != m for s, b, m in zip(scale, spec.mag.xyz, mag.xyz)
        ):
            break
        if any(header.file_size % (header.block_len * s) for s in scale):
            break
        mags.append(mag)
        previous = mag
    return mags


def _pass_levels(layer: Layer, spec: LayerSpec, names: list[str]) -> tuple[PassLevel, ...]:
    """What the units need of the one-pass mags ``names``: factors, the layer's box in each,
    their files' length (as :func:`build_pyramid` would choose it)."""
    if not names:
        return ()
    header = layer.mag_view(spec.mag).header
    levels = []
    previous = spec.mag
    for name in names:
        mag = Mag.parse(name)
        inside = layer.bounding_box.in_mag(mag)
        factor = tuple(m // p for m, p in zip(mag.xyz, previous.xyz))
        file_len = suggested_file_len(inside.bottomright, header.block_len, maximum=header.file_len)
        levels.append(PassLevel(mag, factor, inside, file_len))  # type: ignore[arg-type]
        previous = mag
    return tuple(levels)


def _assemble(layer: Layer, spec: LayerSpec, levels: tuple[PassLevel, ...], runner: Runner, staging: Path) -> None:
    """Write the files of the one-pass mags from the pieces, each mag in a hidden folder of the
    layer (``.<mag>.assembling``, kept by a killed run: its files are complete) renamed into
    place when complete and listed with the others in one write of the properties."""
    pieces = staging / PIECES
    base = layer.mag_view(spec.mag)
    todo = [
        (k, level)
        for k, level in enumerate(levels)
        if level.mag not in layer.mags and not (layer.path / level.mag.folder_name() / NOT_LISTED).is_file()
    ]
    if not todo:
        return
    if not _pieces_complete(spec, base, pieces):  # not this version's staging: build them as before
        _remove_assembling(layer)
        return
    folders = {}
    for k, level in todo:
        folder = layer.path / f".{level.mag.folder_name()}.assembling"
        if not (folder / HEADER_FILE).is_file():
            folder.mkdir(parents=True, exist_ok=True)
            header = WKWHeader(base.dtype, base.num_channels, base.header.block_len, level.file_len, BLOCK_LZ4)
            (folder / HEADER_FILE).write_bytes(header.to_bytes(0))
        remove_abandoned(folder)
        folders[k + 1] = folder
    units = plan_assembly(base, spec.offset, spec.source.size, levels, folders, pieces)  # type: ignore[arg-type]
    names = ", ".join(level.mag.folder_name() for _, level in todo)
    runner.map(assemble_file, units, f"assembling {spec.name} mag{'s' if len(todo) > 1 else ''} {names}")
    for k, level in todo:  # marked first: a run killed before they are listed lists them (build_pyramid)
        (folders[k + 1] / NOT_LISTED).touch()
        os.rename(folders[k + 1], layer.path / level.mag.folder_name())
    # listed in their order, those a killed run renamed too, in one write of the properties
    unlisted = [
        level.mag
        for level in levels
        if level.mag not in layer.mags and (layer.path / level.mag.folder_name() / NOT_LISTED).is_file()
    ]
    for mag in unlisted:
        layer.commit_mag(MagView(layer, mag, layer.path / mag.folder_name()))
    list_layer(layer.dataset.path, layer.properties, layer.dataset.properties)
    for mag in unlisted:
        (layer.path / mag.folder_name() / NOT_LISTED).unlink()


def _remove_assembling(layer: Layer) -> None:
    for folder in layer.path.glob(".*.assembling"):
        shutil.rmtree(folder, ignore_errors=True)


def _pieces_complete(spec: LayerSpec, base, pieces: Path) -> bool:
    """Whether every data file the source has data for has its piece (the units all ran)."""
    size = base.header.file_size
    layer_box = BoundingBox(tuple(spec.offset), tuple(spec.source.size))  # type: ignore[arg-type]
    for box in layer_box.chunks((size,) * 3):
        coords = tuple(a // size for a in box.topleft)
        if not piece_path(pieces, coords).is_file() and spec.source.has_data(
            BoundingBox(tuple(a - o for a, o in zip(box.topleft, spec.offset)), box.size)  # type: ignore[arg-type]
        ):
            return False
    return True


def _install(target: Path, staging: Path, name: str, voxel_size, record: dict) -> None:
    """Move the finished layer into the target and list it there (replacing an old one)."""
    built = read_properties(staging / PROPERTIES_FILE).layer(name)
    final = target / name
    replaced = target / f".{name}.replaced-{owner_tag()}"
    # under the properties' lock: conversions of other layers into this target install theirs
    # one after the other, each reading the properties as the one before left them
    with locked(target / PROPERTIES_FILE):
        if (staging / name).exists():
            if final.exists():
                os.rename(final, replaced)
            os.rename(staging / name, final)
        properties = _target_properties(target, voxel_size)
        layers = [layer for layer in properties.layers if layer.name != name]
        position = next((i for i, layer in enumerate(properties.layers) if layer.name == name), len(layers))
        layers.insert(position, built)  # type: ignore[arg-type]
        properties.layers = layers
        write_properties(target / PROPERTIES_FILE, properties)
    record["stage"] = "installed"
    _write_record(staging, record)
    shutil.rmtree(replaced, ignore_errors=True)
    for stale in target.glob(f".{name}.replaced-*"):
        if left_by_dead_process(stale):  # of this host and gone; another host's may still run
            shutil.rmtree(stale, ignore_errors=True)


def _target_properties(target: Path, voxel_size) -> DatasetProperties:
    if (target / PROPERTIES_FILE).exists():
        return read_properties(target / PROPERTIES_FILE)
    if _has_layers(target):
        return Dataset.discover(target, voxel_size).properties
    return DatasetProperties(name=target.name, voxel_size=tuple(voxel_size))  # type: ignore[arg-type]


def _listed_mags(target: Path, name: str) -> list[Mag]:
    layer = read_properties(target / PROPERTIES_FILE).layer(name)
    return sorted((entry.mag for entry in layer.mags), key=lambda m: m.sort_key()) if layer else []


__all__ = ["ConversionResult", "ConversionSettings", "LayerSpec", "convert_layers"]
