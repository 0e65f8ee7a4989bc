"""downsample, compress and recube on real and generated data, checked against bare
``wkw`` reads and numpy on the whole array."""

from __future__ import annotations

import json

import numpy as np
import pytest
import wkw

from napari_wkw.core import Dataset, Mag
from napari_wkw.core.downsample import downsample_data
from napari_wkw.core.errors import CancelledError, TargetExistsError, WKWError
from napari_wkw.core.progress import CancelToken
from napari_wkw.core.save import ArrayLayer, save_dataset
from napari_wkw.jobs import JobSettings
from napari_wkw.ops.compress import compress
from napari_wkw.ops.downsample import downsample
from napari_wkw.ops.recube import recube

OFFSET = (37, 5, 3)  # x, y, z: not block-aligned
SHAPE = (45, 70, 101)  # z, y, x: not multiples of 32
DTYPES = ["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float32", "float64", "rgb"]


def volume(kind: str, shape=SHAPE, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "rgb":
        return rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
    dtype = np.dtype(kind)
    if dtype.kind == "f":
        return rng.normal(100, 20, shape).astype(dtype)
    high = 1000 if dtype.itemsize > 1 else 255
    return rng.integers(-5 if dtype.kind == "i" else 0, high, shape).astype(dtype)


def raw_dataset(path, kind: str, file_len: int = 32, category: str = "color"):
    """A dataset of one layer, mag 1 only, raw (uncompressed) files."""
    data = volume(kind)
    channels = data.shape[3] if data.ndim == 4 else 1
    layer = ArrayLayer("layer", category, [data], (11.24, 11.24, 25.0), offset=OFFSET, num_channels=channels)
    save_dataset(path, [layer], compress=False, pyramid=False)
    if file_len != 32:  # rewrite with another file length through the bare library
        mag = path / "layer" / "1"
        header = wkw.Dataset.open(str(mag)).header
        import shutil

        shutil.rmtree(mag)
        out = wkw.Dataset.create(str(mag), wkw.Header(header.voxel_type, num_channels=header.num_channels,
                                                       file_len=file_len, block_type=wkw.Header.BLOCK_TYPE_RAW))
        cxyz = (data if data.ndim == 4 else data[..., None]).transpose(3, 2, 1, 0)
        out.write(OFFSET, np.ascontiguousarray(cxyz))
        out.close()
    return data


def bare_read(mag_path, offset=OFFSET, shape=SHAPE) -> np.ndarray:
    """(z, y, x[, c]) through the wkw library alone."""
    with wkw.Dataset.open(str(mag_path)) as handle:
        data = handle.read(offset, (shape[2], shape[1], shape[0]))
    data = data.transpose(3, 2, 1, 0)
    return data[..., 0] if data.shape[-1] == 1 else data


def block_types(mag_path) -> set[int]:
    """Block type byte of every data file's own header (1 raw, 2 LZ4, 3 LZ4HC)."""
    types = set()
    for path in mag_path.glob("z*/y*/x*.wkw"):
        with open(path, "rb") as f:
            types.add(f.read(6)[5])
    return types


# ---- compress ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", DTYPES)
def test_compress_in_place_keeps_every_voxel(tmp_path, kind):
    data = raw_dataset(tmp_path / "d", kind, file_len=2)
    mag = tmp_path / "d" / "layer" / "1"
    assert block_types(mag) == {1}
    result = compress(tmp_path / "d", jobs=JobSettings("threads", jobs=2))
    assert block_types(mag) == {2} and wkw.Dataset.open(str(mag)).header.block_type == 2
    assert result.files_compressed == len(list(mag.glob("z*/y*/x*.wkw"))) > 4
    np.testing.assert_array_equal(bare_read(mag), data)
    assert not list(mag.rglob(".*"))  # no staging left
    again = compress(tmp_path / "d")  # nothing left to do
    assert again.files_compressed == 0


@pytest.mark.parametrize("strategy", ["sequential", "processes"])
def test_compress_to_a_copy_leaves_the_source_alone(tmp_path, strategy):
    data = raw_dataset(tmp_path / "d", "uint16")
    before = {p: p.read_bytes() for p in (tmp_path / "d").rglob("*") if p.is_file()}
    compress(tmp_path / "d", tmp_path / "c", jobs=JobSettings(strategy, jobs=2))
    assert before == {p: p.read_bytes() for p in (tmp_path / "d").rglob("*") if p.is_file()}
    np.testing.assert_array_equal(bare_read(tmp_path / "c" / "layer" / "1"), data)
    assert block_types(tmp_path / "c" / "layer" / "1") == {2}
    assert json.loads((tmp_path / "c" / "datasource-properties.json").read_text())["dataLayers"][0]["name"] == "layer"
    assert [p.name for p in tmp_path.iterdir()] != [] and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_compress_only_the_mags_asked_for(tmp_path, wkw_copy):
    raw_dataset(tmp_path / "d", "uint8")
    downsample(tmp_path / "d", compress=False)
    compress(tmp_path / "d", mags=[Mag(2, 2, 1)])
    assert block_types(tmp_path / "d" / "layer" / "1") == {1}
    assert block_types(tmp_path / "d" / "layer" / "2-2-1") == {2}


def test_compress_reference_raw_dataset(wkw_copy):
    """simple_wkw_dataset was written raw by the reference tooling (uint24 RGB, file_len 1)."""
    path = wkw_copy("simple_wkw_dataset")
    mag = path / "color" / "1"
    expected = wkw.Dataset.open(str(mag)).read((0, 0, 0), (64, 64, 64))
    compress(path)
    assert block_types(mag) == {2}
    np.testing.assert_array_equal(wkw.Dataset.open(str(mag)).read((0, 0, 0), (64, 64, 64)), expected)


def test_compress_refuses_bad_targets(tmp_path):
    raw_dataset(tmp_path / "d", "uint8")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep me")
    with pytest.raises(TargetExistsError, match="not empty"):
        compress(tmp_path / "d", tmp_path / "full")
    assert (tmp_path / "full" / "x.txt").read_text() == "keep me"
    with pytest.raises(WKWError, match="no such dataset"):
        compress(tmp_path / "missing")
    with pytest.raises(WKWError, match="no mag 4"):
        compress(tmp_path / "d", mags=[Mag(4, 4, 4)])


def test_compress_names_a_truncated_file(tmp_path):
    raw_dataset(tmp_path / "d", "uint8", file_len=2)
    victim = sorted((tmp_path / "d" / "layer" / "1").glob("z*/y*/x*.wkw"))[1]
    victim.write_bytes(victim.read_bytes()[:5000])
    with pytest.raises(WKWError, match=str(victim).replace("/", ".")):
        compress(tmp_path / "d", jobs=JobSettings("sequential"))


def test_cancel_compress_leaves_readable_data(tmp_path):
    data = raw_dataset(tmp_path / "d", "uint8", file_len=1)
    token = CancelToken()

    def cancel_at_five(done, total, label):
        if done == 5:
            token.cancel()

    with pytest.raises(CancelledError):
        compress(tmp_path / "d", progress=cancel_at_five, cancel=token, jobs=JobSettings("threads", jobs=2))
    mag = tmp_path / "d" / "layer" / "1"
    assert block_types(mag) == {1, 2}  # stopped part-way
    np.testing.assert_array_equal(bare_read(mag), data)
    compress(tmp_path / "d")
    assert block_types(mag) == {2}
    np.testing.assert_array_equal(bare_read(mag), data)


# ---- downsample ---------------------------------------------------------------------------------


def reference_pyramid_level(data: np.ndarray, factor, method: str) -> np.ndarray:
    """Independent computation: numpy on the whole array, edge-padded to the factor."""
    data4 = data if data.ndim == 4 else data[..., None]
    fz = factor[2]
    pads = [(0, (-n) % f) for n, f in zip(data4.shape[:3], (fz, factor[1], factor[0]))] + [(0, 0)]
    padded = np.pad(data4, pads, mode="edge")
    z, y, x, c = padded.shape
    groups = padded.reshape(z // fz, fz, y // factor[1], factor[1], x // factor[0], factor[0], c)
    groups = groups.transpose(0, 2, 4, 6, 1, 3, 5).reshape(z // fz, y // factor[1], x // factor[0], c, -1)
    if method == "max":
        out = groups.max(axis=-1)
    elif method == "nearest":
        out = groups[..., 0]
    else:
        raise AssertionError(method)
    return out if data.ndim == 4 else out[..., 0]


@pytest.mark.parametrize("kind", ["uint8", "uint32", "float32", "rgb"])
@pytest.mark.parametrize("method", ["max", "nearest"])
def test_downsample_against_numpy_on_the_whole_array(tmp_path, kind, method):
    """Offset 0 so the 2-2-1 grid starts at the data (the general case is checked against the
    reference tooling's own pyramid in test_interop)."""
    data = volume(kind, shape=(40, 64, 96))
    channels = data.shape[3] if data.ndim == 4 else 1
    layer = ArrayLayer("layer", "color", [data], (11.24, 11.24, 25.0), num_channels=channels)
    save_dataset(tmp_path / "d", [layer], pyramid=False)
    built = downsample(tmp_path / "d", interpolation=method, max_mag=Mag(4, 4, 4), jobs=JobSettings("threads", 2))
    assert built == {"layer": [Mag(2, 2, 1), Mag(4, 4, 2)]}
    expected = reference_pyramid_level(data, (2, 2, 1), method)
    np.testing.assert_array_equal(bare_read(tmp_path / "d" / "layer" / "2-2-1", (0, 0, 0), expected.shape), expected)
    expected = reference_pyramid_level(expected, (2, 2, 2), method)
    np.testing.assert_array_equal(bare_read(tmp_path / "d" / "layer" / "4-4-2", (0, 0, 0), expected.shape), expected)


def test_downsample_defaults_median_color_mode_segmentation_and_properties(tmp_path, em_dataset):
    path, image, labels = em_dataset
    for layer in ("color", "segmentation"):
        import shutil

        for mag in list((path / layer).iterdir()):
            if mag.name != "1":
                shutil.rmtree(mag)
    properties = json.loads((path / "datasource-properties.json").read_text())
    for layer in properties["dataLayers"]:
        layer["mags"] = [m for m in layer["mags"] if m["mag"] == [1, 1, 1]]
    (path / "datasource-properties.json").write_text(json.dumps(properties))
    built = downsample(path, jobs=JobSettings("processes", jobs=2))
    assert built["color"][:2] == [Mag(2, 2, 1), Mag(4, 4, 2)] and built["segmentation"] == built["color"]
    dataset = Dataset.open(path)
    for name in ("color", "segmentation"):
        assert list(dataset.layers[name].mags) == [Mag(1, 1, 1), *built[name]]
    view = dataset.layers["segmentation"].mags[Mag(2, 2, 1)]
    box = dataset.layers["segmentation"].bounding_box.in_mag(Mag(2, 2, 1))
    # the layer starts at an even x and y: 2-2-1 groups are whole, the mode of numpy's groups
    expected = downsample_data(labels[:, :, :], (2, 2, 1), "mode")
    np.testing.assert_array_equal(view.read(box)[:, : expected.shape[1], : expected.shape[2]], expected)
    assert block_types(path / "color" / "2-2-1") == {2}


def test_downsample_says_what_is_wrong(tmp_path):
    raw_dataset(tmp_path / "d", "uint8")
    with pytest.raises(WKWError, match="no layer 'nope'"):
        downsample(tmp_path / "d", layer_name="nope")
    with pytest.raises(WKWError, match="no mag 2"):
        downsample(tmp_path / "d", from_mag=Mag(2, 2, 2))
    with pytest.raises(WKWError, match="interpolation"):
        downsample(tmp_path / "d", interpolation="cubic")


def test_cancelled_downsample_lists_only_finished_mags(tmp_path):
    raw_dataset(tmp_path / "d", "uint8")
    token = CancelToken()

    def cancel_in_second_mag(done, total, label):
        if "4-4-2" in label:
            token.cancel()

    with pytest.raises(CancelledError):
        downsample(tmp_path / "d", cancel=token, progress=cancel_in_second_mag, max_mag=Mag(8, 8, 8))
    layer_folder = tmp_path / "d" / "layer"
    assert sorted(p.name for p in layer_folder.iterdir()) == ["1", "2-2-1"]  # no half mag, no staging
    assert list(Dataset.open(tmp_path / "d").layers["layer"].mags) == [Mag(1, 1, 1), Mag(2, 2, 1)]
    assert downsample(tmp_path / "d", max_mag=Mag(8, 8, 8))["layer"] == [Mag(4, 4, 2), Mag(8, 8, 4)]


# ---- recube --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", DTYPES)
def test_recube_to_one_block_per_file_and_back(tmp_path, kind):
    data = raw_dataset(tmp_path / "d", kind)
    recube(tmp_path / "d", tmp_path / "small", file_len=1, jobs=JobSettings("threads", jobs=2))
    mag = tmp_path / "small" / "layer" / "1"
    assert wkw.Dataset.open(str(mag)).header.file_len == 1
    assert len(list(mag.glob("z*/y*/x*.wkw"))) == 4 * 3 * 2  # blocks touched: x 37-137, y 5-74, z 3-47
    np.testing.assert_array_equal(bare_read(mag), data)
    recube(tmp_path / "small", tmp_path / "big", file_len=32, compress=False)
    np.testing.assert_array_equal(bare_read(tmp_path / "big" / "layer" / "1"), data)
    assert block_types(tmp_path / "big" / "layer" / "1") == {1}


def test_recube_changes_the_voxel_type_only_when_values_fit(tmp_path):
    data = raw_dataset(tmp_path / "d", "uint16")
    recube(tmp_path / "d", tmp_path / "wide", dtype="uint32")
    np.testing.assert_array_equal(bare_read(tmp_path / "wide" / "layer" / "1"), data.astype(np.uint32))
    layer = json.loads((tmp_path / "wide" / "datasource-properties.json").read_text())["dataLayers"][0]
    assert layer["elementClass"] == "uint32"
    with pytest.raises(WKWError, match="do not fit uint8"):
        recube(tmp_path / "d", tmp_path / "narrow", dtype="uint8")
    assert not (tmp_path / "narrow").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_recube_reference_dataset_keeps_every_mag_and_value(wkw_copy, tmp_path):
    path = wkw_copy("webknossos_written")
    recube(path, tmp_path / "out", file_len=1)
    source, out = Dataset.open(path), Dataset.open(tmp_path / "out")
    for name, layer in source.layers.items():
        assert list(out.layers[name].mags) == list(layer.mags)
        for mag, view in layer.mags.items():
            box = layer.bounding_box.in_mag(mag)
            np.testing.assert_array_equal(
                bare_read(out.layers[name].mags[mag].path, box.topleft, view.array_shape(box)[:3]),
                bare_read(view.path, box.topleft, view.array_shape(box)[:3]),
            )


@pytest.mark.parametrize("strategy", ["sequential", "threads", "processes"])
def test_downsample_rebuilds_the_reference_pyramid_exactly(wkw_copy, tmp_path, strategy):
    """webknossos 4.3.3 wrote mags 2-2-1 and 4-4-2 of both layers; we drop and rebuild them."""
    import shutil

    original = wkw_copy("webknossos_written")
    path = tmp_path / "rebuilt"
    shutil.copytree(original, path)
    properties = json.loads((path / "datasource-properties.json").read_text())
    for layer in properties["dataLayers"]:
        layer["mags"] = [m for m in layer["mags"] if m["mag"] == [1, 1, 1]]
        for mag in ("2-2-1", "4-4-2"):
            shutil.rmtree(path / layer["name"] / mag)
    (path / "datasource-properties.json").write_text(json.dumps(properties))
    built = downsample(path, max_mag=Mag(4, 4, 4), jobs=JobSettings(strategy, jobs=2))
    assert built == {"color": [Mag(2, 2, 1), Mag(4, 4, 2)], "segmentation": [Mag(2, 2, 1), Mag(4, 4, 2)]}
    for layer in ("color", "segmentation"):
        for mag in ("2-2-1", "4-4-2"):
            with wkw.Dataset.open(str(original / layer / mag)) as ref, wkw.Dataset.open(str(path / layer / mag)) as new:
                np.testing.assert_array_equal(new.read((0, 0, 0), (64, 64, 48)), ref.read((0, 0, 0), (64, 64, 48)))


@pytest.mark.parametrize("strategy", ["sequential", "threads"])
def test_cancel_stops_inside_a_big_unit(tmp_path, monkeypatch, strategy):
    """Mag 2-2-1 of this layer is one file of 16 tiles: cancelling after the second tile
    must not wait for the other 14 (in-process strategies check between tiles)."""
    from napari_wkw.core import downsample as core_downsample

    data = np.zeros((64, 1024, 2048), np.uint8)
    save_dataset(tmp_path / "d", [ArrayLayer("layer", "color", [data], (11.24, 11.24, 25.0))],
                 compress=False, pyramid=False)
    token = CancelToken()
    calls = []
    original = core_downsample.downsample_data

    def cancel_on_second_tile(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            token.cancel()
        return original(*args, **kwargs)

    monkeypatch.setattr(core_downsample, "downsample_data", cancel_on_second_tile)
    with pytest.raises(CancelledError):
        downsample(tmp_path / "d", cancel=token, jobs=JobSettings(strategy, jobs=1))
    assert len(calls) <= 4  # a tile or two in flight, not all 16
    assert sorted(p.name for p in (tmp_path / "d" / "layer").iterdir()) == ["1"]
