"""SIGKILL at seeded moments: no command loses data, hangs, or leaves a half-written result
that claims to be complete, and running it again finishes the job (see harness.py).

CI runs a few moments per command; ``benchmarks/fault_injection.py`` runs 20 each.
"""

from __future__ import annotations

import pytest

from .harness import (
    COMMANDS,
    PYTHON,
    Command,
    at_moment,
    attempt,
    build_dataset,
    prepare,
    run_command,
    run_dask_kills,
    run_properties_kills,
)

pytestmark = pytest.mark.timeout(300)

SEED = 14
#: kills per command here (the long run tries 20)
MOMENTS = 2


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Shared by the tests of this module: each command's inputs and clean run are made once."""
    return tmp_path_factory.mktemp("faults")


def assert_survived(result) -> None:
    assert result.tried, "no kill was tried"
    assert not result.problems, "\n".join(result.problems)
    assert result.lost == 0
    assert result.reruns_completed == result.tried


@pytest.mark.parametrize("name", list(COMMANDS))
def test_killed_at_seeded_moments(name, root):
    result = run_command(COMMANDS[name], root, MOMENTS, SEED)
    assert result.tried == MOMENTS
    assert_survived(result)


@pytest.mark.parametrize("name", ["convert-tiff", "downsample", "merge-annotation-into", "writer-replace"])
def test_killed_while_the_properties_are_written(name, root):
    """Before anything is written and with the temporary file written but not renamed, in the
    first call that writes the result's properties: the old file stays as it was, the rerun
    finishes (the long run kills in every call)."""
    result = run_properties_kills(COMMANDS[name], root, "first")
    assert result.landed == result.tried  # every kill reached its call
    assert_survived(result)


def test_a_dask_worker_killed_while_it_holds_a_unit(tmp_path):
    result = run_dask_kills(tmp_path, 1, SEED)
    assert result.landed == 1  # a worker was killed while the mag was being built
    assert_survived(result)
    assert result.attempts[0].note == "finished" or result.attempts[0].note.startswith("failed: napari-wkw: error:")


#: lists the layer first and writes its data afterwards, file by file: what the checks must catch
UNSAFE_COPY = """
import shutil, sys, time
from pathlib import Path
work = Path(sys.argv[1])
shutil.copytree(work / "ds", work / "out", ignore=lambda folder, names: [n for n in names if n.startswith("x")])
for source in sorted((work / "ds").rglob("x*.wkw")):
    time.sleep(0.02)
    shutil.copyfile(source, work / "out" / source.relative_to(work / "ds"))
"""


def test_the_checks_catch_a_listed_mag_that_is_incomplete(tmp_path):
    command = Command("unsafe-copy", build_dataset, (PYTHON, "-c", UNSAFE_COPY, "{w}"), "out", reads=("ds",))
    clean = prepare(command, tmp_path)
    logs = tmp_path / command.name / "logs"
    middle = sum(clean.window()) / 2
    kill = at_moment(middle, clean.first_write)
    result = attempt(command, clean.template, clean.folder, tmp_path / "kill", logs, "mid-copy", kill)
    assert result.landed and result.wrote
    assert any("holds voxels no complete result has" in problem for problem in result.lost), result.lost
    assert not result.rerun_completed  # copytree refuses the existing folder
