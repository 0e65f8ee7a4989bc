"""Save in-memory or lazy arrays as a complete WKW dataset (mag 1, pyramid, properties).

Used by the napari writer and, later, by the "Save as WKW" wizard. Nothing is ever
half-overwritten: a new dataset is built in a hidden sibling folder and renamed into
place at the end; layers added to an existing dataset are built aside too and swapped
in just before the properties file is rewritten (atomically).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dataset import Dataset, Layer
from .downsample import build_pyramid, default_coarsest_mag
from .element_class import WKW_DTYPES
from .errors import TargetExistsError, WKWError
from .geometry import BoundingBox, Mag
from .locate import looks_like_wkw
from .locks import locked
from .progress import CancelToken, ProgressCallback
from .properties import PROPERTIES_FILE, read_properties, write_properties
from .staging import fresh_staging, left_by_dead_process, owner_tag
from .units import InlineRunner, UnitRunner
from .wkw_file import BLOCK_LZ4, BLOCK_RAW, suggested_file_len
from .writing import write_array


@dataclass
class ArrayLayer:
    """One layer to save: levels finest first, each (z, y, x) or (z, y, x, c)."""

    name: str
    category: str  # "color" or "segmentation"
    levels: Sequence
    voxel_size: tuple[float, float, float]  # x, y, z of the first level
    offset: tuple[int, int, int] = (0, 0, 0)  # x, y, z in mag-1 voxels
    num_channels: int = 1
    unit: str = "nanometer"

    @property
    def dtype(self) -> np.dtype:
        return storable_dtype(self.levels[0].dtype, self.name)

    @property
    def size(self) -> tuple[int, int, int]:
        shape = self.levels[0].shape
        return (shape[2], shape[1], shape[0])


def storable_dtype(dtype: np.dtype, name: str) -> np.dtype:
    """The WKW voxel type for ``dtype``: bool becomes uint8, float16 becomes float32."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return np.dtype(np.uint8)
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype not in WKW_DTYPES:
        raise WKWError(f"layer {name!r}: WKW cannot store {dtype} voxels")
    return dtype


def save_dataset(
    path: str | os.PathLike,
    layers: Sequence[ArrayLayer],
    *,
    compress: bool = True,
    pyramid: bool = True,
    name: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    runner: UnitRunner | None = None,
) -> Path:
    """Write ``layers`` into the dataset at ``path`` and return the dataset folder.

    ``path`` may be missing, an empty folder, or an existing WKW dataset (layers of the
    same name are replaced, others kept). Anything else is refused with
    TargetExistsError before a byte is written. The pyramid's units run on ``runner``
    (default: in this thread; ``napari_wkw.jobs.runner.Runner`` runs them on threads,
    processes or a cluster).
    """
    path = Path(path).expanduser().absolute()
    if not layers:
        raise WKWError("nothing to save: no layers given")
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        raise WKWError(f"layer names must be unique, got {names}")
    voxel_size = tuple(float(v) for v in layers[0].voxel_size)
    for layer in layers:
        layer.dtype  # noqa: B018 - refuses a type WKW cannot store before anything is written
        if not np.allclose(layer.voxel_size, voxel_size, rtol=1e-6):
            raise WKWError(
                f"layers {layers[0].name!r} and {layer.name!r} have different voxel sizes "
                f"({voxel_size} and {tuple(layer.voxel_size)}); save them to separate datasets"
            )
        if min(layer.offset) < 0:
            raise WKWError(
                f"layer {layer.name!r} starts at voxel {layer.offset} (x, y, z); WKW cannot store "
                "negative coordinates: translate the layer to start at or after 0"
            )
    existing = _check_target(path, voxel_size)
    staging = fresh_staging(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        staged = Dataset.create(staging, voxel_size, name=name or path.name, unit=layers[0].unit)
        for layer in layers:
            _write_layer(staged, layer, compress, pyramid, progress, cancel, runner or InlineRunner(progress, cancel))
        staged.save_properties()
        if existing is None:
            if path.exists():
                path.rmdir()  # empty, checked above
            os.rename(staging, path)
        else:
            _merge_into(existing, staged)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _check_target(path: Path, voxel_size: tuple[float, ...]) -> Dataset | None:
    if path.is_file():
        raise TargetExistsError(f"{path}: is a file; a WKW dataset is a folder")
    if not path.exists() or not any(path.iterdir()):
        return None
    if not (path / PROPERTIES_FILE).is_file() or not looks_like_wkw(path):
        raise TargetExistsError(
            f"{path}: folder exists, is not empty and is not a WKW dataset; choose a new or empty folder"
        )
    properties = read_properties(path / PROPERTIES_FILE)
    if not np.allclose(properties.voxel_size, voxel_size, rtol=1e-6):
        raise TargetExistsError(
            f"{path}: existing dataset has voxel size {properties.voxel_size}, the layers have "
            f"{voxel_size}; choose a new folder"
        )
    return Dataset.open(path)


def _write_layer(
    dataset: Dataset,
    source: ArrayLayer,
    compress: bool,
    pyramid: bool,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
    runner: UnitRunner,
) -> Layer:
    box = BoundingBox(tuple(source.offset), source.size)  # type: ignore[arg-type]
    layer = dataset.add_layer(
        source.name, source.category, source.dtype, num_channels=source.num_channels, bounding_box=box
    )
    block_type = BLOCK_LZ4 if compress else BLOCK_RAW
    largest = None
    finest_shape = np.array(source.size)
    for index, level in enumerate(source.levels):
        mag = Mag(1, 1, 1) if index == 0 else _level_mag(finest_shape, level.shape)
        if mag is None or mag in layer.mags:
            continue  # a level napari made that is no clean mag: the pyramid rebuilds it
        in_mag = box.in_mag(mag)
        view = layer.add_mag(mag, block_type=block_type, file_len=suggested_file_len(in_mag.bottomright))
        offset = in_mag.topleft
        top = write_array(
            view,
            level,
            offset,
            progress=progress,
            cancel=cancel,
            label=f"writing {source.name} mag {mag.folder_name()}",
        )
        if index == 0:
            largest = top
    if source.category == "segmentation":
        layer.properties.largest_segment_id = int(largest or 0)
    if pyramid:
        build_pyramid(
            layer,
            coarsest=default_coarsest_mag(box.size),
            block_type=block_type,
            runner=runner,
        )
    return layer


def _level_mag(finest_size: np.ndarray, shape: tuple[int, ...]) -> Mag | None:
    """The mag of a napari pyramid level, if it is a clean power-of-two step of level 0."""
    size = np.array((shape[2], shape[1], shape[0]))
    factors = np.maximum(1, np.rint(finest_size / np.maximum(size, 1))).astype(int)
    if any(f & (f - 1) for f in factors):
        return None
    if np.any(-(-finest_size // factors) != size):
        return None
    return Mag(*(int(f) for f in factors))


def _merge_into(target: Dataset, staged: Dataset) -> None:
    """Move staged layers into ``target``, replacing same-named ones, then save properties."""
    for stale in target.path.glob(".replaced-*"):  # old layers of runs killed before removing them
        if left_by_dead_process(stale):
            shutil.rmtree(stale, ignore_errors=True)
    trash = target.path / f".replaced-{owner_tag()}"
    trash.mkdir(exist_ok=True)
    try:
        # a read-modify-write of the properties as they are now, under their lock: layers that
        # another process added since the target was opened stay listed
        with locked(target.path / PROPERTIES_FILE):
            properties = read_properties(target.path / PROPERTIES_FILE)
            for name, layer in staged.layers.items():
                if properties.layer(name) is not None:
                    properties.layers.remove(properties.layer(name))
                    if (target.path / name).exists():
                        os.rename(target.path / name, trash / name)
                os.rename(layer.path, target.path / name)
                properties.layers.append(layer.properties)
            write_properties(target.path / PROPERTIES_FILE, properties)
        target.properties = properties
    finally:
        shutil.rmtree(trash, ignore_errors=True)
