"""The conversion engine: resuming after a cancel or a kill, never overwriting without
``overwrite``, adding layers to a dataset, the same bytes from every strategy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import wkw

from napari_wkw.convert.engine import ConversionSettings, LayerSpec, convert_layers
from napari_wkw.convert.source import ArraySource
from napari_wkw.core.errors import CancelledError, TargetExistsError, WKWError, WKWWarning
from napari_wkw.core.progress import CancelToken
from napari_wkw.jobs.runner import JobSettings

VOXEL = (11.24, 11.24, 25.0)


def read_layer(dataset: Path, layer: str, offset, shape_zyx) -> np.ndarray:
    with wkw.Dataset.open(str(dataset / layer / "1")) as handle:
        data = handle.read(offset, shape_zyx[::-1])
    return data[0].transpose(2, 1, 0)


def wide_volume(dtype=np.uint8) -> np.ndarray:
    """40 x 50 x 2100 voxels: three WKW files along x, so runs can stop between files."""
    rng = np.random.default_rng(7)
    return rng.integers(1, 200, (40, 50, 2100)).astype(dtype)


def cancel_after_first_file(token: CancelToken):
    def progress(done, total, label):
        if label.startswith("cubing") and done >= 1:
            token.cancel()

    return progress


def data_files(mag: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(mag)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in mag.rglob("x*.wkw")}


def test_cancelled_run_resumes_without_redoing_files(tmp_path):
    volume = wide_volume()
    target = tmp_path / "out"
    spec = LayerSpec(ArraySource(volume), "color", offset=(3, 5, 7))
    settings = ConversionSettings(voxel_size=VOXEL)
    token = CancelToken()
    with pytest.raises(CancelledError):
        convert_layers(
            target,
            [spec],
            settings,
            jobs=JobSettings("sequential"),
            cancel=token,
            progress=cancel_after_first_file(token),
        )
    staging = target / ".color.converting"
    assert json.loads((staging / "conversion.json").read_text())["stage"] == "cubing"
    assert not (target / "color").exists() and not (target / "datasource-properties.json").exists()
    first = data_files(staging / "color" / "1")
    assert 1 <= len(first) < 3  # the sequential runner may have started the next file

    result = convert_layers(target, [spec], settings, jobs=JobSettings("threads", 2))
    assert result.resumed == ["color"]
    after = data_files(target / "color" / "1")
    assert len(after) == 3
    for name, identity in first.items():
        assert after[name] == identity, "a file finished before the cancel was not rewritten"
    np.testing.assert_array_equal(read_layer(target, "color", (3, 5, 7), volume.shape), volume)
    assert not staging.exists()
    assert [m.folder_name() for m in result.layers["color"]] == ["1", "2-2-1", "4-4-2", "8-8-4", "16-16-8", "32-32-16"]


def test_largest_segment_id_counts_files_of_the_killed_run(tmp_path):
    labels = wide_volume(np.uint32)
    labels[5, 6, 7] = 123456  # in the first file, written before the cancel
    spec = LayerSpec(ArraySource(labels), "segmentation", category="segmentation")
    settings = ConversionSettings(voxel_size=VOXEL, pyramid=False)
    token = CancelToken()
    with pytest.raises(CancelledError):
        convert_layers(
            tmp_path / "out",
            [spec],
            settings,
            jobs=JobSettings("sequential"),
            cancel=token,
            progress=cancel_after_first_file(token),
        )
    convert_layers(tmp_path / "out", [spec], settings)
    layer = json.loads((tmp_path / "out" / "datasource-properties.json").read_text())["dataLayers"][0]
    assert layer["largestSegmentId"] == 123456
    assert layer["category"] == "segmentation"


def test_other_input_starts_over_with_a_warning(tmp_path):
    volume = wide_volume()
    token = CancelToken()
    settings = ConversionSettings(voxel_size=VOXEL, pyramid=False)
    with pytest.raises(CancelledError):
        convert_layers(
            tmp_path / "out",
            [LayerSpec(ArraySource(volume), "color")],
            settings,
            jobs=JobSettings("sequential"),
            cancel=token,
            progress=cancel_after_first_file(token),
        )
    other = volume[::-1].copy()
    with pytest.warns(WKWWarning, match="other input or options"):
        result = convert_layers(tmp_path / "out", [LayerSpec(ArraySource(other, "reversed"), "color")], settings)
    assert result.resumed == []
    np.testing.assert_array_equal(read_layer(tmp_path / "out", "color", (0, 0, 0), other.shape), other)


def test_a_running_conversion_is_not_taken_over(tmp_path):
    staging = tmp_path / "out" / ".color.converting"
    staging.mkdir(parents=True)
    record = {"job": {}, "stage": "cubing", "owner": {"pid": os.getppid(), "host": os.uname().nodename}}
    (staging / "conversion.json").write_text(json.dumps(record))
    with pytest.raises(WKWError, match="another napari-wkw run"):
        convert_layers(
            tmp_path / "out", [LayerSpec(ArraySource(np.ones((2, 3, 4), np.uint8)), "color")], ConversionSettings(VOXEL)
        )


def test_existing_datasets_gain_layers_and_lose_none_without_overwrite(tmp_path):
    target = tmp_path / "out"
    first = np.full((4, 30, 40), 9, np.uint8)
    settings = ConversionSettings(voxel_size=VOXEL)
    convert_layers(target, [LayerSpec(ArraySource(first), "color")], settings)
    second = np.arange(4 * 30 * 40, dtype=np.uint16).reshape(4, 30, 40)
    convert_layers(target, [LayerSpec(ArraySource(second), "more")], settings)
    names = [layer["name"] for layer in json.loads((target / "datasource-properties.json").read_text())["dataLayers"]]
    assert names == ["color", "more"]

    replacement = np.full((4, 30, 40), 200, np.uint8)
    with pytest.raises(TargetExistsError, match="exists already"):
        convert_layers(target, [LayerSpec(ArraySource(replacement), "color")], settings)
    np.testing.assert_array_equal(read_layer(target, "color", (0, 0, 0), first.shape), first)

    convert_layers(target, [LayerSpec(ArraySource(replacement), "color")], ConversionSettings(VOXEL, overwrite=True))
    np.testing.assert_array_equal(read_layer(target, "color", (0, 0, 0), first.shape), replacement)
    np.testing.assert_array_equal(read_layer(target, "more", (0, 0, 0), second.shape), second)
    names = [layer["name"] for layer in json.loads((target / "datasource-properties.json").read_text())["dataLayers"]]
    assert names == ["color", "more"]
    assert not [p for p in target.iterdir() if p.name.startswith(".")]

    with pytest.raises(WKWError, match="voxel size 11.24,11.24,25"):
        convert_layers(target, [LayerSpec(ArraySource(first), "third")], ConversionSettings(voxel_size=(1, 1, 1)))


def test_a_folder_that_is_not_a_dataset_is_refused(tmp_path):
    target = tmp_path / "photos"
    target.mkdir()
    (target / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(TargetExistsError, match="not a WKW dataset"):
        convert_layers(
            target,
            [LayerSpec(ArraySource(np.ones((2, 3, 4), np.uint8)), "color")],
            ConversionSettings(VOXEL, overwrite=True),
        )
    assert (target / "holiday.jpg").read_bytes() == b"precious"
    assert sorted(p.name for p in target.iterdir()) == ["holiday.jpg"]


def test_voxel_size_defaults_with_a_warning(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = convert_layers(tmp_path / "out", [LayerSpec(ArraySource(np.ones((2, 3, 4), np.uint8)), "color")])
    assert result.voxel_size == (1.0, 1.0, 1.0)
    assert any("no voxel size given" in str(w.message) for w in caught)
    stated = ArraySource(np.ones((2, 3, 4), np.uint8), voxel_size=(4.0, 5.0, 6.0))
    assert convert_layers(tmp_path / "stated", [LayerSpec(stated, "color")]).voxel_size == (4.0, 5.0, 6.0)


@pytest.mark.parametrize("compress", [True, False])
def test_every_strategy_writes_the_same_data(tmp_path, compress):
    """Compressed files are byte-identical; raw files (sparse, 1 GiB each) equal voxel for voxel."""
    volume = wide_volume()
    outputs = {}
    for strategy in ("sequential", "threads", "processes"):
        target = tmp_path / strategy
        settings = ConversionSettings(voxel_size=VOXEL, compress=compress, pyramid=compress)
        convert_layers(
            target, [LayerSpec(ArraySource(volume), "color", offset=(1, 2, 3))], settings, jobs=JobSettings(strategy, 2)
        )
        files = sorted(p.relative_to(target) for p in target.rglob("*.wkw"))
        outputs[strategy] = {str(name): (target / name).read_bytes() for name in files} if compress else files
        np.testing.assert_array_equal(read_layer(target, "color", (1, 2, 3), volume.shape), volume)
    assert outputs["sequential"] == outputs["threads"] == outputs["processes"]


def test_killed_command_finishes_when_run_again(tmp_path):
    """SIGKILL the real command once its first file is written; the same command finishes
    the job, keeps that file, and the result equals the input voxel for voxel."""
    rng = np.random.default_rng(3)
    stack = tmp_path / "stack"
    stack.mkdir()
    planes = [rng.integers(0, 255, (1100, 2100), dtype=np.uint8) for _ in range(40)]
    for z, plane in enumerate(planes):
        tifffile.imwrite(stack / f"s{z}.tif", plane)
    target = tmp_path / "out"
    command = [
        str(Path(sys.executable).with_name("napari-wkw")),
        "convert",
        str(stack),
        str(target),
        "--voxel-size",
        "4,4,40",
        "--distribution-strategy",
        "sequential",
        "-q",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging_mag = target / ".color.converting" / "color" / "1"
    deadline = time.monotonic() + 60
    while not list(staging_mag.rglob("x*.wkw")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, "the command ended before its first file could be seen"
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = data_files(staging_mag)
    assert 1 <= len(before) < 6, "the kill came between the first and the last file"
    assert not (target / "datasource-properties.json").exists()

    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert "resumed" in finished.stderr
    after = data_files(target / "color" / "1")
    assert len(after) == 6
    for name, identity in before.items():
        assert after[name] == identity
    np.testing.assert_array_equal(read_layer(target, "color", (0, 0, 0), (40, 1100, 2100)), np.stack(planes))
    assert not list(target.rglob(".*"))
