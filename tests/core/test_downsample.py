"""Downsampling filters and mag planning against slow, obviously correct references."""

from __future__ import annotations

from collections import Counter
from itertools import product

import numpy as np
import pytest
import wkw

from napari_wkw.core import BoundingBox, Dataset, Mag, build_pyramid, default_coarsest_mag, plan_mags
from napari_wkw.core.downsample import downsample_data
from napari_wkw.core.writing import write_array


def reference(data: np.ndarray, factor, method: str) -> np.ndarray:
    """Loop over output voxels; each group in the reference's order: z slowest, then x, then y."""
    fx, fy, fz = factor
    data4 = data if data.ndim == 4 else data[..., None]
    z, y, x, c = data4.shape
    out = np.zeros((z // fz, y // fy, x // fx, c), data.dtype)
    for k, j, i, ch in product(range(z // fz), range(y // fy), range(x // fx), range(c)):
        block = data4[k * fz : (k + 1) * fz, j * fy : (j + 1) * fy, i * fx : (i + 1) * fx, ch]
        group = block.transpose(0, 2, 1).ravel()  # (z, x, y): y fastest
        if method == "mode":
            counts = Counter(group.tolist())
            best = max(counts.values())
            value = next(v for v in group.tolist() if counts[v] == best)
        elif method == "median":
            value = np.median(group)
        elif method == "mean":
            value = np.rint(group.mean()) if data.dtype.kind in "ui" else group.mean()
        elif method == "nearest":
            value = group[0]
        else:
            value = getattr(group, method)()
        out[k, j, i, ch] = np.array(value).astype(data.dtype)
    return out if data.ndim == 4 else out[..., 0]


@pytest.mark.parametrize("method", ["median", "mode", "mean", "nearest", "max", "min"])
@pytest.mark.parametrize("factor", [(2, 2, 2), (2, 2, 1), (4, 4, 2)])
@pytest.mark.parametrize("dtype", ["uint8", "uint32", "float32"])
def test_filters_match_reference(method, factor, dtype):
    rng = np.random.default_rng(7)
    data = rng.integers(0, 4, (8, 8, 8)).astype(dtype)  # few values: many mode ties
    np.testing.assert_array_equal(downsample_data(data, factor, method), reference(data, factor, method))


def test_multichannel_downsampling_is_per_channel():
    data = np.random.default_rng(1).integers(0, 255, (4, 6, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(downsample_data(data, (2, 2, 2), "median"), reference(data, (2, 2, 2), "median"))


def test_mode_tie_goes_to_first_value_in_the_reference_order():
    group = np.array([[[5, 3], [3, 5]], [[7, 7], [9, 9]]], np.uint32)  # (z, x, y) order: 5,3,3,5,7,9,7,9
    assert downsample_data(group, (2, 2, 2), "mode").item() == 5
    # a group webknossos 4.3.3 downsampled to 72: 87 and 72 both appear three times, and
    # 72 comes first with y fastest (0, 72, 87, 72, ...) although 87 does with x fastest
    group = np.array([[[0, 87], [72, 72]], [[0, 87], [72, 87]]], np.uint32)  # (z, y, x)
    assert downsample_data(group, (2, 2, 2), "mode").item() == 72


def test_plan_mags_like_the_reference_tooling():
    assert [m.folder_name() for m in plan_mags(Mag(1, 1, 1), Mag(32, 32, 32), (11.24, 11.24, 25))] == [
        "2-2-1", "4-4-2", "8-8-4", "16-16-8", "32-32-16",
    ]
    assert [m.folder_name() for m in plan_mags(Mag(1, 1, 1), Mag(8, 8, 8), (5, 5, 5))] == ["2", "4", "8"]
    assert [m.folder_name() for m in plan_mags(Mag(1, 1, 1), Mag(4, 4, 4), None, "isotropic")] == ["2", "4"]
    assert [m.folder_name() for m in plan_mags(Mag(1, 1, 1), Mag(8, 8, 8), (1, 1, 1), "constant-z")] == [
        "2-2-1", "4-4-1", "8-8-1",
    ]
    assert default_coarsest_mag((2048, 2048, 128)) == Mag(32, 32, 32)
    assert default_coarsest_mag((24, 24, 24)) == Mag(4, 4, 4)


def test_build_pyramid_each_mag_from_the_previous(tmp_path):
    ds = Dataset.create(tmp_path / "ds", (11.24, 11.24, 25.0))
    box = BoundingBox((3, 10, 2), (150, 90, 20))
    layer = ds.add_layer("seg", "segmentation", np.uint16, bounding_box=box)
    labels = np.repeat(np.random.default_rng(2).integers(0, 6, (20, 90, 75)), 2, axis=2).astype(np.uint16)
    write_array(layer.add_mag(1, file_len=4), labels, box.topleft)
    built = build_pyramid(layer)
    assert [m.folder_name() for m in built] == ["2-2-1", "4-4-2"]
    previous = Mag(1, 1, 1)
    for mag in built:
        factor = tuple(m // p for m, p in zip(mag.xyz, previous.xyz))
        target = box.in_mag(mag)
        source_box = BoundingBox(tuple(a * f for a, f in zip(target.topleft, factor)),
                                 tuple(s * f for s, f in zip(target.size, factor)))
        # voxels outside the layer's box repeat the nearest inside one (as the reference does)
        inside = source_box.intersection(box.in_mag(previous))
        source = wkw.Dataset.open(str(layer.mags[previous].path)).read(inside.topleft, inside.size)[0].T
        pad = [(i - s, e - j) for s, i, j, e in zip(source_box.topleft, inside.topleft, inside.bottomright,
                                                     source_box.bottomright)][::-1]
        expected = reference(np.pad(source, pad, mode="edge"), factor, "mode")
        got = wkw.Dataset.open(str(layer.mags[mag].path)).read(target.topleft, target.size)[0].T
        np.testing.assert_array_equal(got, expected)
        previous = mag


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.float32, np.float64])
@pytest.mark.parametrize("factor", [(2, 2, 1), (2, 2, 2), (2, 1, 1), (1, 2, 2)])
def test_fast_median_equals_the_group_median(dtype, factor):
    """The sorting-network median gives exactly the reference rule (mean of the two middle values)."""
    from napari_wkw.core import downsample

    rng = np.random.default_rng(7)
    if np.dtype(dtype).kind == "f":
        data = rng.normal(size=(8, 16, 32, 2)).astype(dtype)
    else:
        data = rng.integers(0, np.iinfo(dtype).max, (8, 16, 32, 2), dtype=np.uint64).astype(dtype)
        data[0, :4, :4] = np.iinfo(dtype).max  # sums of the two middle values overflow the type
    expected = downsample._median(downsample._groups(data, factor))
    np.testing.assert_array_equal(downsample.downsample_data(data, factor, "median"), expected)


def test_mode_of_large_groups_counts_past_255():
    """A one-step 8-8-8 (512 voxels per group) mode must not wrap its counts around."""
    group = np.full((8, 8, 8), 7, np.uint32)
    group.reshape(-1)[:200] = 3  # 312 sevens, 200 threes
    assert downsample_data(group, (8, 8, 8), "mode").item() == 7
