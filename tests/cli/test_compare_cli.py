"""`napari-wkw check-equality` and `napari-wkw export-tiff`: exit codes, reports, one-line errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from napari_wkw.cli import main

from ..ops.test_equality import OFFSET, flip_voxel, make_array, save

SCRIPT = Path(sys.executable).parent / "napari-wkw"


@pytest.fixture
def pair(tmp_path):
    """A compressed dataset with a pyramid and a raw copy of the same voxels."""
    data = make_array("uint16")
    a = save(tmp_path / "a", "uint16", data, name="color")
    b = save(tmp_path / "b", "uint16", data, name="color", compress=False)
    return a, b, data


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, *words):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("napari-wkw: error: "), result.stderr
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in result.output


def test_help():
    for command in ("check-equality", "export-tiff"):
        result = run(command, "--help")
        assert result.exit_code == 0
        assert "--layer-name" in result.output and "--mag" in result.output and "--jobs" in result.output
    assert "--tile-size" in run("export-tiff", "--help").output
    listing = run("--help").output
    assert "check-equality" in listing and "export-tiff" in listing


def test_check_equality_equal_and_different(pair):
    a, b, _ = pair
    result = run("check-equality", "-q", a, b)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("equal")

    voxel = (OFFSET[0] + 10, OFFSET[1] + 20, OFFSET[2] + 30)
    flip_voxel(b / "color" / "1", voxel)
    result = run("check-equality", "-q", "--jobs", "2", a, b)
    assert result.exit_code == 1
    assert result.stdout.startswith("different")
    assert "layer 'color' mag 1: voxels" in result.stdout
    assert ",".join(map(str, voxel)) + ",1,1,1" in result.stdout
    # the other mags are still equal
    assert run("check-equality", "-q", "--mag", "2-2-1", a, b).exit_code == 0


def test_check_equality_bad_input(pair, tmp_path):
    a, _, _ = pair
    assert_one_line_error(run("check-equality", "-q", a, tmp_path / "missing"), "missing", "does not exist")
    assert_one_line_error(run("check-equality", "-q", "-l", "nope", a, a), "nope")
    assert_one_line_error(run("check-equality", "-q", "--mag", "16", a, a), "mag 16")
    assert run("check-equality", "--mag", "two", a, a).exit_code == 2  # usage error


def test_export_tiff(pair, tmp_path):
    a, _, data = pair
    target = tmp_path / "tiffs"
    result = run("export-tiff", "-q", a, target, "--bbox", f"{OFFSET[0]},{OFFSET[1]},{OFFSET[2] + 2},20,10,3")
    assert result.exit_code == 0, result.output
    assert "wrote 3 TIFF file(s)" in result.stdout
    for dz in range(3):
        image = tifffile.imread(target / f"color_{OFFSET[2] + 2 + dz:06d}.tiff")
        np.testing.assert_array_equal(image, data[2 + dz, :10, :20])

    tiles = tmp_path / "tiles"
    result = run("export-tiff", "-q", a, tiles, "--tile-size", "16,16", "--layer-name", "color", "--mag", "1")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(tifffile.imread(tiles / str(OFFSET[2]) / "1" / "2.tiff"), data[0, 16:32, 32:48])


def test_export_tiff_bad_input(pair, tmp_path):
    a, _, _ = pair
    target = tmp_path / "full"
    target.mkdir()
    (target / "x.txt").write_text("x")
    assert_one_line_error(run("export-tiff", "-q", a, target), "not empty")
    assert_one_line_error(run("export-tiff", "-q", tmp_path / "nothing", tmp_path / "t"), "does not exist")
    assert_one_line_error(run("export-tiff", "-q", "-l", "nope", a, tmp_path / "t"), "nope")
    assert_one_line_error(run("export-tiff", "-q", "-m", "8", a, tmp_path / "t"), "mag 8")
    assert run("export-tiff", "-q", "--tile-size", "16", a, tmp_path / "t").exit_code == 2
    assert run("export-tiff", "-q", "--downsample", "0", a, tmp_path / "t").exit_code == 2
    assert not (tmp_path / "t").exists()


def test_console_script(pair, tmp_path):
    a, b, data = pair
    different = tmp_path / "different"
    shutil.copytree(b, different)
    flip_voxel(different / "color" / "2-2-1", (OFFSET[0] // 2 + 3, OFFSET[1] // 2 + 4, OFFSET[2] + 5))

    same = subprocess.run([SCRIPT, "check-equality", a, b], capture_output=True, text=True, timeout=60)
    assert same.returncode == 0, same.stderr
    assert same.stdout.startswith("equal")
    found = subprocess.run(
        [SCRIPT, "check-equality", "-q", "--distribution-strategy", "processes", "-j", "2", a, different],
        capture_output=True, text=True, timeout=60,
    )
    assert found.returncode == 1, found.stderr
    assert "layer 'color' mag 2-2-1: voxels" in found.stdout

    target = tmp_path / "out"
    exported = subprocess.run([SCRIPT, "export-tiff", "-q", a, target], capture_output=True, text=True, timeout=60)
    assert exported.returncode == 0, exported.stderr
    np.testing.assert_array_equal(tifffile.imread(target / f"color_{OFFSET[2] + 7:06d}.tiff"), data[7])
    again = subprocess.run([SCRIPT, "export-tiff", a, target], capture_output=True, text=True, timeout=60)
    assert again.returncode == 2
    assert again.stderr.strip().startswith("napari-wkw: error: ") and len(again.stderr.strip().splitlines()) == 1
