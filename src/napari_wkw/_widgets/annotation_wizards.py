"""The WEBKNOSSOS annotation widgets: save labels as an annotation, export one from a
dataset, show what an annotation holds (and merge one into a dataset: merge_wizard.py).

Save as WEBKNOSSOS annotation exists because napari's File > Save writes on the GUI
thread; the wizard runs the writer's own task
(:func:`napari_wkw._annotation_writer.annotation_task`) in a worker with progress and
Cancel. Every ZIP is built beside its target and renamed over it when complete."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import ComboBox, Container, LineEdit, Select

from .fields import parse_box, path_edit, path_of, selected_layer, set_path
from .job import error_sentence
from .wizard import Wizard, paragraph


class SaveAnnotationWizard(Wizard):
    """Write one labels layer, plus skeleton layers if chosen, as a WEBKNOSSOS annotation."""

    title = "saving the annotation"
    intro = (
        "Save a labels layer as a WEBKNOSSOS volume annotation (zarr3, only painted buckets, "
        "a mode pyramid) to upload to WEBKNOSSOS; add the nodes and trees of a skeleton to save it too."
    )
    run_text = "Save"
    with_job_options = False

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        self.viewer = viewer
        self.labels_field = ComboBox(choices=self._labels_choices, label="labels")
        self.skeleton = Select(choices=self._skeleton_choices, label="skeleton", allow_multiple=True)
        self.skeleton.native.setMaximumHeight(90)
        self.output = path_edit(
            "annotation file",
            mode="w",
            filter="*.zip",
            tooltip="The .zip to write (replaced only when the new one is complete)",
        )
        super().__init__(viewer, [self.labels_field, self.skeleton, self.output])
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)
        self.labels_field.changed.connect(self._fill_defaults)
        active = selected_layer(viewer)
        if active is not None and type(active).__name__ == "Labels":
            self.labels_field.value = active.name
        self._fill_defaults()
        self.validate()

    def _layers_of(self, *kinds: str) -> list:
        return [layer for layer in self.viewer.layers if type(layer).__name__ in kinds]

    def _labels_choices(self, _widget=None) -> list[str]:
        return [layer.name for layer in self._layers_of("Labels")]

    def _skeleton_choices(self, _widget=None) -> list[str]:
        return [layer.name for layer in self._layers_of("Points", "Shapes")]

    def _refresh(self, *_) -> None:
        self.labels_field.reset_choices()
        self.skeleton.reset_choices()

    def chosen_labels(self):
        return next((layer for layer in self._layers_of("Labels") if layer.name == self.labels_field.value), None)

    def chosen_skeleton(self) -> list:
        names = set(self.skeleton.value or ())
        return [layer for layer in self._layers_of("Points", "Shapes") if layer.name in names]

    def _fill_defaults(self, *_) -> None:
        """The file next to the annotation or dataset the labels came from, unless typed."""
        layer = self.chosen_labels()
        if layer is None or path_of(self.output) is not None:
            return
        set_path(self.output, default_annotation_file(layer))

    def problems(self) -> list[str]:
        found = []
        if self.chosen_labels() is None:
            found.append("choose the labels layer to save")
        output = path_of(self.output)
        if output is None:
            found.append("choose the annotation file")
        elif output.is_dir():
            found.append(f"{output} is a folder; choose a .zip file")
        elif output.suffix.lower() != ".zip":
            found.append("the annotation file must end in .zip")
        layer = self.chosen_labels()
        if layer is not None and getattr(layer.data, "ndim", 3) != 3:
            found.append(f"layer {layer.name!r} is {layer.data.ndim}D; a volume annotation is 3D")
        return found

    def task(self):
        from .._annotation_writer import annotation_task

        layers = [self.chosen_labels(), *self.chosen_skeleton()]
        tuples = [layer.as_layer_data_tuple() for layer in layers]  # GUI thread: reads no voxels
        write = annotation_task(path_of(self.output), tuples)
        self._saved = [layer.name for layer in layers]
        return lambda progress, cancel: write(progress=progress, cancel=cancel)

    def succeeded(self, path: Path) -> str:
        return f"saved {', '.join(self._saved)} as the WEBKNOSSOS annotation {path}"


def default_annotation_file(layer) -> Path:
    """``<name>_edited.zip`` beside the annotation the layer came from; else beside its
    dataset, or in the home folder."""
    metadata = layer.metadata or {}
    source = metadata.get("wk_annotation") or metadata.get("wkw_dataset")
    name = metadata.get("wk_volume") or metadata.get("wkw_layer") or layer.name
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name)).strip("._") or "annotation"
    if source:
        source = Path(source)
        return source.with_name(f"{source.stem}_edited.zip" if source.suffix == ".zip" else f"{source.name}_{stem}.zip")
    return Path.home() / f"{stem}.zip"


class ExportAnnotationWizard(Wizard):
    """A box of a dataset's segmentation layer as an annotation ZIP (`napari-wkw export-annotation`)."""

    title = "annotation export"
    intro = (
        "Write a box of a dataset's segmentation layer as a WEBKNOSSOS volume annotation (zarr3, only "
        "buckets with a label, the layer's mags) to upload to WEBKNOSSOS or open here."
    )
    run_text = "Export"
    with_job_options = False

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        from .dataset_fields import DatasetChoice

        self.choice = DatasetChoice(viewer, all_layers=False)
        self.output = path_edit("annotation file", mode="w", filter="*.zip", tooltip="The .zip to write")
        self.bbox = LineEdit(label="box", tooltip="x, y, z, width, height, depth in mag-1 voxels; empty: the layer")
        self.bbox.native.setPlaceholderText("x, y, z, w, h, d  (empty: the whole layer)")
        self.volume_name = LineEdit(label="volume name", tooltip="The volume layer's name in WEBKNOSSOS")
        self.volume_name.native.setPlaceholderText("the layer's name")
        self.fallback = LineEdit(
            label="fallback layer",
            tooltip="The dataset's segmentation layer WEBKNOSSOS shows where no bucket is painted",
        )
        self.fallback.native.setPlaceholderText("none")
        super().__init__(viewer, [*self.choice.widgets, self.output, self.bbox, self.volume_name, self.fallback])
        self._suggested = None
        self.choice.layer.changed.connect(self._fill_output)
        self._pick_segmentation()
        self._fill_output()
        self.validate()

    def _pick_segmentation(self) -> None:
        """Start on the dataset's first segmentation layer: what an annotation holds."""
        from ..core.dataset import Dataset

        path = self.choice.path
        try:
            layers = Dataset.open(path).layers.values() if path is not None else ()
        except Exception:  # noqa: BLE001 - a broken dataset shows up as a problem of the form
            return
        first = next((layer.name for layer in layers if layer.category == "segmentation"), None)
        if first is not None:
            self.choice.layer.value = first

    def _fill_output(self, *_) -> None:
        """``<dataset>_<layer>.zip`` beside the dataset, following the layer until the user
        picks a file of their own."""
        if self.choice.path is None or not self.choice.layer_name:
            return
        if path_of(self.output) not in (None, self._suggested):
            return
        self._suggested = self.choice.path.with_name(f"{self.choice.path.name}_{self.choice.layer_name}.zip")
        set_path(self.output, self._suggested)

    def problems(self) -> list[str]:
        found = [p for p in (self.choice.problem(),) if p]
        if self.choice.layer_name is None:
            found.append("choose the segmentation layer to export")
        output = path_of(self.output)
        if output is None or output.suffix.lower() != ".zip" or output.is_dir():
            found.append("choose the annotation file (.zip)")
        try:
            parse_box(self.bbox.value, "box")
        except ValueError as error:
            found.append(str(error))
        return found

    def task(self):
        from ..ops.annotations import export_annotation

        source, target, layer = self.choice.path, path_of(self.output), self.choice.layer_name
        options = {
            "bbox": parse_box(self.bbox.value, "box"),
            "volume_name": self.volume_name.value.strip() or None,
            "fallback_layer": self.fallback.value.strip() or None,
        }
        return lambda progress, cancel: export_annotation(
            source, target, layer, **options, progress=progress, cancel=cancel
        )

    def succeeded(self, path: Path) -> str:
        self.viewer.open(str(path), plugin="napari-wkw")
        return f"exported {self.choice.layer_name} to the WEBKNOSSOS annotation {path}"


class AnnotationInfoPanel(Container):
    """What an annotation holds (`napari-wkw annotation-info`), following the selected layer."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        self.viewer = viewer
        self.annotation_file = path_edit(
            "annotation",
            mode="r",
            filter="*.zip *.nml",
            tooltip="A WEBKNOSSOS annotation (.zip or .nml); follows the selected layer",
        )
        self.summary = paragraph("")
        self.info: dict | None = None
        self._worker = None
        source = Container(widgets=[self.annotation_file], labels=True)
        source.margins = (0, 0, 0, 0)
        super().__init__(widgets=[source, self.summary], labels=False)
        self.annotation_file.changed.connect(self.refresh)
        viewer.layers.selection.events.active.connect(self._follow_selection)
        self._follow_selection()

    def _follow_selection(self, *_) -> None:
        layer = selected_layer(self.viewer)
        path = (layer.metadata or {}).get("wk_annotation") if layer is not None else None
        if path and Path(path) != path_of(self.annotation_file):
            set_path(self.annotation_file, Path(path))

    def refresh(self, *_) -> None:
        """Read the annotation's summary in a worker (NML and ZIP directories only) and show it."""
        from napari.qt.threading import create_worker

        from ..ops.annotations import annotation_info

        path = path_of(self.annotation_file)
        if path is None or not path.is_file():
            self._show(None, "choose an annotation (.zip or .nml)" if path is None else f"{path}: no such file")
            return
        self._show(None, f"reading {path} ...")
        self._worker = create_worker(
            annotation_info,
            path,
            _connect={"returned": self.show, "errored": lambda e: self._show(None, error_sentence(e))},
            _ignore_errors=True,
        )

    @property
    def busy(self) -> bool:
        return self._worker is not None and self._worker.is_running

    def show(self, info: dict) -> None:
        from html import escape

        from ..ops.annotations import format_annotation_info

        self._show(info, f"<pre style='font-size: small'>{escape(format_annotation_info(info))}</pre>")

    def _show(self, info: dict | None, text: str) -> None:
        self.info = info
        self.summary.value = text


class MergeAnnotationWizard(Wizard):
    """Paint an annotation's volume over a dataset's segmentation layer (`napari-wkw merge-annotation`)."""

    title = "merging the annotation"
    intro = (
        "Paint a WEBKNOSSOS annotation's volume over a segmentation layer of its dataset: where the "
        "annotation holds a bucket its labels win, elsewhere the layer keeps its ids; the coarser mags are "
        "updated where it reaches. Into a new layer, the original stays as it is."
    )
    run_text = "Merge"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        from ..ops.merge_annotation import MODES
        from .dataset_fields import DatasetChoice

        self.annotation_file = path_edit("annotation", mode="r", filter="*.zip", tooltip="A volume annotation ZIP")
        self.choice = DatasetChoice(viewer, all_layers=False)
        self.into = LineEdit(label="into new layer", tooltip="Write the result as a new layer; empty: in place")
        self.into.native.setPlaceholderText("(merge in place)")
        self.volume_name = LineEdit(label="volume", tooltip="The annotation's volume layer when it has several")
        self.volume_name.native.setPlaceholderText("its only one")
        self.mode = ComboBox(
            choices=MODES,
            value="auto",
            label="mode",
            tooltip="bucket: painted buckets replace the layer, zeros included (erasures); voxel: only non-zero "
            "voxels; auto: bucket when the annotation names a fallback layer, else voxel",
        )
        super().__init__(viewer, [self.annotation_file, *self.choice.widgets, self.into, self.volume_name, self.mode])
        layer = selected_layer(viewer)
        source = (layer.metadata or {}).get("wk_annotation") if layer is not None else None
        if source and str(source).endswith(".zip"):
            set_path(self.annotation_file, Path(source))
        self.validate()

    def problems(self) -> list[str]:
        from .fields import layer_name_problem

        found = []
        annotation = path_of(self.annotation_file)
        if annotation is None or not annotation.is_file():
            found.append("choose the annotation ZIP" if annotation is None else f"{annotation}: no such file")
        found += [p for p in (self.choice.problem(),) if p]
        if self.choice.layer_name is None:
            found.append("choose the segmentation layer to paint over")
        if self.into.value.strip() and (problem := layer_name_problem(self.into.value.strip())):
            found.append(problem)
        return found

    def task(self):
        from ..ops.merge_annotation import merge_annotation

        annotation, dataset, layer = path_of(self.annotation_file), self.choice.path, self.choice.layer_name
        options = {
            "into": self.into.value.strip() or None,
            "volume_name": self.volume_name.value.strip() or None,
            "mode": self.mode.value,
            "jobs": self.jobs(),
        }
        return lambda progress, cancel: merge_annotation(
            annotation, dataset, layer, **options, progress=progress, cancel=cancel
        )

    def succeeded(self, result) -> str:
        from .fields import open_result

        open_result(self.viewer, result.dataset)
        return (
            f"merged {result.buckets} bucket(s) of {result.volume!r} into {result.layer} ({result.mode} mode, "
            f"{result.files_rewritten} file(s) rewritten)"
        )
