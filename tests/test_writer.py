"""The napari writer contribution, called with LayerData tuples as napari builds them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import wkw

from napari_wkw._reader import read_wkw
from napari_wkw._writer import write_layers
from napari_wkw.core import TargetExistsError


def _bare(mag_path, offset, size):
    return wkw.Dataset.open(str(mag_path)).read(offset, size).transpose(3, 2, 1, 0)


def test_image_and_labels_to_one_dataset(tmp_path):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 60000, (33, 70, 90), dtype=np.uint16)
    labels = rng.integers(0, 5, (33, 70, 90)).astype(np.int32)
    meta_image = {"name": "raw EM", "scale": (30.0, 8.0, 8.0), "translate": (0.0, 0.0, 0.0), "units": ("nm",) * 3}
    meta_labels = {"name": "cells", "scale": (30.0, 8.0, 8.0), "translate": (0.0, 0.0, 0.0)}
    [written] = write_layers(str(tmp_path / "out"), [(image, meta_image, "image"), (labels, meta_labels, "labels")])
    props = json.loads((tmp_path / "out" / "datasource-properties.json").read_text())
    assert props["scale"]["factor"] == [8.0, 8.0, 30.0]
    by_name = {layer["name"]: layer for layer in props["dataLayers"]}
    assert set(by_name) == {"raw_EM", "cells"}
    assert by_name["raw_EM"]["category"] == "color" and by_name["raw_EM"]["elementClass"] == "uint16"
    assert by_name["cells"]["category"] == "segmentation" and by_name["cells"]["largestSegmentId"] == 4
    # 8 x 8 x 30 nm: x/y are halved until they pass z, then all three
    assert [m["mag"] for m in by_name["raw_EM"]["mags"]] == [[1, 1, 1], [2, 2, 1], [4, 4, 1]]
    np.testing.assert_array_equal(_bare(tmp_path / "out" / "raw_EM" / "1", (0, 0, 0), (90, 70, 33))[..., 0], image)
    np.testing.assert_array_equal(_bare(tmp_path / "out" / "cells" / "1", (0, 0, 0), (90, 70, 33))[..., 0], labels)
    assert wkw.Dataset.open(str(tmp_path / "out" / "cells" / "1")).header.block_type in (2, 3)
    layers = {meta["metadata"]["wkw_layer"]: kind for _, meta, kind in read_wkw(written)}
    assert layers == {"raw_EM": "image", "cells": "labels"}


def test_rgb_2d_image_becomes_uint24(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (50, 60, 3), dtype=np.uint8)
    write_layers(str(tmp_path / "rgb"), [(rgb, {"name": "photo", "rgb": True}, "image")])
    props = json.loads((tmp_path / "rgb" / "datasource-properties.json").read_text())
    layer = props["dataLayers"][0]
    assert layer["elementClass"] == "uint24" and layer["numChannels"] == 3
    np.testing.assert_array_equal(_bare(tmp_path / "rgb" / "photo" / "1", (0, 0, 0), (60, 50, 1))[0], rgb)
    [(data, meta, kind)] = read_wkw(str(tmp_path / "rgb"))
    assert meta["rgb"] is True


def test_translate_becomes_bounding_box_offset(tmp_path):
    volume = np.ones((4, 5, 6), np.uint8)
    meta = {"name": "a", "scale": (2.0, 1.0, 1.0), "translate": (6.0, 7.0, 9.0)}
    write_layers(str(tmp_path / "t"), [(volume, meta, "image")])
    box = json.loads((tmp_path / "t" / "datasource-properties.json").read_text())["dataLayers"][0]["boundingBox"]
    assert box == {"topLeft": [9, 7, 3], "width": 6, "height": 5, "depth": 4}


def test_multiscale_layer_is_written_level_by_level(tmp_path):
    class CountingLevel:
        """An array-like that records which slices were taken (never the whole level)."""

        def __init__(self, array):
            self.array, self.shape, self.dtype, self.ndim = array, array.shape, array.dtype, array.ndim
            self.largest_read = 0

        def __getitem__(self, key):
            out = self.array[key]
            self.largest_read = max(self.largest_read, out.size)
            return out

    base = np.random.default_rng(0).integers(0, 255, (64, 1100, 1100), dtype=np.uint8)
    level1 = base[:, ::2, ::2].copy()
    levels = [CountingLevel(base), CountingLevel(level1)]
    meta = {"name": "pyr", "multiscale": True, "scale": (10.0, 10.0, 10.0)}
    write_layers(str(tmp_path / "m"), [(levels, meta, "image")])
    properties = json.loads((tmp_path / "m" / "datasource-properties.json").read_text())
    mags = [m["mag"] for m in properties["dataLayers"][0]["mags"]]
    assert mags[:2] == [[1, 1, 1], [2, 2, 1]]
    # level 1 was written as it was given, not recomputed
    np.testing.assert_array_equal(_bare(tmp_path / "m" / "pyr" / "2-2-1", (0, 0, 0), (550, 550, 64))[..., 0], level1)
    assert all(level.largest_read <= 512 * 512 * 32 for level in levels)


def test_refuses_non_empty_foreign_folder(tmp_path):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "thesis.txt").write_text("do not lose me")
    with pytest.raises(TargetExistsError, match="precious"):
        write_layers(str(target), [(np.zeros((2, 2, 2), np.uint8), {"name": "x"}, "image")])
    assert [p.name for p in target.iterdir()] == ["thesis.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["precious"], "no staging folder left behind"


def test_saving_again_replaces_the_layer_and_keeps_others(tmp_path):
    first = np.full((3, 4, 5), 7, np.uint8)
    write_layers(str(tmp_path / "d"), [(first, {"name": "a"}, "image"), (first, {"name": "b"}, "image")])
    second = np.full((3, 4, 5), 9, np.uint8)
    write_layers(str(tmp_path / "d"), [(second, {"name": "a"}, "image")])
    props = json.loads((tmp_path / "d" / "datasource-properties.json").read_text())
    assert sorted(layer["name"] for layer in props["dataLayers"]) == ["a", "b"]
    assert _bare(tmp_path / "d" / "a" / "1", (0, 0, 0), (5, 4, 3)).max() == 9
    assert _bare(tmp_path / "d" / "b" / "1", (0, 0, 0), (5, 4, 3)).max() == 7
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["a", "b", "datasource-properties.json"]


def test_refuses_4d_layers_with_a_clear_message(tmp_path):
    with pytest.raises(ValueError, match="WKW stores 3D volumes"):
        write_layers(str(tmp_path / "x"), [(np.zeros((2, 3, 4, 5), np.uint8), {"name": "movie"}, "image")])
    assert not (tmp_path / "x").exists()
