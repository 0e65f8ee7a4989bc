"""write_metadata: properties from what is on disk, and refreshes that keep what the user set."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import wkw

from napari_wkw.core.dataset import Dataset
from napari_wkw.core.errors import (
    CancelledError,
    DatasetFormatError,
    NotWKWError,
    TargetExistsError,
    WKWError,
    WKWWarning,
)
from napari_wkw.core.geometry import BoundingBox, Mag
from napari_wkw.core.progress import CancelToken
from napari_wkw.core.properties import PROPERTIES_FILE
from napari_wkw.core.wkw_file import BLOCK_LZ4HC, BLOCK_RAW
from napari_wkw.jobs.runner import JobSettings
from napari_wkw.ops.metadata import guess_category, write_metadata

SEQUENTIAL = JobSettings("sequential")


def _nonzero_box(data: np.ndarray, origin) -> BoundingBox:
    """Box (x, y, z) of the non-zero voxels of a (z, y, x[, c]) array placed at ``origin``."""
    mask = data != 0
    if mask.ndim == 4:
        mask = mask.any(axis=3)
    z, y, x = (np.flatnonzero(mask.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
    start = (origin[0] + x[0], origin[1] + y[0], origin[2] + z[0])
    stop = (origin[0] + x[-1] + 1, origin[1] + y[-1] + 1, origin[2] + z[-1] + 1)
    return BoundingBox.from_bounds(start, stop)


def _bare_read(mag_path: Path, box: BoundingBox) -> np.ndarray:
    """Read with libwkw directly, as (c, x, y, z)."""
    with wkw.Dataset.open(str(mag_path)) as handle:
        return handle.read(box.topleft, box.size)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.wkw"))
    }


@pytest.fixture
def small_dataset(tmp_path):
    """Two compressed layers (mags 1 and 2-2-1) in 32-voxel files, box (13, 7, 5) + (50, 30, 20)."""
    path = tmp_path / "small"
    rng = np.random.default_rng(3)
    image = rng.integers(1, 255, (20, 30, 50), dtype=np.uint8)
    labels = rng.integers(0, 70000, (20, 30, 50), dtype=np.uint32)
    box = BoundingBox((13, 7, 5), (50, 30, 20))
    dataset = Dataset.create(path, (11.24, 11.24, 25.0))
    for name, category, data in (("color", "color", image), ("segmentation", "segmentation", labels)):
        layer = dataset.add_layer(name, category, data.dtype, bounding_box=box)
        layer.add_mag(1, block_len=8, file_len=4).write(box.topleft, data)
        layer.add_mag("2-2-1", block_len=8, file_len=4).write(box.in_mag(Mag(2, 2, 1)).topleft, data[:, ::2, ::2])
    dataset.layers["segmentation"].properties.largest_segment_id = int(labels.max())
    dataset.save_properties()
    return path, image, labels


# ---- reference-written data -------------------------------------------------------------------


def test_regenerated_properties_of_reference_data_match(wkw_copy):
    path = wkw_copy("webknossos_written")
    original = json.loads((path / PROPERTIES_FILE).read_text())
    (path / PROPERTIES_FILE).unlink()
    before = _digest(path)

    props = write_metadata(path, voxel_size=(11.24, 11.24, 25.0), compute_max_id=True, jobs=SEQUENTIAL)

    written = json.loads((path / PROPERTIES_FILE).read_text())
    assert written["scale"]["factor"] == [11.24, 11.24, 25.0]
    assert written["id"]["name"] == "webknossos_written"
    by_name = {layer["name"]: layer for layer in written["dataLayers"]}
    assert sorted(by_name) == sorted(layer["name"] for layer in original["dataLayers"])
    for want in original["dataLayers"]:
        got = by_name[want["name"]]
        assert got["category"] == want["category"]
        assert got["elementClass"] == want["elementClass"]
        assert got["numChannels"] == want["numChannels"]
        assert [m["mag"] for m in got["mags"]] == [m["mag"] for m in want["mags"]]
        assert [m["path"] for m in got["mags"]] == [m["path"] for m in want["mags"]]

    # independent truth: the generating formula of tests/data/README.md, and libwkw's own reads
    box = BoundingBox.from_json(original["dataLayers"][0]["boundingBox"])
    index = np.arange(70 * 60 * 40).reshape(70, 60, 40)  # (x, y, z), C order
    color_truth = (index * 7) % 60000
    segmentation_truth = index // 4000
    color = _bare_read(path / "color" / "1", box)[0]
    segmentation = _bare_read(path / "segmentation" / "1", box)[0]
    np.testing.assert_array_equal(color, color_truth)
    np.testing.assert_array_equal(segmentation, segmentation_truth)

    # color is non-zero up to its edges, so its data box is the original box exactly
    assert BoundingBox.from_json(by_name["color"]["boundingBox"]) == box
    # segmentation's first voxels are 0 (background): the box is tight to the labelled voxels
    seg_box = BoundingBox.from_json(by_name["segmentation"]["boundingBox"])
    labelled = _nonzero_box(segmentation_truth.transpose(2, 1, 0), box.topleft)
    assert seg_box == labelled
    assert seg_box.intersection(box) == seg_box
    assert by_name["segmentation"]["largestSegmentId"] == int(segmentation_truth.max()) == 41
    assert "largestSegmentId" not in by_name["color"]
    assert props.layer("segmentation").largest_segment_id == 41

    # the result opens and reads the same voxels; no data file changed
    reopened = Dataset.open(path)
    np.testing.assert_array_equal(reopened.layers["color"].mags[Mag(1, 1, 1)].read(box), color_truth.transpose(2, 1, 0))
    assert _digest(path) == before


def test_refresh_of_reference_data_changes_nothing_that_was_set(wkw_copy):
    path = wkw_copy("webknossos_written")
    original = json.loads((path / PROPERTIES_FILE).read_text())
    write_metadata(path, refresh=True, jobs=SEQUENTIAL)
    written = json.loads((path / PROPERTIES_FILE).read_text())
    assert written["id"] == original["id"]
    assert written["scale"] == original["scale"]
    for got, want in zip(written["dataLayers"], original["dataLayers"]):
        assert got["boundingBox"] == want["boundingBox"]  # covers the data: kept, not trimmed
        assert got["mags"] == want["mags"]  # cubeLength and axisOrder kept too
        assert got.get("largestSegmentId") == want.get("largestSegmentId")


def test_old_style_properties_are_refreshed_to_the_current_style(wkw_copy):
    path = wkw_copy("old_wkw_dataset")
    original = json.loads((path / PROPERTIES_FILE).read_text())
    write_metadata(path, refresh=True, jobs=SEQUENTIAL)
    written = json.loads((path / PROPERTIES_FILE).read_text())
    layer = written["dataLayers"][0]
    assert "wkwResolutions" not in layer
    assert [m["mag"] for m in layer["mags"]] == [[1, 1, 1], [2, 2, 2]]
    assert layer["boundingBox"] == original["dataLayers"][0]["boundingBox"]  # no data files: nothing to add
    assert written["scale"]["factor"] == [float(v) for v in original["scale"]]


def test_refresh_drops_listed_mags_that_are_not_on_disk_and_keeps_extra_keys(wkw_copy):
    path = wkw_copy("complex_property_ds")
    original = json.loads((path / PROPERTIES_FILE).read_text())
    with pytest.warns(WKWWarning, match="whose folders are gone"):
        write_metadata(path, refresh=True, jobs=SEQUENTIAL)
    written = json.loads((path / PROPERTIES_FILE).read_text())
    assert written["id"] == original["id"]
    for got, want in zip(written["dataLayers"], original["dataLayers"]):
        assert [m["mag"] for m in got["mags"]] == [[1, 1, 1]]
        assert got["mags"][0]["cubeLength"] == 1024
        for key in set(want) - {"mags", "wkwResolutions", "boundingBox", "dataFormat", "numChannels"}:
            assert got[key] == want[key], key


# ---- generated data ---------------------------------------------------------------------------

CASES = {
    # name: (dtype, channels, category)
    "uint8": (np.uint8, 1, "color"),
    "uint16": (np.uint16, 1, "color"),
    "uint32_segmentation": (np.uint32, 1, "segmentation"),
    "uint64_segmentation": (np.uint64, 1, "segmentation"),
    "float32": (np.float32, 1, "color"),
    "rgb": (np.uint8, 3, "color"),
}


def _random(dtype, shape, rng) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return (rng.random(shape) + 0.5).astype(dtype)
    top = 2**40 if np.dtype(dtype).itemsize == 8 else np.iinfo(dtype).max
    return rng.integers(1, top, shape, dtype=dtype, endpoint=True)


def _write_layer(path: Path, name: str, dtype, channels: int, offset, shape_zyx, *, block_type, seed=0):
    """One layer in its own throwaway dataset at ``path`` (properties removed afterwards)."""
    rng = np.random.default_rng(seed)
    shape = shape_zyx if channels == 1 else (*shape_zyx, channels)
    data = _random(dtype, shape, rng)
    dataset = Dataset.open(path) if (path / PROPERTIES_FILE).exists() else Dataset.create(path, (4, 4, 8))
    layer = dataset.add_layer(name, "color", dtype, num_channels=channels)
    view = layer.add_mag(1, block_type=block_type, block_len=8, file_len=4)  # 32-voxel files
    view.write(offset, data)
    dataset.save_properties()
    return data


@pytest.mark.parametrize("block_type", [BLOCK_RAW, BLOCK_LZ4HC], ids=["raw", "lz4hc"])
def test_generated_layers_of_every_element_class(tmp_path, block_type):
    path = tmp_path / "generated"
    written = {}
    offset = (37, 5, 66)  # x, y, z: not on any file or block border
    shape_zyx = (21, 45, 70)  # spans 2-3 files per axis, no multiple of 8 or 32
    for seed, (name, (dtype, channels, _)) in enumerate(CASES.items()):
        written[name] = _write_layer(path, name, dtype, channels, offset, shape_zyx, block_type=block_type, seed=seed)
    (path / PROPERTIES_FILE).unlink()

    props = write_metadata(path, voxel_size=(4, 4, 8), compute_max_id=True, jobs=JobSettings("threads", 3))

    expected_box = BoundingBox(offset, (70, 45, 21))
    for name, (dtype, channels, category) in CASES.items():
        layer = props.layer(name)
        assert layer.category == category, name
        assert layer.num_channels == channels
        expected_class = {"float32": "float", "rgb": "uint24"}.get(name, np.dtype(dtype).name)
        assert layer.element_class == expected_class
        assert layer.bounding_box == expected_box, name
        assert [m.mag for m in layer.mags] == [Mag(1, 1, 1)]
        if category == "segmentation":
            assert layer.largest_segment_id == int(written[name].max())
        else:
            assert layer.largest_segment_id is None
        # what libwkw reads in that box is what was written
        raw = _bare_read(path / name / "1", expected_box)
        np.testing.assert_array_equal(np.moveaxis(raw, 0, -1).transpose(2, 1, 0, 3).squeeze(), written[name])

    reopened = Dataset.open(path)
    assert reopened.voxel_size == (4.0, 4.0, 8.0)
    rgb = reopened.layers["rgb"]
    assert rgb.is_rgb
    np.testing.assert_array_equal(rgb.finest_mag.read(expected_box), written["rgb"])


def test_file_granularity_box_on_request(tmp_path):
    path = tmp_path / "ds"
    _write_layer(path, "color", np.uint8, 1, (37, 5, 66), (21, 45, 70), block_type=BLOCK_RAW)
    (path / PROPERTIES_FILE).unlink()
    props = write_metadata(path, voxel_size=(1, 1, 1), box_from="files", jobs=SEQUENTIAL)
    # x 37..107 -> files 1..3, y 5..50 -> files 0..1, z 66..87 -> files 2 (32-voxel files)
    assert props.layer("color").bounding_box == BoundingBox.from_bounds((32, 0, 64), (128, 64, 96))


def test_tight_box_reads_inwards_past_empty_face_files(tmp_path):
    """Face files that hold only zeros do not end the search: the box is the data's."""
    path = tmp_path / "ds"
    dataset = Dataset.create(path, (1, 1, 1))
    layer = dataset.add_layer("color", "color", np.uint16)
    view = layer.add_mag(1, block_type=BLOCK_LZ4HC, block_len=8, file_len=2)  # 16-voxel files
    view.write((0, 0, 0), np.zeros((64, 64, 64), np.uint16))  # 4 x 4 x 4 files of zeros
    blob = np.arange(1, 1 + 5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7)
    view.write((20, 30, 40), blob)  # x 20..27, y 30..36, z 40..45
    (path / PROPERTIES_FILE).unlink()
    calls = []
    props = write_metadata(
        path, voxel_size=(1, 1, 1), progress=lambda done, total, label: calls.append((done, total, label)),
        jobs=SEQUENTIAL,
    )
    assert props.layer("color").bounding_box == BoundingBox((20, 30, 40), (7, 6, 5))
    assert calls and calls[-1][0] == calls[-1][1]
    assert all("bounding box" in label for _, _, label in calls)


def test_category_rule_and_override(tmp_path):
    path = tmp_path / "ds"
    for name in ("em", "my_Labels", "Seg1", "segmentation", "raw"):
        _write_layer(path, name, np.uint8, 1, (0, 0, 0), (4, 4, 4), block_type=BLOCK_RAW)
    (path / PROPERTIES_FILE).unlink()
    props = write_metadata(path, voxel_size=(1, 1, 1), categories={"raw": "segmentation", "Seg1": "color"})
    categories = {layer.name: layer.category for layer in props.layers}
    assert categories == {
        "em": "color", "my_Labels": "segmentation", "Seg1": "color", "segmentation": "segmentation",
        "raw": "segmentation",
    }
    assert guess_category("nuclei_LABEL") == "segmentation"
    assert guess_category("fluorescence") == "color"
    assert props.layer("segmentation").largest_segment_id is None  # not computed unless asked


def test_refresh_adds_layers_and_mags_drops_gone_mags_and_keeps_user_settings(small_dataset, tmp_path):
    path, image, labels = small_dataset
    props_path = path / PROPERTIES_FILE
    raw = json.loads(props_path.read_text())
    raw["id"]["name"] = "my name"
    raw["scale"]["factor"] = [5.0, 5.0, 12.5]
    raw["mySetting"] = {"keep": True}
    raw["dataLayers"][0]["defaultViewConfiguration"] = {"color": [255, 0, 0]}
    raw["dataLayers"][1]["category"] = "color"  # the user said so: kept although the name says segmentation
    color_box = raw["dataLayers"][0]["boundingBox"]
    props_path.write_text(json.dumps(raw))
    mags_before = [m["mag"] for m in raw["dataLayers"][0]["mags"]]
    coarsest = mags_before[-1]
    # a new mag folder (not in the properties), a mag folder gone, a new layer copied in from elsewhere
    Dataset.open(path).layers["color"].add_mag("64-64-32")
    shutil.rmtree(path / "color" / Mag.parse(coarsest).folder_name())
    other = tmp_path / "other"
    extra = _write_layer(other, "nuclei_labels", np.uint16, 1, (10, 20, 30), (3, 5, 7), block_type=BLOCK_RAW)
    shutil.copytree(other / "nuclei_labels", path / "nuclei_labels")
    before = _digest(path)

    with pytest.warns(WKWWarning, match="are gone"):
        props = write_metadata(path, refresh=True, compute_max_id=True, layer_name="nuclei_labels")

    written = json.loads(props_path.read_text())
    assert written["id"]["name"] == "my name"
    assert written["scale"]["factor"] == [5.0, 5.0, 12.5]
    assert written["mySetting"] == {"keep": True}
    color = written["dataLayers"][0]
    assert color["defaultViewConfiguration"] == {"color": [255, 0, 0]}
    assert color["boundingBox"] == color_box
    assert [m["mag"] for m in color["mags"]] == mags_before[:-1] + [[64, 64, 32]]
    assert written["dataLayers"][1]["category"] == "color"
    new = props.layer("nuclei_labels")
    assert [layer["name"] for layer in written["dataLayers"]] == ["color", "segmentation", "nuclei_labels"]
    assert new.category == "segmentation"
    assert new.bounding_box == BoundingBox((10, 20, 30), (7, 5, 3)) == _nonzero_box(extra, (10, 20, 30))
    assert new.largest_segment_id == int(extra.max())
    assert _digest(path) == before  # data files only read


def test_refresh_grows_a_box_only_to_cover_new_data(small_dataset):
    path, image, labels = small_dataset
    before = Dataset.open(path).layers["color"].bounding_box  # (13, 7, 5) + (50, 30, 20)
    dataset = Dataset.open(path)
    view = dataset.layers["color"].finest_mag
    view.write((400, 300, 100), np.full((3, 4, 5), 9, np.uint8))  # outside the box, in new files
    view.write((5, 10, 6), np.full((1, 1, 1), 9, np.uint8))  # outside the box (x), in a file it reaches
    props = write_metadata(path, refresh=True, jobs=SEQUENTIAL)
    box = props.layer("color").bounding_box
    assert box == before.union(BoundingBox((400, 300, 100), (5, 4, 3))).union(BoundingBox((5, 10, 6), (1, 1, 1)))
    assert props.layer("segmentation").bounding_box == before
    assert props.layer("segmentation").largest_segment_id == int(labels.max())  # kept


def test_max_id_is_set_checked_and_exclusive(small_dataset, wkw_copy):
    path, _, labels = small_dataset
    props = write_metadata(path, refresh=True, max_id=123456)
    assert props.layer("segmentation").largest_segment_id == 123456
    assert json.loads((path / PROPERTIES_FILE).read_text())["dataLayers"][1]["largestSegmentId"] == 123456
    with pytest.raises(WKWError, match="not both"):
        write_metadata(path, refresh=True, max_id=1, compute_max_id=True)
    with pytest.raises(WKWError, match="does not fit"):
        write_metadata(path, refresh=True, max_id=2**32)
    with pytest.raises(WKWError, match="not a segmentation layer"):
        write_metadata(path, refresh=True, max_id=3, layer_name="color")
    with pytest.raises(WKWError, match="has no segmentation layer"):
        write_metadata(wkw_copy("simple_wkw_dataset"), refresh=True, compute_max_id=True)


def test_compute_max_id_with_threads_and_progress(small_dataset):
    path, _, labels = small_dataset
    props = write_metadata(path, refresh=True, max_id=0)
    assert props.layer("segmentation").largest_segment_id == 0
    calls = []
    props = write_metadata(
        path, refresh=True, compute_max_id=True, jobs=JobSettings("threads", 2),
        progress=lambda done, total, label: calls.append((done, total, label)),
    )
    assert props.layer("segmentation").largest_segment_id == int(labels.max())
    # one unit per data file of the finest mag: x 13..63, y 7..37, z 5..25 -> 2 x 2 x 1 files of 32 voxels
    assert ("segmentation: reading all data" in {label for _, _, label in calls})
    assert max(total for _, total, label in calls if label == "segmentation: reading all data") == 4


def test_file_granularity_refresh_reads_nothing_and_grows_by_whole_new_files(small_dataset):
    path, _, _ = small_dataset
    before = Dataset.open(path).layers["color"].bounding_box
    view = Dataset.open(path).layers["color"].finest_mag
    view.write((100, 40, 30), np.full((2, 2, 2), 5, np.uint8))  # in a new file (96..128, 32..64, 0..32)
    view.write((5, 10, 6), np.full((1, 1, 1), 5, np.uint8))  # outside the box (x), in a file it reaches
    calls = []
    props = write_metadata(
        path, refresh=True, box_from="files", progress=lambda *a: calls.append(a), jobs=SEQUENTIAL
    )
    assert calls == []  # nothing read
    assert props.layer("color").bounding_box == before.union(BoundingBox.from_bounds((96, 32, 0), (128, 64, 32)))
    assert props.layer("segmentation").bounding_box == before
    # the voxel at x 5 is not looked for; reading the data would find it (see the test above)
    assert props.layer("color").bounding_box.intersection(BoundingBox((5, 10, 6), (1, 1, 1))).is_empty


def test_bad_inputs(tmp_path, wkw_copy, small_dataset):
    path, _, _ = small_dataset
    with pytest.raises(TargetExistsError, match="--refresh"):
        write_metadata(path)
    (path / PROPERTIES_FILE).unlink()
    with pytest.raises(WKWError, match="voxel size"):
        write_metadata(path)
    with pytest.raises(WKWError, match="no layer 'nope'"):
        write_metadata(path, voxel_size=(1, 1, 1), categories={"nope": "color"})
    with pytest.raises(WKWError, match="color or segmentation"):
        write_metadata(path, voxel_size=(1, 1, 1), categories={"color": "image"})
    with pytest.raises(WKWError, match="no such dataset"):
        write_metadata(tmp_path / "missing", voxel_size=(1, 1, 1))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotWKWError, match="no WKW layer"):
        write_metadata(empty, voxel_size=(1, 1, 1))
    assert not (path / PROPERTIES_FILE).exists()  # nothing written on any of those

    corrupt = wkw_copy("webknossos_written")
    (corrupt / PROPERTIES_FILE).unlink()
    data_file = corrupt / "segmentation" / "1" / "z0" / "y0" / "x0.wkw"
    with open(data_file, "r+b") as f:
        f.truncate(5000)
    with pytest.raises(DatasetFormatError, match=str(data_file)):
        write_metadata(corrupt, voxel_size=(1, 1, 1), jobs=SEQUENTIAL)
    data_file.write_bytes(b"WKW\x01" + bytes(12))  # libwkw alone would read such a file as zeros
    with pytest.raises(DatasetFormatError, match=str(data_file)):
        write_metadata(corrupt, voxel_size=(1, 1, 1), jobs=SEQUENTIAL)
    color_file = corrupt / "color" / "1" / "z0" / "y0" / "x0.wkw"
    with open(color_file, "r+b") as f:  # valid header and length, garbage LZ4 blocks
        f.seek(300000)
        f.write(b"\xff" * 4000)
    data_file.unlink()
    with pytest.raises(DatasetFormatError, match=str(color_file)):
        write_metadata(corrupt, voxel_size=(1, 1, 1), jobs=SEQUENTIAL)
    (corrupt / "color" / "1" / "header.wkw").write_bytes(b"nope")
    with pytest.raises(DatasetFormatError, match="header.wkw"):
        write_metadata(corrupt, voxel_size=(1, 1, 1), jobs=SEQUENTIAL)
    assert not (corrupt / PROPERTIES_FILE).exists()


def test_cancel_stops_before_writing(small_dataset):
    path, _, _ = small_dataset
    (path / PROPERTIES_FILE).unlink()
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        write_metadata(path, voxel_size=(1, 1, 1), cancel=token, jobs=SEQUENTIAL)
    assert not (path / PROPERTIES_FILE).exists()
