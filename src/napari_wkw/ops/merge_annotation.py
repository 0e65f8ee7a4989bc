"""``merge-annotation``: paint a WEBKNOSSOS volume annotation over a segmentation layer.

What wins where, by ``mode``:

- ``bucket``: every voxel of a painted 32^3 annotation bucket replaces the layer's voxel,
  zeros included. In WEBKNOSSOS an edited bucket starts as a copy of the fallback layer,
  so its zeros are erasures; this is what the reference's ``merge_fallback_layer`` does.
- ``voxel``: only non-zero annotation voxels replace the layer's; zeros fall back to the
  existing ids (annotations made without a fallback layer, whose zeros mean "unpainted").
- ``auto``: ``bucket`` when the NML volume names a ``fallbackLayer``, else ``voxel``.

Work units are target WKW files: one per mag-1 file that annotation buckets touch, so no
two units write one file. A compressed file is rebuilt block by block (only blocks under
buckets re-encoded, the others copied as they are) and renamed into place; raw files are
written in place. Each coarser mag is then updated from the mag before it with ``mode``
filtering, only in the blocks the merged buckets reach (chained mag to mag, clipped to the
layer's box like a pyramid build), one unit per target file, so the pyramid stays
consistent without rebuilding whole mags. Units carry paths only; each process opens the
annotation once. When there are fewer files than workers, a unit spreads its rows of
buckets (or tiles) over threads.

With ``into``, the layer is copied (compressed files hard-linked: rewritten files get new
inodes by the rename; raw mags copied, as they are written in place) into a hidden staging
folder, merged there, renamed into place and only then listed in the properties, so the
original layer is never touched and a reader never sees half a layer.

In place, the bounding box (grown to cover the merged buckets) and ``largestSegmentId``
(the larger of the layer's and the annotation's) are written at the end. A run killed
mid-way leaves every compressed file either old or merged (raw files, written in place:
each row of buckets old, merged or half written), coarser mags partly updated, and the
properties as they were; with ``into``, a hidden staging folder that the next run removes. The merge is
idempotent (its result does not depend on whether a file was merged already), so running
the command again finishes the job.
"""

from __future__ import annotations

import copy
import errno
import os
import re
import shutil
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..core.annotation import Annotation
from ..core.annotation_volume import AnnotationVolume
from ..core.dataset import Dataset, Layer, MagView
from ..core.downsample import DownsampleUnit, downsample_data, read_edge_padded
from ..core.errors import WKWError, WKWWarning
from ..core.geometry import BoundingBox, Mag
from ..core.locks import locked
from ..core.progress import CancelToken, ProgressCallback, check_cancelled
from ..core.properties import PROPERTIES_FILE, read_properties
from ..core.staging import remove_abandoned, staged
from ..core.threads import bounded_map
from ..core.wkw_file import CompressedFileWriter, WKWHeader, file_path
from ..jobs.runner import JobSettings, Runner
from .common import open_dataset, select_layers

MODES = ("auto", "bucket", "voxel")
BUCKET = 32
MAG1 = Mag(1, 1, 1)
#: relative difference up to which voxel sizes agree (NML floats: 11.239999771118164 vs 11.24)
VOXEL_SIZE_TOLERANCE = 1e-3
#: in an ``into`` layer from its rename into place until the properties list it: the next run
#: removes such a layer (complete, but never listed) and merges again
NOT_LISTED = ".merged-not-listed"
#: annotations a process keeps open (units of one merge all use the same one)
_KEEP_OPEN = 4


@dataclass(frozen=True)
class MergeUnit:
    """One mag-1 target file and the annotation buckets (x, y, z bucket coords) that touch it."""

    annotation: str
    volume: str
    mag: str  # target mag-1 folder
    file: tuple[int, int, int]  # file coordinates (x, y, z)
    buckets: tuple[tuple[int, int, int], ...]
    mode: str  # "bucket" or "voxel"
    threads: int = 1  # rows of buckets painted at once (fewer files than workers)


@dataclass(frozen=True)
class CoarseUnit:
    """One target file of a coarser mag: the block-aligned boxes to recompute in it."""

    parts: tuple[DownsampleUnit, ...]
    threads: int = 1  # tiles computed at once


@dataclass
class MergeResult:
    dataset: Path
    layer: str  # the layer written (``into`` or the merged layer)
    volume: str
    mode: str  # "bucket" or "voxel": the mode used
    mode_reason: str
    buckets: int  # mag-1 annotation buckets merged
    files_rewritten: int  # over all mags
    mags_updated: list[Mag]
    bounding_box: BoundingBox
    largest_segment_id: int | None


@dataclass
class _Plan:
    """Everything checked before a byte is written."""

    annotation: Annotation
    volume: AnnotationVolume
    dataset: Dataset
    layer: Layer
    mode: str
    reason: str
    buckets: np.ndarray  # (n, 3) mag-1 bucket coords
    box: BoundingBox  # the layer's box grown by the buckets
    annotation_largest: int | None


def merge_annotation(
    annotation: str | os.PathLike,
    dataset: str | os.PathLike,
    layer_name: str,
    *,
    into: str | None = None,
    volume_name: str | None = None,
    mode: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    jobs: JobSettings | None = None,
) -> MergeResult:
    """Merge a volume of ``annotation`` into ``layer_name`` of ``dataset`` (or a copy named ``into``).

    Every check (files, layer, voxel size, volume, mag 1, value range, ``into``) runs
    before anything is written; see the module docstring for what each mode does and
    what an interrupted run leaves.
    """
    if mode not in MODES:
        raise WKWError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    annotation_path = Path(annotation).expanduser().absolute()
    if not annotation_path.is_file():
        raise WKWError(f"{annotation_path}: no such annotation file")
    target = open_dataset(dataset)
    layer = _target_layer(target, layer_name)
    if into is not None:
        _check_new_layer(target, into)
    opened = Annotation.open(annotation_path)
    try:
        plan = _plan(opened, target, layer, volume_name, mode)
        key = _share(plan)
        try:
            with Runner(jobs, progress, cancel) as runner:
                if into is None:
                    return _merge_in_place(plan, runner)
                return _merge_into_copy(plan, into, runner)
        finally:
            _unshare(key)
    finally:
        opened.close()


# ---- checks ---------------------------------------------------------------------------------


def _target_layer(dataset: Dataset, name: str) -> Layer:
    """The layer to merge into: WKW, segmentation, one channel, mag 1, integer pyramid steps."""
    layer = select_layers(dataset, name)[0]
    if layer.category != "segmentation":
        raise WKWError(
            f"{layer.path}: layer {name!r} is a {layer.category} layer; an annotation merges into a segmentation layer"
        )
    if layer.num_channels != 1:
        raise WKWError(f"{layer.path}: layer {name!r} has {layer.num_channels} channels; segmentations have one")
    mags = list(layer.mags)
    if MAG1 not in layer.mags:
        known = ", ".join(m.folder_name() for m in mags) or "none"
        raise WKWError(
            f"{layer.path}: layer {name!r} has no mag 1 (mags: {known}); annotation buckets are mag-1 voxels"
        )
    for finer, coarser in zip(mags, mags[1:]):
        if any(c % f for c, f in zip(coarser.xyz, finer.xyz)):
            raise WKWError(
                f"{layer.path}: mag {coarser.folder_name()} is not a multiple of mag {finer.folder_name()}, "
                "so it cannot be updated from it"
            )
    return layer


def _check_new_layer(dataset: Dataset, name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name) or name.startswith("."):
        raise WKWError(
            f"--into {name!r}: a layer name may hold only letters, digits, '_', '-' and '.' and not start with '.'"
        )
    if name in dataset.layers or dataset.properties.layer(name) is not None:
        raise WKWError(f"{dataset.path}: layer {name!r} exists already; --into names a new layer")
    if (dataset.path / name).exists() and not (dataset.path / name / NOT_LISTED).is_file():
        raise WKWError(
            f"{dataset.path / name}: exists but is not a listed layer (left by an interrupted merge?); "
            "remove it or choose another --into name"
        )


def _plan(annotation: Annotation, dataset: Dataset, layer: Layer, volume_name: str | None, mode: str) -> _Plan:
    _check_voxel_size(annotation, dataset)
    volume = _volume(annotation, volume_name)
    where = f"{annotation.path}: volume {volume.volume_name!r}"
    data = volume.layer
    if data is None or not data.mags:
        raise WKWError(f"{where} holds no data; nothing to merge")
    finest = data.finest_mag.mag
    if finest != MAG1:
        raise WKWError(f"{where} starts at mag {finest.folder_name()}; merging needs its mag 1")
    buckets = volume.buckets(MAG1)
    if not len(buckets):
        raise WKWError(f"{where} holds no painted bucket; nothing to merge")
    largest = data.properties.largest_segment_id
    limit = _dtype_max(layer.dtype)
    if largest is not None and largest > limit:
        raise WKWError(
            f"{where} holds segment ids up to {largest}, more than layer {layer.name!r} ({layer.dtype}) "
            f"can store ({limit:g}) in {layer.path}"
        )
    nml_volume = _nml_volume(annotation, volume)
    used, reason = _choose_mode(mode, nml_volume)
    fallback = nml_volume.fallback_layer if nml_volume is not None else None
    if fallback and fallback != layer.name:
        warnings.warn(
            f"{where} edits fallback layer {fallback!r}, merging it into layer {layer.name!r}",
            WKWWarning,
            stacklevel=3,
        )
    box = layer.bounding_box.union(volume.data_box())
    return _Plan(annotation, volume, dataset, layer, used, reason, buckets, box, largest)


def _check_voxel_size(annotation: Annotation, dataset: Dataset) -> None:
    ours, theirs = annotation.voxel_size, dataset.voxel_size
    if any(abs(a - b) > VOXEL_SIZE_TOLERANCE * max(abs(a), abs(b)) for a, b in zip(ours, theirs)):
        raise WKWError(
            f"{annotation.path}: voxel size {_format(ours)} differs from {_format(theirs)} of the dataset "
            f"{dataset.path}; the annotation belongs to another dataset"
        )


def _format(values) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _volume(annotation: Annotation, name: str | None) -> AnnotationVolume:
    if not annotation.volumes:
        raise WKWError(f"{annotation.path}: holds no volume layer (a skeleton-only annotation); nothing to merge")
    if name is None and len(annotation.volumes) > 1:
        names = ", ".join(repr(volume.volume_name) for volume in annotation.volumes)
        raise WKWError(
            f"{annotation.path}: holds {len(annotation.volumes)} volume layers ({names}); choose one with --volume-name"
        )
    return annotation.volume(name)


def _nml_volume(annotation: Annotation, volume: AnnotationVolume):
    index = annotation.volumes.index(volume)
    return annotation.nml.volumes[index] if index < len(annotation.nml.volumes) else None


def _choose_mode(mode: str, nml_volume) -> tuple[str, str]:
    """The mode to use and why (the CLI says which, since ``auto`` decides from the NML)."""
    if mode != "auto":
        return mode, "as asked"
    fallback = nml_volume.fallback_layer if nml_volume is not None else None
    if fallback:
        return "bucket", f"the annotation names fallback layer {fallback!r}"
    return "voxel", "the annotation names no fallback layer"


def _dtype_max(dtype: np.dtype) -> float:
    dtype = np.dtype(dtype)
    return np.iinfo(dtype).max if dtype.kind in "ui" else np.finfo(dtype).max


# ---- running --------------------------------------------------------------------------------


def _merge_in_place(plan: _Plan, runner: Runner) -> MergeResult:
    layer = plan.layer
    remove_abandoned(layer.path)
    mag_paths = {mag: view.path for mag, view in layer.mags.items()}
    files, updated, largest = _run(plan, mag_paths, layer.name, runner)
    new_largest = _largest(layer.properties.largest_segment_id, plan.annotation_largest, largest)
    with locked(plan.dataset.path / PROPERTIES_FILE):  # read-modify-write, one process at a time
        properties = _fresh_properties(plan.dataset)
        entry = properties.layer(layer.name) or layer.properties
        entry.bounding_box = plan.box
        entry.largest_segment_id = new_largest
        plan.dataset.properties = properties
        plan.dataset.save_properties()
    return _result(plan, layer.name, files, updated, new_largest)


def _merge_into_copy(plan: _Plan, into: str, runner: Runner) -> MergeResult:
    layer = plan.layer
    final = plan.dataset.path / into
    if (final / NOT_LISTED).is_file():  # merged by a run killed before listing it: merge again
        shutil.rmtree(final)
    with staged(final) as staging:
        _copy_layer(layer, staging)
        mag_paths = {mag: staging / mag.folder_name() for mag in layer.mags}
        files, updated, largest = _run(plan, mag_paths, into, runner)
        (staging / NOT_LISTED).touch()
    new_largest = _largest(layer.properties.largest_segment_id, plan.annotation_largest, largest)
    entry = copy.deepcopy(layer.properties)
    entry.name = into
    entry.bounding_box = plan.box
    entry.largest_segment_id = new_largest
    entry.mags = [mag for mag in entry.mags if mag.mag in layer.mags]
    for mag in entry.mags:
        mag.path = f"./{into}/{mag.mag.folder_name()}"
    with locked(plan.dataset.path / PROPERTIES_FILE):  # read-modify-write, one process at a time
        properties = _fresh_properties(plan.dataset)
        properties.layers.append(entry)
        plan.dataset.properties = properties
        plan.dataset.save_properties()
    (final / NOT_LISTED).unlink()
    return _result(plan, into, files, updated, new_largest)


def _fresh_properties(dataset: Dataset):
    """The properties as they are on disk now (a merge takes a while), else as opened."""
    path = dataset.path / PROPERTIES_FILE
    return read_properties(path) if path.is_file() else dataset.properties


def _largest(layer: int | None, annotation: int | None, written: int | None) -> int | None:
    """The larger of the layer's and the annotation's ids; unknown stays unknown."""
    if layer is None:
        return None
    return int(max(v for v in (layer, annotation, written) if v is not None))


def _result(plan: _Plan, name: str, files: int, updated: list[Mag], largest: int | None) -> MergeResult:
    return MergeResult(
        plan.dataset.path,
        name,
        plan.volume.volume_name,
        plan.mode,
        plan.reason,
        len(plan.buckets),
        files,
        updated,
        plan.box,
        largest,
    )


def _run(plan: _Plan, mag_paths: dict[Mag, Path], name: str, runner: Runner) -> tuple[int, list[Mag], int | None]:
    """Merge mag 1, then update each coarser mag from the one before; (files written, mags
    written, largest id painted)."""
    units = _with_threads(_mag1_units(plan, mag_paths[MAG1]), runner.workers)
    outcomes = runner.map(merge_file, units, f"merging {plan.volume.volume_name!r} into {name} mag 1")
    files = sum(changed for changed, _ in outcomes)
    tops = [top for _, top in outcomes if top is not None]
    updated = [MAG1] if files else []
    # each mag recomputes its blocks under the previous mag's region (whole blocks), chained
    low = plan.buckets * BUCKET
    high = low + BUCKET
    mags = list(mag_paths)
    for finer, coarser in zip(mags, mags[1:]):
        units, low, high = _coarse_units(plan, mag_paths[finer], mag_paths[coarser], finer, coarser, low, high)
        units = _with_threads(units, runner.workers)
        runner.map(update_coarse_file, units, f"updating {name} mag {coarser.folder_name()}")
        files += len(units)
        updated += [coarser] if units else []
    return files, updated, max(tops) if tops else None


def _with_threads(units: list, workers: int) -> list:
    """Fewer files than workers: let each unit spread its work over the idle ones."""
    threads = max(1, workers // max(1, len(units)))
    return units if threads == 1 else [replace(unit, threads=threads) for unit in units]


def _mag1_units(plan: _Plan, mag_path: Path) -> list[MergeUnit]:
    """One unit per mag-1 file the buckets touch, with those buckets."""
    size = WKWHeader.read(mag_path / "header.wkw").file_size
    low = plan.buckets * BUCKET
    cells, owners = _touching(low, low + BUCKET, size)
    groups: dict[tuple[int, int, int], list[tuple[int, int, int]]] = {}
    for cell, owner in zip(map(tuple, cells.tolist()), owners.tolist()):
        groups.setdefault(cell, []).append(tuple(plan.buckets[owner].tolist()))
    return [
        MergeUnit(
            str(plan.annotation.path), plan.volume.volume_name, str(mag_path), coords, tuple(groups[coords]), plan.mode
        )
        for coords in sorted(groups, key=lambda c: c[::-1])
    ]


def _coarse_units(plan: _Plan, source: Path, target: Path, finer: Mag, coarser: Mag, low, high):
    """Units for one coarser mag, and the region (its whole blocks) the next mag builds on."""
    header = WKWHeader.read(target / "header.wkw")
    n, size = header.block_len, header.file_size
    factor = tuple(c // f for c, f in zip(coarser.xyz, finer.xyz))
    step = np.array(factor)
    blocks = np.unique(_touching(low // step, -(-high // step), n)[0], axis=0)
    clip = plan.box.in_mag(coarser)
    inside = plan.box.in_mag(finer)
    by_file: dict[tuple[int, int, int], list[DownsampleUnit]] = {}
    for start, count in _runs(blocks, header.file_len):
        box = BoundingBox(tuple(int(v) * n for v in start), (count * n, n, n)).intersection(clip)
        if box.is_empty:
            continue
        coords = tuple(int(v) // size for v in box.topleft)
        part = DownsampleUnit(str(source), str(target), factor, "mode", inside, box)
        by_file.setdefault(coords, []).append(part)  # type: ignore[arg-type]
    units = [CoarseUnit(tuple(by_file[c])) for c in sorted(by_file, key=lambda c: c[::-1])]
    return units, blocks * n, blocks * n + n


def _touching(low: np.ndarray, high: np.ndarray, step) -> tuple[np.ndarray, np.ndarray]:
    """Every cell of a grid of ``step`` that the boxes ``[low, high)`` touch, with its box's row."""
    first = low // step
    last = -(-high // step)
    spans = (last - first).max(axis=0)
    cells, owners = [], []
    for offset in np.ndindex(*(int(s) for s in spans)):
        cell = first + np.array(offset)
        keep = np.all(cell < last, axis=1)
        cells.append(cell[keep])
        owners.append(np.nonzero(keep)[0])
    return np.concatenate(cells), np.concatenate(owners)


def _runs(cells: np.ndarray, per_file: int) -> list[tuple[np.ndarray, int]]:
    """Cells (x, y, z) as runs of neighbours along x within one file (``per_file`` cells per
    file edge): (first cell, length), so one read or write serves a row of cells."""
    order = np.lexsort((cells[:, 0], cells[:, 1], cells[:, 2]))
    runs: list[tuple[np.ndarray, int]] = []
    for cell in cells[order]:
        if runs:
            start, count = runs[-1]
            if cell[1] == start[1] and cell[2] == start[2] and cell[0] == start[0] + count and cell[0] % per_file:
                runs[-1] = (start, count + 1)
                continue
        runs.append((cell, 1))
    return runs


# ---- units ----------------------------------------------------------------------------------


def merge_file(unit: MergeUnit) -> tuple[bool, int | None]:
    """Paint the unit's buckets into its file; (whether the file was written, largest id painted).

    Rows of buckets are read, painted and encoded on ``unit.threads`` threads (a merge often
    touches fewer files than there are workers); the file is assembled in this thread.
    """
    target = MagView.at(Path(unit.mag))
    source = annotation_mag(unit.annotation, unit.volume)
    size = target.header.file_size
    file_box = BoundingBox(tuple(c * size for c in unit.file), (size, size, size))  # type: ignore[arg-type]
    buckets = np.array(unit.buckets, np.int64).reshape(-1, 3)
    cell = max(BUCKET, target.header.block_len)  # a grid both buckets and blocks align to
    limit = _dtype_max(target.dtype)
    largest = None
    with _FileWriter(target, unit.file) as out:

        def paint(run: tuple[np.ndarray, int]):
            start, count = run
            box = BoundingBox(tuple(int(v) * cell for v in start), (count * cell, cell, cell)).intersection(file_box)
            value = source.read(box)
            top = value.max()
            if top > limit:
                raise WKWError(
                    f"{unit.annotation}: volume {unit.volume!r} holds id {top} near voxel {box.topleft}, which does "
                    f"not fit {target.dtype} of {target.path}; this file was left as it was"
                )
            painted = _covered(box, buckets) if unit.mode == "bucket" else value != 0
            if not painted.any():
                return None
            value = value.astype(target.dtype, copy=False)
            new = value if painted.all() else np.where(painted, value, out.read(box))
            return box, out.prepare(box, new), int(top)

        for done in bounded_map(
            paint, _runs(np.unique(buckets * BUCKET // cell, axis=0), max(1, size // cell)), unit.threads
        ):
            check_cancelled()
            if done is not None:
                box, prepared, top = done
                out.store(box, prepared)
                largest = top if largest is None else max(largest, top)
        changed = out.commit()
    return changed, largest


def _covered(box: BoundingBox, buckets: np.ndarray) -> np.ndarray:
    """Which voxels of ``box`` lie in one of ``buckets``."""
    low = buckets * BUCKET
    inside = low[np.all((low < box.bottomright) & (low + BUCKET > box.topleft), axis=1)]
    whole = np.all(inside >= box.topleft) and np.all(inside + BUCKET <= box.bottomright)
    if whole and len(inside) * BUCKET**3 == box.volume:  # buckets are disjoint: they fill the box
        return np.ones(box.size[::-1], bool)
    mask = np.zeros(box.size[::-1], bool)
    for corner in inside:
        inner = BoundingBox(tuple(int(v) for v in corner), (BUCKET,) * 3).intersection(box)  # type: ignore[arg-type]
        mask[inner.zyx_slices(box.topleft)] = True
    return mask


def update_coarse_file(unit: CoarseUnit) -> None:
    """Recompute the unit's boxes of one coarser-mag file from the mag before it, tiles on
    ``unit.threads`` threads, and write the file once for all of them (``downsample_file``
    would rewrite it once per box)."""
    first = unit.parts[0]
    source = MagView.at(Path(first.source))
    target = MagView.at(Path(first.target))
    size = target.header.file_size
    tile = (256, 256, target.header.block_len)
    tiles = [(part, sub) for part in unit.parts for sub in part.box.chunks(tile)]
    with _FileWriter(target, tuple(v // size for v in first.box.topleft)) as out:  # type: ignore[arg-type]

        def compute(item: tuple[DownsampleUnit, BoundingBox]):
            part, sub = item
            src = BoundingBox(
                tuple(a * f for a, f in zip(sub.topleft, part.factor)),  # type: ignore[arg-type]
                tuple(s * f for s, f in zip(sub.size, part.factor)),  # type: ignore[arg-type]
            )
            data = downsample_data(read_edge_padded(source, src, part.inside), part.factor, part.method)
            return sub, out.prepare(sub, data)

        for sub, prepared in bounded_map(compute, tiles, unit.threads):
            check_cancelled()
            out.store(sub, prepared)
        out.commit()


class _FileWriter:
    """Writes disjoint boxes into one WKW file: compressed files through a block writer renamed
    into place at :meth:`commit` (dropped when not committed), raw files in place.

    :meth:`read` and :meth:`prepare` (decode, encode) may run on any thread; :meth:`store`
    and :meth:`commit` on the unit's own.
    """

    def __init__(self, view: MagView, coords: tuple[int, int, int]) -> None:
        self.view = view
        self.header = view.header
        self.origin = tuple(c * self.header.file_size for c in coords)
        self.builder = None
        if self.header.compressed:
            self.builder = CompressedFileWriter(file_path(view.path, *coords), self.header)
        self.written = False

    def __enter__(self) -> _FileWriter:
        return self

    def __exit__(self, *exc) -> None:
        if self.builder is not None:
            self.builder.close()

    def read(self, box: BoundingBox) -> np.ndarray:
        """What the file holds in ``box`` (block-aligned for compressed files)."""
        if self.builder is None:
            return self.view.read(box)
        n = self.header.block_len
        out = np.zeros((*box.size[::-1], self.header.num_channels), self.header.dtype)
        for block in box.chunks((n, n, n)):
            bx, by, bz = ((a - o) // n for a, o in zip(block.topleft, self.origin))
            old = self.builder.old_block(bx, by, bz)
            if old is not None:
                out[block.zyx_slices(box.topleft)] = old
        return out[..., 0] if self.header.num_channels == 1 else out

    def prepare(self, box: BoundingBox, data: np.ndarray):
        """``data`` for ``box`` as it will be stored: encoded blocks, or the voxels of a raw file."""
        if self.builder is None:
            return data
        return self.view.encode_blocks(self.builder, box, data, self.origin)  # type: ignore[arg-type]

    def store(self, box: BoundingBox, prepared) -> None:
        self.written = True
        if self.builder is None:
            self.view.write(box.topleft, prepared)
            return
        for index, piece in prepared:
            self.builder.put_encoded(index, piece)

    def commit(self) -> bool:
        """Write the rebuilt file (compressed); whether anything was written."""
        if self.builder is not None and self.written:
            self.builder.write()
        return self.written


# ---- the annotation, once per process -------------------------------------------------------

_OPEN: OrderedDict[tuple[str, str], tuple[tuple[int, int], AnnotationVolume, Annotation | None]] = OrderedDict()
_LOCK = threading.Lock()


def _stamp(path: str) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_mtime_ns, info.st_size


def annotation_mag(path: str, volume: str):
    """Mag 1 of a volume of the annotation at ``path``: opened once per process and kept
    (the NML, the ZIP directories and the nested data ZIP's index take a while to read)."""
    key = (path, volume)
    stamp = _stamp(path)
    with _LOCK:
        hit = _OPEN.get(key)
        if hit is None or hit[0] != stamp:
            annotation = Annotation.open(path)
            _OPEN[key] = (stamp, annotation.volume(volume), annotation)
            while len(_OPEN) > _KEEP_OPEN:
                _, (_, _, owned) = _OPEN.popitem(last=False)
                if owned is not None:
                    owned.close()
            hit = _OPEN[key]
        _OPEN.move_to_end(key)
        return hit[1].layer.mags[MAG1]  # type: ignore[union-attr]


def _share(plan: _Plan) -> tuple[str, str]:
    """Let this process's units use the annotation the checks opened (it stays ours to close)."""
    key = (str(plan.annotation.path), plan.volume.volume_name)
    with _LOCK:
        _OPEN[key] = (_stamp(key[0]), plan.volume, None)
    return key


def _unshare(key: tuple[str, str]) -> None:
    with _LOCK:
        _OPEN.pop(key, None)


# ---- copying a layer for ``into`` -----------------------------------------------------------


def _copy_layer(layer: Layer, staging: Path) -> None:
    """The layer's mags (and other files) in ``staging``: compressed data files hard-linked,
    everything else copied. Merging replaces compressed files by rename (a new inode), so the
    original never changes; raw files are written in place, so they are copied."""
    staging.mkdir(parents=True)
    mag_folders = {view.path for view in layer.mags.values()}
    for mag, view in layer.mags.items():
        shutil.copytree(view.path, staging / mag.folder_name(), copy_function=_link_or_copy, ignore=_hidden)
    for child in layer.path.iterdir() if layer.path.is_dir() else []:
        if child in mag_folders or child.name.startswith(".") or (child / "header.wkw").is_file():
            continue
        if child.is_dir():
            shutil.copytree(child, staging / child.name, ignore=_hidden)
        else:
            shutil.copy2(child, staging / child.name)


def _hidden(folder: str, names: list[str]) -> list[str]:
    return [name for name in names if name.startswith(".")]


def _link_or_copy(source: str, target: str) -> str:
    if source.endswith(".wkw") and not source.endswith("header.wkw") and _is_compressed(source):
        try:
            os.link(source, target)
            return target
        except OSError:
            pass  # no hard links here (another file system, FAT ...): copy
    _copy_sparse(source, target)
    return target


def _is_compressed(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(6)
    return len(head) == 6 and head[5] != 1


def _copy_sparse(source: str, target: str) -> None:
    """Copy a file keeping its holes (raw WKW files are sparse: a copy must not fill them)."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        size = os.fstat(src.fileno()).st_size
        position = 0
        while position < size:
            try:
                start = os.lseek(src.fileno(), position, os.SEEK_DATA)
                end = os.lseek(src.fileno(), start, os.SEEK_HOLE)
            except OSError as error:
                if error.errno == errno.ENXIO:  # only a hole is left
                    break
                start, end = position, size  # no SEEK_DATA here: copy the rest
            except AttributeError:
                start, end = position, size
            while start < end:
                chunk = os.pread(src.fileno(), min(8 << 20, end - start), start)
                os.pwrite(dst.fileno(), chunk, start)
                start += len(chunk)
            position = end
        dst.truncate(size)
    shutil.copystat(source, target)
