"""``napari-wkw tile-cube``: real EM tiles in, WKW out, read back with the bare wkw library.

Stacks are made from the four real tiles in tests/data/em_tiles (FAFB, 1024 x 1024
grey JPEG); the truth is each tile file decoded by Pillow on its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wkw
from click.testing import CliRunner
from PIL import Image

from napari_wkw._reader import napari_get_reader
from napari_wkw.cli import main

CLI = str(Path(sys.executable).parent / "napari-wkw")
EM_TILES = Path(__file__).parents[1] / "data" / "em_tiles"
REAL = ["1_60_140.jpg", "1_60_141.jpg", "1_61_140.jpg", "1_61_141.jpg"]


def pillow(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def bare(mag_path, offset, size) -> np.ndarray:
    """(z, y, x) voxels of channel 0 read with the wkw library alone."""
    return wkw.Dataset.open(str(mag_path)).read(offset, size)[0].transpose(2, 1, 0)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def folders(tmp_path):
    """``z/y/x.jpg``, tiles numbered from (x 10, y 2, z 5): slice 5 the whole section,
    slice 6 without tile (x 11, y 3) and with the tiles in another order."""
    layout = {5: [0, 1, 2, 3], 6: [3, 2, 1, None]}
    root = tmp_path / "folders"
    expected = np.zeros((2, 2048, 2048), np.uint8)
    for z, reals in layout.items():
        for index, real in enumerate(reals):
            if real is None:
                continue
            ty, tx = divmod(index, 2)
            path = root / str(z) / str(2 + ty) / f"{10 + tx}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(EM_TILES / REAL[real], path)
            expected[z - 5, ty * 1024 : (ty + 1) * 1024, tx * 1024 : (tx + 1) * 1024] = pillow(path)
    return root, expected


@pytest.fixture
def pngs(tmp_path):
    """``{zzz}_{yy}_{xx}.png``: slices 0 and 3 of 2 x 2 tiles of 160 x 96 from (x 4, y 7),
    the last column 100 wide; tile (x 5, y 7) of slice 3 missing."""
    section = np.hstack([pillow(EM_TILES / REAL[0]), pillow(EM_TILES / REAL[1])])
    root = tmp_path / "pngs"
    root.mkdir()
    expected = np.zeros((4, 192, 320), np.uint8)
    for z in (0, 3):
        for ty in range(2):
            for tx in range(2):
                if (z, ty, tx) == (3, 0, 1):
                    continue
                width = 100 if tx == 1 else 160
                top, left = 100 * z + ty * 96, 200 * z + tx * 160
                path = root / f"{z:03d}_{7 + ty:02d}_{4 + tx:02d}.png"
                Image.fromarray(section[top : top + 96, left : left + width]).save(path)
                expected[z, ty * 96 : (ty + 1) * 96, tx * 160 : tx * 160 + width] = pillow(path)
    return root, expected


def layer_properties(target: Path, name: str) -> dict:
    properties = json.loads((target / "datasource-properties.json").read_text())
    return next(layer for layer in properties["dataLayers"] if layer["name"] == name)


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("napari-wkw: error:")]


def test_folders_detected_cubed_placed_and_opened(folders, tmp_path):
    root, expected = folders
    target = tmp_path / "out"
    run = subprocess.run(
        [CLI, "tile-cube", str(root), str(target), "--voxel-size", "11.24,11.24,30", "--jobs", "2", "-q"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert "{z}/{y}/{x}.jpg (detected)" in run.stderr
    layer = layer_properties(target, "color")
    assert layer["category"] == "color" and layer["elementClass"] == "uint8"
    assert layer["boundingBox"] == {"topLeft": [10 * 1024, 2 * 1024, 5], "width": 2048, "height": 2048, "depth": 2}
    origin = (10 * 1024, 2 * 1024, 5)
    mag1 = target / "color" / "1"
    for (x, y, z), (sx, sy, sz) in [
        ((0, 0, 0), (2048, 2048, 2)),  # all of it
        ((0, 0, 0), (1, 1, 1)),  # the first voxel
        ((2047, 2047, 0), (1, 1, 1)),  # the last one
        ((1000, 1000, 0), (48, 48, 2)),  # where four tiles meet
        ((1024, 1024, 1), (1024, 1024, 1)),  # the missing tile: zeros
    ]:
        offset = (origin[0] + x, origin[1] + y, origin[2] + z)
        np.testing.assert_array_equal(bare(mag1, offset, (sx, sy, sz)), expected[z : z + sz, y : y + sy, x : x + sx])
    assert not bare(mag1, (origin[0] - 64, origin[1], 5), (64, 64, 1)).any()  # nothing left of the first tile

    reader = napari_get_reader(str(target))
    [(data, meta, kind)] = reader(str(target))
    assert kind == "image" and meta["multiscale"] and meta["rgb"] is False
    mags = [entry["mag"] for entry in layer["mags"]]
    # z (30 nm) joins in once x/y (11.24 nm) pass it; down to ~100 px in x/y (2048 / 32 = 64)
    assert mags == [[1, 1, 1], [2, 2, 1], [4, 4, 2], [8, 8, 4], [16, 16, 8], [32, 32, 16]]
    assert meta["metadata"]["wkw_mags"] == ["1", "2-2-1", "4-4-2", "8-8-4", "16-16-8", "32-32-16"]
    assert len(data) == 6
    for level, (mx, my, mz) in zip(data, mags):
        assert level.shape == (data[0].shape[0] // mz, data[0].shape[1] // my, data[0].shape[2] // mx)
    assert meta["scale"] == pytest.approx((30.0, 11.24, 11.24))
    # level 0 starts at the box's corner aligned to the coarsest mag, which ``translate`` gives
    cz, cy, cx = (round(t / s) for t, s in zip(meta["translate"], meta["scale"]))
    assert cz <= 5 and cy <= 2048 and cx <= 10240
    level0 = np.asarray(data[0][5 - cz : 7 - cz, 2048 - cy : 4096 - cy, 10240 - cx : 12288 - cx])
    np.testing.assert_array_equal(level0, expected)


def test_zero_padded_pngs_with_a_pattern_no_pyramid_and_overwrite(pngs, tmp_path):
    root, expected = pngs
    target = tmp_path / "out"
    args = ["tile-cube", root, target, "--input-path-pattern", "{zzz}_{yy}_{xx}.png", "--layer-name", "em", "-q"]
    result = invoke(*args, "--no-pyramid")
    assert result.exit_code == 0, result.output
    assert "{zzz}_{yy}_{xx}.png (given)" in result.stderr
    assert "napari-wkw: warning:" in result.stderr and "using 1,1,1 nm" in result.stderr  # no voxel size: a warning
    layer = layer_properties(target, "em")
    assert [entry["mag"] for entry in layer["mags"]] == [[1, 1, 1]]
    assert layer["boundingBox"] == {"topLeft": [4 * 160, 7 * 96, 0], "width": 320, "height": 192, "depth": 4}
    data = bare(target / "em" / "1", (640, 672, 0), (320, 192, 4))
    np.testing.assert_array_equal(data, expected)
    assert not data[:, :, 260:].any()  # the narrow last column is padded with zeros
    assert not data[3, :96, 160:].any() and not data[1:3].any()  # the missing tile and slices
    assert data[0, 95:97, 159:161].all()  # where the four tiles meet

    again = invoke(*args, "--no-pyramid")
    assert again.exit_code == 2 and "exists already" in error_lines(again)[0]
    replaced = invoke(*args, "--no-pyramid", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    np.testing.assert_array_equal(bare(target / "em" / "1", (640, 672, 0), (320, 192, 4)), expected)


def test_a_tile_of_the_wrong_size_is_one_line(pngs, tmp_path):
    root, _ = pngs
    bad = root / "003_08_04.png"  # not in the last column or row, so it must be 160 x 96
    Image.fromarray(pillow(bad)[:, :150]).save(bad)
    result = invoke("tile-cube", root, tmp_path / "out", "-q")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert line == (
        f"napari-wkw: error: {bad}: the tile is 150 x 96 pixels, the first tile (000_07_04.png) is 160 x 96 "
        "(only tiles in the last column or row may be smaller)"
    )
    assert "Traceback" not in result.output


def test_an_unreadable_tile_is_one_line_from_worker_processes(pngs, tmp_path):
    root, _ = pngs
    garbage = root / "003_08_05.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    result = invoke("tile-cube", root, tmp_path / "out", "--distribution-strategy", "processes", "-j", "2", "-q")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert line.startswith(f"napari-wkw: error: {garbage}: not a readable image (")
    assert "Traceback" not in result.output


def test_bad_source_or_pattern_is_one_line(pngs, tmp_path):
    root, _ = pngs
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("tile-cube", empty, tmp_path / "out")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert line.startswith(f"napari-wkw: error: {empty}: no tiles found") and "--input-path-pattern" in line
    result = invoke("tile-cube", root, tmp_path / "out", "--input-path-pattern", "{z}/{y}.png")
    assert result.exit_code == 2
    assert error_lines(result) == [
        "napari-wkw: error: tile pattern '{z}/{y}.png' does not say where x are (e.g. {z}/{y}/{x}.jpg)"
    ]
    assert not (tmp_path / "out").exists()


def test_tiles_written_by_export_tiff_come_back(pngs, tmp_path):
    """export-tiff --tile-size cuts the right and bottom tiles to the box; tile-cube pads them."""
    root, expected = pngs
    first, tiles, again = tmp_path / "first", tmp_path / "tiles", tmp_path / "again"
    assert invoke("tile-cube", root, first, "--no-pyramid", "-q").exit_code == 0
    assert invoke("export-tiff", first, tiles, "--tile-size", "128,80", "-q").exit_code == 0
    assert sorted(p.name for p in (tiles / "3" / "2").iterdir()) == ["0.tiff", "1.tiff", "2.tiff"]
    result = invoke("tile-cube", tiles, again, "--no-pyramid", "-q")
    assert result.exit_code == 0, result.output
    assert "{z}/{y}/{x}.tiff (detected)" in result.stderr
    layer = layer_properties(again, "color")
    assert layer["boundingBox"] == {"topLeft": [0, 0, 0], "width": 384, "height": 240, "depth": 4}
    data = bare(again / "color" / "1", (0, 0, 0), (384, 240, 4))
    np.testing.assert_array_equal(data[:, :192, :320], expected)
    assert not data[:, 192:].any() and not data[:, :, 320:].any()
