"""The Save as WKW wizard, napari's own File > Save through our writer, and the info panel."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_wkw._widgets.info_panel import DatasetInfoPanel
from napari_wkw._widgets.save_wizard import SaveAsWKWWizard
from napari_wkw.core import Dataset
from napari_wkw.core.geometry import Mag

from .conftest import em_volume

pytestmark = pytest.mark.timeout(120)


def read_all(dataset: Dataset, layer_name: str) -> np.ndarray:
    layer = dataset.layers[layer_name]
    mag = Mag(1, 1, 1)
    return layer.mags[mag].read(layer.bounding_box.in_mag(mag))


def test_save_wizard_writes_the_chosen_layers_with_pyramid(make_napari_viewer, run_wizard, tmp_path, notifications):
    viewer = make_napari_viewer()
    image = em_volume(48, 200, 240)
    labels = (image > 140).astype(np.uint16) * 3
    viewer.add_image(image, name="em raw", scale=(25, 11.24, 11.24), units="nm")
    viewer.add_labels(labels, name="mask", scale=(25, 11.24, 11.24), units="nm", translate=(0, 0, 11.24 * 64))
    viewer.add_points([[1, 2, 3]], name="not savable")
    wizard = SaveAsWKWWizard(viewer)
    assert set(wizard.layers.choices) == {"em raw", "mask"}  # only image and labels layers
    wizard.layers.value = ["em raw", "mask"]
    # inferred, not asked: voxel size from the scale, folder from the name
    assert wizard.voxel_size.value == "11.24, 11.24, 25"
    wizard.output.value = tmp_path / "saved"
    run_wizard(wizard)

    dataset = Dataset.open(tmp_path / "saved")
    assert dataset.voxel_size == (11.24, 11.24, 25.0)
    assert list(dataset.layers) == ["em_raw", "mask"]
    assert dataset.layers["mask"].category == "segmentation"
    assert dataset.layers["mask"].bounding_box.topleft == (64, 0, 0)
    np.testing.assert_array_equal(read_all(dataset, "em_raw"), image)
    np.testing.assert_array_equal(read_all(dataset, "mask"), labels)
    assert Mag(2, 2, 1) in dataset.layers["em_raw"].mags
    assert not list(tmp_path.glob(".*"))  # no staging left behind
    assert any("saved em_raw, mask" in message for _, message in notifications)


def test_save_wizard_cancel_leaves_no_dataset(make_napari_viewer, qtbot, tmp_path, notifications):
    import dask.array as da

    viewer = make_napari_viewer()
    # eight WKW files side by side in x, each taking 0.3 s to read: a job to cancel mid-way
    image = da.from_array(np.tile(em_volume(32, 64, 256), (1, 1, 32)), chunks=(32, 64, 1024))
    image = image.map_blocks(lambda block: (time.sleep(0.3), block)[1], dtype=image.dtype)
    viewer.add_image(image, name="big")
    wizard = SaveAsWKWWizard(viewer)
    wizard.layers.value = ["big"]
    wizard.output.value = tmp_path / "big_wkw"
    wizard.job_options.strategy.value = "sequential"
    wizard.run()
    qtbot.waitUntil(lambda: wizard.progress_bar.value > 0, timeout=30_000)
    wizard.cancel()
    qtbot.waitUntil(lambda: not wizard.running, timeout=30_000)
    assert wizard.progress_bar.max == 8 and wizard.progress_bar.value < 8  # stopped mid-way
    assert not (tmp_path / "big_wkw").exists()
    assert list(tmp_path.iterdir()) == []
    assert "cancelled" in wizard.status.value
    assert wizard.run_button.enabled  # ready to run again
    viewer.add_image(np.zeros((4, 4)))  # the viewer still works


def test_save_wizard_form_problems(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    wizard = SaveAsWKWWizard(viewer)
    assert "choose the layers to save" in wizard.all_problems()
    viewer.add_image(np.zeros((2, 8, 8), np.uint8), name="a")
    wizard.layers.value = ["a"]
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"x")
    wizard.output.value = tmp_path / "photos"
    wizard.voxel_size.value = "4, 4"
    problems = wizard.all_problems()
    assert any("neither empty nor a WKW dataset" in p for p in problems)
    assert any("voxel size must be three numbers" in p for p in problems)
    assert not wizard.run_button.enabled


def test_file_save_offers_our_writer_for_image_and_labels(make_napari_viewer):
    """File > Save Selected Layers lists "WKW dataset (folder)" for image and labels layers."""
    from npe2 import PluginManager

    manager = PluginManager.instance()
    for layer_types in (["image"], ["labels"], ["image", "labels"]):
        writers = [writer.display_name for writer in manager.iter_compatible_writers(layer_types)]
        assert "WKW dataset (folder)" in writers, layer_types


def test_info_panel_follows_the_selected_layer(make_napari_viewer, qtbot, em_dataset):
    path, _, _ = em_dataset
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-wkw")
    panel = DatasetInfoPanel(viewer)
    qtbot.waitUntil(lambda: panel.info is not None, timeout=10_000)
    assert panel.info["path"] == str(path)
    rows = panel.table.data.to_list()
    assert [(row[0], row[3], row[5]) for row in rows] == [
        (layer, mag, "lz4") for layer in ("color", "segmentation") for mag in ("1", "2-2-1", "4-4-2")
    ]
    assert rows[0][2] == "uint8" and rows[3][2] == "uint32"
    assert rows[0][4] == "(64, 32, 8) + (210, 150, 40)"
    assert "11.24 x 11.24 x 25" in panel.summary.value


def test_info_panel_says_what_is_wrong(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    panel = DatasetInfoPanel(viewer)
    panel.dataset.value = tmp_path
    assert "is not a WKW dataset" in panel.summary.value
    assert panel.table.data.to_list() == []
