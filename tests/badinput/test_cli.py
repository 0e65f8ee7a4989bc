"""Every row of the catalogue through the command line: exit 2 and one line naming the file.

Rows run in this process with click's runner (fast; an exception escaping the command
fails the test with its traceback); rows that need a user other than root run the
installed ``napari-wkw`` as the user nobody.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from napari_wkw.cli import main

from .catalogue import ROWS, Paths, Row, argv, nobody_prefix

CLI = str(Path(sys.executable).parent / "napari-wkw")
ERROR = "napari-wkw: error: "


def check_outcome(row: Row, paths: Paths, exit_code: int, stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(ERROR)]
    if row.works:
        assert exit_code == 0, stderr
        assert not errors, stderr
        return
    assert exit_code == 2, stderr
    assert len(errors) == 1, stderr
    mentions = [line.replace(str(paths.root), "<root>").lower() for line in lines]
    assert sum("error" in line for line in mentions) == 1, stderr  # no second message of any kind
    message = errors[0].removeprefix(ERROR)
    assert paths.pattern(row.message).search(message), f"{message!r} does not match {row.message!r}"


@pytest.mark.parametrize("row", [row for row in ROWS if not row.nonroot], ids=lambda row: row.id)
def test_cli(row, bad_input):
    paths = bad_input(row)
    result = CliRunner().invoke(main, argv(row, paths), catch_exceptions=False)
    check_outcome(row, paths, result.exit_code, result.stderr)
    if row.works:  # the result opens, and holds the slices
        from PIL import Image

        from napari_wkw._reader import read_wkw

        [(data, _, kind)] = read_wkw(str(paths["out"]))
        finest = np.asarray(data[0] if isinstance(data, list) else data)
        slices = [np.asarray(Image.open(file)) for file in sorted(paths["stack"].iterdir())]
        assert kind == "image"
        np.testing.assert_array_equal(finest[:3, :30, :40], np.stack(slices))


@functools.cache
def as_nobody() -> tuple[list[str] | None, str]:
    """(how to run the CLI as the user nobody, why not when that is None)."""
    prefix = nobody_prefix()
    if prefix is None:
        return None, "needs a user other than root to run as, and neither setpriv nor runuser works here"
    probe = subprocess.run([*prefix, CLI, "--version"], capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:  # e.g. the checkout is in a folder closed to other users
        return None, f"the user nobody cannot run {CLI}: {probe.stderr.strip()[-300:]}"
    return prefix, ""


@pytest.mark.parametrize("row", [row for row in ROWS if row.nonroot], ids=lambda row: row.id)
def test_cli_as_another_user(row, bad_input):
    """Permission bits mean nothing to root: these rows run the command as nobody."""
    prefix, reason = as_nobody()
    if prefix is None:
        if os.environ.get("NAPARI_WKW_REQUIRE_NONROOT"):
            pytest.fail(reason)
        pytest.skip(reason)
    paths = bad_input(row)
    environment = {**os.environ, "HOME": str(paths.root)}
    result = subprocess.run(
        [*prefix, CLI, *argv(row, paths)], capture_output=True, text=True, timeout=120, env=environment
    )
    check_outcome(row, paths, result.returncode, result.stderr)
    assert not (paths.root / "out").exists()
