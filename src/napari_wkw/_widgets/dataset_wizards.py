"""Wizards that change an existing dataset in place: downsample, compress, metadata."""

from __future__ import annotations

import contextlib
from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, LineEdit

from ..core.downsample import INTERPOLATIONS, SAMPLING_MODES
from ..core.errors import WKWError
from ..core.properties import CATEGORIES, PROPERTIES_FILE, read_properties
from .dataset_fields import DatasetChoice
from .fields import (
    built_mags_text,
    format_triple,
    layer_voxel_size,
    open_result,
    optional_int,
    parse_mag_text,
    parse_triple,
    selected_layer,
    voxel_size_edit,
)
from .output_field import OutputFolder, parse_mags
from .wizard import Wizard

DEFAULT = "default"


class DownsampleWizard(Wizard):
    """Build the missing mags of a dataset (the `napari-wkw downsample` command)."""

    title = "downsampling"
    intro = (
        "Build the missing magnifications of a layer, each from the previous one. "
        "Each mag is written beside the dataset and moved in when complete."
    )
    run_text = "Downsample"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        self.choice = DatasetChoice(viewer)
        self.from_mag = LineEdit(label="from mag", tooltip="Source mag, e.g. 2-2-1; empty: the finest")
        self.from_mag.native.setPlaceholderText("the finest")
        self.max_mag = LineEdit(label="up to mag", tooltip="Coarsest mag to build; empty: about 100 px in x/y")
        self.max_mag.native.setPlaceholderText("about 100 px in x and y")
        self.interpolation = ComboBox(
            choices=(DEFAULT, *INTERPOLATIONS), value=DEFAULT, label="filter",
            tooltip="default: median for color, mode for segmentation",
        )
        self.sampling_mode = ComboBox(
            choices=SAMPLING_MODES, value="anisotropic", label="sampling",
            tooltip="anisotropic: z catches up with x/y first; isotropic: all axes; constant-z: x/y only",
        )
        self.compress = CheckBox(value=True, text="LZ4-compress the new mags")
        super().__init__(
            viewer,
            [*self.choice.widgets, self.from_mag, self.max_mag, self.interpolation, self.sampling_mode, self.compress],
        )
        self.validate()

    def problems(self) -> list[str]:
        found = [p for p in [self.choice.problem()] if p]
        for edit, what in ((self.from_mag, "from mag"), (self.max_mag, "up to mag")):
            try:
                parse_mag_text(edit.value, what)
            except ValueError as error:
                found.append(str(error))
        return found

    def task(self):
        from ..ops.downsample import downsample

        path, layer_name, jobs = self.choice.path, self.choice.layer_name, self.jobs()
        options = {
            "layer_name": layer_name,
            "from_mag": parse_mag_text(self.from_mag.value),
            "max_mag": parse_mag_text(self.max_mag.value),
            "interpolation": None if self.interpolation.value == DEFAULT else self.interpolation.value,
            "sampling_mode": self.sampling_mode.value,
            "compress": self.compress.value,
        }
        self._path = path

        def run(progress, cancel):
            return downsample(path, **options, jobs=jobs, progress=progress, cancel=cancel)

        return run

    def succeeded(self, built) -> str:
        open_result(self.viewer, self._path)
        return f"downsampled {self._path.name} ({built_mags_text(built)})"


class CompressWizard(Wizard):
    """LZ4-compress a dataset in place or into a new folder (the `napari-wkw compress` command)."""

    title = "compressing"
    intro = (
        "LZ4-compress the data files of a dataset. In place, each file is compressed beside the "
        "original and swapped in whole, so the dataset stays readable throughout."
    )
    run_text = "Compress"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        self.choice = DatasetChoice(viewer)
        self.mags = LineEdit(label="mags", tooltip="Mags to compress, e.g. 1, 2-2-1; empty: all")
        self.mags.native.setPlaceholderText("all")
        self.lz4hc = CheckBox(value=False, text="LZ4HC (about twice the time for ~1% smaller files)")
        self.into_copy = CheckBox(value=False, text="into a new folder (the original stays as it is)")
        self.output = OutputFolder(self.choice.dataset, "_compressed", tooltip="The compressed copy: a new folder")
        self.into_copy.changed.connect(self._show_output)
        super().__init__(
            viewer, [*self.choice.widgets, self.mags, self.lz4hc, self.into_copy, self.output.edit]
        )
        self._show_output()
        self.validate()

    def _show_output(self, *_) -> None:
        self.output.edit.visible = self.into_copy.value

    def problems(self) -> list[str]:
        found = [p for p in [self.choice.problem()] if p]
        try:
            parse_mags(self.mags.value)
        except ValueError as error:
            found.append(str(error))
        if self.into_copy.value and (problem := self.output.problem()):
            found.append(problem)
        return found

    def task(self):
        from ..ops.compress import compress

        path, target = self.choice.path, self.output.path if self.into_copy.value else None
        options = {
            "layer_name": self.choice.layer_name,
            "mags": parse_mags(self.mags.value),
            "high_compression": self.lz4hc.value,
            "jobs": self.jobs(),
        }

        def run(progress, cancel):
            return compress(path, target, **options, progress=progress, cancel=cancel)

        return run

    def succeeded(self, result) -> str:
        from ..ops.info import format_bytes

        open_result(self.viewer, result.path)
        ratio = result.bytes_after / result.bytes_before if result.bytes_before else 1.0
        return (
            f"compressed {result.files_compressed} file(s) into {result.path.name}: "
            f"{format_bytes(result.bytes_before)} -> {format_bytes(result.bytes_after)} on disk ({ratio:.0%})"
        )


AUTO = "auto"


class MetadataWizard(Wizard):
    """Write or refresh datasource-properties.json from what is on disk (`napari-wkw metadata`)."""

    title = "writing the properties"
    intro = (
        "Write the dataset's datasource-properties.json from its layer folders: element classes and "
        "mags from the headers, bounding boxes from the data. Refreshing keeps what was set by hand."
    )
    run_text = "Write properties"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        self.choice = DatasetChoice(viewer)
        self.choice.layer.label = "max id of"
        self.choice.layer.tooltip = "The segmentation layer(s) whose largest id is computed or set"
        self.voxel_size = voxel_size_edit("Voxel size x, y, z in nm; required when the dataset has no properties yet")
        self.voxel_size.native.setPlaceholderText("x, y, z  (empty: keep the dataset's)")
        self.dataset_name = LineEdit(label="dataset name", tooltip="empty: keep it (new properties: the folder name)")
        self.dataset_name.native.setPlaceholderText("keep (new: the folder name)")
        self.refresh = CheckBox(value=True, text="refresh existing properties (keep names, categories, extra keys)")
        self._category_boxes: dict[str, ComboBox] = {}
        self.box_from = ComboBox(
            choices=("data", "files"), value="data", label="boxes from",
            tooltip="data: tight to the non-zero voxels (reads the files on the faces); files: the files present "
            "(reads nothing)",
        )
        self.compute_max_id = CheckBox(value=False, text="compute the largest segment id (reads all data)")
        self.max_id = LineEdit(label="largest id", tooltip="Set largestSegmentId; empty: keep it")
        self.max_id.native.setPlaceholderText("keep")
        self._layer_size = layer_voxel_size(selected_layer(viewer))
        self._auto_size = ""
        self.choice.dataset.changed.connect(self._follow_dataset)
        self._follow_dataset()
        super().__init__(
            viewer,
            [
                self.choice.dataset, self.voxel_size, self.dataset_name, self.refresh,
                *self._category_boxes.values(), self.box_from,
                self.compute_max_id, self.max_id, self.choice.layer,
            ],
        )
        self.validate()

    def _properties_path(self) -> Path | None:
        path = self.choice.path
        return path / PROPERTIES_FILE if path is not None else None

    def _follow_dataset(self, *_) -> None:
        """Voxel size (the dataset's own, else the selected layer's) and one category per layer."""
        properties = self._properties_path()
        size = self._layer_size
        if properties is not None and properties.is_file():
            with contextlib.suppress(WKWError, OSError, ValueError):
                size = read_properties(properties).voxel_size
        if self.voxel_size.value.strip() in ("", self._auto_size):
            self._auto_size = format_triple(size) if size else ""
            self.voxel_size.value = self._auto_size
        self._show_categories()

    def _show_categories(self) -> None:
        """One category choice per layer of the chosen dataset, in the form before "boxes from"."""
        built = hasattr(self, "form")  # in the form already (else they join it at construction)
        for box in self._category_boxes.values():
            if built:
                self.form.remove(box)
        self._category_boxes = {
            name: ComboBox(
                choices=(AUTO, *CATEGORIES), value=AUTO, label=name,
                tooltip=f"Category of layer {name}; auto: keep it (new: segmentation if named seg... or label...)",
            )
            for name in self.choice.layer_names()
        }
        if built:
            at = self.form.index(self.box_from)
            for offset, box in enumerate(self._category_boxes.values()):
                self.form.insert(at + offset, box)
                box.changed.connect(self.validate)
            self.align_labels()

    def _category_choices(self) -> dict[str, str]:
        return {name: box.value for name, box in self._category_boxes.items() if box.value != AUTO}

    def _max_id(self) -> int | None:
        return optional_int(self.max_id, "largest id")

    def problems(self) -> list[str]:
        found = [p for p in [self.choice.problem()] if p]
        if found:
            return found
        try:
            size = parse_triple(self.voxel_size.value, "voxel size")
        except ValueError as error:
            found.append(str(error))
            size = ()
        has_properties = self._properties_path().is_file()
        if size is None and not has_properties:
            found.append(f"give the voxel size: {self.choice.path.name} has no {PROPERTIES_FILE} yet")
        if has_properties and not self.refresh.value:
            found.append(f"{self.choice.path.name} already has {PROPERTIES_FILE}; tick refresh to update it")
        try:
            if self._max_id() is not None and self.compute_max_id.value:
                found.append("compute the largest id or give it, not both")
        except ValueError as error:
            found.append(str(error))
        return found

    def task(self):
        from ..ops.metadata import write_metadata

        path = self.choice.path
        options = {
            "voxel_size": parse_triple(self.voxel_size.value, "voxel size"),
            "name": self.dataset_name.value.strip() or None,
            "refresh": self.refresh.value,
            "compute_max_id": self.compute_max_id.value,
            "max_id": self._max_id(),
            "categories": self._category_choices(),
            "layer_name": self.choice.layer_name,
            "box_from": self.box_from.value,
            "jobs": self.jobs(),
        }
        self._path = path

        def run(progress, cancel):
            return write_metadata(path, **options, progress=progress, cancel=cancel)

        return run

    def succeeded(self, properties) -> str:
        open_result(self.viewer, self._path)
        layers = ", ".join(f"{layer.name} ({layer.category})" for layer in properties.layers)
        return f"wrote {PROPERTIES_FILE} of {self._path.name}: {layers}"
