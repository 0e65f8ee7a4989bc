"""Whatever is written through the public API reads back equal to numpy, also through libwkw.

Random shapes, offsets, every WKW voxel type, channel counts, mags, block and file
lengths, raw and LZ4 blocks; boxes that are not aligned to blocks or files, written
over each other.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import wkw
from hypothesis import given
from hypothesis import strategies as st

from napari_wkw.core.dataset import Dataset, MagView
from napari_wkw.core.element_class import WKW_DTYPES
from napari_wkw.core.geometry import BoundingBox, Mag
from napari_wkw.core.save import ArrayLayer, save_dataset
from napari_wkw.core.wkw_file import BLOCK_LZ4, BLOCK_LZ4HC, BLOCK_RAW
from napari_wkw.core.writing import write_array

dtypes = st.sampled_from(WKW_DTYPES)
channels = st.sampled_from([1, 1, 2, 3])
mags = st.sampled_from([Mag(1, 1, 1), Mag(2, 2, 2), Mag(2, 2, 1), Mag(4, 4, 2), Mag(1, 2, 4)])
block_types = st.sampled_from([BLOCK_RAW, BLOCK_LZ4, BLOCK_LZ4HC])
#: (block length, file length): files of 8 to 64 voxels, so boxes span several of them
layouts = st.sampled_from([(8, 1), (16, 1), (32, 1), (2, 4), (4, 2), (4, 4), (8, 2), (8, 4), (16, 2), (1, 8)])
offsets = st.tuples(*[st.integers(0, 70)] * 3)
sizes = st.tuples(*[st.integers(1, 40)] * 3)
seeds = st.integers(0, 2**32 - 1)


def random_array(seed: int, shape_zyx: tuple[int, ...], dtype: np.dtype, num_channels: int) -> np.ndarray:
    """Random voxels of any bit pattern (NaNs of floats included): compared as bytes."""
    shape = tuple(shape_zyx) + ((num_channels,) if num_channels > 1 else ())
    raw = np.random.default_rng(seed).integers(0, 256, (*shape, dtype.itemsize), dtype=np.uint8)
    raw[: shape[0] // 3] = 0  # some zeros, so LZ4 has something to compress too
    return raw.view(dtype).reshape(shape)


def as_bits(array: np.ndarray) -> np.ndarray:
    return array.view(f"u{array.dtype.itemsize}")


def read_libwkw(mag_path: Path, box: BoundingBox, num_channels: int) -> np.ndarray:
    """The box as libwkw itself reads it, as a (z, y, x[, c]) array."""
    with wkw.Dataset.open(str(mag_path)) as handle:
        data = handle.read(box.topleft, box.size)
    data = data.transpose(3, 2, 1, 0)
    return data[..., 0] if num_channels == 1 else data


def size_zyx(size) -> tuple[int, int, int]:
    return (size[2], size[1], size[0])


@given(
    dtype=dtypes,
    num_channels=channels,
    mag=mags,
    block_type=block_types,
    layout=layouts,
    writes=st.lists(st.tuples(offsets, sizes, seeds), min_size=1, max_size=3),
)
def test_unaligned_writes_read_back(dtype, num_channels, mag, block_type, layout, writes):
    block_len, file_len = layout
    with tempfile.TemporaryDirectory() as folder:
        dataset = Dataset.create(Path(folder) / "ds", (11.24, 11.24, 25))
        layer = dataset.add_layer("layer", "color", dtype, num_channels=num_channels)
        view = layer.add_mag(mag, block_type=block_type, file_len=file_len, block_len=block_len)
        dataset.save_properties()

        extent = np.max([np.add(offset, size) for offset, size, _ in writes], axis=0)
        whole = BoundingBox((0, 0, 0), tuple(int(v) for v in extent))
        model = np.zeros(view.array_shape(whole), dtype)
        for offset, size, seed in writes:
            data = random_array(seed, size_zyx(size), dtype, num_channels)
            view.write(offset, data)
            model[BoundingBox(offset, size).zyx_slices()] = data

        np.testing.assert_array_equal(as_bits(view.read(whole)), as_bits(model))
        np.testing.assert_array_equal(as_bits(read_libwkw(view.path, whole, num_channels)), as_bits(model))
        # every file written has a header and length its mag accepts
        checked = MagView.at(view.path)
        np.testing.assert_array_equal(as_bits(checked.read(whole)), as_bits(model))
        # the dataset reopens with the mag listed
        reopened = Dataset.open(dataset.path).layers["layer"]
        assert mag in reopened.mags and reopened.mags[mag].header == view.header


@given(
    dtype=dtypes,
    num_channels=channels,
    block_type=block_types,
    layout=layouts,
    offset=offsets,
    size=sizes,
    seed=seeds,
)
def test_write_array_streams_any_box(dtype, num_channels, block_type, layout, offset, size, seed):
    block_len, file_len = layout
    with tempfile.TemporaryDirectory() as folder:
        dataset = Dataset.create(Path(folder) / "ds", (1, 1, 1))
        layer = dataset.add_layer("layer", "color", dtype, num_channels=num_channels)
        view = layer.add_mag(1, block_type=block_type, file_len=file_len, block_len=block_len)
        data = random_array(seed, size_zyx(size), dtype, num_channels)
        largest = write_array(view, data, offset)
        box = BoundingBox(offset, size)
        np.testing.assert_array_equal(as_bits(view.read(box)), as_bits(data))
        np.testing.assert_array_equal(as_bits(read_libwkw(view.path, box, num_channels)), as_bits(data))
        if dtype.kind in "ui":
            assert largest == data.max()
        # nothing outside the box was touched
        grown = BoundingBox(tuple(max(0, a - 3) for a in offset), tuple(s + 6 for s in size))
        around = view.read(grown)
        around[box.zyx_slices(grown.topleft)] = 0
        assert not as_bits(around).any()


@given(
    dtype=st.sampled_from([d for d in WKW_DTYPES if d.kind in "ui"]),
    offset=offsets,
    size=st.tuples(st.integers(1, 48), st.integers(1, 48), st.integers(1, 20)),
    seed=seeds,
    compress=st.booleans(),
    rgb=st.booleans(),
)
def test_save_dataset_round_trips(dtype, offset, size, seed, compress, rgb):
    num_channels = 3 if rgb and dtype == np.uint8 else 1
    data = random_array(seed, size_zyx(size), dtype, num_channels)
    with tempfile.TemporaryDirectory() as folder:
        path = save_dataset(
            Path(folder) / "saved",
            [ArrayLayer("layer", "color", [data], (4.0, 4.0, 8.0), offset=offset, num_channels=num_channels)],
            compress=compress,
        )
        layer = Dataset.open(path).layers["layer"]
        assert layer.bounding_box == BoundingBox(offset, size)
        finest = layer.mags[Mag(1, 1, 1)]
        box = BoundingBox(offset, size)
        np.testing.assert_array_equal(finest.read(box), data)
        np.testing.assert_array_equal(read_libwkw(finest.path, box, num_channels), data)
        for mag, view in layer.mags.items():  # every mag of the pyramid is readable, file by file
            MagView.at(view.path).read(layer.bounding_box.in_mag(mag))
