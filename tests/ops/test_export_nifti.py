"""``export-nifti``: boxes of layers as NIFTI, read back with nibabel alone; the round trip through
``convert-nifti``; streaming in slabs and row bands; nothing left behind on failure or cancel."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
import wkw

import napari_wkw.ops.export_nifti as export_module
from napari_wkw.convert.engine import ConversionSettings, convert_layers
from napari_wkw.convert.nifti import build_nifti_specs
from napari_wkw.core.errors import CancelledError, TargetExistsError, WKWError
from napari_wkw.core.geometry import BoundingBox, Mag
from napari_wkw.core.progress import CancelToken
from napari_wkw.core.save import ArrayLayer, save_dataset
from napari_wkw.core.staging import host_tag
from napari_wkw.jobs.runner import JobSettings
from napari_wkw.ops.export_nifti import export_nifti

from ..conftest import DATA
from ..widgets.conftest import em_volume


def bare(mag_path, box: BoundingBox) -> np.ndarray:
    """(x, y, z) voxels of channel 0, as NIFTI holds them, read with the wkw library alone."""
    with wkw.Dataset.open(str(mag_path)) as handle:
        return handle.read(box.topleft, box.size)[0]


def test_a_box_as_nii_gz_with_voxel_size_and_placement(em_dataset, tmp_path, monkeypatch):
    path, _, _ = em_dataset  # voxel 11.24, 11.24, 25; layers at (64, 32, 8) + (210, 150, 40)
    monkeypatch.setattr(export_module, "UNIT_BYTES", 150 * 1000)  # slabs of 4 slices: many gzip members
    box = BoundingBox((70, 40, 10), (150, 100, 33))
    result = export_nifti(path, tmp_path / "out.nii.gz", layer_name="color", bbox=box, jobs=JobSettings("threads", 2))
    assert result.path == tmp_path / "out.nii.gz" and result.box == box
    image = nib.load(str(tmp_path / "out.nii.gz"))
    assert image.shape == (150, 100, 33) and image.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asanyarray(image.dataobj), bare(path / "color" / "1", box))
    header = image.header
    assert header.get_xyzt_units() == ("mm", "unknown")
    assert header.get_zooms() == pytest.approx((11.24e-6, 11.24e-6, 25e-6))
    np.testing.assert_allclose(image.affine[:3, 3], [70 * 11.24e-6, 40 * 11.24e-6, 10 * 25e-6], rtol=1e-6)
    with gzip.open(tmp_path / "out.nii.gz") as stream:  # several members, one file
        assert len(stream.read()) == 352 + 150 * 100 * 33
    assert sorted(p.name for p in tmp_path.iterdir()) == ["em", "out.nii.gz"]  # nothing hidden left


def test_round_trip_through_convert_nifti(em_dataset, tmp_path, monkeypatch):
    path, _, labels = em_dataset
    monkeypatch.setattr(export_module, "UNIT_BYTES", 2000)  # a slice is 31,500 bytes: row bands of 2 rows
    for unit in ("mm", "um"):
        out = tmp_path / f"labels_{unit}.nii"
        export_nifti(path, out, layer_name="segmentation", mag="2-2-1", unit=unit, jobs=JobSettings("sequential"))
        header = nib.load(str(out)).header
        assert header.get_intent()[0] == "label" and header.get_data_dtype() == np.uint32
        specs = build_nifti_specs(out, layer_name="segmentation", is_segmentation=True)
        result = convert_layers(tmp_path / f"back_{unit}", specs, ConversionSettings(pyramid=False))
        # the voxel size of the exported mag, to float32's precision (pixdim is float32)
        assert result.voxel_size == pytest.approx((22.48, 22.48, 25.0), rel=1e-6)
        box = BoundingBox((64, 32, 8), (210, 150, 40)).in_mag(Mag(2, 2, 1))
        np.testing.assert_array_equal(
            bare(tmp_path / f"back_{unit}" / "segmentation" / "1", BoundingBox((0, 0, 0), box.size)),
            bare(path / "segmentation" / "2-2-1", box),
        )


def test_a_nifti_file_survives_a_trip_through_wkw(tmp_path):
    """convert-nifti then export-nifti gives the original voxels and zooms back."""
    source = DATA / "nifti" / "anatomical.nii"  # 33 x 41 x 25 int16, 2 mm
    convert_layers(tmp_path / "ds", build_nifti_specs(source), ConversionSettings(pyramid=False))
    export_nifti(tmp_path / "ds", tmp_path / "again.nii")
    original, again = nib.load(str(source)), nib.load(str(tmp_path / "again.nii"))
    np.testing.assert_array_equal(np.asanyarray(again.dataobj), np.asanyarray(original.dataobj))
    assert again.header.get_zooms() == original.header.get_zooms()[:3] == (2.0, 2.0, 2.0)


def test_rgb_layers_become_rgb24(tmp_path):
    rgb = np.stack([em_volume(5, 30, 40), em_volume(5, 30, 40)[:, ::-1], np.zeros((5, 30, 40), np.uint8)], axis=-1)
    save_dataset(
        tmp_path / "rgb", [ArrayLayer("color", "color", [rgb], (5.0, 5.0, 5.0), num_channels=3)], pyramid=False
    )
    export_nifti(tmp_path / "rgb", tmp_path / "rgb.nii.gz")
    data = np.asanyarray(nib.load(str(tmp_path / "rgb.nii.gz")).dataobj)
    assert data.dtype.names == ("R", "G", "B") and data.shape == (40, 30, 5)
    np.testing.assert_array_equal(data["G"], rgb[..., 1].transpose(2, 1, 0))


def test_refusals_and_cancel_leave_nothing(em_dataset, tmp_path):
    path, _, _ = em_dataset
    with pytest.raises(WKWError, match=r"which layer\? give --layer-name \(color, segmentation\)"):
        export_nifti(path, tmp_path / "x.nii")
    with pytest.raises(WKWError, match="must be a .nii or .nii.gz file"):
        export_nifti(path, tmp_path / "x.tif", layer_name="color")
    (tmp_path / "there.nii").write_bytes(b"old")
    with pytest.raises(TargetExistsError, match=r"there.nii: exists already \(pass --overwrite to replace it\)"):
        export_nifti(path, tmp_path / "there.nii", layer_name="color")
    stale = tmp_path / f".new.nii.gz.parts.partial-{host_tag()}-999999999"  # a killed export's, on this host
    stale.mkdir()
    (stale / "00000000.gz").write_bytes(b"half")
    cancel = CancelToken()
    cancel.cancel()
    for name in ("there.nii", "new.nii.gz"):
        with pytest.raises(CancelledError):
            export_nifti(path, tmp_path / name, layer_name="color", overwrite=True, cancel=cancel)
    assert (tmp_path / "there.nii").read_bytes() == b"old"  # the old file stays until the new one is complete
    assert sorted(p.name for p in tmp_path.iterdir()) == ["em", "there.nii"]
