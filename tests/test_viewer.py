"""End-to-end in a real napari viewer on a (virtual) display."""

from __future__ import annotations

import numpy as np
import pytest

from napari_wkw._reader import read_wkw

pytestmark = pytest.mark.timeout(120)


def test_open_dataset_by_path_gives_multiscale_layers(make_napari_viewer, em_dataset):
    path, image, labels = em_dataset
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-wkw")
    by_kind = {type(layer).__name__: layer for layer in layers}
    assert set(by_kind) == {"Image", "Labels"}
    for layer in layers:
        assert layer.multiscale
        # mags 1, 2-2-1, 4-4-2 in (z, y, x) order
        np.testing.assert_allclose(layer.downsample_factors, [[1, 1, 1], [1, 2, 2], [2, 4, 4]])
        np.testing.assert_allclose(layer.scale, [25.0, 11.24, 11.24])
        assert tuple(layer.axis_labels) == ("z", "y", "x")
    assert str(by_kind["Image"].units[0]) == "nanometer"


def test_file_drops_open_directly_and_folder_drop_asks(make_napari_viewer, em_dataset):
    """What a user sees: file drops go straight to napari-wkw; a folder drop offers a choice."""
    from napari.errors import MultipleReaderError

    path, _, _ = em_dataset
    viewer = make_napari_viewer()
    layers = viewer.open(str(path / "datasource-properties.json"), plugin=None)
    assert len(layers) == 2
    layers = viewer.open(str(path / "color" / "2-2-1" / "header.wkw"), plugin=None)
    assert len(layers) == 1 and "mag 2-2-1" in layers[0].name
    with pytest.raises(MultipleReaderError):
        viewer.open(str(path), plugin=None)


def test_save_layers_through_napari_and_open_again(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(5)
    image = rng.integers(0, 255, (20, 64, 80), dtype=np.uint8)
    labels = (image > 128).astype(np.uint32) * 7
    viewer.add_image(image, name="em", scale=(40, 4, 4))
    viewer.add_labels(labels, name="mask", scale=(40, 4, 4))
    target = tmp_path / "saved"
    written = viewer.layers.save(str(target), plugin="napari-wkw")
    assert written == [str(target)]
    viewer.layers.clear()
    reopened = viewer.open(str(target), plugin="napari-wkw")
    by_name = {layer.metadata["wkw_layer"]: layer for layer in reopened}
    assert type(by_name["mask"]).__name__ == "Labels"
    np.testing.assert_allclose(by_name["em"].scale, [40, 4, 4])
    level0 = by_name["em"].data[0] if by_name["em"].multiscale else by_name["em"].data
    np.testing.assert_array_equal(np.asarray(level0)[:20, :64, :80], image)
    mask0 = by_name["mask"].data[0] if by_name["mask"].multiscale else by_name["mask"].data
    np.testing.assert_array_equal(np.asarray(mask0)[:20, :64, :80], labels)


def test_save_selected_single_layer_offers_both_writers(make_napari_viewer, tmp_path):
    """A single labels layer: the WKW folder writer when chosen (the Save dialog's filter
    passes it), else npe2 takes the writer with an extension and appends it (.zip)."""
    from npe2 import PluginManager

    viewer = make_napari_viewer()
    viewer.add_labels(np.eye(40, dtype=np.uint16)[None].repeat(3, axis=0), name="diag")
    writers = {w.display_name: w for w in PluginManager.instance().iter_compatible_writers(["labels"])}
    assert {"WKW dataset (folder)", "WEBKNOSSOS volume annotation"} <= set(writers)
    target = tmp_path / "single"
    written = viewer.layers.save(str(target), selected=True, _writer=writers["WKW dataset (folder)"])
    assert written == [str(target)]
    [(data, meta, kind)] = read_wkw(str(target))
    assert kind == "labels"
    assert viewer.layers.save(str(tmp_path / "plain"), selected=True, plugin="napari-wkw") == [
        str(tmp_path / "plain.zip")
    ]


def test_sample_data_and_screenshot_is_not_blank(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-wkw", "cells")
    assert [type(layer).__name__ for layer in viewer.layers] == ["Image", "Labels"]
    viewer.dims.set_point(0, viewer.dims.range[0].stop / 2)
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.ndim == 3 and shot.shape[0] > 100
    rgb = shot[..., :3].astype(int)
    assert rgb.std() > 10, "the canvas shows structure, not a flat colour"


def test_broken_data_file_keeps_the_viewer_alive(make_napari_viewer, wkw_copy):
    path = wkw_copy("simple_wkw_dataset")
    data_file = path / "color" / "1" / "z0" / "y0" / "x0.wkw"
    data_file.write_bytes(data_file.read_bytes()[:3000])
    viewer = make_napari_viewer(show=True)
    with pytest.warns(UserWarning, match="x0.wkw"):
        viewer.open(str(path), plugin="napari-wkw")
        viewer.screenshot(canvas_only=True, flash=False)
    viewer.add_image(np.ones((5, 5)), name="still works")
    assert len(viewer.layers) == 2


def test_corrupt_header_is_one_clear_error_and_the_viewer_lives_on(make_napari_viewer, wkw_copy):
    path = wkw_copy("simple_wkw_dataset")
    header = path / "color" / "1" / "header.wkw"
    header.write_bytes(b"garbage")
    viewer = make_napari_viewer()
    with pytest.raises(Exception) as error:  # noqa: B017 - napari wraps the reader's error
        viewer.open(str(path), plugin="napari-wkw")
    chain = [error.value, error.value.__cause__, getattr(error.value, "original_error", None)]
    assert any(str(header) in str(e) for e in chain if e is not None)
    viewer.add_image(np.zeros((4, 4)))
    assert len(viewer.layers) == 1


def test_single_mag_labels_are_read_only_with_a_clear_message(make_napari_viewer, wkw_copy):
    path = wkw_copy("complex_property_ds")
    viewer = make_napari_viewer()
    with pytest.warns(UserWarning, match="lists mag"):
        layers = viewer.open(str(path), plugin="napari-wkw")
    labels = next(layer for layer in layers if type(layer).__name__ == "Labels")
    with pytest.raises(TypeError, match="read-only"):
        labels.data[0, 0, 0] = 5


def test_opened_wkw_layers_save_to_a_new_dataset(make_napari_viewer, em_dataset, tmp_path):
    path, image, labels = em_dataset
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-wkw")
    copy = tmp_path / "copy"
    assert viewer.layers.save(str(copy), plugin="napari-wkw") == [str(copy)]
    original = {meta["metadata"]["wkw_layer"]: (data, meta) for data, meta, _ in read_wkw(str(path))}
    for data, meta, _ in read_wkw(str(copy)):
        source_data, source_meta = original[meta["metadata"]["wkw_layer"]]  # names kept
        assert meta["scale"] == pytest.approx(source_meta["scale"])
        assert meta["translate"] == pytest.approx(source_meta["translate"])
        assert meta["metadata"]["wkw_mags"] == source_meta["metadata"]["wkw_mags"]
        for level, source_level in zip(data, source_data):
            np.testing.assert_array_equal(np.asarray(level), np.asarray(source_level))
