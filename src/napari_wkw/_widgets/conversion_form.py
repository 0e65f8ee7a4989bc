"""The form every conversion wizard shares (see ``convert_wizards.py`` for the five).

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
from magicgui.widgets import CheckBox, ComboBox, FileEdit, LineEdit, PushButton, Widget

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
from .wizard import Wizard, paragraph

AUTO = "auto"
FROM_INPUT = "the input's"
NONE = "(none)"
IMAGE_FILTER = "Images (*.tif *.tiff *.png *.jpg *.jpeg *.bmp *.dm3 *.dm4)"
NIFTI_FILTER = "NIFTI (*.nii *.nii.gz)"
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


def number_edit(label: str, empty: str, tooltip: str) -> LineEdit:
    """A whole-number field that may stay empty (``empty`` says what that means)."""
    edit = LineEdit(label=label, tooltip=tooltip)
    edit.native.setPlaceholderText(empty)
    return edit


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
        from ..core.element_class import WKW_DTYPE_NAMES

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
            choices=(FROM_INPUT, *WKW_DTYPE_NAMES),
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


def stack_note(path: Path) -> str:
    from ..convert.image_stack import list_slice_files

    files = list_slice_files(path)
    kinds = ", ".join(sorted({f.suffix.lower() for f in files}))
    if len(files) == 1:
        return f"an image stack: one {kinds} file (its pages are the slices)"
    return f"an image stack of {len(files)} {kinds} slices"


def tiles_note(path: Path) -> str:
    from ..convert.tiles import detect_tile_pattern

    pattern = detect_tile_pattern(path) if path.is_dir() else None
    if pattern is None:
        raise WKWError(f"{path}: no tiles found as {{z}}/{{y}}/{{x}}.<ext> folders or {{z}}_{{y}}_{{x}}.<ext> files")
    return f"a tiled stack, tiles at {pattern}"


def knossos_note(path: Path) -> str:
    from ..convert.knossos import CONF_NAME, looks_like_knossos

    if not looks_like_knossos(path):
        raise WKWError(f"{path}: no KNOSSOS cubes (no knossos.conf, mag1/ ... folders or x0000/y0000/z0000/ cubes)")
    folder = path.parent if path.is_file() else path
    conf = any((where / CONF_NAME).is_file() for where in (folder, knossos_base(folder)))
    return "KNOSSOS cubes" + (" with knossos.conf (size and voxel size from it)" if conf else "")


def nifti_note(path: Path) -> str:
    from ..convert.nifti import find_nifti_files, looks_like_nifti

    if path.is_file():
        if not looks_like_nifti(path):
            raise WKWError(f"{path}: not a NIFTI file (.nii, .nii.gz with a NIFTI header)")
        return "a NIFTI volume"
    files = find_nifti_files(path) if path.is_dir() else []
    if not files:
        raise WKWError(f"{path}: holds no NIFTI files (.nii, .nii.gz)")
    return f"{len(files)} NIFTI volume{'s' if len(files) > 1 else ''}, one layer each (named by the file)"


def knossos_base(path: Path) -> Path:
    """A KNOSSOS dataset is named after its root folder, not after knossos.conf or a mag folder."""
    return path.parent if path.name == "knossos.conf" or re.fullmatch(r"(.*mag)?\d+", path.name) else path


NOTES = {"image-stack": stack_note, "tiled-stack": tiles_note, "knossos": knossos_note, "nifti": nifti_note}


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
        self.note = paragraph("", "color: #8fa1b3;")
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
