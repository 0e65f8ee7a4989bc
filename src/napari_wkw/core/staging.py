"""Hidden staging that killed runs leave behind, and removing it safely.

Everything long writes beside its target under a hidden name that carries the
writer's process id (``.<name>.partial-<pid>`` folders, ``.x*.wkw.<pid>.partial``
and ``.spill`` files) and renames into place when done. Leftovers are removed only
once their process is gone, so two runs never delete each other's work.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs (staging of dead processes may be removed)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _left_by_dead_process(path: Path) -> bool:
    """Whether the process id in a staging name (``.x.partial-<pid>``, ``.x.<pid>.partial``,
    ``.x.<pid>.spill``) is that of a process that is gone."""
    name = path.name
    pid = name.rsplit("-", 1)[-1] if ".partial-" in name else name.split(".")[-2]
    return pid.isdigit() and not process_alive(int(pid))


def remove_abandoned(folder: Path) -> None:
    """Remove hidden staging (``.*.partial-<pid>``, ``.*.<pid>.partial``, ``.*.<pid>.spill``)
    that killed runs left in ``folder`` (a layer or mag) and its mag folders, if their
    process is gone."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    candidates = list(folder.glob(".*.partial-*")) + list(folder.glob("*/.*.partial-*"))
    candidates += list(folder.glob("*/z*/y*/.x*.wkw.*"))
    candidates += list(folder.glob("z*/y*/.x*.wkw.*"))
    for candidate in candidates:
        if not _left_by_dead_process(candidate):
            continue
        if candidate.is_dir():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)


def fresh_staging(target: Path) -> Path:
    """The hidden sibling folder to build ``target`` in (``.<name>.partial-<pid>``), empty.

    Staging folders that killed runs left for the same target are removed first.
    """
    target = Path(target)
    for stale in target.parent.glob(f".{target.name}.partial-*"):
        if _left_by_dead_process(stale):
            shutil.rmtree(stale, ignore_errors=True)
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    return staging


@contextmanager
def staged(target: Path) -> Iterator[Path]:
    """Build ``target`` (missing or an empty folder) in a hidden sibling, renamed into place
    when the block ends without error; on any error or cancel the sibling is removed.

    The yielded folder does not exist yet: create it or copy a tree to it.
    """
    target = Path(target)
    staging = fresh_staging(target)
    try:
        yield staging
        if target.exists():
            target.rmdir()  # empty: callers check with ops.common.check_new_target
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
