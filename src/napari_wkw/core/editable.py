"""A labels array napari can paint into, over read-only data that is never loaded whole.

napari paints by ``data[indices] = label`` (a tuple of index arrays) and reads back with
the same indices and with slices; its Labels layer accepts any array-like that supports
these. :class:`EditableVolume` keeps what is painted in 32^3 blocks in memory and reads
everything else from its base (a lazy view of an annotation's mag 1, a dataset's layer,
or nothing at all): memory grows with the painted blocks, not with the volume, and the
base is never written. Saving reads it like any array, slab by slab.
"""

from __future__ import annotations

import operator

import numpy as np

BLOCK = 32


class EditableVolume:
    """A (z, y, x) integer array: edited blocks in memory over a read-only ``base``.

    ``base`` is any array-like with ``shape``, ``dtype`` and slicing (``np.asarray`` of a
    slice gives voxels); None means all zeros of ``shape`` and ``dtype``.
    """

    def __init__(self, base=None, *, shape: tuple[int, int, int] | None = None, dtype=None) -> None:
        if base is None and (shape is None or dtype is None):
            raise ValueError("an EditableVolume without base needs shape and dtype")
        self.base = base
        self.shape = tuple(int(v) for v in (shape if base is None else base.shape))
        if len(self.shape) != 3:
            raise ValueError(f"an EditableVolume is 3D (z, y, x), not of shape {self.shape}")
        self.dtype = np.dtype(dtype if dtype is not None else base.dtype)
        self.blocks: dict[tuple[int, int, int], np.ndarray] = {}

    ndim = 3

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"EditableVolume(shape={self.shape}, dtype={self.dtype}, edited blocks={len(self.blocks)})"

    @property
    def edited_bytes(self) -> int:
        return sum(block.nbytes for block in self.blocks.values())

    # ---- reading --------------------------------------------------------------------------

    def read_box(self, start: tuple[int, int, int], stop: tuple[int, int, int]) -> np.ndarray:
        """Voxels of the (z, y, x) box [start, stop), edits included."""
        shape = tuple(max(0, b - a) for a, b in zip(start, stop))
        if self.base is None:
            out = np.zeros(shape, self.dtype)
        else:
            out = np.array(self.base[tuple(slice(a, b) for a, b in zip(start, stop))], dtype=self.dtype)
        if self.blocks and all(shape):
            for key in self._block_keys(start, stop):
                block = self.blocks.get(key)
                if block is None:
                    continue
                origin = tuple(k * BLOCK for k in key)
                lo = [max(a, o) for a, o in zip(start, origin)]
                hi = [min(b, o + BLOCK, s) for b, o, s in zip(stop, origin, self.shape)]
                out[tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))] = block[
                    tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, origin))
                ]
        return out

    def _block_keys(self, start, stop):
        ranges = [range(a // BLOCK, -(-b // BLOCK)) for a, b in zip(start, stop)]
        if len(self.blocks) < np.prod([len(r) for r in ranges]):
            return [key for key in self.blocks if all(k in r for k, r in zip(key, ranges))]
        return [(z, y, x) for z in ranges[0] for y in ranges[1] for x in ranges[2]]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        data = self.read_box((0, 0, 0), self.shape)
        return data if dtype is None else data.astype(dtype, copy=False)

    def __getitem__(self, key):
        fancy = _fancy(key)
        if fancy is not None:
            return self._gather(fancy)
        axes = _basic(key, self.shape)
        start = tuple(a.start for a in axes)
        stop = tuple(a.stop for a in axes)
        data = self.read_box(start, stop)
        return data[tuple(a.local for a in axes)]

    def _gather(self, index: tuple[np.ndarray, ...]) -> np.ndarray:
        """Values at integer coordinates (napari's fancy indexing while painting)."""
        if not index[0].size:
            return np.zeros(index[0].shape, self.dtype)
        start = tuple(int(i.min()) for i in index)
        stop = tuple(int(i.max()) + 1 for i in index)
        box = self.read_box(start, stop)
        return box[tuple(i - s for i, s in zip(index, start))]

    # ---- writing --------------------------------------------------------------------------

    def __setitem__(self, key, value) -> None:
        fancy = _fancy(key)
        if fancy is not None:
            self._scatter(fancy, value)
            return
        axes = _basic(key, self.shape)
        start = tuple(a.start for a in axes)
        stop = tuple(a.stop for a in axes)
        region = self.read_box(start, stop)
        region[tuple(a.local for a in axes)] = value
        self._store(start, region)

    def _scatter(self, index: tuple[np.ndarray, ...], value) -> None:
        if not index[0].size:
            return
        values = np.broadcast_to(np.asarray(value, dtype=self.dtype), index[0].shape)
        keys = np.stack([i // BLOCK for i in index], axis=-1).reshape(-1, 3)
        flat = [i.reshape(-1) for i in index]
        values = values.reshape(-1)
        order = np.lexsort(keys.T[::-1])
        keys, flat, values = keys[order], [i[order] for i in flat], values[order]
        bounds = np.flatnonzero(np.any(np.diff(keys, axis=0), axis=1)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(keys)]):
            key = tuple(int(k) for k in keys[lo])
            block = self._block(key)
            origin = [k * BLOCK for k in key]
            block[tuple(i[lo:hi] - o for i, o in zip(flat, origin))] = values[lo:hi]

    def _store(self, start: tuple[int, int, int], region: np.ndarray) -> None:
        stop = tuple(a + s for a, s in zip(start, region.shape))
        for key in [(z, y, x) for z, y, x in np.ndindex(*(-(-b // BLOCK) - a // BLOCK for a, b in zip(start, stop)))]:
            key = tuple(k + a // BLOCK for k, a in zip(key, start))
            block = self._block(key)
            origin = tuple(k * BLOCK for k in key)
            lo = [max(a, o) for a, o in zip(start, origin)]
            hi = [min(b, o + BLOCK) for b, o in zip(stop, origin)]
            block[tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, origin))] = region[
                tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))
            ]

    def _block(self, key: tuple[int, int, int]) -> np.ndarray:
        """The edited block ``key``, loaded from the base on first use (voxels past the
        volume's end stay zero and are never read back)."""
        block = self.blocks.get(key)
        if block is None:
            origin = [k * BLOCK for k in key]
            stop = [min(o + BLOCK, s) for o, s in zip(origin, self.shape)]
            block = np.zeros((BLOCK,) * 3, self.dtype)
            block[tuple(slice(0, b - o) for o, b in zip(origin, stop))] = self.read_box(tuple(origin), tuple(stop))
            self.blocks[key] = block
        return block


class _Axis:
    """One axis of a basic index: the box [start, stop) to read and how to cut it locally."""

    __slots__ = ("local", "start", "stop")

    def __init__(self, start: int, stop: int, local) -> None:
        self.start, self.stop, self.local = start, stop, local


def _basic(key, shape: tuple[int, ...]) -> list[_Axis]:
    """Integers, slices and Ellipsis as boxes plus local cuts; anything else is an IndexError."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        at = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:at] + (slice(None),) * (len(shape) - len(key) + 1) + key[at + 1 :]
    if len(key) > len(shape):
        raise IndexError(f"too many indices for a {len(shape)}-dimensional array")
    key = tuple(key) + (slice(None),) * (len(shape) - len(key))
    axes = []
    for part, size in zip(key, shape):
        if isinstance(part, slice):
            first, last, step = part.indices(size)
            if step < 1:
                raise IndexError("EditableVolume does not take negative steps")
            count = len(range(first, last, step))
            stop = first + (count - 1) * step + 1 if count else first
            axes.append(_Axis(first, stop, slice(None, None, step)))
            continue
        try:
            position = operator.index(part)
        except TypeError:
            raise IndexError(f"EditableVolume takes integers, slices and index arrays, not {part!r}") from None
        position += size if position < 0 else 0
        if not 0 <= position < size:
            raise IndexError(f"index {part} is out of bounds for an axis of size {size}")
        axes.append(_Axis(position, position + 1, 0))
    return axes


def _fancy(key) -> tuple[np.ndarray, ...] | None:
    """A tuple of three integer index arrays (napari's paint indices), broadcast; else None."""
    if not isinstance(key, tuple) or len(key) != 3 or not any(isinstance(k, np.ndarray | list) for k in key):
        return None
    arrays = [np.asarray(k) for k in key]
    if any(a.dtype.kind not in "iu" for a in arrays):
        raise IndexError("EditableVolume takes integer index arrays (no boolean masks)")
    return tuple(np.broadcast_arrays(*arrays))
