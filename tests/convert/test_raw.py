"""Raw binary volumes: the real EM tiles written as raw files in both orders, read back with
the bare wkw library; the reference tool's conventions (F: x fastest, C: z fastest)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import wkw

from napari_wkw.convert.engine import ConversionSettings, convert_layers
from napari_wkw.convert.raw import RawSource, build_raw_specs, parse_raw_dtype, parse_shape
from napari_wkw.core.errors import WKWError
from napari_wkw.core.geometry import BoundingBox
from napari_wkw.jobs.runner import JobSettings

from ..widgets.conftest import em_volume


def bare(mag_path, offset, size) -> np.ndarray:
    with wkw.Dataset.open(str(mag_path)) as handle:
        return handle.read(offset, size)[0].transpose(2, 1, 0)


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    return em_volume(37, 150, 210)  # z, y, x: real EM texture, odd sizes


def test_f_order_is_x_fastest_and_c_order_z_fastest(tmp_path, volume):
    (tmp_path / "f.raw").write_bytes(volume.tobytes())  # (z, y, x) C order: x fastest
    (tmp_path / "c.raw").write_bytes(np.ascontiguousarray(volume.transpose(2, 1, 0)).tobytes())  # z fastest
    box = BoundingBox((17, 33, 5), (100, 64, 20))
    expected = volume[box.zyx_slices()]
    for name, order in (("f.raw", "F"), ("c.raw", "C")):
        source = RawSource(tmp_path / name, (210, 150, 37), "uint8", order=order)
        assert source.size == (210, 150, 37) and source.croppable
        np.testing.assert_array_equal(source.read(box), expected)
        # as the reference reads it: np.memmap of (x, y, z) in that order
        reference = np.memmap(tmp_path / name, np.uint8, "r", shape=(210, 150, 37), order=order)
        np.testing.assert_array_equal(source.read(box), np.asarray(reference[17:117, 33:97, 5:25]).transpose(2, 1, 0))


def test_offset_big_endian_and_flips(tmp_path, volume):
    data = (volume.astype(np.uint16) * 257 + 3)[:12]
    (tmp_path / "v.raw").write_bytes(b"HEADER" * 10 + data.astype(">u2").tobytes())
    source = RawSource(tmp_path / "v.raw", (210, 150, 12), ">u2", offset=60, flip=(True, False, True))
    assert source.dtype == np.uint16 and source.dtype.isnative
    box = BoundingBox((0, 0, 0), (210, 150, 12))
    np.testing.assert_array_equal(source.read(box), data[::-1, :, ::-1])
    again = pickle.loads(pickle.dumps(source))  # units carry sources to worker processes
    np.testing.assert_array_equal(again.read(BoundingBox((5, 6, 7), (3, 4, 5))), data[::-1, :, ::-1][7:12, 6:10, 5:8])


def test_a_file_of_the_wrong_size_is_refused_saying_both_sizes(tmp_path, volume):
    (tmp_path / "v.raw").write_bytes(volume.tobytes())
    with pytest.raises(WKWError) as error:
        RawSource(tmp_path / "v.raw", (210, 150, 38), "uint8")
    assert str(error.value) == (
        f"{tmp_path / 'v.raw'}: the file has 1165500 bytes, but 210 x 150 x 38 voxels of uint8 need 1197000 bytes; "
        "check --shape, --dtype and --offset"
    )
    with pytest.raises(WKWError, match=r"\+ 4 bytes of offset need 1165504 bytes"):
        RawSource(tmp_path / "v.raw", (210, 150, 37), "uint8", offset=4)
    with pytest.raises(WKWError, match="uint16 need 2331000 bytes"):
        RawSource(tmp_path / "v.raw", (210, 150, 37), "uint16")
    with pytest.raises(WKWError, match="no such file"):
        RawSource(tmp_path / "missing.raw", (1, 1, 1), "uint8")


def test_parsing_shapes_and_types():
    assert parse_shape("1024, 1024,512") == (1024, 1024, 512)
    for bad in ("1,2", "1,2,0", "a,b,c"):
        with pytest.raises(ValueError, match="three positive whole numbers"):
            parse_shape(bad)
    assert parse_raw_dtype(">u2") == np.dtype(">u2") and parse_raw_dtype("float32") == np.float32
    for bad in ("complex64", "nonsense", "S4"):
        with pytest.raises(ValueError):
            parse_raw_dtype(bad)


def test_converted_with_pyramid_and_a_cast(tmp_path, volume):
    (tmp_path / "v.raw").write_bytes(volume.astype(np.float32).tobytes())
    specs = build_raw_specs(tmp_path / "v.raw", shape=(210, 150, 37), source_dtype="float32", dtype="uint8")
    result = convert_layers(
        tmp_path / "out", specs, ConversionSettings(voxel_size=(4, 4, 40)), jobs=JobSettings("threads", 2)
    )
    assert [m.folder_name() for m in result.layers["color"]] == ["1", "2-2-1", "4-4-1"]  # 4 x 4 x 40 nm
    np.testing.assert_array_equal(bare(tmp_path / "out" / "color" / "1", (0, 0, 0), (210, 150, 37)), volume)
