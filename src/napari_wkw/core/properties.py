"""``datasource-properties.json``: read the current and the old style, write the current one.

Current style: ``scale {factor, unit}`` and ``dataLayers[].mags[] {mag, path}``.
Old style: ``scale`` as a plain list (nanometres) and ``wkwResolutions[] {resolution,
cubeLength}``. Keys this module does not model are kept and written back as they were,
so a round trip never drops what WEBKNOSSOS or a user put there.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .element_class import channels_for, dtype_for
from .errors import DatasetFormatError, naming
from .geometry import BoundingBox, Mag
from .locks import locked
from .staging import left_by_dead_process, owner_tag

PROPERTIES_FILE = "datasource-properties.json"
#: larger properties files are refused unread (real ones are kilobytes; a huge one is not
#: a properties file, and parsing it would take seconds and gigabytes)
MAX_PROPERTIES_BYTES = 16 * 2**20
CATEGORIES = ("color", "segmentation")

_LAYER_KEYS = {
    "name",
    "category",
    "boundingBox",
    "elementClass",
    "numChannels",
    "dataFormat",
    "mags",
    "wkwResolutions",
    "largestSegmentId",
}
_DATASET_KEYS = {"id", "scale", "dataLayers"}


@dataclass
class MagEntry:
    mag: Mag
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. cubeLength, axisOrder


@dataclass
class LayerProperties:
    name: str
    category: str
    bounding_box: BoundingBox
    element_class: str
    num_channels: int = 1
    mags: list[MagEntry] = field(default_factory=list)
    largest_segment_id: int | None = None
    data_format: str = "wkw"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "category": self.category,
            "boundingBox": self.bounding_box.to_json(),
            "elementClass": self.element_class,
            "dataFormat": self.data_format,
            "numChannels": self.num_channels,
            "mags": [
                {"mag": list(m.mag.xyz), "path": m.path or f"./{self.name}/{m.mag.folder_name()}", **m.extra}
                for m in sorted(self.mags, key=lambda m: m.mag.sort_key())
            ],
        }
        if self.category == "segmentation":
            out["largestSegmentId"] = self.largest_segment_id
        out.update(self.extra)
        return out


@dataclass
class DatasetProperties:
    name: str
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0)
    unit: str = "nanometer"
    layers: list[LayerProperties] = field(default_factory=list)
    team: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def layer(self, name: str) -> LayerProperties | None:
        return next((layer for layer in self.layers if layer.name == name), None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": {"name": self.name, "team": self.team},
            "scale": {"unit": self.unit, "factor": list(self.voxel_size)},
            "dataLayers": [layer.to_json() for layer in self.layers],
        }
        out.update(self.extra)
        out.setdefault("version", 1)
        return out


def read_properties(path: Path) -> DatasetProperties:
    """Parse a properties file; every problem is a DatasetFormatError naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(MAX_PROPERTIES_BYTES + 1) if size <= MAX_PROPERTIES_BYTES else b""
    except OSError as error:
        raise DatasetFormatError(f"{path}: cannot read ({error.strerror})") from None
    if max(size, len(data)) > MAX_PROPERTIES_BYTES:
        raise DatasetFormatError(
            f"{path}: {max(size, len(data)) / 2**20:.1f} MiB, too large for a properties file "
            f"(the limit is {MAX_PROPERTIES_BYTES >> 20} MiB); refusing to parse it"
        )
    return parse_properties(data, path)


def parse_properties(data: bytes, path: Path) -> DatasetProperties:
    """Parse the bytes of a properties file (on disk or inside a ZIP, ``path`` names it)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DatasetFormatError(f"{path}: not a text file") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetFormatError(
            f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            "the file may be half-written"
        ) from None
    except RecursionError:  # json gives up on arrays or objects nested some thousand deep
        raise DatasetFormatError(f"{path}: not a properties file (JSON nested too deeply)") from None
    try:
        return _parse(raw, path)
    except DatasetFormatError as error:
        raise DatasetFormatError(f"{path}: {error}") from None
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
        detail = f"missing key {error}" if isinstance(error, KeyError) else str(error)
        raise DatasetFormatError(f"{path}: malformed properties ({detail})") from None


def _parse(raw: Any, path: Path) -> DatasetProperties:
    if not isinstance(raw, dict):
        raise DatasetFormatError("the top level is not a JSON object")
    scale = raw.get("scale", [1.0, 1.0, 1.0])
    if isinstance(scale, dict):
        factor, unit = scale["factor"], scale.get("unit", "nanometer")
    else:
        factor, unit = scale, "nanometer"
    voxel_size = tuple(float(v) for v in factor)
    if len(voxel_size) != 3 or min(voxel_size) <= 0:
        raise DatasetFormatError(f"scale {factor!r} is not three positive numbers")
    ident = raw.get("id") or {}
    layers = [_parse_layer(layer) for layer in raw.get("dataLayers", [])]
    return DatasetProperties(
        name=str(ident.get("name") or path.parent.name),
        voxel_size=voxel_size,  # type: ignore[arg-type]
        unit=str(unit),
        layers=layers,
        team=str(ident.get("team") or ""),
        extra={k: v for k, v in raw.items() if k not in _DATASET_KEYS},
    )


def _parse_layer(raw: dict[str, Any]) -> LayerProperties:
    name = str(raw["name"])
    category = raw.get("category", "color")
    if category not in CATEGORIES:
        raise DatasetFormatError(f"layer {name!r} has unknown category {category!r}")
    element_class = str(raw.get("elementClass", "uint8"))
    num_channels = channels_for(element_class, raw.get("numChannels"))
    dtype_for(element_class, num_channels)  # validates
    if "mags" in raw:
        mags = [
            MagEntry(Mag.parse(m["mag"]), m.get("path"), {k: v for k, v in m.items() if k not in ("mag", "path")})
            for m in raw["mags"]
        ]
    else:
        mags = [
            MagEntry(Mag.parse(m["resolution"]), extra={"cubeLength": m["cubeLength"]} if "cubeLength" in m else {})
            for m in raw.get("wkwResolutions", [])
        ]
    largest = raw.get("largestSegmentId")
    return LayerProperties(
        name=name,
        category=category,
        bounding_box=BoundingBox.from_json(raw["boundingBox"]),
        element_class=element_class,
        num_channels=num_channels,
        mags=mags,
        largest_segment_id=None if largest is None else int(largest),
        data_format=str(raw.get("dataFormat", "wkw")),
        extra={k: v for k, v in raw.items() if k not in _LAYER_KEYS},
    )


def write_properties(path: Path, properties: DatasetProperties) -> None:
    """Write the current style atomically: a reader sees the old file or the new one.

    Temporary files of runs killed between writing and renaming them are removed here:
    nothing else looks for them in the dataset folder."""
    path = Path(path)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
        if left_by_dead_process(stale):
            stale.unlink(missing_ok=True)
    partial = path.with_name(f".{path.name}.{owner_tag()}.partial")
    try:
        partial.write_text(json.dumps(properties.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)  # a half-written partial never lingers (full disk)
        raise naming(error, path) from None


def list_layer(dataset_path: Path, layer: LayerProperties, fallback: DatasetProperties) -> None:
    """Write ``layer`` into the properties file of the dataset at ``dataset_path``, every other
    layer as the file lists it now: a read-modify-write under the file's lock (see
    :mod:`.locks`), so a layer another process listed meanwhile (a conversion into the same
    dataset) stays listed. Without a properties file, ``fallback`` is written."""
    path = Path(dataset_path) / PROPERTIES_FILE
    with locked(path):
        if not path.is_file():
            write_properties(path, fallback)
            return
        properties = read_properties(path)
        names = [entry.name for entry in properties.layers]
        if layer.name in names:
            properties.layers[names.index(layer.name)] = layer
        else:
            properties.layers.append(layer)
        write_properties(path, properties)
