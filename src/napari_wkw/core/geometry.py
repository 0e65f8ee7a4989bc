"""Magnifications and bounding boxes, always in (x, y, z) order as WKW stores them.

Arrays handed to napari are (z, y, x[, c]); the conversion happens in
:mod:`napari_wkw.core.dataset` and nowhere else.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import product

Vec3 = tuple[int, int, int]

_MAG_PATTERN = re.compile(r"^(\d+)(?:-(\d+)-(\d+))?$")


@dataclass(frozen=True, order=False)
class Mag:
    """A magnification: how many mag-1 voxels one voxel spans along x, y and z."""

    x: int
    y: int
    z: int

    @classmethod
    def parse(cls, value: Mag | int | str | Iterable[int]) -> Mag:
        """Accept ``2``, ``"2"``, ``"2-2-1"``, ``[2, 2, 1]`` or a Mag."""
        if isinstance(value, Mag):
            return value
        if isinstance(value, int):
            return cls(value, value, value)
        if isinstance(value, str):
            match = _MAG_PATTERN.match(value.strip())
            if not match:
                raise ValueError(f"{value!r} is not a magnification (expected e.g. 2 or 2-2-1)")
            x, y, z = match.groups()
            return cls(int(x), int(y), int(z)) if y else cls(int(x), int(x), int(x))
        parts = [int(v) for v in value]
        if len(parts) != 3:
            raise ValueError(f"{value!r} is not a magnification (expected 3 numbers)")
        return cls(*parts)

    def __post_init__(self) -> None:
        if min(self.x, self.y, self.z) < 1:
            raise ValueError(f"magnification {self.xyz} must be positive")

    @property
    def xyz(self) -> Vec3:
        return (self.x, self.y, self.z)

    @property
    def max_dim(self) -> int:
        return max(self.xyz)

    def folder_name(self) -> str:
        """``"2"`` for isotropic mags, ``"2-2-1"`` otherwise (as WEBKNOSSOS writes them)."""
        if self.x == self.y == self.z:
            return str(self.x)
        return f"{self.x}-{self.y}-{self.z}"

    def sort_key(self) -> tuple[int, int, Vec3]:
        return (self.max_dim, self.x * self.y * self.z, self.xyz)

    def __str__(self) -> str:
        return f"{self.x}-{self.y}-{self.z}"

    def __repr__(self) -> str:
        return f"Mag({self})"


@dataclass(frozen=True)
class BoundingBox:
    """An axis-aligned box: ``topleft`` and ``size`` in voxels, x/y/z order."""

    topleft: Vec3
    size: Vec3

    @classmethod
    def from_bounds(cls, start: Iterable[int], stop: Iterable[int]) -> BoundingBox:
        start = tuple(int(v) for v in start)
        stop = tuple(int(v) for v in stop)
        return cls(start, tuple(max(0, b - a) for a, b in zip(start, stop)))  # type: ignore[arg-type]

    @property
    def bottomright(self) -> Vec3:
        return tuple(a + s for a, s in zip(self.topleft, self.size))  # type: ignore[return-value]

    @property
    def is_empty(self) -> bool:
        return min(self.size) <= 0

    @property
    def volume(self) -> int:
        return self.size[0] * self.size[1] * self.size[2]

    def intersection(self, other: BoundingBox) -> BoundingBox:
        start = [max(a, b) for a, b in zip(self.topleft, other.topleft)]
        stop = [min(a, b) for a, b in zip(self.bottomright, other.bottomright)]
        return BoundingBox.from_bounds(start, stop)

    def union(self, other: BoundingBox) -> BoundingBox:
        if self.is_empty:
            return other
        if other.is_empty:
            return self
        start = [min(a, b) for a, b in zip(self.topleft, other.topleft)]
        stop = [max(a, b) for a, b in zip(self.bottomright, other.bottomright)]
        return BoundingBox.from_bounds(start, stop)

    def in_mag(self, mag: Mag) -> BoundingBox:
        """The smallest box in ``mag`` voxels that covers this mag-1 box."""
        start = [a // m for a, m in zip(self.topleft, mag.xyz)]
        stop = [-(-b // m) for b, m in zip(self.bottomright, mag.xyz)]
        return BoundingBox.from_bounds(start, stop)

    def from_mag(self, mag: Mag) -> BoundingBox:
        """This box, given in ``mag`` voxels, in mag-1 voxels."""
        return BoundingBox(
            tuple(a * m for a, m in zip(self.topleft, mag.xyz)),  # type: ignore[arg-type]
            tuple(s * m for s, m in zip(self.size, mag.xyz)),  # type: ignore[arg-type]
        )

    def aligned(self, step: Vec3) -> BoundingBox:
        """Grow the box outwards so that both corners are multiples of ``step``."""
        start = [(a // s) * s for a, s in zip(self.topleft, step)]
        stop = [-(-b // s) * s for b, s in zip(self.bottomright, step)]
        return BoundingBox.from_bounds(start, stop)

    def chunks(self, step: Vec3) -> Iterator[BoundingBox]:
        """Split into pieces whose borders sit on multiples of ``step`` (absolute grid)."""
        ranges = []
        for a, b, s in zip(self.topleft, self.bottomright, step):
            edges = [a] + list(range((a // s + 1) * s, b, s)) + [b]
            ranges.append(list(zip(edges[:-1], edges[1:])))
        for (x0, x1), (y0, y1), (z0, z1) in product(*ranges):
            yield BoundingBox.from_bounds((x0, y0, z0), (x1, y1, z1))

    def zyx_slices(self, origin: Vec3 = (0, 0, 0)) -> tuple[slice, slice, slice]:
        """Slices into a (z, y, x) array whose voxel 0 sits at ``origin``."""
        x0, y0, z0 = (a - o for a, o in zip(self.topleft, origin))
        sx, sy, sz = self.size
        return (slice(z0, z0 + sz), slice(y0, y0 + sy), slice(x0, x0 + sx))

    def to_json(self) -> dict:
        return {
            "topLeft": list(self.topleft),
            "width": self.size[0],
            "height": self.size[1],
            "depth": self.size[2],
        }

    @classmethod
    def from_json(cls, value: dict) -> BoundingBox:
        return cls(
            tuple(int(v) for v in value["topLeft"]),  # type: ignore[arg-type]
            (int(value["width"]), int(value["height"]), int(value["depth"])),
        )


def lcm_of_mags(mags: Iterable[Mag]) -> Vec3:
    """Per axis, the smallest step that every mag divides (power-of-two mags: the largest)."""
    step = [1, 1, 1]
    for mag in mags:
        step = [math.lcm(s, m) for s, m in zip(step, mag.xyz)]
    return tuple(step)  # type: ignore[return-value]
