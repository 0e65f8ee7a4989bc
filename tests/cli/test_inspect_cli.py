"""`napari-wkw metadata` and `napari-wkw info`: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wkw
from click.testing import CliRunner

from napari_wkw.cli import main
from napari_wkw.core.properties import PROPERTIES_FILE
from napari_wkw.ops.info import dataset_info

SCRIPT = Path(sys.executable).parent / "napari-wkw"


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("napari-wkw: error: ")
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["metadata", "info"])
def test_help(command):
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "DATASET" in result.output
    assert command in run("--help").output


def test_metadata_regenerates_reference_properties(wkw_copy):
    path = wkw_copy("webknossos_written")
    original = json.loads((path / PROPERTIES_FILE).read_text())
    (path / PROPERTIES_FILE).unlink()
    result = run("metadata", path, "--voxel-size", "11.24,11.24,25", "--compute-max-id", "-q", "-j", "2")
    assert result.exit_code == 0, result.output
    assert "segmentation: segmentation uint32" in result.stdout
    assert "largest id 41" in result.stdout
    written = json.loads((path / PROPERTIES_FILE).read_text())
    assert written["scale"]["factor"] == original["scale"]["factor"]
    for got, want in zip(written["dataLayers"], original["dataLayers"]):
        assert (got["name"], got["category"], got["elementClass"]) == (
            want["name"], want["category"], want["elementClass"]
        )
        assert [m["mag"] for m in got["mags"]] == [m["mag"] for m in want["mags"]]
    # the max id against libwkw's own read of the whole file
    with wkw.Dataset.open(str(path / "segmentation" / "1")) as handle:
        assert written["dataLayers"][1]["largestSegmentId"] == int(np.max(handle.read((0, 0, 0), (128, 128, 128))))


def test_metadata_categories_name_and_refresh(wkw_copy):
    path = wkw_copy("webknossos_written")
    (path / PROPERTIES_FILE).unlink()
    result = run(
        "metadata", path, "-s", "2,2,3", "--name", "mine", "--category", "segmentation=color",
        "--category", "color=segmentation", "--max-id", "77", "--distribution-strategy", "sequential", "-q",
    )
    assert result.exit_code == 0, result.output
    written = json.loads((path / PROPERTIES_FILE).read_text())
    assert written["id"]["name"] == "mine"
    assert [(layer["category"], layer.get("largestSegmentId")) for layer in written["dataLayers"]] == [
        ("segmentation", 77), ("color", None)
    ]
    written["myKey"] = [1, 2]
    (path / PROPERTIES_FILE).write_text(json.dumps(written))

    _one_line_error(run("metadata", path, "-q"), str(path / PROPERTIES_FILE), "--refresh")
    result = run("metadata", path, "--refresh", "-q")
    assert result.exit_code == 0, result.output
    refreshed = json.loads((path / PROPERTIES_FILE).read_text())
    assert refreshed["myKey"] == [1, 2]
    assert refreshed["id"]["name"] == "mine"
    assert refreshed["scale"]["factor"] == [2.0, 2.0, 3.0]
    assert refreshed["dataLayers"][0]["largestSegmentId"] == 77


def test_metadata_bad_inputs_exit_2_with_one_line(tmp_path, wkw_copy):
    _one_line_error(run("metadata", tmp_path / "nope", "-s", "1,1,1", "-q"), str(tmp_path / "nope"))
    path = wkw_copy("webknossos_written")
    (path / PROPERTIES_FILE).unlink()
    _one_line_error(run("metadata", path, "-q"), str(path), "voxel size")
    _one_line_error(run("metadata", path, "-s", "1,1,1", "--max-id", "3", "-l", "nope", "-q"), "'nope'")
    _one_line_error(run("metadata", path, "-s", "1,1,1", "--category", "nope=color", "-q"), "'nope'")
    usage = run("metadata", path, "-s", "1,1,1", "--max-id", "3", "--compute-max-id", "-q")
    assert usage.exit_code == 2 and "not both" in usage.stderr
    usage = run("metadata", path, "-s", "1,1,1", "--category", "color=image", "-q")
    assert usage.exit_code == 2 and "LAYER=color" in usage.stderr
    (path / "segmentation" / "4-4-2" / "header.wkw").write_bytes(b"WK")
    _one_line_error(run("metadata", path, "-s", "1,1,1", "-q"), str(path / "segmentation" / "4-4-2" / "header.wkw"))
    assert not (path / PROPERTIES_FILE).exists()


def test_metadata_warns_in_one_line_per_dropped_mag(wkw_copy):
    path = wkw_copy("complex_property_ds")
    result = run("metadata", path, "--refresh", "-q")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("napari-wkw: warning: ")]
    assert len(warnings) == 2  # one per layer
    assert all("whose folders are gone" in line for line in warnings)


def test_info_text_and_json(wkw_copy):
    path = wkw_copy("webknossos_written")
    result = run("info", path)
    assert result.exit_code == 0, result.output
    assert "layer 'color'" in result.stdout and "layer 'segmentation'" in result.stdout
    assert result.stdout.count("lz4hc") == 6
    result = run("info", path, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == dataset_info(path)


def test_info_bad_inputs(tmp_path, wkw_copy):
    _one_line_error(run("info", tmp_path / "missing"), str(tmp_path / "missing"))
    path = wkw_copy("webknossos_written")
    (path / PROPERTIES_FILE).write_text('{"dataLayers": [')
    _one_line_error(run("info", path), str(path / PROPERTIES_FILE), "not valid JSON")


def test_console_script(wkw_copy):
    path = wkw_copy("webknossos_written")
    (path / PROPERTIES_FILE).unlink()
    done = subprocess.run(
        [str(SCRIPT), "metadata", str(path), "--voxel-size", "11.24,11.24,25", "--quiet"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run([str(SCRIPT), "info", str(path), "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert [layer["bounding_box"]["topleft"] for layer in info["layers"]] == [[7, 9, 3], [8, 9, 3]]
    (path / "color" / "1" / "z0" / "y0" / "x0.wkw").write_bytes(b"junk")
    (path / PROPERTIES_FILE).unlink()
    done = subprocess.run(
        [str(SCRIPT), "metadata", str(path), "-s", "1,1,1", "-q"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"napari-wkw: error: {path / 'color' / '1' / 'z0' / 'y0' / 'x0.wkw'}: WKW header is truncated (4 of 16 bytes)"
    ]
