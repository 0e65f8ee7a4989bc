"""Opening what the user named, with errors that say which file and what is wrong."""

from __future__ import annotations

import os
from pathlib import Path

from ..core.dataset import Dataset, Layer, MagView, access_problem
from ..core.errors import TargetExistsError, WKWError
from ..core.geometry import Mag


def open_dataset(path: str | os.PathLike) -> Dataset:
    """The dataset at ``path`` (a folder with layers, with or without properties)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise WKWError(f"{path}: no such dataset (the path does not exist)")
    if not path.is_dir():
        raise WKWError(f"{path}: not a WKW dataset folder")
    return Dataset.open(path)


def select_layers(dataset: Dataset, layer_name: str | None = None) -> list[Layer]:
    """All layers, or the one named; an unknown name lists the ones there are.

    The operations write WKW: a zarr layer among those selected is refused, naming it.
    """
    if layer_name is None:
        if not dataset.layers:
            raise WKWError(f"{dataset.path}: the dataset has no WKW layers")
        layers = list(dataset.layers.values())
    elif layer_name not in dataset.layers:
        known = ", ".join(sorted(dataset.layers)) or "none"
        raise WKWError(f"{dataset.path}: no layer {layer_name!r} (layers: {known})")
    else:
        layers = [dataset.layers[layer_name]]
    for layer in layers:
        require_wkw(layer, named=layer_name is not None)
    return layers


def require_wkw(layer: Layer, named: bool = True) -> None:
    """Refuse a zarr layer in an operation that reads or writes WKW files (one line)."""
    if layer.is_wkw:
        return
    hint = "" if named else "; choose a WKW layer with --layer-name"
    raise WKWError(
        f"{layer.path}: layer {layer.name!r} is stored as {layer.properties.data_format}; napari-wkw opens zarr "
        f"layers but its operations work on WKW layers only{hint}"
    )


def select_mags(layer: Layer, mags: tuple[Mag, ...] | list[Mag] | None = None) -> list[MagView]:
    """All mags of ``layer`` (finest first), or the ones named."""
    if not mags:
        if not layer.mags:
            problem = access_problem(layer.path)
            reason = f" ({problem})" if problem else ""
            raise WKWError(f"{layer.path}: layer {layer.name!r} has no mags on disk{reason}")
        return list(layer.mags.values())
    return [layer.mag_view(mag) for mag in mags]


def check_new_target(path: str | os.PathLike, overwrite: bool = False, source: str | os.PathLike | None = None) -> Path:
    """A target folder that may be created: missing or empty (or ``overwrite``), and not
    inside ``source`` (the dataset it is made from would then hold it)."""
    path = Path(path).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise TargetExistsError(f"{path}: the target exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise TargetExistsError(f"{path}: the target folder exists and is not empty (refusing to overwrite it)")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise WKWError(f"{parent}: cannot write here (permission denied)")
    if source is not None:
        source = Path(source).expanduser().absolute()
        if path != source and path.resolve().is_relative_to(source.resolve()):
            raise WKWError(f"{path}: the target is inside the source {source}; choose a folder outside it")
    return path
