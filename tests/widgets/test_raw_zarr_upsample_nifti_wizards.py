"""The raw, zarr, upsample and NIFTI-export wizards in a real viewer, on the real EM tiles and the
reference-written zarr3 dataset; results read back with the bare wkw library and nibabel."""

from __future__ import annotations

import json
import re
import shutil

import nibabel as nib
import numpy as np
import pytest
import wkw

from napari_wkw._widgets.raw_zarr_wizards import RawWizard, ZarrWizard
from napari_wkw._widgets.upsample_export_wizards import ExportNiftiWizard, UpsampleWizard
from napari_wkw.core.dataset import Dataset
from napari_wkw.core.geometry import BoundingBox, Mag

from ..conftest import DATA
from .conftest import em_volume

pytestmark = pytest.mark.timeout(120)


def bare(mag_path, offset, size) -> np.ndarray:
    with wkw.Dataset.open(str(mag_path)) as handle:
        return handle.read(offset, size)[0].transpose(2, 1, 0)


def shown(widget) -> bool:
    return not widget.native.isHidden()


def listed_layers(path) -> list[str]:
    return [layer["name"] for layer in json.loads((path / "datasource-properties.json").read_text())["dataLayers"]]


def test_raw_wizard_checks_the_size_then_converts(make_napari_viewer, run_wizard, tmp_path, notifications):
    volume = em_volume(20, 64, 80)
    raw = tmp_path / "scan.raw"
    raw.write_bytes(volume.astype(">u2").tobytes())
    viewer = make_napari_viewer()
    wizard = RawWizard(viewer)
    assert wizard.all_problems() == [
        "choose the raw file",
        "choose the output folder",
        "give the shape x, y, z of the volume",
    ]
    wizard.input.value = raw
    assert wizard.layer_name.value == "scan" and wizard.output_path == tmp_path / "scan_wkw"
    assert "detected: a file of 204,800 bytes" in wizard.note.value
    assert wizard.all_problems() == ["give the shape x, y, z of the volume"]
    wizard.shape.value = "80, 64, 20"
    assert wizard.all_problems() == [
        f"{raw}: the file has 204800 bytes, but 80 x 64 x 20 voxels of uint8 need 102400 bytes; "
        "check the shape, the file voxel type and the offset"
    ]
    assert not wizard.run_button.enabled
    wizard.file_dtype.value = ">u2"
    assert wizard.all_problems() == [] and wizard.run_button.enabled
    assert "a raw volume of 80 x 64 x 20 >u2 voxels" in wizard.note.value
    wizard.conversion.voxel_size.value = "8, 8, 30"
    run_wizard(wizard)

    target = tmp_path / "scan_wkw"
    np.testing.assert_array_equal(bare(target / "scan" / "1", (0, 0, 0), (80, 64, 20)), volume)
    assert listed_layers(target) == ["scan"]
    assert any(layer.metadata.get("wkw_dataset") == str(target) for layer in viewer.layers)
    assert wizard.status.value.startswith(f"converted scan.raw into {target}: scan (mags 1, 2-2-1")


def test_zarr_wizard_converts_one_layer_of_a_webknossos_dataset(make_napari_viewer, run_wizard, tmp_path):
    source = tmp_path / "zarr3"
    shutil.copytree(DATA / "zarr3" / "webknossos_zarr3", source)
    viewer = make_napari_viewer()
    wizard = ZarrWizard(viewer)
    wizard.input.value = source
    assert "detected: a WEBKNOSSOS zarr dataset with layers color, segmentation" in wizard.note.value
    assert shown(wizard.source_layer) and not shown(wizard.layer_name)
    assert wizard.source_layer.choices == ("(all layers)", "color", "segmentation")
    assert wizard.output_path == tmp_path / "zarr3_wkw" and wizard.conversion.voxel_size.value == ""
    wizard.source_layer.value = "segmentation"
    wizard.more.value = True
    wizard.axes.value = "xyzz"
    assert any("axes must name each dimension once" in p for p in wizard.all_problems())
    wizard.axes.value = ""
    assert wizard.all_problems() == []
    run_wizard(wizard)

    target = tmp_path / "zarr3_wkw"
    assert listed_layers(target) == ["segmentation"]
    np.testing.assert_array_equal(
        bare(target / "segmentation" / "2-2-1", (0, 0, 0), (39, 35, 43)),
        bare(DATA / "wkw" / "webknossos_written" / "segmentation" / "2-2-1", (0, 0, 0), (39, 35, 43)),
    )
    assert "segmentation (mags 1, 2-2-1, 4-4-2) at 11.24, 11.24, 25 nm" in wizard.status.value
    assert [layer.name for layer in viewer.layers] == ["segmentation (zarr3_wkw)"]

    wizard.input.value = source / "color" / "1"  # a bare array: the layer name field is back
    assert "detected: a zarr array (zarr v3, 1 x 128 x 128 x 128 uint16)" in wizard.note.value
    assert shown(wizard.layer_name) and not shown(wizard.source_layer)


def test_zarr_wizard_cancelled_mid_way_resumes(make_napari_viewer, run_wizard, qtbot, tmp_path, monkeypatch):
    import tensorstore as ts

    import napari_wkw.convert.levels as levels
    from napari_wkw.demo import ShiftedMosaic, em_mosaic

    volume = ShiftedMosaic(em_mosaic()[:1024], 32)[0:32, :, :]  # z, y, x: the real EM mosaic, 32 x 1024 x 2048
    monkeypatch.setattr(levels, "suggested_file_len", lambda extent, *a, **k: 8)  # 256-voxel files: 32 at mag 1
    metadata = {
        "shape": list(volume.shape),
        "data_type": "uint8",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [32, 256, 256]}},
        "dimension_names": ["z", "y", "x"],
    }
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(tmp_path / "big.zarr") + "/"}}
    ts.open({**spec, "metadata": metadata}, create=True).result().write(volume).result()
    viewer = make_napari_viewer()
    wizard = ZarrWizard(viewer)
    (tmp_path / "plain").mkdir()
    wizard.input.value = tmp_path / "plain"
    assert wizard.all_problems()[0].endswith("not a zarr array, OME-Zarr image or WEBKNOSSOS zarr dataset "
                                             "(no zarr.json or .zarray of an array, no multiscales, no "
                                             "datasource-properties.json)")  # fmt: skip
    wizard.input.value = tmp_path / "big.zarr"
    assert wizard.layer_name.value == "big" and wizard.output_path == tmp_path / "big_wkw"
    wizard.conversion.voxel_size.value = "4, 4, 40"
    wizard.job_options.workers.value = 1
    wizard.run()
    copying = re.compile(r"copying big mag 1: ([1-9]|[12][0-9]) of 32$")  # mid-way
    qtbot.waitUntil(lambda: copying.match(wizard.status.value) is not None, timeout=30_000)
    wizard.cancel()
    qtbot.waitUntil(lambda: not wizard.running, timeout=30_000)
    target = tmp_path / "big_wkw"
    assert wizard.status.value.startswith("zarr conversion cancelled")
    assert [child.name for child in target.iterdir()] == [".big.converting"]
    assert "an unfinished conversion of big is in the output folder" in wizard.note.value

    run_wizard(wizard)
    assert wizard.status.value.endswith("resuming the unfinished conversion of big")
    np.testing.assert_array_equal(bare(target / "big" / "1", (0, 0, 0), (2048, 1024, 32)), volume)
    assert listed_layers(target) == ["big"]


@pytest.fixture
def coarse_only(tmp_path):
    """A dataset of 2048 x 2048 x 32 voxels at mag 1 whose layer holds only mag 4-4-2 (real EM texture)."""
    dataset = Dataset.create(tmp_path / "coarse", (11.24, 11.24, 25.0))
    layer = dataset.add_layer("color", "color", np.uint8, bounding_box=BoundingBox((0, 0, 0), (2048, 2048, 32)))
    data = em_volume(16, 512, 512)
    layer.add_mag(Mag(4, 4, 2)).write((0, 0, 0), data)
    dataset.save_properties()
    return tmp_path / "coarse", data


def test_upsample_wizard_cancel_keeps_complete_mags_and_resumes(make_napari_viewer, run_wizard, qtbot, coarse_only):
    path, data = coarse_only
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-wkw")
    wizard = UpsampleWizard(viewer)
    assert wizard.choice.path == path
    assert wizard.all_problems() == ["give the mag to upsample from"]
    wizard.from_mag.value = "8"
    assert wizard.all_problems() == [f"{path / 'color'}: layer 'color' has no mag 8 (mags: 4-4-2)"]
    wizard.from_mag.value = "4-4-2"
    assert wizard.all_problems() == [] and wizard.plan.value == "color: builds 2-2-1, 1 from 4-4-2"
    wizard.job_options.workers.value = 1

    wizard.run()
    mid_way = re.compile(r"upsampling color mag 1: [1-3] of 4$")
    qtbot.waitUntil(lambda: mid_way.match(wizard.status.value) is not None, timeout=30_000)
    wizard.cancel()
    qtbot.waitUntil(lambda: not wizard.running, timeout=30_000)
    assert wizard.status.value.startswith("upsampling cancelled")
    layer = Dataset.open(path).layers["color"]
    assert [m.folder_name() for m in layer.mags] == ["2-2-1", "4-4-2"]  # 2-2-1 complete and listed, 1 not
    assert not [p.name for p in (path / "color").iterdir() if p.name.startswith(".")]
    assert wizard.plan.value == "color: builds 1 from 4-4-2"

    run_wizard(wizard)
    assert wizard.status.value == "upsampled coarse (color: 1)"
    mag1 = bare(path / "color" / "1", (0, 0, 0), (2048, 2048, 32))
    np.testing.assert_array_equal(mag1[::2, ::4, ::4], data)
    np.testing.assert_array_equal(mag1[1::2, 3::4, 2::4], data)
    assert wizard.all_problems()[0].endswith(
        "has mag 1 already; upsampling would overwrite it: write into a new layer with the 'into layer' option NAME "
        "(the existing mag is kept)"
    )
    wizard.into_layer.value = "color up"
    assert wizard.all_problems() == ["new layer name 'color up' may hold only letters, digits, '_', '-' and '.'"]
    assert len([layer for layer in viewer.layers if layer.metadata.get("wkw_dataset") == str(path)]) == 1


def test_export_nifti_wizard(make_napari_viewer, run_wizard, em_dataset, tmp_path, notifications):
    path, _, _ = em_dataset
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-wkw")
    wizard = ExportNiftiWizard(viewer)
    assert wizard.choice.path == path and wizard.choice.layer.choices == ("color", "segmentation")
    assert wizard.output.value == tmp_path / "em_color.nii.gz"
    wizard.choice.layer.value = "segmentation"
    assert wizard.output.value == tmp_path / "em_segmentation.nii.gz"  # follows until the user picks one
    wizard.output.value = tmp_path / "labels.tif"
    assert wizard.all_problems() == ["labels.tif: the output must end in .nii or .nii.gz"]
    wizard.output.value = tmp_path / "labels.nii"
    wizard.bbox.value = "64, 32, 8, 100"
    assert "box must be 6 whole numbers" in wizard.all_problems()[0]
    wizard.bbox.value = "64, 32, 8, 100, 60, 16"
    wizard.mag.value = "2-2-1"
    run_wizard(wizard)

    assert wizard.status.value == f"wrote {tmp_path / 'labels.nii'} (50 x 30 x 16 uint32, segmentation mag 2-2-1)"
    image = nib.load(str(tmp_path / "labels.nii"))
    np.testing.assert_array_equal(
        np.asanyarray(image.dataobj),
        bare(path / "segmentation" / "2-2-1", (32, 16, 8), (50, 30, 16)).transpose(2, 1, 0),
    )
    assert image.header.get_zooms() == pytest.approx((22.48e-6, 22.48e-6, 25e-6))
    assert wizard.all_problems() == [
        f"{tmp_path / 'labels.nii'} exists; tick 'overwrite an existing file' or choose another name"
    ]
    wizard.overwrite.value = True
    assert wizard.all_problems() == []
