"""The shape every wizard shares: a short intro, the form, job options, a live list of
what is wrong with the form, Run and Cancel, and a progress line.

A subclass gives its fields, says what is wrong (cheap checks only: they run on every
keystroke), builds the task from the form on the GUI thread (the slow parts, like
listing 10,000 slices, go inside the task) and says what to do with the result.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Container, Label, ProgressBar, PushButton, Widget

from ..core.errors import WKWError
from .fields import JobOptions
from .job import JobWorker, Task, error_sentence, start_job

_PROBLEM_STYLE = "color: #f0a35e;"
_FAILED_STYLE = "color: #e06c75;"
_DONE_STYLE = "color: #98c379;"


class Wizard(Container):
    """Base class of the operation wizards (see the module docstring)."""

    title = "operation"  # "cubing", used in notifications
    intro = ""  # one or two sentences at the top of the form
    run_text = "Run"
    with_job_options = True

    def __init__(self, viewer, fields: list[Widget]) -> None:
        self.viewer = viewer
        self.worker: JobWorker | None = None
        self._intro = paragraph(self.intro)
        self.job_options = JobOptions() if self.with_job_options else None
        form_widgets = [*fields, *(self.job_options.widgets if self.job_options is not None else [])]
        #: the labelled fields; the intro, buttons and status span the whole width below it
        self.form = Container(widgets=form_widgets, labels=True)
        self.form.margins = (0, 0, 0, 0)
        self._problems = paragraph("", _PROBLEM_STYLE)
        self.run_button = PushButton(text=self.run_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False)
        buttons.margins = (0, 0, 0, 0)
        self.progress_bar = ProgressBar(value=0, min=0, max=1, visible=False)
        self.status = paragraph("")
        super().__init__(
            widgets=[self._intro, self.form, self._problems, buttons, self.progress_bar, self.status], labels=False
        )
        self.native.layout().addStretch(1)  # pack to the top; widgets added later go above it
        self.align_labels()
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        for field in form_widgets:
            field.changed.connect(self.validate)

    def align_labels(self) -> None:
        """Give the form's labels one width that fits the widest in napari's theme
        (magicgui measures them in the default font, which napari's theme draws larger;
        call again after inserting fields)."""
        from qtpy.QtGui import QFont, QFontMetrics

        rows = [(w, w._labeled_widget()) for w in self.form if hasattr(w, "_labeled_widget")]
        rows = [(w, labeled) for w, labeled in rows if labeled is not None]
        if not rows:
            return
        metrics = QFontMetrics(QFont())
        widest = max(metrics.horizontalAdvance(str(w.label)) for w, _ in rows)
        for _, labeled in rows:
            labeled.label_width = int(widest * 1.3) + 6

    # ---- what subclasses provide ----------------------------------------------------------

    def problems(self) -> list[str]:
        """What is wrong with the form, one sentence each (empty: ready to run)."""
        return []

    def task(self) -> Task:
        """The core call for the current form: ``task(progress, cancel) -> result``."""
        raise NotImplementedError

    def succeeded(self, result: Any) -> str:
        """Show the result in the viewer; return the sentence saying what was written."""
        return f"{self.title} finished"

    # ---- running ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.worker is not None

    def jobs(self):
        """The JobSettings of the job options (threads on all cores without them)."""
        from ..jobs.runner import JobSettings

        return self.job_options.settings() if self.job_options is not None else JobSettings()

    def all_problems(self) -> list[str]:
        try:
            found = list(self.problems())
        except (ValueError, WKWError, OSError) as error:
            found = [error_sentence(error) if not isinstance(error, ValueError) else str(error)]
        if self.job_options is not None and (problem := self.job_options.problem()):
            found.append(problem)
        return found

    def validate(self, *_) -> bool:
        """Show what is wrong before Run is pressed; Run is enabled only for a valid form."""
        found = self.all_problems()
        self._problems.value = "\n".join(f"• {problem}" for problem in found)
        self._problems.visible = bool(found)
        self.run_button.enabled = not found and not self.running
        return not found

    def run(self, *_) -> JobWorker | None:
        """Start the operation in a worker thread (nothing happens while one runs)."""
        if self.running or not self.validate():
            return None
        try:
            task = self.task()
        except (ValueError, WKWError, OSError) as error:
            self._show_failure(error)
            return None
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.progress_bar.visible = True
        self.progress_bar.value = 0
        self._set_status(f"{self.title}: starting", None)
        self.worker = start_job(
            task,
            self.title,
            on_progress=self._show_progress,
            on_returned=self._on_returned,
            on_errored=self._show_failure,
            on_aborted=self._on_aborted,
            on_finished=self._on_finished,
        )
        return self.worker

    def cancel(self, *_) -> None:
        if self.worker is not None:
            self.cancel_button.enabled = False
            self._set_status(f"{self.title}: cancelling after the files being written ...", None)
            self.worker.quit()

    def _show_progress(self, done: int, total: int, label: str) -> None:
        self.progress_bar.max = max(total, 1)
        self.progress_bar.value = min(done, max(total, 1))
        self._set_status(f"{label}: {done} of {total}", None)

    def _on_returned(self, result: Any) -> None:
        from napari.utils.notifications import show_info

        try:
            message = self.succeeded(result)
        except Exception as error:  # noqa: BLE001 - opening the result must not take the widget down
            self._show_failure(error)
            return
        self._set_status(message, _DONE_STYLE)
        show_info(message)

    def _show_failure(self, error: BaseException) -> None:
        from napari.utils.notifications import show_error

        sentence = error_sentence(error)
        self._set_status(f"failed: {sentence}", _FAILED_STYLE)
        show_error(f"{self.title} failed: {sentence}")

    def _on_aborted(self) -> None:
        from napari.utils.notifications import show_info

        message = f"{self.title} cancelled; files written so far are complete and nothing half-written was kept"
        self._set_status(message, _FAILED_STYLE)
        show_info(message)

    def _on_finished(self) -> None:
        self.worker = None
        self.cancel_button.enabled = False
        self.progress_bar.visible = False
        self.validate()

    def _set_status(self, text: str, style: str | None) -> None:
        self.status.value = text
        self.status.native.setStyleSheet(style or "")


def paragraph(text: str, style: str = "") -> Label:
    """A left-aligned, word-wrapped line of text across the wizard's width."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QSizePolicy

    label = Label(value=text)
    label.native.setWordWrap(True)
    label.native.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    label.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    if style:
        label.native.setStyleSheet(style)
    return label
