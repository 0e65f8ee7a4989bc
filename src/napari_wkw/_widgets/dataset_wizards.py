"""Wizards that change an existing dataset in place: downsample, compress, metadata."""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, LineEdit

from ..core.downsample import INTERPOLATIONS, SAMPLING_MODES
from .dataset_fields import DatasetChoice
from .fields import open_result, parse_mag_text
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
        parts = [
            f"{layer}: {', '.join(m.folder_name() for m in mags) or 'nothing new'}" for layer, mags in built.items()
        ]
        return f"downsampled {self._path.name} ({'; '.join(parts)})"
