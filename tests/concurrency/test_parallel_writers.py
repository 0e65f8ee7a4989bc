"""Several processes writing disjoint, unaligned boxes of one layer through ``MagView.write``
at the same time: no box is lost and no file is corrupt.

Compressed files are rebuilt whole and renamed into place, raw files get partly covered
blocks merged by libwkw: without the per-file lock two writers of one file lose each
other's boxes.
"""

from __future__ import annotations

import multiprocessing
import random
from pathlib import Path

import numpy as np
import pytest
import wkw

from napari_wkw.core.dataset import Dataset, MagView
from napari_wkw.core.geometry import BoundingBox, Mag
from napari_wkw.core.wkw_file import BLOCK_LZ4, BLOCK_RAW, check_data_file, file_path

PROCESSES = 8
MAG = Mag(2, 2, 1)
#: cut positions along x, y, z: nothing aligned to the 8-voxel blocks or 32-voxel files
CUTS = ([0, 5, 19, 30, 41, 58, 70, 83, 97], [0, 7, 22, 33, 47, 61, 75, 90], [0, 3, 17, 29, 37, 50])


def boxes() -> list[BoundingBox]:
    found = []
    xs, ys, zs = CUTS
    for z0, z1 in zip(zs, zs[1:]):
        for y0, y1 in zip(ys, ys[1:]):
            for x0, x1 in zip(xs, xs[1:]):
                found.append(BoundingBox.from_bounds((x0, y0, z0), (x1, y1, z1)))
    return found


def content(index: int, box: BoundingBox) -> np.ndarray:
    """Voxels of box ``index``: its number in the high bits, a pattern in the low ones."""
    x, y, z = box.size
    pattern = np.arange(x * y * z, dtype=np.uint32).reshape(z, y, x) % 251
    return (np.uint32(index + 1) << np.uint32(16)) | pattern


def writer(dataset: str, indices: list[int], start) -> None:
    view = Dataset.open(dataset).layers["layer"].mags[MAG]
    all_boxes = boxes()
    start.wait()  # every process writes at the same time
    for index in indices:
        view.write(all_boxes[index].topleft, content(index, all_boxes[index]))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("block_type", [BLOCK_LZ4, BLOCK_RAW], ids=["lz4", "raw"])
def test_eight_processes_lose_no_box(tmp_path, block_type):
    dataset = Dataset.create(tmp_path / "ds", (1, 1, 1))
    layer = dataset.add_layer("layer", "segmentation", "uint32")
    view = layer.add_mag(MAG, block_type=block_type, file_len=4, block_len=8)  # files of 32 voxels
    dataset.save_properties()
    all_boxes = boxes()
    order = list(range(len(all_boxes)))
    random.Random(4).shuffle(order)  # neighbours of one file go to different processes
    shares = [order[i::PROCESSES] for i in range(PROCESSES)]

    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    workers = [context.Process(target=writer, args=(str(dataset.path), share, start)) for share in shares]
    for process in workers:
        process.start()
    for process in workers:
        process.join(100)
    assert [process.exitcode for process in workers] == [0] * PROCESSES

    region = BoundingBox((0, 0, 0), tuple(cuts[-1] for cuts in CUTS))
    expected = np.zeros(view.array_shape(region), np.uint32)
    for index, box in enumerate(all_boxes):
        expected[box.zyx_slices()] = content(index, box)
    checked = MagView.at(view.path)  # every file's header and length checked on the way
    got = checked.read(region)
    lost = [
        index
        for index, box in enumerate(all_boxes)
        if not np.array_equal(got[box.zyx_slices()], expected[box.zyx_slices()])
    ]
    assert not lost, f"{len(lost)} of {len(all_boxes)} boxes lost or damaged, e.g. {all_boxes[lost[0]]}"
    with wkw.Dataset.open(str(view.path)) as handle:  # libwkw reads the same
        np.testing.assert_array_equal(handle.read(region.topleft, region.size)[0].transpose(2, 1, 0), expected)
    for coords in checked.files():
        check_data_file(file_path(view.path, *coords), view.header)
    leftovers = [p.name for p in Path(view.path).rglob(".*")]
    assert not leftovers, f"staging or lock files left behind: {leftovers}"
