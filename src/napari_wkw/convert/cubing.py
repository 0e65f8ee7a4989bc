"""Cubing: any :class:`VolumeSource` into the data files of one mag, file by file.

A work unit writes whole WKW files, each atomically (a hidden partial renamed into
place), so a killed run leaves only complete files and a rerun skips them. Sources
that decode whole slices anyway (JPEG, PNG, compressed TIFF ...) get one unit per
row of files, reading each slice once for all its files; sources that read any box
cheaply get one unit per file. Memory is one z-slab of the unit's region (``z_step``
slices) plus the encoded blocks not yet spilled to disk, whatever the depth.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.dataset import HEADER_FILE, MagView
from ..core.element_class import cast_checked
from ..core.geometry import BoundingBox, Vec3
from ..core.progress import check_cancelled
from ..core.staging import owner_tag
from ..core.threads import bounded_map
from ..core.wkw_file import CompressedFileWriter, file_path
from .source import VolumeSource

#: voxels one unit of a slice-decoding source holds per slab (its files' part of z_step slices)
SLAB_BYTES = 256 * 2**20
#: x/y edge of the pieces the threads of one unit encode at once (whole blocks)
ENCODE_TILE = 256


@dataclass(frozen=True)
class CubeUnit:
    """Some data files of one mag to fill from a source: paths, boxes and parameters."""

    source: VolumeSource
    mag_path: str
    boxes: tuple[BoundingBox, ...]  # target-mag voxels, one per data file, one file row
    offset: Vec3  # target-mag voxel where source voxel (0, 0, 0) lands
    dtype: str
    z_step: int  # slices read at once (whole blocks)
    threads: int = 1
    find_max: bool = False  # report the largest value (segmentation: largestSegmentId)


def plan_cube_units(
    source: VolumeSource,
    mag: MagView,
    offset: Vec3,
    dtype: np.dtype,
    *,
    z_step: int,
    workers: int,
    find_max: bool,
) -> list[CubeUnit]:
    """Units for the data files of ``mag`` the source covers and that do not exist yet;
    files the source certainly has nothing for (no tile, no cube) are not written."""
    size = mag.header.file_size
    block = mag.header.block_len
    z_step = max(block, -(-z_step // block) * block)
    layer_box = BoundingBox(tuple(offset), tuple(source.size))  # type: ignore[arg-type]
    missing = [
        box
        for box in layer_box.chunks((size,) * 3)
        if not file_path(mag.path, *(a // size for a in box.topleft)).exists()
        and source.has_data(BoundingBox(tuple(a - o for a, o in zip(box.topleft, offset)), box.size))  # type: ignore[arg-type]
    ]
    if source.croppable:
        groups = [[box] for box in missing]
    else:
        rows: dict[int, list[BoundingBox]] = {}
        for box in missing:
            rows.setdefault(box.topleft[2] // size, []).append(box)
        # as many files as fit SLAB_BYTES: wider slices are decoded once per group of files
        per_file = size * size * z_step * np.dtype(dtype).itemsize * source.num_channels
        count = max(1, SLAB_BYTES // per_file)
        groups = [row[start : start + count] for row in rows.values() for start in range(0, len(row), count)]
    threads = max(1, workers // max(1, len(groups)))
    return [
        CubeUnit(source, str(mag.path), tuple(group), tuple(offset), np.dtype(dtype).str, z_step, threads, find_max)  # type: ignore[arg-type]
        for group in groups
    ]


def cube_unit(unit: CubeUnit) -> int | float | None:
    """Write the unit's files; returns the largest value written if ``find_max``."""
    view = MagView.at(Path(unit.mag_path))
    region = unit.boxes[0]
    for box in unit.boxes[1:]:
        region = region.union(box)
    sinks = [_sink(view, box) for box in unit.boxes]
    largest = None
    try:
        for tile in _z_slabs(region, unit.z_step):
            check_cancelled()
            data = _read(unit, tile)
            if unit.find_max and data.size:
                top = data.max().item()
                largest = top if largest is None else max(largest, top)
            for sink in sinks:
                part = tile.intersection(sink.box)
                if not part.is_empty:
                    sink.put(part, data[part.zyx_slices(tile.topleft)], unit.threads)
            del data  # before the next slab is read: one slab in memory, not two
        for sink in sinks:
            check_cancelled()
            sink.commit()
    finally:
        for sink in sinks:
            sink.close()
    return largest


def largest_in_file(unit: tuple[str, BoundingBox]) -> int | float | None:
    """The largest value in ``(mag path, box)``, a box inside one data file; None if empty."""
    view = MagView.at(Path(unit[0]))
    top = None
    for box in unit[1].chunks((view.header.file_size, view.header.file_size, view.header.block_len)):
        check_cancelled()
        data = view.read(box)
        top = data.max().item() if top is None else max(top, data.max().item())
    return top


def _z_slabs(region: BoundingBox, z_step: int) -> Iterator[BoundingBox]:
    """``region`` cut along z on the ``z_step`` grid (so every block lies in one slab)."""
    x, y, z = region.topleft
    stop = region.bottomright[2]
    while z < stop:
        end = min(stop, (z // z_step + 1) * z_step)
        yield BoundingBox((x, y, z), (region.size[0], region.size[1], end - z))
        z = end


def _read(unit: CubeUnit, tile: BoundingBox) -> np.ndarray:
    """The tile's voxels from the source, slice by slice on the unit's threads, as ``dtype``."""
    dtype = np.dtype(unit.dtype)
    source_box = BoundingBox(tuple(a - o for a, o in zip(tile.topleft, unit.offset)), tile.size)  # type: ignore[arg-type]
    if unit.threads == 1:
        return cast_checked(np.asarray(unit.source.read(source_box)), dtype, unit.source.description)
    out = np.empty(unit.source.array_shape(source_box), dtype)
    (x, y, z), (width, height, depth) = source_box.topleft, source_box.size
    slices = [BoundingBox((x, y, z + i), (width, height, 1)) for i in range(depth)]

    def read_slice(box: BoundingBox) -> None:
        data = np.asarray(unit.source.read(box))
        out[box.topleft[2] - source_box.topleft[2]] = cast_checked(data, dtype, unit.source.description)[0]

    for _ in bounded_map(read_slice, slices, unit.threads):
        pass
    return out


class _CompressedSink:
    """One LZ4 data file, assembled from encoded blocks and renamed into place at the end."""

    def __init__(self, view: MagView, box: BoundingBox) -> None:
        self.view = view
        self.box = box
        size = view.header.file_size
        self.origin = tuple(a // size * size for a in box.topleft)
        path = file_path(view.path, *(a // size for a in box.topleft))
        self.writer = CompressedFileWriter(path, view.header)

    def put(self, part: BoundingBox, data: np.ndarray, threads: int) -> None:
        step = (max(ENCODE_TILE, self.view.header.block_len),) * 2 + (self.view.header.file_size,)

        def encode(piece: BoundingBox) -> list[tuple[int, bytes]]:
            return self.view.encode_blocks(self.writer, piece, data[piece.zyx_slices(part.topleft)], self.origin)  # type: ignore[arg-type]

        for encoded in bounded_map(encode, part.chunks(step), threads):  # type: ignore[arg-type]
            for index, piece in encoded:
                self.writer.put_encoded(index, piece)

    def commit(self) -> None:
        self.writer.write()

    def close(self) -> None:
        self.writer.close()


class _RawSink:
    """One raw data file, written by libwkw into a hidden private mag and renamed into place."""

    def __init__(self, view: MagView, box: BoundingBox) -> None:
        self.box = box
        size = view.header.file_size
        self.coords = tuple(a // size for a in box.topleft)
        self.target = file_path(view.path, *self.coords)  # type: ignore[arg-type]
        fx, fy, fz = self.coords
        self.private = view.path / f".x{fx}y{fy}z{fz}.partial-{owner_tag()}"
        shutil.rmtree(self.private, ignore_errors=True)
        self.private.mkdir()
        shutil.copyfile(view.path / HEADER_FILE, self.private / HEADER_FILE)
        self.view = MagView.at(self.private)

    def put(self, part: BoundingBox, data: np.ndarray, threads: int) -> None:
        self.view.write(part.topleft, data)

    def commit(self) -> None:
        written = file_path(self.private, *self.coords)  # type: ignore[arg-type]
        self.target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(written, self.target)

    def close(self) -> None:
        shutil.rmtree(self.private, ignore_errors=True)


def _sink(view: MagView, box: BoundingBox) -> _CompressedSink | _RawSink:
    return _CompressedSink(view, box) if view.header.compressed else _RawSink(view, box)
