"""Raw binary volumes (a file of voxels and nothing else) as volume sources.

The file holds ``x * y * z`` voxels of one type, after ``offset`` bytes of anything
(a header we do not read). Its axes are x, y, z as WEBKNOSSOS counts them; ``order``
says which varies fastest, as in the reference tool (``webknossos convert-raw``,
which memory-maps the file as an (x, y, z) array in that order):

- ``F`` (the default): x fastest, then y, then z: each z slice is one contiguous run of
  ``x * y`` voxels, the layout of most microscopes' and ImageJ's raw exports;
- ``C``: z fastest, then y, then x (C order of the (x, y, z) array). This is *not*
  numpy's usual (z, y, x) C order, which is ``F`` here.

The file is read through ``np.memmap``, so a box costs about its size (``croppable``);
a file whose size is not exactly ``offset`` + voxels x voxel bytes is refused, saying
both sizes: a wrong shape or type would otherwise give a sheared or noisy volume.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.errors import WKWError
from ..core.geometry import BoundingBox, Vec3
from .engine import LayerSpec
from .source import VolumeSource, file_fingerprint

ORDERS = ("F", "C")


def parse_raw_dtype(text: str) -> np.dtype:
    """``uint16``, ``float32``, ``>u2`` (big-endian) ... -> a numpy dtype of plain numbers."""
    try:
        dtype = np.dtype(str(text).strip())
    except TypeError:
        raise ValueError(f"{text!r} is not a voxel type (e.g. uint8, uint16, float32, >u2)") from None
    if dtype.kind not in "uif" or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"{text!r} is not a voxel type of integers or floats (e.g. uint8, uint16, float32)")
    return dtype


def parse_shape(text: str) -> Vec3:
    """``"1024,1024,512"`` -> (1024, 1024, 512); ValueError saying why not."""
    parts = [p for p in str(text).replace(" ", "").split(",") if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive whole numbers x,y,z, not {text!r}")
    return shape  # type: ignore[return-value]


class RawSource(VolumeSource):
    """A raw file of (x, y, z) voxels: see the module docstring for ``order``."""

    croppable = True

    def __init__(
        self,
        path: str | os.PathLike,
        shape: Sequence[int],
        dtype: np.dtype | str,
        *,
        order: str = "F",
        offset: int = 0,
        flip: Sequence[bool] = (False, False, False),
    ) -> None:
        self.path = str(Path(path).expanduser().absolute())
        self.shape: Vec3 = tuple(int(v) for v in shape)  # type: ignore[assignment]
        self.raw_dtype = parse_raw_dtype(dtype) if not isinstance(dtype, np.dtype) else dtype
        self.order = str(order).upper()
        self.offset = int(offset)
        self.flip_axes = tuple(bool(f) for f in flip)
        if self.order not in ORDERS:
            raise WKWError(f"order must be F (x fastest) or C (z fastest), not {order!r}")
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise WKWError(f"shape must be three positive numbers x,y,z, not {shape}")
        if self.offset < 0:
            raise WKWError(f"the offset must be 0 or more bytes, not {offset}")
        self.description = f"raw file {self.path}"
        self._check_size()
        self._map = None
        self._lock = threading.Lock()

    def _check_size(self) -> None:
        path = Path(self.path)
        if not path.exists():
            raise WKWError(f"{path}: no such file")
        if not path.is_file():
            raise WKWError(f"{path}: not a file (a raw volume is one file of voxels)")
        have = path.stat().st_size
        voxels = int(np.prod(self.shape, dtype=np.int64))
        need = self.offset + voxels * self.raw_dtype.itemsize
        if have != need:
            x, y, z = self.shape
            skipped = f" + {self.offset} bytes of offset" if self.offset else ""
            raise WKWError(
                f"{path}: the file has {have} bytes, but {x} x {y} x {z} voxels of {self.raw_dtype.name}{skipped} "
                f"need {need} bytes; check --shape, --dtype and --offset"
            )

    # -- VolumeSource

    @property
    def size(self) -> Vec3:
        return self.shape

    @property
    def dtype(self) -> np.dtype:
        return self.raw_dtype.newbyteorder("=")

    def fingerprint(self) -> dict:
        return {
            **super().fingerprint(),
            **file_fingerprint(self.path),
            "raw_dtype": self.raw_dtype.str,
            "order": self.order,
            "offset": self.offset,
            "flip": list(self.flip_axes),
        }

    def read(self, box: BoundingBox) -> np.ndarray:
        slices = []
        for axis in range(3):
            start, stop = box.topleft[axis], box.bottomright[axis]
            if self.flip_axes[axis]:
                start, stop = self.shape[axis] - stop, self.shape[axis] - start
            slices.append(slice(start, stop))
        block = self._memmap()[tuple(slices)]  # (x, y, z)
        flipped = tuple(axis for axis in range(3) if self.flip_axes[axis])
        if flipped:
            block = block[tuple(slice(None, None, -1) if a in flipped else slice(None) for a in range(3))]
        # (x, y, z) -> (z, y, x) in C order: a copy, in the machine's byte order
        return np.ascontiguousarray(block.transpose(2, 1, 0), dtype=self.dtype)

    def _memmap(self) -> np.memmap:
        if self._map is None:
            with self._lock:
                if self._map is None:
                    self._map = np.memmap(
                        self.path,
                        dtype=self.raw_dtype,
                        mode="r",
                        offset=self.offset,
                        shape=self.shape,
                        order=self.order,
                    )
        return self._map

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_map"] = None  # each process maps the file itself
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def build_raw_specs(
    source: str | os.PathLike,
    *,
    shape: Sequence[int],
    source_dtype: np.dtype | str,
    layer_name: str = "color",
    category: str | None = None,
    dtype: np.dtype | str | None = None,
    order: str = "F",
    offset: int = 0,
    flip_axes: Sequence[bool] = (False, False, False),
) -> list[LayerSpec]:
    """The one layer spec of a raw file; ``dtype`` is the stored type [default: the file's]."""
    from .specs import layer_category

    raw = RawSource(source, shape, source_dtype, order=order, offset=offset, flip=flip_axes)
    return [LayerSpec(raw, layer_name, layer_category(category, layer_name), dtype)]


__all__ = ["ORDERS", "RawSource", "build_raw_specs", "parse_raw_dtype", "parse_shape"]
