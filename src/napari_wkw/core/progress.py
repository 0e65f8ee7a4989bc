"""Progress callbacks and cancel tokens shared by every long operation.

The core never prints and never knows about Qt: it reports ``(done, total, label)``
to a callback and checks a :class:`CancelToken` between work units.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import CancelledError

#: ``callback(done, total, label)``; ``total`` is the number of work units.
ProgressCallback = Callable[[int, int, str], None]


def no_progress(done: int, total: int, label: str) -> None:
    """The default callback: report nothing."""


class CancelToken:
    """A thread-safe flag; work checks it between units and stops with CancelledError."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CancelledError("cancelled")


class ProgressReporter:
    """Counts finished units of one stage and forwards them to a callback."""

    def __init__(
        self,
        callback: ProgressCallback | None,
        total: int,
        label: str,
        cancel: CancelToken | None = None,
    ) -> None:
        self.callback = callback or no_progress
        self.total = total
        self.label = label
        self.cancel = cancel
        self.done = 0
        self.callback(0, total, label)

    def check(self) -> None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.callback(self.done, self.total, self.label)
        self.check()


_scope = threading.local()


@contextmanager
def cancel_scope(token: CancelToken | None) -> Iterator[None]:
    """Make ``token`` the one :func:`check_cancelled` sees in this thread (inside a unit)."""
    previous = getattr(_scope, "token", None)
    _scope.token = token
    try:
        yield
    finally:
        _scope.token = previous


def check_cancelled() -> None:
    """Raise CancelledError if this thread's unit was cancelled: checked between tiles, so
    a big unit stops within a tile (units in worker processes finish their file)."""
    token = getattr(_scope, "token", None)
    if token is not None:
        token.raise_if_cancelled()
