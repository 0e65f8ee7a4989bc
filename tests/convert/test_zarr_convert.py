"""convert-zarr's core: WEBKNOSSOS zarr3 datasets (the reference-written test dataset), OME-Zarr
0.4 and 0.5 images and bare zarr v2/v3 arrays (written here with tensorstore from the real EM
tiles), their levels copied as mags; the results read back with the bare wkw library."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts
import wkw

from napari_wkw.convert.engine import ConversionSettings
from napari_wkw.convert.levels import convert_pyramids
from napari_wkw.convert.zarr_source import build_zarr_specs, dataset_extra, describe_zarr, detect_zarr
from napari_wkw.core.errors import CancelledError, WKWError, WKWWarning
from napari_wkw.core.progress import CancelToken
from napari_wkw.jobs.runner import JobSettings

from ..conftest import DATA
from ..widgets.conftest import em_volume

ZARR3_DATASET = DATA / "zarr3" / "webknossos_zarr3"
WKW_TWIN = DATA / "wkw" / "webknossos_written"  # the same voxels, written as WKW by the reference


def bare(mag_path, offset, size) -> np.ndarray:
    """(z, y, x[, c]) voxels read with the wkw library alone."""
    with wkw.Dataset.open(str(mag_path)) as handle:
        data = handle.read(offset, size)
    return data[0].transpose(2, 1, 0) if data.shape[0] == 1 else data.transpose(3, 2, 1, 0)


def properties(path) -> dict:
    return json.loads((Path(path) / "datasource-properties.json").read_text())


def layer_entry(path, name) -> dict:
    return next(layer for layer in properties(path)["dataLayers"] if layer["name"] == name)


def write_array(folder: Path, data: np.ndarray, driver: str, names=None, chunks=None) -> None:
    """``data`` as a zarr array (its axes as they are), written by tensorstore."""
    chunks = list(chunks or [min(32, n) for n in data.shape])
    if driver == "zarr3":
        metadata = {
            "shape": list(data.shape),
            "data_type": data.dtype.name,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zstd"}],
        }
        if names:
            metadata["dimension_names"] = list(names)
    else:
        metadata = {"shape": list(data.shape), "chunks": chunks, "dtype": data.dtype.str}
    spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(folder) + "/"}, "metadata": metadata}
    ts.open(spec, create=True).result().write(data).result()


def test_a_webknossos_zarr3_dataset_becomes_its_wkw_twin(tmp_path):
    assert detect_zarr(ZARR3_DATASET) == "webknossos-dataset"
    assert describe_zarr(ZARR3_DATASET) == "a WEBKNOSSOS zarr dataset with layers color, segmentation"
    specs = build_zarr_specs(ZARR3_DATASET)
    assert [(s.name, s.category, [lv.mag.folder_name() for lv in s.levels]) for s in specs] == [
        ("color", "color", ["1", "2-2-1", "4-4-2"]),
        ("segmentation", "segmentation", ["1", "2-2-1", "4-4-2"]),
    ]
    target = tmp_path / "wkw"
    result = convert_pyramids(target, specs, dataset_extra=dataset_extra(ZARR3_DATASET), jobs=JobSettings("threads", 2))
    assert result.voxel_size == (11.24, 11.24, 25.0)
    assert {name: [m.folder_name() for m in mags] for name, mags in result.layers.items()} == {
        "color": ["1", "2-2-1", "4-4-2"],
        "segmentation": ["1", "2-2-1", "4-4-2"],
    }
    for name in ("color", "segmentation"):
        ours, theirs = layer_entry(target, name), layer_entry(WKW_TWIN, name)
        for key in ("category", "boundingBox", "elementClass", "largestSegmentId"):
            assert ours.get(key) == theirs.get(key), (name, key)
        assert ours["dataFormat"] == "wkw"
        for mag, (x, y, z) in (("1", (77, 69, 43)), ("2-2-1", (39, 35, 43)), ("4-4-2", (20, 18, 22))):
            np.testing.assert_array_equal(
                bare(target / name / mag, (0, 0, 0), (x, y, z)), bare(WKW_TWIN / name / mag, (0, 0, 0), (x, y, z))
            )
    assert layer_entry(target, "segmentation")["largestSegmentId"] == 41  # carried over, not recomputed
    assert properties(target)["scale"] == {"unit": "nanometer", "factor": [11.24, 11.24, 25.0]}
    assert not list(target.glob(".*"))  # no staging left


def test_one_layer_folder_renamed_into_an_existing_dataset(tmp_path):
    target = tmp_path / "wkw"
    convert_pyramids(target, build_zarr_specs(ZARR3_DATASET, layer_name="color"), jobs=JobSettings("sequential"))
    assert detect_zarr(ZARR3_DATASET / "segmentation") == "webknossos-layer"
    specs = build_zarr_specs(ZARR3_DATASET / "segmentation", layer_name="labels")
    convert_pyramids(target, specs, ConversionSettings(pyramid=False), jobs=JobSettings("sequential"))
    assert [layer["name"] for layer in properties(target)["dataLayers"]] == ["color", "labels"]
    assert layer_entry(target, "labels")["category"] == "segmentation"
    np.testing.assert_array_equal(
        bare(target / "labels" / "1", (7, 9, 3), (70, 60, 40)),
        bare(WKW_TWIN / "segmentation" / "1", (7, 9, 3), (70, 60, 40)),
    )
    with pytest.raises(WKWError, match=r"no layer 'nope' \(layers: color, segmentation\)"):
        build_zarr_specs(ZARR3_DATASET, layer_name="nope")


def test_bare_arrays_v2_and_v3_with_their_axes(tmp_path):
    volume = em_volume(20, 70, 90)  # z, y, x
    write_array(tmp_path / "v2.zarr", volume, "zarr")  # no names: read as x, y, z unless --axes says
    write_array(tmp_path / "v3.zarr", volume, "zarr3", names=["z", "y", "x"])
    assert describe_zarr(tmp_path / "v2.zarr") == "a zarr array (zarr v2, 20 x 70 x 90 uint8)"
    [as_xyz] = build_zarr_specs(tmp_path / "v2.zarr")
    assert as_xyz.source.size == (20, 70, 90)  # the reference's convention for unnamed axes
    [v2] = build_zarr_specs(tmp_path / "v2.zarr", axes="zyx", layer_name="em")
    [v3] = build_zarr_specs(tmp_path / "v3.zarr", layer_name="em3")
    assert v2.source.size == v3.source.size == (90, 70, 20)
    settings = ConversionSettings(voxel_size=(5, 5, 5), compress=False)
    convert_pyramids(tmp_path / "out", [v2, v3], settings, jobs=JobSettings("threads", 2))
    for name in ("em", "em3"):
        np.testing.assert_array_equal(bare(tmp_path / "out" / name / "1", (0, 0, 0), (90, 70, 20)), volume)
    assert [m["mag"] for m in layer_entry(tmp_path / "out", "em")["mags"]] == [[1, 1, 1], [2, 2, 2], [4, 4, 4]]


def write_ome_04(folder: Path, levels: list[np.ndarray], scales: list[list[float]], translation) -> None:
    """An OME-Zarr 0.4 image (zarr v2, z, y, x in micrometres) with one dataset per level."""
    folder.mkdir()
    (folder / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    datasets = []
    for index, (level, scale) in enumerate(zip(levels, scales)):
        write_array(folder / str(index), level, "zarr")
        transforms = [{"type": "scale", "scale": scale}]
        if index == 0:
            transforms.append({"type": "translation", "translation": translation})
        datasets.append({"path": str(index), "coordinateTransformations": transforms})
    axes = [{"name": axis, "type": "space", "unit": "micrometer"} for axis in "zyx"]
    multiscales = [{"version": "0.4", "axes": axes, "datasets": datasets}]
    (folder / ".zattrs").write_text(json.dumps({"multiscales": multiscales}))


def test_ome_zarr_04_levels_become_mags_as_they_are(tmp_path):
    volume = em_volume(16, 96, 128)
    level1 = np.ascontiguousarray(volume[:, ::2, ::2])  # strided, not a median: a copy must keep it
    level2 = np.ascontiguousarray(volume[::2, ::4, ::4])
    level3 = np.ascontiguousarray(volume[:, ::3, ::3])  # factor 3: left out
    image = tmp_path / "image.ome.zarr"
    write_ome_04(
        image,
        [volume, level1, level2, level3],
        [[0.05, 0.01, 0.01], [0.05, 0.02, 0.02], [0.1, 0.04, 0.04], [0.05, 0.03, 0.03]],
        [0.1, 0.64, 0.32],  # z, y, x micrometres: 2, 64, 32 voxels
    )
    assert describe_zarr(image) == "an OME-Zarr image with 4 levels"
    with pytest.warns(WKWWarning, match=r"level '3' is 3,3,1 times the first, not a power of two per axis"):
        [spec] = build_zarr_specs(image)
    assert [level.mag.folder_name() for level in spec.levels] == ["1", "2-2-1", "4-4-2"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the units are known: no warning about the voxel size
        result = convert_pyramids(tmp_path / "out", [spec], jobs=JobSettings("threads", 2))
    assert result.voxel_size == pytest.approx((10.0, 10.0, 50.0))
    entry = layer_entry(tmp_path / "out", "color")
    assert entry["boundingBox"] == {"topLeft": [32, 64, 2], "width": 128, "height": 96, "depth": 16}
    assert [m["mag"] for m in entry["mags"]] == [[1, 1, 1], [2, 2, 1], [4, 4, 2]]
    out = tmp_path / "out" / "color"
    np.testing.assert_array_equal(bare(out / "1", (32, 64, 2), (128, 96, 16)), volume)
    np.testing.assert_array_equal(bare(out / "2-2-1", (16, 32, 2), (64, 48, 16)), level1)
    np.testing.assert_array_equal(bare(out / "4-4-2", (8, 16, 1), (32, 24, 8)), level2)


def test_ome_zarr_05_channels_become_layers_and_time_is_index_0(tmp_path):
    volume = em_volume(8, 40, 50).astype(np.uint16)
    data = np.stack([np.stack([volume, 1000 - volume]), np.zeros((2, 8, 40, 50), np.uint16)])  # t, c, z, y, x
    image = tmp_path / "cells.zarr"
    write_array(image / "s0", data, "zarr3", names=["t", "c", "z", "y", "x"])
    axes = [
        {"name": "t", "type": "time"},
        {"name": "c", "type": "channel"},
        *({"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"),
    ]
    multiscales = [{"axes": axes, "datasets": [{"path": "s0", "coordinateTransformations": [
        {"type": "scale", "scale": [1, 1, 30, 4, 4]}]}]}]  # fmt: skip
    attributes = {"ome": {"version": "0.5", "multiscales": multiscales}}
    (image / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attributes}))
    with pytest.warns(WKWWarning, match="converting index 0 of axis t"):
        specs = build_zarr_specs(image, layer_name="cells")
    assert [spec.name for spec in specs] == ["cells_0", "cells_1"]
    result = convert_pyramids(tmp_path / "out", specs, ConversionSettings(pyramid=False), jobs=JobSettings())
    assert result.voxel_size == (4.0, 4.0, 30.0)
    np.testing.assert_array_equal(bare(tmp_path / "out" / "cells_0" / "1", (0, 0, 0), (50, 40, 8)), volume)
    np.testing.assert_array_equal(bare(tmp_path / "out" / "cells_1" / "1", (0, 0, 0), (50, 40, 8)), 1000 - volume)
    with pytest.warns(WKWWarning, match="converting index 0 of axis t"):
        [only] = build_zarr_specs(image, layer_name="second", channel_index=1)
    assert only.name == "second" and only.source.num_channels == 1


def test_a_cancelled_copy_resumes_file_by_file(tmp_path, monkeypatch):
    import napari_wkw.convert.levels as levels

    monkeypatch.setattr(levels, "suggested_file_len", lambda extent, *a, **k: 4)  # 128-voxel files: 3 x 3 x 1
    volume = em_volume(40, 300, 300)
    write_array(tmp_path / "big.zarr", volume, "zarr3", names=["z", "y", "x"], chunks=[32, 64, 64])
    target = tmp_path / "out"
    settings = ConversionSettings(voxel_size=(1, 1, 1), pyramid=False)
    [spec] = build_zarr_specs(tmp_path / "big.zarr")
    cancel = CancelToken()

    def progress(done, total, label):
        if done >= 2:
            cancel.cancel()

    with pytest.raises(CancelledError):
        convert_pyramids(target, [spec], settings, jobs=JobSettings("sequential"), progress=progress, cancel=cancel)
    written = list((target / ".color.converting" / "color" / "1").glob("z*/y*/x*.wkw"))
    assert len(written) == 2 and not (target / "datasource-properties.json").exists()
    before = {path: path.stat().st_mtime_ns for path in written}
    result = convert_pyramids(target, [spec], settings, jobs=JobSettings("sequential"))
    assert result.resumed == ["color"]
    np.testing.assert_array_equal(bare(target / "color" / "1", (0, 0, 0), (300, 300, 40)), volume)
    assert len(list((target / "color" / "1").glob("z*/y*/x*.wkw"))) == 9
    moved = {target / "color" / "1" / path.relative_to(target / ".color.converting" / "color" / "1") for path in before}
    assert {path.stat().st_mtime_ns for path in moved} == set(before.values())  # kept, not rewritten


def test_what_is_not_zarr_is_refused_in_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(WKWError) as error:
        detect_zarr(tmp_path / "empty")
    assert str(error.value) == (
        f"{tmp_path / 'empty'}: not a zarr array, OME-Zarr image or WEBKNOSSOS zarr dataset "
        "(no zarr.json or .zarray of an array, no multiscales, no datasource-properties.json)"
    )
    with pytest.raises(WKWError, match=r"layers 'color', 'segmentation' are not stored as zarr"):
        build_zarr_specs(WKW_TWIN)
    write_array(tmp_path / "flat", np.zeros((4, 5), np.uint8), "zarr3")
    with pytest.raises(WKWError, match=r"no x/y/z axis among the array's axes \(unnamed, unnamed\); give --axes"):
        build_zarr_specs(tmp_path / "flat")
