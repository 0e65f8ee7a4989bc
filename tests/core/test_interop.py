"""A dataset written by the reference tooling (webknossos 4.3.3) opens here, values and all,
and our filters reproduce its pyramid."""

from __future__ import annotations

import numpy as np
import pytest
import wkw

from napari_wkw.core import BoundingBox, Mag, locate

from ..conftest import DATA

DATASET = DATA / "wkw" / "webknossos_written"
OFFSET = (7, 9, 3)


def expected_volumes() -> dict[str, np.ndarray]:
    """What tests/data/README.md says was written, as (z, y, x) arrays."""
    index = np.arange(70 * 60 * 40).reshape(70, 60, 40)  # x, y, z as written
    return {
        "color": (index * 7 % 60000).astype(np.uint16).T,
        "segmentation": (index // 4000).astype(np.uint32).T,
    }


def test_reference_dataset_opens_with_its_properties():
    selection = locate(DATASET)
    assert selection.dataset.voxel_size == pytest.approx((11.24, 11.24, 25.0))
    for layer in selection.layers:
        assert list(layer.mags) == [Mag(1, 1, 1), Mag(2, 2, 1), Mag(4, 4, 2)]
        assert layer.bounding_box == BoundingBox(OFFSET, (70, 60, 40))
        assert layer.mags[Mag(1, 1, 1)].header.block_type == 3  # LZ4HC
    assert selection.dataset.layers["segmentation"].properties.largest_segment_id == 41


def test_reference_voxels_read_back_exactly():
    selection = locate(DATASET)
    for name, volume in expected_volumes().items():
        layer = selection.dataset.layers[name]
        np.testing.assert_array_equal(layer.finest_mag.read(layer.bounding_box), volume)
        view = layer.view_pyramid()[0]  # the aligned box starts at the multiple of 4-4-2 below
        start = np.array(OFFSET[::-1]) - np.array(layer.aligned_box().topleft[::-1])
        got = np.asarray(view[start[0] : start[0] + 40, start[1] : start[1] + 60, start[2] : start[2] + 70])
        np.testing.assert_array_equal(got, volume)


def test_our_pyramid_equals_the_reference_pyramid(tmp_path):
    """Rebuild 2-2-1 and 4-4-2 from the reference's mag 1: median for color, mode for
    segmentation, border groups edge-padded as the reference does. Voxel for voxel."""
    import shutil

    from napari_wkw.core import Dataset, build_pyramid

    copy = tmp_path / "copy"
    shutil.copytree(DATASET, copy)
    for name in ("color", "segmentation"):
        for mag in ("2-2-1", "4-4-2"):
            shutil.rmtree(copy / name / mag)
    with pytest.warns(UserWarning, match="2-2-1, 4-4-2"):
        dataset = Dataset.open(copy)
    for name, layer in dataset.layers.items():
        built = build_pyramid(layer, coarsest=Mag(4, 4, 4))
        assert built == [Mag(2, 2, 1), Mag(4, 4, 2)]
        for mag in built:
            box = layer.bounding_box.in_mag(mag)
            ours = wkw.Dataset.open(str(copy / name / mag.folder_name())).read(box.topleft, box.size)
            reference = wkw.Dataset.open(str(DATASET / name / mag.folder_name())).read(box.topleft, box.size)
            np.testing.assert_array_equal(ours, reference, err_msg=f"{name} {mag}")
