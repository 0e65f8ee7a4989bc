"""System faults under the real CLI: a full disk (a small tmpfs), a target that turns
read-only mid-way (a bind mount remounted read-only), a source file that vanishes mid-way.

Each is one line (exit 2) naming what happened; partial files are removed; nothing claims
to be a dataset; after the fault is gone, the same command finishes and equals a clean run.
Mounting needs root (CI runs as root); elsewhere these tests skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_wkw.ops.equality import check_equality

from .widgets.conftest import em_volume

CLI = str(Path(sys.executable).parent / "napari-wkw")
pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting needs root"),
]


@pytest.fixture
def stack(tmp_path) -> Path:
    folder = tmp_path / "slices"
    folder.mkdir()
    volume = em_volume(48, 256, 256)
    for index, plane in enumerate(volume):
        tifffile.imwrite(folder / f"{index}.tif", np.tile(plane, (2, 2)))
    return folder


@pytest.fixture
def mount_point(tmp_path):
    """A tmpfs of its own (``size`` set by the test), unmounted at the end."""
    point = tmp_path / "disk"
    point.mkdir()
    mounted = []

    def mount(size: str) -> Path:
        options = f"size={size}"
        if mounted:
            subprocess.run(["mount", "-o", f"remount,{options}", str(point)], check=True)
        else:
            subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], check=True)
            mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def convert(source: Path, target: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [CLI, "convert", str(source), str(target), "--voxel-size", "10,10,30", "-q", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=150)


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".partial" in p.name or p.name.endswith(".spill")]


def one_error_line(result: subprocess.CompletedProcess) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("napari-wkw: error:")]
    assert result.returncode == 2, result.stderr
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    return errors[0]


@pytest.mark.parametrize("compression", [[], ["--no-compress"]], ids=["lz4", "raw"])
def test_full_disk_is_one_line_and_a_rerun_with_room_finishes(stack, mount_point, tmp_path, compression):
    disk = mount_point("600k")
    target = disk / "out"
    line = one_error_line(convert(stack, target, *compression))
    assert str(target) in line and "no space left on device" in line.lower() and "run the same command again" in line
    assert not leftovers(disk)
    assert not (target / "datasource-properties.json").exists()  # nothing claims to be a dataset
    mount_point("200m")
    again = convert(stack, target, *compression)
    assert again.returncode == 0, again.stderr
    clean = tmp_path / "clean"
    assert convert(stack, clean, *compression).returncode == 0
    assert check_equality(clean, target).equal
    assert not leftovers(disk) and not list(target.glob(".*"))


def test_target_turning_read_only_midway(tmp_path, mount_point):
    many = tmp_path / "many"
    many.mkdir()
    volume = em_volume(32, 256, 256)
    for index in range(160):
        tifffile.imwrite(many / f"{index}.tif", np.tile(volume[index % 32], (4, 4)))
    base = mount_point("300m") / "base"
    base.mkdir()
    view = tmp_path / "view"
    view.mkdir()
    subprocess.run(["mount", "--bind", str(base), str(view)], check=True)
    try:
        command = [CLI, "convert", str(many), str(view / "out"), "--voxel-size", "10,10,30", "-q", "--jobs", "1",
                   "--distribution-strategy", "sequential"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.8)
        flipped = False
        while process.poll() is None and not flipped:  # remounting waits for a moment without open writes
            flipped = subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], capture_output=True).returncode == 0
            time.sleep(0.005)
        out, err = process.communicate(timeout=150)
        if not flipped:
            pytest.skip("the conversion ended before the target could be made read-only")
        result = subprocess.CompletedProcess(command, process.returncode, out, err)
        line = one_error_line(result)
        assert "read-only file system" in line.lower() and "run the same command again" in line
        assert not (view / "out" / "datasource-properties.json").exists()
        subprocess.run(["mount", "-o", "remount,bind,rw", str(view)], check=True)
        again = subprocess.run(command, capture_output=True, text=True, timeout=150)
        assert again.returncode == 0, again.stderr
        assert not leftovers(view) and (view / "out" / "datasource-properties.json").is_file()
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def test_a_source_file_vanishing_midway_is_one_line_naming_it(stack, tmp_path):
    """The slice disappears after the stack was listed (as on a network share being cleaned)."""
    victim = stack / "30.tif"
    script = (
        "import os, sys\n"
        "from napari_wkw.convert import image_stack\n"
        "original = image_stack.ImageStackSource.read\n"
        "def read(self, box):\n"
        f"    if os.path.exists({str(victim)!r}):\n"
        f"        os.remove({str(victim)!r})\n"
        "    return original(self, box)\n"
        "image_stack.ImageStackSource.read = read\n"
        "from napari_wkw.cli import main\n"
        f"sys.argv = ['napari-wkw', 'convert', {str(stack)!r}, {str(tmp_path / 'out')!r}, '--voxel-size', "
        "'10,10,30', '-q']\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=150)
    line = one_error_line(result)
    assert "30.tif" in line and "No such file" in line
    assert not leftovers(tmp_path / "out")
    assert not (tmp_path / "out" / "datasource-properties.json").exists()
