"""Every row of the catalogue through a wizard: the problem is listed in the form before
Run (and Run stays disabled), or Run ends in one ``show_error`` notification naming the
file; the viewer keeps working either way."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from .catalogue import ROWS

WIZARD_MODULES = ("convert_wizards", "dataset_wizards", "annotation_wizards")
JOB_TIMEOUT_MS = 60_000
#: the forms list a dataset's layers, which warns about a broken one as the reader does
pytestmark = pytest.mark.filterwarnings("ignore::napari_wkw.core.errors.WKWWarning")


def wizard_class(name: str):
    for module in WIZARD_MODULES:
        found = getattr(importlib.import_module(f"napari_wkw._widgets.{module}"), name, None)
        if found is not None:
            return found
    raise LookupError(name)


@pytest.mark.parametrize("row", [row for row in ROWS if row.wizard], ids=lambda row: row.id)
def test_wizard(row, bad_input, viewer, qtbot, notifications):
    """In one real viewer shared by all rows (see the last test of this module)."""
    paths = bad_input(row)
    wizard = wizard_class(row.wizard.name)(viewer)
    row.wizard.fill(wizard, paths)
    pattern = paths.pattern(row.wizard.message or row.message)
    if row.wizard.outcome == "form":
        problems = wizard.all_problems()
        assert any(pattern.search(problem) for problem in problems), problems
        assert not wizard.validate() and not wizard.run_button.enabled
        assert wizard.run() is None
    else:
        assert wizard.validate(), wizard.all_problems()
        if wizard.run() is not None:
            qtbot.waitUntil(lambda: not wizard.running, timeout=JOB_TIMEOUT_MS)
        errors = [message for severity, message in notifications if severity == "error"]
        if row.wizard.outcome == "succeeds":
            assert not errors and "failed" not in wizard.status.value, errors
            assert paths["out"].is_dir()
        else:
            assert len(errors) == 1, errors
            assert "\n" not in errors[0] and pattern.search(errors[0]), errors[0]
            assert pattern.search(wizard.status.value)
    wizard.close()


def test_the_viewer_still_takes_layers_after_every_wizard_row(viewer):
    """Last in this module: the viewer every row ran in still works (adding layers per row
    would double the time of the rows)."""
    before = len(viewer.layers)
    viewer.add_image(np.arange(64, dtype=np.uint8).reshape(8, 8), name="after")
    assert len(viewer.layers) == before + 1 and viewer.layers["after"].data.shape == (8, 8)
