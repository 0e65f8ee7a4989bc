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
import os
import threading
import uuid
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from .errors import DatasetFormatError, WKWWarning
from .geometry import BoundingBox

if TYPE_CHECKING:
    from .dataset import MagView

#: chunk edge in x and y; z uses the mag's block length (one layer of WKW blocks)
CHUNK_XY = 512


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


class MagArray:
    """A read-only (z, y, x[, c]) array over ``box`` of a mag, read chunk by chunk.

    With ``on_error="warn"`` an unreadable file gives zeros there and one warning
    naming it (viewer use); with ``"raise"`` the DatasetFormatError propagates.
    """

    def __init__(
        self,
        mag_view: MagView,
        box: BoundingBox,
        *,
        cache: ChunkCache | None = CACHE,
        on_error: str = "raise",
        chunk_xy: int = CHUNK_XY,
    ) -> None:
        self.mag_view = mag_view
        self.box = box
        self.cache = cache
        self.on_error = on_error
        self.chunk_size = (chunk_xy, chunk_xy, mag_view.header.block_len)  # x, y, z
        self.shape = mag_view.array_shape(box)
        self.dtype = mag_view.dtype
        self.ndim = len(self.shape)
        self.channel_index: int | None = None
        self._token = (str(mag_view.path), uuid.uuid4().hex)
        self._reported: set[str] = set()

    def channel(self, index: int) -> MagArray:
        """A (z, y, x) view of one channel, sharing this view's cached chunks."""
        if self.ndim != 4 or not 0 <= index < self.shape[3]:
            raise IndexError(f"{self.mag_view.path}: no channel {index}")
        view = copy.copy(self)
        view.channel_index = index
        view.shape = self.shape[:3]
        view.ndim = 3
        return view

    def __repr__(self) -> str:
        return f"MagArray({self.mag_view.path}, shape={self.shape}, dtype={self.dtype})"

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def chunks(self) -> tuple[tuple[int, ...], ...]:
        """dask-style chunk sizes per axis, on the absolute block grid."""
        per_axis = [
            _grid_chunks(a, b, s) for a, b, s in zip(self.box.topleft, self.box.bottomright, self.chunk_size)
        ]
        chunks = [per_axis[2], per_axis[1], per_axis[0]]
        if self.ndim == 4:
            chunks.append((self.shape[3],))
        return tuple(chunks)

    def __setitem__(self, key, value) -> None:
        raise TypeError(
            f"{self.mag_view.path} is opened read-only; to paint, save the labels to a new "
            "layer in memory first (e.g. viewer.add_labels(np.asarray(layer.data)))"
        )

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        data = self[...]
        return data if dtype is None else data.astype(dtype, copy=False)

    def __getitem__(self, key) -> np.ndarray:
        spatial, after = _normalize(key, self.shape)
        (z0, z1, zs, zi), (y0, y1, ys, yi), (x0, x1, xs, xi) = spatial
        origin = self.box.topleft
        want = BoundingBox.from_bounds(
            (origin[0] + x0, origin[1] + y0, origin[2] + z0), (origin[0] + x1, origin[1] + y1, origin[2] + z1)
        )
        data = self.read_box(want)
        if self.channel_index is not None:
            data = data[..., self.channel_index]
        data = data[::zs, ::ys, ::xs]
        index = tuple(0 if is_int else slice(None) for is_int in (zi, yi, xi))
        data = data[index]
        return data[(Ellipsis, *after)] if after else data

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


def _grid_chunks(start: int, stop: int, step: int) -> tuple[int, ...]:
    edges = [start] + list(range((start // step + 1) * step, stop, step)) + [stop]
    sizes = tuple(b - a for a, b in zip(edges[:-1], edges[1:]))
    return sizes if stop > start else (0,)


def _normalize(key, shape) -> tuple[list[tuple[int, int, int, bool]], tuple]:
    """Per spatial axis (start, stop, step, is_int); the rest of the key (channel axis)."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        at = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:at] + (slice(None),) * (len(shape) - len(key) + 1) + key[at + 1 :]
    key = tuple(key) + (slice(None),) * (len(shape) - len(key))
    spatial = []
    for k, n in zip(key[:3], shape[:3]):
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            if step < 1:
                raise IndexError("negative steps are not supported by WKW views")
            spatial.append((start, max(start, stop), step, False))
            continue
        try:
            index = int(k)
        except TypeError:
            raise IndexError(f"WKW views take integers and slices, not {type(k).__name__}") from None
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {int(k)} is out of bounds for an axis of size {n}")
        spatial.append((index, index + 1, 1, True))
    return spatial, tuple(key[3:])

