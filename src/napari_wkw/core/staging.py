"""Hidden staging that killed runs leave behind, and removing it safely.

Everything long writes beside its target under a hidden name that carries the writer's
host and process id, ``<host>-<pid>`` (:func:`owner_tag`): ``.<name>.partial-<host>-<pid>``
folders, ``.x*.wkw.<host>-<pid>.partial`` and ``.spill`` files, and renames into place when
done. Leftovers are removed only when they are from this host and their process is gone,
so two runs never delete each other's work, not even when units run on other nodes of a
cluster sharing the file system (a pid that is dead here may be alive there): another
host's leftovers are kept and reported in one warning. Names of older versions carry the
pid alone (``.<name>.partial-<pid>``, ``.x*.wkw.<pid>.partial``); they count as this host's.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import WKWWarning
from .locks import is_lock_file

#: ``.<name>.partial-<owner>`` and ``.<name>.replaced-<owner>`` folders
_FOLDER_NAME = re.compile(r"\.(?:partial|replaced)-(?P<owner>[A-Za-z0-9_-]+)$")
#: ``.<file>.<owner>.partial`` and ``.<file>.<owner>.spill`` files
_FILE_NAME = re.compile(r"\.(?P<owner>[A-Za-z0-9_-]+)\.(?:partial|spill)$")


def host_tag(host: str | None = None) -> str:
    """A host name as it goes into staging names: anything but letters, digits, ``-`` and
    ``_`` (the dots of a domain name) becomes ``_``, so names split at dots stay parseable."""
    host = socket.gethostname() if host is None else host
    return re.sub(r"[^A-Za-z0-9_-]", "_", host) or "unknown"


def owner_tag() -> str:
    """``<host>-<pid>`` of this process, the owner part of every staging name."""
    return f"{host_tag()}-{os.getpid()}"


def staging_owner(path: Path) -> tuple[str | None, int] | None:
    """(host tag, pid) of a staging name; host None for the old pid-only names; None when
    ``path`` is no staging name (lock files included)."""
    name = Path(path).name
    if is_lock_file(name):
        return None
    match = _FOLDER_NAME.search(name) or _FILE_NAME.search(name)
    if match is None:
        return None
    owner = match.group("owner")
    if owner.isdigit():
        return None, int(owner)
    host, _, pid = owner.rpartition("-")
    return (host, int(pid)) if host and pid.isdigit() else None


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs (staging of dead processes may be removed)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def left_by_dead_process(path: Path) -> bool:
    """Whether a staging name is this host's (or old style) and its process is gone."""
    owner = staging_owner(path)
    if owner is None:
        return False
    host, pid = owner
    return (host is None or host == host_tag()) and not process_alive(pid)


def other_host(path: Path) -> str | None:
    """The host of a staging name written on another host, else None."""
    owner = staging_owner(path)
    return owner[0] if owner is not None and owner[0] is not None and owner[0] != host_tag() else None


def _sweep(candidates: Iterable[Path], where: Path) -> list[Path]:
    """Remove the candidates left by dead processes of this host; report (one warning) and
    return those of other hosts, which are kept."""
    foreign = []
    for candidate in candidates:
        if other_host(candidate) is not None:
            foreign.append(candidate)
        elif left_by_dead_process(candidate):
            if candidate.is_dir():
                shutil.rmtree(candidate, ignore_errors=True)
            else:
                candidate.unlink(missing_ok=True)
    if foreign:
        hosts = ", ".join(sorted({other_host(path) for path in foreign}))  # type: ignore[misc]
        warnings.warn(
            f"{where}: kept {len(foreign)} unfinished staging file(s) or folder(s) of other hosts ({hosts}), "
            "which may still be writing them; remove them once those runs are over",
            WKWWarning,
            stacklevel=3,
        )
    return foreign


def remove_abandoned(folder: Path) -> list[Path]:
    """Remove hidden staging (``.*.partial-<owner>``, ``.*.<owner>.partial``, ``.*.<owner>.spill``)
    that killed runs of this host left in ``folder`` (a layer or mag) and its mag folders,
    if their process is gone. Returns the staging of other hosts, kept."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    candidates = list(folder.glob(".*.partial-*")) + list(folder.glob("*/.*.partial-*"))
    candidates += list(folder.glob("*/z*/y*/.x*.wkw.*"))
    candidates += list(folder.glob("z*/y*/.x*.wkw.*"))
    return _sweep(candidates, folder)


def fresh_staging(target: Path) -> Path:
    """The hidden sibling folder to build ``target`` in (``.<name>.partial-<owner>``), empty.

    Staging folders that killed runs of this host left for the same target are removed first.
    """
    target = Path(target)
    _sweep(target.parent.glob(f".{target.name}.partial-*"), target)
    staging = target.parent / f".{target.name}.partial-{owner_tag()}"
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
