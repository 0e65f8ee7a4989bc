"""Mags, boxes and datasource-properties.json (current and old style)."""

from __future__ import annotations

import json

import pytest

from napari_wkw.core import BoundingBox, DatasetFormatError, Mag
from napari_wkw.core.properties import read_properties, write_properties

from ..conftest import DATA


@pytest.mark.parametrize(
    ("value", "xyz", "folder"),
    [(1, (1, 1, 1), "1"), ("2", (2, 2, 2), "2"), ("2-2-1", (2, 2, 1), "2-2-1"), ([4, 4, 2], (4, 4, 2), "4-4-2")],
)
def test_mag_parse_and_folder_name(value, xyz, folder):
    mag = Mag.parse(value)
    assert mag.xyz == xyz and mag.folder_name() == folder


@pytest.mark.parametrize("bad", ["0", "2-2", "a", [1, 2], [0, 1, 1]])
def test_mag_parse_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        Mag.parse(bad)


def test_box_chunks_tile_the_box_on_the_absolute_grid():
    box = BoundingBox((5, 30, 3), (70, 50, 41))
    pieces = list(box.chunks((32, 32, 32)))
    assert sum(p.volume for p in pieces) == box.volume
    for piece in pieces:
        assert piece.intersection(box) == piece
        for start, stop in zip(piece.topleft, piece.bottomright):
            # every inner border sits on a multiple of 32
            assert start in (5, 30, 3) or start % 32 == 0
            assert stop in (75, 80, 44) or stop % 32 == 0


def test_box_in_mag_covers_and_aligned_grows():
    box = BoundingBox((5, 37, 3), (70, 50, 41))
    assert box.in_mag(Mag(2, 2, 1)) == BoundingBox((2, 18, 3), (36, 26, 41))
    assert box.aligned((4, 4, 2)) == BoundingBox((4, 36, 2), (72, 52, 42))


def test_current_style_properties():
    props = read_properties(DATA / "wkw" / "complex_property_ds" / "datasource-properties.json")
    assert props.voxel_size == pytest.approx((11.24, 11.24, 28.0)) and props.unit == "nanometer"
    color, seg = props.layers
    assert color.category == "color" and seg.category == "segmentation"
    assert seg.element_class == "uint32" and seg.largest_segment_id == 1_000_000_000
    assert sorted(m.mag.max_dim for m in color.mags) == [1, 2, 4, 8, 16, 32]
    assert color.bounding_box == BoundingBox((0, 0, 0), (1024, 1024, 1024))


def test_old_style_properties():
    props = read_properties(DATA / "wkw" / "old_wkw_dataset" / "datasource-properties.json")
    assert props.voxel_size == pytest.approx((11.24, 11.24, 28.0))
    assert [m.mag for m in props.layers[0].mags] == [Mag(1, 1, 1), Mag(2, 2, 2)]
    rgb = read_properties(DATA / "wkw" / "simple_wkw_dataset" / "datasource-properties.json").layers[0]
    assert rgb.element_class == "uint24" and rgb.num_channels == 3


def test_round_trip_writes_current_style_and_keeps_extra_keys(tmp_path):
    source = DATA / "wkw" / "complex_property_ds" / "datasource-properties.json"
    props = read_properties(source)
    target = tmp_path / "datasource-properties.json"
    write_properties(target, props)
    written = json.loads(target.read_text())
    original = json.loads(source.read_text())
    assert written["scale"] == {"unit": "nanometer", "factor": original["scale"]["factor"]}
    assert written["id"] == original["id"]
    for before, after in zip(original["dataLayers"], written["dataLayers"]):
        for key in ("coordinateTransformations", "mappings"):
            assert after.get(key) == before.get(key)
        assert "wkwResolutions" not in after
        assert all(set(m) == {"mag", "path", "cubeLength"} for m in after["mags"])
        cube_lengths = {tuple(m["mag"]): m["cubeLength"] for m in before["mags"]}
        assert all(m["cubeLength"] == cube_lengths[tuple(m["mag"])] for m in after["mags"])
    assert read_properties(target).layers[1].largest_segment_id == 1_000_000_000

    old = read_properties(DATA / "wkw" / "old_wkw_dataset" / "datasource-properties.json")
    write_properties(target, old)
    written = json.loads(target.read_text())
    assert written["dataLayers"][0]["mags"] == [
        {"mag": [1, 1, 1], "path": "./color/1", "cubeLength": 1024},
        {"mag": [2, 2, 2], "path": "./color/2", "cubeLength": 512},
    ]
    assert not list(tmp_path.glob(".*partial")), "atomic write leaves no temporary file"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"dataLayers": [', "not valid JSON"),
        ("[]", "not a JSON object"),
        ('{"scale": [1, 1], "dataLayers": []}', "three positive numbers"),
        ('{"scale": [1, 1, 1], "dataLayers": [{"name": "a", "category": "x", "boundingBox": {}}]}', "category"),
        ('{"scale": [1, 1, 1], "dataLayers": [{"name": "a", "category": "color"}]}', "boundingBox"),
        ('{"scale": [1,1,1], "dataLayers": [{"name": "a", "elementClass": "uint12", '
         '"boundingBox": {"topLeft": [0,0,0], "width": 1, "height": 1, "depth": 1}}]}', "uint12"),
    ],
)
def test_bad_properties_name_the_file(tmp_path, text, message):
    path = tmp_path / "datasource-properties.json"
    path.write_text(text)
    with pytest.raises(DatasetFormatError, match=message) as error:
        read_properties(path)
    assert str(path) in str(error.value)
