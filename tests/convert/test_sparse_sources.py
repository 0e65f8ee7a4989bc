"""Sparse tiled stacks and KNOSSOS trees write no WKW files where no tile or cube lies,
and read back the same voxels as if every file had been written."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from PIL import Image

from napari_wkw.cli import main
from napari_wkw.core import Dataset, Mag

from .test_knossos import CONF, expected_volume, write_knossos_tree


def data_files(layer_path) -> list[str]:
    return sorted(p.relative_to(layer_path / "1").as_posix() for p in (layer_path / "1").glob("z*/y*/x*.wkw"))


def test_a_sparse_tiled_stack_writes_only_the_files_its_tiles_reach(tmp_path):
    rng = np.random.default_rng(0)
    tiles = {}
    for z in range(3):
        for y, x in [(0, 0), (5, 5)]:  # two corners of a 6 x 6 grid of 256-pixel tiles
            tile = rng.integers(1, 255, (256, 256), dtype=np.uint8)
            folder = tmp_path / "tiles" / str(z) / str(y)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(tile).save(folder / f"{x}.png")
            tiles[z, y, x] = tile
    result = CliRunner().invoke(
        main,
        [
            "tile-cube",
            str(tmp_path / "tiles"),
            str(tmp_path / "out"),
            "-q",
            "--voxel-size",
            "10,10,30",
            "--input-path-pattern",
            "{z}/{y}/{x}.png",
        ],
    )
    assert result.exit_code == 0, result.output
    layer = Dataset.open(tmp_path / "out").layers["color"]
    size = layer.mags[Mag(1, 1, 1)].header.file_size
    expected_files = {f"z0/y{y * 256 // size}/x{x * 256 // size}.wkw" for y, x in [(0, 0), (5, 5)]}
    assert set(data_files(layer.path)) == expected_files
    volume = layer.finest_mag.read(layer.bounding_box)
    expected = np.zeros((3, 1536, 1536), np.uint8)
    for (z, y, x), tile in tiles.items():
        expected[z, y * 256 : (y + 1) * 256, x * 256 : (x + 1) * 256] = tile
    np.testing.assert_array_equal(volume, expected)


def test_a_sparse_knossos_tree_writes_only_the_files_its_cubes_reach(tmp_path):
    root = tmp_path / "knossos"
    root.mkdir()
    (root / "knossos.conf").write_text(CONF.format(name="exp", bx=3072, by=256, bz=128, sx=10, sy=10, sz=30, mag=1))
    cubes = [(0, 0, 0), (23, 1, 0)]  # 128-voxel cubes at both ends of 3072 voxels in x
    write_knossos_tree(root / "mag1", cubes)
    result = CliRunner().invoke(main, ["convert-knossos", str(root), str(tmp_path / "out"), "-q", "--no-pyramid"])
    assert result.exit_code == 0, result.output
    layer = Dataset.open(tmp_path / "out").layers["color"]
    files = data_files(layer.path)
    size = layer.mags[Mag(1, 1, 1)].header.file_size
    reached = {(cx * 128 // size, cy * 128 // size) for cx, cy, _ in cubes}
    assert len(files) == len(reached) < (-(-3072 // size)) * (-(-256 // size))
    np.testing.assert_array_equal(
        layer.finest_mag.read(layer.bounding_box), expected_volume((3072, 256, 128), cubes, "uint8")
    )
