"""Wizards that change a dataset in place, run in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest

from napari_wkw._widgets.dataset_wizards import DownsampleWizard
from napari_wkw.core import Dataset
from napari_wkw.core.geometry import Mag

pytestmark = pytest.mark.timeout(120)


def test_downsample_builds_the_pyramid_and_opens_it(make_napari_viewer, run_wizard, mag1_dataset, notifications):
    path, image, labels = mag1_dataset
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-wkw")
    wizard = DownsampleWizard(viewer)
    assert wizard.choice.path == path  # the selected layer's dataset
    assert wizard.choice.layer.choices == ("(all layers)", "color", "segmentation")
    wizard.max_mag.value = "4-4-2"
    run_wizard(wizard)

    dataset = Dataset.open(path)
    for name, voxels in (("color", image), ("segmentation", labels)):
        layer = dataset.layers[name]
        assert list(layer.mags) == [Mag(1, 1, 1), Mag(2, 2, 1), Mag(4, 4, 2)]
        coarse = layer.mags[Mag(2, 2, 1)].read(layer.bounding_box.in_mag(Mag(2, 2, 1)))
        assert coarse.shape == (40, 96, 112)
        if name == "segmentation":  # mode of 2 x 2 labels that are mostly equal
            np.testing.assert_array_equal(coarse[:, :1, :1], voxels[:, :1, :1])
    # the layers opened from the dataset were replaced by the new pyramid
    assert len(viewer.layers) == 2
    assert all(layer.multiscale and len(layer.data) == 3 for layer in viewer.layers)
    assert any("downsampled em" in message for _, message in notifications)
    assert "downsampled em" in wizard.status.value


def test_downsample_form_says_what_is_wrong_before_run(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    wizard = DownsampleWizard(viewer)
    assert not wizard.validate() and not wizard.run_button.enabled
    assert "choose the dataset" in wizard.all_problems()[0]
    wizard.choice.dataset.value = tmp_path
    assert "is not a WKW dataset" in wizard.all_problems()[0]
    wizard.max_mag.value = "two"
    assert any("up to mag must be like 2 or 2-2-1" in p for p in wizard.all_problems())


def test_downsample_on_a_dask_cluster_from_the_form(make_napari_viewer, run_wizard, mag1_dataset, tmp_path):
    """The wizards' job options reach the same runner: a running dask scheduler does the work."""
    import shutil

    from distributed import LocalCluster

    path, _, _ = mag1_dataset
    sequential = shutil.copytree(path, tmp_path / "sequential")
    from napari_wkw.jobs import JobSettings
    from napari_wkw.ops.downsample import downsample

    downsample(sequential, max_mag=Mag(4, 4, 2), jobs=JobSettings("sequential"))

    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-wkw")
    wizard = DownsampleWizard(viewer)
    wizard.max_mag.value = "4-4-2"
    wizard.job_options.strategy.value = "dask"
    wizard.job_options.scheduler.value = "not an address"
    assert any("scheduler" in problem for problem in wizard.all_problems())
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0") as cluster:
        wizard.job_options.scheduler.value = cluster.scheduler_address
        run_wizard(wizard)
    for name in ("color", "segmentation"):
        for mag in ("2-2-1", "4-4-2"):
            ours = sorted((path / name / mag).rglob("*.wkw"))
            assert ours, (name, mag)
            for file in ours:
                assert file.read_bytes() == (sequential / file.relative_to(path)).read_bytes(), file


def test_slurm_choice_checks_the_resources_and_says_where_logs_go(make_napari_viewer, tmp_path):
    wizard = DownsampleWizard(make_napari_viewer())
    options = wizard.job_options
    options.strategy.value = "slurm"
    assert options.workers.label == "worker jobs"
    options.resources.value = '{"mem": "2G", "cores": 1, "log_directory": "%s"}' % (tmp_path / "logs")
    assert options.problem() is None
    assert options.slurm_logs.value == f"worker logs: {tmp_path / 'logs'}"
    options.resources.value = '{"memory": "2G"}'
    assert "memory" in options.problem()
    options.resources.value = "{mem: 2G}"
    assert "not valid JSON" in options.problem()
