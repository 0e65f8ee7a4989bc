"""dataset_info / format_info: checked against the files themselves, not against our reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_wkw.core.dataset import Dataset
from napari_wkw.core.errors import DatasetFormatError, WKWError, WKWWarning
from napari_wkw.core.properties import PROPERTIES_FILE
from napari_wkw.core.wkw_file import BLOCK_LZ4, BLOCK_RAW
from napari_wkw.ops.info import dataset_info, format_bytes, format_info

DATA = Path(__file__).parents[1] / "data" / "wkw"


def _on_disk(mag_path: Path) -> tuple[int, int, str, int]:
    """(data files, bytes of header + data files, compression, file edge) straight from the bytes."""
    files = sorted(mag_path.glob("z*/y*/x*.wkw"))
    total = (mag_path / "header.wkw").stat().st_size + sum(f.stat().st_size for f in files)
    header = (mag_path / "header.wkw").read_bytes()
    assert header[:3] == b"WKW"
    compression = {1: "raw", 2: "lz4", 3: "lz4hc"}[header[5]]
    lens = header[4]
    file_edge = (1 << (lens & 0x0F)) * (1 << (lens >> 4))
    return len(files), total, compression, file_edge


def test_reference_dataset_summary_matches_the_files():
    path = DATA / "webknossos_written"
    info = dataset_info(path)
    raw = json.loads((path / PROPERTIES_FILE).read_text())
    assert info["name"] == raw["id"]["name"]
    assert info["voxel_size"] == raw["scale"]["factor"]
    assert info["has_properties"] is True
    assert [layer["name"] for layer in info["layers"]] == ["color", "segmentation"]
    total = 0
    for layer, want in zip(info["layers"], raw["dataLayers"]):
        assert layer["category"] == want["category"]
        assert layer["element_class"] == want["elementClass"]
        assert layer["num_channels"] == 1
        box = want["boundingBox"]
        assert layer["bounding_box"] == {
            "topleft": box["topLeft"], "size": [box["width"], box["height"], box["depth"]]
        }
        assert layer["largest_segment_id"] == want.get("largestSegmentId")
        assert [mag["mag"] for mag in layer["mags"]] == ["1", "2-2-1", "4-4-2"]
        layer_bytes = 0
        for mag in layer["mags"]:
            files, size, compression, edge = _on_disk(path / layer["name"] / mag["mag"])
            got = (mag["files"], mag["bytes"], mag["compression"], mag["file_size"])
            assert got == (files, size, compression, edge)
            assert mag["compression"] == "lz4hc"
            assert mag["file_size"] == 128 == mag["block_len"] * mag["file_len"]
            layer_bytes += size
        assert layer["bytes"] == layer_bytes
        assert layer["missing_mags"] == []
        total += layer_bytes
    assert info["bytes"] == total
    json.dumps(info)  # JSON-ready as it is


def test_generated_raw_and_lz4_rgb_and_float(tmp_path):
    path = tmp_path / "ds"
    dataset = Dataset.create(path, (4, 5, 6.5))
    rgb = dataset.add_layer("rgb", "color", np.uint8, num_channels=3)
    rgb.add_mag(1, block_type=BLOCK_RAW, block_len=8, file_len=2).write(
        (3, 20, 9), np.full((5, 17, 40, 3), 7, np.uint8)
    )
    rgb.bounding_box = rgb.bounding_box.union(rgb.bounding_box.__class__((3, 20, 9), (40, 17, 5)))
    depth = dataset.add_layer("depth", "color", np.float32)
    view = depth.add_mag("2-2-1", block_type=BLOCK_LZ4, block_len=8, file_len=4)
    view.write((0, 0, 0), np.ones((3, 3, 3), np.float32))
    dataset.save_properties()

    info = dataset_info(path)
    layers = {layer["name"]: layer for layer in info["layers"]}
    assert info["voxel_size"] == [4.0, 5.0, 6.5]
    assert layers["rgb"]["element_class"] == "uint24"
    assert layers["rgb"]["dtype"] == "uint8"
    assert layers["rgb"]["num_channels"] == 3
    assert layers["rgb"]["bounding_box"] == {"topleft": [3, 20, 9], "size": [40, 17, 5]}
    assert layers["depth"]["element_class"] == "float"
    for name, mag in (("rgb", "1"), ("depth", "2-2-1")):
        files, size, compression, edge = _on_disk(path / name / mag)
        (got,) = layers[name]["mags"]
        assert (got["mag"], got["files"], got["bytes"], got["compression"], got["file_size"]) == (
            mag, files, size, compression, edge
        )
    assert layers["rgb"]["mags"][0]["compression"] == "raw"
    assert layers["rgb"]["mags"][0]["files"] == 3 * 2 * 1  # x 3..43, y 20..37, z 9..14 in 16-voxel files
    assert layers["depth"]["mags"][0]["compression"] == "lz4"
    assert info["bytes"] == sum(_on_disk(path / n / m)[1] for n, m in (("rgb", "1"), ("depth", "2-2-1")))

    text = format_info(info)
    assert "uint24 (3 x uint8)" in text
    assert "4 x 5 x 6.5 nanometer" in text
    assert format_bytes(info["bytes"]) in text


def test_text_lists_every_mag_in_aligned_columns():
    text = format_info(dataset_info(DATA / "webknossos_written"))
    lines = text.splitlines()
    assert lines[0].split() == ["dataset", "wk_written"]
    for layer in ("color", "segmentation"):
        start = lines.index(f"layer {layer!r}")
        header = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("mag "))
        table = lines[header : header + 4]
        assert [row.split()[0] for row in table] == ["mag", "1", "2-2-1", "4-4-2"]
        assert all(row.split()[1] == "lz4hc" for row in table[1:])
        assert len({len(row) for row in table}) == 1  # right-aligned last column: equal widths
        assert len({row.index(row.split()[1]) for row in table}) == 1  # compression column starts together
    assert "largest id    41" in text


def test_missing_mags_and_datasets_without_properties(wkw_copy):
    with pytest.warns(WKWWarning):
        info = dataset_info(DATA / "complex_property_ds")
    for layer in info["layers"]:
        assert [mag["mag"] for mag in layer["mags"]] == ["1"]
        assert layer["missing_mags"] == ["2", "4", "8", "16", "32"]
        assert layer["mags"][0]["files"] == 0
    assert "missing mags  2, 4, 8, 16, 32" in format_info(info)

    path = wkw_copy("simple_wkw_dataset")
    (path / PROPERTIES_FILE).unlink()
    info = dataset_info(path)
    assert info["has_properties"] is False
    assert info["layers"][0]["bounding_box"] == {"topleft": [0, 0, 0], "size": [32, 32, 32]}  # file granularity
    assert "discovered from the folders" in format_info(info)


def test_bad_inputs(tmp_path, wkw_copy):
    with pytest.raises(WKWError, match="no such dataset"):
        dataset_info(tmp_path / "missing")
    path = wkw_copy("webknossos_written")
    (path / "color" / "2-2-1" / "header.wkw").write_bytes(b"WKX" + bytes(13))
    with pytest.raises(DatasetFormatError, match=r"color/2-2-1/header.wkw: not a WKW file"):
        dataset_info(path)
    (path / PROPERTIES_FILE).write_text("{ half")
    with pytest.raises(DatasetFormatError, match=PROPERTIES_FILE):
        dataset_info(path)
