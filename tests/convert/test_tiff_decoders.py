"""LZW TIFF slices go through Pillow (libtiff, 2-4x faster here than tifffile + imagecodecs);
everything else stays with tifffile. Either way the voxels are tifffile's."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_wkw.convert.image_stack import open_image_stack
from napari_wkw.core import BoundingBox

from ..widgets.conftest import em_volume


def _stack(folder, planes, **options):
    folder.mkdir()
    for index, plane in enumerate(planes):
        tifffile.imwrite(folder / f"{index}.tif", plane, **options)
    return open_image_stack(folder)


def _sources(sources):
    (source,) = sources  # one layer
    return source


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("grey8", {"compression": "lzw"}),
        ("grey8", {"compression": "lzw", "predictor": True}),
        ("grey16", {"compression": "lzw"}),
        ("rgb", {"compression": "lzw"}),
    ],
)
def test_lzw_slices_are_decoded_by_pillow_with_the_same_voxels(tmp_path, kind, options):
    volume = em_volume(3, 96, 128)
    planes = {
        "grey8": volume,
        "grey16": volume.astype(np.uint16) * 257,
        "rgb": np.stack([volume, volume[:, ::-1], volume[:, :, ::-1]], axis=-1),
    }[kind]
    source = _sources(_stack(tmp_path / "slices", planes, **options))
    assert {f.decoder for f in source.files} == {"pillow"}
    read = source.read(BoundingBox((0, 0, 0), (128, 96, 3)))
    np.testing.assert_array_equal(read, np.stack([tifffile.imread(p) for p in sorted((tmp_path / "slices").iterdir())]))


@pytest.mark.parametrize("options", [{"compression": "zlib"}, {"compression": "packbits"}, {}])
def test_other_tiffs_stay_with_tifffile(tmp_path, options):
    source = _sources(_stack(tmp_path / "slices", em_volume(2, 64, 64), **options))
    assert {f.decoder for f in source.files} == {"tifffile"}


def test_a_multipage_lzw_file_stays_with_tifffile(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, em_volume(4, 64, 64), compression="lzw", photometric="minisblack")
    source = _sources(open_image_stack(path))
    assert [f.decoder for f in source.files] == ["tifffile"]
