"""Cubing: any :class:`VolumeSource` into the data files of one mag, file by file, and
the finer mags of the pyramid from the same slabs (one pass).

A work unit writes whole WKW files, each atomically (a hidden partial renamed into
place), so a killed run leaves only complete files and a rerun skips them. Sources
that decode whole slices anyway (JPEG, PNG, compressed TIFF ...) get one unit per
row of files, reading each slice once for all its files; sources that read any box
cheaply get one unit per file. Memory is one z-slab of the unit's region (``z_step``
slices) plus the encoded blocks not yet spilled to disk, whatever the depth.

**One pass.** With ``levels``, a unit also downsamples each slab it holds into the
pyramid's finer mags (2-2-1, 4-4-2 ... as long as a block of the mag covers no more
than one data file of the cubed mag), level by level as :mod:`core.downsample` builds
them from the previous mag: the same filter, the same edge padding at the layer's box,
so the same voxels. Each level keeps the slices it has not downsampled yet (a 4-4-2
block layer needs 64 slices of 2-2-1, 128 of mag 1), as ``core/annotation_write.py``
streams its mags. A coarse file gathers blocks of several data files (its x/y spans
several), so the unit does not write coarse files: it appends its encoded blocks to a
**piece** per data file (``PIECES/z*/y*/x*.blocks``: the blocks, then a table of
(level, coarse file, Morton index, offset, length)), renamed into place with the data
file. Once every unit is done, :func:`assemble_file` writes each coarse file whole from
the pieces' bytes, nothing decoded, in one cheap unit per file.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lz4.block
import numpy as np

from ..core.dataset import HEADER_FILE, MagView
from ..core.downsample import downsample_data
from ..core.element_class import cast_checked
from ..core.errors import DatasetFormatError, naming
from ..core.geometry import BoundingBox, Mag, Vec3
from ..core.progress import check_cancelled
from ..core.staging import left_by_dead_process, owner_tag
from ..core.threads import bounded_map
from ..core.wkw_file import (
    HEADER_SIZE,
    SPILL_BYTES,
    WKWHeader,
    file_path,
    morton_table,
    split_blocks,
)
from .source import VolumeSource

#: voxels one unit of a slice-decoding source holds per slab (its files' part of z_step slices)
SLAB_BYTES = 256 * 2**20
#: x/y edge of the pieces the threads of one unit encode at once (whole blocks)
ENCODE_TILE = 256
#: source bytes downsampled at once: the filters' temporaries then stay in the cache
BAND_BYTES = 2 * 2**20
#: the end of a piece file: magic, offset of its table, rows in the table
_PIECE_MAGIC = b"NWKWPCS1"
_PIECE_FOOTER = struct.Struct("<8sqq")
#: columns of a piece's table: level, coarse file x/y/z, Morton index, offset, length
_PIECE_COLUMNS = 7
#: buffers written by one system call (the POSIX minimum of IOV_MAX)
_IOV_MAX = 1024
#: bytes gathered before one write when assembling a file
_ASSEMBLE_CHUNK = 8 * 2**20


@dataclass(frozen=True)
class PassLevel:
    """A mag built while cubing, from the level before it (the cubed mag first)."""

    mag: Mag
    factor: Vec3  # this mag / the previous level's, per axis
    inside: BoundingBox  # the layer in this mag's voxels: beyond it, groups repeat edge voxels
    file_len: int  # blocks per edge of this mag's files


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
    levels: tuple[PassLevel, ...] = ()  # mags to build in the same pass (into pieces)
    method: str = "median"  # their filter
    pieces: str = ""  # folder of the pieces
    write: tuple[bool, ...] = ()  # per box: write its data file [default: every one]
    pyramid: tuple[bool, ...] = ()  # per box: write its piece [default: every one, with levels]


def plan_cube_units(
    source: VolumeSource,
    mag: MagView,
    offset: Vec3,
    dtype: np.dtype,
    *,
    z_step: int,
    workers: int,
    find_max: bool,
    levels: tuple[PassLevel, ...] = (),
    method: str = "median",
    pieces: str | os.PathLike | None = None,
) -> list[CubeUnit]:
    """Units for the data files of ``mag`` the source covers and that do not exist yet (or,
    with ``levels``, whose piece does not); files the source certainly has nothing for (no
    tile, no cube) are not written, nor their pieces (their coarse blocks are zeros)."""
    size = mag.header.file_size
    block = mag.header.block_len
    z_step = max(block, -(-z_step // block) * block)
    layer_box = BoundingBox(tuple(offset), tuple(source.size))  # type: ignore[arg-type]
    missing = []
    for box in layer_box.chunks((size,) * 3):
        coords = tuple(a // size for a in box.topleft)
        write = not file_path(mag.path, *coords).exists()  # type: ignore[arg-type]
        pyramid = bool(levels) and not piece_path(pieces, coords).exists()  # type: ignore[arg-type]
        if (write or pyramid) and source.has_data(
            BoundingBox(tuple(a - o for a, o in zip(box.topleft, offset)), box.size)  # type: ignore[arg-type]
        ):
            missing.append((box, write, pyramid))
    if source.croppable:
        groups = [[item] for item in missing]
    else:
        rows: dict[int, list] = {}
        for item in missing:
            rows.setdefault(item[0].topleft[2] // size, []).append(item)
        # as many files as fit SLAB_BYTES: wider slices are decoded once per group of files
        per_file = size * size * z_step * np.dtype(dtype).itemsize * source.num_channels
        count = max(1, SLAB_BYTES // per_file)
        groups = [row[start : start + count] for row in rows.values() for start in range(0, len(row), count)]
    threads = max(1, workers // max(1, len(groups)))
    return [
        CubeUnit(
            source,
            str(mag.path),
            tuple(item[0] for item in group),
            tuple(offset),  # type: ignore[arg-type]
            np.dtype(dtype).str,
            z_step,
            threads,
            find_max,
            tuple(levels),
            method,
            str(pieces or ""),
            tuple(item[1] for item in group),
            tuple(item[2] for item in group),
        )
        for group in groups
    ]


def cube_unit(unit: CubeUnit) -> int | float | None:
    """Write the unit's files (and pieces); returns the largest value written if ``find_max``."""
    view = MagView.at(Path(unit.mag_path))
    region = unit.boxes[0]
    for box in unit.boxes[1:]:
        region = region.union(box)
    write = unit.write or (True,) * len(unit.boxes)
    pyramid = unit.pyramid or (bool(unit.levels),) * len(unit.boxes)
    sinks: list = []
    builders: list = []
    largest = None
    try:
        for box, writes, builds in zip(unit.boxes, write, pyramid):
            sinks.append(_sink(view, box) if writes else None)
            builders.append(_Pyramid(unit, view.header, box) if builds and unit.levels else None)
        for tile in _z_slabs(region, unit.z_step):
            check_cancelled()
            data = _read(unit, tile)
            if unit.find_max and data.size:
                top = data.max().item()
                largest = top if largest is None else max(largest, top)
            jobs = [
                (sink, builder, part)
                for sink, builder, box in zip(sinks, builders, unit.boxes)
                if not (part := tile.intersection(box)).is_empty and (sink is not None or builder is not None)
            ]
            # the unit's threads go to its files when it has several, else inside the one file
            inner = max(1, unit.threads // max(1, len(jobs)))

            def fill(job, data=data, tile=tile, inner=inner) -> None:
                sink, builder, part = job
                piece = data[part.zyx_slices(tile.topleft)]
                if sink is not None:
                    sink.put(part, piece, inner)
                if builder is not None:
                    builder.feed(0, part.topleft[2], piece, inner)

            for _ in bounded_map(fill, jobs, min(unit.threads, len(jobs))):
                pass
            del data, fill  # before the next slab is read: one slab in memory, not two
        # pieces before data files: a kill between leaves data files missing, which the rerun writes
        for builder in builders:
            if builder is not None:
                check_cancelled()
                builder.commit()
        for sink in sinks:
            if sink is not None:
                check_cancelled()
                sink.commit()
    finally:
        for item in sinks + builders:
            if item is not None:
                item.close()
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
        self.writer = _BlockFile(path, view.header)

    def put(self, part: BoundingBox, data: np.ndarray, threads: int) -> None:
        header = self.view.header
        step = (max(ENCODE_TILE, header.block_len),) * 2 + (header.file_size,)
        morton = morton_table(header.file_len)
        data4 = data if data.ndim == 4 else data[..., None]

        def encode(tile: BoundingBox) -> list[tuple[int, bytes]]:
            return _encode_tile(data4[tile.zyx_slices(part.topleft)], tile, self.origin, header.block_len, morton)  # type: ignore[arg-type]

        for encoded in bounded_map(encode, part.chunks(step), threads):  # type: ignore[arg-type]
            self.writer.add(encoded)

    def commit(self) -> None:
        self.writer.write()

    def close(self) -> None:
        self.writer.close()


class _BlockFile:
    """The encoded blocks of one new compressed data file, written whole in Morton order.

    Like ``CompressedFileWriter`` for a file that does not exist yet, with cheaper spilling:
    blocks are held up to ``SPILL_BYTES``, then appended to a hidden spill file one batch per
    system call; the file is written with ``writev`` from the held blocks and the spill file's
    memory map (each block copied once, by the kernel)."""

    def __init__(self, path: Path, header: WKWHeader, spill_bytes: int = SPILL_BYTES) -> None:
        self.path = path
        self.header = header
        self.spill_bytes = spill_bytes
        self.held: dict[int, bytes] = {}
        self.held_bytes = 0
        self.spilled: dict[int, tuple[int, int]] = {}
        self.spill: int | None = None  # file descriptor
        self.spill_path = path.with_name(f".{path.name}.{owner_tag()}.spill")
        self.end = 0

    def add(self, encoded: list[tuple[int, bytes]]) -> None:
        for index, _ in encoded:
            if index in self.held or index in self.spilled:
                raise RuntimeError(f"{self.path}: block {index} given twice")
        if self.spill is None:
            self.held.update(encoded)
            self.held_bytes += sum(len(piece) for _, piece in encoded)
            if self.held_bytes > self.spill_bytes:
                self._spill(sorted(self.held.items()))
                self.held, self.held_bytes = {}, 0
        else:
            self._spill(encoded)

    def _spill(self, encoded: list[tuple[int, bytes]]) -> None:
        try:
            if self.spill is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.spill = os.open(self.spill_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            for start in range(0, len(encoded), _IOV_MAX):
                batch = encoded[start : start + _IOV_MAX]
                _write_all(self.spill, [piece for _, piece in batch])
                for index, piece in batch:
                    self.spilled[index] = (self.end, len(piece))
                    self.end += len(piece)
        except OSError as error:
            raise naming(error, self.spill_path) from None

    def write(self) -> None:
        """Header, jump table and blocks (zeros where none was given) to a hidden partial,
        renamed into place."""
        count = self.header.file_len**3
        data_offset = HEADER_SIZE + 8 * count
        n = self.header.block_len
        zero = lz4.block.compress(bytes(n**3 * self.header.voxel_bytes), store_size=False)
        sizes = np.full(count, len(zero), np.int64)
        for index, piece in self.held.items():
            sizes[index] = len(piece)
        for index, (_, length) in self.spilled.items():
            sizes[index] = length
        ends = (data_offset + np.cumsum(sizes)).astype("<u8")
        given = sorted(set(self.held) | set(self.spilled))
        partial = self.path.with_name(f".{self.path.name}.{owner_tag()}.partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            out = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            mapping = mmap.mmap(self.spill, 0, access=mmap.ACCESS_READ) if self.spill is not None else None
            spilled = memoryview(mapping) if mapping is not None else None
            pending: list = [self.header.to_bytes(data_offset), ends.tobytes()]
            try:
                held = 0
                previous = -1
                for index in given + [count]:
                    if index > previous + 1:
                        pending.append(zero * (index - previous - 1))
                    if index == count:
                        break
                    if index in self.held:
                        pending.append(self.held[index])
                    else:
                        offset, length = self.spilled[index]
                        pending.append(spilled[offset : offset + length])  # type: ignore[index]
                        held += length
                    previous = index
                    if len(pending) >= _IOV_MAX or held >= _ASSEMBLE_CHUNK:
                        _write_all(out, pending)
                        pending, held = [], 0
                        if mapping is not None:  # the pages read so far leave this process' memory
                            mapping.madvise(mmap.MADV_DONTNEED)
                _write_all(out, pending)
            finally:
                os.close(out)
                pending.clear()
                if spilled is not None:
                    spilled.release()
                    with contextlib.suppress(BufferError):  # views still held by a traceback: closed when freed
                        mapping.close()  # type: ignore[union-attr]
            os.replace(partial, self.path)
        except OSError as error:
            raise naming(error, self.path) from None
        finally:
            partial.unlink(missing_ok=True)
            self.close()

    def close(self) -> None:
        if self.spill is not None:
            os.close(self.spill)
            self.spill = None
            self.spill_path.unlink(missing_ok=True)


def _write_all(fd: int, pieces: list[bytes]) -> None:
    """Write ``pieces`` in order with as few system calls as the kernel allows."""
    while pieces:
        batch = pieces[:_IOV_MAX]
        written = os.writev(fd, batch)
        total = sum(len(piece) for piece in batch)
        if written == total:
            pieces = pieces[_IOV_MAX:]
            continue
        rest, skip = [], written  # a short write: go on from the first byte not written
        for piece in pieces:
            if skip >= len(piece):
                skip -= len(piece)
                continue
            rest.append(memoryview(piece)[skip:])
            skip = 0
        pieces = rest  # type: ignore[assignment]


def _encode_tile(data4: np.ndarray, tile: BoundingBox, origin: Vec3, n: int, morton: np.ndarray) -> list:
    """LZ4 blocks (Morton index, bytes) of a (z, y, x, c) tile of a new file whose corner is at
    ``origin``: partly covered blocks hold zeros beyond the tile, as a new file written tile
    by tile holds them (its blocks have no old content to merge)."""
    aligned = tile.aligned((n, n, n))
    if aligned != tile:
        full = np.zeros((aligned.size[2], aligned.size[1], aligned.size[0], data4.shape[3]), data4.dtype)
        full[tile.zyx_slices(aligned.topleft)] = data4
        data4 = full
    blocks = split_blocks(data4 if data4[0, 0].flags.c_contiguous else np.ascontiguousarray(data4), n)
    bx, by, bz = ((a - o) // n for a, o in zip(aligned.topleft, origin))
    indices = morton[bz : bz + blocks.shape[0], by : by + blocks.shape[1], bx : bx + blocks.shape[2]]
    return [
        (index, lz4.block.compress(memoryview(block).cast("B"), store_size=False))
        for index, block in zip(indices.ravel().tolist(), blocks.reshape(-1))
    ]


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


# ----------------------------------------------------------------------------- one pass


def piece_path(pieces: str | os.PathLike | None, coords: tuple[int, ...]) -> Path:
    """The piece of the data file with file coordinates ``coords`` (x, y, z)."""
    fx, fy, fz = coords
    return Path(pieces or ".") / f"z{fz}" / f"y{fy}" / f"x{fx}.blocks"


def remove_abandoned_pieces(pieces: str | os.PathLike) -> None:
    """Remove the partial pieces that killed runs of this host left (their process is gone)."""
    for partial in Path(pieces).glob("z*/y*/.x*.blocks.*.partial"):
        if left_by_dead_process(partial):
            partial.unlink(missing_ok=True)


class _Pyramid:
    """The one-pass mags of one data file of a unit: each level keeps the slices it has not
    downsampled yet and hands every finished block layer to the next level and to the piece.

    Level ``k`` covers ``boxes[k]``: the data file's footprint in that mag, cut to the layer
    (``insides[k]``). A block layer of level ``k + 1`` is computed as soon as the slices of
    level ``k`` it needs are there: its groups, with voxels beyond the layer's box repeating
    the nearest voxel inside (``read_edge_padded``), through ``downsample_data``.
    """

    def __init__(self, unit: CubeUnit, header: WKWHeader, box: BoundingBox) -> None:
        size = header.file_size
        self.n = header.block_len
        self.header = header
        self.levels = unit.levels
        self.method = unit.method
        coords = tuple(a // size for a in box.topleft)
        full = BoundingBox(tuple(c * size for c in coords), (size,) * 3)  # type: ignore[arg-type]
        self.insides = [BoundingBox(tuple(unit.offset), tuple(unit.source.size))]  # type: ignore[arg-type]
        self.boxes = [box]
        scale = (1, 1, 1)
        for level in unit.levels:
            scale = tuple(s * f for s, f in zip(scale, level.factor))  # type: ignore[assignment]
            footprint = BoundingBox(
                tuple(a // s for a, s in zip(full.topleft, scale)),  # type: ignore[arg-type]
                tuple(size // s for s in scale),  # type: ignore[arg-type]
            )
            self.insides.append(level.inside)
            self.boxes.append(footprint.intersection(level.inside))
        self.next_z = [b.topleft[2] for b in self.boxes]  # per level: the next block layer to compute
        self.held: list[list[tuple[int, np.ndarray]]] = [[] for _ in self.boxes]  # (z, slices) per level
        self.writer = _PieceWriter(piece_path(unit.pieces, coords))  # type: ignore[arg-type]

    def feed(self, k: int, z: int, data: np.ndarray, threads: int) -> None:
        """Slices ``z ...`` of level ``k`` (all of ``boxes[k]`` in x and y): compute what they
        complete of the coarser levels."""
        if k + 1 == len(self.boxes):
            return
        self.held[k].append((z, data))
        source, target = self.boxes[k], self.boxes[k + 1]
        fz = self.levels[k].factor[2]
        while self.next_z[k + 1] < target.bottomright[2]:
            start = self.next_z[k + 1]
            stop = min((start // self.n + 1) * self.n, target.bottomright[2])
            needed = min(stop * fz, source.bottomright[2])  # of level k, to the layer's end
            if not self.held[k] or self.held[k][-1][0] + len(self.held[k][-1][1]) < needed:
                return
            layer = BoundingBox(
                (target.topleft[0], target.topleft[1], start), (target.size[0], target.size[1], stop - start)
            )
            down = self._downsample(k, layer, threads)
            self.held[k] = [(hz, held) for hz, held in self.held[k] if hz + len(held) > needed]
            self.next_z[k + 1] = stop
            self._encode(k + 1, layer, down, threads)
            self.feed(k + 1, start, down, threads)

    def _downsample(self, k: int, layer: BoundingBox, threads: int) -> np.ndarray:
        """Level ``k + 1`` in ``layer`` (one block layer deep) from the held slices of level ``k``,
        in bands of rows small enough for the filters' temporaries to stay in the cache (2x
        faster than whole layers), spread over ``threads``."""
        factor = self.levels[k].factor
        sample = self.held[k][0][1]
        shape = (layer.size[2], layer.size[1], layer.size[0]) + sample.shape[3:]
        out = np.empty(shape, sample.dtype)
        row_bytes = layer.size[0] * layer.size[2] * int(np.prod(factor)) * sample.itemsize * int(np.prod(shape[3:]))
        rows = max(1, min(layer.size[1], BAND_BYTES // max(1, row_bytes)))
        edges = list(range(layer.topleft[1], layer.bottomright[1], rows)) + [layer.bottomright[1]]

        def band(i: int) -> None:
            part = BoundingBox(
                (layer.topleft[0], edges[i], layer.topleft[2]), (layer.size[0], edges[i + 1] - edges[i], layer.size[2])
            )
            wanted = BoundingBox(
                tuple(a * f for a, f in zip(part.topleft, factor)),  # type: ignore[arg-type]
                tuple(s * f for s, f in zip(part.size, factor)),  # type: ignore[arg-type]
            )
            inner = wanted.intersection(self.insides[k])
            data = self._held(k, inner)
            if inner != wanted:
                pad = [
                    (a - b, d - c)
                    for a, b, c, d in zip(inner.topleft, wanted.topleft, inner.bottomright, wanted.bottomright)
                ]
                data = np.pad(data, pad[::-1] + [(0, 0)] * (data.ndim - 3), mode="edge")
            out[:, edges[i] - edges[0] : edges[i + 1] - edges[0]] = downsample_data(data, factor, self.method)

        for _ in bounded_map(band, range(len(edges) - 1), threads if len(edges) > 2 else 1):
            pass
        return out

    def _held(self, k: int, box: BoundingBox) -> np.ndarray:
        """The held voxels of level ``k`` in ``box`` (inside ``boxes[k]``)."""
        x0, y0, _ = self.boxes[k].topleft
        (bx, by, bz), (sx, sy, sz) = box.topleft, box.size
        parts = []
        for z, held in self.held[k]:
            low, high = max(bz, z), min(bz + sz, z + len(held))
            if low < high:
                parts.append(held[low - z : high - z, by - y0 : by - y0 + sy, bx - x0 : bx - x0 + sx])
        if sum(len(part) for part in parts) != sz:  # a bug, never the input
            raise RuntimeError(f"one-pass cubing: slices {bz}..{bz + sz} of level {k} are not held")
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _encode(self, k: int, layer: BoundingBox, data: np.ndarray, threads: int) -> None:
        """The blocks of level ``k`` in ``layer`` into the piece, tile by tile."""
        size = self.n * self.levels[k - 1].file_len
        coords = tuple(a // size for a in layer.topleft)
        origin = tuple(c * size for c in coords)
        morton = morton_table(self.levels[k - 1].file_len)
        data4 = data if data.ndim == 4 else data[..., None]
        step = (max(ENCODE_TILE, self.n), max(ENCODE_TILE, self.n), size)

        def encode(tile: BoundingBox) -> list[tuple[int, bytes]]:
            return _encode_tile(data4[tile.zyx_slices(layer.topleft)], tile, origin, self.n, morton)  # type: ignore[arg-type]

        for encoded in bounded_map(encode, layer.chunks(step), threads):  # type: ignore[arg-type]
            self.writer.add(k, coords, encoded)  # type: ignore[arg-type]

    def commit(self) -> None:
        unfinished = [
            self.levels[k - 1].mag for k in range(1, len(self.boxes)) if self.next_z[k] < self.boxes[k].bottomright[2]
        ]
        if unfinished:  # a bug, never the input: say so rather than leave zeros
            raise RuntimeError(f"one-pass cubing left mag {unfinished[0]} of {self.writer.path} unfinished")
        self.writer.commit()

    def close(self) -> None:
        self.writer.close()


class _PieceWriter:
    """One piece: encoded blocks appended as they come, the table at the end, renamed into place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.name}.{owner_tag()}.partial")
        self.rows: list[tuple[int, ...]] = []
        self.position = 0
        self.fd: int | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as error:
            raise naming(error, self.partial) from None

    def add(self, level: int, coords: Vec3, encoded: list[tuple[int, bytes]]) -> None:
        for index, piece in encoded:
            self.rows.append((level, *coords, index, self.position, len(piece)))
            self.position += len(piece)
        try:
            _write_all(self.fd, [piece for _, piece in encoded])  # type: ignore[arg-type]
        except OSError as error:
            raise naming(error, self.partial) from None

    def commit(self) -> None:
        table = np.array(self.rows, "<i8").reshape(-1, _PIECE_COLUMNS)
        try:
            _write_all(self.fd, [table.tobytes(), _PIECE_FOOTER.pack(_PIECE_MAGIC, self.position, len(table))])  # type: ignore[arg-type]
            os.close(self.fd)  # type: ignore[arg-type]
            self.fd = None
            os.replace(self.partial, self.path)
        except OSError as error:
            raise naming(error, self.path) from None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.partial.unlink(missing_ok=True)


def piece_table(path: Path) -> np.ndarray:
    """The table of a piece: rows of (level, coarse file x, y, z, Morton index, offset, length)."""
    try:
        with open(path, "rb") as f:
            length = os.fstat(f.fileno()).st_size
            if length < _PIECE_FOOTER.size:
                raise DatasetFormatError(f"{path}: piece is truncated")
            f.seek(length - _PIECE_FOOTER.size)
            magic, offset, rows = _PIECE_FOOTER.unpack(f.read(_PIECE_FOOTER.size))
            if magic != _PIECE_MAGIC or offset + rows * 8 * _PIECE_COLUMNS + _PIECE_FOOTER.size != length:
                raise DatasetFormatError(f"{path}: piece is truncated or corrupt")
            f.seek(offset)
            return np.frombuffer(f.read(rows * 8 * _PIECE_COLUMNS), "<i8").reshape(rows, _PIECE_COLUMNS)
    except OSError as error:
        raise DatasetFormatError(f"{path}: cannot read piece ({error.strerror})") from None


@dataclass(frozen=True)
class AssembleUnit:
    """One file of a one-pass mag, to write from the blocks in ``pieces``."""

    mag_path: str  # the mag's folder, with its header.wkw
    level: int  # the mag's level in the pieces' tables (1: the first after the cubed mag)
    coords: Vec3  # the file's coordinates
    pieces: tuple[str, ...]  # pieces that may hold blocks of it


def assemble_file(unit: AssembleUnit) -> None:
    """Write one file of a one-pass mag from encoded blocks, atomically; missing blocks are
    zeros (as in a file written tile by tile, whose blocks beyond the layer are zeros)."""
    mag_path = Path(unit.mag_path)
    header = WKWHeader.read(mag_path / HEADER_FILE)
    count = header.file_len**3
    data_offset = HEADER_SIZE + 8 * count
    handles, owner, offsets, lengths, indices = [], [], [], [], []
    target = file_path(mag_path, *unit.coords)
    partial = target.with_name(f".{target.name}.{owner_tag()}.partial")
    try:
        for path in unit.pieces:
            table = piece_table(Path(path))
            mine = table[
                (table[:, 0] == unit.level)
                & (table[:, 1] == unit.coords[0])
                & (table[:, 2] == unit.coords[1])
                & (table[:, 3] == unit.coords[2])
            ]
            limit = os.stat(path).st_size - _PIECE_FOOTER.size - 8 * _PIECE_COLUMNS * len(table)
            if np.any(mine[:, 5] < 0) or np.any(mine[:, 6] < 0) or np.any(mine[:, 5] + mine[:, 6] > limit):
                raise DatasetFormatError(f"{path}: piece is truncated or corrupt")
            if len(mine):
                handles.append(open(path, "rb"))  # noqa: SIM115 - closed below
                owner.append(np.full(len(mine), len(handles) - 1))
                indices.append(mine[:, 4])
                offsets.append(mine[:, 5])
                lengths.append(mine[:, 6])
        n = header.block_len
        zero = lz4.block.compress(bytes(n**3 * header.voxel_bytes), store_size=False)
        sizes = np.full(count, len(zero), np.int64)
        given = np.concatenate(indices) if indices else np.zeros(0, np.int64)
        if len(np.unique(given)) != len(given) or (len(given) and (given.min() < 0 or given.max() >= count)):
            raise DatasetFormatError(f"{target}: the pieces of this file overlap or do not fit it")
        order = np.argsort(given)
        given = given[order]
        sources = np.concatenate(owner)[order] if owner else given
        starts = np.concatenate(offsets)[order] if offsets else given
        ends_given = np.concatenate(lengths)[order] if lengths else given
        sizes[given] = ends_given
        ends = (data_offset + np.cumsum(sizes)).astype("<u8")
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as out:
            out.write(header.to_bytes(data_offset))
            out.write(ends.tobytes())
            chunk: list[bytes] = []
            held = 0
            previous = -1
            for index, source, start, length in zip(
                given.tolist(), sources.tolist(), starts.tolist(), ends_given.tolist()
            ):
                if index > previous + 1:
                    chunk.append(zero * (index - previous - 1))
                    held += len(zero) * (index - previous - 1)
                piece = os.pread(handles[source].fileno(), length, start)
                if len(piece) != length:
                    raise DatasetFormatError(f"{unit.pieces[source]}: piece is truncated")
                chunk.append(piece)
                held += length
                previous = index
                if held >= _ASSEMBLE_CHUNK:
                    check_cancelled()
                    out.write(b"".join(chunk))
                    chunk, held = [], 0
            if previous + 1 < count:
                chunk.append(zero * (count - previous - 1))
            out.write(b"".join(chunk))
        os.replace(partial, target)
    except OSError as error:
        raise naming(error, target) from None
    finally:
        for handle in handles:
            handle.close()
        partial.unlink(missing_ok=True)


def plan_assembly(
    mag: MagView, offset: Vec3, size: Vec3, levels: tuple[PassLevel, ...], folders: dict[int, Path], pieces: Path
) -> list[AssembleUnit]:
    """Units for the files not written yet of the one-pass mags in ``folders`` (level -> the
    folder it is assembled in; levels count from 1, the first mag after the cubed one)."""
    base = mag.header.file_size
    layer_box = BoundingBox(tuple(offset), tuple(size))  # type: ignore[arg-type]
    units = []
    scale = (1, 1, 1)
    for k, level in enumerate(levels, 1):
        scale = tuple(s * f for s, f in zip(scale, level.factor))  # type: ignore[assignment]
        folder = folders.get(k)
        if folder is None:
            continue
        edge = mag.header.block_len * level.file_len
        for box in level.inside.chunks((edge,) * 3):
            coords = tuple(a // edge for a in box.topleft)
            if file_path(folder, *coords).exists():  # type: ignore[arg-type]
                continue
            footprint = BoundingBox(
                tuple(a * s for a, s in zip(box.topleft, scale)),  # type: ignore[arg-type]
                tuple(e * s for e, s in zip(box.size, scale)),  # type: ignore[arg-type]
            ).intersection(layer_box)
            found = [
                piece_path(pieces, tuple(a // base for a in part.topleft)) for part in footprint.chunks((base,) * 3)
            ]
            units.append(AssembleUnit(str(folder), k, coords, tuple(str(p) for p in found if p.exists())))  # type: ignore[arg-type]
    return units
