"""In-place compression survives SIGKILL at any moment: every file stays readable with
the original data, and running the command again finishes the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import wkw

from napari_wkw.core.save import ArrayLayer, save_dataset
from napari_wkw.ops.compress import CompressUnit, compress_unit

CLI = str(Path(sys.executable).parent / "napari-wkw")
OFFSET = (5, 9, 2)
SHAPE = (64, 300, 600)  # z, y, x: six files of 256^3 voxels


def make_raw_dataset(path: Path) -> np.ndarray:
    rng = np.random.default_rng(3)
    data = rng.integers(0, 40, SHAPE, dtype=np.uint8) + np.linspace(0, 200, SHAPE[2], dtype=np.uint8)
    save_dataset(path, [ArrayLayer("color", "color", [data], (1.0, 1.0, 1.0), offset=OFFSET)],
                 compress=False, pyramid=False)
    mag = path / "color" / "1"
    # eight blocks per file edge, so each file takes a while to compress
    import shutil

    shutil.rmtree(mag)
    out = wkw.Dataset.create(str(mag), wkw.Header(np.uint8, file_len=8, block_type=wkw.Header.BLOCK_TYPE_RAW))
    out.write(OFFSET, np.ascontiguousarray(data.transpose(2, 1, 0)[None]))
    out.close()
    return data


def data_files(mag: Path) -> list[Path]:
    return sorted(mag.glob("z*/y*/x*.wkw"))


def compressed_count(mag: Path) -> int:
    count = 0
    for path in data_files(mag):
        with open(path, "rb") as f:
            count += f.read(6)[5] != 1
    return count


def assert_original(mag: Path, data: np.ndarray) -> None:
    with wkw.Dataset.open(str(mag)) as handle:
        read = handle.read(OFFSET, (SHAPE[2], SHAPE[1], SHAPE[0]))[0].transpose(2, 1, 0)
    np.testing.assert_array_equal(read, data)
    assert len(data_files(mag)) == 6


def run_and_kill(dataset: Path, when) -> None:
    process = subprocess.Popen([CLI, "compress", str(dataset), "--distribution-strategy", "sequential", "-q"])
    try:
        deadline = time.monotonic() + 60
        while process.poll() is None and not when() and time.monotonic() < deadline:
            time.sleep(0.001)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.timeout(300)
def test_compress_in_place_survives_kills_and_rerun_finishes(tmp_path):
    dataset = tmp_path / "d"
    data = make_raw_dataset(dataset)
    mag = dataset / "color" / "1"
    started = time.monotonic()

    def partial_exists():
        return any(mag.glob("z*/y*/.x*.partial"))

    kills = [
        lambda: time.monotonic() - started > 0.05,  # during start-up
        partial_exists,  # in the middle of the first file
        lambda: compressed_count(mag) >= 2 and partial_exists(),  # in the middle of a later file
        lambda: compressed_count(mag) >= 4,  # between files
    ]
    progress = []
    for number, when in enumerate(kills):
        started = time.monotonic()
        run_and_kill(dataset, when)
        if number in (1, 2):  # killed mid-file: its half-written twin is still there, hidden
            assert partial_exists()
        assert_original(mag, data)
        progress.append(compressed_count(mag))
        assert wkw.Dataset.open(str(mag)).header.block_type == 1  # header switched only at the very end
    assert progress[-1] >= 4 and progress == sorted(progress)  # reruns carried on, nothing redone backwards
    # a killed run leaves hidden partial files behind; the rerun sweeps them and finishes
    result = subprocess.run([CLI, "compress", str(dataset), "-q"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert compressed_count(mag) == 6 and wkw.Dataset.open(str(mag)).header.block_type == 2
    assert_original(mag, data)
    assert not list(mag.rglob(".*"))


def test_all_files_done_but_header_not_yet_switched(tmp_path):
    """The last moment a kill can hit: files compressed, header.wkw still raw."""
    dataset = tmp_path / "d"
    data = make_raw_dataset(dataset)
    mag = dataset / "color" / "1"
    for path in data_files(mag):
        compress_unit(CompressUnit(str(path), str(path), True))
    assert compressed_count(mag) == 6 and wkw.Dataset.open(str(mag)).header.block_type == 1
    assert_original(mag, data)  # readers take each file's own header
    result = subprocess.run([CLI, "compress", str(dataset)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "0 file(s) compressed" in result.stdout
    assert wkw.Dataset.open(str(mag)).header.block_type == 2
    assert_original(mag, data)
