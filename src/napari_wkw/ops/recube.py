"""``recube``: rewrite layers with another file length, voxel type or compression.

Typical use: datasets written with one 32^3 block per file (``file_len`` 1, millions
of small files) turned into the usual 32^3 blocks per file, or the reverse for tools
that want small files. Every mag is rewritten; the copy is built in a hidden folder
beside the target and renamed into place when complete.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.dataset import HEADER_FILE, Dataset, MagView
from ..core.element_class import cast_checked, element_class_for
from ..core.errors import WKWError
from ..core.geometry import BoundingBox
from ..core.progress import CancelToken, ProgressCallback
from ..core.properties import MagEntry
from ..core.staging import staged
from ..core.wkw_file import BLOCK_LZ4, BLOCK_RAW, WKWHeader
from ..jobs.runner import JobSettings, Runner
from .common import check_new_target, open_dataset, select_layers

FILE_LENS = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass(frozen=True)
class RecubeUnit:
    """One target file's part of the layer box: read from ``source``, write to ``target``."""

    source: str
    target: str
    box: BoundingBox  # mag voxels, inside one target file
    dtype: str
    threads: int = 1


def recube_unit(unit: RecubeUnit) -> None:
    source = MagView.at(Path(unit.source))
    target = MagView.at(Path(unit.target))
    dtype = np.dtype(unit.dtype)
    target.write_file(unit.box, lambda sub: cast_checked(source.read(sub), dtype, unit.source), threads=unit.threads)


def recube(
    source: str | os.PathLike,
    target: str | os.PathLike,
    *,
    layer_name: str | None = None,
    file_len: int = 32,
    dtype: str | np.dtype | None = None,
    compress: bool = True,
    jobs: JobSettings | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Path:
    """Write every layer (or ``layer_name``) of ``source`` to a new dataset at ``target``."""
    if file_len not in FILE_LENS:
        raise WKWError(f"file length must be a power of two from 1 to 128 blocks, not {file_len}")
    dataset = open_dataset(source)
    layers = select_layers(dataset, layer_name)
    target_path = check_new_target(target, source=dataset.path)
    new_dtype = None if dtype is None else _parse_dtype(dtype)
    properties = copy.deepcopy(dataset.properties)
    properties.layers = [copy.deepcopy(layer.properties) for layer in layers]
    with staged(target_path) as staging:
        staging.mkdir(parents=True)
        with Runner(jobs, progress, cancel) as runner:
            for layer, layer_properties in zip(layers, properties.layers):
                layer_dtype = np.dtype(new_dtype or layer.dtype)
                layer_properties.element_class = element_class_for(layer_dtype, layer.num_channels)
                layer_properties.mags = []
                for mag, view in layer.mags.items():
                    header = WKWHeader(
                        layer_dtype,
                        layer.num_channels,
                        view.header.block_len,
                        file_len,
                        BLOCK_LZ4 if compress else BLOCK_RAW,
                    )
                    target_mag = staging / layer.name / mag.folder_name()
                    target_mag.mkdir(parents=True)
                    (target_mag / HEADER_FILE).write_bytes(header.to_bytes(0))
                    boxes = list(layer.bounding_box.in_mag(mag).chunks((header.file_size,) * 3))
                    threads = max(1, runner.workers // max(1, len(boxes)))
                    units = [
                        RecubeUnit(str(view.path), str(target_mag), box, layer_dtype.str, threads) for box in boxes
                    ]
                    runner.map(recube_unit, units, f"recubing {layer.name} mag {mag.folder_name()}")
                    layer_properties.mags.append(MagEntry(mag, f"./{layer.name}/{mag.folder_name()}"))
        Dataset(staging, properties).save_properties()
    return target_path


def _parse_dtype(value: str | np.dtype) -> np.dtype:
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise WKWError(f"unknown voxel type {value!r} (use uint8, uint16, uint32, uint64, int8 ... float32)") from None
    if dtype.kind not in "uif":
        raise WKWError(f"WKW cannot store {dtype} voxels")
    return dtype
