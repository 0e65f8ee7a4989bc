"""WEBKNOSSOS annotations end to end in a real napari viewer: drop the real download onto a
viewer holding (a stand-in of) its dataset, find the labels on the right voxels, paint, save
as a ZIP, open it again."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from napari_wkw.core import BoundingBox, Mag
from napari_wkw.core.annotation import Annotation

from .annotation_files import EMPTY_WKW, L4_PAINTED, L4_SAMPLE, SKELETON

pytestmark = pytest.mark.timeout(120)

L4_VOXEL = (11.239999771118164, 11.239999771118164, 28.0)


@pytest.fixture
def l4_dataset(tmp_path):
    """A WKW dataset at the l4 sample's voxel size covering the annotation's region: EM-like
    image and a segmentation that is 5 everywhere (what a fallback layer would show)."""
    from napari_wkw.core.save import ArrayLayer, save_dataset

    from .widgets.conftest import em_volume

    start, size = (3264, 3328, 1008), (768, 512, 64)
    image = np.tile(em_volume(64, 256, 256), (1, 2, 3))[:, : size[1], : size[0]]
    segmentation = np.full(image.shape, 5, np.uint32)
    return save_dataset(
        tmp_path / "l4_stand_in",
        [
            ArrayLayer("color", "color", [image], L4_VOXEL, offset=start),
            ArrayLayer("segmentation", "segmentation", [segmentation], L4_VOXEL, offset=start),
        ],
    )


def test_drop_annotation_onto_its_dataset_paint_save_and_open_again(make_napari_viewer, l4_dataset, tmp_path):
    viewer = make_napari_viewer()
    viewer.open(str(l4_dataset), plugin="napari-wkw")
    dataset_labels = next(layer for layer in viewer.layers if layer.metadata.get("wkw_layer") == "segmentation")
    opened = viewer.open(str(L4_SAMPLE), plugin=None)  # as a drop: napari-wkw is the only reader of .zip
    kinds = {type(layer).__name__: layer for layer in opened}
    assert set(kinds) == {"Labels", "Points", "Shapes"}
    labels = kinds["Labels"]
    assert not labels.multiscale and labels.editable
    np.testing.assert_allclose(labels.scale, dataset_labels.scale[-3:], rtol=1e-6)

    # a voxel the annotation painted (label 1), found through world coordinates
    with Annotation.open(L4_SAMPLE) as annotation:
        painted = annotation.volume().layer.finest_mag.read(BoundingBox(*L4_PAINTED))
    local = np.array([int(v[0]) for v in np.nonzero(painted == 1)])
    voxel = local + np.array(L4_PAINTED[0][::-1])  # absolute (z, y, x) mag-1 voxel
    world = voxel * np.array(L4_VOXEL[::-1])
    in_layer = voxel - np.round(np.array(labels.translate) / np.array(labels.scale)).astype(int)
    np.testing.assert_allclose(labels.world_to_data(world), in_layer, atol=1e-6)
    viewer.dims.set_point(0, world[0])  # scroll to its plane, as a user would
    assert labels.get_value(world, world=True) == 1
    assert np.asarray(labels.data[tuple(in_layer)]) == 1
    assert dataset_labels.get_value(world, world=True)[1] == 5  # (level, value): the dataset lies under it

    # paint a new segment next to it, with napari's own brush
    target = in_layer + np.array([0, 40, 0])
    labels.brush_size = 5
    labels.paint(target, 77)
    assert labels.get_value(tuple(target)) == 77
    world_target = (target + np.round(np.array(labels.translate) / np.array(labels.scale))) * np.array(L4_VOXEL[::-1])

    saved = tmp_path / "edited.zip"
    viewer.layers.selection = {labels, kinds["Points"], kinds["Shapes"]}
    written = viewer.layers.save(str(saved), selected=True, plugin="napari-wkw")
    assert written == [str(saved)]
    with zipfile.ZipFile(saved) as archive:
        assert any(name.endswith(".nml") for name in archive.namelist())

    viewer.layers.clear()
    again = {type(layer).__name__: layer for layer in viewer.open(str(saved), plugin=None)}
    relabels = again["Labels"]
    viewer.dims.set_point(0, world[0])
    assert relabels.get_value(world_target, world=True) == 77
    assert relabels.get_value(world, world=True) == 1  # what was there stays
    assert len(again["Points"].data) == 3  # the skeleton came along
    with Annotation.open(saved) as reopened:
        volume = reopened.volume()
        assert reopened.dataset_name == "l4_sample"
        assert [m.folder_name() for m in volume.layer.mags] == ["1", "2-2-1", "4-4-1", "8-8-2", "16-16-4"]
        assert reopened.nml.volumes[0].largest_segment_id == 77
        assert volume.layer.mags[Mag(1, 1, 1)] is not None


def test_skeleton_nml_opens_as_points_and_paths(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open(str(SKELETON), plugin=None)
    points = next(layer for layer in layers if type(layer).__name__ == "Points")
    assert len(points.data) == 3
    np.testing.assert_allclose(points.scale, (35.0, 4.0, 4.0))
    assert sorted(points.features["node_id"]) == [1, 2, 3]


def test_empty_annotation_opens_editable(make_napari_viewer):
    viewer = make_napari_viewer()
    (labels,) = viewer.open(str(EMPTY_WKW), plugin=None)
    assert labels.editable and not np.asarray(labels.data[0]).any()
    labels.paint((3, 100, 100), 4)
    assert np.asarray(labels.data[3, 100, 100]) == 4
