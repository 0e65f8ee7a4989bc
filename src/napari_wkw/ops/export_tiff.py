"""Export WKW layers as TIFF stacks: one image per z slice, or tiles in a ``z/y/x.tiff`` tree.

Naming:

- slices: ``TARGET/<name>_<z:06d>.tiff``, ``z`` being the slice's z coordinate in the
  exported mag (absolute, as in the dataset, so a box's slices say where they sit);
  ``name`` defaults to the layer name.
- tiles (``tile_size=(w, h)``): ``TARGET/<z>/<y>/<x>.tiff``, ``y`` and ``x`` the tile's
  row and column counted from 0 at the export box's corner; tiles at the right and
  bottom edges are cut to the box (no padding).
- several layers: each in ``TARGET/<layer name>/``.

Voxel types are kept: uint8/uint16/uint32/uint64/float32 ... stay as they are, RGB
layers (uint24, 3 x uint8) become RGB TIFFs, other multi-channel layers are written
with their channels as extra samples.

``downsample=N`` shrinks x and y by N: when the layer has the mag that is N times
coarser in x and y (``mag * (N, N, 1)``, e.g. 2-2-1 for N=2 from mag 1) it is read
as it is; otherwise each slab is downsampled on the fly with the pyramid's filter
(median for color, mode for segmentation, edges repeated beyond the layer's box), so
both ways give the same image geometry: the box in the coarser mag.

Work units are z-slabs one block deep (32 slices), each writing its slices' files
(with tiles: the slab cut further into groups of whole tiles about one file wide).
A unit holds its slab in memory; for huge slices the slab is made thinner so one
unit stays under about 256 MiB, and tiling bounds it by the tile group instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from ..core.dataset import Layer, MagView
from ..core.downsample import default_interpolation, downsample_data, read_edge_padded
from ..core.errors import WKWError
from ..core.geometry import BoundingBox, Mag
from ..core.progress import CancelToken, ProgressCallback, check_cancelled
from ..core.staging import staged
from ..jobs.runner import JobSettings, Runner
from .common import check_new_target, open_dataset, select_layers, select_mags

#: largest slab (bytes read) one unit holds before slabs are made thinner
UNIT_BYTES = 256 * 2**20
#: tiles of one unit cover about this many pixels along x and y
TILE_GROUP = 1024


@dataclass(frozen=True)
class ExportUnit:
    """One slab (or group of tiles) of one layer: paths, boxes and parameters only."""

    source: str  # mag folder read
    box: BoundingBox  # output voxels (the exported mag, after downsampling)
    export_box: BoundingBox  # the whole export in output voxels (tile indices count from its corner)
    factor: int  # x/y shrink applied here (1: read the output mag as it is)
    method: str  # filter for factor > 1
    inside: BoundingBox  # the layer in the source mag's voxels (edges repeat beyond it)
    target: str  # output folder
    name: str  # slice file prefix
    tile_size: tuple[int, int] | None
    photometric: str


def export_unit(unit: ExportUnit) -> list[str]:
    """Write the TIFFs of ``unit``; returns their paths (z, then tile row, then column)."""
    source = MagView.at(Path(unit.source))
    data = _read_output(source, unit)
    target = Path(unit.target)
    written = []
    x0, y0, z0 = unit.box.topleft
    for dz in range(unit.box.size[2]):
        check_cancelled()
        z = z0 + dz
        plane = data[dz]
        if unit.tile_size is None:
            written.append(_write(target / f"{unit.name}_{z:06d}.tiff", plane, unit.photometric))
            continue
        tw, th = unit.tile_size
        ex, ey, _ = unit.export_box.topleft
        for y in range(y0, y0 + unit.box.size[1], th):
            for x in range(x0, x0 + unit.box.size[0], tw):
                tile = plane[y - y0 : y - y0 + th, x - x0 : x - x0 + tw]
                path = target / str(z) / str((y - ey) // th) / f"{(x - ex) // tw}.tiff"
                written.append(_write(path, tile, unit.photometric))
    return written


def _read_output(source: MagView, unit: ExportUnit) -> np.ndarray:
    if unit.factor == 1:
        return source.read(unit.box)
    f = unit.factor
    out = np.zeros(source.array_shape(unit.box), source.dtype)
    # output voxels whose group holds any voxel of the layer (beyond it: zeros, as in the pyramid)
    covered = unit.box.intersection(unit.inside.in_mag(Mag(f, f, 1)))
    if covered.is_empty:
        return out
    box = covered.from_mag(Mag(f, f, 1))
    data = downsample_data(read_edge_padded(source, box, unit.inside), (f, f, 1), unit.method)
    out[covered.zyx_slices(unit.box.topleft)] = data
    return out


def _write(path: Path, image: np.ndarray, photometric: str) -> str:
    """Write one TIFF beside its final name and rename it into place (no half files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    extra = {"planarconfig": "contig"} if image.ndim == 3 else {}
    tifffile.imwrite(partial, np.ascontiguousarray(image), photometric=photometric, metadata=None, **extra)
    os.replace(partial, path)
    return str(path)


def export_tiff(
    path: str | os.PathLike,
    target: str | os.PathLike,
    *,
    layer_name: str | None = None,
    mag: Mag | str | int | None = None,
    bbox: BoundingBox | None = None,
    tile_size: tuple[int, int] | None = None,
    downsample: int = 1,
    name: str | None = None,
    jobs: JobSettings | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> list[Path]:
    """Export layers of the dataset at ``path`` as TIFFs into the new folder ``target``.

    ``mag`` defaults to each layer's finest; ``bbox`` is in mag-1 voxels (x, y, z)
    and defaults to the layer's bounding box. Returns the files written. The target
    must be missing or an empty folder (TargetExistsError otherwise); the files are
    written into a hidden folder beside it that is renamed into place when complete.
    """
    dataset = open_dataset(path)
    layers = select_layers(dataset, layer_name)
    mag = Mag.parse(mag) if mag is not None else None
    downsample = int(downsample)
    if downsample < 1:
        raise WKWError(f"downsample must be 1 or more, not {downsample}")
    if tile_size is not None:
        tile_size = (int(tile_size[0]), int(tile_size[1]))
        if min(tile_size) < 1:
            raise WKWError(f"tile size must be positive, not {tile_size}")
    if bbox is not None and bbox.is_empty:
        raise WKWError(f"the bounding box {bbox.topleft}+{bbox.size} is empty")
    plans = [_plan_layer(layer, mag, bbox, downsample) for layer in layers]  # check all before writing

    target = check_new_target(target, source=dataset.path)
    written: list[Path] = []
    with staged(target) as staging:  # the TIFFs appear in ``target`` all at once, or not at all
        staging.mkdir(parents=True)
        with Runner(jobs, progress, cancel) as runner:
            for layer, (source, out_mag, out_box, factor) in zip(layers, plans):
                folder = staging / layer.name if len(layers) > 1 else staging
                folder.mkdir(parents=True, exist_ok=True)
                units = _units(layer, source, out_box, factor, folder, name or layer.name, tile_size)
                label = f"exporting {layer.name} mag {out_mag.folder_name()}"
                for paths in runner.map(export_unit, units, label):
                    written.extend(target / Path(p).relative_to(staging) for p in paths)
    return written


def _plan_layer(
    layer: Layer, mag: Mag | None, bbox: BoundingBox | None, downsample: int
) -> tuple[MagView, Mag, BoundingBox, int]:
    """(mag read, mag exported, export box in its voxels, x/y factor still to apply)."""
    chosen = select_mags(layer, [mag] if mag is not None else None)[0]
    box = bbox if bbox is not None else layer.bounding_box
    if box.is_empty:
        raise WKWError(f"{layer.path}: layer {layer.name!r} has an empty bounding box; give --bbox")
    out_mag = Mag(chosen.mag.x * downsample, chosen.mag.y * downsample, chosen.mag.z)
    if out_mag in layer.mags:
        return layer.mags[out_mag], out_mag, box.in_mag(out_mag), 1
    return chosen, out_mag, box.in_mag(out_mag), downsample


def _units(
    layer: Layer,
    source: MagView,
    out_box: BoundingBox,
    factor: int,
    folder: Path,
    name: str,
    tile_size: tuple[int, int] | None,
) -> list[ExportUnit]:
    photometric = "rgb" if layer.is_rgb else "minisblack"
    method = default_interpolation(layer.category)
    inside = layer.bounding_box.in_mag(source.mag)
    huge = max(out_box.bottomright) + 1
    # with tiles: whole tiles, counted from the box's corner, about one file wide per unit
    group = (huge, huge) if tile_size is None else tuple(max(1, TILE_GROUP // t) * t for t in tile_size)
    pieces = []
    x0, y0, _ = out_box.topleft
    for gy in range(y0, out_box.bottomright[1], group[1]):
        for gx in range(x0, out_box.bottomright[0], group[0]):
            pieces.append(out_box.intersection(BoundingBox((gx, gy, out_box.topleft[2]), (group[0], group[1], huge))))
    units = []
    for piece in pieces:
        depth = _slab_depth(source, piece, factor)
        for slab in piece.chunks((huge, huge, depth)):
            units.append(
                ExportUnit(
                    str(source.path),
                    slab,
                    out_box,
                    factor,
                    method,
                    inside,
                    str(folder),
                    name,
                    tile_size,
                    photometric,
                )
            )
    units.sort(key=lambda u: (u.box.topleft[2], u.box.topleft[1], u.box.topleft[0]))
    return units


def _slab_depth(source: MagView, piece: BoundingBox, factor: int) -> int:
    """One block deep, halved while a slab would read more than :data:`UNIT_BYTES`."""
    depth = source.header.block_len
    plane = piece.size[0] * piece.size[1] * factor * factor * source.header.voxel_bytes
    while depth > 1 and plane * depth > UNIT_BYTES:
        depth //= 2
    return depth


__all__ = ["ExportUnit", "export_tiff", "export_unit"]
