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
