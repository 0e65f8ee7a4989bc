"""Running one core operation from a widget: Qt's thread pool, napari progress, cancel.

The core functions take ``(progress, cancel)``; here they run in a worker thread whose
``quit()`` cancels the token, so the wizard's Cancel button, the Cancel button of the
activity dock's progress bar and napari's "stop running tasks?" on close all stop the
work the same way: promptly, between tiles, leaving only complete files (the core
writes into hidden staging folders and renames them into place at the end).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

from napari.qt.threading import WorkerBase, WorkerBaseSignals, create_worker
from napari.utils.progress import cancelable_progress
from qtpy.QtCore import Signal

from ..core.errors import CancelledError, WKWError
from ..core.progress import CancelToken, ProgressCallback

#: a core call with everything but progress and cancel already bound
Task = Callable[[ProgressCallback, CancelToken], Any]


class JobSignals(WorkerBaseSignals):
    progressed = Signal(int, int, str)  # (done, total, label), delivered on the GUI thread
    aborted = Signal()  # cancelled; napari's task list shows it as cancelled


class JobWorker(WorkerBase):
    """Runs ``task(progress, cancel)`` off the GUI thread; ``quit()`` cancels the task."""

    def __init__(self, task: Task) -> None:
        super().__init__(SignalsClass=JobSignals)
        self._task = task
        self.token = CancelToken()

    def quit(self) -> None:
        super().quit()
        self.token.cancel()

    def work(self) -> Any:
        try:
            return self._task(self._report, self.token)
        except CancelledError:
            self._abort_requested = True  # no `returned` for a cancelled job
            self.aborted.emit()
            return None

    def _report(self, done: int, total: int, label: str) -> None:
        self.progressed.emit(int(done), int(total), str(label))


class ActivityBar(cancelable_progress):
    """The job's bar in napari's activity dock; its Cancel button cancels the job."""

    def __init__(self, on_cancel: Callable[[], None], description: str) -> None:
        super().__init__(total=0, desc=description)
        self._on_cancel = on_cancel

    def cancel(self) -> None:
        super().cancel()
        self._on_cancel()

    def show(self, done: int, total: int, label: str) -> None:
        if label != self.desc.rstrip(": "):
            self.set_description(label)
        if total != self.total:
            self.total = total
        self.update(done - self.n)


def start_job(
    task: Task,
    description: str,
    *,
    on_progress: Callable[[int, int, str], None] | None = None,
    on_returned: Callable[[Any], None] | None = None,
    on_errored: Callable[[Exception], None] | None = None,
    on_aborted: Callable[[], None] | None = None,
    on_finished: Callable[[], None] | None = None,
) -> JobWorker:
    """Start ``task`` in a worker with a bar in the activity dock; the callbacks run on the GUI thread."""
    worker: JobWorker = create_worker(task, _worker_class=JobWorker, _start_thread=False, _ignore_errors=True)
    bar = ActivityBar(worker.quit, description)
    worker.progressed.connect(bar.show)
    if on_progress is not None:
        worker.progressed.connect(on_progress)
    worker.warned.connect(_show_warning)
    for signal, callback in (
        (worker.returned, on_returned),
        (worker.errored, on_errored),
        (worker.aborted, on_aborted),
        (worker.finished, on_finished),
    ):
        if callback is not None:
            signal.connect(callback)
    worker.finished.connect(bar.close)
    worker.bar = bar
    worker.start()
    return worker


def _show_warning(args: tuple) -> None:
    from napari.utils.notifications import show_warning

    message, category = args[0], args[1]
    if issubclass(category, DeprecationWarning):
        warnings.showwarning(*args)  # for developers, not a user's business
        return
    show_warning(in_form_words(str(message)))


#: form words for the command-line options the core's messages name
_FIELD_NAMES = {
    "dtype": "voxel type",
    "input-path-pattern": "tile pattern",
    "is-segmentation": "category",
    "pad": "pad smaller slices",
}
#: how the words before an option read in a form ("pass --pad" -> "tick 'pad smaller slices'")
_FIELD_VERBS = {"pass ": "tick ", "give ": "choose ", "another ": "another "}


def in_form_words(text: str) -> str:
    """The core's messages name command-line options (``pass --pad``); a wizard user
    needs the field instead (``tick 'pad smaller slices'``)."""
    if "--" not in text:
        return text

    def field(match) -> str:
        name = _FIELD_NAMES.get(match.group(2), match.group(2).replace("-", " "))
        return f"{_FIELD_VERBS[match.group(1)]}'{name}'" if match.group(1) else f"the '{name}' option"

    return re.sub(r"(pass |give |another )?--([a-z][a-z-]*)", field, text)


def error_sentence(error: BaseException) -> str:
    """What went wrong, in one sentence naming the file (the core's errors already do)."""
    if isinstance(error, WKWError):
        return in_form_words(str(error))
    if isinstance(error, OSError):
        reason = error.strerror or str(error)
        return f"{error.filename}: {reason}" if error.filename else reason
    return f"{type(error).__name__}: {error}"


__all__ = ["ActivityBar", "JobWorker", "Task", "error_sentence", "start_job"]
