"""Locks between processes (and hosts sharing a file system) around read-modify-write.

A compressed WKW file is rewritten whole and renamed into place, and the properties file
is read, changed and rewritten: two processes doing that to the same file at once would
each lose the other's change. :func:`locked` holds an exclusive ``flock`` on a hidden
lock file beside the file (``.x0.wkw.lock``, ``.datasource-properties.json.lock``) for
the whole read-modify-write-rename. A data file's and the properties' locks are held one
at a time; only a conversion's layer lock (``.<layer>.converting.lock``, taken without
waiting) is held while they are taken, never the other way round: no deadlock.

The lock file is removed on release, so folders do not fill with them: a waiter that got
the lock of a removed file sees that the path no longer names its file and locks again.
A killed holder leaves at most an empty lock file, which the next one reuses (the kernel
drops a dead process's locks). On Linux, ``flock`` on NFS is a POSIX lock on the server
and so holds across nodes; without ``fcntl`` (Windows) no lock is taken.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import WKWError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_SUFFIX = ".lock"
_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


class LockedError(WKWError):
    """Someone else holds the lock and the caller asked not to wait."""


def lock_path(path: Path) -> Path:
    """The hidden lock file of ``path``: ``.<name>.lock`` beside it (``.<name>.lock`` for
    hidden names too)."""
    path = Path(path)
    name = path.name if path.name.startswith(".") else f".{path.name}"
    return path.with_name(name + LOCK_SUFFIX)


def is_lock_file(path: Path) -> bool:
    return Path(path).name.endswith(LOCK_SUFFIX)


@contextmanager
def locked(path: Path, *, wait: bool = True, busy: str | None = None) -> Iterator[None]:
    """Hold the exclusive lock of ``path`` for the block.

    With ``wait=False`` a held lock raises :class:`LockedError` with ``busy`` (or a
    sentence naming the path) at once instead of waiting.
    """
    if fcntl is None:  # pragma: no cover
        yield
        return
    lock = lock_path(path)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_locked(lock, wait)
    except OSError as error:
        if error.errno not in _UNWRITABLE:
            raise
        fd = -1
    if fd == -1:  # a folder this process may not write to: it cannot change the file either, and
        yield  # the write itself will say why, in the words it always used
        return
    while True:
        if fd is None:
            raise LockedError(busy or f"{path}: another process is writing it; try again when it is done")
        try:  # the holder before us may have removed this lock file: lock the one the path names now
            current = os.stat(lock)
            mine = os.fstat(fd)
            if (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
        fd = _open_locked(lock, wait)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # while still held: waiters on this file see it gone and retry
        os.close(fd)


def _open_locked(lock: Path, wait: bool) -> int | None:
    """A descriptor of ``lock`` holding its exclusive flock; None if held elsewhere and not ``wait``.

    Opened read-only where that suffices (a file open for writing would keep its file system
    from being remounted read-only while the lock is held); NFS emulates flock with POSIX
    locks, whose exclusive kind needs a descriptor open for writing."""
    flags = os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    for mode in (os.O_RDONLY, os.O_RDWR):
        fd = os.open(lock, flags | mode, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            return fd
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as error:
            os.close(fd)
            if error.errno != errno.EBADF or mode == os.O_RDWR:
                raise
        except BaseException:
            os.close(fd)
            raise
    raise AssertionError("unreachable")  # pragma: no cover
