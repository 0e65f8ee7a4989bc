"""The conversion wizards, run in a real viewer on small real data from tests/data.

Every result is read back with the bare wkw library (or checked against what Pillow,
tifffile and nibabel read from the input), never through the code under test.
"""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import tifffile
import wkw
from PIL import Image

from napari_wkw._widgets.convert_wizards import (
    ConvertWizard,
    CubingWizard,
    KnossosWizard,
    NiftiWizard,
    TileCubingWizard,
)
from tests.convert.test_knossos import CONF, expected_volume, write_knossos_tree

from ..conftest import DATA
from .conftest import em_volume

pytestmark = pytest.mark.timeout(120)


def bare(mag_path, offset, size) -> np.ndarray:
    """(z, y, x) voxels of channel 0, read with the wkw library alone."""
    with wkw.Dataset.open(str(mag_path)) as handle:
        return handle.read(offset, size)[0].transpose(2, 1, 0)


def properties(dataset) -> dict:
    return json.loads((dataset / "datasource-properties.json").read_text())


def mags(dataset, layer: str) -> list[str]:
    entry = next(entry for entry in properties(dataset)["dataLayers"] if entry["name"] == layer)
    return [("-".join(str(v) for v in mag["mag"])) for mag in entry["mags"]]


def shown(widget) -> bool:
    """Whether the form shows the field (the test's viewer window itself is never shown)."""
    return not widget.native.isHidden()


def write_png_stack(folder, volume: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for z, plane in enumerate(volume):
        Image.fromarray(plane).save(folder / f"slice_{z}.png", compress_level=0)


def test_cubing_takes_input_and_voxel_size_from_the_selected_layer(
    make_napari_viewer, run_wizard, tmp_path, notifications
):
    from napari.layers._source import layer_source

    volume = em_volume(12, 150, 170)
    folder = tmp_path / "raw EM"
    write_png_stack(folder, volume)
    viewer = make_napari_viewer()
    with layer_source(path=str(folder)):  # as if napari had opened the folder
        viewer.add_image(
            np.stack([np.asarray(Image.open(folder / f"slice_{z}.png")) for z in range(12)]), scale=(25, 11.24, 11.24)
        )
    wizard = CubingWizard(viewer)
    assert wizard.input_path == folder
    assert wizard.conversion.voxel_size.value == "11.24, 11.24, 25"
    wizard.input.value = tmp_path  # another input: the layer's voxel size is not its voxel size
    assert wizard.conversion.voxel_size.value == ""
    wizard.input.value = folder
    assert wizard.conversion.voxel_size.value == "11.24, 11.24, 25"
    assert wizard.layer_name.value == "raw_EM"  # from the folder name
    assert wizard.output_path == tmp_path / "raw EM_wkw"
    assert "detected: an image stack of 12 .png slices" in wizard.note.value
    assert wizard.conversion.pyramid.value  # on in the wizard
    run_wizard(wizard)

    target = tmp_path / "raw EM_wkw"
    layer = properties(target)["dataLayers"][0]
    assert layer["name"] == "raw_EM" and layer["category"] == "color" and layer["elementClass"] == "uint8"
    assert properties(target)["scale"]["factor"] == [11.24, 11.24, 25.0]
    np.testing.assert_array_equal(bare(target / "raw_EM" / "1", (0, 0, 0), (170, 150, 12)), volume)
    assert mags(target, "raw_EM") == ["1-1-1", "2-2-1", "4-4-2"]
    coarse = bare(target / "raw_EM" / "2-2-1", (0, 0, 0), (85, 75, 12))
    assert coarse.shape == (12, 75, 85) and coarse.any()
    opened = [layer for layer in viewer.layers if layer.metadata.get("wkw_dataset") == str(target)]
    assert [layer.name for layer in opened] == ["raw_EM (raw EM_wkw)"]
    assert opened[0].multiscale and len(opened[0].data) == 3
    message = f"converted raw EM into {target}: raw_EM (mags 1, 2-2-1, 4-4-2) at 11.24, 11.24, 25 nm"
    assert ("info", message) in notifications
    assert wizard.status.value == message


def test_cubing_form_says_what_is_wrong_before_run(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    wizard = CubingWizard(viewer)
    assert not wizard.run_button.enabled
    assert wizard.all_problems() == ["choose the image stack", "choose the output folder"]

    wizard.input.value = tmp_path / "missing"
    assert wizard.all_problems()[0] == f"{tmp_path / 'missing'} does not exist"
    (tmp_path / "empty").mkdir()
    wizard.input.value = tmp_path / "empty"
    assert "no image slices" in wizard.all_problems()[0]

    stack = tmp_path / "stack"
    write_png_stack(stack, em_volume(2, 40, 50))
    wizard.input.value = stack
    assert wizard.all_problems() == [] and wizard.run_button.enabled
    assert wizard.output_path == tmp_path / "stack_wkw" and wizard.layer_name.value == "stack"

    wizard.conversion.voxel_size.value = "11, 11"
    assert wizard.all_problems() == ["voxel size must be three numbers x, y, z, not '11, 11'"]
    wizard.conversion.voxel_size.value = "11, 11, 0"
    assert wizard.all_problems() == ["voxel size must be positive, not '11, 11, 0'"]
    wizard.conversion.voxel_size.value = ""
    wizard.layer_name.value = "my layer"
    assert "may hold only letters" in wizard.all_problems()[0]
    wizard.layer_name.value = "em"

    # a folder that is not a WKW dataset is refused; an existing dataset takes new layers
    wizard.output.value = stack
    assert wizard.all_problems() == [
        f"{stack} exists and is not a WKW dataset; choose a new folder (or a WKW dataset to add layers to)"
    ]
    existing = tmp_path / "existing"
    shutil.copytree(DATA / "wkw" / "webknossos_written", existing)
    wizard.output.value = existing
    assert wizard.all_problems() == []
    wizard.layer_name.value = "color"
    assert wizard.all_problems() == [
        f"{existing} has a layer 'color' already; tick 'overwrite' to replace it, or choose another layer name"
    ]
    assert not wizard.run_button.enabled
    wizard.conversion.overwrite.value = True
    assert wizard.all_problems() == [] and wizard.run_button.enabled

    # choices the user typed stay when the input changes; the defaults follow it
    other = tmp_path / "other"
    write_png_stack(other, em_volume(2, 40, 50))
    wizard.input.value = other
    assert wizard.layer_name.value == "color" and wizard.output_path == existing
    wizard.layer_name.value = ""
    wizard.output.value = None
    wizard.input.value = stack
    assert wizard.layer_name.value == "stack" and wizard.output_path == tmp_path / "stack_wkw"

    wizard.channel_index.value, wizard.sample_index.value = "0", "1"
    assert "give a channel or a sample, not both" in wizard.all_problems()
    wizard.sample_index.value = "-1"
    assert "sample must be a whole number of 0 or more, not '-1'" in wizard.all_problems()
    assert not shown(wizard.channel_index)  # behind "more options"
    wizard.more.value = True
    assert shown(wizard.channel_index) and shown(wizard.conversion.dtype)


def test_cubing_cancelled_mid_way_leaves_no_layer_and_resumes(
    make_napari_viewer, run_wizard, qtbot, tmp_path, notifications
):
    tile = np.asarray(Image.open(DATA / "em_tiles" / "1_60_141.jpg"))
    volume = np.stack([tile[z * 3 : z * 3 + 512, z * 2 : z * 2 + 512] for z in range(120)])
    stack = tmp_path / "long"
    write_png_stack(stack, volume)
    viewer = make_napari_viewer()
    wizard = CubingWizard(viewer)
    wizard.input.value = stack
    wizard.conversion.voxel_size.value = "4, 4, 40"
    wizard.job_options.workers.value = 1

    wizard.run()
    qtbot.waitUntil(lambda: wizard.status.value.startswith("cubing long mag 1"), timeout=20_000)
    wizard.cancel()
    qtbot.waitUntil(lambda: not wizard.running, timeout=20_000)

    target = tmp_path / "long_wkw"
    assert not (target / "datasource-properties.json").exists()  # nothing claims to be a dataset
    assert not (target / "long").exists()
    assert [child.name for child in target.iterdir()] == [".long.converting"]  # kept for resuming
    record = json.loads((target / ".long.converting" / "conversion.json").read_text())
    assert record["stage"] == "cubing"  # cancelled mid-way through the slices
    cancelled = "cubing cancelled; files written so far are complete and nothing half-written was kept"
    assert ("info", cancelled) in notifications and wizard.status.value == cancelled
    assert not any(layer.metadata.get("wkw_dataset") for layer in viewer.layers)
    # the viewer still works, and the form too: Run resumes
    viewer.add_image(volume[:2], name="still works")
    assert viewer.layers["still works"].data.shape == (2, 512, 512)
    assert "an unfinished conversion of long is in the output folder" in wizard.note.value
    assert wizard.run_button.enabled

    run_wizard(wizard)
    assert wizard.status.value.endswith("resuming the unfinished conversion of long")
    np.testing.assert_array_equal(bare(target / "long" / "1", (0, 0, 0), (512, 512, 120)), volume)
    assert mags(target, "long") == ["1-1-1", "2-2-1", "4-4-1", "8-8-1"]
    assert sorted(child.name for child in target.iterdir()) == ["datasource-properties.json", "long"]
    assert any(layer.name == "long (long_wkw)" for layer in viewer.layers)


def test_cubing_error_is_one_sentence_naming_the_file(make_napari_viewer, run_wizard, tmp_path, notifications):
    stack = tmp_path / "mixed"
    stack.mkdir()
    shutil.copyfile(DATA / "images" / "em_slice_test.0000.tiff", stack / "a_0.tiff")
    shutil.copyfile(DATA / "images" / "different_shape_1.tif", stack / "a_1.tif")
    viewer = make_napari_viewer()
    wizard = CubingWizard(viewer)
    wizard.input.value = stack
    wizard.conversion.voxel_size.value = "10, 10, 10"
    run_wizard(wizard)

    error = (
        f"cubing failed: {stack / 'a_1.tif'}: slice is 250 x 250 pixels but a_0.tiff is 265 x 265; "
        "tick 'pad smaller slices' to pad smaller slices at the bottom/right"
    )
    assert [message for severity, message in notifications if severity == "error"] == [error]
    assert wizard.status.value == error.replace("cubing failed", "failed")
    assert wizard.run_button.enabled and not wizard.cancel_button.enabled
    assert not (tmp_path / "mixed_wkw" / "datasource-properties.json").exists()
    viewer.open(str(DATA / "wkw" / "webknossos_written"), plugin="napari-wkw")  # the viewer still works
    assert len(viewer.layers) == 2

    wizard.pad.value = True  # the fix the message names
    run_wizard(wizard)
    first = tifffile.imread(DATA / "images" / "em_slice_test.0000.tiff")
    second = tifffile.imread(DATA / "images" / "different_shape_1.tif")[..., 0]
    data = bare(tmp_path / "mixed_wkw" / "mixed" / "1", (0, 0, 0), (265, 265, 2))
    np.testing.assert_array_equal(data[0], first)
    np.testing.assert_array_equal(data[1, :250, :250], second)
    assert not data[1, 250:].any() and not data[1, :, 250:].any()


def test_tile_cubing_detects_the_pattern(make_napari_viewer, run_wizard, tmp_path, notifications):
    tiles = tmp_path / "section"
    shutil.copytree(DATA / "em_tiles", tiles)  # 1_60_140.jpg ...: z_y_x
    viewer = make_napari_viewer()
    wizard = TileCubingWizard(viewer)
    wizard.input.value = tmp_path
    assert "no tiles found" in wizard.all_problems()[0] and wizard.all_problems()[0].endswith("give the tile pattern")
    wizard.pattern.value = "{z}/{y}"
    assert "does not say where x" in wizard.all_problems()[0]
    wizard.pattern.value = ""
    wizard.input.value = tiles
    assert wizard.note.value == "detected: a tiled stack, tiles at {z}_{y}_{x}.jpg"
    wizard.conversion.voxel_size.value = "4, 4, 40"
    wizard.conversion.max_mag.value = "4-4-1"
    run_wizard(wizard)

    target = tmp_path / "section_wkw"
    box = properties(target)["dataLayers"][0]["boundingBox"]
    assert box == {"topLeft": [140 * 1024, 60 * 1024, 1], "width": 2048, "height": 2048, "depth": 1}
    data = bare(target / "section" / "1", (140 * 1024, 60 * 1024, 1), (2048, 2048, 1))[0]
    for name in ("1_60_140.jpg", "1_60_141.jpg", "1_61_140.jpg", "1_61_141.jpg"):
        _, y, x = (int(v) for v in name[:-4].split("_"))
        tile = np.asarray(Image.open(DATA / "em_tiles" / name))
        ys, xs = (y - 60) * 1024, (x - 140) * 1024
        np.testing.assert_array_equal(data[ys : ys + 1024, xs : xs + 1024], tile)
    assert mags(target, "section") == ["1-1-1", "2-2-1", "4-4-1"]
    assert viewer.layers[-1].name == "section (section_wkw)"
    assert any("section (mags 1, 2-2-1, 4-4-1)" in message for _, message in notifications)


def test_knossos_conversion(make_napari_viewer, run_wizard, tmp_path):
    root = tmp_path / "cortex"
    root.mkdir()
    (root / "knossos.conf").write_text(CONF.format(name="exp", bx=200, by=128, bz=100, sx=9, sy=9, sz=20, mag=1))
    cubes = [(0, 0, 0), (1, 0, 0)]
    write_knossos_tree(root / "mag1", cubes)
    viewer = make_napari_viewer()
    wizard = KnossosWizard(viewer)
    wizard.input.value = root / "mag1"  # a mag folder: defaults are named after the dataset
    assert wizard.layer_name.value == "cortex" and wizard.output_path == tmp_path / "cortex_wkw"
    assert wizard.note.value == "detected: KNOSSOS cubes with knossos.conf (size and voxel size from it)"
    wizard.input.value = root
    wizard.conversion.pyramid.value = False
    run_wizard(wizard)

    target = tmp_path / "cortex_wkw"
    assert properties(target)["scale"]["factor"] == [9.0, 9.0, 20.0]  # from knossos.conf
    assert mags(target, "cortex") == ["1-1-1"]
    expected = expected_volume((200, 128, 100), cubes, "uint8")
    np.testing.assert_array_equal(bare(target / "cortex" / "1", (0, 0, 0), (200, 128, 100)), expected)
    assert viewer.layers[-1].name == "cortex (cortex_wkw)"


def test_nifti_folder_with_a_segmentation_file_and_flips(make_napari_viewer, run_wizard, tmp_path):
    folder = tmp_path / "mri"
    folder.mkdir()
    for name in ("anatomical.nii", "standard.nii.gz"):
        shutil.copyfile(DATA / "nifti" / name, folder / name)
    viewer = make_napari_viewer()
    wizard = NiftiWizard(viewer)
    wizard.input.value = folder / "anatomical.nii"
    assert wizard.layer_name.enabled and wizard.layer_name.value == "anatomical"
    assert not shown(wizard.segmentation_file)

    wizard.input.value = folder
    assert wizard.note.value == "detected: 2 NIFTI volumes, one layer each (named by the file)"
    assert not wizard.layer_name.enabled and shown(wizard.segmentation_file)
    assert wizard.segmentation_file.choices == ("(none)", "anatomical.nii", "standard.nii.gz")
    wizard.color_file.value = wizard.segmentation_file.value = "standard.nii.gz"
    assert "cannot be both the color and the segmentation file" in wizard.all_problems()[0]
    wizard.color_file.value = "(none)"
    wizard.flip[0].value = True  # x
    wizard.conversion.max_mag.value = "2"
    run_wizard(wizard)

    target = tmp_path / "mri_wkw"
    layers = {entry["name"]: entry for entry in properties(target)["dataLayers"]}
    assert layers["anatomical"]["category"] == "color" and layers["anatomical"]["elementClass"] == "int16"
    assert layers["segmentation"]["category"] == "segmentation"
    assert properties(target)["scale"]["factor"] == [2e6, 2e6, 2e6]  # 2 mm
    anatomy = np.asarray(nib.load(folder / "anatomical.nii").dataobj)[::-1]  # (x, y, z), x flipped
    np.testing.assert_array_equal(bare(target / "anatomical" / "1", (0, 0, 0), (33, 41, 25)), anatomy.T)
    mask = np.asarray(nib.load(folder / "standard.nii.gz").dataobj)[::-1]
    np.testing.assert_array_equal(bare(target / "segmentation" / "1", (0, 0, 0), (4, 5, 7)), mask.T)
    assert sorted(layer.name for layer in viewer.layers) == ["anatomical (mri_wkw)", "segmentation (mri_wkw)"]
    assert type(viewer.layers["segmentation (mri_wkw)"]).__name__ == "Labels"


def test_convert_says_what_it_detected_and_converts(make_napari_viewer, run_wizard, tmp_path, notifications):
    stack = tmp_path / "slices"
    stack.mkdir()
    volume = em_volume(3, 60, 70)
    for z, plane in enumerate(volume):
        tifffile.imwrite(stack / f"{z}.tif", plane)
    nifti = tmp_path / "standard.nii.gz"
    shutil.copyfile(DATA / "nifti" / "standard.nii.gz", nifti)
    viewer = make_napari_viewer()
    wizard = ConvertWizard(viewer)
    wizard.input.value = DATA / "wkw" / "webknossos_written"
    assert "this is a WKW dataset already" in wizard.all_problems()[0]
    wizard.input.value = stack
    assert wizard.note.value == "detected: an image stack of 3 .tif slices"
    wizard.input.value = nifti
    assert wizard.note.value == "detected: a NIFTI volume"
    assert wizard.layer_name.value == "standard" and wizard.output_path == tmp_path / "standard_wkw"
    run_wizard(wizard)

    target = tmp_path / "standard_wkw"
    mask = np.asarray(nib.load(nifti).dataobj)
    np.testing.assert_array_equal(bare(target / "standard" / "1", (0, 0, 0), (4, 5, 7)), mask.T)
    assert properties(target)["scale"]["factor"] == [1.0, 3.0, 2.0]
    assert viewer.layers[-1].name == "standard (standard_wkw)"

    wizard.input.value = stack  # into the same dataset: another layer, at the dataset's voxel size
    wizard.output.value = target
    assert wizard.layer_name.value == "slices" and wizard.conversion.voxel_size.value == "1, 3, 2"
    run_wizard(wizard)
    np.testing.assert_array_equal(bare(target / "slices" / "1", (0, 0, 0), (70, 60, 3)), volume)
    assert [entry["name"] for entry in properties(target)["dataLayers"]] == ["standard", "slices"]
    assert sorted(layer.name for layer in viewer.layers) == ["slices (standard_wkw)", "standard (standard_wkw)"]
