"""Array views of a mag for viewers: O(1) to create and to slice, whatever the size.

A dask array over a WKW mag has one task per chunk, and dask's graph optimisation
walks them all on every compute: for a 100k x 80k x 20k voxel layer (20 M chunks)
one 1024 x 1024 crop took 17-24 s here before any voxel was read. :class:`MagArray`
is the array-like napari gets instead (napari needs ``shape``, ``dtype``, ``ndim``,
``__getitem__`` and reads ``chunks``): a request touches only the chunks it needs,
decoded chunks stay in a process-wide LRU cache (so z-scrolling decodes each block
layer once), and missing chunks are read in parallel. ``MagView.lazy`` wraps the
same class in dask for computations that want a dask array.
"""

from __future__ import annotations

import copy
import operator
import os
import threading
import uuid
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import DatasetFormatError, WKWWarning
from .geometry import BoundingBox

if TYPE_CHECKING:
    from .dataset import MagView

#: decoded bytes one chunk aims at; z is one block layer, x/y follow from the voxel size
CHUNK_BYTES = 32 * 2**20


def chunk_xy_for(voxel_bytes: int, block_len: int = 32, file_size: int = 1024) -> int:
    """Chunk edge in x and y: the largest power of two up to a file's edge whose chunk
    stays within CHUNK_BYTES (uint8: 1024, a whole file per block layer; uint16 to
    uint32: 512). libwkw parses a file's jump table on every read, so fewer, larger
    reads are cheaper; larger chunks would make panning read more than it shows."""
    edge = block_len
    while edge * 2 <= file_size and (edge * 2) ** 2 * block_len * voxel_bytes <= CHUNK_BYTES:
        edge *= 2
    return edge


def array_shape(box: BoundingBox, num_channels: int) -> tuple[int, ...]:
    """The (z, y, x[, c]) shape of ``box``'s voxels."""
    x, y, z = box.size
    return (z, y, x) if num_channels == 1 else (z, y, x, num_channels)


class ChunkCache:
    """A thread-safe LRU cache of decoded chunks, bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple, value: np.ndarray) -> None:
        with self._lock:
            if key in self._items or value.nbytes > self.max_bytes:
                return
            self._items[key] = value
            self._bytes += value.nbytes
            while self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


def _default_cache_bytes() -> int:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 1024**3
    return int(min(2 * 1024**3, total // 8))


#: shared by every MagArray of the process (viewer use)
CACHE = ChunkCache(_default_cache_bytes())
_POOL = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="napari-wkw-read")


@dataclass(frozen=True)
class _Axis:
    """One spatial axis of a view: absolute mag voxels start:stop:step, or one index."""

    start: int
    stop: int
    step: int = 1
    dropped: bool = False

    @property
    def length(self) -> int:
        return len(range(self.start, self.stop, self.step))

    def index(self, key) -> _Axis:
        if isinstance(key, slice):
            first, last, step = key.indices(self.length)
            if step < 1:
                raise IndexError("WKW views do not support negative steps")
            count = len(range(first, last, step))
            start = self.start + first * self.step
            step = self.step * step
            return _Axis(start, start + (count - 1) * step + 1 if count else start, step)
        try:
            position = operator.index(key)
        except TypeError:
            raise IndexError(f"WKW views take integers and slices, not {type(key).__name__}") from None
        if position < 0:
            position += self.length
        if not 0 <= position < self.length:
            raise IndexError(f"index {key} is out of bounds for an axis of size {self.length}")
        start = self.start + position * self.step
        return _Axis(start, start + 1, 1, dropped=True)


class MagArray:
    """A read-only, lazily sliced (z, y, x[, c]) array over ``box`` of a mag.

    The mag is anything with ``path``, ``dtype``, ``num_channels``, ``viewer_chunk``
    (x, y, z), ``array_shape(box)`` and ``read(box)``: a WKW mag, a zarr mag, or the
    buckets of an annotation.

    Indexing with integers and slices gives another MagArray (napari first cuts the
    displayed region with the other axes whole, then the plane, and only then asks
    for the voxels); ``np.asarray`` reads, chunk by chunk. With ``on_error="warn"``
    an unreadable file gives zeros there and one warning naming it (viewer use); with
    ``"raise"`` the DatasetFormatError propagates.
    """

    def __init__(
        self,
        mag_view: MagView,
        box: BoundingBox,
        *,
        cache: ChunkCache | None = CACHE,
        on_error: str = "raise",
        chunk_xy: int | None = None,
    ) -> None:
        self.mag_view = mag_view
        self.cache = cache
        self.on_error = on_error
        chunk_x, chunk_y, chunk_z = mag_view.viewer_chunk
        if chunk_xy:
            chunk_x = chunk_y = chunk_xy
        self.chunk_size = (chunk_x, chunk_y, chunk_z)
        self.dtype = mag_view.dtype
        (x0, y0, z0), (x1, y1, z1) = box.topleft, box.bottomright
        self._axes = (_Axis(z0, z1), _Axis(y0, y1), _Axis(x0, x1))
        channels = mag_view.num_channels
        self._channels: int | tuple[int, ...] | None = tuple(range(channels)) if channels > 1 else None
        self._token = (str(mag_view.path), uuid.uuid4().hex)
        self._reported: set[str] = set()

    def _derive(self, axes: tuple[_Axis, ...], channels) -> MagArray:
        view = copy.copy(self)
        view._axes, view._channels = axes, channels
        return view

    @property
    def box(self) -> BoundingBox:
        """The region of the mag this view covers (before steps and dropped axes)."""
        z, y, x = self._axes
        return BoundingBox.from_bounds((x.start, y.start, z.start), (x.stop, y.stop, z.stop))

    @property
    def shape(self) -> tuple[int, ...]:
        spatial = tuple(axis.length for axis in self._axes if not axis.dropped)
        return spatial + ((len(self._channels),) if isinstance(self._channels, tuple) else ())

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"MagArray({self.mag_view.path}, shape={self.shape}, dtype={self.dtype})"

    @property
    def chunks(self) -> tuple[tuple[int, ...], ...] | None:
        """dask-style chunk sizes per axis on the absolute block grid (None once stepped)."""
        if any(axis.step != 1 for axis in self._axes):
            return None
        steps = self.chunk_size[::-1]  # z, y, x
        chunks = [
            _grid_chunks(axis.start, axis.stop, step) for axis, step in zip(self._axes, steps) if not axis.dropped
        ]
        if isinstance(self._channels, tuple):
            chunks.append((len(self._channels),))
        return tuple(chunks)

    def channel(self, index: int) -> MagArray:
        """A (z, y, x) view of one channel, sharing this view's cached chunks."""
        return self[..., index]

    def __getitem__(self, key) -> MagArray:
        if not isinstance(key, tuple):
            key = (key,)
        visible = [i for i, axis in enumerate(self._axes) if not axis.dropped]
        has_channels = isinstance(self._channels, tuple)
        width = len(visible) + has_channels
        if any(k is Ellipsis for k in key):
            at = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:at] + (slice(None),) * (width - len(key) + 1) + key[at + 1 :]
        if len(key) > width:
            raise IndexError(f"too many indices for a {width}-dimensional WKW view")
        key = tuple(key) + (slice(None),) * (width - len(key))
        axes = list(self._axes)
        for axis, part in zip(visible, key):
            axes[axis] = self._axes[axis].index(part)
        channels = self._channels
        if has_channels:
            selected = self._channels[key[-1]]  # type: ignore[index]
            channels = tuple(selected) if isinstance(selected, tuple) else int(selected)
        return self._derive(tuple(axes), channels)

    def __setitem__(self, key, value) -> None:
        raise TypeError(
            f"{self.mag_view.path} is opened read-only; to paint, save the labels to a new "
            "layer in memory first (e.g. viewer.add_labels(np.asarray(layer.data)))"
        )

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        data = self.read_box(self.box)
        if self._channels is not None:
            data = data[..., self._channels if isinstance(self._channels, int) else list(self._channels)]
        z, y, x = self._axes
        data = data[:: z.step, :: y.step, :: x.step]
        data = data[tuple(0 if axis.dropped else slice(None) for axis in self._axes)]
        return data if dtype is None else data.astype(dtype, copy=False)

    def read_box(self, want: BoundingBox) -> np.ndarray:
        """The voxels of ``want`` (mag coordinates), assembled from cached chunks."""
        out = np.empty(self.mag_view.array_shape(want), self.dtype)  # the chunks cover it all
        if want.is_empty:
            return out
        chunks = list(want.aligned(self.chunk_size).chunks(self.chunk_size))
        found = {chunk.topleft: self._cached(chunk.topleft) for chunk in chunks}
        missing = [chunk for chunk in chunks if found[chunk.topleft] is None]
        loaded = _POOL.map(self._load, missing) if len(missing) > 1 else map(self._load, missing)
        for chunk, data in zip(missing, loaded):
            found[chunk.topleft] = data
        (wx, wy, wz), (wx1, wy1, wz1) = want.topleft, want.bottomright
        for chunk in chunks:
            (cx, cy, cz), (cx1, cy1, cz1) = chunk.topleft, chunk.bottomright
            x0, y0, z0 = max(wx, cx), max(wy, cy), max(wz, cz)
            x1, y1, z1 = min(wx1, cx1), min(wy1, cy1), min(wz1, cz1)
            out[z0 - wz : z1 - wz, y0 - wy : y1 - wy, x0 - wx : x1 - wx] = found[chunk.topleft][
                z0 - cz : z1 - cz, y0 - cy : y1 - cy, x0 - cx : x1 - cx
            ]
        return out

    def _cached(self, topleft: tuple[int, int, int]) -> np.ndarray | None:
        return self.cache.get((*self._token, topleft)) if self.cache is not None else None

    def _load(self, chunk: BoundingBox) -> np.ndarray:
        try:
            data = self.mag_view.read(chunk)
        except DatasetFormatError as error:
            if self.on_error == "raise":
                raise
            message = str(error)
            if message not in self._reported:
                self._reported.add(message)
                warnings.warn(f"{message}; showing zeros there", WKWWarning, stacklevel=2)
            data = np.zeros(self.mag_view.array_shape(chunk), self.dtype)
        if self.cache is not None:
            self.cache.put((*self._token, chunk.topleft), data)
        return data


def dask_view(mag_view, box: BoundingBox, on_error: str = "raise"):
    """A dask array of ``box`` of a mag, reading nothing until computed.

    Its chunks are the viewer's (one block deep, on the absolute block grid), so
    each chunk decodes whole blocks once. Prefer :class:`MagArray` for very large
    boxes: dask's graph work grows with the chunk count.
    """
    import dask.array as da  # imported here: dask costs ~0.4 s, and viewers never need it

    source = MagArray(mag_view, box, cache=None, on_error=on_error)
    return da.from_array(
        source,
        chunks=source.chunks,
        name=f"wkw-{mag_view.mag}-{uuid.uuid4().hex}",
        asarray=False,
        fancy=False,
        lock=False,
        meta=np.empty((0,) * source.ndim, mag_view.dtype),
    )


def _grid_chunks(start: int, stop: int, step: int) -> tuple[int, ...]:
    edges = [start] + list(range((start // step + 1) * step, stop, step)) + [stop]
    sizes = tuple(b - a for a, b in zip(edges[:-1], edges[1:]))
    return sizes if stop > start else (0,)
