"""Tiled stacks as a conversion source, checked against each tile decoded on its own.

The stacks are built from the four real EM tiles in tests/data/em_tiles (FAFB,
1024 x 1024 grey JPEG): copied byte for byte into the ``z/y/x.jpg`` layout, and cut
into smaller zero-padded PNG tiles for the ``{zzz}_{yy}_{xx}.png`` layout.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_wkw.convert import tiles as tiles_module
from napari_wkw.convert.tiles import (
    TiledStackSource,
    TilePattern,
    build_tile_specs,
    detect_tile_pattern,
    looks_like_tiled_stack,
)
from napari_wkw.core.errors import WKWError
from napari_wkw.core.geometry import BoundingBox

EM_TILES = Path(__file__).parents[1] / "data" / "em_tiles"
#: the real tiles by their (y, x) in the original section
REAL = {(0, 0): "1_60_140.jpg", (0, 1): "1_60_141.jpg", (1, 0): "1_61_140.jpg", (1, 1): "1_61_141.jpg"}


def pillow(path) -> np.ndarray:
    """A tile decoded by Pillow alone (the independent truth)."""
    with Image.open(path) as image:
        return np.asarray(image)


def folder_stack(root: Path) -> tuple[Path, np.ndarray]:
    """``z/y/x.jpg``: slices 5, 6 and 8 (7 absent) of 2 x 2 tiles numbered from (x 10, y 2).

    Slice 5 holds the section as it is, slice 6 has the tiles swapped around and tile
    (x 11, y 3) missing, slice 8 has only tile (x 10, y 2). Returns the stack and the
    expected (z, y, x) volume, assembled from Pillow's decoding of each copied file.
    """
    layout = {
        5: {(0, 0): (0, 0), (0, 1): (0, 1), (1, 0): (1, 0), (1, 1): (1, 1)},
        6: {(0, 0): (1, 1), (0, 1): (1, 0), (1, 0): (0, 1)},
        8: {(0, 0): (0, 1)},
    }
    expected = np.zeros((4, 2048, 2048), np.uint8)
    for z, placed in layout.items():
        for (ty, tx), real in placed.items():
            path = root / str(z) / str(2 + ty) / f"{10 + tx}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(EM_TILES / REAL[real], path)
            expected[z - 5, ty * 1024 : (ty + 1) * 1024, tx * 1024 : (tx + 1) * 1024] = pillow(path)
    return root, expected


def png_stack(root: Path) -> tuple[Path, np.ndarray]:
    """``{zzz}_{yy}_{xx}.png``: 3 x 2 tiles of 300 x 200 (the last column 120 wide),
    slices 0 and 2 (1 absent), tile (x 1, y 0) of slice 2 missing; numbers from (x 4, y 7)."""
    section = np.block([[pillow(EM_TILES / REAL[(0, 0)]), pillow(EM_TILES / REAL[(0, 1)])]])
    expected = np.zeros((3, 400, 900), np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    for z in (0, 2):
        for ty in range(2):
            for tx in range(3):
                if (z, ty, tx) == (2, 0, 1):
                    continue
                width = 120 if tx == 2 else 300
                top, left = 100 * z + ty * 200, 50 * z + tx * 300
                path = root / f"{z:03d}_{7 + ty:02d}_{4 + tx:02d}.png"
                Image.fromarray(section[top : top + 200, left : left + width]).save(path)
                expected[z, ty * 200 : (ty + 1) * 200, tx * 300 : tx * 300 + width] = pillow(path)
    return root, expected


@pytest.fixture
def folders(tmp_path):
    return folder_stack(tmp_path / "folders")


@pytest.fixture
def pngs(tmp_path):
    return png_stack(tmp_path / "pngs")


def check_boxes(source, expected, boxes):
    for box in boxes:
        np.testing.assert_array_equal(source.read(box), expected[box.zyx_slices()], err_msg=str(box))


# ----------------------------------------------------------------------------- layouts


def test_folder_layout_values_placement_and_missing_tiles(folders):
    root, expected = folders
    source = TiledStackSource(root, "{z}/{y}/{x}.jpg")
    assert source.size == (2048, 2048, 4)
    assert source.dtype == np.uint8 and source.num_channels == 1
    assert source.placement == (10 * 1024, 2 * 1024, 5)
    assert source.croppable
    check_boxes(
        source,
        expected,
        [
            BoundingBox((0, 0, 0), (2048, 2048, 4)),  # everything
            BoundingBox((0, 0, 0), (1, 1, 1)),  # first voxel
            BoundingBox((2047, 2047, 0), (1, 1, 1)),  # last voxel of a present tile
            BoundingBox((1000, 1000, 0), (48, 48, 2)),  # across all four tile borders, two slices
            BoundingBox((1023, 0, 1), (2, 2048, 1)),  # the seam between tile columns
            BoundingBox((1024, 1024, 1), (1024, 1024, 1)),  # the missing tile of slice 6
            BoundingBox((0, 0, 2), (2048, 2048, 1)),  # slice 7: no file at all
            BoundingBox((1020, 1020, 3), (10, 10, 1)),  # slice 8: one tile of four
        ],
    )
    assert not source.read(BoundingBox((1024, 1024, 1), (1024, 1024, 1))).any()
    assert source.read(BoundingBox((0, 0, 0), (1024, 1024, 1))).std() > 10  # real EM, not a flat image


def test_folder_layout_is_detected(folders):
    root, expected = folders
    assert detect_tile_pattern(root) == "{z}/{y}/{x}.jpg"
    assert looks_like_tiled_stack(root)
    source = TiledStackSource(root)
    assert "{z}/{y}/{x}.jpg (detected)" in source.description and str(root) in source.description
    check_boxes(source, expected, [BoundingBox((1000, 900, 0), (100, 200, 4))])


def test_zero_padded_pngs_with_narrow_last_column(pngs):
    root, expected = pngs
    source = TiledStackSource(root, "{zzz}_{yy}_{xx}.png")
    # the size follows the first tile: the last column is padded to 300 with zeros
    assert source.size == (900, 400, 3)
    assert source.placement == (4 * 300, 7 * 200, 0)
    assert not source.croppable  # 300 x 200 tiles straddle 1024-voxel files: read whole slices instead
    check_boxes(
        source,
        expected,
        [
            BoundingBox((0, 0, 0), (900, 400, 3)),
            BoundingBox((299, 199, 0), (2, 2, 1)),  # four tiles meet
            BoundingBox((710, 0, 0), (190, 400, 1)),  # the narrow column and its padding
            BoundingBox((300, 0, 2), (300, 200, 1)),  # the missing tile
            BoundingBox((0, 0, 1), (900, 400, 1)),  # the missing slice
            BoundingBox((899, 399, 2), (1, 1, 1)),
        ],
    )
    assert not source.read(BoundingBox((720, 0, 0), (180, 400, 3))).any()


def test_detection_finds_the_zero_padding(pngs):
    root, expected = pngs
    assert detect_tile_pattern(root) == "{z}_{y}_{x}.png"
    source = TiledStackSource(root)
    assert source.pattern.text == "{zzz}_{yy}_{xx}.png"  # how the files are really named
    assert source.tile_path(2, 1, 2) == str(root / "002_08_06.png")
    check_boxes(source, expected, [BoundingBox((250, 150, 0), (400, 100, 3))])


def test_the_real_tiles_as_they_are_named(tmp_path):
    """tests/data/em_tiles itself: ``{z}_{y}_{x}.jpg``, one section of 2 x 2 tiles from (140, 60, 1)."""
    source = TiledStackSource(EM_TILES)
    assert source.pattern.text == "{z}_{y}_{x}.jpg"
    assert source.placement == (140 * 1024, 60 * 1024, 1)
    assert source.size == (2048, 2048, 1)
    data = source.read(BoundingBox((0, 0, 0), (2048, 2048, 1)))[0]
    for (ty, tx), name in REAL.items():
        np.testing.assert_array_equal(
            data[ty * 1024 : (ty + 1) * 1024, tx * 1024 : (tx + 1) * 1024], pillow(EM_TILES / name)
        )


def test_rgb_and_16_bit_tiles(tmp_path):
    grey = pillow(EM_TILES / REAL[(0, 0)])
    rgb = np.stack([grey[:64, :80], grey[100:164, :80], grey[200:264, :80]], axis=-1)
    for ty in range(2):
        Image.fromarray(rgb[::-1] if ty else rgb).save(tmp_path / f"0_{ty}_0.png")
    source = TiledStackSource(tmp_path)
    assert source.num_channels == 3 and source.dtype == np.uint8 and source.size == (80, 128, 1)
    data = source.read(BoundingBox((0, 0, 0), (80, 128, 1)))
    assert data.shape == (1, 128, 80, 3)
    np.testing.assert_array_equal(data[0, :64], pillow(tmp_path / "0_0_0.png"))
    np.testing.assert_array_equal(data[0, 64:], pillow(tmp_path / "0_1_0.png"))

    deep = tmp_path / "deep"
    (deep / "3" / "0").mkdir(parents=True)
    tifffile.imwrite(deep / "3" / "0" / "0.tif", grey[:50, :60].astype(np.uint16) * 257)
    tifffile.imwrite(deep / "3" / "0" / "1.tif", grey[50:100, :60].astype(">u2") * 250)  # big-endian file
    source = TiledStackSource(deep, "{z}/{y}/{x}.tif")
    assert source.dtype == np.dtype("uint16") and source.dtype.isnative and source.size == (120, 50, 1)
    data = source.read(BoundingBox((55, 10, 0), (10, 5, 1)))[0]
    truth = np.hstack([tifffile.imread(deep / "3" / "0" / "0.tif"), tifffile.imread(deep / "3" / "0" / "1.tif")])
    np.testing.assert_array_equal(data, truth[10:15, 55:65])
    assert data.max() > 255


# ----------------------------------------------------------------------------- patterns


def test_pattern_fields_widths_and_literals():
    pattern = TilePattern.parse("sec{zzzz}/row.{y}/c{x}+(1).jpg")
    assert pattern.format(x=7, y=12, z=3) == "sec0003/row.12/c7+(1).jpg"
    assert pattern.regexes[0].fullmatch("sec0003") and not pattern.regexes[0].fullmatch("sec003")
    assert pattern.regexes[2].fullmatch("c12+(1).jpg") and not pattern.regexes[2].fullmatch("c12+(1)xjpg")
    assert TilePattern.parse("{z}/{x}_{y}.png").format(x=1, y=2, z=0) == "0/1_2.png"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{y}/{x}.jpg", "where z are"),
        ("{z}/{w}/{x}.jpg", "{w} is not a number field"),
        ("{z}/{zy}/{x}.jpg", "{zy} is not a number field"),
        ("{z}/{y}/{x.jpg", "unmatched brace"),
        ("/{z}/{y}/{x}.jpg", "relative to the stack folder"),
        ("{z}/../{y}/{x}.jpg", "'..'"),
        ("{z}{y}_{x}.jpg", "side by side"),
    ],
)
def test_bad_patterns_say_what_is_wrong(text, says):
    with pytest.raises(WKWError, match="tile pattern") as caught:
        TilePattern.parse(text)
    assert says in str(caught.value)


def test_walks_only_the_folders_the_pattern_allows(folders, monkeypatch):
    root, expected = folders
    (root / "notes" / "2").mkdir(parents=True)
    shutil.copyfile(EM_TILES / REAL[(0, 0)], root / "notes" / "2" / "3.jpg")
    (root / "5" / "thumbs").mkdir()
    shutil.copyfile(EM_TILES / REAL[(0, 0)], root / "5" / "2" / "10.png")  # another suffix: not a tile
    scanned = []
    real_scandir = os.scandir
    monkeypatch.setattr(tiles_module.os, "scandir", lambda path: scanned.append(Path(path)) or real_scandir(path))
    source = TiledStackSource(root, "{z}/{y}/{x}.jpg")
    assert source.tile_count == 8 and source.size == (2048, 2048, 4)
    assert set(scanned) == {root, root / "5", root / "6", root / "8"} | {
        root / z / y for z, ys in {"5": "23", "6": "23", "8": "2"}.items() for y in ys
    }
    check_boxes(source, expected, [BoundingBox((0, 0, 0), (2048, 2048, 4))])


def test_mixed_zero_padding_needs_a_width(tmp_path):
    for name in ("1_05_1.jpg", "1_7_1.jpg"):
        shutil.copyfile(EM_TILES / REAL[(0, 0)], tmp_path / name)
    with pytest.raises(WKWError, match=r"zero-padded to different widths .* e\.g\. \{yy\}") as caught:
        TiledStackSource(tmp_path)
    assert str(tmp_path) in str(caught.value)
    source = TiledStackSource(tmp_path, "{z}_{yy}_{x}.jpg")  # a fixed width takes only the padded one
    assert source.tile_count == 1


def test_nothing_to_convert(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(WKWError, match="no tiles found") as caught:
        TiledStackSource(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(caught.value)
    with pytest.raises(WKWError, match=r"no tile matches the pattern \{z\}/\{y\}/\{x\}.png"):
        TiledStackSource(EM_TILES, "{z}/{y}/{x}.png")
    with pytest.raises(WKWError, match="not a folder"):
        TiledStackSource(EM_TILES / REAL[(0, 0)])


def test_what_is_not_a_tiled_stack(tmp_path, folders, pngs):
    assert looks_like_tiled_stack(folders[0]) and looks_like_tiled_stack(pngs[0])
    slices = tmp_path / "slices"  # an image stack: one number per file
    slices.mkdir()
    for z in range(3):
        shutil.copyfile(EM_TILES / REAL[(0, 0)], slices / f"{z:04d}.jpg")
    knossos = tmp_path / "knossos" / "x0000" / "y0000" / "z0000"  # KNOSSOS cubes
    knossos.mkdir(parents=True)
    (knossos / "cube_mag1_x0000_y0000_z0000.raw").write_bytes(bytes(8))
    text = tmp_path / "text"  # numbered folders, but no images in them
    (text / "1" / "2").mkdir(parents=True)
    (text / "1" / "2" / "3.txt").write_text("3")
    empty = tmp_path / "empty"
    empty.mkdir()
    for path in (slices, tmp_path / "knossos", text, empty, EM_TILES / REAL[(0, 0)], tmp_path / "missing"):
        assert not looks_like_tiled_stack(path), path


# ----------------------------------------------------------------------------- bad tiles


def test_a_tile_of_another_size_is_named(folders):
    root, _ = folders
    bad = root / "6" / "2" / "11.jpg"
    Image.open(EM_TILES / REAL[(0, 0)]).crop((0, 0, 1024, 1000)).save(bad)
    source = TiledStackSource(root)
    check_boxes(source, folders[1], [BoundingBox((0, 0, 0), (1024, 1024, 2))])  # other tiles still read
    with pytest.raises(WKWError) as caught:
        source.read(BoundingBox((1000, 0, 1), (100, 100, 1)))
    message = str(caught.value)
    assert message.startswith(f"{bad}: the tile is 1024 x 1000 pixels, the first tile (5/2/10.jpg) is 1024 x 1024")
    assert "\n" not in message


def test_an_unreadable_tile_is_named(folders):
    root, _ = folders
    garbage = root / "6" / "3" / "10.jpg"
    garbage.write_bytes(b"\xff\xd8 this is no JPEG" * 20)
    source = TiledStackSource(root)
    with pytest.raises(WKWError, match="not a readable image") as caught:
        source.read(BoundingBox((0, 1024, 1), (1, 1, 1)))
    assert str(caught.value).startswith(f"{garbage}: ") and "\n" not in str(caught.value)
    (root / "5" / "2" / "10.jpg").write_bytes(b"")  # the first tile itself
    with pytest.raises(WKWError, match="^" + re.escape(f"{root / '5' / '2' / '10.jpg'}: not a readable image")):
        TiledStackSource(root)


def test_a_tile_of_another_type_is_named(tmp_path):
    grey = pillow(EM_TILES / REAL[(0, 0)])[:40, :40]
    Image.fromarray(grey).save(tmp_path / "0_0_0.png")
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "0_0_1.png")
    source = TiledStackSource(tmp_path)
    with pytest.raises(WKWError, match=r"0_0_1.png: the tile has 3 channel\(s\) of uint8, the first tile"):
        source.read(BoundingBox((0, 0, 0), (80, 40, 1)))


# ----------------------------------------------------------------------------- for the engine


def test_pickles_small_and_reads_the_same_in_threads(folders):
    root, expected = folders
    source = TiledStackSource(root)
    copy = pickle.loads(pickle.dumps(source))
    assert len(pickle.dumps(source)) < 4000  # paths and numbers, no tile list, no pixels
    boxes = [BoundingBox((x, y, z), (300, 300, 1)) for z in range(4) for y in (0, 900, 1748) for x in (0, 900, 1748)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(copy.read, boxes))
    for box, data in zip(boxes, results):
        np.testing.assert_array_equal(data, expected[box.zyx_slices()])


def test_fingerprint_changes_with_the_tiles(folders):
    root, _ = folders
    before = TiledStackSource(root).fingerprint()
    assert before["pattern"] == "{z}/{y}/{x}.jpg" and before["tiles"] == 8 and before["tile_low"] == [10, 2, 5]
    assert TiledStackSource(root).fingerprint() == before
    tile = root / "8" / "2" / "10.jpg"
    os.utime(tile, ns=(tile.stat().st_atime_ns, tile.stat().st_mtime_ns + 10**9))
    assert TiledStackSource(root).fingerprint() != before
    shutil.copyfile(tile, root / "8" / "2" / "11.jpg")
    assert TiledStackSource(root).fingerprint()["tiles"] == 9


def test_build_tile_specs_places_the_layer(pngs):
    root, _ = pngs
    [spec] = build_tile_specs(root, layer_name="em", pattern="{zzz}_{yy}_{xx}.png", dtype="uint16")
    assert spec.name == "em" and spec.category == "color" and spec.stored_dtype == np.uint16
    assert spec.offset == (1200, 1400, 0) and spec.mag.xyz == (1, 1, 1)
    assert isinstance(spec.source, TiledStackSource) and spec.source.size == (900, 400, 3)
