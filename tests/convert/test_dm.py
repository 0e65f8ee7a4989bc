"""DM3/DM4 slices (napari_wkw.convert.dm) against truths that do not go through rsciio.

The files are RosettaSciIO's own test data (see tests/data/README.md). ``test-<type>``
files were written by DigitalMicrograph from a script that sets each pixel to
``1 + x + 2 y`` (2-D) or ``1 + x + 2 y + 4 z`` (3-D stacks). The real microscope images
(a STEM image, a StackBuilder stack) are checked against the pixel array and the
calibrations decoded here by a small independent walker over the DM tag tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_wkw.convert.dm import DMInfo, _voxel_size_nm, dm_info, read_dm, read_dm_slice
from napari_wkw.core.errors import WKWError

DM = Path(__file__).parent.parent / "data" / "dm"
STEM_IMAGE = DM / "2D" / "test_STEM_image.dm3"
STACK = DM / "test_stackbuilder_imagestack.dm3"

# ---- an independent DM3/DM4 tag-tree walker (format as documented by Gatan users) --------

#: DM tag value encodings: 2 short, 3 long, 4 ushort, 5 ulong, 6 float, 7 double, 8 bool,
#: 9 char, 10 octet, 11 long long, 12 unsigned long long
_TAG_TYPES = {2: "<i2", 3: "<i4", 4: "<u2", 5: "<u4", 6: "<f4", 7: "<f8", 8: "u1", 9: "i1", 10: "u1"}
_TAG_TYPES |= {11: "<i8", 12: "<u8"}
#: ImageData.DataType codes of the images used here
_IMAGE_TYPES = {1: "<i2", 2: "<f4", 6: "u1", 7: "<i4", 10: "<u2", 11: "<u4"}


def parse_dm_tags(path: Path) -> dict:
    """The tag tree of a little-endian DM3/DM4 file; unnamed tags are keyed by index."""
    raw = path.read_bytes()
    version = int.from_bytes(raw[:4], "big")
    word = 4 if version == 3 else 8  # DM4 widened sizes and counts to 8 bytes
    assert int.from_bytes(raw[4 + word : 8 + word], "big") == 1, "little-endian file"
    pos = 8 + word

    def number() -> int:
        nonlocal pos
        pos += word
        return int.from_bytes(raw[pos - word : pos], "big")

    def take(dtype, count: int) -> np.ndarray:
        nonlocal pos
        values = np.frombuffer(raw, dtype, count, pos)
        pos += values.nbytes
        return values

    def group() -> dict:
        nonlocal pos
        pos += 2  # sorted and open flags
        tags: dict = {}
        for index in range(number()):
            kind, length = raw[pos], int.from_bytes(raw[pos + 1 : pos + 3], "big")
            name = raw[pos + 3 : pos + 3 + length].decode("latin-1") or index
            pos += 3 + length + (8 if version == 4 else 0)  # DM4: the tag's byte size
            tags[name] = group() if kind == 20 else value()
        return tags

    def value():
        nonlocal pos
        assert raw[pos : pos + 4] == b"%%%%"
        pos += 4
        info = [number() for _ in range(number())]
        if len(info) == 1:
            return take(_TAG_TYPES[info[0]], 1)[0]
        if info[0] == 18:  # string of UTF-16 units
            return take("<u2", info[1])
        if info[0] == 15:  # struct: (name length, type) per field
            return [take(_TAG_TYPES[kind], 1)[0] for kind in info[4::2]]
        if info[0] == 20 and info[1] == 15:  # array of structs
            fields = np.dtype([(f"f{i}", _TAG_TYPES[kind]) for i, kind in enumerate(info[5:-1:2])])
            return take(fields, info[-1])
        if info[0] == 20:  # array of a simple type
            return take(_TAG_TYPES[info[1]], info[2])
        raise AssertionError(f"{path}: tag encoding {info} not handled by this walker")

    return group()


def raw_image(path: Path) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """The (non-thumbnail) image as stored, (z, y, x) with x fastest, and its (scale, unit) per axis x, y, z."""
    tags = parse_dm_tags(path)
    thumbnails = {int(thumb["ImageIndex"]) for thumb in tags.get("Thumbnails", {}).values()}
    (image,) = [image for index, image in tags["ImageList"].items() if index not in thumbnails]
    data = image["ImageData"]
    shape_xyz = [int(n) for n in data["Dimensions"].values()]
    pixels = data["Data"].view(_IMAGE_TYPES[int(data["DataType"])]).reshape(shape_xyz[::-1])
    calibrations = [
        (float(axis["Scale"]), "".join(map(chr, axis["Units"]))) for axis in data["Calibrations"]["Dimension"].values()
    ]
    return pixels, calibrations


# ---- generated files: values from the generating script ---------------------------------


def formula(shape_zyx: tuple[int, int, int]) -> np.ndarray:
    z, y, x = np.indices(shape_zyx)
    return 1 + x + 2 * y + 4 * z


@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        ("2D/test-6.dm3", np.uint8),
        ("2D/test-2.dm3", np.float32),
        ("2D/test-10.dm4", np.uint16),
        ("2D/test-1.dm4", np.int16),
    ],
)
def test_2d_image_is_one_slice_with_the_generated_values(name, dtype):
    path = DM / name
    data = read_dm(path)
    assert data.dtype == np.dtype(dtype) and data.dtype.isnative and data.flags.c_contiguous
    np.testing.assert_array_equal(data, formula((1, 2, 2)).astype(dtype))
    # the formula is what the file stores (x fastest), not just what both readers agree on
    stored, _ = raw_image(path)
    np.testing.assert_array_equal(stored, formula((1, 2, 2))[0])
    assert dm_info(path) == DMInfo((1, 2, 2), np.dtype(dtype), None, 1)  # uncalibrated: pixels


@pytest.mark.parametrize("name", ["3D/test-10.dm3", "3D/test-10.dm4"])
def test_3d_stack_keeps_all_slices_in_order(name):
    path = DM / name
    data = read_dm(path)
    assert data.shape == (2, 2, 2) and data.dtype == np.uint16
    np.testing.assert_array_equal(data, formula((2, 2, 2)))
    np.testing.assert_array_equal(raw_image(path)[0], formula((2, 2, 2)))
    assert dm_info(path) == DMInfo((2, 2, 2), np.dtype(np.uint16), None, 1)


@pytest.mark.parametrize("name", ["2D/test-23.dm3", "2D/test-23.dm4"])
def test_rgb_image_is_three_uint8_channels(name):
    """DM stores RGB as B, G, R, A bytes; the script wrote the value to all three colours."""
    path = DM / name
    data = read_dm(path)
    assert data.shape == (1, 2, 2, 3) and data.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(data[..., channel], formula((1, 2, 2)))
    stored = parse_dm_tags(path)["ImageList"][1]["ImageData"]["Data"].view(np.uint8).reshape(2, 2, 4)
    np.testing.assert_array_equal(data[0], stored[..., [2, 1, 0]])  # alpha dropped
    assert dm_info(path) == DMInfo((1, 2, 2), np.dtype(np.uint8), None, 3)


def test_binary_image_is_stored_as_zero_one_bytes():
    data = read_dm(DM / "2D" / "test-14.dm3")
    assert data.dtype == np.uint8
    np.testing.assert_array_equal(data, np.ones((1, 2, 2)))  # the script set every pixel non-zero
    assert dm_info(DM / "2D" / "test-14.dm3").dtype == np.uint8


# ---- real microscope files: values from the independent tag walker ------------------------


def test_real_stem_image_matches_the_stored_pixels_and_calibration():
    stored, calibrations = raw_image(STEM_IMAGE)
    assert stored.shape == (68, 68) and calibrations == [(pytest.approx(0.248538, rel=1e-5), "nm")] * 2
    data = read_dm(STEM_IMAGE)
    assert data.shape == (1, 68, 68) and data.dtype == np.uint32 and data.dtype.isnative
    for y, x in [(0, 0), (0, 67), (67, 0), (67, 67), (33, 41)]:  # corners and inside
        assert data[0, y, x] == stored[y, x]
    np.testing.assert_array_equal(data[0], stored)
    assert len(np.unique(stored)) > 1000  # a real image, not a constant

    info = dm_info(STEM_IMAGE)
    assert (info.shape_zyx, info.dtype, info.channels) == ((1, 68, 68), np.dtype(np.uint32), 1)
    scale = calibrations[0][0]
    assert info.voxel_size_nm == pytest.approx((scale, scale, None))  # z: a single image states none


def test_real_image_stack_matches_the_stored_pixels_and_micrometre_calibration():
    stored, calibrations = raw_image(STACK)
    assert stored.shape == (3, 2, 16)
    assert [unit for _, unit in calibrations] == ["\u00b5m", "\u00b5m"]  # no calibration for z
    data = read_dm(STACK)
    assert data.shape == (3, 2, 16) and data.dtype == np.uint32
    for z, y, x in [(0, 0, 0), (0, 1, 15), (2, 0, 15), (2, 1, 0), (1, 1, 7)]:
        assert data[z, y, x] == stored[z, y, x]
    np.testing.assert_array_equal(data, stored)
    assert not np.array_equal(data[0], data[2])  # the slices differ: order matters

    info = dm_info(STACK)
    assert info.shape_zyx == (3, 2, 16) and info.dtype == np.uint32
    nm = calibrations[0][0] * 1000
    assert info.voxel_size_nm == pytest.approx((nm, nm, None))


def test_info_does_not_decode_pixels(monkeypatch):
    """dm_info reads tags only: the reader's pixel decoding (numpy.fromfile) is never called."""
    import rsciio.digitalmicrograph._api as reader

    def refuse(*args, **kwargs):
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(reader.np, "fromfile", refuse)
    assert dm_info(STEM_IMAGE).shape_zyx == (1, 68, 68)
    assert dm_info(STACK).shape_zyx == (3, 2, 16)


@pytest.mark.parametrize("name", ["3D/test-10.dm3", "3D/test-10.dm4", "2D/test-6.dm3", "2D/test-23.dm4", STACK.name])
def test_single_slices_equal_the_whole_read(name):
    path = DM / name
    whole = read_dm(path)
    for z in range(whole.shape[0]):
        page = read_dm_slice(path, z)
        assert page.dtype == whole.dtype and page.flags.c_contiguous
        np.testing.assert_array_equal(page, whole[z])
    with pytest.raises(WKWError, match=f"has {whole.shape[0]} slice"):
        read_dm_slice(path, whole.shape[0])


def test_single_slice_is_read_without_decoding_the_stack(monkeypatch):
    import rsciio.digitalmicrograph._api as reader

    stored, _ = raw_image(STACK)
    monkeypatch.setattr(reader.np, "fromfile", lambda *args, **kwargs: pytest.fail("whole stack decoded"))
    np.testing.assert_array_equal(read_dm_slice(STACK, 2), stored[2])


@pytest.mark.parametrize(
    ("units", "scale", "nm"),
    [
        ("nm", 2.5, 2.5),
        ("\u00b5m", 0.5, 500.0),  # micro sign
        ("\u03bcm", 0.5, 500.0),  # Greek mu
        ("um", 0.5, 500.0),
        ("\u00c5", 4.0, 0.4),  # letter A with ring
        ("\u212b", 4.0, 0.4),  # Angstrom sign
        ("A", 4.0, 0.4),
        ("pm", 50.0, 0.05),
        ("", 1.0, None),  # pixels
        ("1/nm", 0.17, None),  # a diffraction pattern
        ("eV", 1.0, None),
        ("nm", 0.0, None),  # DM writes 0 for "not calibrated" too
    ],
)
def test_calibration_units_to_nanometres(units, scale, nm):
    axes = [{"name": "y", "scale": scale, "units": units}, {"name": "x", "scale": scale, "units": units}]
    expected = None if nm is None else (pytest.approx(nm), pytest.approx(nm), None)
    assert _voxel_size_nm(axes) == expected


def test_stack_with_a_length_z_calibration_states_z():
    axes = [
        {"name": "z", "scale": 0.03, "units": "\u00b5m"},
        {"name": "y", "scale": 4.0, "units": "nm"},
        {"name": "x", "scale": 5.0, "units": "nm"},
    ]
    assert _voxel_size_nm(axes) == pytest.approx((5.0, 4.0, 30.0))


# ---- bad input: one WKWError naming the file ------------------------------------------------


def assert_refused(path: Path, *words: str) -> None:
    for function in (dm_info, read_dm, lambda path: read_dm_slice(path, 0)):
        with pytest.raises(WKWError) as error:
            function(path)
        message = str(error.value)
        assert str(path) in message and "\n" not in message
        for word in words:
            assert word in message


@pytest.mark.parametrize("fraction", [0.0005, 0.1, 0.4, 0.7, 0.95])
def test_truncated_file_is_refused(tmp_path, fraction):
    """Cut inside the header, the tags and the pixels (the thumbnail precedes the image)."""
    cut = tmp_path / "cut.dm3"
    raw = STEM_IMAGE.read_bytes()
    cut.write_bytes(raw[: int(len(raw) * fraction)])
    assert_refused(cut)


def test_file_cut_inside_its_pixels_says_so(tmp_path):
    raw = STEM_IMAGE.read_bytes()
    start = raw.find(raw_image(STEM_IMAGE)[0].tobytes())
    assert start > 0
    cut = tmp_path / "cut_in_pixels.dm3"
    cut.write_bytes(raw[: start + 1000])  # tags still whole: only the pixel bytes are missing
    assert_refused(cut, "truncated")


def test_other_files_are_not_dm(tmp_path):
    jpeg = tmp_path / "tile.dm3"
    shutil.copy(Path(__file__).parent.parent / "data" / "em_tiles" / "1_60_140.jpg", jpeg)
    assert_refused(jpeg, "not a DM3/DM4 file")
    empty = tmp_path / "empty.dm4"
    empty.write_bytes(b"")
    assert_refused(empty, "not a DM3/DM4 file")
    assert_refused(tmp_path / "missing.dm3", "no such file")


def test_complex_fft_data_is_refused():
    assert_refused(DM / "2D" / "test-3.dm4", "complex")


def test_spectra_are_not_image_slices():
    assert_refused(DM / "1D" / "test-6.dm3", "1-D spectrum")
    assert_refused(DM / "3D" / "EELS_SI.dm4", "spectral data", "Energy loss")


def test_importing_the_module_does_not_import_the_reader():
    code = "import sys, napari_wkw.convert.dm; print('rsciio' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
