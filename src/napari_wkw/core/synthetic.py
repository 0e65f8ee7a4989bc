"""A small, EM-like synthetic volume: Voronoi "cells" with dark membranes, and their labels.

Used for napari's sample data, the demo and tests. Pure numpy, deterministic per seed.
"""

from __future__ import annotations

import numpy as np


def _box_blur(volume: np.ndarray, radius: int, axis: int) -> np.ndarray:
    if radius < 1:
        return volume
    pad = [(0, 0)] * volume.ndim
    pad[axis] = (radius + 1, radius)
    padded = np.pad(volume, pad, mode="edge")
    summed = np.cumsum(padded, axis=axis, dtype=np.float32)
    n = volume.shape[axis]
    upper = np.take(summed, np.arange(2 * radius + 1, 2 * radius + 1 + n), axis=axis)
    lower = np.take(summed, np.arange(0, n), axis=axis)
    return (upper - lower) / (2 * radius + 1)


def cells(
    shape_zyx: tuple[int, int, int] = (48, 192, 256), n_cells: int = 40, seed: int = 0, anisotropy: float = 25 / 11.24
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(image uint8, labels uint32)`` of ``shape_zyx``; label 0 marks membranes."""
    rng = np.random.default_rng(seed)
    z, y, x = shape_zyx
    seeds = rng.random((n_cells, 3)) * np.array(shape_zyx)
    labels = np.zeros(shape_zyx, np.uint32)
    best = np.full(shape_zyx, np.inf, np.float32)
    second = np.full(shape_zyx, np.inf, np.float32)
    zz, yy, xx = np.meshgrid(
        np.arange(z, dtype=np.float32) * anisotropy,
        np.arange(y, dtype=np.float32),
        np.arange(x, dtype=np.float32),
        indexing="ij",
    )
    for index, (sz, sy, sx) in enumerate(seeds, start=1):
        distance = np.sqrt((zz - sz * anisotropy) ** 2 + (yy - sy) ** 2 + (xx - sx) ** 2)
        closer = distance < best
        second = np.where(closer, best, np.minimum(second, distance))
        best = np.where(closer, distance, best)
        labels[closer] = index
    membrane = (second - best) < 2.5
    labels[membrane] = 0
    intensity = np.where(membrane, 60.0, 170.0).astype(np.float32)
    vesicles = rng.random(shape_zyx) > 0.9985
    intensity[vesicles] = 40.0
    for axis, radius in ((1, 1), (2, 1)):
        intensity = _box_blur(intensity, radius, axis)
    intensity += rng.normal(0, 14, shape_zyx).astype(np.float32)
    image = np.clip(intensity, 0, 255).astype(np.uint8)
    return image, labels
