"""Read-only ZIP archives that are safe against hostile files and fast for thousands of tiny entries.

A WEBKNOSSOS volume annotation is a ZIP holding a deflated ZIP of thousands of buckets. ``zipfile``'s
``open()`` shares one file position between threads and cannot seek inside a deflated entry, and its parsing
costs a ZipInfo object per entry. So the central directory is walked here with ``struct``, entries are read with
positioned reads (``os.pread``), and a
deflated inner ZIP is inflated once while zlib checkpoints are recorded (the zran idea), so later reads restart
from the nearest checkpoint instead of from the start. Every entry is validated before anything is decompressed,
and no read returns more than its entry declares.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import struct
import threading
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from napari_wkw.core.errors import DatasetFormatError

__all__ = ["CHECKPOINT_BYTES", "DEFAULT_CACHE_BYTES", "SafeZip", "ZipLimits", "is_zip_file"]

CHECKPOINT_BYTES = 1 << 20  # inflated bytes between two checkpoints (one span)
MAX_CHECKPOINTS = 1024  # ~40 KB each: above 1 GiB the spans grow instead of the checkpoint list
# compressed bytes fed to zlib at a time during the single pass; small because every checkpoint keeps the unconsumed
# rest of its input chunk alive (zlib's copy() shares unconsumed_tail), so this bounds a checkpoint to ~56 KB
INFLATE_CHUNK = 16 << 10
DEFAULT_CACHE_BYTES = 64 << 20  # inflated spans kept per nested archive
RATIO_FLOOR = 1 << 20  # entries smaller than this are never refused for their ratio

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_END_SIGNATURE = b"PK\x05\x06"
_END_SIZE = 22
_ZIP64_END_SIGNATURE = b"PK\x06\x06"
_ZIP64_END_SIZE = 56
_ZIP64_LOCATOR_SIZE = 20
_ZIP64_MARK = 0xFFFFFFFF
_FLAG_ENCRYPTED = 0x1
_FLAG_DATA_DESCRIPTOR = 0x8
_FLAG_UTF8 = 0x800
_SUPPORTED_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_DRIVE = re.compile(r"^[A-Za-z]:")
_PARSE_ERRORS = (zipfile.BadZipFile, ValueError, struct.error, EOFError, IndexError, NotImplementedError)


@dataclass(frozen=True)
class ZipLimits:
    """What an archive may declare before we refuse it; the defaults fit the largest real annotations."""

    max_entries: int = 2_000_000
    max_entry_bytes: int = 1 << 30  # declared uncompressed size of one entry read with ``read``
    max_nested_bytes: int = 64 << 30  # declared uncompressed size of an inner ZIP opened with ``open_nested``
    max_ratio: float = 2000.0  # uncompressed/compressed above which an entry over 1 MiB is a likely ZIP bomb


class _Corrupt(Exception):
    """Internal: the bytes of one entry are wrong; the caller adds the archive and entry names."""


class _Source(Protocol):
    """Random-access bytes: the archive file, a byte range of it, or an inflated entry."""

    size: int

    def pread(self, size: int, offset: int) -> bytes: ...


class _FileSource:
    """The archive file, read with positioned reads so threads never share a seek position.

    Reference counted: every SafeZip built on it (nested ones too) holds one reference; the descriptor closes
    with the last one.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            info = os.fstat(self._fd)
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EISDIR if stat.S_ISDIR(info.st_mode) else errno.EINVAL, "not a regular file")
        except OSError:
            os.close(self._fd)
            raise
        self.size = info.st_size
        self._references = 1
        self._lock = threading.Lock()  # reference count, and seek+read where os.pread is missing (Windows)

    def pread(self, size: int, offset: int) -> bytes:
        parts = []
        while size > 0:
            chunk = self._read_at(min(size, 1 << 30), offset)
            if not chunk:
                break
            parts.append(chunk)
            size -= len(chunk)
            offset += len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _read_at(self, size: int, offset: int) -> bytes:
        if hasattr(os, "pread"):
            return os.pread(self._fd, size, offset)
        with self._lock:
            os.lseek(self._fd, offset, os.SEEK_SET)
            return os.read(self._fd, size)

    def acquire(self) -> None:
        with self._lock:
            self._references += 1

    def release(self) -> None:
        with self._lock:
            self._references -= 1
            if self._references == 0:
                os.close(self._fd)


class _RangeSource:
    """A STORED inner ZIP: a byte range of its parent, read straight through without a copy."""

    def __init__(self, parent: _Source, start: int, size: int) -> None:
        self._parent = parent
        self._start = start
        self.size = size

    def pread(self, size: int, offset: int) -> bytes:
        size = min(size, self.size - offset)
        return self._parent.pread(size, self._start + offset) if size > 0 and offset >= 0 else b""


class _SpanCache:
    """A thread-safe LRU of inflated spans, bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._spans: OrderedDict[int, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, index: int) -> bytes | None:
        with self._lock:
            span = self._spans.get(index)
            if span is not None:
                self._spans.move_to_end(index)
            return span

    def put(self, index: int, span: bytes) -> None:
        if len(span) > self._max_bytes:
            return
        with self._lock:
            if index in self._spans:
                return
            self._spans[index] = span
            self._bytes += len(span)
            while self._bytes > self._max_bytes:
                self._bytes -= len(self._spans.popitem(last=False)[1])


class _Checkpoint(NamedTuple):
    compressed: int  # offset in the entry's compressed data of the next byte to feed
    inflater: Any  # a zlib decompressobj positioned at the start of its span; only ever copied


class _InflatedSource:
    """A DEFLATED inner ZIP: inflated once at open (CRC checked), then read from the nearest checkpoint."""

    def __init__(self, parent: _Source, start: int, entry: _Entry, cache_bytes: int) -> None:
        self._parent = parent
        self._start = start
        self._compressed = entry.compressed
        self.size = entry.size
        self._span = _span_bytes(entry.size)
        self._cache = _SpanCache(cache_bytes)
        self._checkpoints = self._inflate_once(entry.crc)

    def _inflate_once(self, crc: int) -> list[_Checkpoint]:
        """Inflate the whole entry in bounded steps, keeping a checkpoint at every span boundary."""
        inflater = zlib.decompressobj(-15)
        checkpoints = [_Checkpoint(0, inflater.copy())]
        produced = fed = span_length = running_crc = 0
        pending = b""
        span: list[bytes] = []
        while not inflater.eof:
            if not pending and fed < self._compressed:
                pending = self._parent.pread(min(INFLATE_CHUNK, self._compressed - fed), self._start + fed)
                if not pending:
                    raise _Corrupt("truncated")
                fed += len(pending)
            room = min(self._span - span_length, self.size + 1 - produced)
            output, pending, consumed = _inflate_step(inflater, pending, room)
            if not output and not consumed and (pending or fed >= self._compressed):
                raise _Corrupt("truncated")
            running_crc = zlib.crc32(output, running_crc)
            produced += len(output)
            if produced > self.size:
                raise _Corrupt("larger than declared")
            span.append(output)
            span_length += len(output)
            if span_length == self._span:
                self._cache.put(len(checkpoints) - 1, b"".join(span))
                span, span_length = [], 0
                checkpoints.append(_Checkpoint(fed - len(pending), inflater.copy()))
        if produced < self.size:
            raise _Corrupt("truncated")
        if running_crc != crc:
            raise _Corrupt("CRC mismatch")
        if span_length:
            self._cache.put(len(checkpoints) - 1, b"".join(span))
        return checkpoints

    def pread(self, size: int, offset: int) -> bytes:
        end = min(offset + size, self.size)
        if offset < 0 or offset >= end:
            return b""
        first, last = offset // self._span, (end - 1) // self._span
        parts = [self._span_data(index) for index in range(first, last + 1)]
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        base = first * self._span
        return data[offset - base : end - base]

    def _span_data(self, index: int) -> bytes:
        span = self._cache.get(index)
        if span is None:
            span = self._inflate_span(index)
            self._cache.put(index, span)
        return span

    def _inflate_span(self, index: int) -> bytes:
        """Inflate one span from its checkpoint: one read of exactly the compressed bytes it needs."""
        start, checkpoint = self._checkpoints[index]
        end = self._checkpoints[index + 1].compressed if index + 1 < len(self._checkpoints) else self._compressed
        wanted = min(self._span, self.size - index * self._span)
        pending = self._parent.pread(end - start, self._start + start)
        inflater = checkpoint.copy()
        parts: list[bytes] = []
        length = 0
        while length < wanted:
            output, pending, consumed = _inflate_step(inflater, pending, wanted - length)
            if not output and not consumed:
                raise _Corrupt(f"span {index} no longer inflates as it did when opened; the file changed")
            parts.append(output)
            length += len(output)
        return b"".join(parts)


def _inflate_step(inflater: Any, pending: bytes, room: int) -> tuple[bytes, bytes, int]:
    """One bounded zlib call: (output of at most room bytes, unconsumed input, bytes consumed)."""
    try:
        output = inflater.decompress(pending, room)
    except zlib.error as error:
        raise _Corrupt(f"invalid deflate data: {error}") from None
    tail = inflater.unconsumed_tail
    return output, tail, len(pending) - len(tail)


def _span_bytes(size: int) -> int:
    """The span length: CHECKPOINT_BYTES, doubled until the checkpoints of a huge entry fit MAX_CHECKPOINTS."""
    span = CHECKPOINT_BYTES
    while size > span * MAX_CHECKPOINTS:
        span *= 2
    return span


def _inflate_bounded(data: bytes, size: int) -> bytes:
    """Inflate one entry, never producing more than its declared size plus the one byte that proves a lie."""
    inflater = zlib.decompressobj(-15)
    try:
        output = inflater.decompress(data, size + 1)
    except zlib.error as error:
        raise _Corrupt(f"invalid deflate data: {error}") from None
    if len(output) > size:
        raise _Corrupt("larger than declared")
    if len(output) < size or not inflater.eof:
        raise _Corrupt("truncated")
    return output


class _Entry(NamedTuple):
    """What reads need from a central-directory record (ZipInfo objects are dropped after validation)."""

    raw_name: str  # as zipfile decoded it, compared with the local header
    flags: int
    method: int
    header_offset: int
    compressed: int
    size: int
    crc: int


def _declared_entry_count(source: _Source) -> int | None:
    """The entry count of the end record, or None when there is none (not a ZIP, or cut short).

    Read before zipfile parses anything, so that a central directory declaring millions of entries is refused
    before millions of ZipInfo objects exist.
    """
    tail_size = min(source.size, _END_SIZE + 0xFFFF)
    tail = source.pread(tail_size, source.size - tail_size)
    position = tail.rfind(_END_SIGNATURE)
    if position < 0 or len(tail) - position < _END_SIZE:
        return None
    count = struct.unpack_from("<H", tail, position + 10)[0]
    zip64_at = source.size - tail_size + position - _ZIP64_LOCATOR_SIZE - _ZIP64_END_SIZE
    if count == 0xFFFF and zip64_at >= 0:
        record = source.pread(_ZIP64_END_SIZE, zip64_at)
        if record[:4] == _ZIP64_END_SIGNATURE:
            count = struct.unpack_from("<Q", record, 32)[0]
    return count


class _Record(NamedTuple):
    """One central-directory record, with zipfile.ZipInfo's attribute names."""

    orig_filename: str
    flag_bits: int
    compress_type: int
    CRC: int
    compress_size: int
    file_size: int
    external_attr: int
    header_offset: int


_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_CENTRAL_SIGNATURE = b"PK\x01\x02"


def _central_directory(source: _Source) -> list[_Record]:
    """Every record of the central directory, read in one piece and walked with struct.

    zipfile builds a ZipInfo per entry (about 9 us each, 0.12 s for an annotation of
    10,000 buckets); this reads the same fields, zip64 extras and archives with data
    prepended (offsets shifted, as zipfile allows) included.
    """
    tail_size = min(source.size, _END_SIZE + 0xFFFF)
    tail = source.pread(tail_size, source.size - tail_size)
    position = tail.rfind(_END_SIGNATURE)
    if position < 0 or len(tail) - position < _END_SIZE:
        raise _Corrupt("no end record")
    end_at = source.size - tail_size + position
    count, cd_size, cd_offset = struct.unpack_from("<HLL", tail, position + 10)
    record_end = end_at
    locator_at = end_at - _ZIP64_LOCATOR_SIZE
    if locator_at >= 0 and source.pread(4, locator_at) == b"PK\x06\x07":
        zip64_at = struct.unpack_from("<Q", source.pread(_ZIP64_LOCATOR_SIZE, locator_at), 8)[0]
        record = source.pread(_ZIP64_END_SIZE, zip64_at)
        if record[:4] == _ZIP64_END_SIGNATURE:
            count, cd_size, cd_offset = struct.unpack_from("<QQQ", record, 32)
            record_end = zip64_at
    shift = record_end - cd_size - cd_offset  # bytes prepended to the archive
    if shift < 0:
        raise _Corrupt("the central directory lies outside the file")
    directory = source.pread(cd_size, cd_offset + shift)
    if len(directory) != cd_size:
        raise _Corrupt("the central directory is cut short")
    records = []
    at = 0
    for _ in range(count):
        fields = _CENTRAL.unpack_from(directory, at)
        if fields[0] != _CENTRAL_SIGNATURE:
            raise _Corrupt("bad central directory record")
        flags, method, crc, compressed, size = fields[5], fields[6], fields[9], fields[10], fields[11]
        name_length, extra_length, comment_length = fields[12], fields[13], fields[14]
        external, offset = fields[17], fields[18]
        at += _CENTRAL.size
        raw_name = directory[at : at + name_length]
        extra = directory[at + name_length : at + name_length + extra_length]
        if len(raw_name) != name_length or len(extra) != extra_length:
            raise _Corrupt("bad central directory record")
        at += name_length + extra_length + comment_length
        name = raw_name.decode("utf-8" if flags & _FLAG_UTF8 else "cp437")
        if _ZIP64_MARK in (size, compressed, offset):
            size, compressed, offset = _zip64_fields(extra, size, compressed, offset)
        records.append(_Record(name, flags, method, crc, compressed, size, external, offset + shift))
    return records


def _zip64_fields(extra: bytes, size: int, compressed: int, offset: int) -> tuple[int, int, int]:
    """The 64-bit sizes and offset of a record whose 32-bit fields are 0xFFFFFFFF."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, at)
        if kind == 1:
            values = list(struct.unpack_from(f"<{length // 8}Q", extra, at + 4))
            if size == _ZIP64_MARK:
                size = values.pop(0)
            if compressed == _ZIP64_MARK:
                compressed = values.pop(0)
            if offset == _ZIP64_MARK:
                offset = values.pop(0)
            return size, compressed, offset
        at += 4 + length
    raise _Corrupt("a zip64 record without its zip64 extra field")


def _name_problem(name: str) -> str | None:
    """Why an entry name is unsafe to use as a relative path, or None when it is fine."""
    quick = name and name[0] not in "./" and "/." not in name and "//" not in name and ":" not in name[1:2]
    if quick and "\x00" not in name:
        return None  # the common case, decided without splitting
    if "\x00" in name:
        return "has a NUL byte in its name"
    if name.startswith("/") or _DRIVE.match(name):
        return "has an absolute path"
    parts = name[:-1].split("/") if name.endswith("/") else name.split("/")
    if ".." in parts:
        return "climbs out of the archive"
    if "" in parts:
        return "has an empty path component"
    if "." in parts:
        return "has a '.' path component"
    return None


def _entry_problem(info: _Record, limits: ZipLimits) -> str | None:
    """Why an entry is refused before anything is decompressed, or None when it is fine."""
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    if info.flag_bits & _FLAG_ENCRYPTED:
        return "is encrypted"
    if info.compress_type not in _SUPPORTED_METHODS:
        return f"uses compression method {info.compress_type}; only STORED (0) and DEFLATED (8) are supported"
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        return f"is STORED but declares {info.compress_size} bytes stored for {info.file_size}"
    if info.file_size > RATIO_FLOOR and info.file_size > limits.max_ratio * info.compress_size:
        return (
            f"declares {info.file_size} bytes from {info.compress_size} compressed bytes "
            f"(ratio above {limits.max_ratio:g}), a likely ZIP bomb"
        )
    return None


class SafeZip:
    """A read-only ZIP whose entries are validated once and read by name from any thread."""

    def __init__(self, source: _Source, name: str, limits: ZipLimits, cache_bytes: int, root: _FileSource) -> None:
        """Private: use ``SafeZip.open`` or ``open_nested``."""
        self.name = name
        self._source = source
        self._limits = limits
        self._cache_bytes = cache_bytes
        self._root = root
        self._data_offsets: dict[int, int] = {}  # local header offset -> data offset
        self._closed = False
        root.acquire()
        try:
            self._entries = self._load_entries()
        except BaseException:
            root.release()
            raise

    @classmethod
    def open(
        cls, path: str | os.PathLike, limits: ZipLimits | None = None, *, cache_bytes: int = DEFAULT_CACHE_BYTES
    ) -> SafeZip:
        """Open and validate the archive at ``path``; ``cache_bytes`` bounds each nested archive's span cache."""
        name = os.fsdecode(path)
        try:
            source = _FileSource(path)
        except OSError as error:
            raise DatasetFormatError(f"{name}: cannot be opened ({error.strerror or error})") from None
        try:
            return cls(source, name, limits or ZipLimits(), cache_bytes, source)
        finally:
            source.release()

    # ----------------------------------------------------------------------------------------- validation

    def _error(self, problem: str) -> DatasetFormatError:
        return DatasetFormatError(f"{self.name}: {problem}")

    def _refuse(self, entry: str, problem: str) -> DatasetFormatError:
        return self._error(f"entry {entry!r} {problem}; refusing to open it")

    def _load_entries(self) -> dict[str, _Entry]:
        infos = self._parse_central_directory()
        entries: dict[str, _Entry] = {}
        for info in infos:
            name = info.orig_filename.replace("\\", "/")
            problem = _name_problem(name) or _entry_problem(info, self._limits)
            if problem:
                raise self._refuse(info.orig_filename, problem)
            if name.endswith("/"):
                continue
            if name in entries:
                raise self._refuse(name, "appears twice")
            entries[name] = _Entry(
                info.orig_filename,
                info.flag_bits,
                info.compress_type,
                info.header_offset,
                info.compress_size,
                info.file_size,
                info.CRC,
            )
        self._check_layout(infos)
        return entries

    def _parse_central_directory(self) -> list[_Record]:
        count = _declared_entry_count(self._source)
        if count is None:
            head = self._source.pread(4, 0)
            if not head:
                raise self._error("not a ZIP file (the file is empty)")
            if head == _LOCAL_SIGNATURE:
                raise self._error("truncated or corrupt ZIP (its end record is missing)")
            raise self._error("not a ZIP file")
        self._check_entry_count(count)
        try:
            infos = _central_directory(self._source)
        except (*_PARSE_ERRORS, _Corrupt) as error:
            raise self._error(f"truncated or corrupt ZIP ({error})") from None
        self._check_entry_count(len(infos))
        return infos

    def _check_entry_count(self, count: int) -> None:
        if count > self._limits.max_entries:
            raise self._error(f"has {count} entries, more than the limit of {self._limits.max_entries}; refusing it")

    def _check_layout(self, infos: list[_Record]) -> None:
        """Refuse entries that overlap (the trick of the densest ZIP bombs) or run past the end of the file."""
        ordered = sorted(infos, key=lambda info: info.header_offset)
        if ordered and ordered[0].header_offset < 0:
            raise self._refuse(ordered[0].orig_filename, "starts before the archive does (truncated or corrupt ZIP)")
        for before, after in zip(ordered, ordered[1:] + [None]):
            # a lower bound of the entry's end: the local name is at least as long as the decoded one
            end = before.header_offset + _LOCAL_HEADER.size + len(before.orig_filename) + before.compress_size
            limit = self._source.size if after is None else after.header_offset
            if end > limit and after is None:
                raise self._refuse(before.orig_filename, "runs past the end of the archive (truncated ZIP)")
            if end > limit:
                raise self._refuse(after.orig_filename, f"overlaps entry {before.orig_filename!r}")

    # --------------------------------------------------------------------------------------------- access

    def names(self) -> list[str]:
        """Validated names with "/" separators, files only (directory entries are left out)."""
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name.replace("\\", "/") in self._entries

    def size(self, name: str) -> int:
        """The declared uncompressed size."""
        return self._entry(name).size

    def read(self, name: str, max_bytes: int | None = None) -> bytes:
        """The bytes of one entry, CRC checked; ``max_bytes`` lowers ``ZipLimits.max_entry_bytes`` for this read."""
        entry = self._entry(name)
        limit = self._limits.max_entry_bytes if max_bytes is None else min(max_bytes, self._limits.max_entry_bytes)
        if entry.size > limit:
            raise self._error(f"entry {name!r} declares {entry.size} bytes, more than the limit of {limit} bytes")
        try:
            data = self._source.pread(entry.compressed, self._data_offset(entry))
            if len(data) < entry.compressed:
                raise _Corrupt("truncated")
            if entry.method == zipfile.ZIP_DEFLATED:
                data = _inflate_bounded(data, entry.size)
            if zlib.crc32(data) != entry.crc:
                raise _Corrupt("CRC mismatch")
        except _Corrupt as error:
            raise self._error(f"entry {name!r} is corrupt ({error})") from None
        return data

    def open_nested(self, name: str, *, cache_bytes: int | None = None) -> SafeZip:
        """Open an entry that is itself a ZIP, with random access and without inflating it into memory.

        A STORED entry is a byte range of this archive. A DEFLATED one is inflated once here (CRC checked),
        keeping a zlib checkpoint every span; reads then inflate single spans, cached up to ``cache_bytes``.
        """
        entry = self._entry(name)
        limit = self._limits.max_nested_bytes
        if entry.size > limit:
            raise self._error(f"entry {name!r} declares {entry.size} bytes, more than the limit of {limit} bytes")
        cache_bytes = self._cache_bytes if cache_bytes is None else cache_bytes
        try:
            start = self._data_offset(entry)
            if entry.method == zipfile.ZIP_STORED:
                source: _Source = _RangeSource(self._source, start, entry.size)
            else:
                source = _InflatedSource(self._source, start, entry, cache_bytes)
        except _Corrupt as error:
            raise self._error(f"entry {name!r} is corrupt ({error})") from None
        return SafeZip(source, f"{self.name}!{name}", self._limits, cache_bytes, self._root)

    def close(self) -> None:
        """Release the file; it closes when this archive and every archive nested in it are closed."""
        if not self._closed:
            self._closed = True
            self._root.release()

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SafeZip({self.name!r}, {len(self._entries)} entries)"

    def _entry(self, name: str) -> _Entry:
        if self._closed:
            raise ValueError(f"{self.name}: the archive is closed")
        entry = self._entries.get(name.replace("\\", "/"))
        if entry is None:
            raise KeyError(f"{self.name}: no entry {name!r}")
        return entry

    def _data_offset(self, entry: _Entry) -> int:
        """Where the entry's data starts, from its local header (parsed once, then cached)."""
        offset = self._data_offsets.get(entry.header_offset)
        if offset is None:
            offset = self._parse_local_header(entry)
            self._data_offsets[entry.header_offset] = offset
        return offset

    def _parse_local_header(self, entry: _Entry) -> int:
        header = self._source.pread(_LOCAL_HEADER.size, entry.header_offset)
        if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
            raise _Corrupt(f"no local header at offset {entry.header_offset}")
        _, _, flags, method, _, _, crc, compressed, size, name_length, extra_length = _LOCAL_HEADER.unpack(header)
        raw_name = self._source.pread(name_length, entry.header_offset + _LOCAL_HEADER.size)
        local_name = raw_name.decode("utf-8" if entry.flags & _FLAG_UTF8 else "cp437", errors="replace")
        if local_name != entry.raw_name:
            raise _Corrupt(f"its local header names {local_name!r}")
        if method != entry.method:
            raise _Corrupt(f"its local header says compression method {method}, the central directory {entry.method}")
        if not flags & _FLAG_DATA_DESCRIPTOR:
            for field, local, central in (
                ("CRC", crc, entry.crc),
                ("compressed size", compressed, entry.compressed),
                ("size", size, entry.size),
            ):
                if local != central and local != _ZIP64_MARK:
                    raise _Corrupt(f"its local header says {field} {local}, the central directory {central}")
        start = entry.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        if start + entry.compressed > self._source.size:
            raise _Corrupt("truncated")
        return start


def is_zip_file(path: object) -> bool:
    """True when ``path`` is a regular file with a ZIP end record; never raises, so readers can decline quietly."""
    if not isinstance(path, (str, os.PathLike)):
        return False
    try:
        source = _FileSource(path)
    except Exception:
        return False
    try:
        return _declared_entry_count(source) is not None
    except Exception:
        return False
    finally:
        source.release()
