"""The operation wizards (compress, metadata, recube, export TIFF, check equality) in a real viewer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import wkw

from napari_wkw._widgets.dataset_wizards import CompressWizard, MetadataWizard
from napari_wkw._widgets.equality_wizard import CheckEqualityWizard
from napari_wkw._widgets.output_wizards import ExportTiffWizard, RecubeWizard
from napari_wkw.core.dataset import MagView

from .conftest import em_volume

pytestmark = pytest.mark.timeout(120)

VOXEL = (11.24, 11.24, 25.0)
OFFSET = (32, 0, 0)  # x, y, z of mag1_dataset


def read_wkw(mag_path: Path, offset, shape_zyx) -> np.ndarray:
    """Voxels (z, y, x) read with bare libwkw, the independent reader."""
    with wkw.Dataset.open(str(mag_path)) as handle:
        return handle.read(offset, shape_zyx[::-1])[0].transpose(2, 1, 0)


def header_of(mag_path: Path):
    with wkw.Dataset.open(str(mag_path)) as handle:
        return handle.header


def shown(widget) -> bool:
    """Not hidden in its form (``visible`` is False for every widget of a form never shown)."""
    return not widget.native.isHidden()


def opened(viewer, dataset: Path) -> list:
    return [layer for layer in viewer.layers if layer.metadata.get("wkw_dataset") == str(dataset)]


@pytest.fixture
def raw_dataset(tmp_path):
    """An uncompressed two-layer dataset (mag 1 only) of real EM texture."""
    from napari_wkw.core.save import ArrayLayer, save_dataset

    image = em_volume(24, 96, 112)
    labels = (image // 64).astype(np.uint32)
    path = save_dataset(
        tmp_path / "raw",
        [ArrayLayer("color", "color", [image], VOXEL), ArrayLayer("segmentation", "segmentation", [labels], VOXEL)],
        compress=False,
        pyramid=False,
    )
    return path, image, labels


def test_compress_into_a_copy_then_in_place(make_napari_viewer, run_wizard, raw_dataset, notifications):
    path, image, labels = raw_dataset
    assert header_of(path / "color" / "1").block_type == wkw.Header.BLOCK_TYPE_RAW
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-wkw")
    wizard = CompressWizard(viewer)
    assert wizard.choice.path == path
    assert not shown(wizard.output.edit)
    wizard.into_copy.value = True
    assert shown(wizard.output.edit) and wizard.output.path == path.parent / "raw_compressed"
    run_wizard(wizard)

    copy = path.parent / "raw_compressed"
    for name, voxels in (("color", image), ("segmentation", labels)):
        assert header_of(copy / name / "1").block_type == wkw.Header.BLOCK_TYPE_LZ4
        assert header_of(path / name / "1").block_type == wkw.Header.BLOCK_TYPE_RAW  # the original as it was
        np.testing.assert_array_equal(read_wkw(copy / name / "1", (0, 0, 0), voxels.shape), voxels)
    assert len(opened(viewer, copy)) == 2
    assert any("compressed 2 file(s) into raw_compressed" in message for _, message in notifications)

    # in place, LZ4HC, only the color layer
    wizard.into_copy.value = False
    wizard.lz4hc.value = True
    wizard.choice.layer.value = "color"
    wizard.mags.value = "1"
    run_wizard(wizard)
    assert header_of(path / "color" / "1").block_type == wkw.Header.BLOCK_TYPE_LZ4HC
    assert header_of(path / "segmentation" / "1").block_type == wkw.Header.BLOCK_TYPE_RAW
    np.testing.assert_array_equal(read_wkw(path / "color" / "1", (0, 0, 0), image.shape), image)
    assert len(opened(viewer, path)) == 2 and len(viewer.layers) == 4
    assert "compressed 1 file(s) into raw" in wizard.status.value


def test_compress_form_problems(make_napari_viewer, raw_dataset):
    path, _, _ = raw_dataset
    viewer = make_napari_viewer()
    wizard = CompressWizard(viewer)
    assert wizard.all_problems() == ["choose the dataset"] and not wizard.run_button.enabled
    wizard.choice.dataset.value = path
    assert wizard.validate()
    wizard.mags.value = "1, x"
    assert wizard.all_problems() == ["each mag must be like 2 or 2-2-1, not 'x'"]
    wizard.mags.value = ""
    wizard.into_copy.value = True
    wizard.output.edit.value = path
    assert "is the dataset itself" in wizard.all_problems()[0]


def test_metadata_rewrites_deleted_properties(make_napari_viewer, run_wizard, wkw_copy, notifications):
    path = wkw_copy("webknossos_written")
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-wkw")
    (path / "datasource-properties.json").unlink()
    wizard = MetadataWizard(viewer)
    assert wizard.choice.path == path
    assert wizard.voxel_size.value == "11.24, 11.24, 25"  # from the selected layer
    assert set(wizard._category_boxes) == {"color", "segmentation"}
    assert wizard._category_boxes["color"] in wizard.form  # in the form, one choice per layer
    wizard.voxel_size.value = ""
    assert wizard.all_problems() == ["give the voxel size: webknossos_written has no datasource-properties.json yet"]
    wizard.voxel_size.value = "11.24, 11.24, 25"
    wizard.max_id.value = "7"
    wizard.compute_max_id.value = True
    assert wizard.all_problems() == ["compute the largest id or give it, not both"]
    wizard.max_id.value = ""
    wizard.dataset_name.value = "fly"
    run_wizard(wizard)

    written = json.loads((path / "datasource-properties.json").read_text())
    assert written["id"]["name"] == "fly"
    assert written["scale"]["factor"] == [11.24, 11.24, 25.0]
    layers = {layer["name"]: layer for layer in written["dataLayers"]}
    assert layers["color"]["category"] == "color" and layers["color"]["elementClass"] == "uint16"
    assert layers["segmentation"]["category"] == "segmentation"
    # tight to the non-zero voxels: segmentation is i // 4000, zero on the whole x = 0 face
    color_box, seg_box = layers["color"]["boundingBox"], layers["segmentation"]["boundingBox"]
    def box(json_box):
        return (json_box["topLeft"], json_box["width"], json_box["height"], json_box["depth"])

    assert box(color_box) == ([7, 9, 3], 70, 60, 40)
    assert box(seg_box) == ([8, 9, 3], 69, 60, 40)
    assert layers["segmentation"]["largestSegmentId"] == (70 * 60 * 40 - 1) // 4000
    assert [m["mag"] for m in layers["color"]["mags"]] == [[1, 1, 1], [2, 2, 1], [4, 4, 2]]
    # the viewer opened the dataset again, now at the written voxel size
    layers = opened(viewer, path)
    assert len(layers) == 2 and len(viewer.layers) == 2
    assert all(np.allclose(layer.scale, (25.0, 11.24, 11.24)) for layer in layers)
    assert any("wrote datasource-properties.json of webknossos_written" in m for _, m in notifications)

    # the properties exist now: refreshing is the default; unticked, the form says so
    wizard.compute_max_id.value = False
    wizard.refresh.value = False
    assert wizard.all_problems() == [
        "webknossos_written already has datasource-properties.json; tick refresh to update it"
    ]


def test_recube_to_one_block_per_file(make_napari_viewer, run_wizard, mag1_dataset, notifications):
    path, image, labels = mag1_dataset
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-wkw")
    wizard = RecubeWizard(viewer)
    target = path.parent / "em_recubed"
    assert wizard.output.path == target  # next to the input
    wizard.file_len.value = 1
    wizard.dtype.value = "uint16"
    run_wizard(wizard)

    for name, voxels in (("color", image), ("segmentation", labels)):
        header = header_of(target / name / "1")
        assert (header.file_len, header.block_type) == (1, wkw.Header.BLOCK_TYPE_LZ4)
        assert header.voxel_type == np.uint16
        files = [len(list((dataset / name / "1").glob("z*/y*/x*.wkw"))) for dataset in (path, target)]
        assert files[1] > files[0]
        np.testing.assert_array_equal(read_wkw(target / name / "1", OFFSET, voxels.shape), voxels.astype(np.uint16))
    assert len(opened(viewer, target)) == 2
    assert "recubed into" in wizard.status.value


def test_recube_into_a_folder_that_is_not_empty_is_refused_before_run(make_napari_viewer, mag1_dataset):
    path, _, _ = mag1_dataset
    viewer = make_napari_viewer()
    wizard = RecubeWizard(viewer)
    wizard.choice.dataset.value = path
    assert wizard.output.path == path.parent / "em_recubed" and wizard.validate()
    (path.parent / "em_recubed").mkdir()
    (path.parent / "em_recubed" / "notes.txt").write_text("mine")
    wizard.file_len.value = 8  # any change re-validates
    assert wizard.all_problems() == [f"{path.parent / 'em_recubed'} already exists and is not empty; choose a new "
                                     "output folder"]
    assert not wizard.run_button.enabled and wizard.run() is None
    # a folder typed by the user is kept when the dataset changes
    wizard.output.edit.value = path.parent / "mine"
    wizard.choice.dataset.value = path.parent
    assert wizard.output.path == path.parent / "mine"


def test_a_failure_at_run_time_is_one_sentence(make_napari_viewer, run_wizard, mag1_dataset, notifications):
    path, image, _ = mag1_dataset
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-wkw")
    wizard = RecubeWizard(viewer)
    assert wizard.validate()
    data_file = next((path / "color" / "1").glob("z*/y*/x*.wkw"))
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])  # truncated after validation
    run_wizard(wizard)

    [(severity, message)] = [(s, m) for s, m in notifications if "failed" in m]
    assert severity == "error" and message.startswith("recubing failed: ") and "\n" not in message
    assert "x0.wkw" in message or "truncated" in message or "cannot read" in message
    assert wizard.status.value.startswith("failed: ")
    assert wizard.run_button.enabled and not wizard.cancel_button.enabled
    assert not (path.parent / "em_recubed").exists()  # nothing half-written claims to be a dataset
    viewer.add_image(image[:2])  # the viewer still works
    assert len(viewer.layers) == 3


def test_export_tiff_slices_of_a_box(make_napari_viewer, run_wizard, mag1_dataset, notifications):
    path, image, _ = mag1_dataset
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-wkw")
    wizard = ExportTiffWizard(viewer)
    assert wizard.output.path == path.parent / "em_tiff"
    wizard.choice.layer.value = "color"
    wizard.bbox.value = "40, 10, 5, 100, 50"
    assert wizard.all_problems() == [
        "box must be 6 whole numbers x, y, z, width, height, depth, not '40, 10, 5, 100, 50'"
    ]
    wizard.bbox.value = "40, 10, 5, 100, 50, 6"
    wizard.prefix.value = "em slice"
    assert "file prefix 'em slice' may hold only" in wizard.all_problems()[0]
    wizard.prefix.value = "em"
    run_wizard(wizard)

    files = sorted((path.parent / "em_tiff").iterdir())
    assert [f.name for f in files] == [f"em_{z:06d}.tiff" for z in range(5, 11)]
    x0 = 40 - OFFSET[0]
    np.testing.assert_array_equal(np.stack([tifffile.imread(f) for f in files]), image[5:11, 10:60, x0 : x0 + 100])
    assert len(viewer.layers) == 2  # nothing opened
    assert any(f"wrote 6 TIFF file(s) to {path.parent / 'em_tiff'}" in m for _, m in notifications)


def test_check_equality_of_equal_copies(make_napari_viewer, run_wizard, mag1_dataset):
    path, _, _ = mag1_dataset
    copy = shutil.copytree(path, path.parent / "copy")
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-wkw")
    wizard = CheckEqualityWizard(viewer)
    assert wizard.choice.path == path
    assert "choose the dataset B" in wizard.all_problems()
    wizard.other.value = path
    assert "are the same folder" in wizard.all_problems()[0]
    wizard.other.value = copy
    run_wizard(wizard)
    assert shown(wizard.verdict) and wizard.verdict.value == "equal"
    assert wizard.report.value.startswith("equal: ") and "color mag 1" in wizard.report.value
    assert len(viewer.layers) == 2  # no marker
    assert wizard.status.value == "em and copy are equal"


def test_check_equality_marks_the_differing_blocks(make_napari_viewer, run_wizard, mag1_dataset):
    path, image, _ = mag1_dataset
    copy = shutil.copytree(path, path.parent / "copy")
    # a few voxels in block (2, 1, 0) and one in block (6, 5, 1) of color mag 1 (x, y, z)
    changed = [(70, 40, 10), (71, 41, 10), (95, 63, 31), (200, 170, 39)]
    view = MagView.at(copy / "color" / "1")
    for x, y, z in changed:
        view.write((x, y, z), np.array([[[image[z, y, x - OFFSET[0]] ^ 0xFF]]], np.uint8))
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-wkw")
    wizard = CheckEqualityWizard(viewer)
    wizard.other.value = copy
    run_wizard(wizard)

    assert wizard.verdict.value == "different: 1 difference(s)"
    assert "4 voxel(s) differ" in wizard.report.value and "layer 'color' mag 1: voxels" in wizard.report.value
    marker = viewer.layers["differences: color mag 1 (em vs copy)"]
    assert marker.data.dtype == np.uint8
    # non-zero exactly where the changed blocks are, 32^3 voxels per marker pixel
    assert np.allclose(marker.scale, (25 * 32, 11.24 * 32, 11.24 * 32))
    assert int(np.count_nonzero(marker.data)) == 2
    assert abs(viewer.dims.point[0] - 25.0 * (16 - 0.5)) <= 25  # the slider went to the first block's middle
    # every changed voxel, and the corners of its block, lie on a marked pixel in world space
    color = viewer.layers["color (em)"]
    origin = np.round(np.array(color.translate) / np.array(color.scale)).astype(int)  # z, y, x of data index 0
    for x, y, z in changed:
        block = np.array([x, y, z]) // 32
        for corner in (block * 32, block * 32 + 31, np.array([x, y, z])):
            world = color.data_to_world(corner[::-1] - origin)
            index = np.round(marker.world_to_data(world)).astype(int)
            assert marker.data[tuple(index)] == 1, (corner, index)
    # a voxel just outside a marked block is not on a marked pixel
    outside = color.data_to_world(np.array([10, 40, 96]) - origin)  # x = 96: block 3
    index = np.round(marker.world_to_data(outside)).astype(int)
    inside = all(0 <= i < s for i, s in zip(index, marker.data.shape))
    assert not inside or marker.data[tuple(index)] == 0
    # running again replaces the marker
    run_wizard(wizard)
    assert len(viewer.layers) == 3


def test_a_marker_over_far_apart_blocks_groups_them(monkeypatch, mag1_dataset):
    """A marker never holds more than MAX_MARKER_BLOCKS pixels: far-apart blocks are grouped
    (2 x 2 x 2, 4 x 4 x 4, ...) and each still lands on its voxels in world space."""
    from napari.layers import Labels

    from napari_wkw._widgets import equality_wizard
    from napari_wkw.core.geometry import Mag
    from napari_wkw.ops.equality import Difference, EqualityReport

    path, _, _ = mag1_dataset
    monkeypatch.setattr(equality_wizard, "MAX_MARKER_BLOCKS", 16)
    blocks = np.array([[0, 0, 0], [100, 3, 1]], np.int32)  # x, y, z: 101 x 4 x 2 blocks apart
    difference = Difference("color", Mag(2, 2, 1), "voxels", "", None, 2, blocks, 32)
    [(data, kwargs)] = equality_wizard.difference_markers(EqualityReport(path, path, [difference]))
    assert kwargs["metadata"]["wkw_block_group"] == 8 and data.shape == (1, 1, 13)
    assert np.flatnonzero(data).tolist() == [0, 12]
    marker = Labels(data, **kwargs)
    for block in blocks:
        for inside in (0, 31):
            voxel = (block * 32 + inside) * np.array([2, 2, 1])  # mag-1 voxel x, y, z of a corner of the block
            world = np.array(VOXEL) * voxel
            index = np.round(marker.world_to_data(world[::-1])).astype(int)
            assert data[tuple(index)] == 1
