"""Datasets, layers and mags on disk: open, discover, create, read, write, lazy views.

Coordinates: boxes and offsets are (x, y, z) voxels; arrays are (z, y, x) or
(z, y, x, c) in C order, the layout napari wants. libwkw hands out (c, x, y, z) in
Fortran order, which is the same memory seen through a transpose, so the conversion
costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .element_class import dtype_for, element_class_for
from .errors import DatasetFormatError, NotWKWError, WKWError, WKWWarning, disk_problem
from .geometry import BoundingBox, Mag, Vec3, lcm_of_mags
from .locks import locked
from .progress import check_cancelled
from .properties import (
    PROPERTIES_FILE,
    DatasetProperties,
    LayerProperties,
    MagEntry,
    read_properties,
    write_properties,
)
from .staging import owner_tag
from .threads import bounded_map
from .view import MagArray, array_shape, chunk_xy_for, dask_view
from .wkw_file import (
    BLOCK_LZ4,
    CompressedFileWriter,
    WKWHeader,
    check_data_file,
    existing_files,
    file_path,
    morton_table,
    split_blocks,
)
from .zarr_mag import ZARR_FORMATS, ZarrMagView

if TYPE_CHECKING:
    import dask.array as da
    import wkw

HEADER_FILE = "header.wkw"
#: the dataFormat values of datasource-properties.json this package reads
READABLE_FORMATS = ("wkw", *ZARR_FORMATS)


def libwkw_errors() -> tuple[type[Exception], ...]:
    """libwkw's errors: its exception, and ``UnicodeDecodeError`` (its message buffer is
    sometimes not valid UTF-8, seen on truncated files). libwkw (cffi, 50 ms) is imported on
    first use, not with this module: the command line starts without it."""
    import wkw

    return (wkw.wkw.WKWException, UnicodeDecodeError)


def mag_marker(data_format: str) -> str:
    """The file that makes a folder a mag: ``header.wkw``, ``zarr.json`` or ``.zarray``."""
    return HEADER_FILE if data_format == "wkw" else ZARR_FORMATS[data_format][1]


def _warn(message: str) -> None:
    warnings.warn(message, WKWWarning, stacklevel=3)


class MagView:
    """One magnification of a layer: a folder with ``header.wkw`` and z*/y*/x*.wkw files."""

    def __init__(self, layer: Layer, mag: Mag, path: Path) -> None:
        self.layer = layer
        self.mag = mag
        self.path = Path(path)
        self.header = WKWHeader.read(self.path / HEADER_FILE)
        self._local = threading.local()
        #: check each data file's header and length before reading it (libwkw reads a broken
        #: file as zeros): work units stop there, viewers show zeros and a warning naming it
        self.verify = True
        self._verified: set[tuple[int, int, int]] = set()

    def __repr__(self) -> str:
        return f"MagView({self.path})"

    @classmethod
    def at(cls, path: Path) -> MagView:
        """A mag folder on its own, for work units that carry only paths (no layer box).

        Its reads verify every data file first (see :attr:`verify`)."""
        mag = Mag.parse(path.name) if path.name[:1].isdigit() else Mag(1, 1, 1)
        view = cls(None, mag, path)  # type: ignore[arg-type]
        view.verify = True  # a corrupt file must stop an operation, not become zeros
        return view

    @property
    def dtype(self) -> np.dtype:
        return self.header.dtype

    @property
    def num_channels(self) -> int:
        return self.header.num_channels

    @property
    def bounding_box(self) -> BoundingBox:
        """The layer's bounding box in this mag's voxels."""
        return self.layer.bounding_box.in_mag(self.mag)

    def _handle(self) -> wkw.Dataset:
        handle = getattr(self._local, "handle", None)
        if handle is None:
            import wkw

            try:
                handle = wkw.Dataset.open(str(self.path))
            except libwkw_errors() as error:
                raise DatasetFormatError(f"{self.path}: cannot open WKW mag ({error})") from None
            self._local.handle = handle
        return handle

    @property
    def viewer_chunk(self) -> Vec3:
        """Chunks of viewer reads (x, y, z): one block deep, up to a file wide (see view.py)."""
        header = self.header
        xy = chunk_xy_for(header.voxel_bytes, header.block_len, header.file_size)
        return (xy, xy, header.block_len)

    def array_shape(self, box: BoundingBox) -> tuple[int, ...]:
        return array_shape(box, self.num_channels)

    def read(self, box: BoundingBox) -> np.ndarray:
        """Voxels of ``box`` (in this mag's coordinates); zeros where nothing was written."""
        if box.is_empty:
            return np.zeros(self.array_shape(box), self.dtype)
        if self.verify:
            self._verify_files(box)
        try:
            data = self._handle().read(box.topleft, box.size)
        except libwkw_errors() as error:
            raise DatasetFormatError(f"{self.path}: cannot read box {box.topleft}+{box.size}: {error}") from None
        data = data.transpose(3, 2, 1, 0)  # (c, x, y, z) F-order -> (z, y, x, c) C-order
        return data[..., 0] if self.num_channels == 1 else data

    def _verify_files(self, box: BoundingBox) -> None:
        size = self.header.file_size
        for file_box in box.aligned((size,) * 3).chunks((size,) * 3):
            coords = tuple(a // size for a in file_box.topleft)
            if coords in self._verified:
                continue
            path = file_path(self.path, *coords)
            if path.exists():
                check_data_file(path, self.header)
            self._verified.add(coords)  # type: ignore[arg-type]

    def write(self, offset: Vec3, data: np.ndarray) -> None:
        """Write a (z, y, x[, c]) array at ``offset`` (this mag's voxels), any alignment.

        Raw mags are written in place. Compressed files are rebuilt block by block:
        untouched blocks are copied, touched ones re-encoded, and each file is
        replaced atomically, so a reader never sees a half-written file.
        """
        data = self._checked(data)
        box = BoundingBox(tuple(offset), (data.shape[2], data.shape[1], data.shape[0]))  # type: ignore[arg-type]
        if box.is_empty:
            return
        if not self.header.compressed:
            data4 = data if data.ndim == 4 else data[..., None]
            # file by file, each under its lock: libwkw creates a missing file and merges partly
            # covered blocks with what the file holds, which two writers must not do at once
            for file_box in box.chunks((self.header.file_size,) * 3):
                part = data4[file_box.zyx_slices(box.topleft)]
                cxyz = np.ascontiguousarray(part).transpose(3, 2, 1, 0)
                coords = (a // self.header.file_size for a in file_box.topleft)
                try:
                    with locked(file_path(self.path, *coords)):
                        self._handle().write(file_box.topleft, cxyz)
                except libwkw_errors() as error:
                    why = disk_problem(self.path)
                    detail = why if why is not None else str(error)
                    raise WKWError(f"{self.path}: cannot write box {file_box.topleft}: {detail}") from None
            return
        for file_box in box.chunks((self.header.file_size,) * 3):
            part = data[file_box.zyx_slices(box.topleft)]
            self.write_file(file_box, lambda b, part=part, o=file_box.topleft: part[b.zyx_slices(o)])

    def write_file(
        self, box: BoundingBox, fetch, tile: Vec3 | None = None, threads: int = 1, find_max: bool = True
    ) -> np.ndarray | None:
        """Fill ``box`` (inside one WKW file) with ``fetch(sub_box)`` tile by tile.

        This is the unit of work for streaming writers: it touches exactly one file.
        With ``threads`` > 1, tiles are fetched (and compressed) by that many threads
        at once, for files that are the only unit left to run. Returns the largest
        value written (for largestSegmentId), or None if empty or not ``find_max``.
        """
        size = self.header.file_size
        file_coords = tuple(a // size for a in box.topleft)
        file_origin = tuple(c * size for c in file_coords)
        builder = None
        held = contextlib.ExitStack()
        if self.header.compressed:  # the old file is read, merged and replaced: one writer at a time
            target = file_path(self.path, *file_coords)
            held.enter_context(locked(target))
            try:
                builder = CompressedFileWriter(target, self.header)
            except BaseException:
                held.close()
                raise

        def produce(sub: BoundingBox):
            data = self._checked(fetch(sub))
            if data.shape != self.array_shape(sub):  # a wrong shape would be encoded as a corrupt block
                raise WKWError(f"{self.path}: got {data.shape} voxels for box {sub.topleft}+{sub.size}")
            top = data.max() if find_max and data.size else None
            if builder is None:
                return sub, data, top
            return sub, self.encode_blocks(builder, sub, data, file_origin), top  # type: ignore[arg-type]

        largest = None
        try:
            for sub, payload, top in bounded_map(produce, box.chunks(tile or _default_tile(self.header)), threads):
                check_cancelled()
                if top is not None:
                    largest = top if largest is None else max(largest, top)
                if builder is None:
                    self.write(sub.topleft, payload)
                else:
                    for index, piece in payload:
                        builder.put_encoded(index, piece)
            if builder is not None:
                builder.write()
        finally:
            if builder is not None:
                builder.close()
            held.close()
        return largest

    def encode_blocks(
        self, builder: CompressedFileWriter, box: BoundingBox, data: np.ndarray, origin: Vec3
    ) -> list[tuple[int, bytes]]:
        """Compressed blocks of ``data`` (at ``box``) by Morton index; partly covered blocks
        are merged with what the file already holds."""
        n = self.header.block_len
        data4 = data if data.ndim == 4 else data[..., None]
        morton = morton_table(self.header.file_len)
        (x0, y0, z0), (x1, y1, z1) = box.topleft, box.bottomright
        whole = split_blocks(data4, n) if all(a % n == 0 for a in (x0, y0, z0)) else None
        if whole is not None:  # every block fully covered: one gather, then compress each
            bx0, by0, bz0 = (x0 - origin[0]) // n, (y0 - origin[1]) // n, (z0 - origin[2]) // n
            return [
                (int(morton[bz0 + k, by0 + j, bx0 + i]), builder.encode(memoryview(whole[k, j, i]).cast("B")))
                for k, j, i in np.ndindex(whole.shape)
            ]
        pieces = []
        for bz0 in range(z0 // n * n, z1, n):
            for by0 in range(y0 // n * n, y1, n):
                for bx0 in range(x0 // n * n, x1, n):
                    bx, by, bz = (bx0 - origin[0]) // n, (by0 - origin[1]) // n, (bz0 - origin[2]) // n
                    if x0 <= bx0 and bx0 + n <= x1 and y0 <= by0 and by0 + n <= y1 and z0 <= bz0 and bz0 + n <= z1:
                        content = data4[bz0 - z0 : bz0 - z0 + n, by0 - y0 : by0 - y0 + n, bx0 - x0 : bx0 - x0 + n]
                    else:  # partly covered: merge with the block the file holds
                        block = BoundingBox((bx0, by0, bz0), (n, n, n))
                        inner = block.intersection(box)
                        base = builder.old_block(bx, by, bz)
                        content = np.zeros((n, n, n, self.num_channels), self.dtype) if base is None else base.copy()
                        content[inner.zyx_slices(block.topleft)] = data4[inner.zyx_slices(box.topleft)]
                    pieces.append((int(morton[bz, by, bx]), builder.encode(content)))
        return pieces

    def _checked(self, data: np.ndarray) -> np.ndarray:
        data = np.asarray(data)
        expected_ndim = 3 if self.num_channels == 1 else 4
        if data.ndim != expected_ndim or (expected_ndim == 4 and data.shape[3] != self.num_channels):
            raise WKWError(
                f"{self.path}: expected a (z, y, x{'' if expected_ndim == 3 else ', c'}) array "
                f"with {self.num_channels} channel(s), got shape {data.shape}"
            )
        if data.dtype != self.dtype:
            if not np.can_cast(data.dtype, self.dtype, casting="same_kind"):
                raise WKWError(f"{self.path}: cannot store {data.dtype} data in a {self.dtype} mag")
            data = data.astype(self.dtype)
        return data

    def files(self) -> list[tuple[int, int, int]]:
        """File coordinates (x, y, z) of the data files present."""
        return existing_files(self.path)

    def view(self, box: BoundingBox, on_error: str = "raise") -> MagArray:
        """A read-only array-like of ``box`` for viewers: cached, O(1) to create and slice."""
        return MagArray(self, box, on_error=on_error)

    def lazy(self, box: BoundingBox, on_error: str = "raise") -> da.Array:
        """A dask array of ``box`` (this mag's voxels) that reads nothing until computed."""
        return dask_view(self, box, on_error)


def _default_tile(header: WKWHeader) -> Vec3:
    """Tiles of up to 512 x 512 x 32 voxels (one block deep), aligned to blocks."""
    xy = max(header.block_len, min(512, header.file_size))
    return (xy, xy, header.block_len)


class Layer:
    """A data layer: properties plus the mags found on disk."""

    def __init__(self, dataset: Dataset, properties: LayerProperties) -> None:
        self.dataset = dataset
        self.properties = properties
        self.path = dataset.path / properties.name
        self.mags: dict[Mag, MagView | ZarrMagView] = {}
        missing = []
        for entry in properties.mags:
            mag_path = self._mag_path(entry)
            if mag_path is None:
                missing.append(entry.mag.folder_name())
                continue
            self.mags[entry.mag] = self._open_mag(entry, mag_path)
        if missing:
            outcome = "using the mags that exist" if self.mags else "the layer has no readable mag and is skipped"
            problem = access_problem(self.path)
            where = f"cannot be read ({problem})" if problem else f"has no such folder with {self.marker_file}"
            _warn(
                f"{self.dataset.path / PROPERTIES_FILE}: layer {self.name!r} lists mag(s) "
                f"{', '.join(missing)} but {self.path} {where}; {outcome}"
            )
        self._sort_mags()

    @property
    def is_wkw(self) -> bool:
        """WKW layers can be written and processed; zarr layers are read only (for now)."""
        return self.properties.data_format == "wkw"

    @property
    def marker_file(self) -> str:
        """The file that makes a folder a mag of this layer's format."""
        return mag_marker(self.properties.data_format)

    def _open_mag(self, entry: MagEntry, path: Path) -> MagView | ZarrMagView:
        return self.open_mag_folder(entry.mag, path, entry.extra.get("axisOrder"))

    def open_mag_folder(self, mag: Mag, path: Path, axis_order: dict | None = None) -> MagView | ZarrMagView:
        """A mag of this layer in ``path``, in the layer's data format."""
        if self.is_wkw:
            view = MagView(self, mag, path)
            if (view.dtype, view.num_channels) != (self.dtype, self.num_channels):
                raise DatasetFormatError(
                    f"{view.path / HEADER_FILE}: holds {view.num_channels} x {view.dtype} voxels, but "
                    f"{PROPERTIES_FILE} gives layer {self.name!r} elementClass {self.properties.element_class!r} "
                    f"({self.num_channels} x {self.dtype})"
                )
            return view
        return ZarrMagView.open_folder(self, mag, path, self.properties.data_format, axis_order)

    def __repr__(self) -> str:
        return f"Layer({self.name!r}, {self.category}, mags={[m.folder_name() for m in self.mags]})"

    def _mag_path(self, entry: MagEntry) -> Path | None:
        candidates = []
        if entry.path:
            candidates.append(self.dataset.path / entry.path)
        candidates += [self.path / entry.mag.folder_name(), self.path / str(entry.mag), self.path / str(entry.mag.x)]
        if entry.mag.x == entry.mag.y == entry.mag.z:
            candidates.append(self.path / f"{entry.mag.x}-{entry.mag.x}-{entry.mag.x}")
        return next((c for c in candidates if (c / self.marker_file).is_file()), None)

    def _sort_mags(self) -> None:
        self.mags = dict(sorted(self.mags.items(), key=lambda item: item[0].sort_key()))

    @property
    def name(self) -> str:
        return self.properties.name

    @property
    def category(self) -> str:
        return self.properties.category

    @property
    def bounding_box(self) -> BoundingBox:
        return self.properties.bounding_box

    @bounding_box.setter
    def bounding_box(self, box: BoundingBox) -> None:
        self.properties.bounding_box = box

    @property
    def num_channels(self) -> int:
        return self.properties.num_channels

    @property
    def dtype(self) -> np.dtype:
        return dtype_for(self.properties.element_class, self.num_channels)

    @property
    def is_rgb(self) -> bool:
        return self.num_channels == 3 and self.dtype == np.uint8

    def mag_view(self, mag: Mag) -> MagView:
        """The mag ``mag`` of this layer; an error listing the mags there are if it is missing."""
        if mag not in self.mags:
            known = ", ".join(m.folder_name() for m in self.mags) or "none"
            if any(entry.mag == mag for entry in self.properties.mags):
                raise WKWError(
                    f"{self.path / mag.folder_name()}: mag {mag.folder_name()} of layer {self.name!r} is listed in "
                    f"{PROPERTIES_FILE} but missing on disk (mags on disk: {known})"
                )
            raise WKWError(f"{self.path}: layer {self.name!r} has no mag {mag.folder_name()} (mags: {known})")
        return self.mags[mag]

    @property
    def finest_mag(self) -> MagView:
        if not self.mags:
            raise DatasetFormatError(f"{self.path}: layer {self.name!r} has no readable mag")
        return next(iter(self.mags.values()))

    def add_mag(
        self,
        mag: Mag | str | int,
        *,
        block_type: int = BLOCK_LZ4,
        file_len: int = 32,
        block_len: int = 32,
    ) -> MagView:
        """Create an empty mag folder with its header and register it in the properties."""
        view = self.stage_mag(mag, block_type=block_type, file_len=file_len, block_len=block_len)
        return self.commit_mag(view)

    def stage_mag(
        self,
        mag: Mag | str | int,
        *,
        block_type: int = BLOCK_LZ4,
        file_len: int = 32,
        block_len: int = 32,
    ) -> MagView:
        """An empty mag in a hidden folder of this layer, to fill before :meth:`commit_mag`.

        Nobody sees a mag while it is being built: readers and the properties only
        learn of it once it is complete and renamed into place.
        """
        mag = Mag.parse(mag)
        if mag in self.mags or (self.path / mag.folder_name()).exists():
            raise WKWError(f"{self.path}: mag {mag.folder_name()} exists already")
        staging = self.path / f".{mag.folder_name()}.partial-{owner_tag()}"
        if staging.exists():
            shutil.rmtree(staging)
        header = WKWHeader(self.dtype, self.num_channels, block_len, file_len, block_type)
        staging.mkdir(parents=True)
        (staging / HEADER_FILE).write_bytes(header.to_bytes(0))
        return MagView(self, mag, staging)

    def commit_mag(self, staged: MagView) -> MagView:
        """Rename a staged mag into place and list it in the (in-memory) properties."""
        mag_path = self.path / staged.mag.folder_name()
        if staged.path != mag_path:
            os.rename(staged.path, mag_path)
        # a mag listed but missing on disk keeps its entry (and extra keys), now pointing here
        listed = [entry for entry in self.properties.mags if entry.mag == staged.mag]
        self.properties.mags = [entry for entry in self.properties.mags if entry.mag != staged.mag]
        entry = listed[0] if listed else MagEntry(staged.mag)
        entry.path = f"./{self.name}/{staged.mag.folder_name()}"
        self.properties.mags.append(entry)
        self.mags[staged.mag] = MagView(self, staged.mag, mag_path)
        self._sort_mags()
        return self.mags[staged.mag]

    def aligned_box(self) -> BoundingBox:
        """The bounding box grown to the grid of every mag (see :meth:`lazy_pyramid`)."""
        return self.bounding_box.aligned(lcm_of_mags(self.mags))

    def mag_boxes(self) -> dict[Mag, BoundingBox]:
        """Per mag, :meth:`aligned_box` in that mag's voxels (exact: the box divides).

        The box is aligned to every mag so that level shapes divide exactly by the
        mags: napari derives each level's scale from the shapes, and any rounding
        would shift the coarse levels against the fine ones. The padding reads as zeros.
        """
        box = self.aligned_box()
        return {mag: _exact_in_mag(box, mag) for mag in self.mags}

    def view_pyramid(self, on_error: str = "raise") -> list[MagArray]:
        """One :class:`MagArray` per mag, finest first (what the napari reader shows)."""
        return [self.mags[mag].view(box, on_error) for mag, box in self.mag_boxes().items()]

    def lazy_pyramid(self, on_error: str = "raise") -> list[da.Array]:
        """One dask array per mag, finest first, over the same boxes as :meth:`view_pyramid`."""
        return [self.mags[mag].lazy(box, on_error) for mag, box in self.mag_boxes().items()]


def _exact_in_mag(box: BoundingBox, mag: Mag) -> BoundingBox:
    return BoundingBox(
        tuple(a // m for a, m in zip(box.topleft, mag.xyz)),  # type: ignore[arg-type]
        tuple(s // m for s, m in zip(box.size, mag.xyz)),  # type: ignore[arg-type]
    )


class Dataset:
    """A WKW dataset folder: ``datasource-properties.json`` plus one folder per layer."""

    #: how layers find and open their mags (a volume annotation's come from a ZIP)
    layer_class: type[Layer] = Layer

    def __init__(self, path: Path, properties: DatasetProperties) -> None:
        self.path = Path(path)
        self.properties = properties
        self.layers: dict[str, Layer] = {}
        for layer_properties in properties.layers:
            if layer_properties.data_format not in READABLE_FORMATS:
                name, data_format = layer_properties.name, layer_properties.data_format
                _warn(f"{self.path}: layer {name!r} is stored as {data_format}, which napari-wkw cannot read; skipped")
                continue
            layer = self.layer_class(self, layer_properties)
            self.layers[layer.name] = layer

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, layers={list(self.layers)})"

    @property
    def name(self) -> str:
        return self.properties.name

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        return self.properties.voxel_size

    @classmethod
    def open(cls, path: str | os.PathLike) -> Dataset:
        """Open a dataset folder; without a properties file, discover layers and mags."""
        path = Path(path)
        if not path.is_dir():
            raise NotWKWError(f"{path}: no such folder")
        properties_path = path / PROPERTIES_FILE
        if properties_path.is_file():
            return cls(path, read_properties(properties_path))
        return cls.discover(path)

    @classmethod
    def discover(cls, path: str | os.PathLike, voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Dataset:
        """Build the properties from what is on disk: layer folders, mag folders, headers."""
        path = Path(path)
        layers = [_discover_layer(child) for child in sorted(path.iterdir()) if child.is_dir()]
        layers = [layer for layer in layers if layer is not None]
        if not layers:
            raise NotWKWError(f"{path}: no WKW layer (no <layer>/<mag>/{HEADER_FILE}) found")
        properties = DatasetProperties(name=path.name, voxel_size=voxel_size, layers=layers)
        return cls(path, properties)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        voxel_size: Iterable[float],
        *,
        name: str | None = None,
        unit: str = "nanometer",
    ) -> Dataset:
        """Create an empty dataset folder with its properties file."""
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            raise WKWError(f"{path}: folder exists and is not empty")
        path.mkdir(parents=True, exist_ok=True)
        voxel_size = tuple(float(v) for v in voxel_size)
        if len(voxel_size) != 3 or min(voxel_size) <= 0:
            raise WKWError(f"voxel size {voxel_size} must be three positive numbers")
        properties = DatasetProperties(name=name or path.name, voxel_size=voxel_size, unit=unit)  # type: ignore[arg-type]
        dataset = cls(path, properties)
        dataset.save_properties()
        return dataset

    def add_layer(
        self,
        name: str,
        category: str,
        dtype: np.dtype | str,
        *,
        num_channels: int = 1,
        bounding_box: BoundingBox | None = None,
    ) -> Layer:
        """Add an empty layer (no mags yet); call :meth:`save_properties` when done."""
        if name in self.layers:
            raise WKWError(f"{self.path}: layer {name!r} exists already")
        if category not in ("color", "segmentation"):
            raise WKWError(f"category must be color or segmentation, not {category!r}")
        dtype = np.dtype(dtype)
        element_class = element_class_for(dtype, num_channels)
        dtype_for(element_class, num_channels)  # rejects what WKW cannot store
        properties = LayerProperties(
            name=name,
            category=category,
            bounding_box=bounding_box or BoundingBox((0, 0, 0), (0, 0, 0)),
            element_class=element_class,
            num_channels=num_channels,
            largest_segment_id=0 if category == "segmentation" else None,
        )
        self.properties.layers.append(properties)
        layer = Layer(self, properties)
        self.layers[name] = layer
        return layer

    def save_properties(self) -> None:
        write_properties(self.path / PROPERTIES_FILE, self.properties)


def access_problem(path: Path) -> str | None:
    """Why ``path`` cannot be reached (a symbolic link loop, no permission ...); None when
    it can, or simply does not exist."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        return error.strerror or str(error)
    return None


def _files_box(mag_path: Path, header: WKWHeader) -> BoundingBox:
    """The box covered by a mag's data files (file granularity, that mag's voxels)."""
    size = header.file_size
    box = BoundingBox((0, 0, 0), (0, 0, 0))
    for coords in existing_files(mag_path):
        box = box.union(BoundingBox(tuple(c * size for c in coords), (size,) * 3))  # type: ignore[arg-type]
    return box


def _discover_layer(layer_path: Path) -> LayerProperties | None:
    mags = []
    for child in sorted(layer_path.iterdir()):
        if (child / HEADER_FILE).is_file():
            try:
                mags.append((Mag.parse(child.name), child))
            except ValueError:
                continue
    if not mags:
        return None
    mags.sort(key=lambda item: item[0].sort_key())
    finest_mag, finest_path = mags[0]
    header = WKWHeader.read(finest_path / HEADER_FILE)
    box = _files_box(finest_path, header).from_mag(finest_mag)
    name = layer_path.name
    category = "segmentation" if any(word in name.lower() for word in ("seg", "label")) else "color"
    return LayerProperties(
        name=name,
        category=category,
        bounding_box=box,
        element_class=element_class_for(header.dtype, header.num_channels),
        num_channels=header.num_channels,
        mags=[MagEntry(mag) for mag, _ in mags],
    )
