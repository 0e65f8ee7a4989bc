"""The napari reader contribution, called as napari calls it (no viewer needed)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import wkw

from napari_wkw._reader import napari_get_reader, read_wkw
from napari_wkw.core import WKWWarning
from napari_wkw.core.dataset import MagView


def _bare(mag_path, offset, size):
    """(z, y, x, c) voxels read with the reference library alone."""
    return wkw.Dataset.open(str(mag_path)).read(offset, size).transpose(3, 2, 1, 0)


def test_reference_rgb_dataset_opens_as_rgb_image(wkw_copy):
    path = wkw_copy("simple_wkw_dataset")
    reader = napari_get_reader(str(path))
    assert reader is not None
    [(data, meta, layer_type)] = reader(str(path))
    assert layer_type == "image"
    assert meta["rgb"] is True
    assert meta["multiscale"] is False
    assert data.shape == (24, 24, 24, 3)
    assert meta["scale"] == (1.0, 1.0, 1.0)
    assert meta["axis_labels"] == ("z", "y", "x")
    expected = _bare(path / "color" / "1", (0, 0, 0), (24, 24, 24))
    np.testing.assert_array_equal(np.asarray(data), expected)  # (the reference file holds zeros)


@pytest.mark.parametrize(
    "relative",
    ["", "datasource-properties.json", "color", "color/1", "color/1/header.wkw", "color/1/z0/y0/x0.wkw"],
)
def test_every_kind_of_path_is_accepted(wkw_copy, relative):
    path = wkw_copy("simple_wkw_dataset") / relative
    reader = napari_get_reader(str(path))
    assert reader is not None, relative
    layers = reader([str(path)])
    assert len(layers) == 1
    assert layers[0][0].shape == (24, 24, 24, 3)


def test_declines_what_is_not_wkw(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "tiffs").mkdir()
    (tmp_path / "tiffs" / "a.tif").write_bytes(b"II*\x00")
    (tmp_path / "notes.json").write_text("{}")
    for candidate in ["empty", "tiffs", "tiffs/a.tif", "notes.json", "missing"]:
        assert napari_get_reader(str(tmp_path / candidate)) is None, candidate
    assert napari_get_reader([str(tmp_path / "empty"), str(tmp_path / "tiffs")]) is None


def test_multiscale_levels_scale_translate_and_values(em_dataset):
    path, image, labels = em_dataset
    layers = {meta["metadata"]["wkw_layer"]: (data, meta, kind) for data, meta, kind in read_wkw(str(path))}
    data, meta, kind = layers["color"]
    assert kind == "image" and meta["multiscale"] and meta["rgb"] is False
    # mags 1, 2-2-1, 4-4-2 for 11.24 x 11.24 x 25 nm
    assert meta["metadata"]["wkw_mags"] == ["1", "2-2-1", "4-4-2"]
    shapes = [a.shape for a in data]
    factors = [(1, 1, 1), (1, 2, 2), (2, 4, 4)]
    for shape, factor in zip(shapes, factors):
        assert tuple(s0 // f for s0, f in zip(shapes[0], factor)) == shape
        assert all(s0 % f == 0 for s0, f in zip(shapes[0], factor))
    assert meta["scale"] == pytest.approx((25.0, 11.24, 11.24))
    # the aligned box starts at the multiple of the coarsest mag (4, 4, 2) below (64, 32, 8)
    assert meta["translate"] == pytest.approx((8 * 25.0, 32 * 11.24, 64 * 11.24))
    # voxel values: the array origin is the aligned box's corner, equal to the data origin here
    np.testing.assert_array_equal(np.asarray(data[0][0:40, 0:150, 0:210]), image)
    labels_data, labels_meta, labels_kind = layers["segmentation"]
    assert labels_kind == "labels"
    np.testing.assert_array_equal(np.asarray(labels_data[0][0:40, 0:150, 0:210]), labels)
    coarse = np.asarray(labels_data[2])
    bare = _bare(path / "segmentation" / "4-4-2", (16, 8, 4), coarse.shape[::-1])[..., 0]
    np.testing.assert_array_equal(coarse, bare)


def test_unaligned_offset_translate_matches_voxels(tmp_path):
    from napari_wkw.core.save import ArrayLayer, save_dataset

    volume = np.arange(9 * 10 * 11, dtype=np.uint16).reshape(9, 10, 11)
    path = save_dataset(tmp_path / "ds", [ArrayLayer("color", "color", [volume], (2.0, 3.0, 5.0), offset=(7, 5, 3))])
    [(data, meta, _)] = read_wkw(str(path))
    levels = data if meta["multiscale"] else [data]
    origin_zyx = np.rint(np.array(meta["translate"]) / np.array(meta["scale"])).astype(int)
    # index (z, y, x) of level 0 sits at mag-1 voxel origin + index
    start = np.array([3, 5, 7]) - origin_zyx
    got = np.asarray(levels[0])[start[0] : start[0] + 9, start[1] : start[1] + 10, start[2] : start[2] + 11]
    np.testing.assert_array_equal(got, volume)
    assert meta["contrast_limits"][0] >= 0 and meta["contrast_limits"][1] <= volume.max()


def test_mag_folder_opens_one_level_with_its_scale(em_dataset):
    path, image, _ = em_dataset
    [(data, meta, kind)] = read_wkw(str(path / "color" / "2-2-1"))
    assert kind == "image" and meta["multiscale"] is False
    assert meta["scale"] == pytest.approx((25.0, 22.48, 22.48))
    assert "mag 2-2-1" in meta["name"]
    assert data.shape == (40, 75, 105)


def test_opening_reads_no_voxels(em_dataset, monkeypatch):
    path, _, _ = em_dataset
    calls = []
    original = MagView.read
    monkeypatch.setattr(MagView, "read", lambda self, box: calls.append((self.mag, box)) or original(self, box))
    layers = read_wkw(str(path))
    # uint8 needs no contrast limits at all; labels never do
    assert calls == []
    assert len(layers) == 2


def test_contrast_limits_from_coarsest_mag_only(tmp_path, monkeypatch):
    from napari_wkw.core.save import ArrayLayer, save_dataset

    volume = np.full((64, 256, 256), 1000, np.uint16)
    volume[10:20, 50:150, 50:150] = 30000
    path = save_dataset(tmp_path / "ds", [ArrayLayer("color", "color", [volume], (10.0, 10.0, 10.0))])
    mags_read = []
    original = MagView.read
    monkeypatch.setattr(MagView, "read", lambda self, box: mags_read.append(self.mag) or original(self, box))
    [(data, meta, _)] = read_wkw(str(path))
    assert len(data) > 1
    coarsest = max(mags_read, key=lambda m: m.max_dim) if mags_read else None
    assert mags_read and all(m == coarsest for m in mags_read)
    assert meta["contrast_limits"][0] == 1000 and meta["contrast_limits"][1] == 30000


def test_multichannel_color_layer_splits_into_channels(tmp_path):
    from napari_wkw.core import BoundingBox, Dataset
    from napari_wkw.core.writing import write_array

    ds = Dataset.create(tmp_path / "ds", (5.0, 5.0, 5.0))
    box = BoundingBox((0, 0, 0), (40, 30, 20))
    layer = ds.add_layer("channels", "color", np.uint16, num_channels=2, bounding_box=box)
    volume = np.random.default_rng(0).integers(0, 4000, (20, 30, 40, 2), dtype=np.uint16)
    write_array(layer.add_mag(1), volume)
    ds.save_properties()
    layers = read_wkw(str(tmp_path / "ds"))
    assert [kind for _, _, kind in layers] == ["image", "image"]
    for index, (data, meta, _) in enumerate(layers):
        assert meta["rgb"] is False and meta["name"].endswith(f"c{index}")
        assert data.shape == (20, 30, 40)
        channel = volume[..., index]
        assert meta["contrast_limits"] == [channel.min(), channel.max()]
        np.testing.assert_array_equal(np.asarray(data), channel)
        np.testing.assert_array_equal(data[5, 3:17, ::3], channel[5, 3:17, ::3])


def test_corrupt_properties_fall_back_to_discovery_with_warning(wkw_copy):
    path = wkw_copy("simple_wkw_dataset")
    properties = path / "datasource-properties.json"
    properties.write_text(properties.read_text()[:100])  # half-written
    with pytest.warns(WKWWarning, match="datasource-properties.json"):
        layers = read_wkw(str(path))
    assert layers[0][0].shape[-1] == 3


def test_missing_listed_mag_warns_and_shows_the_rest(wkw_copy):
    path = wkw_copy("complex_property_ds")
    with pytest.warns(WKWWarning, match="lists mag"):
        layers = read_wkw(str(path))
    kinds = sorted(kind for _, _, kind in layers)
    assert kinds == ["image", "labels"]
    for _, meta, _ in layers:
        assert meta["multiscale"] is False
        assert meta["scale"] == pytest.approx((28.0, 11.24, 11.24))


def test_truncated_data_file_gives_zeros_and_a_warning(wkw_copy):
    path = wkw_copy("simple_wkw_dataset")
    data_file = path / "color" / "1" / "z0" / "y0" / "x0.wkw"
    data_file.write_bytes(data_file.read_bytes()[:5000])
    [(data, meta, _)] = read_wkw(str(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = np.asarray(data)
    assert any(issubclass(w.category, WKWWarning) and "x0.wkw" in str(w.message) for w in caught)
    assert values.shape == (24, 24, 24, 3)


def test_written_properties_are_current_style(em_dataset):
    path, _, labels = em_dataset
    written = json.loads((path / "datasource-properties.json").read_text())
    assert written["scale"] == {"unit": "nanometer", "factor": [11.24, 11.24, 25.0]}
    seg = next(layer for layer in written["dataLayers"] if layer["name"] == "segmentation")
    assert seg["largestSegmentId"] == int(labels.max())
    assert [m["mag"] for m in seg["mags"]] == [[1, 1, 1], [2, 2, 1], [4, 4, 2]]
    assert [m["path"] for m in seg["mags"]] == ["./segmentation/1", "./segmentation/2-2-1", "./segmentation/4-4-2"]


def test_huge_sparse_dataset_slices_touch_only_the_chunks_needed(tmp_path, monkeypatch):
    """100k x 80k x 20k voxels (20 M chunks): a dask graph this size took 17-24 s per crop."""
    from napari_wkw.core import BoundingBox, Dataset, Mag, plan_mags

    ds = Dataset.create(tmp_path / "huge", (10.0, 10.0, 25.0))
    layer = ds.add_layer("color", "color", np.uint8, bounding_box=BoundingBox((0, 0, 0), (100_000, 80_000, 20_000)))
    layer.add_mag(1).write((50_176, 40_960, 10_000), np.full((1, 4, 4), 9, np.uint8))
    for mag in plan_mags(Mag(1, 1, 1), Mag(1024, 1024, 1024), ds.voxel_size):
        layer.add_mag(mag)
    ds.save_properties()
    reads = []
    original = MagView.read
    monkeypatch.setattr(MagView, "read", lambda self, box: reads.append(box) or original(self, box))
    [(data, meta, _)] = read_wkw(str(tmp_path / "huge"))
    # padded to the coarsest mag (1024-1024-512) so that every level divides exactly
    assert len(data) == 11 and data[0].shape == (20_480, 80_896, 100_352) and reads == []
    crop = np.asarray(data[0][10_000, 40_960:41_984, 50_176:51_200])
    assert crop[:4, :4].tolist() == [[9] * 4] * 4 and crop[4:].max() == 0
    # a file-aligned 1024 x 1024 crop on the 1024 x 1024 x 32 grid of uint8: one chunk read
    assert [box.size for box in reads] == [(1024, 1024, 32)]
    np.asarray(data[0][10_001, 40_960:41_984, 50_176:51_200])
    assert len(reads) == 1, "the next plane of the same block layer comes from the cache"
