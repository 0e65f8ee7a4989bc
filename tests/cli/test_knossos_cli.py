"""``napari-wkw convert-knossos``: byte-built KNOSSOS trees in, read back with the bare wkw library."""

from __future__ import annotations

import json

import numpy as np
import pytest
import wkw
from click.testing import CliRunner

from napari_wkw._reader import napari_get_reader
from napari_wkw.cli import main
from tests.convert import test_knossos as source_tests
from tests.convert.test_knossos import (
    MAG1_CUBES,
    MAG1_SIZE,
    MAG2_CUBES,
    MAG2_SIZE,
    expected_volume,
    voxel_value,
    write_knossos_tree,
)


def invoke(*args):
    return CliRunner().invoke(main, ["convert-knossos", *(str(a) for a in args), "-q"], catch_exceptions=False)


def bare(mag_path, size):
    """(z, y, x) voxels from offset 0, read with the reference library alone."""
    with wkw.Dataset.open(str(mag_path)) as handle:
        return handle.read((0, 0, 0), size)[0].transpose(2, 1, 0)


def properties(dataset):
    return json.loads((dataset / "datasource-properties.json").read_text())


knossos_root = source_tests.knossos_root  # the same tree as the source tests (a fixture)


def test_root_to_wkw_with_pyramid(knossos_root, tmp_path):
    target = tmp_path / "out"
    result = invoke(knossos_root, target, "--layer-name", "em", "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert f"{target}: voxel size 11.24,11.24,25 nm" in result.output
    assert "em: mags 1, 2-2-1, 4-4-2" in result.output
    layer = properties(target)["dataLayers"][0]
    assert layer["name"] == "em" and layer["category"] == "color" and layer["elementClass"] == "uint8"
    assert layer["boundingBox"] == {"topLeft": [0, 0, 0], "width": 300, "height": 200, "depth": 140}
    data = bare(target / "em" / "1", MAG1_SIZE)
    np.testing.assert_array_equal(data, expected_volume(MAG1_SIZE, MAG1_CUBES, "uint8"))
    # from the formula: cube corners, the boundary's last voxel, a missing cube
    for x, y, z in [(0, 0, 0), (127, 128, 127), (128, 127, 0), (299, 199, 127), (256, 0, 139)]:
        assert data[z, y, x] == voxel_value(x, y, z, "uint8"), (x, y, z)
    assert not data[128:140, 0:128, 128:256].any()  # cube (1, 0, 1) is missing
    assert not data[128:140, 128:200, 256:300].any()  # cube (2, 1, 1) too
    # nothing past the boundary was written (the cubes hold data there)
    with wkw.Dataset.open(str(target / "em" / "1")) as handle:
        assert not handle.read((300, 0, 0), (84, 200, 128)).any()
        assert not handle.read((0, 0, 140), (300, 200, 116)).any()

    [(levels, meta, kind)] = napari_get_reader(str(target))(str(target))
    assert kind == "image"
    assert meta["metadata"]["wkw_mags"] == ["1", "2-2-1", "4-4-2"]
    assert [level.shape for level in levels] == [(140, 200, 300), (140, 100, 150), (70, 50, 75)]
    assert meta["scale"] == pytest.approx((25.0, 11.24, 11.24))
    np.testing.assert_array_equal(np.asarray(levels[0][100:140, 150:200, 250:300]), data[100:140, 150:200, 250:300])


def test_coarser_knossos_mag_becomes_that_wkw_mag(knossos_root, tmp_path):
    target = tmp_path / "out"
    result = invoke(knossos_root, target, "--mag", "2", "--no-pyramid", "--no-compress")
    assert result.exit_code == 0, result.output
    assert "color: mags 2" in result.output
    layer = properties(target)["dataLayers"][0]
    assert [m["mag"] for m in layer["mags"]] == [[2, 2, 2]]
    assert layer["boundingBox"] == {"topLeft": [0, 0, 0], "width": 300, "height": 200, "depth": 140}
    data = bare(target / "color" / "2", MAG2_SIZE)
    np.testing.assert_array_equal(data, expected_volume(MAG2_SIZE, MAG2_CUBES, "uint8", mag=2))
    assert data[69, 99, 149] == voxel_value(149, 99, 69, "uint8", mag=2)

    [(array, meta, kind)] = napari_get_reader(str(target))(str(target))
    assert kind == "image" and meta["metadata"]["wkw_mags"] == ["2"] and meta["multiscale"] is False
    assert array.shape == (70, 100, 150)
    assert meta["scale"] == pytest.approx((50.0, 22.48, 22.48))


def test_uint16_segmentation_from_a_mag_folder_in_processes(tmp_path):
    """No conf: size from the cubes, voxel size given; workers get the source pickled."""
    cubes = [(0, 0, 0), (1, 0, 1)]
    write_knossos_tree(tmp_path / "seg" / "mag1", cubes, dtype="uint16")
    target = tmp_path / "out"
    result = invoke(
        tmp_path / "seg" / "mag1", target, "-l", "segmentation", "--dtype", "uint16", "--voxel-size", "5,5,10",
        "--distribution-strategy", "processes", "--jobs", "2", "--max-mag", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    layer = properties(target)["dataLayers"][0]
    assert layer["category"] == "segmentation" and layer["elementClass"] == "uint16"
    size = (256, 128, 256)
    assert layer["boundingBox"] == {"topLeft": [0, 0, 0], "width": 256, "height": 128, "depth": 256}
    expected = expected_volume(size, cubes, "uint16")
    assert layer["largestSegmentId"] == int(expected.max())
    data = bare(target / "segmentation" / "1", size)
    np.testing.assert_array_equal(data, expected)
    assert data[255, 127, 255] == voxel_value(255, 127, 255, "uint16")
    assert not data[0:128, :, 128:256].any()  # cube (1, 0, 0) is missing

    [(levels, meta, kind)] = napari_get_reader(str(target))(str(target))
    assert kind == "labels" and meta["metadata"]["wkw_mags"] == ["1", "2-2-1"]
    assert meta["scale"] == pytest.approx((10.0, 5.0, 5.0))


def test_layer_without_conf_starts_at_the_first_cube(tmp_path):
    """A mag-2 folder whose cubes start at x0001: the layer starts there, in mag-1 voxels at 256."""
    cubes = [(1, 0, 0), (2, 0, 0)]
    write_knossos_tree(tmp_path / "exp_mag2", cubes, mag=2)
    target = tmp_path / "out"
    result = invoke(tmp_path / "exp_mag2", target, "--no-pyramid", "--voxel-size", "10,10,10")
    assert result.exit_code == 0, result.output
    layer = properties(target)["dataLayers"][0]
    assert [m["mag"] for m in layer["mags"]] == [[2, 2, 2]]
    assert layer["boundingBox"] == {"topLeft": [256, 0, 0], "width": 512, "height": 256, "depth": 256}
    with wkw.Dataset.open(str(target / "color" / "2")) as handle:
        data = handle.read((128, 0, 0), (256, 128, 128))[0].transpose(2, 1, 0)
        assert not handle.read((0, 0, 0), (128, 128, 128)).any()
    np.testing.assert_array_equal(data, expected_volume((384, 128, 128), cubes, "uint8", mag=2)[:, :, 128:])
    assert data[0, 0, 0] == voxel_value(128, 0, 0, "uint8", mag=2)


def test_target_is_not_overwritten(knossos_root, tmp_path):
    target = tmp_path / "out"
    assert invoke(knossos_root, target, "--no-pyramid").exit_code == 0
    again = invoke(knossos_root, target, "--no-pyramid")
    assert again.exit_code == 2
    assert "layer 'color' exists already (pass --overwrite to replace it)" in again.stderr
    assert invoke(knossos_root, target, "--no-pyramid", "--overwrite").exit_code == 0


def _error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 2 and lines[0].startswith("color: "), lines  # what is converted, then the error
    return lines[1]


def test_bad_input_is_one_line(knossos_root, tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke(tmp_path / "empty", tmp_path / "out1")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"napari-wkw: error: {tmp_path / 'empty'}: no KNOSSOS cubes "
        "(no x0000/y0000/z0000/ cube folders and no mag1/, mag2/ ... folders)"
    )

    result = invoke(knossos_root, tmp_path / "out2", "--mag", "8")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"napari-wkw: error: {knossos_root}: no KNOSSOS mag 8 (mags found: 1, 2)"

    cube = next((knossos_root / "mag1" / "x0001" / "y0001" / "z0000").glob("*.raw"))
    cube.write_bytes(b"\0" * 1000)
    line = _error_line(invoke(knossos_root, tmp_path / "out3", "--no-pyramid"))
    assert line == f"napari-wkw: error: {cube}: 1000 bytes, but a 128^3 cube of uint8 has 2097152 (is --dtype right?)"
    assert not (tmp_path / "out3" / "color").exists()
