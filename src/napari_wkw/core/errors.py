"""Domain errors: one clear sentence that names the file and what is wrong.

Shells (CLI, napari reader/writer, wizards) show ``str(error)`` as it is, so every
message must stand on its own without a traceback.
"""

from __future__ import annotations


class WKWError(Exception):
    """Base class for every error the core raises on purpose."""


class NotWKWError(WKWError):
    """The path is not a WKW dataset, layer or mag (readers should decline quietly)."""


class DatasetFormatError(WKWError):
    """A file that belongs to a dataset is missing, truncated or malformed."""


class TargetExistsError(WKWError):
    """The output location holds something we must not overwrite."""


class CancelledError(WKWError):
    """The operation was cancelled through its cancel token."""


class WKWWarning(UserWarning):
    """Something is off with a dataset but it can still be shown (best effort)."""


def naming(error: OSError, path) -> OSError:
    """``error`` with ``path`` as its file when it names none: writes to an open file fail
    with a bare "No space left on device", and a message must say which file."""
    if error.filename is None:
        return OSError(error.errno, error.strerror or str(error), str(path))
    return error


def disk_problem(path) -> str | None:
    """Why writing below ``path`` fails when a library only says it did (libwkw): "no space
    left on device" or "read-only file system", from the file system itself; else None."""
    import os
    from pathlib import Path

    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    if stats.f_flag & os.ST_RDONLY:
        return "read-only file system"
    if stats.f_bavail * stats.f_frsize < 1 << 20:
        return "no space left on device"
    return None
