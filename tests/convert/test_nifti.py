"""NIFTI sources: boxes read through our axis mapping equal nibabel's own decoding.

Expected values come from ``np.asanyarray(img.dataobj)`` (nibabel's (x, y, z) array),
turned into our (z, y, x) order, flipped, reoriented and padded here, in the test.
"""

from __future__ import annotations

import gc
import gzip
import pickle
import shutil
import threading
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_wkw.convert import nifti
from napari_wkw.convert.nifti import (
    NiftiSource,
    build_nifti_specs,
    looks_like_nifti,
    parse_flip_axes,
)
from napari_wkw.core.errors import DatasetFormatError, WKWError, WKWWarning
from napari_wkw.core.geometry import BoundingBox

DATA = Path(__file__).parent.parent / "data" / "nifti"
ANATOMICAL = DATA / "anatomical.nii"  # 33 x 41 x 25 big-endian int16, 2 mm, LAS
STANDARD = DATA / "standard.nii.gz"  # 4 x 5 x 7 uint8 mask, RAS, zooms 1,3,2 without unit
RESAMPLED = DATA / "resampled_anat_moved.nii"  # 17 x 21 x 3 big-endian float32 with NaNs, LAS
FUNCTIONAL = DATA / "functional.nii"  # 17 x 21 x 3 x 20


def decoded(path) -> np.ndarray:
    """nibabel's (x, y, z) voxels, scaled as nibabel scales them."""
    return np.asanyarray(nib.load(str(path)).dataobj)


def zyx(xyz: np.ndarray) -> np.ndarray:
    return xyz.transpose(2, 1, 0)


def whole(source) -> BoundingBox:
    return BoundingBox((0, 0, 0), source.size)


def border_boxes(size) -> list[BoundingBox]:
    """Single voxels at all eight corners, edge slabs, an inner box and the whole volume."""
    x, y, z = size
    corners = [BoundingBox((cx, cy, cz), (1, 1, 1)) for cx in (0, x - 1) for cy in (0, y - 1) for cz in (0, z - 1)]
    return corners + [
        BoundingBox((0, 0, z - 1), (x, y, 1)),  # the last slice
        BoundingBox((x - 2, 0, 0), (2, y, z)),  # the last two columns
        BoundingBox((1, 2, 1), (x - 2, y - 3, z - 1)),  # inner, touching the far ends
        BoundingBox((0, 0, 0), (x, y, z)),
    ]


def check_boxes(source, expected_zyx: np.ndarray) -> None:
    assert source.size == expected_zyx.shape[::-1]
    for box in border_boxes(source.size):
        got = source.read(box)
        assert got.dtype == source.dtype
        np.testing.assert_array_equal(got, expected_zyx[box.zyx_slices()], err_msg=str(box))


def save(tmp_path, name, data, affine=None, **header_values) -> Path:
    image = nib.Nifti1Image(data, np.eye(4) if affine is None else affine)
    for key, value in header_values.items():
        image.header[key] = value
    path = tmp_path / name
    nib.save(image, str(path))
    return path


# ---- reading ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [ANATOMICAL, STANDARD, RESAMPLED], ids=lambda p: p.name)
def test_boxes_equal_nibabel_decoding(path):
    source = NiftiSource(path)
    expected = zyx(decoded(path))
    check_boxes(source, expected)
    assert source.dtype == expected.dtype.newbyteorder("=")
    assert source.dtype.isnative


def test_anatomical_values_at_known_places():
    """A few voxels spelled out: ours (x, y, z) is nibabel's [x, y, z], also at the far corner."""
    raw = decoded(ANATOMICAL)
    source = NiftiSource(ANATOMICAL)
    for x, y, z in [(0, 0, 0), (32, 40, 24), (16, 20, 12), (32, 0, 24), (0, 40, 0)]:
        assert source.read(BoundingBox((x, y, z), (1, 1, 1)))[0, 0, 0] == raw[x, y, z]
    assert source.dtype == np.int16 and source.size == (33, 41, 25)


@pytest.mark.parametrize("flips", ["x", "y", "z", "x,z", "1,2,3"])
def test_flipped_axes(flips):
    raw = decoded(ANATOMICAL)
    axes = {"1": 0, "2": 1, "3": 2, "x": 0, "y": 1, "z": 2}
    flipped = np.flip(raw, tuple(axes[a] for a in flips.split(",")))
    source = NiftiSource(ANATOMICAL, flip=parse_flip_axes(flips))
    check_boxes(source, zyx(flipped))


def test_orientation_header_matches_nibabel_closest_canonical():
    # anatomical is LAS (x runs to the left): canonical RAS reverses x
    canonical = NiftiSource(ANATOMICAL, canonical=True)
    check_boxes(canonical, zyx(np.asanyarray(nib.as_closest_canonical(nib.load(str(ANATOMICAL))).dataobj)))
    check_boxes(canonical, zyx(decoded(ANATOMICAL)[::-1, :, :]))
    # already RAS: unchanged
    check_boxes(NiftiSource(STANDARD, canonical=True), zyx(decoded(STANDARD)))


def test_orientation_header_with_permuted_axes(tmp_path):
    """A file stored as (y, z, x) on disk, with its voxel size per axis, comes out RAS."""
    rng = np.random.default_rng(3)
    data = rng.integers(0, 60000, (6, 9, 11), dtype=np.uint16)
    affine = np.array([[0, 0, -3.0, 10], [2.0, 0, 0, 0], [0, 5.0, 0, 0], [0, 0, 0, 1]])
    path = save(tmp_path, "permuted.nii.gz", data, affine)
    nib.load(str(path)).header.set_xyzt_units("mm")
    image = nib.load(str(path))
    canonical_image = nib.as_closest_canonical(image)
    source = NiftiSource(path, canonical=True)
    expected = np.asanyarray(canonical_image.dataobj)
    # written out: RAS x is disk axis 2 reversed, y is disk axis 0, z is disk axis 1
    np.testing.assert_array_equal(expected, data.transpose(2, 0, 1)[::-1])
    check_boxes(source, zyx(expected))
    # zooms follow the axes: 3, 2, 5 (nibabel: no unit -> as nm, with a warning)
    with pytest.warns(WKWWarning, match="no length unit"):
        voxel_size = source.voxel_size
    assert voxel_size == pytest.approx(tuple(float(v) for v in canonical_image.header.get_zooms()))
    assert voxel_size == pytest.approx((3.0, 2.0, 5.0))
    # flips come after the reorientation, in the RAS axes
    flipped = NiftiSource(path, canonical=True, flip=(False, True, False))
    check_boxes(flipped, zyx(expected[:, ::-1, :]))


def test_orientation_without_header_orientation_warns(tmp_path):
    path = save(tmp_path, "plain.nii", np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    image = nib.load(str(path))
    image.header.set_qform(None, code=0)
    image.header.set_sform(None, code=0)
    bare = tmp_path / "bare.nii"
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj), None, image.header), str(bare))
    assert int(nib.load(str(bare)).header["qform_code"]) == 0
    with pytest.warns(WKWWarning, match="states no orientation"):
        source = NiftiSource(bare, canonical=True)
    check_boxes(source, zyx(np.asanyarray(nib.as_closest_canonical(nib.load(str(bare))).dataobj)))


def test_enforced_box_pads_centred_in_x_y_and_from_the_start_in_z():
    raw = decoded(STANDARD)  # 4 x 5 x 7
    source = NiftiSource(STANDARD, box=BoundingBox((10, 20, 30), (9, 8, 10)))
    assert source.size == (9, 8, 10)
    expected = np.zeros((9, 8, 10), raw.dtype)  # x, y, z
    # x: 5 more -> 2 before, 3 after; y: 3 more -> 1 before, 2 after; z: from 0, 3 after
    expected[2:6, 1:6, 0:7] = raw
    check_boxes(source, zyx(expected))


def test_enforced_box_crops_centred_in_x_y_and_at_the_end_in_z():
    raw = decoded(ANATOMICAL)  # 33 x 41 x 25
    source = NiftiSource(ANATOMICAL, box=BoundingBox((0, 0, 0), (30, 44, 20)))
    expected = np.zeros((30, 44, 20), raw.dtype)
    # x: 3 fewer -> from 1 (floor of 3 / 2) to 31; y: 3 more -> 1 before; z: the first 20
    expected[:, 1:42, :] = raw[1:31, :, :20]
    check_boxes(source, zyx(expected))


def test_trailing_axes_of_size_one_are_dropped(tmp_path):
    raw = decoded(ANATOMICAL)
    for shape in [raw.shape + (1,), raw.shape + (1, 1)]:
        path = save(tmp_path, f"{len(shape)}d.nii.gz", raw.reshape(shape))
        assert nib.load(str(path)).shape == shape
        check_boxes(NiftiSource(path), zyx(raw))


def test_a_2d_file_is_one_slice(tmp_path):
    raw = decoded(ANATOMICAL)[:, :, 7]
    path = save(tmp_path, "slice.nii", raw)
    source = NiftiSource(path)
    assert source.size == (33, 41, 1)
    check_boxes(source, zyx(raw[:, :, None]))


def test_nifti2_file(tmp_path):
    raw = decoded(ANATOMICAL)
    path = tmp_path / "two.nii"
    nib.save(nib.Nifti2Image(raw, nib.load(str(ANATOMICAL)).affine), str(path))
    assert nib.load(str(path)).header.sizeof_hdr == 540
    check_boxes(NiftiSource(path), zyx(raw))


def test_scaled_file_reads_scaled_values(tmp_path):
    raw = decoded(ANATOMICAL).astype(np.int16)
    image = nib.Nifti1Image(raw, np.eye(4))
    image.header.set_slope_inter(0.25, -3.0)
    path = tmp_path / "scaled.nii"
    nib.save(image, str(path))
    source = NiftiSource(path)
    expected = decoded(path)
    assert expected.dtype.kind == "f" and source.dtype == expected.dtype
    np.testing.assert_allclose(expected, raw * 0.25 - 3.0)
    check_boxes(source, zyx(expected))


# ---- refusals ---------------------------------------------------------------------------------


def test_true_4d_and_5d_are_refused_naming_the_file(tmp_path):
    with pytest.raises(DatasetFormatError, match=r"functional\.nii: a 4D NIFTI \(17 x 21 x 3 x 20\)"):
        NiftiSource(FUNCTIONAL)
    path = save(tmp_path, "five.nii.gz", np.zeros((4, 5, 6, 1, 2), np.uint8))
    with pytest.raises(DatasetFormatError, match=rf"{path}: a 5D NIFTI \(4 x 5 x 6 x 1 x 2\)"):
        NiftiSource(path)


def test_broken_files_are_one_clear_error(tmp_path):
    truncated = tmp_path / "truncated.nii"
    truncated.write_bytes(ANATOMICAL.read_bytes()[:40000])
    with pytest.raises(DatasetFormatError, match=rf"{truncated}: truncated: the header needs 68002 bytes"):
        NiftiSource(truncated)

    cut_gz = tmp_path / "cut.nii.gz"
    cut_gz.write_bytes(gzip.compress(ANATOMICAL.read_bytes())[:20000])
    with pytest.raises(DatasetFormatError, match=rf"{cut_gz}: (truncated|broken gzip)"):
        NiftiSource(cut_gz).read(BoundingBox((0, 0, 0), (33, 41, 25)))

    text = tmp_path / "notes.nii"
    text.write_text("not a volume\n" * 50)
    with pytest.raises(DatasetFormatError, match=rf"{text}: not a readable NIFTI file"):
        NiftiSource(text)
    with pytest.raises(WKWError, match="no such file"):
        NiftiSource(tmp_path / "missing.nii")


def test_complex_voxels_are_refused(tmp_path):
    path = save(tmp_path, "complex.nii", np.ones((3, 4, 5), np.complex64))
    with pytest.raises(DatasetFormatError, match=rf"{path}: voxels of type complex64 cannot be stored"):
        NiftiSource(path)


# ---- voxel size -------------------------------------------------------------------------------


@pytest.mark.parametrize(("unit", "factor"), [("mm", 1e6), ("micron", 1e3), ("meter", 1e9)])
def test_voxel_size_in_nm_from_the_header_unit(tmp_path, unit, factor):
    image = nib.Nifti1Image(np.zeros((3, 4, 5), np.uint8), np.diag([0.5, 0.25, 2.0, 1.0]))
    image.header.set_xyzt_units(unit)
    path = tmp_path / f"{unit}.nii"
    nib.save(image, str(path))
    zooms = nib.load(str(path)).header.get_zooms()
    assert NiftiSource(path).voxel_size == pytest.approx(tuple(float(z) * factor for z in zooms))


def test_real_files_voxel_sizes():
    assert NiftiSource(ANATOMICAL).voxel_size == pytest.approx((2e6, 2e6, 2e6))  # 2 mm
    with pytest.warns(WKWWarning, match=r"standard\.nii\.gz: the header gives no length unit"):
        assert NiftiSource(STANDARD).voxel_size == pytest.approx((1.0, 3.0, 2.0))


# ---- .nii.gz: decompressed once per process ---------------------------------------------------


@pytest.fixture
def count_inflations(monkeypatch):
    calls = []
    original = nifti._inflate

    def counting(path, offset, nbytes):
        calls.append(path)
        return original(path, offset, nbytes)

    monkeypatch.setattr(nifti, "_inflate", counting)
    monkeypatch.setattr(nifti, "_decompressed_cache", {})
    return calls


def test_gz_is_decompressed_once_for_any_order_threads_and_copies(tmp_path, count_inflations):
    raw = decoded(ANATOMICAL)
    path = save(tmp_path, "anat.nii.gz", raw, nib.load(str(ANATOMICAL)).affine)
    source = NiftiSource(path, canonical=True, flip=(False, False, True))
    expected = zyx(raw[::-1, :, ::-1])
    copy = pickle.loads(pickle.dumps(source))
    errors = []

    def read_slices(reader, order):
        for z in order:
            got = reader.read(BoundingBox((0, 0, z), (33, 41, 1)))
            if not np.array_equal(got, expected[z : z + 1]):
                errors.append(z)

    threads = [
        threading.Thread(target=read_slices, args=(source, range(25))),
        threading.Thread(target=read_slices, args=(copy, reversed(range(25)))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count_inflations == [str(path)]
    check_boxes(source, expected)
    assert len(count_inflations) == 1


def test_gz_cache_keeps_the_last_file_only_and_frees_the_others(tmp_path, count_inflations):
    first = NiftiSource(STANDARD)
    other = save(tmp_path, "other.nii.gz", decoded(ANATOMICAL))
    second = NiftiSource(other)
    first.read(whole(first))
    temporary = first._array().file_like
    second.read(whole(second))
    assert len(nifti._decompressed_cache) == 1
    first.read(whole(first))  # a reader keeps what it opened
    assert len(count_inflations) == 2 and not temporary.closed
    pickle.loads(pickle.dumps(first)).read(whole(first))  # a new copy finds it gone from the cache
    assert len(count_inflations) == 3
    del first
    gc.collect()
    assert temporary.closed  # freed with its last reader


def test_source_pickles_without_open_files():
    for path in (ANATOMICAL, STANDARD):
        source = NiftiSource(path)
        box = BoundingBox((1, 1, 1), (3, 3, 3))
        before = source.read(box)  # opens the file (and decompresses the .gz)
        state = pickle.dumps(source)
        assert b"BufferedRandom" not in state and b"ArrayProxy" not in state
        copy = pickle.loads(state)
        np.testing.assert_array_equal(copy.read(box), before)
        assert copy.fingerprint() == source.fingerprint()


def test_fingerprint_changes_with_options_and_file(tmp_path):
    path = tmp_path / "a.nii"
    shutil.copyfile(ANATOMICAL, path)
    plain = NiftiSource(path).fingerprint()
    assert NiftiSource(path, flip=(True, False, False)).fingerprint() != plain
    assert NiftiSource(path, canonical=True).fingerprint() != plain
    assert NiftiSource(path, box=BoundingBox((1, 2, 3), (40, 40, 40))).fingerprint() != plain
    path.write_bytes(path.read_bytes() + b"\0")
    assert NiftiSource(path).fingerprint() != plain


# ---- detection and layer specs ----------------------------------------------------------------


def test_looks_like_nifti(tmp_path):
    assert looks_like_nifti(ANATOMICAL) and looks_like_nifti(STANDARD) and looks_like_nifti(DATA)
    fake = tmp_path / "fake.nii.gz"
    fake.write_bytes(gzip.compress(b"hello" * 200))
    (tmp_path / "notes.txt").write_text("x")
    assert not looks_like_nifti(fake)
    assert not looks_like_nifti(tmp_path)
    assert not looks_like_nifti(tmp_path / "notes.txt")
    assert not looks_like_nifti(tmp_path / "missing.nii")


def test_one_file_spec():
    [spec] = build_nifti_specs(ANATOMICAL)
    assert (spec.name, spec.category, spec.dtype, spec.offset) == ("color", "color", None, (0, 0, 0))
    [spec] = build_nifti_specs(STANDARD, is_segmentation=True)
    assert (spec.name, spec.category) == ("segmentation", "segmentation")
    [spec] = build_nifti_specs(ANATOMICAL, layer_name="brain", dtype="float32")
    assert (spec.name, spec.category, spec.stored_dtype) == ("brain", "color", np.float32)
    box = BoundingBox((5, 6, 7), (40, 50, 30))
    [spec] = build_nifti_specs(ANATOMICAL, enforce_bounding_box=box)
    assert spec.offset == (5, 6, 7) and spec.source.size == (40, 50, 30)


def test_folder_specs_named_by_file_and_role(tmp_path):
    shutil.copyfile(ANATOMICAL, tmp_path / "anatomical.nii")
    shutil.copyfile(STANDARD, tmp_path / "mask.nii.gz")
    (tmp_path / "more").mkdir()
    shutil.copyfile(STANDARD, tmp_path / "more" / "labels.nii.gz")
    specs = build_nifti_specs(tmp_path)
    assert [(s.name, s.category) for s in specs] == [
        ("anatomical", "color"),
        ("mask", "color"),
        ("labels", "segmentation"),  # "label" in the name, as every command guesses
    ]
    specs = build_nifti_specs(tmp_path, color_file="anatomical.nii", segmentation_file="mask.nii.gz")
    assert [(s.name, s.category, Path(s.source.path).name) for s in specs] == [
        ("color", "color", "anatomical.nii"),
        ("segmentation", "segmentation", "mask.nii.gz"),
        ("labels", "segmentation", "labels.nii.gz"),
    ]
    with pytest.raises(WKWError, match=r"--color-file brain\.nii is not one of its NIFTI files"):
        build_nifti_specs(tmp_path, color_file="brain.nii")
    with pytest.raises(WKWError, match="--layer-name names the layer of one file"):
        build_nifti_specs(tmp_path, layer_name="x")


def test_folder_name_clash_and_empty_folder(tmp_path):
    shutil.copyfile(STANDARD, tmp_path / "mask.nii.gz")
    shutil.copyfile(ANATOMICAL, tmp_path / "mask.nii")
    with pytest.raises(WKWError, match=r"mask\.nii, mask\.nii\.gz would all become layer 'mask'"):
        build_nifti_specs(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WKWError, match=rf"{empty}: holds no NIFTI files"):
        build_nifti_specs(empty)


def test_float_segmentation_needs_whole_numbers(tmp_path):
    with pytest.raises(WKWError, match=r"resampled_anat_moved\.nii: voxel \d+,\d+,\d+ holds nan, not a whole number"):
        build_nifti_specs(RESAMPLED, is_segmentation=True)
    labels = (decoded(ANATOMICAL) // 1000).clip(0).astype(np.float32)
    path = save(tmp_path, "labels.nii", labels)
    [spec] = build_nifti_specs(path, is_segmentation=True)
    assert spec.stored_dtype == np.uint32 and spec.category == "segmentation"
    [spec] = build_nifti_specs(path, is_segmentation=True, dtype="uint16")
    assert spec.stored_dtype == np.uint16
    labels[32, 40, 24] = 2.5  # the very last voxel
    save(tmp_path, "labels.nii", labels)
    with pytest.raises(WKWError, match=r"labels\.nii: voxel 32,40,24 holds 2\.5"):
        build_nifti_specs(path, is_segmentation=True)
    negative = save(tmp_path, "negative.nii", np.full((3, 3, 3), -2.0, np.float32))
    with pytest.raises(WKWError, match=r"segment ids -2\.\.-2 do not fit uint32"):
        build_nifti_specs(negative, is_segmentation=True)


def test_contradicting_category_is_refused():
    with pytest.raises(WKWError, match="both color and segmentation"):
        build_nifti_specs(ANATOMICAL, category="color", is_segmentation=True)


def test_warnings_are_wkw_warnings_only():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        source = NiftiSource(ANATOMICAL, canonical=True)
        source.read(whole(source))
        assert source.voxel_size is not None
