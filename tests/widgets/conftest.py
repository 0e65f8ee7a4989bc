"""Fixtures for the wizard tests: a viewer, a way to run a wizard to its end, notifications."""

from __future__ import annotations

import numpy as np
import pytest

from ..conftest import DATA

#: seconds a small job may take in a worker before the test fails
JOB_TIMEOUT_MS = 60_000


@pytest.fixture
def run_wizard(qtbot):
    """Press Run on a wizard and wait until its worker has finished; returns the worker."""

    def run(wizard, timeout: int = JOB_TIMEOUT_MS):
        assert wizard.validate(), f"form not valid: {wizard.all_problems()}"
        worker = wizard.run()
        assert worker is not None
        qtbot.waitUntil(lambda: not wizard.running, timeout=timeout)
        return worker

    return run


@pytest.fixture
def notifications(monkeypatch):
    """Every notification shown during the test, as (severity, message)."""
    from napari.utils.notifications import notification_manager

    seen: list[tuple[str, str]] = []
    notification_manager.notification_ready.connect(lambda event: seen.append((str(event.severity), event.message)))
    yield seen


def em_volume(depth: int, height: int, width: int) -> np.ndarray:
    """Real EM texture (a FAFB tile from tests/data), a window shifted a little per slice."""
    from PIL import Image

    tile = np.asarray(Image.open(DATA / "em_tiles" / "1_60_140.jpg"))
    return np.stack([tile[2 * z : 2 * z + height, 3 * z : 3 * z + width] for z in range(depth)]).astype(np.uint8)


@pytest.fixture
def mag1_dataset(tmp_path):
    """A compressed two-layer dataset with only mag 1 (real EM texture from tests/data)."""
    from napari_wkw.core.save import ArrayLayer, save_dataset

    image = em_volume(40, 192, 224)
    labels = (image // 64).astype(np.uint32)
    path = save_dataset(
        tmp_path / "em",
        [
            ArrayLayer("color", "color", [image], (11.24, 11.24, 25.0), offset=(32, 0, 0)),
            ArrayLayer("segmentation", "segmentation", [labels], (11.24, 11.24, 25.0), offset=(32, 0, 0)),
        ],
        pyramid=False,
    )
    return path, image, labels
