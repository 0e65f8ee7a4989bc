"""Wizards that convert an input into a WKW dataset: image stacks, tiled stacks, KNOSSOS,
NIFTI, and anything (detected). Their shared form is in ``conversion_form.py``."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, Container, LineEdit, SpinBox

from ..core.errors import WKWError
from .conversion_form import (
    AUTO,
    IMAGE_FILTER,
    NIFTI_FILTER,
    NONE,
    NOTES,
    ConversionOptions,
    ConversionWizard,
    knossos_base,
    knossos_note,
    nifti_note,
    number_edit,
    stack_note,
    tiles_note,
)
from .fields import optional_int, parse_box, parse_mag_text


class CubingWizard(ConversionWizard):
    """An image stack into a WKW layer (the `napari-wkw cube` command, with the pyramid on)."""

    title = "cubing"
    intro = (
        "Cube a stack of image slices (a folder, a pattern like /data/*.tif, or one multi-page file) into a WKW "
        "layer. The pyramid is built too, so the result looks right at every zoom (the command line's cube leaves "
        "it off)."
    )
    run_text = "Cube"
    input_label = "image stack"
    input_filter = IMAGE_FILTER
    input_tooltip = "A folder of slices (TIFF, PNG, JPEG, BMP, DM3/DM4), a glob pattern, or one multi-page file"
    allow_glob = True

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        self.pad = CheckBox(
            value=False,
            text="pad smaller slices",
            tooltip="Pad slices at the bottom/right "
            "to the largest slice's size (else slices of different sizes are an error)",
        )
        self.start_z = SpinBox(value=0, min=0, max=10**7, label="start z", tooltip="z of the first slice")
        self.skip_first = SpinBox(
            value=0, min=0, max=10**7, label="skip first slices", tooltip="Leave out the first N slices"
        )
        self.channel_index = number_edit("channel", "all", "Only this channel (C axis, e.g. OME-TIFF)")
        self.sample_index = number_edit("sample", "all", "Only this sample (S axis, e.g. one of RGB)")
        self.prefer = ComboBox(
            choices=(AUTO, "channels", "layers"),
            value=AUTO,
            label="multi-channel",
            tooltip="auto: RGB (3 x uint8) as one layer, other channels one layer each; "
            "channels: one layer with channels; layers: one layer per channel",
        )
        self.slices_mag = LineEdit(label="slices are mag", tooltip="The slices are already this mag, e.g. 2-2-1")
        self.slices_mag.native.setPlaceholderText("1")
        super().__init__(
            viewer,
            [self.pad],
            [self.start_z, self.skip_first, self.channel_index, self.sample_index, self.prefer, self.slices_mag],
        )
        self.validate()

    inspect = staticmethod(stack_note)

    def problems(self) -> list[str]:
        found = super().problems()
        try:
            picked = [optional_int(self.channel_index, "channel"), optional_int(self.sample_index, "sample")]
            if None not in picked:
                found.append("give a channel or a sample, not both")
            parse_mag_text(self.slices_mag.value, "slices mag")
        except ValueError as error:
            found.append(str(error))
        return found

    def specs_builder(self):
        from ..convert.specs import image_stack_specs

        source, name = str(self.input_path), self.layer_name.value.strip()
        options = {
            "category": self.conversion.category_value,
            "dtype": self.conversion.dtype_value,
            "start_z": int(self.start_z.value),
            "skip_first": int(self.skip_first.value),
            "pad": self.pad.value,
            "channel_index": optional_int(self.channel_index, "channel"),
            "sample_index": optional_int(self.sample_index, "sample"),
            "mag": parse_mag_text(self.slices_mag.value),
            "prefer": None if self.prefer.value == AUTO else self.prefer.value,
        }
        return lambda: image_stack_specs(source, name, **options)


class TileCubingWizard(ConversionWizard):
    """A tiled stack (one file per tile, at z/y/x in its path) into a WKW layer (`napari-wkw tile-cube`)."""

    title = "tile cubing"
    intro = (
        "Cube a tiled stack, one image file per tile with its z, y and x numbers in the path, into a WKW layer. "
        "Missing tiles become zeros; the pyramid is built too."
    )
    run_text = "Cube tiles"
    input_label = "tile folder"
    input_files = False
    input_tooltip = "The folder holding {z}/{y}/{x}.jpg folders, {z}_{y}_{x}.png files or another pattern"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        self.pattern = LineEdit(
            label="tile pattern",
            tooltip="Tile paths in the folder: {z}, {y}, {x} are numbers of any length, {zzzz} exactly 4 digits, "
            "e.g. {z}/{y}/{x}.jpg or section_{z}/tile_{yy}_{xx}.png; empty: detected",
        )
        self.pattern.native.setPlaceholderText("detected from the folder")
        super().__init__(viewer, [self.pattern])
        self.validate()

    def inspect_key(self) -> object:
        return (super().inspect_key(), self.pattern.value.strip())

    def inspect(self, path: Path) -> str:
        from ..convert.tiles import TilePattern

        if not path.is_dir():
            raise WKWError(f"{path}: not a folder of tiles")
        if pattern := self.pattern.value.strip():
            TilePattern.parse(pattern)
            return f"tiles at {pattern} (as given)"
        try:
            return tiles_note(path)
        except WKWError as error:
            raise WKWError(f"{error}; give the tile pattern") from None

    def specs_builder(self):
        from ..convert.specs import layer_category
        from ..convert.tiles import build_tile_specs

        source, name = self.input_path, self.layer_name.value.strip()
        options = {
            "layer_name": name,
            "pattern": self.pattern.value.strip() or None,
            "category": layer_category(self.conversion.category_value, name),
            "dtype": self.conversion.dtype_value,
        }
        return lambda: build_tile_specs(source, **options)


class KnossosWizard(ConversionWizard):
    """KNOSSOS cubes into a WKW layer (`napari-wkw convert-knossos`)."""

    title = "KNOSSOS conversion"
    intro = (
        "Convert KNOSSOS cubes (a dataset folder with mag1/, mag2/ ... or one mag folder) into a WKW layer. "
        "knossos.conf gives the size and voxel size; missing cubes become zeros."
    )
    run_text = "Convert"
    input_label = "KNOSSOS folder"
    input_files = False
    input_tooltip = "A KNOSSOS dataset folder (mag1/, mag2/ ...), one mag folder (x0000/ ...) or its knossos.conf"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        self.mag = number_edit(
            "KNOSSOS mag", "the finest", "The mag to convert (1, 2, 4 ...), written as the same WKW mag"
        )
        super().__init__(viewer, [self.mag])
        self.conversion.dtype.tooltip = "Raw cubes carry no voxel type: how they are read and stored (default uint8)"
        self.validate()

    inspect = staticmethod(knossos_note)

    def defaults_base(self, path: Path) -> Path:
        return knossos_base(path)

    def problems(self) -> list[str]:
        found = super().problems()
        try:
            optional_int(self.mag, "KNOSSOS mag", least=1)
        except ValueError as error:
            found.append(str(error))
        return found

    def specs_builder(self):
        from ..convert.knossos import build_knossos_specs
        from ..convert.specs import layer_category

        source, name = self.input_path, self.layer_name.value.strip()
        options = {
            "layer_name": name,
            "mag": optional_int(self.mag, "KNOSSOS mag", least=1),
            "dtype": self.conversion.dtype_value,
            "category": layer_category(self.conversion.category_value, name),
        }
        return lambda: build_knossos_specs(source, **options)


class NiftiWizard(ConversionWizard):
    """NIFTI volumes into WKW layers: one file, or every file of a folder (`napari-wkw convert-nifti`)."""

    title = "NIFTI conversion"
    intro = (
        "Convert a NIFTI volume (.nii, .nii.gz), or every one in a folder (a layer each, named by its file), "
        "into WKW. The voxel size comes from the header unless you give one."
    )
    run_text = "Convert"
    input_label = "NIFTI file or folder"
    input_filter = NIFTI_FILTER
    input_tooltip = "A .nii or .nii.gz file, or a folder of them"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        self._files: list[str] = []
        self.color_file = ComboBox(
            choices=self._file_choices, label="color file", tooltip="The file to become layer 'color'"
        )
        self.segmentation_file = ComboBox(
            choices=self._file_choices, label="segmentation file", tooltip="The file to become layer 'segmentation'"
        )
        self.flip = [CheckBox(value=False, text=axis) for axis in "xyz"]
        self.flip_axes = Container(widgets=self.flip, layout="horizontal", labels=False, label="flip axes")
        self.flip_axes.margins = (0, 0, 0, 0)
        self.flip_axes.native.layout().addStretch()
        self.flip_axes.tooltip = "Reverse these axes (after the orientation header)"
        self.orientation_header = CheckBox(
            value=False,
            text="use the orientation header",
            tooltip="Reorient to the closest RAS+ axes the header's affine gives",
        )
        self.bounding_box = LineEdit(
            label="bounding box",
            tooltip="Write the data into this box x, y, z, width, height, depth: padded with zeros or cropped, "
            "centred in x and y, from the start in z",
        )
        self.bounding_box.native.setPlaceholderText("x, y, z, w, h, d  (empty: the volume's own size)")
        super().__init__(
            viewer,
            [self.color_file, self.segmentation_file, self.flip_axes, self.orientation_header],
            [self.bounding_box],
        )
        self.validate()

    inspect = staticmethod(nifti_note)

    def input_changed(self, path: Path | None) -> None:
        from ..convert.nifti import find_nifti_files

        folder = path is not None and path.is_dir()
        self._files = [str(f.relative_to(path)) for f in find_nifti_files(path)] if folder else []
        for combo in (self.color_file, self.segmentation_file):
            combo.reset_choices()
            combo.visible = folder
        self.layer_name.enabled = self.layer_name.visible = not folder
        if folder:
            self._set_default(self.layer_name, "")

    def _file_choices(self, _widget=None) -> list[str]:
        return [NONE, *self._files]

    def _picked(self, combo: ComboBox) -> str | None:
        return None if combo.value in (None, NONE) else combo.value

    def layer_names(self) -> list[str]:
        from ..convert.nifti import folder_layers

        path = self.input_path
        if path is None or not path.is_dir():
            return super().layer_names()
        category = self.conversion.category_value
        layers = folder_layers(path, category, self._picked(self.color_file), self._picked(self.segmentation_file))
        return [name for _, name, _ in layers]

    def problems(self) -> list[str]:
        found = super().problems()
        try:
            parse_box(self.bounding_box.value)
        except ValueError as error:
            found.append(str(error))
        return found

    def specs_builder(self):
        from ..convert.nifti import build_nifti_specs

        source, folder = self.input_path, self.input_path.is_dir()
        options = {
            "layer_name": None if folder else self.layer_name.value.strip(),
            "category": self.conversion.category_value,
            "dtype": self.conversion.dtype_value,
            "color_file": self._picked(self.color_file) if folder else None,
            "segmentation_file": self._picked(self.segmentation_file) if folder else None,
            "flip_axes": tuple(box.value for box in self.flip),
            "use_orientation_header": self.orientation_header.value,
            "enforce_bounding_box": parse_box(self.bounding_box.value),
        }
        return lambda: build_nifti_specs(source, **options)


class ConvertWizard(ConversionWizard):
    """Whatever the input is, into a complete WKW dataset (`napari-wkw convert`)."""

    title = "conversion"
    intro = (
        "Convert an image stack, a tiled stack, KNOSSOS cubes or NIFTI files into WKW; the form says what it "
        "found as soon as you choose the input. The other wizards offer each kind's own options."
    )
    run_text = "Convert"
    input_label = "input"
    input_filter = f"{IMAGE_FILTER};;{NIFTI_FILTER};;knossos.conf (knossos.conf)"
    input_tooltip = "A folder or file: image slices, tiles, KNOSSOS cubes or NIFTI"
    allow_glob = True

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        self.kind: str | None = None
        super().__init__(viewer)
        self.validate()

    def inspect(self, path: Path) -> str:
        from ..convert.detect import detect_input

        self.kind = None
        self.kind = detect_input(path)
        return NOTES[self.kind](path)

    def input_changed(self, path: Path | None) -> None:
        nifti_folder = path is not None and self.kind == "nifti" and path.is_dir()
        self.layer_name.enabled = self.layer_name.visible = not nifti_folder
        if nifti_folder:
            self._set_default(self.layer_name, "")

    def defaults_base(self, path: Path) -> Path:
        return knossos_base(path) if self.kind == "knossos" else super().defaults_base(path)

    def layer_names(self) -> list[str]:
        path = self.input_path
        if self.kind == "nifti" and path is not None and path.is_dir():
            from ..convert.nifti import folder_layers

            return [name for _, name, _ in folder_layers(path, self.conversion.category_value, None, None)]
        return super().layer_names()

    def specs_builder(self):
        from ..convert.detect import detect_input
        from ..convert.specs import input_specs

        source = self.input_path
        name = self.layer_name.value.strip() if self.layer_name.enabled else None
        category, dtype = self.conversion.category_value, self.conversion.dtype_value
        return lambda: input_specs(detect_input(source), source, name, category, dtype)


__all__ = [
    "ConversionOptions",
    "ConversionWizard",
    "ConvertWizard",
    "CubingWizard",
    "KnossosWizard",
    "NiftiWizard",
    "TileCubingWizard",
]
