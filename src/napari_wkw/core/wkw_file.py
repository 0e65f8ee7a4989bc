"""The WKW file format at the byte level: headers and compressed files.

Reading goes through the reference library ``wkw`` (libwkw). Writing compressed
files does not: libwkw can only write a compressed file as a whole, from one
in-memory array of the full file (1024^3 voxels at the default file length). Here
compressed files are assembled block by block (LZ4 blocks in Morton order behind
a jump table, as the format specifies), so memory stays at one tile plus the
compressed bytes of one file, and unchanged blocks of an existing file are copied
without decoding. Files are written beside their target and renamed into place.
"""

from __future__ import annotations

import errno
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import lz4.block
import numpy as np

from .element_class import WKW_DTYPES
from .errors import DatasetFormatError, naming
from .progress import check_cancelled
from .staging import owner_tag

HEADER_SIZE = 16
MAGIC = b"WKW"
BLOCK_RAW, BLOCK_LZ4, BLOCK_LZ4HC = 1, 2, 3
_LZ4_MODES = {BLOCK_LZ4: "default", BLOCK_LZ4HC: "high_compression"}
#: compressed bytes of one file held in memory before they go to a spill file (small, so
#: memory stays flat in the data's depth; the spill lives in the page cache anyway)
SPILL_BYTES = 8 * 2**20
#: raw bytes read and compressed per task when compressing a raw file
GROUP_BYTES = 8 * 2**20
#: headers declaring larger blocks (bytes) or longer files (blocks per edge) are refused:
#: libwkw allocates a block and a file's jump table (8 bytes a block) whole, and aborts the
#: process when it cannot (a 2^15-voxel block edge asked for 32 TiB); every writer uses
#: 32-voxel blocks and files of at most 32 blocks
MAX_BLOCK_BYTES = 2**28
MAX_FILE_LEN = 2**8
#: the most bytes LZ4 can decode from one byte (a run of matches: 255 per length byte)
LZ4_MAX_RATIO = 255


@dataclass(frozen=True)
class WKWHeader:
    """What ``header.wkw`` (and the first 16 bytes of every data file) says."""

    dtype: np.dtype
    num_channels: int = 1
    block_len: int = 32
    file_len: int = 32
    block_type: int = BLOCK_LZ4

    @property
    def compressed(self) -> bool:
        return self.block_type != BLOCK_RAW

    @property
    def file_size(self) -> int:
        """Edge length of one file in voxels."""
        return self.block_len * self.file_len

    @property
    def voxel_bytes(self) -> int:
        return self.dtype.itemsize * self.num_channels

    @property
    def block_bytes(self) -> int:
        return self.block_len**3 * self.voxel_bytes

    @classmethod
    def from_bytes(cls, data: bytes, path: Path | str) -> WKWHeader:
        if len(data) < HEADER_SIZE:
            raise DatasetFormatError(f"{path}: WKW header is truncated ({len(data)} of 16 bytes)")
        if data[:3] != MAGIC:
            raise DatasetFormatError(f"{path}: not a WKW file (bad magic bytes {data[:3]!r})")
        if data[3] != 1:
            raise DatasetFormatError(f"{path}: unsupported WKW version {data[3]}")
        lens, block_type, voxel_type, voxel_size = data[4], data[5], data[6], data[7]
        if block_type not in (BLOCK_RAW, BLOCK_LZ4, BLOCK_LZ4HC):
            raise DatasetFormatError(f"{path}: unknown WKW block type {block_type}")
        if not 1 <= voxel_type <= len(WKW_DTYPES):
            raise DatasetFormatError(f"{path}: unknown WKW voxel type {voxel_type}")
        dtype = WKW_DTYPES[voxel_type - 1]
        if voxel_size == 0 or voxel_size % dtype.itemsize:
            raise DatasetFormatError(f"{path}: voxel size {voxel_size} does not fit {dtype}")
        block_len, file_len = 1 << (lens & 0x0F), 1 << (lens >> 4)
        if block_len**3 * voxel_size > MAX_BLOCK_BYTES or file_len > MAX_FILE_LEN:
            raise DatasetFormatError(
                f"{path}: WKW header declares {block_len}^3-voxel blocks of {voxel_size} bytes a voxel in files of "
                f"{file_len}^3 blocks, far larger than WKW writers use; refusing it (corrupt or not a WKW file)"
            )
        return cls(
            dtype=dtype,
            num_channels=voxel_size // dtype.itemsize,
            block_len=block_len,
            file_len=file_len,
            block_type=block_type,
        )

    @classmethod
    def read(cls, path: Path) -> WKWHeader:
        try:
            with open(path, "rb") as f:
                return cls.from_bytes(f.read(HEADER_SIZE), path)
        except OSError as error:
            raise DatasetFormatError(f"{path}: cannot read WKW header ({error.strerror})") from None

    def to_bytes(self, data_offset: int = 0) -> bytes:
        lens = (self.file_len.bit_length() - 1) << 4 | (self.block_len.bit_length() - 1)
        voxel_type = WKW_DTYPES.index(self.dtype) + 1
        return MAGIC + bytes([1, lens, self.block_type, voxel_type, self.voxel_bytes]) + struct.pack("<Q", data_offset)

    def with_block_type(self, block_type: int) -> WKWHeader:
        return WKWHeader(self.dtype, self.num_channels, self.block_len, self.file_len, block_type)


def suggested_file_len(extent: tuple[int, ...], block_len: int = 32, maximum: int = 32) -> int:
    """Blocks per file edge: 32 (the usual 1024-voxel files) unless the data is smaller.

    Compressed files store every block, empty ones included, so a small volume in
    1024^3-voxel files would carry megabytes of compressed zeros. WKW readers take the
    file length from each mag's header, so a shorter one is as valid.
    """
    blocks = max(1, -(-max(extent) // block_len))
    file_len = 1
    while file_len < blocks and file_len < maximum:
        file_len *= 2
    return file_len


@lru_cache(maxsize=8)
def morton_table(file_len: int) -> np.ndarray:
    """Morton index of every block of a file, as an array indexed [bz, by, bx]."""
    coords = np.arange(file_len, dtype=np.int64)
    index = np.zeros((file_len,) * 3, dtype=np.int64)
    for bit in range(file_len.bit_length()):
        bits = (coords >> bit) & 1
        index |= bits[None, None, :] << (3 * bit)  # x
        index |= bits[None, :, None] << (3 * bit + 1)  # y
        index |= bits[:, None, None] << (3 * bit + 2)  # z
    return index


class CompressedFileWriter:
    """Collects the blocks of one compressed WKW file and writes it atomically.

    Blocks not given keep their old bytes when the file exists, else they are zeros.
    Compressed blocks are held in memory up to ``spill_bytes``, then appended to a
    temporary file beside the target, so memory stays bounded even for a 1024^3-voxel
    file of incompressible data. The old file is memory-mapped, not read whole.
    """

    def __init__(self, path: Path, header: WKWHeader, spill_bytes: int | None = None) -> None:
        if not header.compressed:
            raise ValueError("CompressedFileWriter needs an LZ4 or LZ4HC header")
        self.path = Path(path)
        self.header = header
        self.spill_bytes = SPILL_BYTES if spill_bytes is None else spill_bytes
        self._in_memory: dict[int, bytes] = {}
        self._held = 0
        self._spilled: dict[int, tuple[int, int]] = {}
        self._spill: BinaryIO | None = None
        self._old: tuple[mmap.mmap, np.ndarray, int] | None = None
        if self.path.exists():
            self._old = _map_compressed(self.path, header)

    def put_encoded(self, index: int, piece: bytes) -> None:
        """Store the compressed bytes of the block with Morton index ``index``."""
        self._spilled.pop(index, None)
        if self._spill is None and self._held + len(piece) > self.spill_bytes:
            self._start_spilling()
        if self._spill is None:
            self._held += len(piece) - len(self._in_memory.get(index, b""))
            self._in_memory[index] = piece
        else:
            try:
                self._spilled[index] = (self._spill.seek(0, os.SEEK_END), len(piece))
                self._spill.write(piece)
            except OSError as error:
                raise naming(error, self._spill.name) from None

    def _start_spilling(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._spill = open(self.path.with_name(f".{self.path.name}.{owner_tag()}.spill"), "w+b")  # noqa: SIM115
        for index, piece in self._in_memory.items():
            self._spilled[index] = (self._spill.tell(), len(piece))
            self._spill.write(piece)
        self._in_memory.clear()
        self._held = 0

    def encode(self, block: np.ndarray | memoryview) -> bytes:
        """LZ4 bytes of one block: a (z, y, x[, c]) array, or its C-order bytes."""
        raw = block if isinstance(block, memoryview) else contiguous_bytes(np.asarray(block, dtype=self.header.dtype))
        return lz4.block.compress(raw, store_size=False, mode=_LZ4_MODES[self.header.block_type])

    def old_block(self, bx: int, by: int, bz: int) -> np.ndarray | None:
        """The decoded (z, y, x, c) block of the existing file, or None without one."""
        if self._old is None:
            return None
        index = int(morton_table(self.header.file_len)[bz, by, bx])
        try:
            raw = lz4.block.decompress(self._old_bytes(index), uncompressed_size=self.header.block_bytes)
        except lz4.block.LZ4BlockError:
            raw = b""
        if len(raw) != self.header.block_bytes:
            raise DatasetFormatError(f"{self.path}: block {index} is corrupt (its LZ4 data does not decode)")
        n = self.header.block_len
        return np.frombuffer(raw, self.header.dtype).reshape(n, n, n, self.header.num_channels)

    def _old_bytes(self, index: int) -> bytes:
        data, jump, data_offset = self._old  # type: ignore[misc]
        start = data_offset if index == 0 else int(jump[index - 1])
        return data[start : int(jump[index])]

    def _given(self, index: int) -> bytes:
        if index in self._in_memory:
            return self._in_memory[index]
        offset, length = self._spilled[index]
        return os.pread(self._spill.fileno(), length, offset)  # type: ignore[union-attr]

    def _runs(self, zero: bytes) -> Iterator[tuple[bytes | memoryview, np.ndarray]]:
        """The file's block bytes in Morton order, as (bytes, lengths of the blocks in them):
        given blocks one by one, the gaps between them in one piece each (zeros, or the
        old file's bytes, which lie contiguously there)."""
        count = self.header.file_len**3
        given = sorted(set(self._in_memory) | set(self._spilled))
        start = 0
        for index in given + [count]:
            if index > start:
                if self._old is None:
                    yield zero * (index - start), np.full(index - start, len(zero), np.int64)
                else:
                    data, jump, data_offset = self._old
                    first = data_offset if start == 0 else int(jump[start - 1])
                    ends = jump[start:index].astype(np.int64)
                    view = memoryview(data)[first : int(ends[-1])]  # no copy of the old bytes
                    yield view, np.diff(ends, prepend=first)
                    view.release()
            if index < count:
                piece = self._given(index)
                yield piece, np.array([len(piece)], np.int64)
            start = index + 1

    def write(self) -> None:
        """Write header, jump table and blocks to a temporary name, then rename."""
        count = self.header.file_len**3
        data_offset = HEADER_SIZE + 8 * count
        n = self.header.block_len
        zero = self.encode(np.zeros((n, n, n, self.header.num_channels), self.header.dtype))
        if self._spill is not None:
            self._spill.flush()  # blocks are read back with os.pread
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{owner_tag()}.partial")
        lengths = []
        try:
            with open(partial, "wb") as f:
                f.write(self.header.to_bytes(data_offset))
                f.seek(data_offset)
                for piece, sizes in self._runs(zero):
                    f.write(piece)
                    lengths.append(sizes)
                ends = data_offset + np.cumsum(np.concatenate(lengths)).astype("<u8")
                f.seek(HEADER_SIZE)
                f.write(ends.astype("<u8").tobytes())
            os.replace(partial, self.path)
        except OSError as error:
            raise naming(error, self.path) from None
        finally:
            partial.unlink(missing_ok=True)
            self.close()

    def close(self) -> None:
        """Drop the spill file and the old file's mapping."""
        if self._spill is not None:
            name = self._spill.name
            self._spill.close()
            Path(name).unlink(missing_ok=True)
            self._spill = None
        if self._old is not None:
            self._old[0].close()
            self._old = None


def contiguous_bytes(block: np.ndarray) -> memoryview:
    """The C-order bytes of a (z, y, x[, c]) block cut out of a larger array.

    Its x rows are contiguous in the big array, so they are copied as single
    ``n * c * itemsize``-byte items (twice as fast as numpy's element-wise gather).
    """
    if not block.flags.c_contiguous and block.ndim >= 3:
        x_axis = 2
        row_bytes = block.itemsize * int(np.prod(block.shape[x_axis:]))
        inner_contiguous = block[0, 0].flags.c_contiguous if block.size else False
        if inner_contiguous and row_bytes:
            rows = np.lib.stride_tricks.as_strided(
                block,
                shape=(*block.shape[:2], row_bytes // block.itemsize),
                strides=(*block.strides[:2], block.itemsize),
            )
            return memoryview(np.ascontiguousarray(rows.view(np.dtype((np.void, row_bytes))))).cast("B")
    return memoryview(np.ascontiguousarray(block)).cast("B")


def split_blocks(data: np.ndarray, n: int) -> np.ndarray | None:
    """A (z, y, x, c) array whose sides are multiples of ``n``, as contiguous blocks:
    shape (z/n, y/n, x/n) of ``n^3 * c * itemsize``-byte items, each one block's C-order
    bytes. One gather for all blocks (rows copied as single items); None when the x
    rows are not contiguous in ``data``."""
    z, y, x, c = data.shape
    if any(side % n for side in (z, y, x)) or not data.size or not data[0, 0].flags.c_contiguous:
        return None
    item = data.itemsize
    row = n * c * item
    sz, sy = data.strides[0], data.strides[1]
    rows = np.lib.stride_tricks.as_strided(
        data, shape=(z // n, y // n, x // n, n, n, n * c), strides=(n * sz, n * sy, row, sz, sy, item)
    )
    blocks = np.ascontiguousarray(rows.view(np.dtype((np.void, row))))
    return blocks.reshape(z // n, y // n, x // n, n * n).view(np.dtype((np.void, n * n * row)))[..., 0]


def _map_compressed(path: Path, header: WKWHeader) -> tuple[mmap.mmap, np.ndarray, int]:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < HEADER_SIZE:
            raise DatasetFormatError(f"{path}: compressed WKW file is truncated ({size} bytes)")
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    file_header = WKWHeader.from_bytes(data[:HEADER_SIZE], path)
    if file_header.with_block_type(header.block_type) != header or not file_header.compressed:
        data.close()
        raise DatasetFormatError(f"{path}: file header does not match the mag's header.wkw")
    count = header.file_len**3
    data_offset = struct.unpack_from("<Q", data, 8)[0]
    if data_offset != HEADER_SIZE + 8 * count or size < data_offset:
        data.close()
        raise DatasetFormatError(f"{path}: compressed WKW file is truncated or corrupt")
    jump = np.frombuffer(data[HEADER_SIZE:data_offset], "<u8")
    # block ends: after the table, never decreasing, the last one at the end of the file (else
    # old blocks would be copied with negative or overlapping lengths into the rewritten file)
    if int(jump[-1]) != size or int(jump[0]) < data_offset or np.any(jump[1:] < jump[:-1]):
        data.close()
        raise DatasetFormatError(f"{path}: compressed WKW file is truncated or corrupt")
    return data, jump, data_offset


def decode_bucket(data: bytes, header: WKWHeader, where: str) -> np.ndarray:
    """The (z, y, x, c) voxels of a WKW file of one block (a volume annotation's bucket).

    WEBKNOSSOS stores annotation buckets as WKW files of file length 1: the 16-byte
    header, then either the raw block, or a one-entry jump table and an LZ4 block.
    """
    file_header = WKWHeader.from_bytes(data[:HEADER_SIZE], where)
    if file_header.with_block_type(header.block_type) != header or file_header.file_len != 1:
        raise DatasetFormatError(f"{where}: the bucket's header does not match its mag's header.wkw")
    n, channels, expected = header.block_len, header.num_channels, header.block_bytes
    if file_header.compressed:
        if len(data) < HEADER_SIZE + 8:
            raise DatasetFormatError(f"{where}: bucket is truncated ({len(data)} bytes)")
        end = struct.unpack_from("<Q", data, HEADER_SIZE)[0]
        if end != len(data):
            raise DatasetFormatError(f"{where}: bucket is truncated or corrupt ({len(data)} bytes, table says {end})")
        if expected > LZ4_MAX_RATIO * (len(data) - HEADER_SIZE - 8):  # checked before lz4 allocates ``expected``
            raise DatasetFormatError(
                f"{where}: bucket is corrupt ({len(data)} bytes cannot decode to a block of {expected} bytes)"
            )
        try:
            raw = lz4.block.decompress(memoryview(data)[HEADER_SIZE + 8 :], uncompressed_size=expected)
        except lz4.block.LZ4BlockError:
            raise DatasetFormatError(f"{where}: bucket is corrupt (its LZ4 block does not decode)") from None
        if len(raw) != expected:
            raise DatasetFormatError(f"{where}: bucket decodes to {len(raw)} bytes, expected {expected}")
    else:
        offset = struct.unpack_from("<Q", data, 8)[0] or HEADER_SIZE
        raw = data[offset : offset + expected]
        if len(raw) != expected:
            raise DatasetFormatError(f"{where}: bucket is {len(data)} bytes, expected {offset + expected}")
    return np.frombuffer(raw, header.dtype).reshape(n, n, n, channels)


def file_path(mag_path: Path, fx: int, fy: int, fz: int) -> Path:
    """Where the data file with file coordinates (fx, fy, fz) lives."""
    return mag_path / f"z{fz}" / f"y{fy}" / f"x{fx}.wkw"


def existing_files(mag_path: Path) -> list[tuple[int, int, int]]:
    """File coordinates (x, y, z) of every data file of a mag (no data is read)."""
    found = []
    for zdir in _numbered(mag_path, "z"):
        for ydir in _numbered(zdir[1], "y"):
            for xfile in ydir[1].glob("x*.wkw"):
                stem = xfile.stem[1:]
                if stem.isdigit():
                    found.append((int(stem), ydir[0], zdir[0]))
    return found


def _numbered(folder: Path, prefix: str) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    out = []
    for child in folder.iterdir():
        if child.name.startswith(prefix) and child.name[1:].isdigit() and child.is_dir():
            out.append((int(child.name[1:]), child))
    return out


def compress_file(source: Path, target: Path, block_type: int = BLOCK_LZ4, threads: int = 1) -> bool:
    """Write the LZ4 version of the raw WKW file ``source`` to ``target`` (may be the same).

    Raw and compressed files keep their blocks in the same (Morton) order, so each
    block's bytes are compressed as they are, never decoded into voxels. Blocks in
    holes of a sparse file and all-zero blocks share one encoded zero block, so the
    work follows the data, not the file size. The result goes to a hidden file beside
    ``target`` and is renamed over it: at any moment ``target`` is either untouched or
    complete. Returns False (and copies, if the paths differ) when ``source`` is
    compressed already.
    """
    from .threads import bounded_map

    source, target = Path(source), Path(target)
    with open(source, "rb") as f:
        head = f.read(HEADER_SIZE)
        header = WKWHeader.from_bytes(head, source)
        if header.compressed:
            if source != target:
                _copy_atomically(source, target)
            return False
        data_offset = struct.unpack_from("<Q", head, 8)[0] or HEADER_SIZE
        count = header.file_len**3
        step = header.block_bytes
        size = os.fstat(f.fileno()).st_size
        if size < data_offset + count * step:
            raise DatasetFormatError(
                f"{source}: raw WKW file is truncated ({size} bytes, expected {data_offset + count * step})"
            )
        mode = _LZ4_MODES[block_type]
        zero = lz4.block.compress(bytes(step), store_size=False, mode=mode)
        group = max(1, GROUP_BYTES // step)  # blocks read and compressed per task

        def encode(first: int) -> list[bytes]:
            blocks = min(group, count - first)
            start = data_offset + first * step
            if _is_hole(f.fileno(), start, blocks * step):
                return [zero] * blocks
            raw = os.pread(f.fileno(), blocks * step, start)
            filled = np.frombuffer(raw, np.uint8).reshape(blocks, step).any(axis=1)
            view = memoryview(raw)
            return [
                lz4.block.compress(view[i * step : (i + 1) * step], store_size=False, mode=mode) if filled[i] else zero
                for i in range(blocks)
            ]

        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{owner_tag()}.partial")
        new_offset = HEADER_SIZE + 8 * count
        ends = np.empty(count, "<u8")
        try:
            with open(partial, "wb") as out:
                out.write(header.with_block_type(block_type).to_bytes(new_offset))
                out.seek(new_offset)
                position, index = new_offset, 0
                for pieces in bounded_map(encode, range(0, count, group), threads):
                    check_cancelled()
                    out.write(b"".join(pieces))
                    for piece in pieces:
                        position += len(piece)
                        ends[index] = position
                        index += 1
                out.seek(HEADER_SIZE)
                out.write(ends.tobytes())
            os.replace(partial, target)
        except OSError as error:
            raise naming(error, target) from None
        finally:
            partial.unlink(missing_ok=True)
    return True


def _is_hole(fd: int, start: int, length: int) -> bool:
    """Whether ``[start, start + length)`` of a sparse file holds no data (reads as zeros)."""
    try:
        return os.lseek(fd, start, os.SEEK_DATA) >= start + length
    except OSError as error:  # ENXIO: no data after start; EINVAL: SEEK_DATA unsupported
        return error.errno == errno.ENXIO
    except AttributeError:  # no SEEK_DATA on this platform
        return False


def _copy_atomically(source: Path, target: Path) -> None:
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{owner_tag()}.partial")
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def write_header(mag_path: Path, header: WKWHeader) -> None:
    """Replace a mag's ``header.wkw`` atomically."""
    path = Path(mag_path) / "header.wkw"
    partial = path.with_name(f".header.wkw.{owner_tag()}.partial")
    try:
        partial.write_bytes(header.to_bytes(0))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def check_data_file(path: Path, header: WKWHeader) -> None:
    """Refuse a data file whose header or length is wrong: libwkw reads such files as zeros.

    The block type may differ from ``header.wkw`` (a mag whose in-place compression
    was interrupted holds both kinds); each file is checked by its own header.
    """
    try:
        with open(path, "rb") as f:
            length = os.fstat(f.fileno()).st_size
            head = f.read(HEADER_SIZE)
            file_header = WKWHeader.from_bytes(head, path)
            data_offset = struct.unpack_from("<Q", head, 8)[0]
            if file_header.with_block_type(header.block_type) != header:
                raise DatasetFormatError(f"{path}: the file's header does not match header.wkw of its mag")
            blocks = header.file_len**3
            if file_header.compressed:
                if data_offset != HEADER_SIZE + 8 * blocks or length < data_offset:
                    raise DatasetFormatError(f"{path}: compressed WKW file is truncated or corrupt")
                f.seek(data_offset - 8)
                if struct.unpack("<Q", f.read(8))[0] != length:
                    raise DatasetFormatError(f"{path}: compressed WKW file is truncated or corrupt")
            elif length < (data_offset or HEADER_SIZE) + blocks * header.block_bytes:
                raise DatasetFormatError(f"{path}: raw WKW file is truncated ({length} bytes)")
    except OSError as error:
        raise DatasetFormatError(f"{path}: cannot read ({error.strerror})") from None
