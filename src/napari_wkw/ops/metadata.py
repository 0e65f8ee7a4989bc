"""Write ``datasource-properties.json`` from what is on disk, or refresh an existing one.

What is on disk decides the layers (``<layer>/<mag>/header.wkw``), their element class and
channel count (the finest mag's header) and their mags. What the user set is kept on a
refresh: voxel size, unit, dataset name, categories, bounding boxes that already cover the
data, ``largestSegmentId``, and every key this package does not model.

Bounding boxes are tight to the data, not to whole files: a box starts as the files present
in the finest mag (file granularity), and the files on its faces are read to trim it to the
voxels that are not zero (zero is "nothing written" in WKW). Files that lie wholly inside
the box found so far are never read, so a refresh whose boxes already cover the data reads
only the files that stick out of them (usually the ones on their faces). ``box_from="files"``
reads nothing and keeps file granularity: new boxes cover the files present, and on a
refresh a kept box grows only by whole files it does not reach yet (files it reaches count
as covered), the fast choice for huge datasets.

Data files are only read, never written; the properties file is replaced atomically.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.dataset import HEADER_FILE, MagView
from ..core.element_class import element_class_for
from ..core.errors import DatasetFormatError, NotWKWError, TargetExistsError, WKWError, WKWWarning
from ..core.geometry import BoundingBox, Mag
from ..core.locks import locked
from ..core.progress import CancelToken, ProgressCallback
from ..core.properties import (
    CATEGORIES,
    PROPERTIES_FILE,
    DatasetProperties,
    LayerProperties,
    MagEntry,
    read_properties,
    write_properties,
)
from ..core.wkw_file import WKWHeader, check_data_file, existing_files, file_path
from ..jobs.runner import JobSettings, Runner

#: words that make a layer a segmentation layer when no category is given
SEGMENTATION_WORDS = ("seg", "label")
BOX_SOURCES = ("data", "files")


def guess_category(layer_name: str) -> str:
    """``segmentation`` if the name contains "seg" (so also "segmentation") or "label"
    (case-insensitive), else ``color``."""
    lowered = layer_name.lower()
    return "segmentation" if any(word in lowered for word in SEGMENTATION_WORDS) else "color"


def write_metadata(
    path: str | os.PathLike,
    *,
    voxel_size: tuple[float, float, float] | None = None,
    name: str | None = None,
    refresh: bool = False,
    compute_max_id: bool = False,
    max_id: int | None = None,
    categories: dict[str, str] | None = None,
    layer_name: str | None = None,
    box_from: str = "data",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    jobs: JobSettings | None = None,
) -> DatasetProperties:
    """Create (or, with ``refresh``, update) the properties file of the dataset at ``path``.

    Without a properties file, ``voxel_size`` (x, y, z in nanometres) is required; layers
    are the folders holding ``<mag>/header.wkw``, categories follow :func:`guess_category`
    unless ``categories`` (layer name -> "color" | "segmentation") says otherwise.
    A properties file that exists is only changed with ``refresh=True`` (else
    TargetExistsError): voxel size, name, categories, boxes and extra keys are kept unless
    given, new layers and mag folders are added, mags whose folders are gone are dropped
    (with a WKWWarning), and boxes grow only where data lies outside them. ``refresh``
    without a properties file creates one.

    ``largestSegmentId`` of segmentation layers: ``max_id`` sets it, ``compute_max_id``
    reads the whole finest mag (one work unit per file through the job runner, each
    reading its file in tiles, so memory stays bounded), otherwise a refresh keeps the
    value there was and a new layer gets none (null). ``layer_name`` limits both to one
    layer; without it they apply to every segmentation layer. Returns what was written.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a folder"
        raise WKWError(f"{path}: no such dataset (the path {what})")
    if compute_max_id and max_id is not None:
        raise WKWError("give either compute_max_id or max_id, not both")
    if box_from not in BOX_SOURCES:
        raise WKWError(f"box_from must be one of {', '.join(BOX_SOURCES)}, not {box_from!r}")
    categories = dict(categories or {})
    for layer, category in categories.items():
        if category not in CATEGORIES:
            raise WKWError(f"category of layer {layer!r} must be color or segmentation, not {category!r}")

    properties_path = path / PROPERTIES_FILE
    if properties_path.is_file():
        if not refresh:
            raise TargetExistsError(
                f"{properties_path}: exists; refresh it (--refresh keeps voxel size, names and extra keys) "
                "or delete it to write a new one"
            )
        properties = read_properties(properties_path)
    else:
        if voxel_size is None:
            raise WKWError(
                f"{path}: has no {PROPERTIES_FILE} to take the voxel size from; give the voxel size "
                "(x,y,z in nanometres)"
            )
        properties = DatasetProperties(name=path.name)
    if voxel_size is not None:
        voxel_size = tuple(float(v) for v in voxel_size)  # type: ignore[assignment]
        if len(voxel_size) != 3 or min(voxel_size) <= 0:  # type: ignore[arg-type]
            raise WKWError(f"voxel size {voxel_size} must be three positive numbers")
        properties.voxel_size = voxel_size  # type: ignore[assignment]
    if name is not None:
        properties.name = name

    on_disk = _layers_on_disk(path)
    if not on_disk and not properties.layers:
        raise NotWKWError(f"{path}: no WKW layer (no <layer>/<mag>/{HEADER_FILE}) found")
    unknown = sorted(set(categories) - set(on_disk))
    if unknown:
        known = ", ".join(sorted(on_disk)) or "none"
        raise WKWError(f"{path}: no layer {unknown[0]!r} on disk (layers: {known})")
    if layer_name is not None and layer_name not in on_disk:
        known = ", ".join(sorted(on_disk)) or "none"
        raise WKWError(f"{path}: no layer {layer_name!r} on disk (layers: {known})")

    plans = _merge_layers(path, properties, on_disk, categories)

    targets = [p for p in plans if p.properties.category == "segmentation"]
    if layer_name is not None:
        targets = [p for p in targets if p.properties.name == layer_name]
    if (compute_max_id or max_id is not None) and not targets:
        which = f"layer {layer_name!r} is not a segmentation layer" if layer_name else "has no segmentation layer"
        raise WKWError(f"{path}: {which}; there is no largest segment id to set")
    if max_id is not None:
        for plan in targets:
            _check_fits(plan, max_id)
            plan.properties.largest_segment_id = int(max_id)

    with Runner(jobs or JobSettings("threads"), progress, cancel) as runner:
        for plan in plans:
            read_all = compute_max_id and plan in targets
            box, largest = _scan_layer(plan, box_from, read_all, runner)
            plan.properties.bounding_box = box
            if read_all:
                plan.properties.largest_segment_id = int(largest or 0)

    with locked(properties_path):  # layers another process listed during the scan stay listed
        if properties_path.is_file():
            known = {layer.name for layer in properties.layers}
            added = [p for p in read_properties(properties_path).layers if p.name not in known]
            properties.layers += [p for p in added if (path / p.name).is_dir()]
        write_properties(properties_path, properties)
    return properties


# ---- what is on disk --------------------------------------------------------------------------


def _layers_on_disk(path: Path) -> dict[str, dict[Mag, Path]]:
    """Layer folder name -> {mag: mag folder} for every folder holding ``<mag>/header.wkw``."""
    layers: dict[str, dict[Mag, Path]] = {}
    for child in sorted(path.iterdir()):
        if not child.is_dir() or child.name.startswith("."):
            continue
        mags: dict[Mag, Path] = {}
        for mag_dir in sorted(child.iterdir()):
            if not (mag_dir / HEADER_FILE).is_file():
                continue
            try:
                mag = Mag.parse(mag_dir.name)
            except ValueError:
                continue
            # "2" and "2-2-2" may both exist; the canonical folder name wins
            if mag not in mags or mag_dir.name == mag.folder_name():
                mags[mag] = mag_dir
        if mags:
            layers[child.name] = mags
    return layers


def _entry_path(dataset: Path, layer: str, entry: MagEntry) -> Path | None:
    """Where a listed mag lives (the same candidates as the dataset reader tries)."""
    layer_path = dataset / layer
    mag = entry.mag
    candidates = [dataset / entry.path] if entry.path else []
    candidates += [layer_path / mag.folder_name(), layer_path / str(mag), layer_path / str(mag.x)]
    if mag.x == mag.y == mag.z:
        candidates.append(layer_path / f"{mag.x}-{mag.x}-{mag.x}")
    return next((c for c in candidates if (c / HEADER_FILE).is_file()), None)


@dataclass
class _LayerPlan:
    properties: LayerProperties
    finest: Mag
    finest_path: Path
    header: WKWHeader
    existing_box: BoundingBox | None  # kept from the properties file (refresh), else None


def _merge_layers(
    path: Path,
    properties: DatasetProperties,
    on_disk: dict[str, dict[Mag, Path]],
    categories: dict[str, str],
) -> list[_LayerPlan]:
    """Update ``properties.layers`` in place from disk; the WKW layers to scan, in order."""
    plans = []
    kept_layers = []
    listed = set()
    for layer in properties.layers:
        listed.add(layer.name)
        if layer.data_format != "wkw":
            kept_layers.append(layer)  # not ours to check
            continue
        mags = on_disk.get(layer.name)
        if mags is None:
            _warn(
                f"{path / PROPERTIES_FILE}: layer {layer.name!r} has no mag folder left in {path / layer.name}; "
                "dropping it"
            )
            continue
        kept, gone, seen = [], [], set()
        for entry in layer.mags:
            mag_path = _entry_path(path, layer.name, entry)
            if mag_path is None or entry.mag in seen:
                if entry.mag not in seen:
                    gone.append(entry.mag.folder_name())
                continue
            seen.add(entry.mag)
            kept.append((entry, mag_path))
        if gone:
            _warn(
                f"{path / PROPERTIES_FILE}: layer {layer.name!r} lists mag(s) {', '.join(gone)} whose folders "
                "are gone; dropping them"
            )
        for mag, mag_path in mags.items():
            if mag not in seen:
                kept.append((MagEntry(mag, f"./{layer.name}/{mag_path.name}"), mag_path))
        kept.sort(key=lambda item: item[0].mag.sort_key())
        layer.mags = [entry for entry, _ in kept]
        if layer.name in categories:
            layer.category = categories[layer.name]
        plan = _plan(layer, kept[0][0].mag, kept[0][1], [p for _, p in kept], layer.bounding_box)
        kept_layers.append(layer)
        plans.append(plan)
    for layer_name in sorted(set(on_disk) - listed):
        mags = on_disk[layer_name]
        ordered = sorted(mags.items(), key=lambda item: item[0].sort_key())
        layer = LayerProperties(
            name=layer_name,
            category=categories.get(layer_name, guess_category(layer_name)),
            bounding_box=BoundingBox((0, 0, 0), (0, 0, 0)),
            element_class="uint8",
            mags=[MagEntry(mag, f"./{layer_name}/{mag_path.name}") for mag, mag_path in ordered],
        )
        plans.append(_plan(layer, ordered[0][0], ordered[0][1], [p for _, p in ordered], None))
        kept_layers.append(layer)
    for layer in kept_layers:
        if layer.category != "segmentation":
            layer.largest_segment_id = None
    properties.layers = kept_layers
    return plans


def _plan(layer: LayerProperties, finest: Mag, finest_path: Path, mag_paths: list[Path], box) -> _LayerPlan:
    """Element class and channels from the finest header; every mag must hold the same voxels."""
    header = WKWHeader.read(finest_path / HEADER_FILE)
    for mag_path in mag_paths:
        other = WKWHeader.read(mag_path / HEADER_FILE)
        if (other.dtype, other.num_channels) != (header.dtype, header.num_channels):
            raise DatasetFormatError(
                f"{mag_path / HEADER_FILE}: holds {other.num_channels} x {other.dtype} voxels but "
                f"{finest_path / HEADER_FILE} holds {header.num_channels} x {header.dtype}; "
                f"layer {layer.name!r} is inconsistent"
            )
    element_class = element_class_for(header.dtype, header.num_channels)
    if box is not None and (layer.element_class, layer.num_channels) != (element_class, header.num_channels):
        _warn(
            f"layer {layer.name!r}: the properties say {layer.num_channels} x {layer.element_class} but "
            f"{finest_path / HEADER_FILE} holds {element_class} with {header.num_channels} channel(s); "
            "using what is on disk"
        )
    layer.element_class = element_class
    layer.num_channels = header.num_channels
    return _LayerPlan(layer, finest, finest_path, header, box)


def _check_fits(plan: _LayerPlan, value: int) -> None:
    dtype = plan.header.dtype
    if value < 0 or (dtype.kind in "ui" and value > np.iinfo(dtype).max):
        raise WKWError(f"largest segment id {value} does not fit layer {plan.properties.name!r} ({dtype})")


def _warn(message: str) -> None:
    warnings.warn(message, WKWWarning, stacklevel=3)


# ---- reading the data -------------------------------------------------------------------------


def _scan_layer(plan: _LayerPlan, box_from: str, read_all: bool, runner: Runner) -> tuple[BoundingBox, int | None]:
    """The layer's box (mag-1 voxels) and, when ``read_all``, its largest value."""
    files = existing_files(plan.finest_path)
    size = plan.header.file_size

    def file_box(coords) -> BoundingBox:
        return BoundingBox(tuple(c * size for c in coords), (size,) * 3)  # type: ignore[arg-type]

    # ``cover``: what is known to be inside the final box (files wholly inside need no reading)
    cover = BoundingBox((0, 0, 0), (0, 0, 0))
    if plan.existing_box is not None:
        cover = plan.existing_box.in_mag(plan.finest)
    name = plan.properties.name
    data = BoundingBox((0, 0, 0), (0, 0, 0))
    largest = None
    if read_all:
        units = [(str(plan.finest_path), f, True) for f in files]
        results = runner.map(_scan_file, units, f"{name}: reading all data")
        for top, found in results:
            if found is not None:
                data = data.union(found)
            if top is not None:
                largest = top if largest is None else max(largest, top)
    elif box_from == "files":
        for coords in files:
            if cover.intersection(file_box(coords)).is_empty:  # files a kept box reaches count as covered
                data = data.union(file_box(coords))
    else:
        pending = set(files)
        while True:
            pending = {f for f in pending if file_box(f).intersection(cover) != file_box(f)}
            if not pending:
                break
            low = [min(f[axis] for f in pending) for axis in range(3)]
            high = [max(f[axis] for f in pending) for axis in range(3)]
            batch = sorted(f for f in pending if any(f[a] in (low[a], high[a]) for a in range(3)))
            units = [(str(plan.finest_path), f, False) for f in batch]
            results = runner.map(_scan_file, units, f"{name}: bounding box")
            for _, found in results:
                if found is not None:
                    data = data.union(found)
                    cover = cover.union(found)
            pending -= set(batch)
    box = data.from_mag(plan.finest)
    if plan.existing_box is not None:
        box = plan.existing_box.union(box)  # a kept box only grows, and only to cover data
    return box, largest


def _scan_file(unit: tuple[str, tuple[int, int, int], bool]) -> tuple[int | float | None, BoundingBox | None]:
    """Work unit: the box of the non-zero voxels of one data file and, if asked, its largest value.

    The file is read in tiles of at most 512 x 512 x one block, so memory stays small
    whatever the file length; an all-zero tile costs one pass over it.
    """
    mag_path, coords, want_max = unit
    view = MagView.at(Path(mag_path))
    check_data_file(file_path(view.path, *coords), view.header)
    size = view.header.file_size
    whole = BoundingBox(tuple(c * size for c in coords), (size,) * 3)  # type: ignore[arg-type]
    xy = max(view.header.block_len, min(512, size))
    largest = None
    found: BoundingBox | None = None
    for tile in whole.chunks((xy, xy, view.header.block_len)):
        try:
            data = view.read(tile)
        except WKWError:
            raise DatasetFormatError(
                f"{file_path(Path(mag_path), *coords)}: cannot read this WKW file; it is truncated or corrupt"
            ) from None
        if want_max:
            top = data.max()
            largest = top if largest is None else max(largest, top)
            if top == 0 and data.dtype.kind == "u":
                continue
        elif not data.any():
            continue
        mask = data != 0
        if mask.ndim == 4:
            mask = mask.any(axis=3)
        zs = np.flatnonzero(mask.any(axis=(1, 2)))
        if not zs.size:
            continue
        ys = np.flatnonzero(mask.any(axis=(0, 2)))
        xs = np.flatnonzero(mask.any(axis=(0, 1)))
        x0, y0, z0 = tile.topleft
        part = BoundingBox.from_bounds(
            (x0 + xs[0], y0 + ys[0], z0 + zs[0]), (x0 + xs[-1] + 1, y0 + ys[-1] + 1, z0 + zs[-1] + 1)
        )
        found = part if found is None else found.union(part)
    return (None if largest is None else largest.item()), found


__all__ = ["BOX_SOURCES", "SEGMENTATION_WORDS", "guess_category", "write_metadata"]
