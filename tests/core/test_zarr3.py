"""zarr3 datasets as WEBKNOSSOS writes them open like WKW ones: lazily, as a pyramid, exact.

The truth is a dataset written by the reference tooling (webknossos 4.3.3, sharded zarr3)
from the same volumes as ``tests/data/wkw/webknossos_written``.
"""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from napari_wkw._reader import napari_get_reader
from napari_wkw.cli import main
from napari_wkw.core import BoundingBox, Dataset, DatasetFormatError, Mag, WKWWarning, locate
from napari_wkw.core.zarr_mag import ZarrMagView

from ..conftest import DATA
from .test_interop import OFFSET, expected_volumes

ZARR_DATASET = DATA / "zarr3" / "webknossos_zarr3"
WKW_TWIN = DATA / "wkw" / "webknossos_written"


@pytest.fixture
def zarr_copy(tmp_path):
    target = tmp_path / "webknossos_zarr3"
    shutil.copytree(ZARR_DATASET, target)
    return target


def test_reference_zarr3_dataset_opens_with_its_properties():
    dataset = Dataset.open(ZARR_DATASET)
    assert dataset.voxel_size == pytest.approx((11.24, 11.24, 25.0))
    assert set(dataset.layers) == {"color", "segmentation"}
    for layer in dataset.layers.values():
        assert not layer.is_wkw
        assert list(layer.mags) == [Mag(1, 1, 1), Mag(2, 2, 1), Mag(4, 4, 2)]
        assert layer.bounding_box == BoundingBox(OFFSET, (70, 60, 40))
        assert all(isinstance(view, ZarrMagView) for view in layer.mags.values())
    assert dataset.layers["segmentation"].properties.largest_segment_id == 41
    assert dataset.layers["color"].dtype == np.uint16


def test_reference_zarr3_voxels_read_back_exactly():
    dataset = Dataset.open(ZARR_DATASET)
    for name, volume in expected_volumes().items():
        layer = dataset.layers[name]
        np.testing.assert_array_equal(layer.finest_mag.read(layer.bounding_box), volume)
        # a box reaching beyond the data reads zeros there
        box = BoundingBox((0, 0, 0), (80, 70, 45))
        padded = layer.finest_mag.read(box)
        assert padded.shape == (45, 70, 80)
        np.testing.assert_array_equal(padded[3:43, 9:69, 7:77], volume)
        assert not padded[:3].any() and not padded[:, :, :7].any()


def test_every_mag_equals_the_reference_wkw_twin():
    """The reference wrote the same volumes as WKW and as zarr3, pyramid included."""
    zarr_dataset, wkw_dataset = Dataset.open(ZARR_DATASET), Dataset.open(WKW_TWIN)
    for name, layer in zarr_dataset.layers.items():
        for mag, view in layer.mags.items():
            box = layer.bounding_box.in_mag(mag)
            np.testing.assert_array_equal(view.read(box), wkw_dataset.layers[name].mags[mag].read(box))


def test_viewer_chunks_follow_the_shards_and_chunks():
    view = Dataset.open(ZARR_DATASET).layers["color"].finest_mag
    assert view.chunk_shape_xyz == (32, 32, 32)
    assert view.shard_shape_xyz == (128, 128, 128)
    assert view.viewer_chunk == (512, 512, 32)  # one chunk deep, as WKW blocks
    assert view.compression == "zstd"


def test_reader_gives_the_same_layers_as_for_wkw():
    def tuples(path):
        return {
            kwargs["metadata"]["wkw_layer"]: (data, kwargs, kind)
            for data, kwargs, kind in napari_get_reader(str(path))(str(path))
        }

    ours, twin = tuples(ZARR_DATASET), tuples(WKW_TWIN)
    assert set(ours) == {"color", "segmentation"}
    for name, (data, kwargs, kind) in ours.items():
        twin_data, twin_kwargs, twin_kind = twin[name]
        assert kind == twin_kind == ("labels" if name == "segmentation" else "image")
        assert kwargs["multiscale"] and len(data) == 3
        assert kwargs["scale"] == pytest.approx(twin_kwargs["scale"])
        assert kwargs["translate"] == pytest.approx(twin_kwargs["translate"])
        for level, twin_level in zip(data, twin_data):
            assert level.shape == twin_level.shape
            np.testing.assert_array_equal(np.asarray(level[5]), np.asarray(twin_level[5]))


@pytest.mark.parametrize("part", ["color", "color/2-2-1"])
def test_layer_and_mag_folders_open(part):
    path = ZARR_DATASET / part
    selection = locate(path)
    assert [layer.name for layer in selection.layers] == ["color"]
    assert selection.mag == (Mag(2, 2, 1) if "/" in part else None)
    assert napari_get_reader(str(path)) is not None


def test_other_zarr_folders_are_not_claimed(tmp_path):
    """An OME-Zarr or plain zarr folder belongs to other readers: no properties file, no claim."""
    plain = tmp_path / "plain.zarr"
    shutil.copytree(ZARR_DATASET / "color", plain)
    assert napari_get_reader(str(plain)) is None
    assert napari_get_reader(str(plain / "1")) is None


def test_lazy_pyramid_computes_like_the_reads():
    layer = Dataset.open(ZARR_DATASET).layers["segmentation"]
    levels = layer.lazy_pyramid()
    assert [level.shape for level in levels] == [tuple(view.shape) for view in layer.view_pyramid()]
    x0, y0, z0 = (a - b for a, b in zip(OFFSET, layer.aligned_box().topleft))
    inside = levels[0][z0 : z0 + 40, y0 : y0 + 60, x0 : x0 + 70].compute()
    np.testing.assert_array_equal(inside, expected_volumes()["segmentation"])


def test_operations_refuse_zarr_layers_in_one_line(zarr_copy, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["downsample", str(zarr_copy), "--layer-name", "color", "-q"])
    assert result.exit_code == 2
    assert "layer 'color' is stored as zarr3" in result.output and "WKW layers only" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(main, ["compress", str(zarr_copy), str(tmp_path / "copy"), "-q"])
    assert result.exit_code == 2 and "choose a WKW layer with --layer-name" in result.output
    result = runner.invoke(main, ["check-equality", str(zarr_copy), str(WKW_TWIN), "-q"])
    assert result.exit_code == 2 and "stored as zarr3" in result.output


def test_info_names_the_format(zarr_copy):
    result = CliRunner().invoke(main, ["info", str(zarr_copy)])
    assert result.exit_code == 0, result.output
    assert "data format   zarr3" in result.output and "zstd" in result.output
    info = json.loads(CliRunner().invoke(main, ["info", str(zarr_copy), "--json"]).output)
    assert {layer["data_format"] for layer in info["layers"]} == {"zarr3"}


def test_broken_zarr_json_is_one_error_naming_the_file(zarr_copy):
    (zarr_copy / "color" / "1" / "zarr.json").write_text("{ not json")
    with pytest.raises(DatasetFormatError, match=r"color/1: cannot read zarr data"):
        Dataset.open(zarr_copy)


def test_missing_shard_reads_as_zeros_and_a_corrupt_one_warns_in_the_viewer(zarr_copy):
    shard = zarr_copy / "segmentation" / "1" / "c" / "0" / "0" / "0" / "0"
    shard.unlink()
    layer = Dataset.open(zarr_copy).layers["segmentation"]
    assert not layer.finest_mag.read(layer.bounding_box).any()
    shard.write_bytes(b"garbage" * 100)
    layer = Dataset.open(zarr_copy).layers["segmentation"]
    with pytest.raises(DatasetFormatError, match="segmentation/1: cannot read zarr data"):
        layer.finest_mag.read(layer.bounding_box)
    view = layer.view_pyramid(on_error="warn")[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plane = np.asarray(view[10])
    assert not plane.any()
    assert any(issubclass(w.category, WKWWarning) and "showing zeros" in str(w.message) for w in caught)


def test_unreadable_formats_are_skipped_with_a_warning(zarr_copy):
    properties = json.loads((zarr_copy / "datasource-properties.json").read_text())
    properties["dataLayers"][0]["dataFormat"] = "n5"
    (zarr_copy / "datasource-properties.json").write_text(json.dumps(properties))
    with pytest.warns(WKWWarning, match="layer 'color' is stored as n5, which napari-wkw cannot read"):
        dataset = Dataset.open(zarr_copy)
    assert list(dataset.layers) == ["segmentation"]


def test_a_layer_with_its_axes_in_another_order(tmp_path):
    """zarr arrays without dimension names follow the properties' axisOrder."""
    import tensorstore as ts

    volume = np.arange(4 * 5 * 6, dtype=np.uint8).reshape(4, 5, 6)  # z, y, x
    root = tmp_path / "ds"
    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(root / "color" / "1") + "/"},
        "metadata": {
            "shape": [4, 5, 6],
            "data_type": "uint8",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 4, 4]}},
        },
        "create": True,
    }
    ts.open(spec).result().write(volume).result()
    properties = {
        "id": {"name": "ds", "team": ""},
        "scale": {"factor": [1, 1, 1], "unit": "nanometer"},
        "dataLayers": [
            {
                "name": "color",
                "category": "color",
                "elementClass": "uint8",
                "dataFormat": "zarr3",
                "boundingBox": {"topLeft": [0, 0, 0], "width": 6, "height": 5, "depth": 4},
                "mags": [{"mag": [1, 1, 1], "path": "./color/1", "axisOrder": {"z": 0, "y": 1, "x": 2}}],
            }
        ],
    }
    (root / "datasource-properties.json").write_text(json.dumps(properties))
    layer = Dataset.open(root).layers["color"]
    np.testing.assert_array_equal(layer.finest_mag.read(layer.bounding_box), volume)


def test_a_layer_with_a_time_axis_shows_its_first_time_point(tmp_path):
    import tensorstore as ts

    volume = np.arange(2 * 4 * 5 * 6, dtype=np.uint8).reshape(2, 4, 5, 6)  # t, z, y, x
    root = tmp_path / "ds"
    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(root / "color" / "1") + "/"},
        "metadata": {"shape": [2, 6, 5, 4], "data_type": "uint8", "dimension_names": ["t", "x", "y", "z"],
                     "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1, 4, 4, 4]}}},
        "create": True,
    }
    ts.open(spec).result().write(volume.transpose(0, 3, 2, 1)).result()
    properties = {
        "id": {"name": "ds", "team": ""},
        "scale": {"factor": [1, 1, 1], "unit": "nanometer"},
        "dataLayers": [{
            "name": "color", "category": "color", "elementClass": "uint8", "dataFormat": "zarr3",
            "boundingBox": {"topLeft": [0, 0, 0], "width": 6, "height": 5, "depth": 4},
            "mags": [{"mag": [1, 1, 1], "path": "./color/1"}],
        }],
    }
    (root / "datasource-properties.json").write_text(json.dumps(properties))
    with pytest.warns(WKWWarning, match="showing index 0 of axes t"):
        layer = Dataset.open(root).layers["color"]
    np.testing.assert_array_equal(layer.finest_mag.read(layer.bounding_box), volume[0])
