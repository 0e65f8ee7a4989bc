"""Image stacks -> WKW (``cube`` and ``convert``), checked against tifffile/Pillow/formula
decoding of the same files, read back with the bare ``wkw`` library."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import wkw
from click.testing import CliRunner
from PIL import Image

from napari_wkw.cli import main

DATA = Path(__file__).parents[1] / "data"
IMAGES = DATA / "images"


def run(*args, expect=0):
    result = CliRunner().invoke(main, [str(a) for a in args] + ["-q"])
    assert result.exit_code == expect, result.output + str(result.exception)
    return result


def stored(dataset: Path, layer: str = "color", mag: str = "1") -> np.ndarray:
    """The whole layer box of one mag as (z, y, x[, c]), read with bare wkw."""
    properties = json.loads((dataset / "datasource-properties.json").read_text())
    entry = next(item for item in properties["dataLayers"] if item["name"] == layer)
    box = entry["boundingBox"]
    factor = [int(v) for v in mag.split("-")] if "-" in mag else [int(mag)] * 3
    start = [box["topLeft"][i] // factor[i] for i in range(3)]
    size = [
        -(-(box["topLeft"][i] + s) // factor[i]) - start[i]
        for i, s in enumerate((box["width"], box["height"], box["depth"]))
    ]
    with wkw.Dataset.open(str(dataset / layer / mag)) as handle:
        data = handle.read(start, size)
    data = data.transpose(3, 2, 1, 0)
    return data[..., 0] if data.shape[-1] == 1 else data


def layer_json(dataset: Path, layer: str = "color") -> dict:
    properties = json.loads((dataset / "datasource-properties.json").read_text())
    return next(item for item in properties["dataLayers"] if item["name"] == layer)


@pytest.fixture
def em_slices(tmp_path):
    """Twelve real EM slices (the LZW test slice, shifted per slice), named 1..12.tif so
    that natural order differs from text order."""
    base = tifffile.imread(IMAGES / "em_slice_test.0000.tiff")
    folder = tmp_path / "slices"
    folder.mkdir()
    truth = []
    for z in range(12):
        plane = np.roll(base, (5 * z, 3 * z), (0, 1))
        tifffile.imwrite(folder / f"{z + 1}.tif", plane, compression="zlib" if z % 2 else None)
        truth.append(plane)
    return folder, np.stack(truth)


def test_tiff_folder_in_natural_order_with_pyramid(em_slices, tmp_path):
    folder, truth = em_slices
    out = tmp_path / "out"
    run("cube", folder, out, "--voxel-size", "11.24,11.24,25", "--pyramid", "--batch-size", "7")
    decoded = np.stack([tifffile.imread(folder / f"{z + 1}.tif") for z in range(12)])  # independent decode
    back = stored(out)
    assert back.dtype == np.uint8 and back.shape == decoded.shape == (12, 265, 265)
    np.testing.assert_array_equal(back, decoded)
    np.testing.assert_array_equal(back, truth)
    assert back[0, 0, 0] == decoded[0, 0, 0] and back[-1, -1, -1] == decoded[-1, -1, -1]
    layer = layer_json(out)
    assert layer["boundingBox"] == {"topLeft": [0, 0, 0], "width": 265, "height": 265, "depth": 12}
    assert [m["mag"] for m in layer["mags"]] == [[1, 1, 1], [2, 2, 1], [4, 4, 2]]
    properties = json.loads((out / "datasource-properties.json").read_text())
    assert properties["scale"] == {"unit": "nanometer", "factor": [11.24, 11.24, 25.0]}
    assert not list(out.rglob(".*")), "no hidden staging is left"
    coarse = stored(out, mag="2-2-1")  # median of 2 x 2 groups, edge-padded at the border
    assert coarse.shape == (12, 133, 133)


def test_cube_is_one_mag_without_pyramid_and_compressed(em_slices, tmp_path):
    folder, truth = em_slices
    out = tmp_path / "out"
    run("cube", folder, out)
    assert [m["mag"] for m in layer_json(out)["mags"]] == [[1, 1, 1]]
    header = (out / "color" / "1" / "header.wkw").read_bytes()
    assert header[5] == 2  # block type LZ4 (after "WKW", version, lengths)
    np.testing.assert_array_equal(stored(out), truth)


def test_no_compress_writes_raw_files(em_slices, tmp_path):
    folder, truth = em_slices
    out = tmp_path / "out"
    run("cube", folder, out, "--no-compress")
    assert (out / "color" / "1" / "header.wkw").read_bytes()[5] == 1  # raw
    np.testing.assert_array_equal(stored(out), truth)


def test_glob_skip_first_start_z_and_target_mag(em_slices, tmp_path):
    folder, truth = em_slices
    out = tmp_path / "out"
    run("cube", f"{folder}/*.tif", out, "--skip-first-z-slices", "2", "--start-z", "5", "--target-mag", "2-2-1")
    layer = layer_json(out)
    assert [m["mag"] for m in layer["mags"]] == [[2, 2, 1]]
    # 10 slices of 265 x 265 in mag 2-2-1 at z 5: the box in mag-1 voxels
    assert layer["boundingBox"] == {"topLeft": [0, 0, 5], "width": 530, "height": 530, "depth": 10}
    with wkw.Dataset.open(str(out / "color" / "2-2-1")) as handle:
        back = handle.read((0, 0, 5), (265, 265, 10))[0].transpose(2, 1, 0)
    np.testing.assert_array_equal(back, truth[2:])


def test_real_rgb_tiff_is_uint24(tmp_path):
    out = tmp_path / "out"
    run("cube", IMAGES / "test_rgb.tif", out)
    layer = layer_json(out)
    assert layer["elementClass"] == "uint24" and layer["numChannels"] == 3
    back = stored(out)
    np.testing.assert_array_equal(back[0], tifffile.imread(IMAGES / "test_rgb.tif"))
    run("cube", IMAGES / "test_rgb.tif", tmp_path / "green", "--sample-index", "1")
    np.testing.assert_array_equal(stored(tmp_path / "green")[0], tifffile.imread(IMAGES / "test_rgb.tif")[..., 1])


def test_real_multipage_uint32_tiff(tmp_path):
    out = tmp_path / "out"
    run("cube", IMAGES / "test_I.tif", out, "--layer-name", "img")
    truth = tifffile.imread(IMAGES / "test_I.tif")
    assert truth.shape == (64, 128, 64)
    back = stored(out, "img")
    assert back.dtype == np.uint32
    np.testing.assert_array_equal(back, truth)
    for z, y, x in [(0, 0, 0), (63, 127, 63), (31, 64, 17)]:
        assert back[z, y, x] == truth[z, y, x]


def test_real_ome_tiff_channels_become_layers(tmp_path):
    source = IMAGES / "multi-channel-z-series.ome.tif"
    truth = tifffile.imread(source)  # (C, Z, Y, X), big-endian int8
    assert truth.shape == (3, 5, 167, 439)
    out = tmp_path / "out"
    run("cube", source, out)
    for c in range(3):
        back = stored(out, f"color_{c}")
        assert back.dtype == np.int8
        np.testing.assert_array_equal(back, truth[c])
    run("cube", source, tmp_path / "one", "--channel-index", "2")
    np.testing.assert_array_equal(stored(tmp_path / "one"), truth[2])
    result = run("cube", source, tmp_path / "refused", "--prefer-channels", expect=2)
    assert "one layer per channel" in result.output
    run("cube", IMAGES / "single-channel.ome.tiff", tmp_path / "single")
    np.testing.assert_array_equal(stored(tmp_path / "single")[0], tifffile.imread(IMAGES / "single-channel.ome.tiff"))


def test_jpeg_png_bmp_slices_and_16_bit(tmp_path):
    tiles = sorted((DATA / "em_tiles").glob("*.jpg"))
    folders = {kind: tmp_path / kind for kind in ("jpg", "png", "bmp", "png16")}
    for folder in folders.values():
        folder.mkdir()
    for z, tile in enumerate(tiles):
        shutil.copy(tile, folders["jpg"] / f"s{z}.jpg")
        plane = np.asarray(Image.open(tile))[:300, :200]
        Image.fromarray(plane).save(folders["png"] / f"s{z}.png")
        Image.fromarray(plane).save(folders["bmp"] / f"s{z}.bmp")
        Image.fromarray(plane.astype(np.uint16) * 257).save(folders["png16"] / f"s{z}.png")
    for kind, folder in folders.items():
        out = tmp_path / f"out-{kind}"
        run("cube", folder, out)
        decoded = np.stack([np.asarray(Image.open(f)) for f in sorted(folder.iterdir())])
        back = stored(out)
        assert back.dtype == (np.uint16 if kind == "png16" else np.uint8), kind
        np.testing.assert_array_equal(back, decoded)
    out = tmp_path / "out-png16-as-8"
    result = run("cube", folders["png16"], out, "--dtype", "uint8", expect=2)
    assert "do not fit uint8" in result.output


def test_dm_slices(tmp_path):
    """A DM4 image and a DM3 stack of two slices make one three-slice stack."""
    folder = tmp_path / "dm"
    folder.mkdir()
    shutil.copy(DATA / "dm" / "2D" / "test-10.dm4", folder / "0_image.dm4")
    shutil.copy(DATA / "dm" / "3D" / "test-10.dm3", folder / "1_stack.dm3")
    out = tmp_path / "out"
    run("cube", folder, out, "--voxel-size", "1,1,1")
    back = stored(out)
    z, y, x = np.mgrid[0:2, 0:2, 0:2]
    image = (1 + x[0] + 2 * y[0]).astype(np.uint16)  # the generating script's formulas
    stack = (1 + x + 2 * y + 4 * z).astype(np.uint16)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, np.concatenate([image[None], stack]))


def test_mismatched_slices_need_pad(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(IMAGES / "em_slice_test.0000.tiff", folder / "a0.tif")
    shutil.copy(IMAGES / "different_shape_1.tif", folder / "a1.tif")
    result = run("cube", folder, tmp_path / "out", expect=2)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "a1.tif" in lines[0] and "--pad" in lines[0], result.output
    assert not (tmp_path / "out").exists()
    run("cube", folder, tmp_path / "padded", "--pad")
    back = stored(tmp_path / "padded")
    small = tifffile.imread(IMAGES / "different_shape_1.tif")
    small = small[..., 0] if small.ndim == 3 else small
    assert back.shape == (2, 265, 265)
    np.testing.assert_array_equal(back[0], tifffile.imread(IMAGES / "em_slice_test.0000.tiff"))
    np.testing.assert_array_equal(back[1, :250, :250], small)
    assert not back[1, 250:, :].any() and not back[1, :, 250:].any()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("empty", "no image slices"),
        ("garbage", "bad.png"),
        ("unknown", "cannot tell what this is"),
        ("missing", "no such file or folder"),
    ],
)
def test_bad_input_is_one_line(tmp_path, setup, message):
    source = tmp_path / "in"
    source.mkdir()
    command = "cube"
    if setup == "garbage":
        shutil.copy(IMAGES / "em_slice_test.0000.tiff", source / "a.tif")
        (source / "bad.png").write_bytes(b"\x89PNG not really")
    elif setup == "unknown":
        (source / "notes.txt").write_text("hello")
        command = "convert"
    elif setup == "missing":
        source = tmp_path / "nothing"
    result = run(command, source, tmp_path / "out", expect=2)
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("napari-wkw: error:") and message in lines[-1], result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "datasource-properties.json").exists()


def test_convert_detects_an_image_stack_and_opens_in_the_reader(em_slices, tmp_path):
    from napari_wkw._reader import napari_get_reader

    folder, truth = em_slices
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", str(folder), str(out), "--voxel-size", "4,4,40", "-q"])
    assert result.exit_code == 0, result.output
    assert "detected an image stack" in result.output
    np.testing.assert_array_equal(stored(out), truth)
    layers = napari_get_reader(str(out))(str(out))
    assert len(layers) == 1
    data, meta, kind = layers[0]
    assert kind == "image" and meta["multiscale"]
    assert len(data) == 3  # 1, 2-2-1, 4-4-2
    np.testing.assert_allclose(meta["scale"], (40, 4, 4))
    np.testing.assert_array_equal(np.asarray(data[0][:, :265, :265]), truth)


def test_voxel_size_from_ome_and_imagej_metadata(tmp_path):
    volume = np.arange(3 * 20 * 30, dtype=np.uint16).reshape(3, 20, 30)
    ome = tmp_path / "stack.ome.tif"
    tifffile.imwrite(
        ome, volume, metadata={"axes": "ZYX", "PhysicalSizeX": 0.011, "PhysicalSizeY": 0.012, "PhysicalSizeZ": 0.03}
    )
    imagej = tmp_path / "imagej.tif"
    tifffile.imwrite(
        imagej,
        volume,
        imagej=True,
        resolution=(1 / 0.004, 1 / 0.005),
        metadata={"spacing": 0.04, "unit": "um", "axes": "ZYX"},
    )
    for source, expected in ((ome, [11.0, 12.0, 30.0]), (imagej, [4.0, 5.0, 40.0])):
        out = tmp_path / source.stem
        run("cube", source, out)
        properties = json.loads((out / "datasource-properties.json").read_text())
        np.testing.assert_allclose(properties["scale"]["factor"], expected)
        np.testing.assert_array_equal(stored(out), volume)
    run("cube", ome, tmp_path / "given", "--voxel-size", "1,2,3")  # the command line wins
    assert json.loads((tmp_path / "given" / "datasource-properties.json").read_text())["scale"]["factor"] == [1, 2, 3]


@pytest.mark.parametrize("command", ["convert", "cube", "tile-cube", "convert-knossos", "convert-nifti"])
def test_every_conversion_names_a_missing_source_in_one_line(tmp_path, command):
    result = run(command, tmp_path / "nothing", tmp_path / "out", expect=2)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("napari-wkw: error:") and "nothing: no such" in lines[0], (
        result.output
    )
