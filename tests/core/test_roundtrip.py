"""Write then read every element class, raw and compressed; check against bare libwkw reads."""

from __future__ import annotations

import numpy as np
import pytest
import wkw

from napari_wkw.core import BLOCK_LZ4, BLOCK_LZ4HC, BLOCK_RAW, BoundingBox, Dataset
from napari_wkw.core.dataset import MagView
from napari_wkw.core.writing import write_array

DTYPES = ["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float32", "float64"]
OFFSET = (5, 37, 3)  # x, y, z: not block-aligned
SHAPE = (37, 70, 45)  # z, y, x: no multiple of 32


def bare_read(mag_path, offset, size) -> np.ndarray:
    """(z, y, x, c) through libwkw alone."""
    return wkw.Dataset.open(str(mag_path)).read(offset, size).transpose(3, 2, 1, 0)


def random_volume(dtype, channels: int, shape=SHAPE, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    full = shape + ((channels,) if channels > 1 else ())
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.normal(0, 1000, full).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, full, dtype=dtype, endpoint=True)


def make_mag(tmp_path, dtype, channels, block_type, file_len=2):
    ds = Dataset.create(tmp_path / "ds", (1.0, 1.0, 1.0))
    box = BoundingBox(OFFSET, SHAPE[::-1])
    layer = ds.add_layer("layer", "color", dtype, num_channels=channels, bounding_box=box)
    return layer.add_mag(1, block_type=block_type, file_len=file_len)


@pytest.mark.parametrize("block_type", [BLOCK_RAW, BLOCK_LZ4, BLOCK_LZ4HC])
@pytest.mark.parametrize(("dtype", "channels"), [(d, 1) for d in DTYPES] + [("uint8", 3), ("uint16", 2)])
def test_write_then_read_equals_source_and_libwkw(tmp_path, dtype, channels, block_type):
    mag = make_mag(tmp_path, dtype, channels, block_type)
    volume = random_volume(dtype, channels)
    write_array(mag, volume, OFFSET)
    # a box reaching past the data on every side: zeros there (compressed zero blocks decode)
    outer = BoundingBox((0, 0, 0), (OFFSET[0] + SHAPE[2] + 40, OFFSET[1] + SHAPE[1] + 30, OFFSET[2] + SHAPE[0] + 50))
    expected = np.zeros(mag.array_shape(outer), volume.dtype)
    expected[BoundingBox(OFFSET, SHAPE[::-1]).zyx_slices()] = volume
    np.testing.assert_array_equal(mag.read(outer), expected)
    bare = bare_read(mag.path, outer.topleft, outer.size)
    np.testing.assert_array_equal(bare if channels > 1 else bare[..., 0], expected)
    header = wkw.Dataset.open(str(mag.path)).header
    assert header.block_type == block_type and header.num_channels == channels
    assert len(mag.files()) > 1, "the data spans several files (file_len=2)"


@pytest.mark.parametrize("block_type", [BLOCK_RAW, BLOCK_LZ4])
def test_partial_overwrite_keeps_the_rest(tmp_path, block_type):
    mag = make_mag(tmp_path, "uint16", 1, block_type)
    volume = random_volume("uint16", 1)
    write_array(mag, volume, OFFSET)
    patch = random_volume("uint16", 1, shape=(9, 13, 11), seed=5)
    mag.write((38, 50, 20), patch)  # unaligned, crossing block borders
    expected = volume.copy()
    expected[17:26, 13:26, 33:44] = patch
    np.testing.assert_array_equal(bare_read(mag.path, OFFSET, SHAPE[::-1])[..., 0], expected)


def test_compressed_files_have_libwkw_layout(tmp_path):
    """A whole file written by libwkw (LZ4) and by our block writer.

    libwkw's LZ4 encoder is not byte-identical to python-lz4's (the first block differs
    by a byte), so the check is: same header, same jump-table layout, each decodes the
    other's way to the same voxels.
    """
    volume = random_volume("uint8", 1, shape=(64, 64, 64), seed=3) // 8  # compressible
    ours = make_mag(tmp_path, "uint8", 1, BLOCK_LZ4, file_len=2)
    write_array(ours, volume, (0, 0, 0))
    theirs = wkw.Dataset.create(str(tmp_path / "libwkw"), wkw.Header(np.uint8, file_len=2, block_type=BLOCK_LZ4))
    theirs.write((0, 0, 0), np.ascontiguousarray(volume).transpose(2, 1, 0)[None])
    ours_bytes = (ours.path / "z0" / "y0" / "x0.wkw").read_bytes()
    theirs_bytes = (tmp_path / "libwkw" / "z0" / "y0" / "x0.wkw").read_bytes()
    np.testing.assert_array_equal(bare_read(ours.path, (0, 0, 0), (64, 64, 64))[..., 0], volume)
    np.testing.assert_array_equal(mag_read_of(tmp_path / "libwkw", ours), volume)
    assert ours_bytes[:16] == theirs_bytes[:16]  # header incl. data offset after the jump table
    jump_ours = np.frombuffer(ours_bytes, "<u8", count=8, offset=16)
    jump_theirs = np.frombuffer(theirs_bytes, "<u8", count=8, offset=16)
    assert jump_ours[-1] == len(ours_bytes) and jump_theirs[-1] == len(theirs_bytes)
    assert abs(len(ours_bytes) - len(theirs_bytes)) < 0.01 * len(theirs_bytes)


def mag_read_of(path, like: MagView) -> np.ndarray:
    """Read a libwkw-written mag through our own MagView."""
    view = MagView(like.layer, like.mag, path)
    return view.read(BoundingBox((0, 0, 0), (64, 64, 64)))


def test_lazy_and_view_read_nothing_until_sliced(tmp_path, monkeypatch):
    mag = make_mag(tmp_path, "uint8", 1, BLOCK_LZ4, file_len=32)
    volume = random_volume("uint8", 1)
    write_array(mag, volume, OFFSET)
    calls = []
    original = MagView.read
    monkeypatch.setattr(MagView, "read", lambda self, box: calls.append(box) or original(self, box))
    box = BoundingBox(OFFSET, SHAPE[::-1])
    lazy, view = mag.lazy(box), mag.view(box)
    assert calls == []
    # chunk borders on the absolute grid: z by the block length, x/y by 512
    assert lazy.chunks == view.chunks == ((29, 8), (70,), (45,))
    np.testing.assert_array_equal(lazy[3:30, 10:60, 2:40].compute(), volume[3:30, 10:60, 2:40])
    np.testing.assert_array_equal(view[3:30, 10:60, 2:40], volume[3:30, 10:60, 2:40])
    np.testing.assert_array_equal(view[7, ::3, -5], volume[7, ::3, -5])
    np.testing.assert_array_equal(np.asarray(view), volume)


def test_pyramid_shapes_divide_exactly_by_the_mags(tmp_path):
    from napari_wkw.core import build_pyramid

    ds = Dataset.create(tmp_path / "ds", (11.24, 11.24, 25.0))
    layer = ds.add_layer("c", "color", "uint8", bounding_box=BoundingBox((5, 37, 3), (1001, 301, 45)))
    write_array(layer.add_mag(1), np.ones((45, 301, 1001), np.uint8), (5, 37, 3))
    build_pyramid(layer)
    shapes = [np.array(a.shape) for a in layer.view_pyramid()]
    assert [m.folder_name() for m in layer.mags] == ["1", "2-2-1", "4-4-2", "8-8-4", "16-16-8"]
    for mag, shape in zip(layer.mags, shapes):
        np.testing.assert_array_equal(shapes[0], shape * np.array(mag.xyz[::-1]))


def test_spilled_blocks_are_written_back_intact(tmp_path, monkeypatch):
    """With a zero spill budget every compressed block goes through the spill file."""
    from napari_wkw.core import wkw_file

    monkeypatch.setattr(wkw_file, "SPILL_BYTES", 0)
    mag = make_mag(tmp_path, "uint32", 1, BLOCK_LZ4)
    volume = random_volume("uint32", 1)
    write_array(mag, volume, OFFSET)
    mag.write((20, 40, 10), np.full((5, 6, 7), 3, np.uint32))  # rewrite through the old file's mapping
    volume[7:12, 3:9, 15:22] = 3
    np.testing.assert_array_equal(bare_read(mag.path, OFFSET, SHAPE[::-1])[..., 0], volume)
    leftovers = [p.name for p in mag.path.rglob(".*")]
    assert leftovers == [], leftovers


def test_views_slice_lazily_like_napari_does(tmp_path, monkeypatch):
    """napari cuts the displayed region with z whole, then the plane: only one block layer is read."""
    mag = make_mag(tmp_path, "uint16", 1, BLOCK_LZ4, file_len=4)
    volume = random_volume("uint16", 1, shape=(100, 90, 80))
    write_array(mag, volume, (0, 0, 0))
    view = mag.view(BoundingBox((0, 0, 0), (80, 90, 100)))
    calls = []
    original = MagView.read
    monkeypatch.setattr(MagView, "read", lambda self, box: calls.append(box) or original(self, box))
    region = view[:, 10:70, 5:60]
    assert calls == [] and region.shape == (100, 60, 55)
    np.testing.assert_array_equal(np.asarray(region[70]), volume[70, 10:70, 5:60])
    assert [box.topleft[2] for box in calls] == [64], "one 32-deep block layer, nothing else"
    np.testing.assert_array_equal(np.asarray(region[71]), volume[71, 10:70, 5:60])
    assert len(calls) == 1, "the next plane comes from the cache"
    stepped = view[::3, 7, ::2][5:, :-4]
    np.testing.assert_array_equal(np.asarray(stepped), volume[::3, 7, ::2][5:, :-4])
    assert stepped.chunks is None and view.chunks == ((32, 32, 32, 4), (90,), (80,))
    with pytest.raises(TypeError, match="read-only"):
        view[0, 0, 0] = 1


def test_a_failing_source_leaves_no_temporary_files(tmp_path, monkeypatch):
    from napari_wkw.core import wkw_file

    monkeypatch.setattr(wkw_file, "SPILL_BYTES", 0)
    mag = make_mag(tmp_path, "uint8", 1, BLOCK_LZ4, file_len=4)

    class FailsLate:
        shape, dtype, ndim = (64, 128, 128), np.dtype(np.uint8), 3
        calls = 0

        def __getitem__(self, key):
            FailsLate.calls += 1
            if FailsLate.calls > 1:  # the second of two tiles
                raise OSError("source went away")
            return np.ones(tuple(k.stop - k.start for k in key), np.uint8)

    with pytest.raises(OSError, match="went away"):
        write_array(mag, FailsLate(), (0, 0, 0))
    assert [p.name for p in mag.path.rglob(".*")] == []
    assert mag.files() == [], "no half-written data file either"
