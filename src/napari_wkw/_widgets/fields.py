"""Form pieces the wizards share: paths, voxel sizes, mags, job options, viewer defaults."""

from __future__ import annotations

import json
import re
from pathlib import Path

from magicgui.widgets import ComboBox, FileEdit, Label, LineEdit, SpinBox

from ..core.errors import WKWError
from ..core.geometry import Mag
from ..core.locate import looks_like_wkw
from ..jobs.runner import STRATEGIES, JobSettings, default_jobs


def path_edit(label: str, mode: str = "d", filter: str | None = None, tooltip: str = "") -> FileEdit:
    """A path field with a Browse button; empty until the user (or a default) fills it."""
    edit = FileEdit(mode=mode, filter=filter, label=label, nullable=True)
    if tooltip:
        edit.tooltip = tooltip
    return edit


def path_of(edit: FileEdit) -> Path | None:
    """The path typed or picked, or None when the field is empty."""
    text = edit.line_edit.value.strip()
    return Path(text).expanduser() if text else None


def set_path(edit: FileEdit, path: Path | str | None) -> None:
    edit.value = None if path is None else Path(path)


def parse_triple(text: str, what: str) -> tuple[float, float, float] | None:
    """``"11.24, 11.24, 25"`` -> (11.24, 11.24, 25.0); empty -> None; else ValueError saying why."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not parts:
        return None
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(f"{what} must be three numbers x, y, z, not {text.strip()!r}") from None
    if len(values) != 3:
        raise ValueError(f"{what} must be three numbers x, y, z, not {text.strip()!r}")
    if min(values) <= 0:
        raise ValueError(f"{what} must be positive, not {text.strip()!r}")
    return values  # type: ignore[return-value]


def optional_int(edit: LineEdit, what: str, least: int = 0) -> int | None:
    """The number in ``edit``; None when empty; else ValueError saying why."""
    text = edit.value.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < least:
        raise ValueError(f"{what} must be a whole number of {least} or more, not {text!r}")
    return int(text)


def parse_ints(text: str, count: int, what: str, names: str) -> tuple[int, ...] | None:
    """``count`` whole numbers from ``"1, 2 3"``; empty -> None; else ValueError saying why."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not parts:
        return None
    try:
        numbers = tuple(int(p) for p in parts)
    except ValueError:
        numbers = ()
    if len(numbers) != count:
        raise ValueError(f"{what} must be {count} whole numbers {names}, not {text.strip()!r}")
    return numbers


def parse_box(text: str, what: str = "bounding box"):
    """``"0,0,0,512,512,100"`` -> BoundingBox (mag-1 voxels); empty -> None; else ValueError saying why."""
    from ..core.geometry import BoundingBox

    box = parse_ints(text, 6, what, "x, y, z, width, height, depth")
    if box is None:
        return None
    if min(box[3:]) < 1 or min(box[:3]) < 0:
        raise ValueError(f"{what} must start at 0 or more and have a positive width, height and depth")
    return BoundingBox(box[:3], box[3:])


def format_triple(values) -> str:
    return ", ".join(f"{float(v):g}" for v in values)


def voxel_size_edit(tooltip: str = "Voxel size x, y, z in nm; empty: what the input states, else 1, 1, 1") -> LineEdit:
    edit = LineEdit(label="voxel size (nm)", tooltip=tooltip)
    edit.native.setPlaceholderText("x, y, z  (empty: from the input)")
    return edit


def parse_mag_text(text: str, what: str = "mag") -> Mag | None:
    """``"4-4-2"`` or ``"4"`` -> Mag; empty -> None; else ValueError saying why."""
    text = text.strip()
    if not text:
        return None
    try:
        return Mag.parse(text)
    except (ValueError, WKWError):
        raise ValueError(f"{what} must be like 2 or 2-2-1, not {text!r}") from None


def layer_name_problem(name: str) -> str | None:
    if not name.strip():
        return "give the new layer a name"
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name.strip()) or name.strip().startswith("."):
        return f"layer name {name.strip()!r} may hold only letters, digits, '_', '-' and '.'"
    return None


def name_from_folder(path: Path) -> str:
    """A layer name from an input folder's name: ``Raw EM (1)`` -> ``Raw_EM_1``."""
    stem = path.name
    for suffix in (".gz", ".nii", ".tif", ".tiff"):
        stem = stem.removesuffix(suffix)
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "_", stem).strip("_.") or "color"
    return name


def sibling_output(source: Path, suffix: str = "_wkw") -> Path:
    """The default output: a new folder next to the input, ``<input>_wkw``."""
    source = source.expanduser().absolute()
    base = name_from_folder(source) if source.is_file() else source.name
    return source.parent / f"{base}{suffix}"


def new_folder_problem(path: Path | None, what: str = "output folder") -> str | None:
    """Why ``path`` cannot become a new folder (it must be missing or empty), or None."""
    if path is None:
        return f"choose the {what}"
    if path.is_file():
        return f"{path} is a file; the {what} must be a folder"
    if path.is_dir() and any(path.iterdir()):
        return f"{path} already exists and is not empty; choose a new {what}"
    return None


def dataset_problem(path: Path | None, what: str = "dataset") -> str | None:
    """Why ``path`` is not an existing WKW dataset, or None."""
    if path is None:
        return f"choose the {what}"
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_dir() or not looks_like_wkw(path):
        return f"{path} is not a WKW dataset (no datasource-properties.json or layer folders with header.wkw)"
    return None


# ---- the viewer -----------------------------------------------------------------------------


def selected_layer(viewer):
    """The active layer, else the top one, else None."""
    if viewer is None:
        return None
    active = viewer.layers.selection.active
    if active is not None:
        return active
    return viewer.layers[-1] if len(viewer.layers) else None


def selected_dataset(viewer) -> Path | None:
    """The WKW dataset the selected layer was opened from (the reader records it), if any."""
    layer = selected_layer(viewer)
    if layer is None:
        return None
    path = layer.metadata.get("wkw_dataset")
    return Path(path) if path else None


def layer_voxel_size(layer) -> tuple[float, float, float] | None:
    """A layer's voxel size x, y, z in nm, from its scale and units (None for unknown units)."""
    from ..convert.source import length_in_nm

    if layer is None:
        return None
    scale = [float(v) for v in layer.scale[-3:]]
    while len(scale) < 3:
        scale.insert(0, scale[0])
    units = [str(u) for u in getattr(layer, "units", ())][-3:]
    if not units or all(u in ("pixel", "px", "") for u in units):
        return tuple(scale[::-1])  # type: ignore[return-value]  # unitless: take the numbers as nm
    sizes = [length_in_nm(s, u) for s, u in zip(scale, units)]
    if any(size is None for size in sizes):
        return None
    return tuple(sizes[::-1])  # type: ignore[return-value]


def built_mags_text(built: dict) -> str:
    """``{layer: [mags built]}`` as one line for a wizard's status."""
    return "; ".join(
        f"{layer}: {', '.join(m.folder_name() for m in mags) or 'nothing new'}" for layer, mags in built.items()
    )


def open_result(viewer, path: Path) -> list:
    """Show a written dataset through our reader, replacing layers already open from it."""
    path = Path(path).absolute()
    stale = [layer for layer in viewer.layers if _opened_from(layer) == path]
    for layer in stale:
        viewer.layers.remove(layer)
    return viewer.open(str(path), plugin="napari-wkw")


def _opened_from(layer) -> Path | None:
    path = layer.metadata.get("wkw_dataset")
    return Path(path).absolute() if path else None


# ---- how the work runs ------------------------------------------------------------------------


class JobOptions:
    """Strategy and workers, plus the dask scheduler or SLURM resources when those are chosen.

    Not a container of its own: its ``widgets`` join the wizard's form so labels align.
    """

    def __init__(self) -> None:
        self.strategy = ComboBox(
            choices=STRATEGIES, value="threads", label="run with",
            tooltip="threads: this computer (fastest here); processes; dask: a dask cluster; slurm: SLURM jobs",
        )
        self.workers = SpinBox(value=default_jobs(), min=1, max=4096, label="workers", tooltip="units run at once")
        self.scheduler = LineEdit(label="dask scheduler", tooltip="tcp://host:port; empty: a local cluster")
        self.scheduler.native.setPlaceholderText("tcp://host:8786  (empty: start a local cluster)")
        self.resources = LineEdit(label="SLURM resources", tooltip='JSON, e.g. {"mem": "4G", "cores": 2}')
        self.resources.native.setPlaceholderText('{"mem": "4G", "cores": 2, "walltime": "01:00:00"}')
        self.slurm_logs = Label(value="", label="")  # where the worker jobs' logs go
        self.widgets = [self.strategy, self.workers, self.scheduler, self.resources, self.slurm_logs]
        self.strategy.changed.connect(self._show_strategy_fields)
        self.resources.changed.connect(self._show_strategy_fields)
        self._show_strategy_fields()

    def _show_strategy_fields(self, *_) -> None:
        slurm = self.strategy.value == "slurm"
        self.scheduler.visible = self.strategy.value == "dask"
        self.resources.visible = self.slurm_logs.visible = slurm
        self.workers.enabled = self.strategy.value != "sequential"
        self.workers.label = "worker jobs" if slurm else "workers"
        if slurm:
            from ..jobs.cluster import slurm_log_directory

            try:
                self.slurm_logs.value = f"worker logs: {slurm_log_directory(self.settings().job_resources)}"
            except WKWError:
                self.slurm_logs.value = ""

    def settings(self) -> JobSettings:
        """The JobSettings the form describes (WKWError if the JSON is not an object)."""
        resources = None
        if self.strategy.value == "slurm" and self.resources.value.strip():
            try:
                resources = json.loads(self.resources.value)
            except json.JSONDecodeError as error:
                raise WKWError(f"SLURM resources are not valid JSON ({error.msg})") from None
            if not isinstance(resources, dict):
                raise WKWError("SLURM resources must be a JSON object like {\"mem\": \"4G\"}")
        scheduler = self.scheduler.value.strip() or None if self.strategy.value == "dask" else None
        return JobSettings(self.strategy.value, int(self.workers.value), scheduler, resources)

    def problem(self) -> str | None:
        try:
            self.settings()
        except WKWError as error:
            return str(error)
        return None
