"""Streaming writes of array-likes (numpy, dask, napari levels) into a mag.

Work is cut into units of one WKW file each (so no two writers ever share a file) and
each unit pulls its data tile by tile: memory stays at one tile, whatever the size
of the source.
"""

from __future__ import annotations

import numpy as np

from .dataset import MagView
from .geometry import BoundingBox, Vec3
from .progress import CancelToken, ProgressCallback, ProgressReporter


def write_array(
    mag_view: MagView,
    source,
    offset: Vec3 = (0, 0, 0),
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    label: str | None = None,
) -> int | float | None:
    """Write a (z, y, x[, c]) array-like at ``offset`` (mag voxels); returns its max value."""
    shape = source.shape
    box = BoundingBox(tuple(int(v) for v in offset), (shape[2], shape[1], shape[0]))  # type: ignore[arg-type]
    units = list(box.chunks((mag_view.header.file_size,) * 3))
    reporter = ProgressReporter(progress, len(units), label or f"writing mag {mag_view.mag.folder_name()}", cancel)

    def fetch(sub: BoundingBox) -> np.ndarray:
        return np.asarray(source[sub.zyx_slices(box.topleft)])

    largest = None
    for unit in units:
        reporter.check()
        top = mag_view.write_file(unit, fetch)
        if top is not None:
            largest = top if largest is None else max(largest, top)
        reporter.advance()
    return largest.item() if isinstance(largest, np.generic) else largest
