"""merge_annotation on real data: every voxel of mag 1 against numpy, coarser mags against
the mode of the merged finer mag, copies and originals byte for byte, cancel and rerun."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from napari_wkw.core.annotation import Annotation
from napari_wkw.core.annotation_write import VolumeToWrite, write_volume_annotation
from napari_wkw.core.dataset import Dataset
from napari_wkw.core.downsample import build_pyramid, downsample_data, read_edge_padded
from napari_wkw.core.errors import CancelledError, WKWError, WKWWarning
from napari_wkw.core.geometry import BoundingBox, Mag
from napari_wkw.core.nml import Nml, Parameters, nml_bytes, read_nml
from napari_wkw.core.progress import CancelToken
from napari_wkw.core.save import ArrayLayer, save_dataset
from napari_wkw.jobs.runner import JobSettings
from napari_wkw.ops.merge_annotation import merge_annotation

from ..annotation_files import L4_PAINTED, L4_SAMPLE, annotation_zip, wkw_bucket_zip
from ..conftest import DATA

VOXEL = (11.24, 11.24, 25.0)
SEG = "segmentation"
#: the mag-1 region the checks read: covers every layer and bucket here, divides by every mag
REGION = BoundingBox((0, 0, 0), (256, 128, 128))
MAG1 = Mag(1, 1, 1)


# ---- data -----------------------------------------------------------------------------------


def copy_dataset(tmp_path: Path, name: str = "ds", source: str = "webknossos_written") -> Path:
    """tests/data/wkw/webknossos_written: segmentation uint32, box (7, 9, 3)+(70, 60, 40),
    mags 1, 2-2-1, 4-4-2, LZ4HC, one 128^3 file per mag."""
    target = tmp_path / name
    shutil.copytree(DATA / "wkw" / source, target)
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def painted(shape=(64, 96, 160)) -> np.ndarray:
    """Labels at (0, 0, 0): inside the layer's box, beyond it (x >= 77, into the new file at
    x 128), and a bucket holding one voxel; every painted bucket holds zeros too."""
    labels = np.zeros(shape, np.uint32)
    labels[5:20, 10:30, 12:40] = 100
    labels[40:50, 40:60, 100:160] = 200
    labels[33, 70, 50] = 7
    return labels


def annotate(path: Path, labels: np.ndarray, offset=(0, 0, 0), *, fallback=None, voxel_size=VOXEL, name="Volume"):
    volume = VolumeToWrite(labels, tuple(offset), name=name, fallback_layer=fallback)
    return write_volume_annotation(path, volume, voxel_size=voxel_size)


def placed(labels: np.ndarray, offset, region: BoundingBox = REGION) -> np.ndarray:
    """``labels`` at ``offset`` inside a zero array of ``region``."""
    out = np.zeros(region.size[::-1], labels.dtype)
    box = BoundingBox(tuple(offset), labels.shape[::-1])
    out[box.zyx_slices(region.topleft)] = labels
    return out


def blocks_any(mask: np.ndarray, factor) -> np.ndarray:
    """Per group of ``factor`` (x, y, z) voxels: whether any is set."""
    fx, fy, fz = factor
    z, y, x = mask.shape
    return mask.reshape(z // fz, fz, y // fy, fy, x // fx, fx).any(axis=(1, 3, 5))


def grown(mask: np.ndarray, n: int) -> np.ndarray:
    """Every voxel of an ``n``-block that holds a set voxel."""
    coarse = blocks_any(mask, (n, n, n))
    return coarse.repeat(n, 0).repeat(n, 1).repeat(n, 2)


def buckets_of(ann: np.ndarray) -> np.ndarray:
    """The voxels of every 32^3 bucket that holds a label (what the annotation stores)."""
    return grown(ann != 0, 32)


def expected_mag1(old: np.ndarray, ann: np.ndarray, mode: str) -> np.ndarray:
    if mode == "bucket":
        return np.where(buckets_of(ann), ann, old)
    return np.where(ann != 0, ann, old)


def levels(dataset: Path, layer: str = SEG, region: BoundingBox = REGION) -> dict[Mag, np.ndarray]:
    opened = Dataset.open(dataset).layers[layer]
    return {mag: view.read(region.in_mag(mag)) for mag, view in opened.mags.items()}


def check_pyramid(
    dataset: Path, before: dict[Mag, np.ndarray], touched: np.ndarray, layer: str = SEG, region: BoundingBox = REGION
) -> None:
    """Each coarser mag equals the mode of the merged mag before it in the blocks the merge
    reaches (chained from the mag-1 buckets, inside the layer's box) and is unchanged elsewhere."""
    opened = Dataset.open(dataset).layers[layer]
    box = opened.bounding_box
    mags = list(opened.mags)
    for finer, coarser in zip(mags, mags[1:]):
        factor = tuple(c // f for c, f in zip(coarser.xyz, finer.xyz))
        touched = grown(blocks_any(touched, factor), opened.mags[coarser].header.block_len)
        part = region.in_mag(coarser)
        inside = np.zeros(part.size[::-1], bool)
        inside[box.in_mag(coarser).intersection(part).zyx_slices(part.topleft)] = True
        mask = touched & inside
        source = BoundingBox(
            tuple(a * f for a, f in zip(part.topleft, factor)), tuple(s * f for s, f in zip(part.size, factor))
        )
        expected = downsample_data(read_edge_padded(opened.mags[finer], source, box.in_mag(finer)), factor, "mode")
        now = opened.mags[coarser].read(part)
        assert mask.any()
        np.testing.assert_array_equal(now[mask], expected[mask])
        np.testing.assert_array_equal(now[~mask], before[coarser][~mask])


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def digest(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in file_bytes(folder).items()}


def small_files_dataset(path: Path, seed: int = 4, block_len: int = 32, file_len: int = 1) -> np.ndarray:
    """A segmentation of 32^3-voxel files (4 x 4 x 2 at mag 1, unless told otherwise), box
    (0, 0, 0)+(128, 128, 64), mags 1, 2-2-1, 4-4-2 built by mode, LZ4."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(1, 40, (8, 16, 16)).astype(np.uint32).repeat(8, 0).repeat(8, 1).repeat(8, 2)
    dataset = Dataset.create(path, VOXEL)
    layer = dataset.add_layer(SEG, "segmentation", np.uint32, bounding_box=BoundingBox((0, 0, 0), (128, 128, 64)))
    layer.add_mag(1, file_len=file_len, block_len=block_len).write((0, 0, 0), labels)
    layer.properties.largest_segment_id = int(labels.max())
    build_pyramid(layer, coarsest=Mag(4, 4, 4))
    dataset.save_properties()
    return labels


def two_volumes(tmp_path: Path, labels: np.ndarray) -> Path:
    """An annotation holding volumes 'A' and 'B', each with its data ZIP."""
    nmls, inners = [], []
    for index, name in enumerate("AB"):
        single = annotate(tmp_path / f"{name}.zip", labels, name=name)
        with zipfile.ZipFile(single) as archive:
            nmls.append(read_nml(archive.read(f"{name}.nml")))
            inners.append((f"data_{index}_{name}.zip", archive.read(f"data_0_{name}.zip")))
    nml = nmls[0]
    second = nmls[1].volumes[0]
    second.id, second.location = 1, inners[1][0]
    nml.volumes.append(second)
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("two.nml", nml_bytes(nml))
        for name, data in inners:
            archive.writestr(name, data)
    return path


# ---- merging --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fallback", "mode", "used"),
    [("segmentation", "auto", "bucket"), (None, "auto", "voxel"), (None, "bucket", "bucket"), (SEG, "voxel", "voxel")],
)
def test_every_voxel_of_every_mag(tmp_path, fallback, mode, used):
    dataset = copy_dataset(tmp_path)
    labels = painted()
    path = annotate(tmp_path / "a.zip", labels, fallback=fallback)
    before = levels(dataset)
    result = merge_annotation(path, dataset, SEG, mode=mode, jobs=JobSettings("threads", 2))
    assert result.mode == used
    assert ("fallback layer 'segmentation'" in result.mode_reason) == (mode == "auto" and fallback is not None)
    ann = placed(labels, (0, 0, 0))
    after = levels(dataset)
    np.testing.assert_array_equal(after[MAG1], expected_mag1(before[MAG1], ann, used))
    check_pyramid(dataset, before, buckets_of(ann))
    # five buckets; mag 1 gains the file at x 128 (buckets up to x 160), each coarser mag one file
    assert (result.buckets, result.files_rewritten) == (5, 4)
    assert result.mags_updated == [MAG1, Mag(2, 2, 1), Mag(4, 4, 2)]
    box = BoundingBox((0, 0, 0), (160, 96, 64))  # (7, 9, 3)+(70, 60, 40) grown to the buckets
    assert result.bounding_box == box and result.largest_segment_id == 200
    layer = Dataset.open(dataset).layers[SEG]
    assert layer.bounding_box == box and layer.properties.largest_segment_id == 200
    assert not list(dataset.rglob(".*"))


def test_merging_twice_changes_nothing(tmp_path):
    """The merge is idempotent: what a rerun after a kill relies on."""
    dataset = copy_dataset(tmp_path)
    path = annotate(tmp_path / "a.zip", painted(), fallback=SEG)
    merge_annotation(path, dataset, SEG)
    once = file_bytes(dataset)
    merge_annotation(path, dataset, SEG)
    again = file_bytes(dataset)
    assert once.keys() == again.keys()
    after = levels(dataset)
    merge_annotation(path, dataset, SEG, mode="voxel")  # the bucket merge's result holds the annotation
    assert all(np.array_equal(after[mag], data) for mag, data in levels(dataset).items())


def test_into_leaves_the_layer_byte_identical(tmp_path):
    dataset = copy_dataset(tmp_path)
    reference = copy_dataset(tmp_path, "reference")
    path = annotate(tmp_path / "a.zip", painted(), fallback=SEG)
    before = digest(dataset / SEG)
    properties = (dataset / "datasource-properties.json").read_text()
    result = merge_annotation(path, dataset, SEG, into="merged")
    assert result.layer == "merged"
    assert digest(dataset / SEG) == before
    merge_annotation(path, reference, SEG)
    merged = levels(dataset, "merged")
    for mag, data in levels(reference).items():
        np.testing.assert_array_equal(merged[mag], data)
    opened = Dataset.open(dataset)
    assert opened.layers[SEG].properties == Dataset.open(copy_dataset(tmp_path, "pristine")).layers[SEG].properties
    new = opened.layers["merged"]
    assert [entry.path for entry in new.properties.mags] == ["./merged/1", "./merged/2-2-1", "./merged/4-4-2"]
    assert new.bounding_box == result.bounding_box and new.properties.largest_segment_id == 200
    assert new.properties.extra == opened.layers[SEG].properties.extra
    assert properties != (dataset / "datasource-properties.json").read_text()
    assert not [p for p in dataset.iterdir() if p.name.startswith(".")]


def test_into_hard_links_the_files_it_does_not_touch(tmp_path):
    dataset = tmp_path / "ds"
    small_files_dataset(dataset)
    labels = np.zeros((32, 32, 32), np.uint32)
    labels[3:9, 4:20, 5:30] = 77
    path = annotate(tmp_path / "a.zip", labels, (32, 64, 0))
    before = digest(dataset / SEG)
    merge_annotation(path, dataset, SEG, into="merged")
    assert digest(dataset / SEG) == before
    touched = {"1": "z0/y2/x1.wkw", "2-2-1": "z0/y1/x0.wkw", "4-4-2": "z0/y0/x0.wkw"}
    for mag, name in touched.items():
        for old in sorted((dataset / SEG / mag).glob("z*/y*/x*.wkw")):
            rel = old.relative_to(dataset / SEG / mag).as_posix()
            new = dataset / "merged" / mag / rel
            assert (old.stat().st_ino == new.stat().st_ino) == (rel != name), (mag, rel)
    merged = Dataset.open(dataset).layers["merged"].mags[MAG1].read(BoundingBox((32, 64, 0), (32, 32, 32)))
    np.testing.assert_array_equal(merged[labels != 0], 77)


@pytest.mark.parametrize(("block_len", "file_len"), [(8, 2), (16, 4), (64, 2)])
def test_blocks_and_files_of_other_sizes_than_buckets(tmp_path, block_len, file_len):
    """Blocks smaller than buckets (a bucket re-encodes several), files smaller than a bucket
    (a bucket spans several files), blocks larger than buckets (a block mixes painted and old
    voxels in bucket mode too)."""
    dataset = tmp_path / "ds"
    small_files_dataset(dataset, block_len=block_len, file_len=file_len)
    region = BoundingBox((0, 0, 0), (256, 256, 128))
    labels = painted()
    path = annotate(tmp_path / "a.zip", labels)
    before = levels(dataset, region=region)
    result = merge_annotation(path, dataset, SEG, mode="bucket", jobs=JobSettings("threads", 2))
    ann = placed(labels, (0, 0, 0), region)
    np.testing.assert_array_equal(levels(dataset, region=region)[MAG1], expected_mag1(before[MAG1], ann, "bucket"))
    check_pyramid(dataset, before, buckets_of(ann), region=region)
    assert result.bounding_box == BoundingBox((0, 0, 0), (160, 128, 64))


def test_the_real_l4_annotation(tmp_path):
    """The WEBKNOSSOS download (zarr3, voxel size 11.239999771118164, no fallback layer) into a
    dataset at 11.24 nm covering its buckets: voxel mode, id 1 painted over the existing ids."""
    corner, size = L4_PAINTED
    box = BoundingBox(corner, size)
    x = np.arange(size[0])[None, None, :] // 50
    y = np.arange(size[1])[None, :, None] // 40
    z = np.arange(size[2])[:, None, None] // 8
    labels = (x + 20 * y + 400 * z + 2).astype(np.uint32)
    layer = ArrayLayer(SEG, "segmentation", [labels], (11.24, 11.24, 28.0), offset=corner)
    dataset = save_dataset(tmp_path / "l4", [layer])
    result = merge_annotation(L4_SAMPLE, dataset, SEG)
    assert (result.mode, result.buckets) == ("voxel", 111)
    with Annotation.open(L4_SAMPLE) as annotation:
        ann = annotation.volumes[0].layer.mags[MAG1].read(box)
    opened = Dataset.open(dataset).layers[SEG]
    np.testing.assert_array_equal(opened.mags[MAG1].read(box), np.where(ann != 0, ann, labels))
    assert opened.bounding_box == box and opened.properties.largest_segment_id == int(labels.max())
    mags = list(opened.mags)
    assert len(mags) > 2
    for finer, coarser in zip(mags, mags[1:]):  # the pyramid is the mode of the merged mag 1 all over
        factor = tuple(c // f for c, f in zip(coarser.xyz, finer.xyz))
        target = box.in_mag(coarser)
        source = BoundingBox(
            tuple(a * f for a, f in zip(target.topleft, factor)), tuple(s * f for s, f in zip(target.size, factor))
        )
        expected = downsample_data(read_edge_padded(opened.mags[finer], source, box.in_mag(finer)), factor, "mode")
        np.testing.assert_array_equal(opened.mags[coarser].read(target), expected)


def test_a_raw_target_is_written_in_place(tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.integers(1, 30, (5, 9, 13)).astype(np.uint32).repeat(8, 0).repeat(8, 1).repeat(8, 2)[:40, :70, :100]
    dataset = save_dataset(
        tmp_path / "raw", [ArrayLayer(SEG, "segmentation", [labels], VOXEL, offset=(10, 20, 5))], compress=False
    )
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    painting = painted()
    path = annotate(tmp_path / "a.zip", painting)
    before = levels(dataset)
    old = digest(dataset / SEG)
    merge_annotation(path, dataset, SEG, into="merged")
    assert digest(dataset / SEG) == old  # the copy's raw files were copied, not linked
    result = merge_annotation(path, copy, SEG)
    assert result.mode == "voxel"
    ann = placed(painting, (0, 0, 0))
    np.testing.assert_array_equal(levels(copy)[MAG1], expected_mag1(before[MAG1], ann, "voxel"))
    check_pyramid(copy, before, buckets_of(ann))
    for mag, data in levels(dataset, "merged").items():
        np.testing.assert_array_equal(data, levels(copy)[mag])
    for mag_folder in (copy / SEG).iterdir():
        for data_file in mag_folder.glob("z*/y*/x*.wkw"):
            assert data_file.read_bytes()[5] == 1  # still raw


def test_processes_give_what_threads_give(tmp_path):
    first, second = copy_dataset(tmp_path, "a"), copy_dataset(tmp_path, "b")
    path = annotate(tmp_path / "a.zip", painted(), fallback=SEG)
    merge_annotation(path, first, SEG, jobs=JobSettings("processes", 2))
    merge_annotation(path, second, SEG, jobs=JobSettings("sequential"))
    ours = levels(first)
    for mag, data in levels(second).items():
        np.testing.assert_array_equal(ours[mag], data)


def test_wkw_bucket_annotation(tmp_path):
    """The older WKW-bucket data ZIP (one LZ4 file per bucket) merges like zarr3."""
    dataset = copy_dataset(tmp_path)
    labels = painted()
    path = annotation_zip(tmp_path / "w.zip", wkw_bucket_zip(tmp_path / "w", labels, (0, 0, 0)), largest=200)
    before = levels(dataset)
    assert merge_annotation(path, dataset, SEG, mode="bucket").buckets == 5
    ann = placed(labels, (0, 0, 0))
    np.testing.assert_array_equal(levels(dataset)[MAG1], expected_mag1(before[MAG1], ann, "bucket"))
    check_pyramid(dataset, before, buckets_of(ann))


def test_a_fallback_layer_of_another_name_is_said(tmp_path):
    dataset = copy_dataset(tmp_path)
    path = annotate(tmp_path / "a.zip", painted(), fallback="other_segmentation")
    with pytest.warns(WKWWarning, match="edits fallback layer 'other_segmentation', merging it into layer"):
        assert merge_annotation(path, dataset, SEG).mode == "bucket"


def test_choosing_one_of_two_volumes(tmp_path):
    dataset = copy_dataset(tmp_path)
    path = two_volumes(tmp_path, painted())
    assert merge_annotation(path, dataset, SEG, volume_name="B").volume == "B"


# ---- cancel and rerun -----------------------------------------------------------------------


def test_cancelled_merge_leaves_each_file_old_or_merged_and_a_rerun_completes(tmp_path):
    dataset, reference = tmp_path / "ds", tmp_path / "reference"
    original = small_files_dataset(dataset)
    small_files_dataset(reference)
    rng = np.random.default_rng(9)
    labels = np.where(rng.random((64, 128, 128)) < 0.2, rng.integers(100, 120, (64, 128, 128)), 0).astype(np.uint32)
    path = annotate(tmp_path / "a.zip", labels)  # every one of the 32 buckets painted
    merge_annotation(path, reference, SEG)
    merged = levels(reference)[MAG1]
    properties = (dataset / "datasource-properties.json").read_text()
    token = CancelToken()
    seen = []

    def progress(done, total, label):
        seen.append((done, total, label))
        if label.startswith("merging") and done >= 5:
            token.cancel()

    with pytest.raises(CancelledError):
        merge_annotation(path, dataset, SEG, cancel=token, progress=progress, jobs=JobSettings("threads", 2))
    assert seen[0][1] == 32
    now = levels(dataset)[MAG1]
    states = set()
    for file_box in BoundingBox((0, 0, 0), (128, 128, 64)).chunks((32, 32, 32)):
        part = file_box.zyx_slices()
        if np.array_equal(now[part], merged[part]):
            states.add("merged")
        else:
            np.testing.assert_array_equal(now[part], original[part])
            states.add("old")
    assert states == {"old", "merged"}
    assert (dataset / "datasource-properties.json").read_text() == properties
    merge_annotation(path, dataset, SEG)
    for mag, data in levels(reference).items():
        np.testing.assert_array_equal(levels(dataset)[mag], data)
    assert Dataset.open(dataset).layers[SEG].properties == Dataset.open(reference).layers[SEG].properties


def test_a_cancelled_merge_into_a_new_layer_leaves_nothing(tmp_path):
    dataset = copy_dataset(tmp_path)
    path = annotate(tmp_path / "a.zip", painted())
    before = digest(dataset)
    token = CancelToken()

    def progress(done, total, label):
        if label.startswith("updating"):
            token.cancel()

    with pytest.raises(CancelledError):
        merge_annotation(path, dataset, SEG, into="merged", cancel=token, progress=progress)
    assert digest(dataset) == before
    assert sorted(p.name for p in dataset.iterdir()) == ["color", "datasource-properties.json", SEG]


# ---- refusals -------------------------------------------------------------------------------


def _uint16_dataset(tmp_path):
    labels = np.ones((8, 8, 8), np.uint16)
    return save_dataset(tmp_path / "u16", [ArrayLayer(SEG, "segmentation", [labels], VOXEL)], pyramid=False)


def _not_mag1(tmp_path):
    data = wkw_bucket_zip(tmp_path / "m", painted(), (0, 0, 0), mags=((2, 2, 1),))
    return annotation_zip(tmp_path / "m.zip", data)


def _skeleton(tmp_path):
    path = tmp_path / "skeleton.nml"
    path.write_bytes(nml_bytes(Nml(parameters=Parameters(dataset_name="d", voxel_size=VOXEL))))
    return path


BAD = {
    "no annotation": (lambda t, d: {"annotation": t / "nope.zip"}, "nope.zip: no such annotation file"),
    "no dataset": (lambda t, d: {"dataset": t / "nods"}, "nods: no such dataset"),
    "no layer": (lambda t, d: {"layer_name": "nope"}, "no layer 'nope' (layers: color, segmentation)"),
    "color layer": (
        lambda t, d: {"layer_name": "color"},
        "layer 'color' is a color layer; an annotation merges into a segmentation",
    ),
    "zarr layer": (
        lambda t, d: {"dataset": shutil.copytree(DATA / "zarr3" / "webknossos_zarr3", t / "z")},
        "layer 'segmentation' is stored as zarr3",
    ),
    "voxel size": (
        lambda t, d: {"annotation": annotate(t / "v.zip", painted(), voxel_size=(11.24, 11.24, 28))},
        "voxel size 11.24, 11.24, 28 differs from 11.24, 11.24, 25 of the dataset",
    ),
    "two volumes": (
        lambda t, d: {"annotation": two_volumes(t, painted())},
        "holds 2 volume layers ('A', 'B'); choose one with --volume-name",
    ),
    "no such volume": (lambda t, d: {"volume_name": "C"}, "no volume layer 'C' (volume layers: Volume)"),
    "skeleton only": (lambda t, d: {"annotation": _skeleton(t)}, "holds no volume layer (a skeleton-only annotation)"),
    "nothing painted": (
        lambda t, d: {"annotation": annotate(t / "e.zip", np.zeros((8, 8, 8), np.uint32))},
        "volume 'Volume' holds no painted bucket",
    ),
    "not mag 1": (lambda t, d: {"annotation": _not_mag1(t)}, "starts at mag 2-2-1; merging needs its mag 1"),
    "ids too large": (
        lambda t, d: {
            "dataset": _uint16_dataset(t),
            "annotation": annotate(t / "big.zip", np.full((4, 4, 4), 70000, np.uint32)),
        },
        "holds segment ids up to 70000, more than layer 'segmentation' (uint16) can store (65535)",
    ),
    "into exists": (lambda t, d: {"into": "color"}, "layer 'color' exists already; --into names a new layer"),
    "into stray folder": (
        lambda t, d: {"into": (d / "stray").mkdir() or "stray"},
        "stray: exists but is not a listed layer (left by an interrupted merge?)",
    ),
    "into bad name": (lambda t, d: {"into": "a/b"}, "--into 'a/b': a layer name may hold only letters"),
    "mode": (lambda t, d: {"mode": "paint"}, "mode must be one of auto, bucket, voxel, not 'paint'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_before_anything_is_written(tmp_path, case):
    dataset = copy_dataset(tmp_path)
    arguments = {"annotation": annotate(tmp_path / "a.zip", painted()), "dataset": dataset, "layer_name": SEG}
    change, message = BAD[case]
    arguments.update(change(tmp_path, dataset))
    touched = Path(arguments["dataset"])
    before = digest(touched) if touched.exists() else None
    with pytest.raises(WKWError) as caught:
        merge_annotation(
            arguments.pop("annotation"), arguments.pop("dataset"), arguments.pop("layer_name"), **arguments
        )
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    if before is not None:
        assert digest(touched) == before


def test_an_id_the_nml_hides_is_refused_while_merging(tmp_path):
    """An NML whose largestSegmentId understates the data: the unit refuses the value and
    leaves its file as it was."""
    dataset = _uint16_dataset(tmp_path)
    labels = np.zeros((8, 8, 8), np.uint32)
    labels[2, 3, 4] = 70000
    path = annotation_zip(tmp_path / "lie.zip", wkw_bucket_zip(tmp_path / "w", labels, (0, 0, 0)), largest=5)
    before = digest(dataset)
    with pytest.raises(WKWError, match="holds id 70000 near voxel .* which does not fit uint16 .*left as it was"):
        merge_annotation(path, dataset, SEG)
    assert digest(dataset) == before
