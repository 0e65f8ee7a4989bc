"""Wizards that convert an input into a WKW dataset: image stacks, tiled stacks, KNOSSOS,
NIFTI, and anything (detected).

All five share one form (:class:`ConversionWizard`): the input, a note saying what the
input holds, the output folder next to it, a layer name from its name and the shared
conversion options (:class:`ConversionOptions`). They build the same layer specs as the
command line (``convert/specs.py`` and the ``build_*_specs``), but inside the worker:
opening 10,000 slices must not freeze the viewer. The engine builds each layer in a
hidden staging folder and installs it only when complete, so a cancelled run leaves no
half-written layer, and running again resumes it.
"""

from __future__ import annotations

import contextlib
import glob
import re
from collections.abc import Sequence
from pathlib import Path

from magicgui.application import use_app
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, LineEdit, PushButton, SpinBox, Widget
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QSizePolicy

from ..core.errors import WKWError
from .fields import (
    format_triple,
    layer_name_problem,
    layer_voxel_size,
    name_from_folder,
    open_result,
    parse_mag_text,
    parse_triple,
    path_edit,
    path_of,
    selected_layer,
    sibling_output,
    voxel_size_edit,
)
from .wizard import Wizard

AUTO = "auto"
FROM_INPUT = "the input's"
NONE = "(none)"
_IMAGE_FILTER = "Images (*.tif *.tiff *.png *.jpg *.jpeg *.bmp *.dm3 *.dm4)"
_NIFTI_FILTER = "NIFTI (*.nii *.nii.gz)"
# ---- form pieces ---------------------------------------------------------------------------------


def input_edit(label: str, *, files: bool, folders: bool, filter: str | None = None, tooltip: str = "") -> FileEdit:
    """A path field whose Browse picks folders, with a second button for files when both are inputs."""
    edit = path_edit(label, mode="d" if folders else "r", filter=filter, tooltip=tooltip)
    if folders and files:
        edit.choose_btn.text = "Folder…"
        pick_file = PushButton(text="File…")

        def choose_file(*_) -> None:
            start = path_of(edit)
            chosen = use_app().get_obj("show_file_dialog")(
                "r", caption="Select file", start_path=str(start) if start else None, filter=filter
            )
            if chosen:
                edit.value = chosen

        pick_file.changed.connect(choose_file)
        edit.native.layout().addWidget(pick_file.native)  # FileEdit has no append
        edit.file_button = pick_file
    return edit


def _note() -> Label:
    label = Label(value="", label="")
    label.native.setWordWrap(True)
    label.native.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    label.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)  # the field's width
    label.native.setStyleSheet("color: #8fa1b3;")
    return label


def _number_edit(label: str, empty: str, tooltip: str) -> LineEdit:
    """A whole-number field that may stay empty (``empty`` says what that means)."""
    edit = LineEdit(label=label, tooltip=tooltip)
    edit.native.setPlaceholderText(empty)
    return edit


def _optional_int(edit: LineEdit, what: str, least: int = 0) -> int | None:
    """The number in ``edit``; None when empty; else ValueError saying why."""
    text = edit.value.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < least:
        raise ValueError(f"{what} must be a whole number of {least} or more, not {text!r}")
    return int(text)


def _parse_box(text: str):
    """``"0,0,0,512,512,100"`` -> BoundingBox; empty -> None; else ValueError saying why."""
    from ..core.geometry import BoundingBox

    if not text.strip():
        return None
    try:
        numbers = [int(p) for p in re.split(r"[,\s]+", text.strip()) if p]
    except ValueError:
        numbers = []
    if len(numbers) != 6 or min(numbers[3:]) <= 0 or min(numbers[:3]) < 0:
        raise ValueError(f"bounding box must be x, y, z, width, height, depth (whole voxels), not {text.strip()!r}")
    return BoundingBox(tuple(numbers[:3]), tuple(numbers[3:]))


def _output_problem(target: Path | None, names: list[str], overwrite: bool) -> str | None:
    """Why the conversion cannot write into ``target``: an existing WKW dataset takes new
    layers (a layer of the same name only with overwrite), any other non-empty folder is refused."""
    from ..core.locate import looks_like_wkw
    from ..core.properties import PROPERTIES_FILE, read_properties

    if target is None:
        return "choose the output folder"
    if target.is_file():
        return f"{target} is a file; the output must be a folder"
    if not target.is_dir() or not any(not child.name.startswith(".") for child in target.iterdir()):
        return None
    if not looks_like_wkw(target):
        return f"{target} exists and is not a WKW dataset; choose a new folder (or a WKW dataset to add layers to)"
    existing = {child.name for child in target.iterdir() if child.is_dir()}
    with contextlib.suppress(OSError, ValueError, WKWError):  # a broken properties file: the folders tell
        existing |= {layer.name for layer in read_properties(target / PROPERTIES_FILE).layers}
    taken = [name for name in names if name in existing]
    if taken and not overwrite:
        listed = ", ".join(repr(name) for name in taken)
        return f"{target} has a layer {listed} already; tick 'overwrite' to replace it, or choose another layer name"
    return None


def _dataset_voxel_size(target: Path | None) -> tuple[float, float, float] | None:
    """The voxel size of the WKW dataset at ``target``, if it is one with properties."""
    from ..core.properties import PROPERTIES_FILE, read_properties

    if target is None or not (target / PROPERTIES_FILE).is_file():
        return None
    try:
        return read_properties(target / PROPERTIES_FILE).voxel_size
    except (OSError, ValueError, WKWError):
        return None


def _resume_note(target: Path | None, names: list[str]) -> str:
    from ..convert.engine import STAGING_SUFFIX

    if target is None or not target.is_dir():
        return ""
    unfinished = [name for name in names if (target / f".{name}{STAGING_SUFFIX}").is_dir()]
    if not unfinished:
        return ""
    return (
        f"an unfinished conversion of {', '.join(unfinished)} is in the output folder: "
        "Run resumes it (with the same input and options)"
    )


class ConversionOptions:
    """The options every conversion shares (the command line's shared options).

    Not a container of its own: ``widgets`` (always shown) and ``advanced`` (behind
    "more options") join the wizard's form so labels align.
    """

    def __init__(self) -> None:
        from ..core.downsample import INTERPOLATIONS
        from ..core.element_class import WKW_DTYPES

        self.voxel_size = voxel_size_edit()
        self.category = ComboBox(
            choices=(AUTO, "color", "segmentation"),
            value=AUTO,
            label="category",
            tooltip="auto: segmentation if the layer name says seg or label, else color",
        )
        self.pyramid = CheckBox(
            value=True,
            text="build the pyramid (downsampled mags)",
            tooltip="On here so the result looks good when zoomed out; the command line's cube leaves it off",
        )
        self.compress = CheckBox(value=True, text="LZ4-compress", tooltip="Off: raw files, larger on disk")
        self.overwrite = CheckBox(value=False, text="overwrite", tooltip="Replace layers of the same name")
        self.dtype = ComboBox(
            choices=(FROM_INPUT, *sorted({str(d) for d in WKW_DTYPES})),
            value=FROM_INPUT,
            label="voxel type",
            tooltip="The stored voxel type; default: the input's",
        )
        self.max_mag = LineEdit(label="up to mag", tooltip="Coarsest mag of the pyramid, e.g. 16-16-8")
        self.max_mag.native.setPlaceholderText("about 100 px in x and y")
        self.interpolation = ComboBox(
            choices=(AUTO, *INTERPOLATIONS),
            value=AUTO,
            label="pyramid filter",
            tooltip="auto: median for color, mode for segmentation",
        )
        self.widgets: list[Widget] = [self.voxel_size, self.category, self.pyramid, self.compress, self.overwrite]
        self.advanced: list[Widget] = [self.dtype, self.max_mag, self.interpolation]
        self.pyramid.changed.connect(self._show_pyramid_fields)

    def _show_pyramid_fields(self, *_) -> None:
        self.max_mag.enabled = self.interpolation.enabled = self.pyramid.value

    def problems(self) -> list[str]:
        found = []
        for parse, edit, what in (
            (parse_triple, self.voxel_size, "voxel size"),
            (parse_mag_text, self.max_mag, "up to mag"),
        ):
            try:
                parse(edit.value, what)
            except ValueError as error:
                found.append(str(error))
        return found

    @property
    def category_value(self) -> str | None:
        return None if self.category.value == AUTO else self.category.value

    @property
    def dtype_value(self) -> str | None:
        return None if self.dtype.value == FROM_INPUT else self.dtype.value

    def settings(self):
        """The ConversionSettings of the form (ValueError for a field that does not parse)."""
        from ..convert.engine import ConversionSettings

        return ConversionSettings(
            voxel_size=parse_triple(self.voxel_size.value, "voxel size"),
            compress=self.compress.value,
            pyramid=self.pyramid.value,
            max_mag=parse_mag_text(self.max_mag.value, "up to mag") if self.pyramid.value else None,
            interpolation=None if self.interpolation.value == AUTO else self.interpolation.value,
            overwrite=self.overwrite.value,
        )


# ---- what an input holds (cheap: only names and headers) ---------------------------------------


def _stack_note(path: Path) -> str:
    from ..convert.image_stack import list_slice_files

    files = list_slice_files(path)
    kinds = ", ".join(sorted({f.suffix.lower() for f in files}))
    if len(files) == 1:
        return f"an image stack: one {kinds} file (its pages are the slices)"
    return f"an image stack of {len(files)} {kinds} slices"


def _tiles_note(path: Path) -> str:
    from ..convert.tiles import detect_tile_pattern

    pattern = detect_tile_pattern(path) if path.is_dir() else None
    if pattern is None:
        raise WKWError(f"{path}: no tiles found as {{z}}/{{y}}/{{x}}.<ext> folders or {{z}}_{{y}}_{{x}}.<ext> files")
    return f"a tiled stack, tiles at {pattern}"


def _knossos_note(path: Path) -> str:
    from ..convert.knossos import CONF_NAME, looks_like_knossos

    if not looks_like_knossos(path):
        raise WKWError(f"{path}: no KNOSSOS cubes (no knossos.conf, mag1/ ... folders or x0000/y0000/z0000/ cubes)")
    folder = path.parent if path.is_file() else path
    conf = any((where / CONF_NAME).is_file() for where in (folder, _knossos_base(folder)))
    return "KNOSSOS cubes" + (" with knossos.conf (size and voxel size from it)" if conf else "")


def _nifti_note(path: Path) -> str:
    from ..convert.nifti import find_nifti_files, looks_like_nifti

    if path.is_file():
        if not looks_like_nifti(path):
            raise WKWError(f"{path}: not a NIFTI file (.nii, .nii.gz with a NIFTI header)")
        return "a NIFTI volume"
    files = find_nifti_files(path) if path.is_dir() else []
    if not files:
        raise WKWError(f"{path}: holds no NIFTI files (.nii, .nii.gz)")
    return f"{len(files)} NIFTI volume{'s' if len(files) > 1 else ''}, one layer each (named by the file)"


def _knossos_base(path: Path) -> Path:
    """A KNOSSOS dataset is named after its root folder, not after knossos.conf or a mag folder."""
    return path.parent if path.name == "knossos.conf" or re.fullmatch(r"(.*mag)?\d+", path.name) else path


_NOTES = {"image-stack": _stack_note, "tiled-stack": _tiles_note, "knossos": _knossos_note, "nifti": _nifti_note}


# ---- the shared wizard -----------------------------------------------------------------------------


class ConversionWizard(Wizard):
    """Input -> a new or existing WKW dataset, through the conversion engine.

    A subclass says how to pick its input, what the input holds (:meth:`inspect`,
    cheap), which layers it will write (:meth:`layer_names`) and how to build the layer
    specs (:meth:`specs_builder`, reads the form; the builder runs in the worker).
    """

    input_label = "input"
    input_files = True
    input_folders = True
    input_filter: str | None = None
    input_tooltip = ""
    allow_glob = False

    def __init__(self, viewer, fields: Sequence[Widget] = (), advanced: Sequence[Widget] = ()) -> None:
        self.input = input_edit(
            self.input_label,
            files=self.input_files,
            folders=self.input_folders,
            filter=self.input_filter,
            tooltip=self.input_tooltip,
        )
        self.note = _note()
        self.output = path_edit("output folder", tooltip="A new folder, or a WKW dataset to add the layers to")
        self.layer_name = LineEdit(label="layer name", tooltip="Name of the new layer; default: the input's name")
        self.conversion = ConversionOptions()
        self.more = CheckBox(value=False, text="more options", label="")
        self._advanced = [*advanced, *self.conversion.advanced]
        self._auto: dict[int, str] = {}  # id(field) -> the default it was given (replaced while untouched)
        self._inspected: tuple[object, str | None, str] | None = None  # (inspect_key(), problem, note)
        self._layer_voxel: tuple[str, str] | None = None  # (input, voxel size) of the selected layer
        self.input.changed.connect(self._input_changed)  # before validate(): defaults first
        self.output.changed.connect(self._default_voxel_size)
        self.more.changed.connect(self._show_advanced)
        super().__init__(
            viewer,
            [
                self.input,
                self.note,
                self.output,
                self.layer_name,
                *fields,
                *self.conversion.widgets,
                self.more,
                *self._advanced,
            ],
        )
        self._show_advanced()
        self._default_from_viewer(viewer)
        self._input_changed()

    # ---- what subclasses provide

    def inspect(self, path: Path) -> str:
        """What the input holds, for the note (cheap); WKWError saying why it is not usable."""
        raise NotImplementedError

    def layer_names(self) -> list[str]:
        """The layers the conversion will write, where the form tells (for the overwrite check)."""
        return [self.layer_name.value.strip()]

    def specs_builder(self):
        """A callable returning the layer specs for the form; called in the worker."""
        raise NotImplementedError

    def input_changed(self, path: Path | None) -> None:
        """Hook: the input changed (update fields that depend on it)."""

    def inspect_key(self) -> object:
        """What :meth:`inspect` depends on: it runs again only when this changes."""
        return self.input.line_edit.value.strip()

    # ---- form state

    @property
    def input_path(self) -> Path | None:
        return path_of(self.input)

    @property
    def output_path(self) -> Path | None:
        path = path_of(self.output)
        return path.absolute() if path is not None else None

    def _inspection(self) -> tuple[str | None, str]:
        """(problem, note) of the current input, remembered until it changes."""
        key = self.inspect_key()
        if self._inspected is None or self._inspected[0] != key:
            self._inspected = (key, *self._inspect_text(self.input.line_edit.value.strip()))
        return self._inspected[1], self._inspected[2]

    def _inspect_text(self, text: str) -> tuple[str | None, str]:
        path = path_of(self.input)
        if path is None:
            return f"choose the {self.input_label}", ""
        if not path.exists() and not (self.allow_glob and glob.has_magic(text)):
            return f"{path} does not exist", ""
        try:
            return None, self.inspect(path)
        except (WKWError, OSError, ValueError) as error:
            return str(error), ""

    def defaults_base(self, path: Path) -> Path:
        """The path the default layer name and output folder are named after."""
        return path.parent if glob.has_magic(str(path)) else path

    def _set_default(self, field, value: str) -> None:
        """Give ``field`` a default, unless the user typed something else there."""
        current = field.line_edit.value if isinstance(field, FileEdit) else field.value
        if current.strip() and current != self._auto.get(id(field)):
            return
        self._auto[id(field)] = value
        if isinstance(field, FileEdit):
            field.line_edit.value = value
        else:
            field.value = value

    def _default_from_viewer(self, viewer) -> None:
        """The selected layer's file or folder, if it is this wizard's kind of input, and its voxel size."""
        layer = selected_layer(viewer)
        source = getattr(getattr(layer, "source", None), "path", None) if layer is not None else None
        if not source or layer.metadata.get("wkw_dataset") or not Path(source).exists():
            return
        try:
            self.inspect(Path(source))
        except (WKWError, OSError, ValueError):
            return
        size = layer_voxel_size(layer)
        if size is not None and any(v != 1 for v in size):  # 1,1,1 is napari's "no scale": let the input say
            self._layer_voxel = (str(source), format_triple(size))
        self.input.line_edit.value = str(source)

    def _default_voxel_size(self, *_) -> None:
        """An existing output dataset's voxel size (new layers must have it), else the selected
        layer's for the input it shows, else empty: what the input states."""
        size = _dataset_voxel_size(self.output_path)
        if size is not None:
            text = format_triple(size)
        elif self._layer_voxel is not None and self._layer_voxel[0] == self.input.line_edit.value.strip():
            text = self._layer_voxel[1]
        else:
            text = ""
        self._set_default(self.conversion.voxel_size, text)

    def _input_changed(self, *_) -> None:
        problem, note = self._inspection()
        path = self.input_path
        if path is not None and problem is None:
            base = self.defaults_base(path)
            self._set_default(self.layer_name, name_from_folder(base))
            self._set_default(self.output, str(sibling_output(base)))
        self._default_voxel_size()
        self.input_changed(path if problem is None else None)
        self._show_note()

    def _show_note(self) -> None:
        _, note = self._inspection()
        names = self._names_or_empty()
        lines = [f"detected: {note}" if note else "", _resume_note(self.output_path, names)]
        self.note.value = "\n".join(line for line in lines if line)
        self.note.visible = bool(self.note.value)

    def _names_or_empty(self) -> list[str]:
        try:
            return [name for name in self.layer_names() if name]
        except (WKWError, OSError, ValueError):
            return []

    def _show_advanced(self, *_) -> None:
        for field in self._advanced:
            field.visible = self.more.value

    # ---- the Wizard interface

    def validate(self, *_) -> bool:
        if hasattr(self, "note"):
            self._show_note()
        return super().validate()

    def problems(self) -> list[str]:
        problem, _ = self._inspection()
        found = [problem] if problem else []
        if not found and self.layer_name.enabled and (name_problem := layer_name_problem(self.layer_name.value)):
            found.append(name_problem)
        try:
            names = self.layer_names() if not found else []
        except (WKWError, ValueError) as error:
            found.append(str(error))
            names = []
        if output_problem := _output_problem(self.output_path, names, self.conversion.overwrite.value):
            found.append(output_problem)
        return found + self.conversion.problems()

    def run(self, *_):
        self._inspected = None  # look at the input again: it may have changed on disk
        return super().run()

    def task(self):
        from ..convert.engine import convert_layers

        target, settings, jobs, build = self.output_path, self.conversion.settings(), self.jobs(), self.specs_builder()
        self._source = self.input_path

        def run(progress, cancel):
            specs = build()
            cancel.raise_if_cancelled()
            return convert_layers(target, specs, settings, jobs=jobs, progress=progress, cancel=cancel)

        return run

    def succeeded(self, result) -> str:
        open_result(self.viewer, result.path)
        layers = "; ".join(
            f"{name} (mags {', '.join(m.folder_name() for m in mags)})" for name, mags in result.layers.items()
        )
        resumed = f", resuming the unfinished conversion of {', '.join(result.resumed)}" if result.resumed else ""
        size = format_triple(result.voxel_size)
        return f"converted {self._source.name} into {result.path}: {layers} at {size} nm{resumed}"


# ---- the five wizards -------------------------------------------------------------------------------


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
    input_filter = _IMAGE_FILTER
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
        self.channel_index = _number_edit("channel", "all", "Only this channel (C axis, e.g. OME-TIFF)")
        self.sample_index = _number_edit("sample", "all", "Only this sample (S axis, e.g. one of RGB)")
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

    inspect = staticmethod(_stack_note)

    def problems(self) -> list[str]:
        found = super().problems()
        try:
            picked = [_optional_int(self.channel_index, "channel"), _optional_int(self.sample_index, "sample")]
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
            "channel_index": _optional_int(self.channel_index, "channel"),
            "sample_index": _optional_int(self.sample_index, "sample"),
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
            return _tiles_note(path)
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
        self.mag = _number_edit(
            "KNOSSOS mag", "the finest", "The mag to convert (1, 2, 4 ...), written as the same WKW mag"
        )
        super().__init__(viewer, [self.mag])
        self.conversion.dtype.tooltip = "Raw cubes carry no voxel type: how they are read and stored (default uint8)"
        self.validate()

    inspect = staticmethod(_knossos_note)

    def defaults_base(self, path: Path) -> Path:
        return _knossos_base(path)

    def problems(self) -> list[str]:
        found = super().problems()
        try:
            _optional_int(self.mag, "KNOSSOS mag", least=1)
        except ValueError as error:
            found.append(str(error))
        return found

    def specs_builder(self):
        from ..convert.knossos import build_knossos_specs
        from ..convert.specs import layer_category

        source, name = self.input_path, self.layer_name.value.strip()
        options = {
            "layer_name": name,
            "mag": _optional_int(self.mag, "KNOSSOS mag", least=1),
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
    input_filter = _NIFTI_FILTER
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

    inspect = staticmethod(_nifti_note)

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
        from ..convert.nifti import _folder_layers

        path = self.input_path
        if path is None or not path.is_dir():
            return super().layer_names()
        category = self.conversion.category_value
        layers = _folder_layers(path, category, self._picked(self.color_file), self._picked(self.segmentation_file))
        return [name for _, name, _ in layers]

    def problems(self) -> list[str]:
        found = super().problems()
        try:
            _parse_box(self.bounding_box.value)
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
            "enforce_bounding_box": _parse_box(self.bounding_box.value),
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
    input_filter = f"{_IMAGE_FILTER};;{_NIFTI_FILTER};;knossos.conf (knossos.conf)"
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
        return _NOTES[self.kind](path)

    def input_changed(self, path: Path | None) -> None:
        nifti_folder = path is not None and self.kind == "nifti" and path.is_dir()
        self.layer_name.enabled = self.layer_name.visible = not nifti_folder
        if nifti_folder:
            self._set_default(self.layer_name, "")

    def defaults_base(self, path: Path) -> Path:
        return _knossos_base(path) if self.kind == "knossos" else super().defaults_base(path)

    def layer_names(self) -> list[str]:
        path = self.input_path
        if self.kind == "nifti" and path is not None and path.is_dir():
            from ..convert.nifti import _folder_layers

            return [name for _, name, _ in _folder_layers(path, self.conversion.category_value, None, None)]
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
