"""EditableVolume behaves like a numpy array under napari's reads and paints, keeps edits in
blocks and never writes to its base."""

from __future__ import annotations

import numpy as np
import pytest

from napari_wkw.core import BoundingBox
from napari_wkw.core.annotation import Annotation
from napari_wkw.core.editable import BLOCK, EditableVolume

from ..annotation_files import L4_PAINTED, L4_SAMPLE


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 5, (70, 90, 100)).astype(np.uint32)
    return EditableVolume(base.copy()), base.copy(), base


@pytest.mark.parametrize(
    "key",
    [
        5,
        -1,
        (slice(3, 40, 2), 7),
        (Ellipsis, 3),
        (slice(None), slice(10, 80), slice(5, 95, 3)),
        (1, 2, 3),
        (-1, -2, -3),
        (slice(60, None), slice(None, 5)),
        (slice(4, 4),),
    ],
)
def test_basic_reads_equal_numpy(pair, key):
    volume, reference, _ = pair
    np.testing.assert_array_equal(np.asarray(volume[key]), reference[key])


def test_paints_and_reads_like_numpy_and_keep_the_base(pair):
    volume, reference, base = pair
    untouched = base.copy()
    volume.base = base  # the base the edits must never reach
    rng = np.random.default_rng(1)
    for _ in range(30):  # napari's brush: index arrays
        index = tuple(rng.integers(0, s, 300) for s in reference.shape)
        values = rng.integers(0, 100, 300).astype(np.uint32)
        reference[index] = values
        volume[index] = values
        np.testing.assert_array_equal(volume[index], reference[index])
    reference[10:50, 3:77:2, 40] = 9  # slices, as napari's fill writes a region
    volume[10:50, 3:77:2, 40] = 9
    reference[3] = 4
    volume[3] = 4
    np.testing.assert_array_equal(np.asarray(volume), reference)
    np.testing.assert_array_equal(base, untouched)
    assert volume.edited_bytes == len(volume.blocks) * BLOCK**3 * 4


def test_without_a_base_it_is_zeros_that_take_paint():
    volume = EditableVolume(None, shape=(40, 40, 40), dtype=np.uint16)
    assert volume.dtype == np.uint16 and not np.asarray(volume).any()
    volume[(np.array([1, 2]), np.array([3, 4]), np.array([5, 39]))] = 7
    assert int(np.asarray(volume).sum()) == 14 and len(volume.blocks) == 2


def test_bad_indices_are_index_errors():
    volume = EditableVolume(None, shape=(4, 4, 4), dtype=np.uint8)
    with pytest.raises(IndexError):
        volume[9]
    with pytest.raises(IndexError):
        volume[::-1]
    with pytest.raises(IndexError):
        volume[(np.array([True]), np.array([True]), np.array([True]))]


def test_painting_over_an_annotation_reads_the_zip_only_where_it_must():
    with Annotation.open(L4_SAMPLE) as annotation:
        box = BoundingBox(*L4_PAINTED)
        base = annotation.volume().layer.finest_mag.view(box)
        volume = EditableVolume(base)
        before = np.asarray(volume[5])
        volume[5, 100:110, 200:210] = 42
        after = np.asarray(volume[5])
        expected = before.copy()
        expected[100:110, 200:210] = 42
        np.testing.assert_array_equal(after, expected)
        assert len(volume.blocks) == 1
        np.testing.assert_array_equal(np.asarray(base[5]), before)  # the annotation is not written
