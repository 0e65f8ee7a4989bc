"""Dataset info: what a WKW dataset holds (layers, mags, element class, bounding box,
voxel size, compression, size on disk), following the selected layer.

The summary comes from :func:`napari_wkw.ops.info.dataset_info` (headers and file
sizes only), gathered in a worker so a dataset with a million files never blocks the
viewer.
"""

from __future__ import annotations

from magicgui.widgets import Container, PushButton, Table

from ..ops.info import format_bytes
from .fields import dataset_problem, path_edit, path_of, selected_dataset, set_path
from .job import error_sentence
from .wizard import paragraph

COLUMNS = ("layer", "category", "element class", "mag", "bounding box (x, y, z + size)", "compression", "files",
           "on disk")


class DatasetInfoPanel(Container):
    """The open (or chosen) dataset's layers and mags as a table."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        self.viewer = viewer
        self.dataset = path_edit("dataset", mode="d", tooltip="A WKW dataset folder; follows the selected layer")
        self.refresh_button = PushButton(text="Refresh")
        self.summary = paragraph("")
        self.summary.native.setTextInteractionFlags(self.summary.native.textInteractionFlags() | _selectable())
        self.table = Table(value=[], columns=list(COLUMNS))
        self.table.native.setMinimumHeight(260)
        self.table.read_only = True
        self.table.native.verticalHeader().setVisible(False)
        self.info: dict | None = None
        self._worker = None
        source = Container(widgets=[self.dataset], labels=True)
        source.margins = (0, 0, 0, 0)
        super().__init__(widgets=[source, self.refresh_button, self.summary, self.table], labels=False)
        self.dataset.changed.connect(self.refresh)
        self.refresh_button.changed.connect(self.refresh)
        viewer.layers.selection.events.active.connect(self._follow_selection)
        self._follow_selection()

    def _follow_selection(self, *_) -> None:
        path = selected_dataset(self.viewer)
        if path is not None and path != path_of(self.dataset):
            set_path(self.dataset, path)

    def refresh(self, *_) -> None:
        """Read the dataset's summary in a worker and show it."""
        from napari.qt.threading import create_worker

        from ..ops.info import dataset_info

        path = path_of(self.dataset)
        problem = dataset_problem(path)
        if problem is not None:
            self._show_message(problem)
            return
        self._show_message(f"reading {path} ...")
        self._worker = create_worker(
            dataset_info, path, _connect={"returned": self.show, "errored": self._failed}, _ignore_errors=True
        )

    @property
    def busy(self) -> bool:
        return self._worker is not None and self._worker.is_running

    def show(self, info: dict) -> None:
        """Fill the summary and the table from a :func:`dataset_info` dictionary."""
        self.info = info
        voxel = " x ".join(f"{v:g}" for v in info["voxel_size"])
        note = "" if info["has_properties"] else "  (no datasource-properties.json: layers found on disk)"
        self.summary.value = (
            f"<b>{info['name']}</b> — {len(info['layers'])} layer(s), {format_bytes(info['bytes'])} on disk<br>"
            f"voxel size {voxel} {info['unit']} (x, y, z){note}<br><small>{info['path']}</small>"
        )
        rows = []
        for layer in info["layers"]:
            box = layer["bounding_box"]
            where = f"{tuple(box['topleft'])} + {tuple(box['size'])}"
            kind = layer["element_class"]
            for mag in layer["mags"]:
                rows.append([
                    layer["name"], layer["category"], kind, mag["mag"], where, mag["compression"],
                    mag["files"], format_bytes(mag["bytes"]),
                ])
            for missing in layer["missing_mags"]:
                rows.append([layer["name"], layer["category"], kind, missing, where, "missing on disk", 0, "-"])
        self._fill_table(rows)

    def _failed(self, error: Exception) -> None:
        self._show_message(f"cannot read the dataset: {error_sentence(error)}")

    def _show_message(self, text: str) -> None:
        self.info = None
        self.summary.value = text
        self._fill_table([])

    def _fill_table(self, rows: list[list]) -> None:
        self.table.value = {"data": rows, "index": [""] * len(rows), "columns": list(COLUMNS)}
        self.table.native.resizeColumnsToContents()


def _selectable():
    from qtpy.QtCore import Qt

    return Qt.TextInteractionFlag.TextSelectableByMouse


__all__ = ["DatasetInfoPanel"]
