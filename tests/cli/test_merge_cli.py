"""``napari-wkw merge-annotation``: one summary line, the mode said, errors as one line with exit 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import napari_wkw.cli.merge_command  # noqa: F401 - registers the command on ``main``
from napari_wkw.cli import main
from napari_wkw.core.dataset import Dataset
from napari_wkw.core.geometry import BoundingBox, Mag

from ..ops.test_merge_annotation import (
    SEG,
    annotate,
    copy_dataset,
    digest,
    expected_mag1,
    levels,
    painted,
    placed,
    two_volumes,
)

#: the command in a process of its own (imported explicitly: works before and after cli/app.py lists it)
CLI = [sys.executable, "-c", "import napari_wkw.cli.merge_command; from napari_wkw.cli import main; main()"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize(("fallback", "mode"), [(SEG, "bucket"), (None, "voxel")])
def test_merge_in_place_says_what_it_did_in_one_line(tmp_path, fallback, mode):
    dataset = copy_dataset(tmp_path)
    path = annotate(tmp_path / "a.zip", painted(), fallback=fallback)
    before = levels(dataset)
    result = invoke("merge-annotation", path, dataset, "--layer-name", SEG, "--jobs", "2", "-q")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    reason = f"fallback layer {fallback!r}" if fallback else "no fallback layer"
    assert lines[0] == (
        f"{dataset / SEG}: merged 5 bucket(s) of volume 'Volume' in {mode} mode (the annotation names {reason}); "
        "4 file(s) rewritten in mags 1, 2-2-1, 4-4-2; bounding box 0,0,0,160,96,64, largest segment id 200"
    )
    ann = placed(painted(), (0, 0, 0))
    np.testing.assert_array_equal(levels(dataset)[Mag(1, 1, 1)], expected_mag1(before[Mag(1, 1, 1)], ann, mode))


def test_into_a_new_layer_with_a_chosen_volume_and_mode(tmp_path):
    dataset = copy_dataset(tmp_path)
    path = two_volumes(tmp_path, painted())
    before = digest(dataset / SEG)
    options = "--into merged --volume-name B --mode bucket --distribution-strategy sequential -q"
    result = invoke("merge-annotation", path, dataset, "-l", SEG, *options.split())
    assert result.exit_code == 0, result.output
    assert f"{dataset / 'merged'}: merged 5 bucket(s) of volume 'B' in bucket mode (as asked)" in result.stdout
    assert digest(dataset / SEG) == before
    layer = Dataset.open(dataset).layers["merged"]
    assert layer.bounding_box == BoundingBox((0, 0, 0), (160, 96, 64))
    assert layer.mags[Mag(1, 1, 1)].read(BoundingBox((100, 40, 40), (60, 20, 10))).min() == 200


def test_a_process_of_its_own_with_progress(tmp_path):
    dataset = copy_dataset(tmp_path)
    path = annotate(tmp_path / "a.zip", painted())
    result = subprocess.run(
        [*CLI, "merge-annotation", str(path), str(dataset), "-l", SEG], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "merged 5 bucket(s)" in result.stdout and "in voxel mode" in result.stdout
    assert "merging 'Volume' into segmentation mag 1" in result.stderr
    assert "updating segmentation mag 4-4-2" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/nope.zip", "{ds}", "-l", SEG], "nope.zip: no such annotation file"),
        (["{ann}", "{tmp}/nods", "-l", SEG], "nods: no such dataset"),
        (["{ann}", "{ds}", "-l", "nope"], "no layer 'nope' (layers: color, segmentation)"),
        (["{ann}", "{ds}", "-l", "color"], "layer 'color' is a color layer"),
        (["{ann}", "{ds}", "-l", SEG, "--into", "color"], "layer 'color' exists already"),
        (["{ann}", "{ds}", "-l", SEG, "--volume-name", "X"], "no volume layer 'X' (volume layers: Volume)"),
        (["{two}", "{ds}", "-l", SEG], "holds 2 volume layers ('A', 'B'); choose one with --volume-name"),
        (["{coarse}", "{ds}", "-l", SEG], "voxel size 11.24, 11.24, 50 differs from 11.24, 11.24, 25"),
        (["{ann}", "{ds}", "-l", SEG, "--mode", "paint"], "'paint' is not one of 'auto', 'bucket', 'voxel'"),
        (["{ann}", "{ds}"], "Missing option '--layer-name'"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, message):
    dataset = copy_dataset(tmp_path)
    names = {
        "tmp": tmp_path,
        "ds": dataset,
        "ann": annotate(tmp_path / "a.zip", painted()),
        "two": two_volumes(tmp_path, painted()),
        "coarse": annotate(tmp_path / "c.zip", painted(), voxel_size=(11.24, 11.24, 50)),
    }
    before = digest(dataset)
    result = invoke("merge-annotation", *[a.format(**names) for a in args], "-q")
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert len([line for line in result.stderr.splitlines() if "rror" in line]) == 1
    assert digest(dataset) == before
