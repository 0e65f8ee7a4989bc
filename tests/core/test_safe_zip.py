"""SafeZip: byte-exact reads (nested, concurrent, from checkpoints), speed on annotation-sized ZIPs, hostile ZIPs."""

from __future__ import annotations

import io
import random
import stat
import struct
import time
import tracemalloc
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from napari_wkw.core import safe_zip
from napari_wkw.core.errors import DatasetFormatError
from napari_wkw.core.safe_zip import SafeZip, ZipLimits, is_zip_file

ANNOTATIONS = Path(__file__).parents[1] / "data" / "annotations"
REAL_ANNOTATIONS = ["l4_sample__explorational__suser__94b271.zip", "empty_volume_annotation.zip"]


# ------------------------------------------------------------------------------------------------- helpers


def _zip_bytes(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A ZIP in memory, deflated at level 1 as webknossos writes it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method, compresslevel=1 if method == zipfile.ZIP_DEFLATED else None) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _write_zip(path: Path, entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    path.write_bytes(_zip_bytes(entries, method))
    return path


def _all_entries(data: bytes) -> dict[str, bytes]:
    """What zipfile itself reads, the reference every SafeZip read is compared with."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}


def _tiny_entries(count: int, seed: int = 0) -> dict[str, bytes]:
    """Bucket-like entries of a few hundred bytes that deflate to about a third, named like zarr3 chunks."""
    rng = random.Random(seed)
    few_values = bytes(range(4)) * 64  # maps every byte to 0..3, like sparse label data
    entries = {"datasource-properties.json": b'{"dataLayers": []}' * 20}
    for index in range(count):
        x, y, z = index % 25, (index // 25) % 20, index // 500
        entries[f"volumeAnnotationData/1/c.0.{x}.{y}.{z}"] = rng.randbytes(600).translate(few_values)
    return entries


def _patch_central(data: bytes, name: str, offset: int, fmt: str, value: int) -> bytes:
    """Overwrite a field of the central-directory record of ``name`` (offset from the record's start)."""
    encoded = name.encode()
    position = data.index(b"PK\x01\x02")
    while data[position + 46 : position + 46 + struct.unpack_from("<H", data, position + 28)[0]] != encoded:
        position = data.index(b"PK\x01\x02", position + 4)
    return data[: position + offset] + struct.pack(fmt, value) + data[position + offset + struct.calcsize(fmt) :]


def _patch_local(data: bytes, name: str, offset: int, fmt: str, value: int) -> bytes:
    """Overwrite a field of the local header of ``name`` (offset from the header's start)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        position = archive.getinfo(name).header_offset
    return data[: position + offset] + struct.pack(fmt, value) + data[position + offset + struct.calcsize(fmt) :]


def _data_start(data: bytes, name: str) -> int:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        position = archive.getinfo(name).header_offset
    name_length, extra_length = struct.unpack_from("<HH", data, position + 26)
    return position + 30 + name_length + extra_length


# --------------------------------------------------------------------------------------- byte-exact reads


@pytest.mark.parametrize("annotation", REAL_ANNOTATIONS)
@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_real_annotations_read_like_zipfile(tmp_path, annotation, method):
    original = (ANNOTATIONS / annotation).read_bytes()
    outer_entries = _all_entries(original)
    path = _write_zip(tmp_path / annotation, outer_entries, method)
    inner_entries = _all_entries(outer_entries["data_Volume.zip"])

    with SafeZip.open(path) as outer:
        assert sorted(outer.names()) == sorted(outer_entries)
        for name, data in outer_entries.items():
            assert outer.size(name) == len(data)
            assert outer.read(name) == data
        with outer.open_nested("data_Volume.zip") as inner:
            assert inner.name == f"{path}!data_Volume.zip"
            assert sorted(inner.names()) == sorted(inner_entries)
            for name in random.Random(1).sample(sorted(inner_entries), len(inner_entries)):
                assert inner.read(name) == inner_entries[name]


def test_real_annotation_as_shipped(tmp_path):
    """The original bytes, not a re-zipped copy: local headers, data descriptors and attributes as WEBKNOSSOS wrote."""
    for annotation in REAL_ANNOTATIONS:
        path = ANNOTATIONS / annotation
        expected = _all_entries(_all_entries(path.read_bytes())["data_Volume.zip"])
        with SafeZip.open(path) as outer, outer.open_nested("data_Volume.zip") as inner:
            assert {name: inner.read(name) for name in inner.names()} == expected
            assert "volumeAnnotationData/" not in inner.names()  # directory entries are left out


@pytest.mark.parametrize("methods", [(zipfile.ZIP_DEFLATED,) * 3, (zipfile.ZIP_STORED,) * 3, (8, 0, 8), (0, 8, 0)])
def test_nested_of_nested(tmp_path, methods):
    leaves = _tiny_entries(300)
    inner = _zip_bytes(leaves, methods[2])
    middle = _zip_bytes({"notes.txt": b"middle", "inner.zip": inner}, methods[1])
    path = _write_zip(tmp_path / "outer.zip", {"middle.zip": middle, "readme.txt": b"outer"}, methods[0])

    with (
        SafeZip.open(path) as outer,
        outer.open_nested("middle.zip") as level1,
        level1.open_nested("inner.zip") as level2,
    ):
        assert level2.name == f"{path}!middle.zip!inner.zip"
        assert level1.read("notes.txt") == b"middle"
        for name in random.Random(2).sample(sorted(leaves), len(leaves)):
            assert level2.read(name) == leaves[name]


def test_reads_restart_from_checkpoints(tmp_path, monkeypatch):
    """Tiny spans and a cache of two spans: nearly every read inflates from a checkpoint in the middle."""
    monkeypatch.setattr(safe_zip, "CHECKPOINT_BYTES", 4096)
    entries = _tiny_entries(2000)
    path = _write_zip(tmp_path / "outer.zip", {"data.zip": _zip_bytes(entries)})
    with SafeZip.open(path, cache_bytes=8192) as outer, outer.open_nested("data.zip") as inner:
        assert len(inner._source._checkpoints) > 100
        for name in random.Random(3).sample(sorted(entries), len(entries)):
            assert inner.read(name) == entries[name]


def test_spans_grow_for_huge_entries(tmp_path, monkeypatch):
    """Above MAX_CHECKPOINTS spans the spans double instead, so checkpoint memory stays bounded."""
    monkeypatch.setattr(safe_zip, "CHECKPOINT_BYTES", 1024)
    monkeypatch.setattr(safe_zip, "MAX_CHECKPOINTS", 8)
    entries = _tiny_entries(200)
    inner_bytes = _zip_bytes(entries)
    path = _write_zip(tmp_path / "outer.zip", {"data.zip": inner_bytes})
    with SafeZip.open(path, cache_bytes=0) as outer, outer.open_nested("data.zip") as inner:
        assert len(inner._source._checkpoints) <= 9
        assert inner._source._span >= len(inner_bytes) / 8
        assert {name: inner.read(name) for name in entries} == entries


def test_concurrent_reads_match_zipfile(tmp_path, monkeypatch):
    """Eight threads, each reading every entry in its own order, through a cache too small to hold the inner ZIP."""
    monkeypatch.setattr(safe_zip, "CHECKPOINT_BYTES", 16 << 10)
    entries = _tiny_entries(1500)
    path = _write_zip(tmp_path / "outer.zip", {"data.zip": _zip_bytes(entries), **dict(list(entries.items())[:500])})
    expected_outer = _all_entries(path.read_bytes())

    with SafeZip.open(path, cache_bytes=64 << 10) as outer, outer.open_nested("data.zip") as inner:

        def read_all(seed: int) -> bool:
            names = random.Random(seed).sample(sorted(entries), len(entries))
            outer_names = [name for name in expected_outer if name != "data.zip"]
            inner_ok = all(inner.read(name) == entries[name] for name in names)
            outer_ok = all(outer.read(name) == expected_outer[name] for name in outer_names)
            return inner_ok and outer_ok

        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(read_all, range(8)))


def test_many_tiny_entries_open_fast_and_read_in_any_order(tmp_path):
    entries = _tiny_entries(10_000)
    inner_bytes = _zip_bytes(entries)
    path = _write_zip(tmp_path / "annotation.zip", {"data_Volume.zip": inner_bytes, "a.nml": b"<things/>"})

    started = time.perf_counter()
    outer = SafeZip.open(path)
    inner = outer.open_nested("data_Volume.zip")
    opened = time.perf_counter() - started
    with outer, inner:
        assert len(inner.names()) == len(entries)
        for name in random.Random(4).sample(sorted(entries), len(entries)):
            assert inner.read(name) == entries[name]
    assert opened < 2.0  # about 0.05 s on a laptop; generous for loaded CI machines


def test_memory_stays_bounded_by_the_cache(tmp_path):
    """Reading from a deflated inner ZIP costs checkpoints plus the span cache, never the whole inner ZIP."""
    rng = random.Random(5)
    entries = {f"1/z0/y{i // 64}/x{i % 64}.wkw": rng.randbytes(2000) + bytes(38_000) for i in range(1000)}
    inner_bytes = _zip_bytes(entries, zipfile.ZIP_STORED)
    path = _write_zip(tmp_path / "annotation.zip", {"data_Volume.zip": inner_bytes})
    cache_bytes = 2 << 20
    assert len(inner_bytes) > 10 * cache_bytes

    tracemalloc.start()
    try:
        with SafeZip.open(path, cache_bytes=cache_bytes) as outer, outer.open_nested("data_Volume.zip") as inner:
            for name in rng.sample(sorted(entries), 200):
                assert inner.read(name) == entries[name]
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # tracemalloc also counts other threads' allocations (a full suite leaves some running): a loose bound,
    # still far below the 40 MB inner ZIP that reading it whole would cost
    assert peak < len(inner_bytes) / 3


def test_stored_inner_zip_is_read_in_place(tmp_path):
    entries = {f"x{i}.wkw": random.Random(i).randbytes(20_000) for i in range(200)}
    inner_bytes = _zip_bytes(entries, zipfile.ZIP_STORED)
    path = _write_zip(tmp_path / "outer.zip", {"data.zip": inner_bytes}, zipfile.ZIP_STORED)
    tracemalloc.start()
    try:
        with SafeZip.open(path) as outer, outer.open_nested("data.zip") as inner:
            assert inner.read("x7.wkw") == entries["x7.wkw"]
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(inner_bytes) / 10


def test_names_sizes_and_lookups(tmp_path):
    path = _write_zip(tmp_path / "a.zip", {"dir/": b"", "dir\\windows.txt": b"win", "dir/b.txt": b"bee"})
    with SafeZip.open(path) as archive:
        assert archive.names() == ["dir/windows.txt", "dir/b.txt"]
        assert "dir/windows.txt" in archive and "dir\\windows.txt" in archive and "dir/" not in archive
        assert archive.size("dir/b.txt") == 3
        assert archive.read("dir\\windows.txt") == b"win"
        with pytest.raises(KeyError, match="missing"):
            archive.read("missing")
        with pytest.raises(DatasetFormatError, match="declares 3 bytes, more than the limit of 2 bytes"):
            archive.read("dir/b.txt", max_bytes=2)
    with pytest.raises(ValueError, match="closed"):
        archive.read("dir/b.txt")


def test_closing_the_outer_archive_keeps_nested_ones_readable(tmp_path):
    path = _write_zip(tmp_path / "a.zip", {"in.zip": _zip_bytes({"x": b"payload"})})
    outer = SafeZip.open(path)
    inner = outer.open_nested("in.zip")
    outer.close()
    assert inner.read("x") == b"payload"
    inner.close()
    inner.close()  # closing twice is harmless


# -------------------------------------------------------------------------------------------- bad inputs


def _refused(
    path: Path, match: str, limits: ZipLimits | None = None, nested: str | None = None, inside: bool = False
) -> None:
    """Exactly one DatasetFormatError that starts with the archive's name (the nested one's when ``inside``)."""
    with pytest.raises(DatasetFormatError) as caught, SafeZip.open(path, limits) as archive:
        if nested:
            archive.open_nested(nested)
        else:
            for name in archive.names():
                archive.read(name)
    message = str(caught.value)
    assert message.startswith(f"{path}!{nested}: " if inside else f"{path}: "), message
    assert match in message, message


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../evil", "'../evil' climbs out of the archive; refusing to open it"),
        ("a/../../evil", "climbs out of the archive"),
        ("..\\evil", "'..\\\\evil' climbs out of the archive"),
        ("/etc/x", "'/etc/x' has an absolute path"),
        ("C:\\x", "has an absolute path"),
        ("C:/x", "has an absolute path"),
        ("a//b", "has an empty path component"),
        ("./a", "has a '.' path component"),
    ],
)
def test_unsafe_names_are_refused(tmp_path, name, problem):
    path = _write_zip(tmp_path / "a.zip", {"fine.txt": b"ok", name: b"bad"})
    _refused(path, problem)


def test_nul_byte_in_name_is_refused(tmp_path):
    data = _zip_bytes({"aXb": b"bad"})
    data = data.replace(b"aXb", b"a\x00b")  # zipfile cuts names at NUL when writing, so edit the bytes
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    _refused(path, "has a NUL byte in its name")


def test_symlink_is_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    path = tmp_path / "a.zip"
    path.write_bytes(buffer.getvalue())
    _refused(path, "entry 'link' is a symbolic link")


def test_encrypted_entry_is_refused(tmp_path):
    data = _patch_central(_zip_bytes({"secret": b"x" * 100}), "secret", 8, "<H", 1)
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    _refused(path, "entry 'secret' is encrypted")


def test_unknown_compression_method_is_refused(tmp_path):
    path = _write_zip(tmp_path / "a.zip", {"data": b"x" * 100}, zipfile.ZIP_BZIP2)
    _refused(path, "entry 'data' uses compression method 12; only STORED (0) and DEFLATED (8) are supported")


def test_declared_sizes_above_the_limits_are_refused_before_decompressing(tmp_path):
    path = _write_zip(tmp_path / "a.zip", {"big": bytes(1000), "in.zip": _zip_bytes({"x": bytes(10)})})
    _refused(path, "entry 'big' declares 1000 bytes, more than the limit of 999 bytes", ZipLimits(max_entry_bytes=999))
    _refused(path, "entry 'in.zip' declares", ZipLimits(max_nested_bytes=50), nested="in.zip")


def test_too_many_entries_are_refused(tmp_path):
    path = _write_zip(tmp_path / "a.zip", {f"e{i}": b"" for i in range(11)})
    _refused(path, "has 11 entries, more than the limit of 10", ZipLimits(max_entries=10))


def test_bomb_ratio_is_refused(tmp_path):
    path = tmp_path / "a.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("zeros", bytes(8 << 20))
    path.write_bytes(buffer.getvalue())
    _refused(path, "entry 'zeros' declares 8388608 bytes from", ZipLimits(max_ratio=100))
    with SafeZip.open(path) as archive:  # deflate cannot exceed ~1030:1, so the default accepts real data
        assert archive.read("zeros") == bytes(8 << 20)


def test_lying_declared_size_is_a_bomb_before_anything_is_inflated(tmp_path):
    data = _zip_bytes({"zeros": bytes(100_000)})
    data = _patch_central(data, "zeros", 24, "<I", 3 << 30)
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    _refused(path, "entry 'zeros' declares 3221225472 bytes from")


def test_small_entries_are_never_refused_for_their_ratio(tmp_path):
    path = _write_zip(tmp_path / "a.zip", {"bucket": bytes(128 << 10)})  # 128 KiB of zeros: ratio ~ 500-1000
    with SafeZip.open(path, ZipLimits(max_ratio=2)) as archive:
        assert archive.read("bucket") == bytes(128 << 10)


@pytest.mark.parametrize("keep", [0.5, -10])
def test_truncated_outer_zip(tmp_path, keep):
    data = _zip_bytes(_tiny_entries(50))
    path = tmp_path / "a.zip"
    path.write_bytes(data[: int(len(data) * keep)] if keep > 0 else data[:keep])
    _refused(path, "truncated or corrupt ZIP")


def test_entry_past_the_end_of_a_cut_archive(tmp_path):
    """The central directory is intact but the data before it is cut: caught at open, not at read."""
    data = _zip_bytes({"a": random.Random(0).randbytes(5000), "b": b"bee"})
    start = _data_start(data, "a")
    cut = data[: start + 100] + data[start + 4000 :]
    path = tmp_path / "a.zip"
    path.write_bytes(cut)
    _refused(path, "truncated or corrupt ZIP")


def test_bad_central_directory(tmp_path):
    data = _zip_bytes({"a": b"x"})
    data = data.replace(b"PK\x01\x02", b"PK\x01\x09")
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    _refused(path, "truncated or corrupt ZIP (bad central directory record)")


def test_truncated_inner_zip(tmp_path):
    inner = _zip_bytes(_tiny_entries(50))
    path = _write_zip(tmp_path / "a.zip", {"data_Volume.zip": inner[: len(inner) - 30]})
    _refused(path, "truncated or corrupt ZIP", nested="data_Volume.zip", inside=True)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_corrupted_byte_inside_an_entry(tmp_path, method):
    payload = random.Random(6).randbytes(3000)
    data = _zip_bytes({"a": payload}, method)
    position = _data_start(data, "a") + 1500
    data = data[:position] + bytes([data[position] ^ 0x55]) + data[position + 1 :]
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    _refused(path, "entry 'a' is corrupt (")


def test_crc_mismatch(tmp_path):
    data = _patch_central(_zip_bytes({"a": b"payload" * 10}, zipfile.ZIP_STORED), "a", 16, "<I", 1234)
    data = _patch_local(data, "a", 14, "<I", 1234)
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    _refused(path, "entry 'a' is corrupt (CRC mismatch)")


def test_corrupt_deflated_inner_zip_fails_at_open(tmp_path):
    data = _zip_bytes({"in.zip": _zip_bytes(_tiny_entries(50))})
    data = _patch_central(data, "in.zip", 16, "<I", 1234)
    data = _patch_local(data, "in.zip", 14, "<I", 1234)
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    _refused(path, "entry 'in.zip' is corrupt (CRC mismatch)", nested="in.zip")


@pytest.mark.parametrize(("declared", "problem"), [(-1, "larger than declared"), (+1, "truncated")])
@pytest.mark.parametrize("nested", [False, True])
def test_lying_uncompressed_size(tmp_path, declared, problem, nested):
    """A central directory that under- or over-states the size: reads stop at the declared size, then fail."""
    payload = _zip_bytes({"x": b"abc"}) if nested else bytes(5000)
    data = _zip_bytes({"a": payload})
    data = _patch_central(data, "a", 24, "<I", len(payload) + declared)
    data = _patch_local(data, "a", 22, "<I", len(payload) + declared)
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    _refused(path, f"entry 'a' is corrupt ({problem})", nested="a" if nested else None)


def test_lying_local_header(tmp_path):
    data = _patch_local(_zip_bytes({"a": bytes(5000), "b": b"bee"}), "a", 18, "<I", 10)
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    _refused(path, "entry 'a' is corrupt (its local header says compressed size 10, the central directory")


def test_local_header_naming_another_entry(tmp_path):
    data = _zip_bytes({"aa": b"1", "bb": b"2"})
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        position = archive.getinfo("aa").header_offset
    data = data[: position + 30] + b"cc" + data[position + 32 :]
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    _refused(path, "entry 'aa' is corrupt (its local header names 'cc')")


def test_missing_local_header(tmp_path):
    data = _zip_bytes({"a": b"payload"})
    data = b"XX" + data[2:]
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    _refused(path, "entry 'a' is corrupt (no local header at offset 0)")


def test_overlapping_entries_are_refused(tmp_path):
    data = _zip_bytes({"a": bytes(3000), "b": bytes(3000)})
    data = _patch_central(data, "b", 42, "<I", 0)
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    _refused(path, "overlaps entry")


def test_duplicate_names_are_refused(tmp_path):
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate it is told to write
        archive.writestr("a/b", b"one")
        archive.writestr("a/b", b"two")
    path = tmp_path / "a.zip"
    path.write_bytes(buffer.getvalue())
    _refused(path, "entry 'a/b' appears twice")
    path = _write_zip(tmp_path / "b.zip", {"a/b": b"one", "a\\b": b"two"})
    _refused(path, "entry 'a/b' appears twice")


def test_not_a_zip_at_all(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("just text\n" * 100)
    _refused(path, "not a ZIP file")
    empty = tmp_path / "empty.zip"
    empty.write_bytes(b"")
    _refused(empty, "not a ZIP file (the file is empty)")


def test_paths_that_cannot_be_opened(tmp_path):
    _refused(tmp_path / "missing.zip", "cannot be opened (No such file or directory)")
    _refused(tmp_path, "cannot be opened (")


def test_is_zip_file_never_raises(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    archive = _write_zip(tmp_path / "a.zip", {"a": b"x"})
    assert is_zip_file(archive) and is_zip_file(str(archive))
    assert is_zip_file(ANNOTATIONS / REAL_ANNOTATIONS[0])
    assert not is_zip_file(tmp_path)
    assert not is_zip_file(tmp_path / "missing.zip")
    assert not is_zip_file(text)
    assert not is_zip_file(tmp_path / "bad\x00name")
    assert not is_zip_file(None)
    assert not is_zip_file(0)  # a file descriptor number must not be opened (and then closed) by accident


def test_zip64_records(tmp_path):
    """Zip64 local headers (sizes 0xFFFFFFFF) and zip64 end records (more than 65535 entries)."""
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("big", "w", force_zip64=True) as entry:
            entry.write(b"zip64" * 1000)
        for index in range(70_000):
            archive.writestr(f"e{index}", b"")
    with SafeZip.open(path) as opened:
        assert opened.read("big") == b"zip64" * 1000
        assert len(opened.names()) == 70_001
    source = safe_zip._FileSource(path)
    try:
        assert safe_zip._declared_entry_count(source) == 70_001  # read before zipfile parses anything
    finally:
        source.release()
    _refused(path, "has 70001 entries, more than the limit of 70000", ZipLimits(max_entries=70_000))


def test_reads_without_pread(tmp_path, monkeypatch):
    """Where os.pread is missing (Windows), a lock around seek+read keeps concurrent reads correct."""
    monkeypatch.delattr(safe_zip.os, "pread")
    entries = _tiny_entries(400)
    path = _write_zip(tmp_path / "a.zip", entries, zipfile.ZIP_STORED)
    with SafeZip.open(path) as archive, ThreadPoolExecutor(8) as pool:
        names = sorted(entries) * 4
        assert list(pool.map(archive.read, names)) == [entries[name] for name in names]
