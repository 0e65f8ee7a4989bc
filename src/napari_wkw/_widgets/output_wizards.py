"""Wizards that write a new folder from a dataset: recube (a new WKW dataset), export TIFF."""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, LineEdit, SpinBox

from ..core.element_class import WKW_DTYPE_NAMES
from .dataset_fields import DatasetChoice
from .fields import layer_name_problem, open_result, parse_box, parse_ints, parse_mag_text
from .output_field import OutputFolder
from .wizard import Wizard

KEEP = "keep"


class RecubeWizard(Wizard):
    """Rewrite a dataset with another file length, voxel type or compression (`napari-wkw recube`)."""

    title = "recubing"
    intro = (
        "Write a copy of the dataset with another number of blocks per file (or voxel type, or "
        "compression), e.g. to turn millions of one-block files into the usual 32^3 blocks per file."
    )
    run_text = "Recube"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        from ..ops.recube import FILE_LENS

        self.choice = DatasetChoice(viewer)
        self.output = OutputFolder(self.choice.dataset, "_recubed", tooltip="The new dataset: a new folder")
        self.file_len = ComboBox(
            choices=FILE_LENS, value=32, label="blocks per file",
            tooltip="Blocks of 32^3 voxels per file edge: 32 is the usual (1024^3 voxels per file)",
        )
        self.dtype = ComboBox(
            choices=(KEEP, *WKW_DTYPE_NAMES), value=KEEP, label="voxel type",
            tooltip="Convert the voxels (values must fit the new type); keep: as they are",
        )
        self.compress = CheckBox(value=True, text="LZ4-compress")
        super().__init__(
            viewer, [*self.choice.widgets, self.output.edit, self.file_len, self.dtype, self.compress]
        )
        self.validate()

    def problems(self) -> list[str]:
        return [p for p in (self.choice.problem(), self.output.problem()) if p]

    def task(self):
        from ..ops.recube import recube

        source, target = self.choice.path, self.output.path
        options = {
            "layer_name": self.choice.layer_name,
            "file_len": int(self.file_len.value),
            "dtype": None if self.dtype.value == KEEP else self.dtype.value,
            "compress": self.compress.value,
            "jobs": self.jobs(),
        }

        def run(progress, cancel):
            return recube(source, target, **options, progress=progress, cancel=cancel)

        return run

    def succeeded(self, path) -> str:
        open_result(self.viewer, path)
        return f"recubed into {path} with {self.file_len.value} block(s) per file edge"


class ExportTiffWizard(Wizard):
    """Write a layer as TIFF slices or tiles (`napari-wkw export-tiff`); nothing is opened after."""

    title = "TIFF export"
    intro = (
        "Write one TIFF per z slice (or tiles of each slice in z/y/x.tiff) of a layer into a new folder. "
        "Voxel types are kept; RGB layers give RGB TIFFs."
    )
    run_text = "Export"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        self.choice = DatasetChoice(viewer)
        self.output = OutputFolder(self.choice.dataset, "_tiff", tooltip="The TIFFs go here: a new folder")
        self.mag = LineEdit(label="mag", tooltip="Mag to export, e.g. 2-2-1; empty: each layer's finest")
        self.mag.native.setPlaceholderText("the finest")
        self.bbox = LineEdit(label="box", tooltip="x, y, z, width, height, depth in mag-1 voxels; empty: the layer")
        self.bbox.native.setPlaceholderText("x, y, z, w, h, d  (empty: the whole layer)")
        self.tile_size = LineEdit(label="tile size", tooltip="width, height of tiles in z/y/x.tiff; empty: slices")
        self.tile_size.native.setPlaceholderText("w, h  (empty: whole slices)")
        self.downsample = SpinBox(
            value=1, min=1, max=1024, label="shrink x/y by",
            tooltip="Read the mag N times coarser in x/y if there is one, else downsample on the fly",
        )
        self.prefix = LineEdit(label="file prefix", tooltip="Slices are <prefix>_<z>.tiff; empty: the layer name")
        self.prefix.native.setPlaceholderText("the layer name")
        super().__init__(
            viewer,
            [*self.choice.widgets, self.output.edit, self.mag, self.bbox, self.tile_size, self.downsample, self.prefix],
        )
        self.validate()

    def _options(self) -> dict:
        """The export's options from the form (ValueError saying what is wrong)."""
        box = parse_box(self.bbox.value, "box")
        tile = parse_ints(self.tile_size.value, 2, "tile size", "width, height")
        if tile is not None and min(tile) < 1:
            raise ValueError("tile size must be positive")
        name = self.prefix.value.strip()
        if name and (problem := layer_name_problem(name)):
            raise ValueError(problem.replace("layer name", "file prefix"))
        return {
            "layer_name": self.choice.layer_name,
            "mag": parse_mag_text(self.mag.value),
            "bbox": box,
            "tile_size": tile,
            "downsample": int(self.downsample.value),
            "name": name or None,
        }

    def problems(self) -> list[str]:
        found = [p for p in (self.choice.problem(), self.output.problem()) if p]
        try:
            self._options()
        except ValueError as error:
            found.append(str(error))
        return found

    def task(self):
        from ..ops.export_tiff import export_tiff

        source, target, options, jobs = self.choice.path, self.output.path, self._options(), self.jobs()

        def run(progress, cancel):
            return target, export_tiff(source, target, **options, jobs=jobs, progress=progress, cancel=cancel)

        return run

    def succeeded(self, result) -> str:
        target, files = result
        return f"wrote {len(files)} TIFF file(s) to {target}"
