"""Zarr inputs (v2 and v3) as volume sources, read through tensorstore.

Four kinds of input, told apart by their metadata files (:func:`detect_zarr`):

- **a WEBKNOSSOS dataset** (``datasource-properties.json`` with zarr3 or zarr layers): every
  layer, every mag of it kept, with its category, bounding box, element class, largest
  segment id and the other keys of its properties (voxel size in nm from ``scale``);
- **one layer folder of such a dataset** (its parent's properties list it): that layer;
- **an OME-Zarr image** (NGFF 0.4: ``multiscales`` in ``.zattrs``; 0.5: in the ``ome`` key
  of ``zarr.json``'s attributes; a ``bioformats2raw`` root is followed into its image
  ``0``): the axes and units from ``axes``, the voxel size from the first level's
  ``scale`` (times the multiscale's own), the offset from its ``translation``; each
  further level whose scale is a power-of-two multiple of the first per axis becomes
  that mag (others are left out, with a warning, and are built by downsampling);
- **a bare array** (``zarr.json`` of an array, ``.zarray``): its ``dimension_names`` (zarr3)
  say the axes, else (x, y, z) or (c, x, y, z) as WEBKNOSSOS and its tools index them;
  ``axes`` (``--axes zyx``) overrides either.

Channels (a ``c`` axis) become one layer each (``NAME_0``, ``NAME_1`` ...) or only the
one ``channel_index`` picks; a WEBKNOSSOS RGB layer stays RGB. Other axes (time ...)
are read at their first index, with a warning.

Sources keep only paths and parameters (they pickle into worker processes); each
process opens the arrays once, through one shared tensorstore context.
"""

from __future__ import annotations

import json
import math
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.errors import DatasetFormatError, WKWError, WKWWarning
from ..core.geometry import BoundingBox, Mag, Vec3
from .levels import Level, PyramidSpec
from .source import VolumeSource, length_in_nm

#: metadata file -> tensorstore driver
ARRAY_FILES = {"zarr.json": "zarr3", ".zarray": "zarr"}
PROPERTIES_FILE = "datasource-properties.json"
KINDS = {
    "webknossos-dataset": "a WEBKNOSSOS zarr dataset",
    "webknossos-layer": "a layer of a WEBKNOSSOS zarr dataset",
    "ome-zarr": "an OME-Zarr image",
    "array": "a zarr array",
}
#: NGFF unit names -> nanometres (the others go through ``length_in_nm``)
NGFF_UNITS = {
    "angstrom": 0.1,
    "picometer": 1e-3,
    "nanometer": 1.0,
    "micrometer": 1e3,
    "millimeter": 1e6,
    "centimeter": 1e7,
    "decimeter": 1e8,
    "meter": 1e9,
}


def unit_in_nm(unit: str | None) -> float | None:
    """Nanometres per ``unit`` (NGFF names, WEBKNOSSOS names, short forms); None if unknown."""
    if not unit:
        return None
    known = NGFF_UNITS.get(str(unit).strip().lower())
    return known if known is not None else length_in_nm(1.0, unit)


# ---- tensorstore, once per process ----------------------------------------------------------

_context_lock = threading.Lock()
_context = None
_open_lock = threading.Lock()
_open_arrays: dict[tuple, object] = {}


def _ts():
    import tensorstore

    return tensorstore


def _shared_context():
    global _context
    with _context_lock:
        if _context is None:
            # no chunk cache: every chunk is read once; decoding runs on all cores
            _context = _ts().Context({"cache_pool": {"total_bytes_limit": 0}})
        return _context


def open_array(path: str | os.PathLike, driver: str):
    """The zarr array in folder ``path`` (tensorstore), with a one-line error if it is not one."""
    ts = _ts()
    spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(Path(path).absolute()) + "/"}}
    try:
        return ts.open(spec, read=True, open=True, context=_shared_context()).result()
    except Exception as error:  # tensorstore raises ValueError with a multi-line message
        message = str(error).split("\n")[0]
        raise DatasetFormatError(f"{path}: cannot read the zarr array ({message})") from None


def _cached_array(path: str, driver: str):
    key = (path, driver, os.getpid())
    with _open_lock:
        if key not in _open_arrays:
            if len(_open_arrays) > 64:
                _open_arrays.clear()
            _open_arrays[key] = open_array(path, driver)
        return _open_arrays[key]


def array_driver(folder: Path) -> str | None:
    """``zarr3`` or ``zarr`` when ``folder`` holds an array's metadata, else None."""
    for name, driver in ARRAY_FILES.items():
        file = folder / name
        if file.is_file():
            if driver == "zarr3" and _read_json(file).get("node_type") != "array":
                return None
            return driver
    return None


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetFormatError(f"{path}: cannot read ({error})") from None
    except json.JSONDecodeError as error:
        raise DatasetFormatError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
    if not isinstance(value, dict):
        raise DatasetFormatError(f"{path}: not a JSON object")
    return value


# ---- the source -----------------------------------------------------------------------------


def _axis_names(axes: Sequence[str], rank: int, where: str) -> list[str]:
    names = [str(a).strip().lower() for a in axes]
    if len(names) != rank:
        raise WKWError(f"{where}: the array has {rank} dimensions but the axes given are {''.join(names)!r}")
    missing = [a for a in "xyz" if a not in names]
    if missing:
        shown = ", ".join(name or "unnamed" for name in names)
        raise WKWError(f"{where}: no {'/'.join(missing)} axis among the array's axes ({shown}); give --axes (e.g. zyx)")
    if len(set(names)) != len(names):
        raise WKWError(f"{where}: axes {names} name a dimension twice")
    return names


def default_axes(array, axis_order: dict | None = None) -> list[str]:
    """The array's own dimension names, else WEBKNOSSOS' ``axisOrder``, else (c,) x, y, z."""
    labels = [str(label).lower() for label in array.domain.labels]
    if all(labels) and all(axis in labels for axis in "xyz"):
        return labels
    if axis_order:
        names = [""] * array.rank
        for axis, index in axis_order.items():
            if 0 <= int(index) < array.rank:
                names[int(index)] = axis
        if all(names):
            return names
    if array.rank == 3:
        return ["x", "y", "z"]
    if array.rank == 4:
        return ["c", "x", "y", "z"]
    return labels


class ZarrSource(VolumeSource):
    """A box of one zarr array (all its channels, or one), as (x, y, z) voxels from 0."""

    croppable = True

    def __init__(
        self,
        path: str | os.PathLike,
        driver: str,
        axes: Sequence[str],
        *,
        region: BoundingBox | None = None,
        channel: int | None = None,
        voxel_size: tuple[float, float, float] | None = None,
        voxel_note: str | None = None,
    ) -> None:
        self.path = str(Path(path).expanduser().absolute())
        self.driver = driver
        self.description = f"zarr array {self.path}"
        array = open_array(self.path, driver)
        self.axes = tuple(_axis_names(axes, array.rank, self.path))
        shape = dict(zip(self.axes, (int(n) for n in array.shape)))
        self.array_size: Vec3 = (shape["x"], shape["y"], shape["z"])
        self.channels_in_array = shape.get("c", 1)
        self.extra_axes = tuple(a for a in self.axes if a not in ("x", "y", "z", "c"))
        if channel is not None and not 0 <= channel < self.channels_in_array:
            raise WKWError(f"{self.path}: no channel {channel} (the array has {self.channels_in_array})")
        self.channel = channel
        self.region = region if region is not None else BoundingBox((0, 0, 0), self.array_size)
        self._dtype = np.dtype(array.dtype.numpy_dtype)
        if self._dtype.kind not in "uifb":
            raise WKWError(f"{self.path}: voxels of type {self._dtype} cannot be stored in WKW")
        if self._dtype.kind == "b":
            self._dtype = np.dtype(np.uint8)
        self._voxel_size = voxel_size
        self._voxel_note = voxel_note
        self._metadata_mtime = max(
            (os.stat(Path(self.path) / name).st_mtime_ns for name in ARRAY_FILES if (Path(self.path) / name).exists()),
            default=0,
        )
        self._view = None
        if self.extra_axes:
            warnings.warn(
                f"{self.path}: converting index 0 of axis {', '.join(self.extra_axes)} (only x, y, z and channels "
                "become WKW voxels)",
                WKWWarning,
                stacklevel=3,
            )

    @property
    def size(self) -> Vec3:
        return tuple(self.region.size)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def num_channels(self) -> int:
        return 1 if self.channel is not None else self.channels_in_array

    @property
    def voxel_size(self) -> tuple[float, float, float] | None:
        if self._voxel_note:
            warnings.warn(self._voxel_note, WKWWarning, stacklevel=2)
        return self._voxel_size

    def fingerprint(self) -> dict:
        return {
            **super().fingerprint(),
            "path": self.path,
            "driver": self.driver,
            "axes": list(self.axes),
            "region": self.region.to_json(),
            "channel": self.channel,
            "metadata_mtime_ns": self._metadata_mtime,
        }

    def _zyxc(self):
        """The array as (z, y, x, c) from 0 (other axes at their first index)."""
        if self._view is None:
            ts = _ts()
            array = _cached_array(self.path, self.driver)
            array = array[ts.d[:].label[list(self.axes)]]
            for name in self.extra_axes:
                array = array[ts.d[name][array.domain[name].inclusive_min]]
            if "c" not in self.axes:
                array = array[ts.newaxis, ...][ts.d[0].label["c"]]
            self._view = array[ts.d["z", "y", "x", "c"].transpose[:]].translate_to[0, 0, 0, 0]
        return self._view

    def read(self, box: BoundingBox) -> np.ndarray:
        shifted = BoundingBox(tuple(a + o for a, o in zip(box.topleft, self.region.topleft)), box.size)  # type: ignore[arg-type]
        inner = shifted.intersection(BoundingBox((0, 0, 0), self.array_size))
        channels = slice(self.channel, self.channel + 1) if self.channel is not None else slice(None)
        out = None
        if not inner.is_empty:
            (x0, y0, z0), (x1, y1, z1) = inner.topleft, inner.bottomright
            try:
                data = self._zyxc()[z0:z1, y0:y1, x0:x1, channels].read().result()
            except Exception as error:
                message = str(error).split("\n")[0]
                raise DatasetFormatError(
                    f"{self.path}: cannot read box {inner.topleft}+{inner.size} ({message})"
                ) from None
            if data.dtype != self._dtype:
                data = data.astype(self._dtype)
            if inner == shifted:
                out = data
            else:
                out = np.zeros((*box.size[::-1], data.shape[3]), self._dtype)
                out[inner.zyx_slices(shifted.topleft)] = data
        if out is None:
            out = np.zeros((*box.size[::-1], self.num_channels), self._dtype)
        return out[..., 0] if self.num_channels == 1 else out

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_view"] = None
        state["_voxel_note"] = None  # warned once, in the process that planned the work
        return state


# ---- what a path is -------------------------------------------------------------------------


def detect_zarr(path: str | os.PathLike) -> str:
    """The kind of zarr input at ``path`` (a key of :data:`KINDS`); WKWError saying why not."""
    path = Path(path).expanduser()
    if not path.exists():
        raise WKWError(f"{path}: no such file or folder")
    if path.is_file() and path.name in (PROPERTIES_FILE, *ARRAY_FILES, ".zattrs", ".zgroup"):
        path = path.parent
    if not path.is_dir():
        raise WKWError(f"{path}: not a zarr folder (a zarr array, OME-Zarr image or WEBKNOSSOS dataset is a folder)")
    if (path / PROPERTIES_FILE).is_file():
        return "webknossos-dataset"
    if _webknossos_layer(path) is not None:
        return "webknossos-layer"
    if _multiscales(path) is not None:
        return "ome-zarr"
    if array_driver(path) is not None:
        return "array"
    raise WKWError(
        f"{path}: not a zarr array, OME-Zarr image or WEBKNOSSOS zarr dataset "
        f"(no zarr.json or .zarray of an array, no multiscales, no {PROPERTIES_FILE})"
    )


def describe_zarr(path: str | os.PathLike) -> str:
    """One line for a wizard's note: what the input is and what it holds (cheap)."""
    path = Path(path).expanduser()
    if path.is_file():
        path = path.parent
    kind = detect_zarr(path)
    if kind == "webknossos-dataset":
        from ..core.properties import read_properties

        layers = read_properties(path / PROPERTIES_FILE).layers
        zarr = [layer.name for layer in layers if layer.data_format in ("zarr3", "zarr")]
        return f"{KINDS[kind]} with layer{'s' if len(zarr) != 1 else ''} {', '.join(zarr) or 'none in zarr'}"
    if kind == "webknossos-layer":
        layer = _webknossos_layer(path)
        return f"{KINDS[kind]} ({layer.category}, {len(layer.mags)} mag{'s' if len(layer.mags) != 1 else ''})"
    if kind == "ome-zarr":
        _, multiscale, _ = _multiscales(path)  # type: ignore[misc]
        count = len(multiscale.get("datasets") or [])
        return f"{KINDS[kind]} with {count} level{'s' if count != 1 else ''}"
    driver = array_driver(path)
    array = open_array(path, driver)  # type: ignore[arg-type]
    shape = " x ".join(str(int(n)) for n in array.shape)
    return f"{KINDS[kind]} ({'zarr v3' if driver == 'zarr3' else 'zarr v2'}, {shape} {array.dtype.numpy_dtype})"


def _webknossos_layer(path: Path):
    """The layer properties when ``path`` is a zarr layer folder of a WEBKNOSSOS dataset."""
    from ..core.properties import read_properties

    properties = path.parent / PROPERTIES_FILE
    if not properties.is_file():
        return None
    try:
        layer = read_properties(properties).layer(path.name)
    except WKWError:
        return None
    if layer is None or layer.data_format not in ("zarr3", "zarr"):
        return None
    return layer


def _multiscales(path: Path) -> tuple[Path, dict, str] | None:
    """(image folder, its first multiscale, driver) of an OME-Zarr image at ``path``."""
    if (path / "zarr.json").is_file():
        meta = _read_json(path / "zarr.json")
        if meta.get("node_type") != "group":
            return None
        attributes = meta.get("attributes") or {}
        ome = attributes.get("ome") or {}
        multiscales = ome.get("multiscales") or attributes.get("multiscales")
        driver = "zarr3"
        layout = ome.get("bioformats2raw.layout") or attributes.get("bioformats2raw.layout")
    elif (path / ".zattrs").is_file():
        attributes = _read_json(path / ".zattrs")
        multiscales = attributes.get("multiscales")
        driver = "zarr"
        layout = attributes.get("bioformats2raw.layout")
    else:
        return None
    if not multiscales and layout is not None and (path / "0").is_dir():
        return _multiscales(path / "0")
    if not multiscales or not isinstance(multiscales, list) or not isinstance(multiscales[0], dict):
        return None
    return path, multiscales[0], driver


# ---- layer specs ----------------------------------------------------------------------------


def build_zarr_specs(
    source: str | os.PathLike,
    *,
    layer_name: str | None = None,
    category: str | None = None,
    dtype=None,
    axes: str | Sequence[str] | None = None,
    channel_index: int | None = None,
) -> list[PyramidSpec]:
    """Layer specs (one or several mags each) for a zarr input of any kind (see the module)."""
    path = Path(source).expanduser().absolute()
    kind = detect_zarr(path)
    if path.is_file():
        path = path.parent
    axes = list(axes) if axes else None
    if kind == "webknossos-dataset":
        if axes:
            raise WKWError(f"{path}: --axes is for bare arrays; a WEBKNOSSOS dataset states its axes")
        return _dataset_specs(path, layer_name, category, dtype, channel_index)
    if kind == "webknossos-layer":
        if axes:
            raise WKWError(f"{path}: --axes is for bare arrays; a WEBKNOSSOS dataset states its axes")
        return _dataset_specs(path.parent, path.name, category, dtype, channel_index, rename=layer_name)
    if kind == "ome-zarr":
        return _ome_specs(path, layer_name, category, dtype, axes, channel_index)
    return _array_specs(path, layer_name, category, dtype, axes, channel_index)


def _name_and_category(layer_name, category, default_category: str | None = None) -> tuple[str, str]:
    from .specs import layer_category

    category = category or default_category
    name = layer_name or ("segmentation" if category == "segmentation" else "color")
    return name, layer_category(category, name)


def _split_channels(
    name: str, category: str, dtype, levels_of, channels: int, channel_index: int | None, **extra
) -> list[PyramidSpec]:
    """One spec per channel (``levels_of(channel)`` -> levels), or the one picked."""
    picked = [channel_index] if channel_index is not None else (list(range(channels)) if channels > 1 else [None])
    specs = []
    for channel in picked:
        levels = levels_of(channel)
        layer = name if channel is None or channel_index is not None else f"{name}_{channel}"
        specs.append(PyramidSpec.of(levels, layer, category, dtype, **extra))
    return specs


def _array_specs(path: Path, layer_name, category, dtype, axes, channel_index) -> list[PyramidSpec]:
    driver = array_driver(path)
    array = open_array(path, driver)  # type: ignore[arg-type]
    names = _axis_names(axes, array.rank, str(path)) if axes else default_axes(array)
    name, category = _name_and_category(layer_name, category)
    channels = int(array.shape[names.index("c")]) if "c" in names else 1
    return _split_channels(
        name,
        category,
        dtype,
        lambda c: [Level(Mag(1, 1, 1), ZarrSource(path, driver, names, channel=c), (0, 0, 0))],  # type: ignore[arg-type]
        channels,
        channel_index,
    )


def _ngff_axes(multiscale: dict, where: str) -> tuple[list[str], list[str | None]]:
    """(our axis names, units) of an NGFF ``axes`` list (dicts, or 0.3's plain names)."""
    axes = multiscale.get("axes")
    if not axes:
        return [], []
    names, units = [], []
    for axis in axes:
        if isinstance(axis, str):
            axis = {"name": axis}
        name = str(axis.get("name", "")).strip().lower()
        kind = str(axis.get("type", "")).lower()
        if kind == "channel" or name == "c":
            name = "c"
        elif kind == "time" and name != "t":
            name = name or "t"
        elif kind == "space" and name not in ("x", "y", "z"):
            raise WKWError(f"{where}: space axis {name!r} is not x, y or z; napari-wkw cannot place it")
        names.append(name)
        units.append(axis.get("unit"))
    return names, units


def _scale_and_translation(transforms, rank: int) -> tuple[list[float], list[float]]:
    scale, translation = [1.0] * rank, [0.0] * rank
    for transform in transforms or []:
        if transform.get("type") == "scale" and "scale" in transform:
            scale = [s * float(v) for s, v in zip(scale, transform["scale"])]
            translation = [t * float(v) for t, v in zip(translation, transform["scale"])]
        elif transform.get("type") == "translation" and "translation" in transform:
            translation = [t + float(v) for t, v in zip(translation, transform["translation"])]
    return scale, translation


def _power_of_two(value: float) -> int | None:
    whole = round(value)
    if whole < 1 or not math.isclose(value, whole, rel_tol=1e-4) or whole & (whole - 1):
        return None
    return whole


def _ome_specs(path: Path, layer_name, category, dtype, axes, channel_index) -> list[PyramidSpec]:
    image, multiscale, driver = _multiscales(path)  # type: ignore[misc]
    where = str(image)
    names, units = _ngff_axes(multiscale, where)
    if axes:
        names, units = [str(a).lower() for a in axes], [None] * len(axes)
    datasets = multiscale.get("datasets") or []
    if not datasets:
        raise WKWError(f"{where}: the multiscale lists no datasets (levels)")
    arrays = []
    for entry in datasets:
        folder = image / str(entry.get("path", ""))
        level_driver = array_driver(folder) or driver
        if array_driver(folder) is None:
            raise WKWError(f"{folder}: level {entry.get('path')!r} of {where} is not a zarr array")
        arrays.append((folder, level_driver, entry))
    first = open_array(arrays[0][0], arrays[0][1])
    if not names:
        names = default_axes(first)
    names = _axis_names(names, first.rank, where)
    units = units + [None] * (len(names) - len(units))
    rank = len(names)
    outer_scale, _ = _scale_and_translation(multiscale.get("coordinateTransformations"), rank)
    xyz = [names.index(a) for a in "xyz"]

    scales = []
    for _, _, entry in arrays:
        scale, translation = _scale_and_translation(entry.get("coordinateTransformations"), rank)
        scales.append(([s * o for s, o in zip(scale, outer_scale)], translation))
    base_scale, base_translation = scales[0]
    voxel_size, note = _ngff_voxel_size([base_scale[i] for i in xyz], [units[i] for i in xyz], where)
    offset = _ngff_offset([base_translation[i] * outer_scale[i] for i in xyz], [base_scale[i] for i in xyz], where)

    chosen: list[tuple[Mag, Path, str]] = []
    for (folder, level_driver, entry), (scale, _) in zip(arrays, scales):
        factors = [_power_of_two(scale[i] / base_scale[i]) if base_scale[i] else None for i in xyz]
        if None in factors:
            ratio = ",".join(f"{scale[i] / base_scale[i]:g}" for i in xyz)
            warnings.warn(
                f"{folder}: level {entry.get('path')!r} is {ratio} times the first, not a power of two per axis; "
                "left out (coarser mags are built by downsampling instead)",
                WKWWarning,
                stacklevel=3,
            )
            continue
        mag = Mag(*factors)  # type: ignore[arg-type]
        if any(mag == known for known, _, _ in chosen):
            continue
        chosen.append((mag, folder, level_driver))

    labels = bool(_read_attributes(image).get("image-label"))
    name, category = _name_and_category(layer_name, category, "segmentation" if labels else None)
    channels = int(first.shape[names.index("c")]) if "c" in names else 1

    def levels_of(channel):
        levels = []
        for mag, folder, level_driver in chosen:
            level_offset = tuple(o // m for o, m in zip(offset, mag.xyz))
            first_level = not levels
            source = ZarrSource(
                folder,
                level_driver,
                names,
                channel=channel,
                voxel_size=voxel_size if first_level else None,
                voxel_note=note if first_level else None,
            )
            levels.append(Level(mag, source, level_offset))  # type: ignore[arg-type]
        return levels

    return _split_channels(name, category, dtype, levels_of, channels, channel_index)


def _read_attributes(image: Path) -> dict:
    if (image / "zarr.json").is_file():
        attributes = _read_json(image / "zarr.json").get("attributes") or {}
        return {**attributes, **(attributes.get("ome") or {})}
    if (image / ".zattrs").is_file():
        return _read_json(image / ".zattrs")
    return {}


def _ngff_voxel_size(
    scale: list[float], units: list, where: str
) -> tuple[tuple[float, float, float] | None, str | None]:
    """The voxel size in nm from an NGFF scale and units; (size, warning to give when used)."""
    if min(scale) <= 0 or not all(np.isfinite(scale)):
        return None, f"{where}: the multiscale's scale {scale} is not a usable voxel size; ignoring it"
    factors = [unit_in_nm(unit) for unit in units]
    note = None
    if any(f is None for f in factors):
        named = sorted({str(u) for u, f in zip(units, factors) if f is None and u})
        why = f"unknown unit {', '.join(named)}" if named else "no unit"
        note = f"{where}: the axes give {why}; taking the scale {','.join(f'{s:g}' for s in scale)} as nm"
        factors = [f if f is not None else 1.0 for f in factors]
    return tuple(float(s * f) for s, f in zip(scale, factors)), note  # type: ignore[return-value]


def _ngff_offset(translation: list[float], scale: list[float], where: str) -> Vec3:
    """The first level's translation in its voxels, where it is a whole, non-negative number."""
    voxels = [t / s if s else 0.0 for t, s in zip(translation, scale)]
    whole = [round(v) for v in voxels]
    if all(math.isclose(v, w, abs_tol=1e-3) and w >= 0 for v, w in zip(voxels, whole)):
        return tuple(int(w) for w in whole)  # type: ignore[return-value]
    warnings.warn(
        f"{where}: the translation {','.join(f'{v:g}' for v in voxels)} (voxels) is not a whole, non-negative "
        "number of voxels; the layer starts at 0,0,0",
        WKWWarning,
        stacklevel=3,
    )
    return (0, 0, 0)


def _dataset_specs(
    path: Path, layer_name, category, dtype, channel_index, rename: str | None = None
) -> list[PyramidSpec]:
    """Every zarr layer of a WEBKNOSSOS dataset (or the one named), all mags, properties kept."""
    from ..core.properties import read_properties

    properties = read_properties(path / PROPERTIES_FILE)
    layers = properties.layers
    if layer_name is not None:
        picked = [layer for layer in layers if layer.name == layer_name]
        if not picked:
            known = ", ".join(layer.name for layer in layers) or "none"
            raise WKWError(f"{path}: no layer {layer_name!r} (layers: {known})")
        layers = picked
    wkw_layers = [layer.name for layer in layers if layer.data_format not in ("zarr3", "zarr")]
    if wkw_layers:
        raise WKWError(
            f"{path}: layer{'s' if len(wkw_layers) > 1 else ''} {', '.join(map(repr, wkw_layers))} "
            f"{'are' if len(wkw_layers) > 1 else 'is'} not stored as zarr; convert-zarr reads zarr layers "
            "(pick one with --layer-name)"
        )
    factor = unit_in_nm(properties.unit)
    note = None
    if factor is None:
        note = f"{path / PROPERTIES_FILE}: unknown unit {properties.unit!r}; taking the voxel size as nm"
        factor = 1.0
    voxel_size = tuple(float(v) * factor for v in properties.voxel_size)
    specs = []
    for layer in layers:
        if not layer.mags:
            raise WKWError(f"{path}: layer {layer.name!r} lists no mags")
        extra = {key: value for key, value in layer.extra.items() if key != "attachments"}
        if "attachments" in layer.extra:
            warnings.warn(
                f"{path}: layer {layer.name!r} has attachments (meshes, agglomerates ...); they are not copied",
                WKWWarning,
                stacklevel=3,
            )
        box = layer.bounding_box
        mags = sorted(layer.mags, key=lambda entry: entry.mag.sort_key())

        def levels_of(channel, layer=layer, mags=mags, box=box):
            levels = []
            for entry in mags:
                folder = _mag_folder(path, layer.name, entry)
                driver = array_driver(folder)
                if driver is None:
                    raise DatasetFormatError(f"{folder}: mag {entry.mag.folder_name()} of {layer.name!r} is missing")
                array = open_array(folder, driver)
                names = default_axes(array, entry.extra.get("axisOrder"))
                region = box.in_mag(entry.mag)
                first = not levels
                source = ZarrSource(
                    folder,
                    driver,
                    names,
                    region=region,
                    channel=channel,
                    voxel_size=voxel_size if first else None,  # type: ignore[arg-type]
                    voxel_note=note if first else None,
                )
                levels.append(Level(entry.mag, source, tuple(region.topleft)))  # type: ignore[arg-type]
            return levels

        name = rename or layer.name
        layer_category = category or layer.category
        channels = layer.num_channels
        rgb = channels == 3 and layer.element_class in ("uint24",)
        specs += _split_channels(
            name,
            layer_category,
            dtype,
            levels_of,
            1 if rgb else channels,
            channel_index,
            bounding_box=box,
            largest_segment_id=layer.largest_segment_id if layer_category == "segmentation" else None,
            properties_extra=extra,
        )
    return specs


def _mag_folder(dataset: Path, layer: str, entry) -> Path:
    candidates = []
    if entry.path:
        candidates.append(dataset / entry.path)
    candidates += [dataset / layer / entry.mag.folder_name(), dataset / layer / str(entry.mag.x)]
    return next((c for c in candidates if array_driver(c) is not None), candidates[0])


def dataset_extra(source: str | os.PathLike) -> dict:
    """The dataset-level keys of a WEBKNOSSOS source's properties to carry over (else empty)."""
    from ..core.properties import read_properties

    path = Path(source).expanduser()
    for folder in (path, path.parent):
        if (folder / PROPERTIES_FILE).is_file():
            return dict(read_properties(folder / PROPERTIES_FILE).extra)
    return {}


__all__ = [
    "KINDS",
    "ZarrSource",
    "build_zarr_specs",
    "dataset_extra",
    "describe_zarr",
    "detect_zarr",
    "open_array",
]
