"""export_tiff: slices and tiles read back with tifffile against the voxels written."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import wkw

from napari_wkw.core.errors import CancelledError, TargetExistsError, WKWError
from napari_wkw.core.geometry import BoundingBox, Mag
from napari_wkw.core.progress import CancelToken
from napari_wkw.core.save import ArrayLayer, save_dataset
from napari_wkw.jobs.runner import JobSettings
from napari_wkw.ops.export_tiff import export_tiff

from .test_equality import KINDS, OFFSET, SEQUENTIAL, make_array, save, save_small_files

THREADS = JobSettings("threads", 3)


def read_wkw(mag_path, offset, size) -> np.ndarray:
    """Bare libwkw: (c, x, y, z) -> (z, y, x[, c])."""
    with wkw.Dataset.open(str(mag_path)) as handle:
        data = handle.read(offset, size)
    return data[0].transpose(2, 1, 0) if data.shape[0] == 1 else data.transpose(3, 2, 1, 0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_one_tiff_per_slice_keeps_the_voxels_and_their_type(tmp_path, kind):
    data = make_array(kind)
    dataset = save(tmp_path / "ds", kind, data, pyramid=False)
    files = export_tiff(dataset, tmp_path / "out", jobs=THREADS)

    z0 = OFFSET[2]
    expected = [tmp_path / "out" / f"{kind}_{z:06d}.tiff" for z in range(z0, z0 + data.shape[0])]
    assert files == expected
    assert sorted((tmp_path / "out").iterdir()) == expected  # nothing else (no partial files)
    for z, path in enumerate(files):
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages[0]
            image = page.asarray()
            if KINDS[kind][1] == 3:
                assert page.photometric == tifffile.PHOTOMETRIC.RGB
            else:
                assert page.photometric == tifffile.PHOTOMETRIC.MINISBLACK
        assert image.dtype == data.dtype
        np.testing.assert_array_equal(image, data[z])


def test_bbox_mag_and_name(tmp_path):
    data = make_array("uint16")
    dataset = save(tmp_path / "ds", "uint16", data)  # with 2-2-1 and 4-4-2
    box = BoundingBox((OFFSET[0] - 4, OFFSET[1] + 10, OFFSET[2] + 30), (50, 41, 12))  # sticks out of the layer
    files = export_tiff(dataset, tmp_path / "out", bbox=box, mag="2-2-1", name="part", jobs=THREADS)

    # x 9..59 -> 4..30 and y 31..72 -> 15..36 in mag 2-2-1 (outward rounding), z as it is
    in_mag = BoundingBox((4, 15, box.topleft[2]), (26, 21, 12))
    assert [f.name for f in files] == [f"part_{z:06d}.tiff" for z in range(box.topleft[2], box.bottomright[2])]
    truth = read_wkw(dataset / "uint16" / "2-2-1", in_mag.topleft, in_mag.size)
    for z, path in enumerate(files):
        np.testing.assert_array_equal(tifffile.imread(path), truth[z])
    assert tifffile.imread(files[-1])[:, 0].max() == 0  # left of the layer: zeros, no wrap-around


def test_tiles_in_a_z_y_x_tree(tmp_path):
    data = make_array("rgb")
    dataset = save(tmp_path / "ds", "rgb", data, pyramid=False)
    files = export_tiff(dataset, tmp_path / "out", tile_size=(32, 20), jobs=THREADS)

    depth, height, width = data.shape[:3]
    rows, columns = -(-height // 20), -(-width // 32)
    assert len(files) == depth * rows * columns
    for z in range(depth):
        folder = tmp_path / "out" / str(OFFSET[2] + z)
        assert sorted(int(p.name) for p in folder.iterdir()) == list(range(rows))
        stitched = np.concatenate(
            [
                np.concatenate([tifffile.imread(folder / str(y) / f"{x}.tiff") for x in range(columns)], axis=1)
                for y in range(rows)
            ],
            axis=0,
        )
        np.testing.assert_array_equal(stitched, data[z])
    edge = tifffile.imread(tmp_path / "out" / str(OFFSET[2]) / str(rows - 1) / f"{columns - 1}.tiff")
    assert edge.shape == (height - 20 * (rows - 1), width - 32 * (columns - 1), 3)  # cut to the box


def test_downsample_reads_the_coarser_mag_or_computes_it_the_same_way(tmp_path):
    data = make_array("uint8")
    with_pyramid = save(tmp_path / "a", "uint8", data)  # has 2-2-1
    without = save(tmp_path / "b", "uint8", data, pyramid=False)
    read = export_tiff(with_pyramid, tmp_path / "read", downsample=2, jobs=THREADS)
    computed = export_tiff(without, tmp_path / "computed", downsample=2, jobs=THREADS)

    box = BoundingBox(OFFSET, (70, 45, 37)).in_mag(Mag(2, 2, 1))
    truth = read_wkw(with_pyramid / "uint8" / "2-2-1", box.topleft, box.size)
    assert [p.name for p in read] == [p.name for p in computed]
    for z, (a, b) in enumerate(zip(read, computed)):
        np.testing.assert_array_equal(tifffile.imread(a), truth[z])
        np.testing.assert_array_equal(tifffile.imread(b), truth[z])
    # independent of both: an interior output pixel is the median of its 2 x 2 source pixels
    z, y, x = 4, 5, 6  # output pixel (mag 2-2-1 voxels) -> mag-1 x = 2 * (box x + 6)
    x1, y1 = 2 * (box.topleft[0] + x) - OFFSET[0], 2 * (box.topleft[1] + y) - OFFSET[1]
    group = data[z, y1 : y1 + 2, x1 : x1 + 2].astype(np.float64)
    assert tifffile.imread(computed[z])[y, x] == np.uint8(np.median(group))


def test_downsample_by_three_has_no_mag_so_is_computed(tmp_path):
    data = make_array("uint32")  # segmentation: the mode
    dataset = save(tmp_path / "ds", "uint32", data, pyramid=False)
    files = export_tiff(dataset, tmp_path / "out", downsample=3, jobs=SEQUENTIAL)
    image = tifffile.imread(files[0])
    x0, x1 = OFFSET[0] // 3, -(-(OFFSET[0] + 70) // 3)
    y0, y1 = OFFSET[1] // 3, -(-(OFFSET[1] + 45) // 3)
    assert image.shape == (y1 - y0, x1 - x0) and image.dtype == np.uint32
    # random labels: every 3 x 3 group has distinct values, and the mode's tie-break takes the first
    y, x = 4, 5
    sx, sy = 3 * (x0 + x) - OFFSET[0], 3 * (y0 + y) - OFFSET[1]
    assert image[y, x] == data[0, sy, sx]


def test_several_layers_go_to_their_own_folders(tmp_path):
    image, labels = make_array("uint8"), make_array("uint64")
    voxel = (1.0, 1.0, 1.0)
    dataset = save_dataset(
        tmp_path / "ds",
        [
            ArrayLayer("color", "color", [image], voxel, offset=OFFSET),
            ArrayLayer("segmentation", "segmentation", [labels], voxel, offset=OFFSET),
        ],
        pyramid=False,
    )
    files = export_tiff(dataset, tmp_path / "out", jobs=THREADS)
    assert len(files) == 2 * image.shape[0]
    z = OFFSET[2] + 3
    color = tifffile.imread(tmp_path / "out" / "color" / f"color_{z:06d}.tiff")
    segmentation = tifffile.imread(tmp_path / "out" / "segmentation" / f"segmentation_{z:06d}.tiff")
    np.testing.assert_array_equal(color, image[3])
    assert segmentation.dtype == np.uint64 and segmentation.max() > 2**60
    np.testing.assert_array_equal(segmentation, labels[3])


def test_slabs_follow_files_and_blocks(tmp_path):
    """A layer in 16-voxel files of 8-voxel blocks: slabs are 8 slices, the output is the same."""
    data = make_array("float32")
    dataset = save_small_files(tmp_path / "ds", "float32", data)
    labels = []
    files = export_tiff(
        dataset, tmp_path / "out", jobs=THREADS, progress=lambda done, total, label: labels.append(total)
    )
    assert labels[-1] == len(range(OFFSET[2] // 8 * 8, OFFSET[2] + data.shape[0], 8))  # one unit per slab
    for z, path in enumerate(files):
        np.testing.assert_array_equal(tifffile.imread(path), data[z])


def test_target_must_be_new_or_empty(tmp_path):
    dataset = save(tmp_path / "ds", "uint8", make_array("uint8"), pyramid=False)
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(TargetExistsError, match="not empty"):
        export_tiff(dataset, target)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    (tmp_path / "empty").mkdir()
    assert len(export_tiff(dataset, tmp_path / "empty", jobs=SEQUENTIAL)) == 37


def test_bad_input_writes_nothing(tmp_path):
    dataset = save(tmp_path / "ds", "uint8", make_array("uint8"), pyramid=False)
    target = tmp_path / "out"
    with pytest.raises(WKWError, match="does not exist"):
        export_tiff(tmp_path / "missing", target)
    with pytest.raises(WKWError, match="no layer 'nope'"):
        export_tiff(dataset, target, layer_name="nope")
    with pytest.raises(WKWError, match="no mag 2"):
        export_tiff(dataset, target, mag="2")
    with pytest.raises(WKWError, match="downsample"):
        export_tiff(dataset, target, downsample=0)
    assert not target.exists()


def test_cancel_after_the_first_unit(tmp_path):
    data = make_array("uint16")
    dataset = save_small_files(tmp_path / "ds", "uint16", data)
    token = CancelToken()

    def progress(done, total, label):
        if done >= 1:
            token.cancel()

    with pytest.raises(CancelledError):
        export_tiff(dataset, tmp_path / "out", jobs=SEQUENTIAL, progress=progress, cancel=token)
    # a cancelled export leaves nothing: no target, no hidden staging with some slices
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    written = export_tiff(dataset, tmp_path / "out", jobs=SEQUENTIAL)  # the rerun writes them all
    assert len(written) == data.shape[0] and all(path.exists() for path in written)
    for path in written:
        z = int(path.stem.split("_")[-1]) - OFFSET[2]
        np.testing.assert_array_equal(tifffile.imread(path), data[z])
