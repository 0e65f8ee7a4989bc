"""Conversions into one target at the same time, as real ``napari-wkw`` processes: never
interleaved. The same layer name: the second is refused in one line (exit 2) while the
first runs; other layer names: all end up listed (the properties' read-modify-write is
locked)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import wkw

from napari_wkw.core.locks import lock_path, locked
from napari_wkw.core.properties import PROPERTIES_FILE

CLI = str(Path(sys.executable).parent / "napari-wkw")
pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(os.name != "posix", reason="flock and SIGSTOP")]


def stack(path: Path, seed: int, shape=(40, 96, 128)) -> np.ndarray:
    volume = np.random.default_rng(seed).integers(1, 255, shape, dtype=np.uint8)
    tifffile.imwrite(path, volume)
    return volume


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    _, err = process.communicate(timeout=100)
    return process.returncode, err


def read_layer(target: Path, layer: str, shape) -> np.ndarray:
    with wkw.Dataset.open(str(target / layer / "1")) as handle:
        return handle.read((0, 0, 0), shape[::-1])[0].transpose(2, 1, 0)


def error_lines(stderr: str) -> list[str]:
    """The error lines of a refused run: exactly one, and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("napari-wkw: error: ")]
    assert len(lines) == 1, stderr
    return lines


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def stage(target: Path, layer: str) -> str | None:
    try:
        return json.loads((target / f".{layer}.converting" / "conversion.json").read_text()).get("stage")
    except (OSError, ValueError):
        return None


def test_same_layer_twice_is_refused_while_the_first_runs(tmp_path):
    volume = stack(tmp_path / "a.tif", 1, (96, 256, 256))
    target = tmp_path / "out"
    args = ("cube", str(tmp_path / "a.tif"), str(target), "-l", "color", "--voxel-size", "1,1,1", "-q", "--jobs", "1")
    first = start(*args)
    try:
        # frozen while cubing: it holds the layer's lock (and not the properties' lock, which a
        # second run would wait for)
        wait_for(lambda: first.poll() is not None or stage(target, "color") == "cubing")
        os.kill(first.pid, signal.SIGSTOP)
        assert stage(target, "color") == "cubing" and first.poll() is None, "the first run ended too soon"
        assert lock_path(target / ".color.converting").exists()
        second = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=100)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    code, err = finish(first)
    assert code == 0, err
    assert second.returncode == 2
    (line,) = error_lines(second.stderr)
    assert "another napari-wkw run is converting layer 'color'" in line
    np.testing.assert_array_equal(read_layer(target, "color", volume.shape), volume)
    listed = json.loads((target / PROPERTIES_FILE).read_text())["dataLayers"]
    assert [layer["name"] for layer in listed] == ["color"]
    assert not [p.name for p in target.iterdir() if p.name.startswith(".")], "staging or locks left"


def test_same_layer_at_once_one_wins(tmp_path):
    """Started together: one converts, the other is refused in one line (by the lock, or, if
    the first was done before it looked, because the layer exists)."""
    volume = stack(tmp_path / "a.tif", 2)
    target = tmp_path / "out"
    args = ("cube", str(tmp_path / "a.tif"), str(target), "-l", "color", "--voxel-size", "1,1,1", "-q")
    outcomes = sorted(finish(process) for process in [start(*args), start(*args)])
    assert [code for code, _ in outcomes] == [0, 2], outcomes
    assert len(error_lines(outcomes[1][1])) == 1
    np.testing.assert_array_equal(read_layer(target, "color", volume.shape), volume)


def test_other_layers_at_once_are_all_listed(tmp_path):
    volumes = {f"layer{i}": stack(tmp_path / f"{i}.tif", 10 + i, (20, 40 + i, 50)) for i in range(4)}
    target = tmp_path / "out"
    processes = [
        start("convert", str(tmp_path / f"{i}.tif"), str(target), "--layer-name", name, "--voxel-size", "2,2,4", "-q")
        for i, name in enumerate(volumes)
    ]
    outcomes = [finish(process) for process in processes]
    assert [code for code, _ in outcomes] == [0] * 4, outcomes
    listed = json.loads((target / PROPERTIES_FILE).read_text())["dataLayers"]
    assert sorted(layer["name"] for layer in listed) == sorted(volumes)
    for name, volume in volumes.items():
        np.testing.assert_array_equal(read_layer(target, name, volume.shape), volume)
        assert [m["mag"] for m in next(layer for layer in listed if layer["name"] == name)["mags"]][0] == [1, 1, 1]
    assert not [p.name for p in target.iterdir() if p.name.startswith(".")], "staging or locks left"


def blocked_on_a_lock(pid: int) -> bool:
    """Whether process ``pid`` waits for a file lock: /proc/locks lists waiters as
    ``1: -> FLOCK  ADVISORY  WRITE <pid> <device:inode> 0 EOF``."""
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "->" and fields[5] == str(pid):
            return True
    return False


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs /proc/locks to see a waiting process")
def test_a_conversion_waits_for_the_properties_lock(tmp_path):
    """While another process holds the properties' lock (here: this test, which adds a layer of
    its own to the file meanwhile), a conversion into the dataset waits, then lists its layer
    beside the one added."""
    first = stack(tmp_path / "a.tif", 3)
    target = tmp_path / "out"
    subprocess.run(
        [CLI, "cube", str(tmp_path / "a.tif"), str(target), "-l", "first", "--voxel-size", "1,1,1", "-q"], check=True
    )
    second = stack(tmp_path / "b.tif", 4)
    properties = target / PROPERTIES_FILE
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with locked(properties):
            holding.set()
            release.wait(60)
            document = json.loads(properties.read_text())
            added = json.loads(json.dumps(document["dataLayers"][0]))
            added["name"] = "added-meanwhile"
            document["dataLayers"].append(added)
            properties.write_text(json.dumps(document))

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    process = start("cube", str(tmp_path / "b.tif"), str(target), "-l", "second", "--voxel-size", "1,1,1", "-q")
    try:
        wait_for(lambda: process.poll() is not None or blocked_on_a_lock(process.pid))
        assert process.poll() is None, "the conversion finished while the properties were locked"
        names = [layer["name"] for layer in json.loads(properties.read_text())["dataLayers"]]
        assert names == ["first"]
    finally:
        release.set()
        holder.join(30)
    code, err = finish(process)
    assert code == 0, err
    names = [layer["name"] for layer in json.loads(properties.read_text())["dataLayers"]]
    assert names == ["first", "added-meanwhile", "second"]
    np.testing.assert_array_equal(read_layer(target, "first", first.shape), first)
    np.testing.assert_array_equal(read_layer(target, "second", second.shape), second)
