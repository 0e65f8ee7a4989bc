"""Compare two WKW datasets: layers, element classes, bounding boxes, mags and every voxel.

Storage details are not compared: a compressed and a raw copy of the same voxels, or
copies with different file lengths, are equal. Voxels are compared over the union of
both layers' bounding boxes, one work unit per file box of the mag (the larger file
size of the two when they differ, so a unit covers whole files of both), read in
tiles so memory stays at two tiles per worker. Where nothing was written, WKW reads
zeros, so a missing file equals a file of zeros.

Every comparable mag is compared in full, so the report can say how many voxels and
file boxes differ, and names the first differing file box (in unit order: x fastest,
then y, then z), tightened to the extent of the differing voxels inside it. It also
lists every differing WKW block (an (n, 3) array of block coordinates, found by
reducing each tile's mask block by block), so a viewer can mark where to look.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.dataset import Dataset, Layer, MagView
from ..core.errors import WKWError
from ..core.geometry import BoundingBox, Mag, Vec3
from ..core.progress import CancelToken, ProgressCallback, check_cancelled
from ..jobs.runner import JobSettings, Runner
from .common import open_dataset, require_wkw

#: block coordinates (WKW coordinates are 32-bit, so block indices fit)
BLOCK_DTYPE = np.int32
#: kinds of differences, in the order a report lists them for one layer
KINDS = ("voxel size", "missing layer", "category", "element class", "bounding box", "missing mag", "voxels")


@dataclass(frozen=True)
class Difference:
    """One way in which the datasets differ.

    ``box`` is in ``mag``'s voxels (x/y/z): for ``voxels``, the first differing file
    box tightened to the differing voxels in it; for ``bounding box``, None.
    ``blocks`` (kind ``voxels``): the differing blocks of ``block_len``^3 voxels of
    ``mag`` as an (n, 3) int array of block coordinates (x, y, z; block ``b`` holds the
    mag's voxels ``b * block_len`` up to ``(b + 1) * block_len``), sorted z, y, x.
    """

    layer: str | None
    mag: Mag | None
    kind: str
    message: str
    box: BoundingBox | None = None
    voxels: int = 0  # differing voxels (kind ``voxels``)
    blocks: np.ndarray | None = field(default=None, compare=False, repr=False)
    block_len: int = 0


@dataclass
class EqualityReport:
    """What :func:`check_equality` found; ``equal`` when ``differences`` is empty."""

    a: Path
    b: Path
    differences: list[Difference] = field(default_factory=list)
    compared: list[tuple[str, Mag]] = field(default_factory=list)  # (layer, mag) compared voxel by voxel

    @property
    def equal(self) -> bool:
        return not self.differences

    def __bool__(self) -> bool:
        return self.equal

    def format(self) -> str:
        """A readable report: one line per difference, or one line saying they are equal."""
        if self.equal:
            what = ", ".join(f"{layer} mag {mag.folder_name()}" for layer, mag in self.compared) or "no voxels"
            return f"equal: {self.a} and {self.b} ({what} compared)"
        lines = [f"different: {self.a} and {self.b} ({len(self.differences)} difference(s))"]
        for difference in self.differences:
            where = []
            if difference.layer is not None:
                where.append(f"layer {difference.layer!r}")
            if difference.mag is not None:
                where.append(f"mag {difference.mag.folder_name()}")
            prefix = " ".join(where) or "dataset"
            lines.append(f"  {prefix}: {difference.kind}: {difference.message}")
        return "\n".join(lines)


def format_box(box: BoundingBox) -> str:
    """``x,y,z,width,height,depth``, as ``--bbox`` takes it."""
    return ",".join(str(v) for v in (*box.topleft, *box.size))


# ---- work units -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CompareUnit:
    """One file box of one mag in both datasets: paths and boxes only."""

    a: str  # mag folder of the first dataset
    b: str  # mag folder of the second dataset
    box: BoundingBox  # this mag's voxels
    tile: Vec3  # read this much at a time (x, y, z)
    block_len: int = 32  # differing blocks are reported on this grid


def compare_unit(unit: CompareUnit) -> tuple[BoundingBox | None, int, np.ndarray]:
    """The extent of the differing voxels in ``unit.box`` (None if all equal), their count
    and the differing blocks (an (n, 3) array of x, y, z block coordinates)."""
    view_a = MagView.at(Path(unit.a))
    view_b = MagView.at(Path(unit.b))
    extent: BoundingBox | None = None
    count = 0
    blocks = []
    for tile in unit.box.chunks(unit.tile):
        check_cancelled()
        mask = differing(view_a.read(tile), view_b.read(tile))
        n = int(np.count_nonzero(mask))
        if not n:
            continue
        count += n
        found = _mask_extent(mask, tile.topleft)
        extent = found if extent is None else extent.union(found)
        blocks.append(mask_blocks(mask, tile.topleft, unit.block_len))
    return extent, count, _unique_blocks(blocks)


def differing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A (z, y, x) mask of voxels that differ in any channel; NaN equals NaN."""
    mask = a != b
    if a.dtype.kind == "f":
        mask &= ~(np.isnan(a) & np.isnan(b))
    if mask.ndim == 4:
        mask = mask.any(axis=3)
    return mask


def mask_blocks(mask: np.ndarray, origin: Vec3, block_len: int) -> np.ndarray:
    """The blocks (x, y, z block coordinates, absolute) that hold a True of a (z, y, x) mask
    whose voxel 0 sits at ``origin``: one OR per block along each axis, no per-voxel list."""
    reduced = mask
    for axis, start in zip((2, 1, 0), origin):  # x, y, z
        n = mask.shape[axis]
        first = -start % block_len  # where the second block starts in this tile
        cuts = np.arange(first if first else block_len, n, block_len)
        reduced = np.logical_or.reduceat(reduced, np.concatenate([[0], cuts]).astype(np.intp), axis=axis)
    corner = np.array([o // block_len for o in origin])
    return (np.argwhere(reduced)[:, ::-1] + corner).astype(BLOCK_DTYPE)


def _unique_blocks(parts: list[np.ndarray]) -> np.ndarray:
    """Blocks of several tiles, each once, sorted z, y, x."""
    if not parts:
        return np.zeros((0, 3), BLOCK_DTYPE)
    blocks = np.unique(np.concatenate(parts), axis=0)
    return blocks[np.lexsort(blocks.T)]


def _mask_extent(mask: np.ndarray, origin: Vec3) -> BoundingBox:
    """The smallest box (x/y/z, ``origin``-based) holding every True of a (z, y, x) mask."""
    bounds = []
    for axis in (2, 1, 0):  # x, y, z
        others = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        bounds.append((int(hits[0]), int(hits[-1]) + 1))
    start = [o + lo for o, (lo, _) in zip(origin, bounds)]
    stop = [o + hi for o, (_, hi) in zip(origin, bounds)]
    return BoundingBox.from_bounds(start, stop)


# ---- the operation ----------------------------------------------------------------------------


def check_equality(
    a: str | os.PathLike | Dataset,
    b: str | os.PathLike | Dataset,
    *,
    layer_name: str | None = None,
    mag: Mag | str | int | None = None,
    jobs: JobSettings | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> EqualityReport:
    """Compare dataset ``a`` with dataset ``b`` (all layers and mags, or the ones named).

    A layer or mag named that neither dataset has is bad input (WKWError); one that
    only one of them has is a difference. Raises CancelledError when cancelled.
    """
    dataset_a = a if isinstance(a, Dataset) else open_dataset(a)
    dataset_b = b if isinstance(b, Dataset) else open_dataset(b)
    mag = Mag.parse(mag) if mag is not None else None
    report = EqualityReport(dataset_a.path, dataset_b.path)
    differences = report.differences

    if not np.allclose(dataset_a.voxel_size, dataset_b.voxel_size, rtol=1e-6):
        differences.append(
            Difference(None, None, "voxel size", f"{dataset_a.voxel_size} != {dataset_b.voxel_size} (x, y, z)")
        )

    names = _layer_names(dataset_a, dataset_b, layer_name)
    pairs = []
    for name in names:
        layer_a, layer_b = dataset_a.layers.get(name), dataset_b.layers.get(name)
        if layer_a is None or layer_b is None:
            missing_in = dataset_a.path if layer_a is None else dataset_b.path
            differences.append(Difference(name, None, "missing layer", f"{missing_in} has no layer {name!r}"))
            continue
        require_wkw(layer_a)
        require_wkw(layer_b)
        pairs.append((layer_a, layer_b))
    if mag is not None and pairs and not any(mag in la.mags or mag in lb.mags for la, lb in pairs):
        raise WKWError(
            f"{dataset_a.path}: no compared layer has mag {mag.folder_name()} in either dataset "
            f"(mags: {', '.join(sorted({m.folder_name() for la, lb in pairs for m in [*la.mags, *lb.mags]}))})"
        )

    with Runner(jobs, progress, cancel) as runner:
        for layer_a, layer_b in pairs:
            _compare_layer(layer_a, layer_b, mag, runner, report)
    return report


def _layer_names(dataset_a: Dataset, dataset_b: Dataset, layer_name: str | None) -> list[str]:
    if layer_name is not None:
        if layer_name not in dataset_a.layers and layer_name not in dataset_b.layers:
            known = ", ".join(sorted(set(dataset_a.layers) | set(dataset_b.layers))) or "none"
            raise WKWError(f"{dataset_a.path}: no layer {layer_name!r} in either dataset (layers: {known})")
        return [layer_name]
    if not dataset_a.layers and not dataset_b.layers:
        raise WKWError(f"{dataset_a.path}: the datasets have no WKW layers")
    return list(dataset_a.layers) + [name for name in dataset_b.layers if name not in dataset_a.layers]


def _compare_layer(layer_a: Layer, layer_b: Layer, mag: Mag | None, runner: Runner, report: EqualityReport) -> None:
    name = layer_a.name
    differences = report.differences
    if layer_a.category != layer_b.category:
        differences.append(Difference(name, None, "category", f"{layer_a.category} != {layer_b.category}"))
    same_type = layer_a.dtype == layer_b.dtype and layer_a.num_channels == layer_b.num_channels
    if not same_type:
        differences.append(
            Difference(
                name,
                None,
                "element class",
                f"{_type_name(layer_a)} != {_type_name(layer_b)}; voxels not compared",
            )
        )
    if layer_a.bounding_box != layer_b.bounding_box:
        differences.append(
            Difference(
                name,
                None,
                "bounding box",
                f"{format_box(layer_a.bounding_box)} != {format_box(layer_b.bounding_box)} (x,y,z,w,h,d)",
            )
        )
    mags = [mag] if mag is not None else list(dict.fromkeys([*layer_a.mags, *layer_b.mags]))
    mags.sort(key=lambda m: m.sort_key())
    for current in mags:
        view_a, view_b = layer_a.mags.get(current), layer_b.mags.get(current)
        if view_a is None or view_b is None:
            if view_a is None and view_b is None:
                continue  # the named mag is in neither copy of this layer (but in another layer)
            missing_in = layer_a.path if view_a is None else layer_b.path
            differences.append(
                Difference(name, current, "missing mag", f"{missing_in} has no mag {current.folder_name()}")
            )
            continue
        if not same_type:
            continue
        if view_a.dtype != view_b.dtype or view_a.num_channels != view_b.num_channels:
            differences.append(
                Difference(
                    name,
                    current,
                    "element class",
                    f"the mags' headers store {view_a.num_channels} x {view_a.dtype} and "
                    f"{view_b.num_channels} x {view_b.dtype}; voxels not compared",
                )
            )
            continue
        difference = _compare_mag(layer_a, view_a, view_b, runner)
        report.compared.append((name, current))
        if difference is not None:
            differences.append(difference)


def _type_name(layer: Layer) -> str:
    channels = f"{layer.num_channels} x " if layer.num_channels > 1 else ""
    return f"{layer.properties.element_class} ({channels}{layer.dtype})"


def _compare_mag(layer_a: Layer, view_a: MagView, view_b: MagView, runner: Runner) -> Difference | None:
    current = view_a.mag
    box = layer_a.bounding_box.union(view_b.layer.bounding_box).in_mag(current)
    step = max(view_a.header.file_size, view_b.header.file_size)
    xy = min(512, step)
    block_len = max(view_a.header.block_len, view_b.header.block_len)  # a multiple of the other
    tile = (xy, xy, block_len)
    units = [
        CompareUnit(str(view_a.path), str(view_b.path), file_box, tile, block_len)
        for file_box in box.chunks((step,) * 3)
    ]
    label = f"comparing {layer_a.name} mag {current.folder_name()}"
    results = runner.map(compare_unit, units, label)
    differing_units = [(extent, count, blocks) for extent, count, blocks in results if extent is not None]
    if not differing_units:
        return None
    first = differing_units[0][0]
    total = sum(count for _, count, _ in differing_units)
    blocks = _unique_blocks([blocks for _, _, blocks in differing_units])
    message = (
        f"{total} voxel(s) differ in {len(differing_units)} of {len(units)} file box(es); "
        f"first in box {format_box(first)} (x,y,z,w,h,d in mag {current.folder_name()} voxels"
    )
    if current != Mag(1, 1, 1):
        message += f"; {format_box(first.from_mag(current))} in mag-1 voxels"
    return Difference(layer_a.name, current, "voxels", message + ")", first, total, blocks, block_len)


__all__ = [
    "CompareUnit",
    "Difference",
    "EqualityReport",
    "check_equality",
    "compare_unit",
    "differing",
    "format_box",
    "mask_blocks",
]
