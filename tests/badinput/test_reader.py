"""Every row of the catalogue through the napari reader, and a real viewer that survives it.

The reader either raises one error naming the file (napari shows it), or opens what it
can with a WKWWarning naming the file (shown as a notification), or declines a path
that is no WKW dataset or annotation; afterwards the viewer still takes new layers.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_wkw._reader import napari_get_reader
from napari_wkw.core.errors import WKWError, WKWWarning

from .catalogue import ROWS, Paths, Row, build

READ = [row for row in ROWS if row.reader.outcome != "n/a"]
CLAIMED = [row for row in READ if row.reader.outcome != "declines"]


def _read_voxels(layers: list[tuple]) -> None:
    """Read every level of every layer, as a viewer showing it would."""
    for data, _, _ in layers:
        for level in data if isinstance(data, list) else [data]:
            np.asarray(level)


def _wkw_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, WKWWarning)]


def _pattern(row: Row, paths: Paths):
    return paths.pattern(row.reader.message or row.message)


@pytest.mark.parametrize("row", READ, ids=lambda row: row.id)
def test_reader(row, bad_input):
    paths = bad_input(row)
    path = paths.text(row.reader.path)
    reader = napari_get_reader(path)
    if row.reader.outcome == "declines":
        assert reader is None
        return
    assert reader is not None, "napari-wkw must claim the path to say what is wrong with it"
    if row.reader.outcome == "raises":
        with pytest.raises(WKWError) as caught:
            reader(path)
        message = str(caught.value)
        assert "\n" not in message and _pattern(row, paths).search(message), message
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layers = reader(path)
        opened = _wkw_warnings(caught)
        _read_voxels(layers)
    found = _wkw_warnings(caught)
    if row.reader.outcome == "opens":
        assert layers and not found, found
        return
    assert any(_pattern(row, paths).search(message) for message in found), found
    assert all("\n" not in message for message in found)
    if row.reader.on_read:
        assert not opened, "the problem is in the voxels: opening must not warn yet"


def test_one_viewer_survives_every_bad_input(make_napari_viewer, tmp_path):
    """One real viewer opens every input napari-wkw claims, one after another: each one
    raises or warns naming the file, and the viewer still takes a new layer after each.
    (One viewer for all rows: making one costs more than all the rows' reads.)"""
    viewer = make_napari_viewer()
    failures = {}
    for row in CLAIMED:
        try:
            _open_in(viewer, row, build(row, tmp_path / row.id))
        except Exception as error:  # noqa: BLE001 - collected, reported by row below
            failures[row.id] = f"{type(error).__name__}: {error}"
    assert not failures, failures


def _open_in(viewer, row: Row, paths: Paths) -> None:
    # the layers of earlier rows stay: removing layers costs more than adding them
    before = len(viewer.layers)
    path = paths.text(row.reader.path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if row.reader.outcome == "raises":
            try:
                viewer.open(path, plugin="napari-wkw")
            except Exception as error:  # noqa: BLE001 - napari's ReaderPluginError, from ours
                chain = [error, error.__cause__]
                assert any(isinstance(e, WKWError) and _pattern(row, paths).search(str(e)) for e in chain), error
            else:
                raise AssertionError("the reader did not raise")
        else:
            added = viewer.open(path, plugin="napari-wkw")
            assert added and len(viewer.layers) == before + len(added)
            viewer.dims.set_point(0, viewer.dims.range[0].stop / 2)  # z-scroll: reads voxels
    if row.reader.outcome == "warns":
        found = _wkw_warnings(caught)
        assert any(_pattern(row, paths).search(message) for message in found), found
    before = len(viewer.layers)
    viewer.add_image(np.arange(64, dtype=np.uint8).reshape(8, 8), name=f"after {row.id}")
    assert len(viewer.layers) == before + 1 and viewer.layers[f"after {row.id}"].data.shape == (8, 8)
