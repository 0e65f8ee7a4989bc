"""``napari-wkw convert-nifti``: real NIFTI files in, read back with the bare wkw library and the reader.

Expected voxels come from nibabel's own decoding (``np.asanyarray(img.dataobj)``, x, y, z),
rearranged here in the test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import wkw
from click.testing import CliRunner

from napari_wkw._reader import napari_get_reader
from napari_wkw.cli import main

DATA = Path(__file__).parent.parent / "data" / "nifti"
ANATOMICAL = DATA / "anatomical.nii"  # 33 x 41 x 25 big-endian int16, 2 mm, LAS
STANDARD = DATA / "standard.nii.gz"  # 4 x 5 x 7 uint8 mask (0/255), RAS, zooms 1,3,2 without unit
RESAMPLED = DATA / "resampled_anat_moved.nii"  # float32 with NaNs
FUNCTIONAL = DATA / "functional.nii"  # 4D: 17 x 21 x 3 x 20
CLI = str(Path(sys.executable).parent / "napari-wkw")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def decoded(path) -> np.ndarray:
    return np.asanyarray(nib.load(str(path)).dataobj)


def bare(mag_path, offset, size) -> np.ndarray:
    """(z, y, x) voxels read with the reference library alone."""
    with wkw.Dataset.open(str(mag_path)) as handle:
        return handle.read(offset, size)[0].transpose(2, 1, 0)


def layers_of(dataset) -> dict:
    properties = json.loads((dataset / "datasource-properties.json").read_text())
    return {layer["name"]: layer for layer in properties["dataLayers"]} | {"": properties}


def read_with_plugin(dataset) -> dict:
    return {
        meta["metadata"]["wkw_layer"]: (data, meta, kind)
        for data, meta, kind in napari_get_reader(str(dataset))(str(dataset))
    }


def test_anatomical_file_with_pyramid(tmp_path):
    target = tmp_path / "out"
    result = invoke("convert-nifti", ANATOMICAL, target, "-q")
    assert result.exit_code == 0, result.output
    assert f"{target}: voxel size 2e+06,2e+06,2e+06 nm" in result.output  # 2 mm
    layers = layers_of(target)
    layer = layers["color"]
    assert layer["category"] == "color" and layer["elementClass"] == "int16"
    assert layer["boundingBox"] == {"topLeft": [0, 0, 0], "width": 33, "height": 41, "depth": 25}
    assert layers[""]["scale"]["factor"] == pytest.approx([2e6, 2e6, 2e6])
    raw = decoded(ANATOMICAL)  # x, y, z
    data = bare(target / "color" / "1", (0, 0, 0), (33, 41, 25))
    np.testing.assert_array_equal(data, raw.transpose(2, 1, 0))
    for x, y, z in [(0, 0, 0), (32, 40, 24), (32, 0, 0), (0, 40, 24), (16, 20, 12)]:
        assert data[z, y, x] == raw[x, y, z]
    with wkw.Dataset.open(str(target / "color" / "1")) as handle:  # nothing past the data
        assert not handle.read((33, 0, 0), (31, 64, 64)).any()
        assert not handle.read((0, 0, 25), (64, 64, 39)).any()

    mags = [m["mag"] for m in layer["mags"]]
    assert mags[0] == [1, 1, 1] and len(mags) > 1
    [(levels, meta, kind)] = read_with_plugin(target).values()
    assert kind == "image" and meta["multiscale"] is True
    assert meta["metadata"]["wkw_mags"] == ["-".join(map(str, m)) if len(set(m)) > 1 else str(m[0]) for m in mags]
    assert len(levels) == len(mags)
    assert meta["scale"] == pytest.approx((2e6, 2e6, 2e6))
    np.testing.assert_array_equal(np.asarray(levels[0][0:25, 0:41, 0:33]), raw.transpose(2, 1, 0))
    coarse = np.asarray(levels[1])
    np.testing.assert_array_equal(coarse, bare(target / "color" / "2", (0, 0, 0), coarse.shape[::-1]))


def test_gz_mask_as_segmentation(tmp_path):
    target = tmp_path / "out"
    result = invoke("convert-nifti", STANDARD, target, "--is-segmentation", "-q")
    assert result.exit_code == 0, result.output
    assert "standard.nii.gz: the header gives no length unit; taking its voxel size 1,3,2 as nm" in result.stderr
    layer = layers_of(target)["segmentation"]
    assert layer["category"] == "segmentation" and layer["elementClass"] == "uint8"
    assert layer["largestSegmentId"] == 255
    raw = decoded(STANDARD)
    data = bare(target / "segmentation" / "1", (0, 0, 0), (4, 5, 7))
    np.testing.assert_array_equal(data, raw.transpose(2, 1, 0))
    assert data[6, 4, 3] == raw[3, 4, 6] and data[0, 0, 1] == raw[1, 0, 0] == 255

    [(levels, meta, kind)] = read_with_plugin(target).values()
    assert kind == "labels"
    assert meta["scale"] == pytest.approx((2.0, 3.0, 1.0))  # z, y, x
    first = levels[0] if meta["multiscale"] else levels
    np.testing.assert_array_equal(np.asarray(first[0:7, 0:5, 0:4]), raw.transpose(2, 1, 0))


def test_folder_one_layer_per_file(tmp_path):
    folder = tmp_path / "in"
    (folder / "extra").mkdir(parents=True)
    shutil.copyfile(ANATOMICAL, folder / "anatomical.nii")
    shutil.copyfile(STANDARD, folder / "mask.nii.gz")
    nib.save(nib.Nifti1Image(decoded(ANATOMICAL)[:, :, :7], np.eye(4)), str(folder / "extra" / "head.nii.gz"))
    target = tmp_path / "out"
    result = invoke(
        "convert-nifti", folder, target, "--color-file", "anatomical.nii", "--segmentation-file", "mask.nii.gz",
        "--voxel-size", "2,2,2", "--no-pyramid", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    layers = layers_of(target)
    assert [name for name in layers if name] == ["color", "head", "segmentation"]  # in path order
    assert layers["color"]["category"] == "color" and layers["head"]["category"] == "color"
    assert layers["segmentation"]["category"] == "segmentation"
    assert layers[""]["scale"]["factor"] == [2.0, 2.0, 2.0]
    np.testing.assert_array_equal(bare(target / "color" / "1", (0, 0, 0), (33, 41, 25)), decoded(ANATOMICAL).T)
    np.testing.assert_array_equal(bare(target / "segmentation" / "1", (0, 0, 0), (4, 5, 7)), decoded(STANDARD).T)
    np.testing.assert_array_equal(bare(target / "head" / "1", (0, 0, 0), (33, 41, 7)), decoded(ANATOMICAL)[:, :, :7].T)
    plugin = read_with_plugin(target)
    assert {name: kind for name, (_, _, kind) in plugin.items()} == {
        "color": "image",
        "segmentation": "labels",
        "head": "image",
    }


def test_orientation_flip_and_enforced_box(tmp_path):
    target = tmp_path / "out"
    result = invoke(
        "convert-nifti", ANATOMICAL, target, "--use-orientation-header", "--flip-axes", "z",
        "--enforce-bounding-box", "8,16,4,30,44,20", "--no-pyramid", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    layer = layers_of(target)["color"]
    assert layer["boundingBox"] == {"topLeft": [8, 16, 4], "width": 30, "height": 44, "depth": 20}
    # LAS -> RAS reverses x; then z flipped; then x cropped from 1 (33 -> 30), y padded by 1 (41 -> 44), z cut at 20
    oriented = decoded(ANATOMICAL)[::-1, :, ::-1]
    expected = np.zeros((30, 44, 20), np.int16)
    expected[:, 1:42, :] = oriented[1:31, :, :20]
    data = bare(target / "color" / "1", (8, 16, 4), (30, 44, 20))
    np.testing.assert_array_equal(data, expected.transpose(2, 1, 0))
    assert data[0, 1, 0] == decoded(ANATOMICAL)[31, 0, 24]  # first voxel of the data, spelled out
    assert not bare(target / "color" / "1", (0, 0, 0), (8, 16, 4)).any()

    [(array, meta, kind)] = read_with_plugin(target).values()
    assert kind == "image" and meta["multiscale"] is False
    origin = np.rint(np.array(meta["translate"]) / np.array(meta["scale"])).astype(int)  # z, y, x
    start = np.array([4, 16, 8]) - origin
    got = np.asarray(array)[start[0] : start[0] + 20, start[1] : start[1] + 44, start[2] : start[2] + 30]
    np.testing.assert_array_equal(got, expected.transpose(2, 1, 0))


def test_gz_in_worker_processes(tmp_path):
    """Each worker gets the source pickled and decompresses the file once for itself."""
    raw = decoded(ANATOMICAL)
    source = tmp_path / "anat.nii.gz"
    nib.save(nib.Nifti1Image(raw, nib.load(str(ANATOMICAL)).affine, nib.load(str(ANATOMICAL)).header), str(source))
    target = tmp_path / "out"
    result = invoke(
        "convert-nifti", source, target, "--distribution-strategy", "processes", "--jobs", "2", "--max-mag", "2", "-q"
    )
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(bare(target / "color" / "1", (0, 0, 0), (33, 41, 25)), raw.T)


def test_convert_detects_nifti(tmp_path):
    target = tmp_path / "out"
    result = invoke("convert", ANATOMICAL, target, "-q")
    assert result.exit_code == 0, result.output
    assert "detected NIFTI" in result.stderr
    np.testing.assert_array_equal(bare(target / "color" / "1", (0, 0, 0), (33, 41, 25)), decoded(ANATOMICAL).T)


# ---- bad input: exit 2, one line naming the file ------------------------------------------------


def run_cli(*args):
    return subprocess.run([CLI, *(str(a) for a in args)], capture_output=True, text=True, timeout=120)


def test_five_dimensions_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "five.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6, 2, 3), np.uint8), np.eye(4)), str(path))
    result = run_cli("convert-nifti", path, tmp_path / "out", "-q")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"napari-wkw: error: {path}: a 5D NIFTI (4 x 5 x 6 x 2 x 3) cannot be converted: only 3D volumes can "
        "(axes past the third must have size 1); split it into 3D files first"
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("path", "options", "message"),
    [
        (FUNCTIONAL, [], r"functional\.nii: a 4D NIFTI \(17 x 21 x 3 x 20\) cannot be converted"),
        (
            RESAMPLED,
            ["--is-segmentation"],
            r"resampled_anat_moved\.nii: voxel \d+,\d+,\d+ holds nan, not a whole number",
        ),
        (
            ANATOMICAL,
            ["--color-file", "a.nii"],
            r"anatomical\.nii: --color-file and --segmentation-file pick files of a folder",
        ),
    ],
    ids=["4d", "float-segmentation", "color-file-for-a-file"],
)
def test_bad_input_exits_2_with_one_line(tmp_path, path, options, message):
    result = invoke("convert-nifti", path, tmp_path / "out", *options, "-q")
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("napari-wkw: error: ")
    assert re.search(message, line), line


def test_bad_flip_axes_is_a_usage_error(tmp_path):
    result = invoke("convert-nifti", ANATOMICAL, tmp_path / "out", "--flip-axes", "x,w")
    assert result.exit_code == 2 and "flip axes must be a list of x, y, z" in result.stderr
