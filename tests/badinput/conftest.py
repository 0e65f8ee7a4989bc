"""Fixtures of the bad-input tests: a row's input built in a fresh folder, notifications."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from .catalogue import Paths, Row, build


@pytest.fixture
def bad_input(tmp_path):
    """``bad_input(row)`` builds the row's input and returns its Paths.

    Rows run as another user are built in a folder of their own under the system's
    temporary folder: pytest's base folder is open to its own user only."""
    shared: list[Path] = []

    def make(row: Row) -> Paths:
        if not row.nonroot:
            return build(row, tmp_path / "in")
        root = Path(tempfile.mkdtemp(prefix="napari-wkw-badinput-"))
        root.chmod(0o755)
        shared.append(root)
        return build(row, root / "in")

    yield make
    for root in shared:
        subprocess.run(["chmod", "-R", "u+rwX", str(root)], check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def notifications():
    """Every napari notification shown during the test, as (severity, message)."""
    from napari.utils.notifications import notification_manager

    seen: list[tuple[str, str]] = []

    def record(event) -> None:
        seen.append((str(event.severity), event.message))

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)


@pytest.fixture(scope="module")
def module_viewer(qapp):
    """One real napari viewer for every row of a test module (making and closing one costs
    about 1.7 s, more than a row's whole test)."""
    import gc

    from napari import Viewer
    from napari._qt.qt_viewer import QtViewer

    with pytest.MonkeyPatch.context() as patch:
        # as napari's make_napari_viewer does: no status-checker thread, no console
        patch.setattr("napari._qt.threads.status_checker.StatusChecker.start", lambda *_, **__: None)
        viewer = Viewer(show=False, show_welcome_screen=False)
        yield viewer
        viewer.close()
    gc.collect()
    QtViewer._instances.clear()  # make_napari_viewer of later modules checks that none is left


@pytest.fixture
def viewer(module_viewer):
    """The module's viewer; layers of earlier tests stay (removing layers is slow)."""
    return module_viewer
