"""What every input format provides to the conversion engine: a volume it can read by box.

Sources are small picklable objects holding paths and parameters (work units carry
them to worker processes); they open files lazily, per process.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod

import numpy as np

from ..core.geometry import BoundingBox, Vec3

#: length units as microscope and imaging files write them, in nanometres (µ as micro
#: sign or Greek mu, Å as letter or Angstrom sign; DM writes "A" when it cannot write Å)
NM_PER_UNIT = {
    "pm": 1e-3,
    "\u00c5": 0.1,
    "\u212b": 0.1,
    "A": 0.1,
    "angstrom": 0.1,
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "\u00b5m": 1e3,
    "\u03bcm": 1e3,
    "um": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "mm": 1e6,
    "millimeter": 1e6,
    "millimetre": 1e6,
    "m": 1e9,
    "meter": 1e9,
    "metre": 1e9,
}


def length_in_nm(value: float, unit: str | None) -> float | None:
    """``value`` in ``unit`` as nanometres; None for unknown units and unusable values."""
    per_unit = NM_PER_UNIT.get(str(unit or "").strip())
    if per_unit is None:
        per_unit = NM_PER_UNIT.get(str(unit or "").strip().lower())
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    if per_unit is None or not np.isfinite(value) or value <= 0:
        return None
    return value * per_unit


class VolumeSource(ABC):
    """A volume in (x, y, z) voxels that can be read box by box.

    ``read`` returns (z, y, x) for one channel or (z, y, x, c), in ``dtype``; voxels the
    source does not have (missing tiles or cubes) read as zeros.
    """

    #: what the source is, for messages ("64 TIFF slices in /data/stack")
    description: str = ""
    #: reading a box costs about its size; False when whole slices are decoded anyway,
    #: so the engine reads each slice once for all the files it touches
    croppable: bool = True

    @property
    @abstractmethod
    def size(self) -> Vec3:
        """Voxels along x, y, z."""

    @property
    @abstractmethod
    def dtype(self) -> np.dtype:
        """Voxel type of one channel."""

    @property
    def num_channels(self) -> int:
        return 1

    @property
    def voxel_size(self) -> tuple[float, float, float] | None:
        """The voxel size (nm, x, y, z) the file itself states, if any."""
        return None

    @abstractmethod
    def read(self, box: BoundingBox) -> np.ndarray:
        """The voxels of ``box`` (inside ``BoundingBox((0, 0, 0), size)``)."""

    def has_data(self, box: BoundingBox) -> bool:
        """False when the source certainly holds nothing in ``box`` (no tile or cube there):
        the engine then writes no file for it. True when in doubt."""
        return True

    def array_shape(self, box: BoundingBox) -> tuple[int, ...]:
        x, y, z = box.size
        return (z, y, x) if self.num_channels == 1 else (z, y, x, self.num_channels)

    def fingerprint(self) -> dict:
        """What identifies this input for resuming (paths, sizes, modification times)."""
        return {"description": self.description, "size": list(self.size), "dtype": str(self.dtype)}


def file_fingerprint(path: str) -> dict:
    """What identifies one input file for resuming: its path, size and modification time."""
    stat = os.stat(path)
    return {"path": path, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


class ArraySource(VolumeSource):
    """An in-memory (z, y, x[, c]) array as a source (tests, and arrays already loaded)."""

    def __init__(self, array: np.ndarray, description: str = "array", voxel_size=None) -> None:
        self.array = np.asarray(array)
        self.description = description
        self._voxel_size = voxel_size

    @property
    def size(self) -> Vec3:
        z, y, x = self.array.shape[:3]
        return (x, y, z)

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def num_channels(self) -> int:
        return 1 if self.array.ndim == 3 else self.array.shape[3]

    @property
    def voxel_size(self):
        return self._voxel_size

    def read(self, box: BoundingBox) -> np.ndarray:
        return self.array[box.zyx_slices()]
