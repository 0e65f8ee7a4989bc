"""save_dataset: new, empty and existing targets; refusal; nothing half-written."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from napari_wkw.core import CancelledError, CancelToken, Dataset, TargetExistsError, WKWError
from napari_wkw.core.save import ArrayLayer, save_dataset
from napari_wkw.jobs import JobSettings, Runner


def layer(name="a", value=1, category="color", shape=(10, 20, 30), dtype=np.uint8):
    return ArrayLayer(name, category, [np.full(shape, value, dtype)], (4.0, 4.0, 40.0))


def test_new_and_empty_targets(tmp_path):
    save_dataset(tmp_path / "new", [layer()])
    (tmp_path / "empty").mkdir()
    save_dataset(tmp_path / "empty", [layer()])
    for name in ("new", "empty"):
        ds = Dataset.open(tmp_path / name)
        assert list(ds.layers) == ["a"] and ds.voxel_size == (4.0, 4.0, 40.0)
        assert len(ds.layers["a"].mags) > 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "new"]


def test_existing_dataset_gets_layers_added_and_replaced(tmp_path):
    save_dataset(tmp_path / "ds", [layer("a", 1), layer("b", 2)])
    save_dataset(tmp_path / "ds", [layer("a", 3), layer("c", 4)])
    ds = Dataset.open(tmp_path / "ds")
    assert sorted(ds.layers) == ["a", "b", "c"]
    values = {name: int(item.finest_mag.read(item.bounding_box).max()) for name, item in ds.layers.items()}
    assert values == {"a": 3, "b": 2, "c": 4}
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["a", "b", "c", "datasource-properties.json"]


def test_refusals_leave_everything_as_it_was(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(TargetExistsError, match="not a WKW dataset"):
        save_dataset(tmp_path / "mine", [layer()])
    save_dataset(tmp_path / "ds", [layer()])
    other = ArrayLayer("b", "color", [np.ones((2, 2, 2), np.uint8)], (1.0, 1.0, 1.0))
    with pytest.raises(TargetExistsError, match="voxel size"):
        save_dataset(tmp_path / "ds", [other])
    with pytest.raises(WKWError, match="negative"):
        negative = ArrayLayer("n", "color", [np.ones((2, 2, 2), np.uint8)], (1, 1, 1), offset=(-1, 0, 0))
        save_dataset(tmp_path / "neg", [negative])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "mine"]
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_cancel_and_failures_leave_no_partial_dataset(tmp_path):
    save_dataset(tmp_path / "ds", [layer("a", 1)])
    before = (tmp_path / "ds" / "datasource-properties.json").read_text()
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        save_dataset(tmp_path / "ds", [layer("a", 9)], cancel=token)

    class Exploding:
        shape, dtype, ndim = (64, 64, 64), np.dtype(np.uint8), 3

        def __getitem__(self, key):
            raise OSError("disk vanished")

    with pytest.raises(OSError, match="disk vanished"):
        save_dataset(tmp_path / "fresh", [ArrayLayer("x", "color", [Exploding()], (1, 1, 1))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    assert (tmp_path / "ds" / "datasource-properties.json").read_text() == before
    ds = Dataset.open(tmp_path / "ds")
    assert ds.layers["a"].finest_mag.read(ds.layers["a"].bounding_box).max() == 1


def test_segmentation_properties(tmp_path):
    labels = np.zeros((20, 30, 40), np.uint32)
    labels[5, 6, 7] = 123456
    save_dataset(tmp_path / "seg", [ArrayLayer("seg", "segmentation", [labels], (1, 1, 1))])
    props = json.loads((tmp_path / "seg" / "datasource-properties.json").read_text())["dataLayers"][0]
    assert props["category"] == "segmentation" and props["largestSegmentId"] == 123456


def test_progress_is_reported_per_unit(tmp_path):
    seen = []
    save_dataset(tmp_path / "p", [layer(shape=(40, 300, 300))], progress=lambda d, t, label: seen.append((d, t, label)))
    labels = {label for _, _, label in seen}
    assert "writing a mag 1" in labels and any(label.startswith("downsampling a mag") for label in labels)
    assert all(0 <= d <= t for d, t, _ in seen)


class Generated:
    """A lazy uint8 volume computed from coordinates, never held whole."""

    def __init__(self, shape):
        self.shape, self.dtype, self.ndim = shape, np.dtype(np.uint8), 3

    def __getitem__(self, key):
        z, y, x = (np.arange(*k.indices(n), dtype=np.uint16) for k, n in zip(key, self.shape))
        return ((z[:, None, None] * 7 + y[None, :, None] * 3 + x[None, None, :]) % 251).astype(np.uint8)


def test_memory_is_flat_in_the_volume_size(tmp_path, monkeypatch):
    """Writing mag 1 and the whole pyramid holds a tile and at most SPILL_BYTES of one
    file's compressed blocks (lowered here so the test can see it), never the layer."""
    import tracemalloc

    from napari_wkw.core import wkw_file

    monkeypatch.setattr(wkw_file, "SPILL_BYTES", 4 * 2**20)
    peaks = {}
    runs = [(128, "sequential"), (512, "sequential"), (512, "threads")]
    for depth, strategy in runs:  # all deep enough for full-size tiles at every step
        tracemalloc.start()
        with Runner(JobSettings(strategy, jobs=2)) as runner:
            save_dataset(
                tmp_path / f"d{depth}{strategy}",
                [ArrayLayer("c", "color", [Generated((depth, 512, 512))], (1, 1, 2))],
                runner=runner,
            )
        peaks[depth, strategy] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[512, "sequential"] < 1.15 * peaks[128, "sequential"], peaks  # 4x the volume, the same memory
    assert peaks[512, "threads"] < 2.5 * peaks[512, "sequential"], peaks  # two workers: about twice one
    assert peaks[512, "sequential"] < 512 * 512 * 512 / 2, peaks
    view = Dataset.open(tmp_path / "d512threads").layers["c"].finest_mag
    np.testing.assert_array_equal(view.read(view.bounding_box)[300:303], Generated((512, 512, 512))[300:303, :, :])


def test_unstorable_types_are_refused_up_front(tmp_path):
    bad = ArrayLayer("c", "color", [np.zeros((2, 2, 2), np.complex64)], (1, 1, 1))
    with pytest.raises(WKWError, match="complex64"):
        save_dataset(tmp_path / "x", [layer(), bad])
    assert list(tmp_path.iterdir()) == []


def test_staging_folders_of_killed_saves_are_removed(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = tmp_path / f".ds.partial-{dead.stdout.strip()}"
    (abandoned / "a").mkdir(parents=True)
    alive = tmp_path / f".ds.partial-{os.getppid()}"  # a running process: a save still under way
    alive.mkdir()
    save_dataset(tmp_path / "ds", [layer()])
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "ds"]
