"""The command line of convert-raw, convert-zarr, upsample and export-nifti: output, exit codes,
one-line errors, --help. The data: the real EM tiles, the reference-written zarr3 dataset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import wkw
from click.testing import CliRunner

from napari_wkw.cli import main

from ..conftest import DATA
from ..widgets.conftest import em_volume

CLI = str(Path(sys.executable).parent / "napari-wkw")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_error_line(result) -> str:
    """The error: one line, the last on stderr (after what was detected, if anything), exit 2."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("napari-wkw: error: ")]
    assert errors == lines[-1:] and "Traceback" not in result.stderr, result.stderr
    return errors[0].removeprefix("napari-wkw: error: ")


def bare(mag_path, offset, size) -> np.ndarray:
    with wkw.Dataset.open(str(mag_path)) as handle:
        return handle.read(offset, size)[0].transpose(2, 1, 0)


@pytest.mark.parametrize("command", ["convert-raw", "convert-zarr", "upsample", "export-nifti"])
def test_help(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    wanted = {
        "convert-raw": ["--shape", "--order", "--offset", "--source-dtype", "--dtype", "--voxel-size", "--jobs"],
        "convert-zarr": ["--axes", "--channel-index", "--layer-name", "--pyramid", "--max-mag", "--jobs"],
        "upsample": ["--from-mag", "--target-mag", "--into-layer", "--sampling-mode", "--jobs"],
        "export-nifti": ["--layer-name", "--mag", "--bbox", "--unit", "--overwrite", "--jobs"],
    }[command]
    for option in wanted:
        assert option in result.output, option


def test_convert_raw(tmp_path):
    volume = em_volume(33, 120, 100)
    (tmp_path / "em.raw").write_bytes(np.ascontiguousarray(volume.transpose(2, 1, 0)).tobytes())  # z fastest
    result = invoke(
        "convert-raw", tmp_path / "em.raw", tmp_path / "out", "--shape", "100,120,33", "--dtype", "uint8",
        "--order", "c", "--voxel-size", "9,9,30", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{tmp_path / 'out'}: voxel size 9,9,30 nm\n  color: mags 1, 2-2-1, 4-4-1\n"
    assert result.stderr == f"color: raw file {tmp_path / 'em.raw'}\n"
    np.testing.assert_array_equal(bare(tmp_path / "out" / "color" / "1", (0, 0, 0), (100, 120, 33)), volume)

    wrong = invoke("convert-raw", tmp_path / "em.raw", tmp_path / "o2", "--shape", "100,120,34", "--dtype", "uint8")
    assert one_error_line(wrong) == (
        f"{tmp_path / 'em.raw'}: the file has 396000 bytes, but 100 x 120 x 34 voxels of uint8 need 408000 bytes; "
        "check --shape, --dtype and --offset"
    )
    untyped = invoke("convert-raw", tmp_path / "em.raw", tmp_path / "o2", "--shape", "100,120,33")
    assert "give the file's voxel type with --dtype" in one_error_line(untyped)
    assert "--shape" in one_error_line(invoke("convert-raw", tmp_path / "em.raw", tmp_path / "o2", "--shape", "1,2"))
    assert not (tmp_path / "o2").exists()


def test_convert_zarr_of_a_webknossos_dataset(tmp_path):
    source = DATA / "zarr3" / "webknossos_zarr3"
    result = invoke("convert-zarr", source, tmp_path / "out", "--jobs", "2", "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"{tmp_path / 'out'}: voxel size 11.24,11.24,25 nm\n"
        "  color: mags 1, 2-2-1, 4-4-2\n  segmentation: mags 1, 2-2-1, 4-4-2\n"
    )
    assert result.stderr.splitlines()[0] == f"{source}: detected a WEBKNOSSOS zarr dataset"
    layers = json.loads((tmp_path / "out" / "datasource-properties.json").read_text())["dataLayers"]
    assert [(layer["name"], layer["dataFormat"]) for layer in layers] == [("color", "wkw"), ("segmentation", "wkw")]
    again = invoke("convert-zarr", source, tmp_path / "out", "-q")  # layers exist: refused, nothing touched
    assert one_error_line(again) == f"{tmp_path / 'out'}: layer 'color' exists already (pass --overwrite to replace it)"
    (tmp_path / "plain").mkdir()
    assert "not a zarr array, OME-Zarr image or WEBKNOSSOS zarr dataset" in one_error_line(
        invoke("convert-zarr", tmp_path / "plain", tmp_path / "o2")
    )
    assert "axes must name each dimension once" in one_error_line(
        invoke("convert-zarr", source, tmp_path / "o2", "--axes", "zzy")
    )


def test_upsample_and_export_nifti(em_dataset, tmp_path):
    path, _, labels = em_dataset  # mags 1, 2-2-1, 4-4-2 ...; layers at (64, 32, 8) + (210, 150, 40)
    refused = invoke("upsample", path, "-l", "segmentation", "--from-mag", "4-4-2")
    assert one_error_line(refused).endswith("has mag 1 already; upsampling would overwrite it: write into a new layer "
                                            "with --into-layer NAME (the existing mag is kept)")  # fmt: skip
    result = invoke("upsample", path, "-l", "segmentation", "--from-mag", "4-4-2", "--into-layer", "blocky", "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout == "blocky: upsampled mags 2-2-1, 1\n"
    assert result.stderr == "segmentation into the new layer blocky: from mag 4-4-2 building 2-2-1, 1\n"
    assert "mag must be like 2 or 2-2-1" in one_error_line(invoke("upsample", path, "--from-mag", "x"))

    out = tmp_path / "blocky.nii.gz"
    result = invoke("export-nifti", path, out, "-l", "blocky", "--bbox", "64,32,8,8,4,2", "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{out}: 8 x 4 x 2 uint32 of blocky mag 1, 11.24,11.24,25 nm\n"
    data = np.asanyarray(nib.load(str(out)).dataobj)  # x, y, z
    coarse = bare(path / "segmentation" / "4-4-2", (16, 8, 4), (2, 1, 1))  # the 4 x 4 x 2 groups holding the box
    np.testing.assert_array_equal(data, np.repeat(np.repeat(np.repeat(coarse, 2, 0), 4, 1), 4, 2).transpose(2, 1, 0))
    assert one_error_line(invoke("export-nifti", path, out, "-l", "blocky")).endswith(
        "exists already (pass --overwrite to replace it)"
    )
    assert "bounding box must be x,y,z,width,height,depth" in one_error_line(
        invoke("export-nifti", path, tmp_path / "b.nii", "-l", "color", "--bbox", "1,2,3")
    )


def test_a_real_process_exits_2_with_one_line(tmp_path):
    (tmp_path / "v.raw").write_bytes(b"\0" * 10)
    done = subprocess.run(
        [CLI, "convert-raw", str(tmp_path / "v.raw"), str(tmp_path / "o"), "--shape", "2,2,2", "--dtype", "uint8"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"napari-wkw: error: {tmp_path / 'v.raw'}: the file has 10 bytes, but 2 x 2 x 2 voxels of uint8 need 8 bytes; "
        "check --shape, --dtype and --offset"
    ]
