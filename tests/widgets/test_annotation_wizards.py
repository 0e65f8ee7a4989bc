"""The annotation widgets: save labels (and a skeleton) as a WEBKNOSSOS annotation in the
background, export one from a dataset, and show what one holds."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_wkw._widgets.annotation_wizards import (
    AnnotationInfoPanel,
    ExportAnnotationWizard,
    MergeAnnotationWizard,
    SaveAnnotationWizard,
)
from napari_wkw.core import BoundingBox, Mag
from napari_wkw.core.annotation import Annotation

from ..annotation_files import L4_PAINTED, L4_SAMPLE, blob_labels

pytestmark = pytest.mark.timeout(120)


def test_save_wizard_writes_labels_and_skeleton(make_napari_viewer, run_wizard, tmp_path, notifications):
    viewer = make_napari_viewer()
    opened = viewer.open(str(L4_SAMPLE), plugin="napari-wkw")
    labels = next(layer for layer in opened if type(layer).__name__ == "Labels")
    viewer.layers.selection.active = labels
    wizard = SaveAnnotationWizard(viewer)
    assert wizard.labels_field.value == labels.name
    assert str(wizard.output.value).endswith("l4_sample__explorational__suser__94b271_edited.zip")  # beside the source
    local = np.array([10, 200, 300])
    labels.data[tuple(local)] = 9
    wizard.skeleton.value = [layer.name for layer in opened if type(layer).__name__ in ("Points", "Shapes")]
    wizard.output.value = tmp_path / "saved.zip"
    run_wizard(wizard)
    assert any("saved" in message and "saved.zip" in message for _, message in notifications)
    with Annotation.open(tmp_path / "saved.zip") as saved:
        assert len(saved.nml.trees) == 1 and saved.nml.node_count == 3
        box = BoundingBox((3072, 3072, 512), (1024, 1024, 1024))
        voxel = tuple(int(v) for v in local[::-1] + np.array(box.topleft))
        assert saved.volume().layer.finest_mag.read(BoundingBox(voxel, (1, 1, 1))).item() == 9
        painted = saved.volume().layer.finest_mag.read(BoundingBox(*L4_PAINTED))
        assert int((painted == 1).sum()) == 64576  # what the annotation held is kept


def test_save_wizard_refuses_what_it_cannot_write(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, 4, 4), np.uint8), name="image only")
    wizard = SaveAnnotationWizard(viewer)
    assert "choose the labels layer to save" in wizard.all_problems()
    viewer.add_labels(np.zeros((4, 8, 8), np.uint32), name="cells")
    wizard.labels_field.value = "cells"
    wizard.output.value = tmp_path / "out.tif"
    assert "the annotation file must end in .zip" in wizard.all_problems()


def test_save_wizard_cancel_keeps_the_old_file(make_napari_viewer, qtbot, tmp_path):
    import dask.array as da

    viewer = make_napari_viewer()
    slow = da.from_array(np.tile(blob_labels((32, 100, 120)), (1, 1, 40)), chunks=(32, 100, 120))
    slow = slow.map_blocks(lambda block: (time.sleep(0.2), block)[1], dtype=slow.dtype)
    viewer.add_labels(slow, name="slow")
    target = tmp_path / "keep.zip"
    target.write_bytes(L4_SAMPLE.read_bytes())
    wizard = SaveAnnotationWizard(viewer)
    wizard.labels_field.value = "slow"
    wizard.output.value = target
    wizard.run()
    qtbot.waitUntil(lambda: wizard.progress_bar.value > 0 or not wizard.running, timeout=30_000)
    wizard.cancel()
    qtbot.waitUntil(lambda: not wizard.running, timeout=30_000)
    assert target.read_bytes() == L4_SAMPLE.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.zip"]


def test_export_wizard_cuts_a_box_and_opens_it(make_napari_viewer, run_wizard, em_dataset, tmp_path):
    path, _, labels = em_dataset
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-wkw")
    wizard = ExportAnnotationWizard(viewer)
    assert wizard.choice.path == path
    wizard.choice.layer.value = "segmentation"
    assert wizard.output.value.name == "em_segmentation.zip"
    wizard.output.value = tmp_path / "cut.zip"
    wizard.bbox.value = "70, 40, 10, 100, 60, 20"
    run_wizard(wizard)
    with Annotation.open(tmp_path / "cut.zip") as exported:
        layer = exported.volume().layer
        box = BoundingBox((70, 40, 10), (100, 60, 20))
        np.testing.assert_array_equal(layer.finest_mag.read(box), labels[2:22, 8:68, 6:106])
        assert list(layer.mags) == [Mag(1, 1, 1), Mag(2, 2, 1), Mag(4, 4, 2)]  # the dataset's mags
    assert any(layer.metadata.get("wk_annotation", "").endswith("cut.zip") for layer in viewer.layers)


def test_info_panel_follows_the_selected_annotation_layer(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    panel = AnnotationInfoPanel(viewer)
    opened = viewer.open(str(L4_SAMPLE), plugin="napari-wkw")
    viewer.layers.selection.active = opened[0]
    qtbot.waitUntil(lambda: panel.info is not None, timeout=30_000)
    assert panel.info["dataset"] == "l4_sample"
    assert "1 (111), 2-2-1 (44)" in panel.summary.value


def test_merge_wizard_paints_an_annotation_into_a_new_layer(make_napari_viewer, run_wizard, em_dataset, tmp_path):
    from napari_wkw.core import Dataset
    from napari_wkw.core.annotation_write import VolumeToWrite, write_volume_annotation

    path, _, labels = em_dataset
    painted = np.zeros((8, 40, 40), np.uint32)
    painted[2:6, 10:30, 10:30] = 999
    annotation = write_volume_annotation(
        tmp_path / "fix.zip", VolumeToWrite(painted, offset=(96, 64, 16)), voxel_size=(11.24, 11.24, 25.0)
    )
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-wkw")
    wizard = MergeAnnotationWizard(viewer)
    assert wizard.choice.path == path
    wizard.annotation_file.value = annotation
    wizard.choice.layer.value = "segmentation"
    wizard.into.value = "segmentation_fixed"
    run_wizard(wizard)
    dataset = Dataset.open(path)
    merged = dataset.layers["segmentation_fixed"].finest_mag.read(BoundingBox((64, 32, 8), (210, 150, 40)))
    expected = labels.copy()
    region = expected[8 + 2 : 8 + 6, 32 + 10 : 32 + 30, 32 + 10 : 32 + 30]
    region[...] = 999  # voxel mode: the annotation names no fallback layer
    np.testing.assert_array_equal(merged, expected)
    original = dataset.layers["segmentation"].finest_mag.read(BoundingBox((64, 32, 8), (210, 150, 40)))
    np.testing.assert_array_equal(original, labels)
    assert any(layer.metadata.get("wkw_layer") == "segmentation_fixed" for layer in viewer.layers)
