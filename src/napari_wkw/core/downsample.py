"""Downsampling: which mags to build, the filters, and streaming a pyramid to disk.

Mags follow the reference tooling (webknossos-libs): the default coarsest mag is the
power of two that brings the larger of x and y to about 100 voxels (at least 4); in
anisotropic mode only the finest axes are doubled until they catch up with the others
(11.24 x 11.24 x 25 nm gives 2-2-1, 4-4-2, 8-8-4 ...). Filters work on groups of
``fx*fy*fz`` voxels in the order the reference's kernels visit them (z slowest, then x,
then y fastest), so ``mode`` breaks ties the same way.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dataset import Layer, MagView
from .errors import WKWError
from .geometry import BoundingBox, Mag, Vec3
from .properties import list_layer
from .units import InlineRunner, UnitRunner
from .wkw_file import BLOCK_LZ4, suggested_file_len

INTERPOLATIONS = ("median", "mode", "linear", "nearest", "max", "min")
#: "linear" at an exact power-of-two step is the mean of each group (older name: "mean")
_ALIASES = {"linear": "mean"}
SAMPLING_MODES = ("anisotropic", "isotropic", "constant-z")


def default_interpolation(category: str) -> str:
    """Median for color (robust to noise, keeps edges), mode for segmentation (keeps ids)."""
    return "mode" if category == "segmentation" else "median"


def default_coarsest_mag(size_xyz: Sequence[int]) -> Mag:
    """The reference's default: about 100 voxels along the larger of x and y, at least 4."""
    largest = max(int(size_xyz[0]), int(size_xyz[1]), 1)
    edge = max(2 ** math.ceil(math.log2(max(largest / 100, 1))), 4)
    return Mag(edge, edge, edge)


def plan_mags(
    from_mag: Mag,
    coarsest: Mag,
    voxel_size: Sequence[float] | None = None,
    mode: str = "anisotropic",
) -> list[Mag]:
    """The mags to build after ``from_mag``, each a power-of-two step of the previous.

    As in the reference, building stops once the largest factor reaches the coarsest
    mag's: for 11.24 x 11.24 x 25 nm and coarsest 32 the last mag is 32-32-16.
    """
    if mode not in SAMPLING_MODES:
        raise WKWError(f"sampling mode must be one of {', '.join(SAMPLING_MODES)}, not {mode!r}")
    if mode == "constant-z":
        coarsest = Mag(coarsest.x, coarsest.y, from_mag.z)
    current = np.array(from_mag.xyz)
    limit = np.array(coarsest.xyz)
    mags: list[Mag] = []
    while current.max() < limit.max():
        if mode != "anisotropic" or voxel_size is None:
            new = np.minimum(current * 2, limit)
        else:
            size = current * np.asarray(voxel_size, dtype=float)
            smallest = size == size.min()
            factor = smallest + 1
            all_doubled = size * 2
            only_smallest = size * factor
            if all_doubled.max() / all_doubled.min() < only_smallest.max() / only_smallest.min():
                new = np.minimum(current * 2, limit)
            else:
                new = np.minimum(current * factor, limit)
        if np.array_equal(new, current):
            # the finest axes hit the limit first: double what is left
            new = np.minimum(current * 2, limit)
        current = new
        mags.append(Mag(*(int(v) for v in current)))
    return mags


def _groups(data: np.ndarray, factor: Vec3) -> np.ndarray:
    """Reshape (z, y, x, c) into (z', y', x', c, fz*fx*fy), each group in the reference's
    order: z slowest, then x, then y fastest (what ``mode`` ties depend on)."""
    fx, fy, fz = factor
    z, y, x, c = data.shape
    grouped = data.reshape(z // fz, fz, y // fy, fy, x // fx, fx, c)
    grouped = grouped.transpose(0, 2, 4, 6, 1, 5, 3)
    return grouped.reshape(z // fz, y // fy, x // fx, c, fz * fx * fy)


def _mode(groups: np.ndarray) -> np.ndarray:
    n = groups.shape[-1]
    counts = np.zeros(groups.shape, np.uint8 if n < 256 else np.uint32)  # counts reach n
    for j in range(n):
        counts += groups == groups[..., j : j + 1]
    winner = counts.argmax(axis=-1)[..., None]
    return np.take_along_axis(groups, winner, axis=-1)[..., 0]


def _median(groups: np.ndarray) -> np.ndarray:
    n = groups.shape[-1]
    if n % 2:
        return np.partition(groups, n // 2, axis=-1)[..., n // 2]
    part = np.partition(groups, (n // 2 - 1, n // 2), axis=-1)
    middle = (part[..., n // 2 - 1].astype(np.float64) + part[..., n // 2]) / 2
    return middle.astype(groups.dtype)


def _mean(groups: np.ndarray) -> np.ndarray:
    mean = groups.mean(axis=-1, dtype=np.float64)
    if groups.dtype.kind in "ui":
        mean = np.rint(mean)
    return mean.astype(groups.dtype)


_FILTERS = {
    "median": _median,
    "mode": _mode,
    "mean": _mean,
    "nearest": lambda g: g[..., 0],
    "max": lambda g: g.max(axis=-1),
    "min": lambda g: g.min(axis=-1),
}


#: comparator networks that sort 2, 4 and 8 values (Batcher's odd-even merge sort)
_SORTING_NETWORKS = {
    2: [(0, 1)],
    4: [(0, 1), (2, 3), (0, 2), (1, 3), (1, 2)],
    8: [
        (0, 1),
        (2, 3),
        (4, 5),
        (6, 7),
        (0, 2),
        (1, 3),
        (4, 6),
        (5, 7),
        (1, 2),
        (5, 6),
        (0, 4),
        (1, 5),
        (2, 6),
        (3, 7),
        (2, 4),
        (3, 5),
        (1, 2),
        (3, 4),
        (5, 6),
    ],
}


def _median_by_network(data: np.ndarray, factor: Vec3) -> np.ndarray | None:
    """Median of 2, 4 or 8 voxels per group with element-wise min/max on strided views.

    Same result as :func:`_median` (the mean of the two middle values, truncated),
    several times faster: no group array is materialised and nothing is sorted.
    Unsigned types up to 32 bits and floats only (signed truncation and uint64's
    float rounding differ); None otherwise.
    """
    fx, fy, fz = factor
    n = fx * fy * fz
    if n not in _SORTING_NETWORKS or data.dtype.kind not in "uf" or data.dtype == np.uint64:
        return None
    if n == 4:
        # The two middle values of four are max(lower of each pair), min(higher of each pair)
        # for any split into two pairs (their order does not matter for the mean). Pairing
        # along the slower axis first reads whole rows; only half the data is then strided.
        slow, fast = (axis for axis, f in enumerate((fz, fy, fx)) if f == 2)

        def every_other(array: np.ndarray, axis: int, start: int) -> np.ndarray:
            return array[(slice(None),) * axis + (slice(start, None, 2),)]

        first, second = every_other(data, slow, 0), every_other(data, slow, 1)
        lower, higher = np.minimum(first, second), np.maximum(first, second)
        low = np.maximum(every_other(lower, fast, 0), every_other(lower, fast, 1))
        high = np.minimum(every_other(higher, fast, 0), every_other(higher, fast, 1))
    else:
        values = [data[z::fz, y::fy, x::fx] for z in range(fz) for y in range(fy) for x in range(fx)]
        for i, j in _SORTING_NETWORKS[n]:
            values[i], values[j] = np.minimum(values[i], values[j]), np.maximum(values[i], values[j])
        low, high = values[n // 2 - 1], values[n // 2]
    if data.dtype.kind == "u":
        return (low & high) + ((low ^ high) >> 1)  # floor((low + high) / 2) without overflow
    return ((low.astype(np.float64) + high) / 2).astype(data.dtype)


def _mode_by_views(data: np.ndarray, factor: Vec3) -> np.ndarray | None:
    """Mode of up to 8 voxels per group from strided views, without building the groups.

    Same result as :func:`_mode`: each value's count is the number of equal values in
    its group, and the first value in the reference's order (z slowest, then x, then y)
    with the highest count wins. None for larger groups.
    """
    fx, fy, fz = factor
    n = fx * fy * fz
    if n > 8:
        return None
    values = [data[z::fz, y::fy, x::fx] for z in range(fz) for x in range(fx) for y in range(fy)]
    mixed = np.zeros(values[0].shape, bool)
    for other in values[1:]:
        mixed |= other != values[0]
    best = values[0].copy()
    where = np.nonzero(mixed)
    if len(where[0]) * 2 < mixed.size:  # labels: most groups lie inside one segment
        if len(where[0]):
            best[where] = _mode_of_values([value[where] for value in values])
        return best
    return _mode_of_values(values)


def _mode_of_values(values: list[np.ndarray]) -> np.ndarray:
    """Element-wise mode of equally shaped arrays; ties go to the earliest array."""
    n = len(values)
    counts = [np.ones(values[0].shape, np.uint8) for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            same = values[i] == values[j]
            counts[i] += same
            counts[j] += same
    best, best_count = values[0].copy(), counts[0]
    for j in range(1, n):
        np.copyto(best, values[j], where=counts[j] > best_count)
        best_count = np.maximum(best_count, counts[j])
    return best


def _filter_name(method: str) -> str:
    """The filter ``method`` names (``linear`` is ``mean``); an error for unknown ones."""
    method = _ALIASES.get(method, method)
    if method not in _FILTERS:
        raise WKWError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {method!r}")
    return method


def downsample_data(data: np.ndarray, factor: Sequence[int], method: str) -> np.ndarray:
    """Downsample a (z, y, x[, c]) array by ``factor`` (x, y, z); the shape must divide."""
    method = _filter_name(method)
    factor = tuple(int(f) for f in factor)
    squeeze = data.ndim == 3
    data4 = data[..., None] if squeeze else data
    if any(n % f for n, f in zip(data4.shape[2::-1], factor)):
        raise WKWError(f"array of shape {data.shape} does not divide by factor {factor}")
    if factor == (1, 1, 1):
        return data
    out = None
    if method == "median":
        out = _median_by_network(data4, factor)  # type: ignore[arg-type]
    elif method == "mode":
        out = _mode_by_views(data4, factor)  # type: ignore[arg-type]
    if out is None:
        out = _FILTERS[method](_groups(data4, factor))  # type: ignore[arg-type]
    return out[..., 0] if squeeze else out


@dataclass(frozen=True)
class DownsampleUnit:
    """One target WKW file's part of a downsampling step: paths and boxes only."""

    source: str  # source mag folder
    target: str  # target mag folder
    factor: Vec3  # target mag / source mag, per axis (x, y, z)
    method: str
    inside: BoundingBox  # the layer in source-mag voxels; beyond it, edges are repeated
    box: BoundingBox  # target-mag voxels, inside one target file
    threads: int = 1  # tiles computed at once inside this unit


def downsample_file(unit: DownsampleUnit) -> None:
    """Fill ``unit.box`` of the target mag from the source mag."""
    source = MagView.at(Path(unit.source))
    target = MagView.at(Path(unit.target))

    def fetch(sub: BoundingBox) -> np.ndarray:
        src = BoundingBox(
            tuple(a * f for a, f in zip(sub.topleft, unit.factor)),  # type: ignore[arg-type]
            tuple(s * f for s, f in zip(sub.size, unit.factor)),  # type: ignore[arg-type]
        )
        return downsample_data(read_edge_padded(source, src, unit.inside), unit.factor, unit.method)

    target.write_file(unit.box, fetch, (256, 256, target.header.block_len), threads=unit.threads, find_max=False)


def downsample_mag(
    layer: Layer, source: MagView, target: MagView, method: str, runner: UnitRunner | None = None
) -> None:
    """Fill ``target`` from ``source``, one target WKW file per work unit."""
    factor = tuple(t // s for t, s in zip(target.mag.xyz, source.mag.xyz))
    if any(f * s != t for f, s, t in zip(factor, source.mag.xyz, target.mag.xyz)) or max(factor) < 1:
        raise WKWError(f"mag {target.mag} is not a multiple of mag {source.mag}")
    method = _filter_name(method)  # checked before any unit runs
    runner = runner or InlineRunner()
    boxes = list(layer.bounding_box.in_mag(target.mag).chunks((target.header.file_size,) * 3))
    threads = max(1, runner.workers // max(1, len(boxes)))
    units = [
        DownsampleUnit(
            str(source.path),
            str(target.path),
            factor,
            method,  # type: ignore[arg-type]
            layer.bounding_box.in_mag(source.mag),
            box,
            threads,
        )
        for box in boxes
    ]
    runner.map(downsample_file, units, f"downsampling {layer.name} mag {target.mag.folder_name()}")


def read_edge_padded(source: MagView, box: BoundingBox, inside: BoundingBox) -> np.ndarray:
    """Read ``box``; voxels outside the layer's box repeat the nearest voxel inside.

    Groups at the border of the layer then mix only real data, as in the reference
    tooling (whose pyramids these filters reproduce exactly), instead of darkening
    the coarse mags' borders with zeros.
    """
    inner = box.intersection(inside)
    if inner == box or inner.is_empty:
        return source.read(box)
    data = source.read(inner)
    pad = [(a - b, d - c) for a, b, c, d in zip(inner.topleft, box.topleft, inner.bottomright, box.bottomright)][
        ::-1
    ]  # x, y, z -> z, y, x
    pad += [(0, 0)] * (data.ndim - 3)
    return np.pad(data, pad, mode="edge")


#: in a built mag from its rename into place until the properties list it: a run killed in
#: between leaves a complete mag, which the next run lists (any other unlisted folder is refused)
NOT_LISTED = ".built-not-listed"


def build_pyramid(
    layer: Layer,
    *,
    coarsest: Mag | None = None,
    method: str | None = None,
    sampling_mode: str = "anisotropic",
    block_type: int = BLOCK_LZ4,
    runner: UnitRunner | None = None,
    from_mag: Mag | None = None,
) -> list[Mag]:
    """Build every missing mag from the finest one (or ``from_mag``), each from the previous.

    Returns the mags built.

    Memory is one tile per step and worker (256 x 256 x 32 target voxels and its
    source), never the layer. Mags already present are reused as sources, not rebuilt.
    Each mag is built in a hidden folder and renamed into place when complete.
    """
    method = method or default_interpolation(layer.category)
    finest = layer.mag_view(from_mag) if from_mag is not None else layer.finest_mag
    coarsest = coarsest or default_coarsest_mag(layer.bounding_box.size)
    built = []
    previous = finest
    for mag in plan_mags(finest.mag, coarsest, layer.dataset.voxel_size, sampling_mode):
        unlisted = layer.path / mag.folder_name() / NOT_LISTED
        if mag not in layer.mags and unlisted.is_file():  # complete, renamed by a run killed before listing it
            layer.commit_mag(MagView(layer, mag, unlisted.parent))
            _list_mags(layer)
            built.append(mag)
        if mag in layer.mags:
            if (layer.mags[mag].path / NOT_LISTED).is_file():  # listed, but killed before this went
                (layer.mags[mag].path / NOT_LISTED).unlink()
            previous = layer.mags[mag]
            continue
        header = finest.header
        extent = layer.bounding_box.in_mag(mag).bottomright
        file_len = suggested_file_len(extent, header.block_len, maximum=header.file_len)
        staged = layer.stage_mag(mag, block_type=block_type, file_len=file_len, block_len=header.block_len)
        try:
            downsample_mag(layer, previous, staged, method, runner)
        except BaseException:
            shutil.rmtree(staged.path, ignore_errors=True)
            raise
        (staged.path / NOT_LISTED).touch()
        previous = layer.commit_mag(staged)
        _list_mags(layer)  # each finished mag is listed at once, none before
        (previous.path / NOT_LISTED).unlink()
        built.append(mag)
    return built


def _list_mags(layer: Layer) -> None:
    """List the layer's mags in the properties file, keeping the other layers as the file has
    them now (a locked read-modify-write: a conversion may add a layer meanwhile)."""
    list_layer(layer.dataset.path, layer.properties, layer.dataset.properties)
