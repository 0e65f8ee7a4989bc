"""Wizards for upsampling a layer (`napari-wkw upsample`) and exporting a box as NIFTI
(`napari-wkw export-nifti`)."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, LineEdit

from ..core.downsample import SAMPLING_MODES
from ..core.errors import WKWError
from .dataset_fields import DatasetChoice
from .fields import (
    built_mags_text,
    layer_name_problem,
    open_result,
    parse_box,
    parse_mag_text,
    path_edit,
    path_of,
    set_path,
)
from .job import in_form_words
from .wizard import Wizard, paragraph

NIFTI_FILTER = "NIFTI (*.nii.gz *.nii)"


class UpsampleWizard(Wizard):
    """Finer mags from a coarser one, by repetition (the `napari-wkw upsample` command)."""

    title = "upsampling"
    intro = (
        "Build finer mags of a layer from a coarser one by repeating its voxels (nearest), as WEBKNOSSOS' "
        "upsample does. Only missing mags are made; write into a new layer to keep an existing mag 1."
    )
    run_text = "Upsample"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        self.choice = DatasetChoice(viewer)
        self.from_mag = LineEdit(label="from mag", tooltip="The coarse mag to start from, e.g. 4-4-2")
        self.from_mag.native.setPlaceholderText("e.g. 4-4-2")
        self.target_mag = LineEdit(label="down to mag", tooltip="The finest mag to build; empty: 1")
        self.target_mag.native.setPlaceholderText("1")
        self.into_layer = LineEdit(
            label="into new layer",
            tooltip="Write a new layer (copies of the coarse mags plus the upsampled ones), keeping the layer's own "
            "fine mags; empty: add the missing mags to the layer itself",
        )
        self.into_layer.native.setPlaceholderText("empty: the layer itself")
        self.sampling_mode = ComboBox(
            choices=SAMPLING_MODES, value="anisotropic", label="sampling",
            tooltip="anisotropic: the mags a pyramid of this voxel size has; isotropic: every axis; constant-z: x/y",
        )  # fmt: skip
        self.compress = CheckBox(value=True, text="LZ4-compress the new mags")
        self.plan = paragraph("", "color: #8fa1b3;")
        super().__init__(
            viewer,
            [
                *self.choice.widgets,
                self.from_mag,
                self.target_mag,
                self.into_layer,
                self.sampling_mode,
                self.compress,
            ],
        )
        self.insert(2, self.plan)  # below the form, not in it: its text changes with the form
        self.validate()

    def _options(self) -> dict:
        from_mag = parse_mag_text(self.from_mag.value, "from mag")
        if from_mag is None:
            raise ValueError("give the mag to upsample from")
        into = self.into_layer.value.strip() or None
        if into is not None and (problem := layer_name_problem(into)):
            raise ValueError(problem.replace("layer name", "new layer name"))
        return {
            "layer_name": self.choice.layer_name,
            "from_mag": from_mag,
            "target_mag": parse_mag_text(self.target_mag.value, "down to mag") or 1,
            "sampling_mode": self.sampling_mode.value,
            "into_layer": into,
        }

    def problems(self) -> list[str]:
        from ..ops.upsample import plan_upsampling

        self.plan.value = ""
        if problem := self.choice.problem():
            return [problem]
        try:
            options = self._options()
            plans = plan_upsampling(self.choice.path, **options)
        except ValueError as error:
            return [str(error)]
        except WKWError as error:
            return [in_form_words(str(error))]
        self.plan.value = "\n".join(
            f"{plan.into}: builds {', '.join(m.folder_name() for m in plan.mags) or 'nothing'} "
            f"from {plan.source.folder_name()}" + (f" (copies {', '.join(m.folder_name() for m in plan.copied)})"
                                                    if plan.copied else "")
            for plan in plans
        )  # fmt: skip
        return []

    def validate(self, *_) -> bool:
        valid = super().validate()
        if hasattr(self, "plan"):
            self.plan.visible = bool(self.plan.value)
        return valid

    def task(self):
        from ..ops.upsample import upsample

        path, options, jobs, compress = self.choice.path, self._options(), self.jobs(), self.compress.value
        self._path = path

        def run(progress, cancel):
            return upsample(path, **options, compress=compress, jobs=jobs, progress=progress, cancel=cancel)

        return run

    def succeeded(self, built) -> str:
        open_result(self.viewer, self._path)
        return f"upsampled {self._path.name} ({built_mags_text(built)})"


class ExportNiftiWizard(Wizard):
    """Write a box of a layer as one NIFTI file (the `napari-wkw export-nifti` command)."""

    title = "NIFTI export"
    intro = (
        "Write a box of a layer as one NIFTI file (.nii, or .nii.gz compressed) with the voxel size in its header; "
        "the file's axes are the dataset's x, y, z. Written slab by slab, whatever the size of the box."
    )
    run_text = "Export"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        self.choice = DatasetChoice(viewer, all_layers=False)
        self.output = path_edit("output file", mode="w", filter=NIFTI_FILTER, tooltip="A .nii or .nii.gz file")
        self.mag = LineEdit(label="mag", tooltip="Mag to export, e.g. 2-2-1; empty: the finest")
        self.mag.native.setPlaceholderText("the finest")
        self.bbox = LineEdit(label="box", tooltip="x, y, z, width, height, depth in mag-1 voxels; empty: the layer")
        self.bbox.native.setPlaceholderText("x, y, z, w, h, d  (empty: the whole layer)")
        self.unit = ComboBox(
            choices=("mm", "um"), value="mm", label="length unit",
            tooltip="Unit of the voxel size in the header (mm is what most NIFTI tools assume)",
        )  # fmt: skip
        self.overwrite = CheckBox(value=False, text="overwrite an existing file")
        self._default: Path | None = None
        super().__init__(viewer, [*self.choice.widgets, self.output, self.mag, self.bbox, self.unit, self.overwrite])
        self.choice.dataset.changed.connect(self._follow)
        self.choice.layer.changed.connect(self._follow)
        self._follow()
        self.validate()

    def _follow(self, *_) -> None:
        """The default output, ``<dataset>_<layer>.nii.gz`` beside the dataset, until the user picks one."""
        current = path_of(self.output)
        if current is not None and current != self._default:
            return
        dataset, layer = self.choice.path, self.choice.layer_name
        self._default = dataset.absolute().parent / f"{dataset.name}_{layer}.nii.gz" if dataset and layer else None
        set_path(self.output, self._default)

    def _options(self) -> dict:
        return {
            "layer_name": self.choice.layer_name,
            "mag": parse_mag_text(self.mag.value),
            "bbox": parse_box(self.bbox.value, "box"),
            "unit": self.unit.value,
            "overwrite": self.overwrite.value,
        }

    def problems(self) -> list[str]:
        from ..ops.export_nifti import is_nifti_output

        found = [p for p in [self.choice.problem()] if p]
        if not found and self.choice.layer_name is None:
            found.append("choose the layer")
        output = path_of(self.output)
        if output is None:
            found.append("choose the output file")
        elif not is_nifti_output(output):
            found.append(f"{output.name}: the output must end in .nii or .nii.gz")
        elif output.is_dir():
            found.append(f"{output} is a folder; choose a file name")
        elif output.exists() and not self.overwrite.value:
            found.append(f"{output} exists; tick 'overwrite an existing file' or choose another name")
        try:
            self._options()
        except ValueError as error:
            found.append(str(error))
        return found

    def task(self):
        from ..ops.export_nifti import export_nifti

        source, output, options, jobs = self.choice.path, path_of(self.output), self._options(), self.jobs()

        def run(progress, cancel):
            return export_nifti(source, output, **options, jobs=jobs, progress=progress, cancel=cancel)

        return run

    def succeeded(self, result) -> str:
        x, y, z = result.box.size
        return f"wrote {result.path} ({x} x {y} x {z} {result.dtype}, {result.layer} mag {result.mag.folder_name()})"


__all__ = ["ExportNiftiWizard", "UpsampleWizard"]
