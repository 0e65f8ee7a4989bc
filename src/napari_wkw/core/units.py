"""What the core needs to run work units, and the simplest way to run them.

The core cuts long work into units (small picklable values naming files and boxes) and
hands them to a :class:`UnitRunner`. The job layer (``napari_wkw.jobs.runner.Runner``)
implements it with threads, processes, dask or Slurm; the core itself only knows this
protocol, so no core module depends on anything above it. :class:`InlineRunner` runs
units in the calling thread, with progress and cancel: the core's default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .progress import CancelToken, ProgressCallback, cancel_scope, no_progress


class UnitRunner(Protocol):
    """Runs ``function`` over units, reporting ``(done, total, label)``; results in unit order."""

    @property
    def workers(self) -> int:
        """Units that run at the same time (a unit alone may use that many threads)."""
        ...

    def map(self, function: Callable[[Any], Any], units: Sequence[Any], label: str) -> list[Any]: ...


class InlineRunner:
    """Units one after the other in this thread; the cancel token is seen between tiles."""

    workers = 1

    def __init__(self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> None:
        self.progress = progress or no_progress
        self.cancel = cancel or CancelToken()

    def map(self, function: Callable[[Any], Any], units: Sequence[Any], label: str) -> list[Any]:
        units = list(units)
        self.progress(0, len(units), label)
        results = []
        with cancel_scope(self.cancel):
            for done, unit in enumerate(units, 1):
                self.cancel.raise_if_cancelled()
                results.append(function(unit))
                self.progress(done, len(units), label)
        return results
