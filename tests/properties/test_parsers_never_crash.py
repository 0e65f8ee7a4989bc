"""Parsers never crash on hostile bytes: random ones, and real files with bytes changed,
cut off or inserted.

Each parser either succeeds or raises one of the package's errors (``WKWError``, in
practice ``DatasetFormatError``), or warns ``WKWWarning``: never another exception,
never a hang (pytest-timeout) and never more memory than a bound, even when a header
declares sizes that would need gigabytes (traced with ``tracemalloc``).
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from napari_wkw.core.dataset import MagView
from napari_wkw.core.errors import WKWError, WKWWarning
from napari_wkw.core.geometry import BoundingBox
from napari_wkw.core.nml import read_nml
from napari_wkw.core.properties import read_properties
from napari_wkw.core.safe_zip import SafeZip
from napari_wkw.core.wkw_file import (
    BLOCK_LZ4,
    HEADER_SIZE,
    CompressedFileWriter,
    WKWHeader,
    check_data_file,
    decode_bucket,
)

pytestmark = pytest.mark.timeout(60)

DATA = Path(__file__).parent.parent / "data"
#: the most any single parse may allocate (Python and numpy memory, traced)
MEMORY_BOUND = 64 * 2**20

WKW_DATASETS = ["webknossos_written", "simple_wkw_dataset"]
REAL_DATA_FILES = {
    "compressed": DATA / "wkw" / "webknossos_written" / "color" / "1",
    "compressed-labels": DATA / "wkw" / "webknossos_written" / "segmentation" / "2-2-1",
    "raw": DATA / "wkw" / "simple_wkw_dataset" / "color" / "1",
}
PROPERTIES_FILES = sorted((DATA / "wkw").glob("*/datasource-properties.json"))
ZIPS = sorted((DATA / "annotations").glob("*.zip"))


def outcome(parse, *args, **kwargs):
    """Run ``parse``: its result, or the WKWError it raised; anything else fails the test.

    Warnings must be WKWWarnings, and the memory traced during the call stays below
    MEMORY_BOUND."""
    tracemalloc.start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = parse(*args, **kwargs)
            except WKWError as error:
                result = error
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    foreign = [w for w in caught if not issubclass(w.category, WKWWarning)]
    assert not foreign, f"warnings other than WKWWarning: {[str(w.message) for w in foreign]}"
    assert peak < MEMORY_BOUND, f"{getattr(parse, '__name__', parse)} allocated {peak / 2**20:.0f} MiB"
    if isinstance(result, WKWError):
        assert str(result), "an error must say what is wrong"
    return result


@st.composite
def mutated(draw, original: bytes, header_bias: int = 0):
    """``original`` with a few bytes changed (often in its first ``header_bias`` bytes, where
    headers and tables are), a piece cut off, inserted or removed."""
    data = bytearray(original)
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        near_start = header_bias and draw(st.booleans())
        limit = min(len(data), header_bias) if near_start else len(data)
        position = draw(st.integers(0, limit - 1))
        kind = draw(st.sampled_from(["byte", "bit", "max", "zero", "int64"]))
        if kind == "byte":
            data[position] = draw(st.integers(0, 255))
        elif kind == "bit":
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "max":
            data[position] = 0xFF
        elif kind == "zero":
            data[position] = 0
        else:
            value = draw(st.sampled_from([0, 1, 2**31, 2**32 - 1, 2**40, 2**63, 2**64 - 1]))
            data[position : position + 8] = value.to_bytes(8, "little")
    action = draw(st.sampled_from(["none", "none", "truncate", "insert", "delete"]))
    if action == "truncate" and data:
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif action == "insert":
        position = draw(st.integers(0, len(data)))
        data[position:position] = draw(st.binary(min_size=1, max_size=64))
    elif action == "delete" and data:
        start = draw(st.integers(0, len(data) - 1))
        del data[start : start + draw(st.integers(1, 64))]
    return bytes(data)


def _real_file(kind: str) -> tuple[Path, WKWHeader]:
    mag = REAL_DATA_FILES[kind]
    return mag / "z0" / "y0" / "x0.wkw", WKWHeader.read(mag / "header.wkw")


# ----------------------------------------------------------------------------- WKW headers


@given(data=st.binary(max_size=40))
def test_header_from_random_bytes(data):
    header = outcome(WKWHeader.from_bytes, data, "random")
    if isinstance(header, WKWHeader):
        assert WKWHeader.from_bytes(header.to_bytes(0), "again") == header


@given(data=st.binary(min_size=16, max_size=16).map(lambda b: b"WKW\x01" + b[4:]))
def test_header_with_magic_and_random_fields(data):
    outcome(WKWHeader.from_bytes, data, "random")


# ----------------------------------------------------------------------------- data files


def _data_file_cases():
    cases = []
    for kind in REAL_DATA_FILES:
        path, header = _real_file(kind)
        cases.append(st.tuples(st.just(kind), mutated(path.read_bytes(), header_bias=HEADER_SIZE + 8 * 64)))
    cases.append(st.tuples(st.sampled_from(list(REAL_DATA_FILES)), st.binary(max_size=300)))
    return st.one_of(cases)


@given(case=_data_file_cases())
def test_data_files_are_checked_or_refused(case):
    kind, data = case
    mag, header = REAL_DATA_FILES[kind], _real_file(kind)[1]
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "1"
        shutil.copytree(mag, copy)
        target = copy / "z0" / "y0" / "x0.wkw"
        target.write_bytes(data)
        outcome(check_data_file, target, header)
        view = MagView.at(copy)
        box = BoundingBox((0, 0, 0), (header.file_size,) * 3)
        read = outcome(view.read, box)
        if isinstance(read, np.ndarray):
            assert read.shape[:3] == (header.file_size,) * 3
        if header.compressed:
            writer = outcome(CompressedFileWriter, target, header)
            if isinstance(writer, CompressedFileWriter):
                writer.close()
            # a write merging partly covered blocks with the file's old blocks
            view = MagView.at(copy)
            outcome(view.write, (3, 5, 7), np.ones((2, 3, 4) + view.array_shape(box)[3:], view.dtype))
            assert not any(p.name.endswith((".partial", ".spill")) for p in target.parent.iterdir())


@pytest.mark.parametrize("kind", list(REAL_DATA_FILES))
@pytest.mark.parametrize("lens", [0xFF, 0xF5, 0x5F, 0x0F, 0xF0, 0x0A, 0xA0, 0x9A])
def test_huge_declared_lengths_are_refused_small(kind, lens, tmp_path):
    """A data file, then also its mag's header, declaring blocks or files that would need
    gigabytes (libwkw allocates a block and a jump table whole and aborted the process on
    2^15-voxel blocks): refused, nothing large allocated, the process lives."""
    path, header = _real_file(kind)
    mag = tmp_path / "1"
    shutil.copytree(path.parent.parent.parent, mag)
    data_file = mag / "z0" / "y0" / "x0.wkw"
    data = bytearray(path.read_bytes())
    data[4] = lens
    data_file.write_bytes(bytes(data))
    assert isinstance(outcome(WKWHeader.from_bytes, bytes(data[:HEADER_SIZE]), data_file), WKWError)
    assert isinstance(outcome(check_data_file, data_file, header), WKWError)
    assert isinstance(outcome(MagView.at(mag).read, BoundingBox((0, 0, 0), (4, 4, 4))), WKWError)
    if header.compressed:
        assert isinstance(outcome(CompressedFileWriter, data_file, header), WKWError)
    head = bytearray((mag / "header.wkw").read_bytes())
    head[4] = lens
    (mag / "header.wkw").write_bytes(bytes(head))
    assert isinstance(outcome(WKWHeader.read, mag / "header.wkw"), WKWError)
    assert isinstance(outcome(MagView.at, mag), WKWError)


# ----------------------------------------------------------------------------- buckets

BUCKET = WKWHeader(np.dtype("uint32"), 1, 32, 1, BLOCK_LZ4)


def _bucket(header: WKWHeader) -> bytes:
    import lz4.block

    raw = np.arange(header.block_len**3 * header.num_channels, dtype=header.dtype).tobytes()
    if not header.compressed:
        return header.to_bytes(HEADER_SIZE) + raw
    block = lz4.block.compress(raw, store_size=False)
    return header.to_bytes(HEADER_SIZE + 8) + struct.pack("<Q", HEADER_SIZE + 8 + len(block)) + block


@given(data=st.binary(max_size=200) | mutated(_bucket(BUCKET), header_bias=24))
def test_decode_bucket_never_crashes(data):
    decoded = outcome(decode_bucket, data, BUCKET, "bucket")
    if isinstance(decoded, np.ndarray):
        assert decoded.shape == (32, 32, 32, 1)


@pytest.mark.parametrize("block_len", [1024, 2**15])
@pytest.mark.parametrize("block_type", [1, 2])
def test_decode_bucket_of_a_huge_declared_block(block_len, block_type):
    """A mag header whose block would be gigabytes: the bucket is refused, nothing allocated."""
    header = WKWHeader(np.dtype("uint64"), 1, block_len, 1, block_type)
    small = _bucket(WKWHeader(np.dtype("uint64"), 1, 8, 1, block_type))
    data = header.to_bytes(HEADER_SIZE + (8 if block_type != 1 else 0)) + small[HEADER_SIZE:]
    if block_type != 1:
        data = data[:HEADER_SIZE] + struct.pack("<Q", len(data)) + data[HEADER_SIZE + 8 :]
    assert isinstance(outcome(decode_bucket, data, header, "bucket"), WKWError)


# ----------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
_KEYS = ["id", "scale", "factor", "unit", "dataLayers", "name", "category", "boundingBox", "topLeft", "width"]
_KEYS += ["height", "depth", "elementClass", "numChannels", "dataFormat", "mags", "mag", "path"]
_KEYS += ["wkwResolutions", "resolution", "cubeLength", "largestSegmentId"]
shaped = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.sampled_from(["color", "uint24", "float", "wkw", ""]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(_KEYS), children, max_size=6),
    max_leaves=40,
)


def _properties_cases():
    real = [mutated(path.read_bytes()) for path in PROPERTIES_FILES]
    structured = [json_values, shaped]
    structured += [_with_replaced_values(json.loads(path.read_text())) for path in PROPERTIES_FILES]
    return st.one_of(
        st.binary(max_size=200),
        *real,
        *(s.map(lambda value: json.dumps(value).encode()) for s in structured),
        st.integers(1, 200_000).map(lambda depth: b"[" * depth + b"]" * depth),
        st.integers(1, 200_000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    )


@st.composite
def _with_replaced_values(draw, document):
    """A real properties document with some values anywhere in it replaced by random JSON."""

    def walk(value):
        if draw(st.integers(0, 9)) == 0:
            return draw(shaped)
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items() if draw(st.integers(0, 19))}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(document)


@given(data=_properties_cases())
def test_read_properties_never_crashes(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "datasource-properties.json"
        path.write_bytes(data)
        outcome(read_properties, path)


# ----------------------------------------------------------------------------- NML

NML_SOURCES = [(DATA / "annotations" / "test_a.nml").read_bytes()]
with SafeZip.open(DATA / "annotations" / "l4_sample__explorational__suser__94b271.zip") as _zip:
    NML_SOURCES += [_zip.read(name) for name in _zip.names() if name.endswith(".nml")]


@given(data=st.binary(max_size=300) | st.one_of(*(mutated(source) for source in NML_SOURCES)))
def test_read_nml_never_crashes(data):
    outcome(read_nml, data, "hostile.nml")


# ----------------------------------------------------------------------------- ZIP archives


def _read_everything(path: Path) -> int:
    """Open the archive and read every entry, nested archives included; the bytes read."""
    total = 0
    with SafeZip.open(path) as archive:
        for name in archive.names():
            if name.endswith(".zip"):
                with archive.open_nested(name) as inner:
                    for inner_name in inner.names():
                        total += len(inner.read(inner_name))
            else:
                total += len(archive.read(name))
    return total


@given(data=st.binary(max_size=300) | st.one_of(*(mutated(p.read_bytes(), header_bias=64) for p in ZIPS)))
def test_safe_zip_never_crashes(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hostile.zip"
        path.write_bytes(data)
        outcome(_read_everything, path)


@given(tail=st.binary(min_size=22, max_size=22).map(lambda b: b"PK\x05\x06" + b[4:]), head=st.binary(max_size=100))
def test_safe_zip_end_record_with_random_fields(tail, head):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hostile.zip"
        path.write_bytes(head + tail)
        outcome(_read_everything, path)


# ----------------------------------------------------------------------------- found by the tests above


def _compressed_mag(tmp_path: Path) -> tuple[Path, bytearray]:
    from napari_wkw.core.dataset import Dataset

    dataset = Dataset.create(tmp_path / "ds", (1, 1, 1))
    view = dataset.add_layer("c", "color", "uint8").add_mag(1, block_type=BLOCK_LZ4, file_len=2, block_len=8)
    view.write((0, 0, 0), np.random.default_rng(0).integers(0, 255, (16, 16, 16)).astype(np.uint8))
    return view.path, bytearray((view.path / "z0" / "y0" / "x0.wkw").read_bytes())


def test_a_write_over_a_corrupt_block_is_refused(tmp_path):
    """Merging a partly covered block with an old block whose LZ4 data does not decode raised
    lz4's LZ4BlockError."""
    mag, data = _compressed_mag(tmp_path)
    first_end = struct.unpack_from("<Q", data, HEADER_SIZE)[0]
    data[HEADER_SIZE + 8 * 8 : first_end] = b"\xff" * (first_end - HEADER_SIZE - 8 * 8)
    (mag / "z0" / "y0" / "x0.wkw").write_bytes(bytes(data))
    error = outcome(MagView.at(mag).write, (1, 1, 1), np.ones((2, 2, 2), np.uint8))
    assert isinstance(error, WKWError) and "block 0 is corrupt" in str(error)


def test_a_jump_table_out_of_order_is_refused(tmp_path):
    """Two block ends swapped: the file was accepted, and rewriting it wrote a file that libwkw
    cannot read (blocks copied with negative lengths)."""
    mag, data = _compressed_mag(tmp_path)
    ends = list(struct.unpack_from("<8Q", data, HEADER_SIZE))
    ends[2], ends[3] = ends[3], ends[2]
    struct.pack_into("<8Q", data, HEADER_SIZE, *ends)
    (mag / "z0" / "y0" / "x0.wkw").write_bytes(bytes(data))
    assert isinstance(outcome(MagView.at(mag).write, (9, 9, 9), np.ones((2, 2, 2), np.uint8)), WKWError)
    assert (mag / "z0" / "y0" / "x0.wkw").read_bytes() == bytes(data)  # left as it was


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000 + "]" * 5000,  # RecursionError from json
        '{"dataLayers": [{"name": "s", "category": "segmentation", "elementClass": "uint32", "largestSegmentId": '
        'Infinity, "boundingBox": {"topLeft": [0, 0, 0], "width": 1, "height": 1, "depth": 1}}]}',  # OverflowError
        '{"dataLayers": [{"name": "s", "numChannels": 1e400, "boundingBox": {"topLeft": [0, 0, 0], "width": 1, '
        '"height": 1, "depth": 1}}]}',
    ],
)
def test_properties_that_crashed_the_parser(text, tmp_path):
    (tmp_path / "p.json").write_text(text)
    assert isinstance(outcome(read_properties, tmp_path / "p.json"), WKWError)
