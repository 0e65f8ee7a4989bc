"""check_equality: equal copies, and each kind of difference reported where it is."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import wkw

from napari_wkw.core.dataset import Dataset
from napari_wkw.core.errors import CancelledError, WKWError
from napari_wkw.core.geometry import BoundingBox, Mag
from napari_wkw.core.progress import CancelToken
from napari_wkw.core.save import ArrayLayer, save_dataset
from napari_wkw.core.wkw_file import BLOCK_LZ4, BLOCK_RAW
from napari_wkw.jobs.runner import JobSettings
from napari_wkw.ops.equality import check_equality

SEQUENTIAL = JobSettings("sequential")
#: element classes: name -> (dtype per channel, channels, category)
KINDS = {
    "uint8": (np.uint8, 1, "color"),
    "uint16": (np.uint16, 1, "color"),
    "uint32": (np.uint32, 1, "segmentation"),
    "uint64": (np.uint64, 1, "segmentation"),
    "float32": (np.float32, 1, "color"),
    "rgb": (np.uint8, 3, "color"),
}
SHAPE = (37, 45, 70)  # z, y, x: no multiple of 32
OFFSET = (13, 21, 5)  # x, y, z


def make_array(kind: str, shape=SHAPE, seed: int = 0) -> np.ndarray:
    """Random voxels of ``kind`` as (z, y, x[, c]), with values that use the whole type."""
    dtype, channels, _ = KINDS[kind]
    rng = np.random.default_rng(seed)
    full = shape + ((channels,) if channels > 1 else ())
    if np.dtype(dtype).kind == "f":
        return (rng.standard_normal(full) * 1000).astype(dtype)
    if dtype == np.uint64:
        return rng.integers(2**60, 2**64 - 1, full, dtype=np.uint64, endpoint=True)
    return rng.integers(0, np.iinfo(dtype).max, full, dtype=dtype, endpoint=True)


def save(path: Path, kind: str, data: np.ndarray, *, name: str | None = None, compress=True, pyramid=True,
         offset=OFFSET, voxel=(11.24, 11.24, 25.0)) -> Path:
    _, channels, category = KINDS[kind]
    layer = ArrayLayer(name or kind, category, [data], voxel, offset=offset, num_channels=channels)
    return save_dataset(path, [layer], compress=compress, pyramid=pyramid)


def save_small_files(path: Path, kind: str, data: np.ndarray, *, compress=True, offset=OFFSET) -> Path:
    """One layer in 16-voxel files (8-voxel blocks), so it spans many files and units."""
    dtype, channels, category = KINDS[kind]
    dataset = Dataset.create(path, (1.0, 1.0, 1.0))
    size = (data.shape[2], data.shape[1], data.shape[0])
    layer = dataset.add_layer(kind, category, dtype, num_channels=channels, bounding_box=BoundingBox(offset, size))
    view = layer.add_mag(1, block_type=BLOCK_LZ4 if compress else BLOCK_RAW, file_len=2, block_len=8)
    view.write(offset, data)
    dataset.save_properties()
    return path


def flip_voxel(mag_path: Path, xyz: tuple[int, int, int]) -> None:
    """Change one voxel (every channel) with bare libwkw, or through MagView for compressed mags."""
    with wkw.Dataset.open(str(mag_path)) as handle:
        old = handle.read(xyz, (1, 1, 1))  # (c, 1, 1, 1)
        new = (old + 1).astype(old.dtype)
        if handle.header.block_type == wkw.Header.BLOCK_TYPE_RAW:
            handle.write(xyz, new)
            return
    from napari_wkw.core.dataset import MagView

    MagView.at(mag_path).write(xyz, new.transpose(3, 2, 1, 0) if new.shape[0] > 1 else new[0].transpose(2, 1, 0))


def voxel_differences(report):
    return [d for d in report.differences if d.kind == "voxels"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_compressed_and_raw_copies_are_equal(tmp_path, kind):
    data = make_array(kind)
    a = save(tmp_path / "a", kind, data, compress=True)
    b = save(tmp_path / "b", kind, data, compress=False)
    report = check_equality(a, b, jobs=SEQUENTIAL)
    assert report.equal, report.format()
    mags = [mag for _, mag in report.compared]
    assert Mag(1, 1, 1) in mags and len(mags) >= 2  # the pyramid was compared too
    assert report.format().startswith("equal")


@pytest.mark.parametrize("kind", list(KINDS))
def test_one_flipped_voxel_is_found_where_it_is(tmp_path, kind):
    data = make_array(kind)
    a = save(tmp_path / "a", kind, data, compress=kind not in ("uint16", "rgb"))
    b = tmp_path / "b"
    shutil.copytree(a, b)
    voxel = (OFFSET[0] + 67, OFFSET[1] + 3, OFFSET[2] + 36)  # near the far x and z edges
    flip_voxel(b / kind / "1", voxel)
    assert not np.array_equal(  # the copy really changed there (truth from bare libwkw)
        wkw.Dataset.open(str(a / kind / "1")).read(voxel, (1, 1, 1)),
        wkw.Dataset.open(str(b / kind / "1")).read(voxel, (1, 1, 1)),
    )

    report = check_equality(a, b, jobs=JobSettings("threads", 2))
    assert not report.equal
    [difference] = report.differences  # only mag 1 changed: the pyramid was copied as it was
    assert (difference.layer, difference.mag, difference.kind) == (kind, Mag(1, 1, 1), "voxels")
    assert difference.box == BoundingBox(voxel, (1, 1, 1))
    assert difference.voxels == 1
    text = report.format()
    assert kind in text and "mag 1" in text and ",".join(map(str, voxel)) + ",1,1,1" in text


def test_first_differing_file_box_and_count_over_many_files(tmp_path):
    data = make_array("uint16")
    a = save_small_files(tmp_path / "a", "uint16", data)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    later, first = (OFFSET[0] + 60, OFFSET[1] + 40, OFFSET[2] + 30), (OFFSET[0] + 4, OFFSET[1] + 1, OFFSET[2] + 20)
    second_in_first_file = (first[0] + 1, first[1] + 1, first[2])  # the same 16-voxel file as `first`
    for voxel in (later, first, second_in_first_file):
        flip_voxel(b / "uint16" / "1", voxel)
    assert len(Dataset.open(a).layers["uint16"].finest_mag.files()) > 20

    report = check_equality(a, b, jobs=JobSettings("threads", 3))
    [difference] = voxel_differences(report)
    # units run x fastest, then y, then z: `first` has the lower z file, so it comes first
    assert difference.box == BoundingBox(first, (2, 2, 1))  # tightened to both voxels of that file
    assert difference.voxels == 3
    assert "3 voxel(s) differ in 2 of" in difference.message



@pytest.mark.parametrize("small_blocks", [False, True], ids=["32-blocks", "8-blocks"])
def test_differing_blocks_are_listed_once_each(tmp_path, small_blocks):
    """Every differing block, each once, on the block grid of the compared mag (here
    against a brute-force mask of the two copies read with bare libwkw)."""
    data = make_array("uint16")
    write = save_small_files if small_blocks else (lambda p, k, d: save(p, k, d, pyramid=False))
    a = write(tmp_path / "a", "uint16", data)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    x0, y0, z0 = OFFSET
    flipped = [
        (x0, y0, z0),  # the box's corner
        (x0 + 1, y0, z0),  # the same block again
        (x0 + 69, y0 + 44, z0 + 36),  # the far corner
        (x0 + 30, y0 + 20, z0 + 20),
        (32, 32, 32),  # the first voxel of a block
        (31, 31, 31),  # the last voxel of the block before
    ]
    for voxel in flipped:
        flip_voxel(b / "uint16" / "1", voxel)

    [difference] = voxel_differences(check_equality(a, b, jobs=JobSettings("threads", 3)))
    block_len = 8 if small_blocks else 32
    assert difference.block_len == block_len
    assert difference.blocks.dtype.kind == "i" and difference.blocks.shape[1] == 3

    size = (data.shape[2], data.shape[1], data.shape[0])
    with wkw.Dataset.open(str(a / "uint16" / "1")) as ra, wkw.Dataset.open(str(b / "uint16" / "1")) as rb:
        mask = ra.read(OFFSET, size)[0] != rb.read(OFFSET, size)[0]  # (x, y, z)
    expected = np.unique((np.argwhere(mask) + OFFSET) // block_len, axis=0)
    assert len(expected) == len({tuple(v // block_len for v in voxel) for voxel in flipped})
    got = difference.blocks
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, expected.tolist()))
    assert [tuple(r) for r in got[:, ::-1].tolist()] == sorted(tuple(r) for r in got[:, ::-1].tolist())  # z, y, x
    # the report itself is as it was: blocks are not part of what makes two reports equal
    assert difference == type(difference)(**{**difference.__dict__, "blocks": None})


def test_difference_in_a_coarser_mag_is_reported_in_that_mags_voxels(tmp_path):
    data = make_array("uint8")
    a = save(tmp_path / "a", "uint8", data)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    mag = Mag(2, 2, 1)
    assert mag in Dataset.open(a).layers["uint8"].mags
    voxel = (OFFSET[0] // 2 + 10, OFFSET[1] // 2 + 5, OFFSET[2] + 7)
    flip_voxel(b / "uint8" / mag.folder_name(), voxel)

    report = check_equality(a, b, jobs=SEQUENTIAL)
    [difference] = report.differences
    assert (difference.mag, difference.box) == (mag, BoundingBox(voxel, (1, 1, 1)))
    assert "mag-1 voxels" in difference.message  # the same box in mag-1 voxels too
    # only mag 1 compared: equal
    assert check_equality(a, b, mag="1", jobs=SEQUENTIAL).equal


def test_different_bounding_boxes(tmp_path):
    data = make_array("uint32")
    a = save(tmp_path / "a", "uint32", data, pyramid=False)
    b = save(tmp_path / "b", "uint32", data, pyramid=False, offset=(OFFSET[0] + 1, OFFSET[1], OFFSET[2]))
    report = check_equality(a, b, jobs=SEQUENTIAL)
    kinds = [d.kind for d in report.differences]
    assert kinds == ["bounding box", "voxels"]
    box_difference = report.differences[0]
    assert "13,21,5,70,45,37" in box_difference.message and "14,21,5,70,45,37" in box_difference.message
    # the voxels, shifted by one in x, differ from the first column on
    assert report.differences[1].box.topleft[0] == OFFSET[0]


def test_same_voxels_but_a_larger_box_differs_only_in_the_box(tmp_path):
    data = make_array("uint8")
    a = save(tmp_path / "a", "uint8", data, pyramid=False)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    dataset = Dataset.open(b)
    layer = dataset.layers["uint8"]
    layer.bounding_box = BoundingBox(layer.bounding_box.topleft, (80, 45, 37))  # zeros beyond the data
    dataset.save_properties()
    report = check_equality(a, b, jobs=SEQUENTIAL)
    assert [d.kind for d in report.differences] == ["bounding box"]


def test_missing_mag_and_missing_layer(tmp_path):
    image, labels = make_array("uint8"), make_array("uint32")
    voxel = (11.24, 11.24, 25.0)
    layers = [
        ArrayLayer("color", "color", [image], voxel, offset=OFFSET),
        ArrayLayer("segmentation", "segmentation", [labels], voxel, offset=OFFSET),
    ]
    a = save_dataset(tmp_path / "a", layers)
    b = save_dataset(tmp_path / "b", layers[:1])
    dataset = Dataset.open(b)
    color = dataset.layers["color"]
    coarsest = list(color.mags)[-1]
    color.properties.mags = [entry for entry in color.properties.mags if entry.mag != coarsest]
    dataset.save_properties()
    shutil.rmtree(b / "color" / coarsest.folder_name())

    report = check_equality(a, b, jobs=SEQUENTIAL)
    found = {(d.layer, d.mag, d.kind) for d in report.differences}
    assert found == {("color", coarsest, "missing mag"), ("segmentation", None, "missing layer")}
    assert "segmentation" in report.format() and coarsest.folder_name() in report.format()
    # one layer, the mags both have: equal
    assert not check_equality(a, b, layer_name="color", jobs=SEQUENTIAL).equal  # still the missing mag
    assert check_equality(a, b, layer_name="color", mag=1, jobs=SEQUENTIAL).equal
    missing = check_equality(a, b, layer_name="segmentation", jobs=SEQUENTIAL)
    assert [d.kind for d in missing.differences] == ["missing layer"]


def test_element_class_difference_skips_voxels(tmp_path):
    data = make_array("uint8")
    a = save(tmp_path / "a", "uint8", data, pyramid=False, name="color")
    b = save(tmp_path / "b", "uint16", data.astype(np.uint16), pyramid=False, name="color")
    report = check_equality(a, b, jobs=SEQUENTIAL)
    assert [d.kind for d in report.differences] == ["element class"]
    assert "uint8" in report.differences[0].message and "uint16" in report.differences[0].message


def test_voxel_size_difference(tmp_path):
    data = make_array("uint8")
    a = save(tmp_path / "a", "uint8", data, pyramid=False)
    b = save(tmp_path / "b", "uint8", data, pyramid=False, voxel=(11.24, 11.24, 30.0))
    report = check_equality(a, b, jobs=SEQUENTIAL)
    assert [(d.layer, d.kind) for d in report.differences] == [(None, "voxel size")]


def test_our_pyramid_equals_the_reference_written_dataset(tmp_path, wkw_copy):
    """The reference tooling's dataset against the same voxels written and downsampled here."""
    reference = wkw_copy("webknossos_written")
    index = np.arange(70 * 60 * 40).reshape(70, 60, 40)  # C order over (x, y, z)
    color = ((index * 7) % 60000).astype(np.uint16).transpose(2, 1, 0)
    labels = (index // 4000).astype(np.uint32).transpose(2, 1, 0)
    voxel = (11.24, 11.24, 25.0)
    ours = save_dataset(
        tmp_path / "ours",
        [
            ArrayLayer("color", "color", [color], voxel, offset=(7, 9, 3)),
            ArrayLayer("segmentation", "segmentation", [labels], voxel, offset=(7, 9, 3)),
        ],
        compress=False,
    )
    for mag in ("1", "2-2-1", "4-4-2"):
        report = check_equality(reference, ours, mag=mag, jobs=SEQUENTIAL)
        assert report.equal, report.format()
        assert {layer for layer, _ in report.compared} == {"color", "segmentation"}


def test_processes_strategy(tmp_path):
    data = make_array("float32")
    a = save_small_files(tmp_path / "a", "float32", data)
    b = save_small_files(tmp_path / "b", "float32", data, compress=False)
    assert check_equality(a, b, jobs=JobSettings("processes", 2)).equal


def test_nan_equals_nan(tmp_path):
    data = make_array("float32")
    data[3, 4, 5] = np.nan
    a = save(tmp_path / "a", "float32", data, pyramid=False)
    b = save(tmp_path / "b", "float32", data, pyramid=False, compress=False)
    assert check_equality(a, b, jobs=SEQUENTIAL).equal


def test_cancel_from_the_progress_callback(tmp_path):
    data = make_array("uint8")
    a = save_small_files(tmp_path / "a", "uint8", data)
    b = save_small_files(tmp_path / "b", "uint8", data, compress=False)
    token = CancelToken()
    seen = []

    def progress(done, total, label):
        seen.append((done, total))
        if done >= 1:
            token.cancel()

    with pytest.raises(CancelledError):
        check_equality(a, b, jobs=SEQUENTIAL, progress=progress, cancel=token)
    assert max(done for done, _ in seen) < seen[0][1]  # stopped before the last unit


def test_bad_input(tmp_path):
    data = make_array("uint8")
    a = save(tmp_path / "a", "uint8", data, pyramid=False)
    with pytest.raises(WKWError, match="does not exist"):
        check_equality(a, tmp_path / "missing")
    with pytest.raises(WKWError, match="no layer 'nope'"):
        check_equality(a, a, layer_name="nope")
    with pytest.raises(WKWError, match="mag 8"):
        check_equality(a, a, mag="8")
