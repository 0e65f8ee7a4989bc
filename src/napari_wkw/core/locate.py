"""Turn any path a user may point at into a dataset and a selection of it.

Accepted: a dataset folder (with or without ``datasource-properties.json``), the
properties file itself, a layer folder, a mag folder, a mag's ``header.wkw`` and a
data file ``<mag>/z*/y*/x*.wkw``; for zarr layers of a dataset with properties, their
layer and mag folders. :func:`looks_like_wkw` answers cheaply (a few
``stat`` calls, no voxel read) so a napari reader can decline everything else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .dataset import HEADER_FILE, Dataset, Layer, _discover_layer, mag_marker
from .errors import NotWKWError
from .geometry import Mag
from .properties import PROPERTIES_FILE, DatasetProperties, read_properties
from .zarr_mag import ZARR_FORMATS

ZARR_MARKERS = tuple(marker for _, marker in ZARR_FORMATS.values())


@dataclass
class Selection:
    """What a path points at: a dataset, the layers meant, and one mag or all."""

    dataset: Dataset
    layers: list[Layer]
    mag: Mag | None = None


def _mag_folder_of_file(path: Path) -> Path | None:
    if path.name == HEADER_FILE:
        return path.parent
    if path.suffix == ".wkw" and path.name.startswith("x"):
        candidate = path.parent.parent.parent
        if (candidate / HEADER_FILE).is_file():
            return candidate
    return None


def _subdirs(path: Path) -> list[Path]:
    try:
        return [Path(entry.path) for entry in os.scandir(path) if entry.is_dir()]
    except OSError:
        return []


def _kind(path: Path) -> tuple[str, Path] | None:
    """('dataset' | 'layer' | 'mag', folder) or None, from marker files only."""
    if path.is_file():
        if path.name == PROPERTIES_FILE:
            return ("dataset", path.parent)
        mag_folder = _mag_folder_of_file(path)
        return ("mag", mag_folder) if mag_folder else None
    if not path.is_dir():
        return None
    if (path / PROPERTIES_FILE).is_file():
        return ("dataset", path)
    if (path / HEADER_FILE).is_file():
        return ("mag", path)
    zarr_kind = _zarr_kind(path)
    if zarr_kind is not None:
        return (zarr_kind, path)
    children = _subdirs(path)
    if any((child / HEADER_FILE).is_file() for child in children):
        return ("layer", path)
    for child in children:
        if any((grandchild / HEADER_FILE).is_file() for grandchild in _subdirs(child)):
            return ("dataset", path)
    return None


def _is_zarr_array(folder: Path) -> bool:
    return any((folder / marker).is_file() for marker in ZARR_MARKERS)


def _zarr_kind(path: Path) -> str | None:
    """'layer' or 'mag' for a folder of a WEBKNOSSOS zarr layer: only inside a dataset
    with a properties file, so that other zarr folders (OME-Zarr ...) stay unclaimed."""
    if (path.parent / PROPERTIES_FILE).is_file() and any(_is_zarr_array(child) for child in _subdirs(path)):
        return "layer"
    if (path.parent.parent / PROPERTIES_FILE).is_file() and _is_zarr_array(path):
        return "mag"
    return None


def looks_like_wkw(path: str | os.PathLike) -> bool:
    """True when ``path`` is (part of) a WKW dataset; never raises, never reads voxels."""
    try:
        return _kind(Path(path)) is not None
    except OSError:
        return False


def locate(path: str | os.PathLike) -> Selection:
    """Open whatever WKW thing ``path`` points at (NotWKWError if it is none)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise NotWKWError(f"{path}: no such file or folder")
    kind = _kind(path)
    if kind is None:
        raise NotWKWError(f"{path}: not a WKW dataset, layer or mag (no {PROPERTIES_FILE} or {HEADER_FILE} found)")
    what, folder = kind
    if what == "dataset":
        dataset = Dataset.open(folder)
        return Selection(dataset, list(dataset.layers.values()))
    layer_folder = folder if what == "layer" else folder.parent
    dataset = _enclosing_dataset(layer_folder)
    layer = dataset.layers[layer_folder.name]
    if what == "layer":
        return Selection(dataset, [layer])
    mag = next((m for m, view in layer.mags.items() if view.path.resolve() == folder.resolve()), None)
    if mag is None:  # on disk but not in the properties (yet): show it all the same
        try:
            mag = Mag.parse(folder.name)
        except ValueError:
            raise NotWKWError(f"{folder}: a mag folder's name must be a magnification such as 2 or 2-2-1") from None
        layer.mags[mag] = layer.open_mag_folder(mag, folder)
    return Selection(dataset, [layer], mag)


def _enclosing_dataset(layer_folder: Path) -> Dataset:
    """The dataset around a layer folder, restricted to that layer.

    Voxel size and bounding box come from the enclosing properties file when it lists
    the layer; otherwise the layer is discovered from its mag folders.
    """
    root = layer_folder.parent
    properties_path = root / PROPERTIES_FILE
    if properties_path.is_file():
        properties = read_properties(properties_path)
        listed = properties.layer(layer_folder.name)
        marker = HEADER_FILE if listed is None else mag_marker(listed.data_format)
        if listed is not None and any(
            (layer_folder / entry.mag.folder_name() / marker).is_file()
            or (entry.path and (root / entry.path / marker).is_file())
            for entry in listed.mags
        ):
            properties.layers = [listed]
            return Dataset(root, properties)
        voxel_size = properties.voxel_size
    else:
        voxel_size = (1.0, 1.0, 1.0)
    discovered = _discover_layer(layer_folder)
    if discovered is None:
        raise NotWKWError(f"{layer_folder}: no mag folder with {HEADER_FILE}")
    properties = DatasetProperties(name=root.name, voxel_size=voxel_size, layers=[discovered])
    return Dataset(root, properties)
