"""Every path a user may point at, and every broken file a user may have."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from napari_wkw.core import (
    DatasetFormatError,
    Mag,
    NotWKWError,
    WKWWarning,
    locate,
    looks_like_wkw,
)
from napari_wkw.core.geometry import BoundingBox


@pytest.mark.parametrize(
    ("relative", "mag"),
    [
        ("", None),
        ("datasource-properties.json", None),
        ("color", None),
        ("color/1", Mag(1, 1, 1)),
        ("color/1/header.wkw", Mag(1, 1, 1)),
        ("color/1/z0/y0/x0.wkw", Mag(1, 1, 1)),
    ],
)
def test_locate_every_kind_of_path(wkw_copy, relative, mag):
    path = wkw_copy("simple_wkw_dataset") / relative
    assert looks_like_wkw(path)
    selection = locate(path)
    assert [layer.name for layer in selection.layers] == ["color"]
    assert selection.mag == mag
    assert selection.layers[0].is_rgb


def test_old_dataset_layer_folder_takes_voxel_size_from_enclosing_properties(wkw_copy):
    selection = locate(wkw_copy("old_wkw_dataset") / "color")
    assert selection.dataset.voxel_size == pytest.approx((11.24, 11.24, 28.0))
    assert list(selection.layers[0].mags) == [Mag(1, 1, 1), Mag(2, 2, 2)]
    assert locate(wkw_copy("old_wkw_dataset") / "color" / "2").mag == Mag(2, 2, 2)


def test_dataset_without_properties_is_discovered(wkw_copy):
    path = wkw_copy("simple_wkw_dataset")
    (path / "datasource-properties.json").unlink()
    selection = locate(path)
    [layer] = selection.layers
    assert layer.name == "color" and layer.category == "color" and layer.is_rgb
    # bounding box from the files present: one file of 4 blocks of 8 voxels
    assert layer.bounding_box == BoundingBox((0, 0, 0), (32, 32, 32))
    assert selection.dataset.voxel_size == (1.0, 1.0, 1.0)


def test_listed_but_missing_mags_warn_and_the_rest_opens(wkw_copy):
    with pytest.warns(WKWWarning, match="16, 2, 32, 4, 8"):
        selection = locate(wkw_copy("complex_property_ds"))
    assert all(list(layer.mags) == [Mag(1, 1, 1)] for layer in selection.layers)


def test_not_wkw(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "tiffs").mkdir()
    (tmp_path / "tiffs" / "a.tif").write_bytes(b"II*\x00")
    (tmp_path / "file.txt").write_text("hello")
    for name in ("empty", "tiffs", "file.txt", "missing"):
        assert not looks_like_wkw(tmp_path / name)
        with pytest.raises(NotWKWError, match=name):
            locate(tmp_path / name)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"WKW\x01\x55", "truncated"),
        (b"XYZ\x01" + bytes(12), "bad magic"),
        (b"WKW\x01\x55\x09\x01\x01" + bytes(8), "block type"),
    ],
)
def test_broken_header_names_the_file(wkw_copy, content, message):
    path = wkw_copy("simple_wkw_dataset")
    header = path / "color" / "1" / "header.wkw"
    header.write_bytes(content)
    with pytest.raises(DatasetFormatError, match=message) as error:
        locate(path)
    assert str(header) in str(error.value)


def test_half_written_properties_name_the_file(wkw_copy):
    path = wkw_copy("complex_property_ds")
    properties = path / "datasource-properties.json"
    properties.write_text(properties.read_text()[:700])
    with pytest.raises(DatasetFormatError, match="half-written") as error:
        locate(path)
    assert str(properties) in str(error.value)


def test_truncated_data_file_raises_in_the_core_and_warns_in_views(wkw_copy):
    path = wkw_copy("simple_wkw_dataset")
    data_file = path / "color" / "1" / "z0" / "y0" / "x0.wkw"
    data_file.write_bytes(data_file.read_bytes()[:4000])
    mag = locate(path).layers[0].finest_mag
    box = BoundingBox((0, 0, 0), (24, 24, 24))
    with pytest.raises(DatasetFormatError) as error:
        mag.read(box)
    assert "x0.wkw" in str(error.value)
    with pytest.warns(WKWWarning, match="x0.wkw"):
        shown = np.asarray(mag.view(box, on_error="warn"))
    assert shown.shape == (24, 24, 24, 3) and not shown.any()
    with pytest.warns(WKWWarning, match="x0.wkw"):
        assert not mag.lazy(box, on_error="warn").compute().any()


def test_core_imports_neither_napari_nor_qt():
    code = (
        "import sys, napari_wkw.core, napari_wkw.core.save, napari_wkw.core.synthetic; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui', 'vispy')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mag_folder_missing_from_the_properties_still_opens(wkw_copy):
    import shutil

    path = wkw_copy("old_wkw_dataset")
    shutil.copytree(path / "color" / "2", path / "color" / "4-4-2")
    selection = locate(path / "color" / "4-4-2")
    assert selection.mag == Mag(4, 4, 2)
    assert selection.layers[0].mags[Mag(4, 4, 2)].path == path / "color" / "4-4-2"
    shutil.copytree(path / "color" / "2", path / "color" / "odd")
    with pytest.raises(NotWKWError, match="magnification"):
        locate(path / "color" / "odd")
