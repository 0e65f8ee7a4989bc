"""napari sample data: a synthetic EM-like dataset written by our writer, read by our reader."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .core.save import ArrayLayer, save_dataset
from .core.synthetic import cells

SAMPLE_VOXEL_SIZE = (11.24, 11.24, 25.0)


def sample_dataset_path() -> Path:
    """Write the sample dataset once (per version of it) and return its folder."""
    path = Path(tempfile.gettempdir()) / "napari-wkw-sample-v2"
    if not (path / "datasource-properties.json").is_file():
        image, labels = cells()
        layers = [
            ArrayLayer("color", "color", [image], SAMPLE_VOXEL_SIZE),
            ArrayLayer("segmentation", "segmentation", [labels], SAMPLE_VOXEL_SIZE),
        ]
        save_dataset(path, layers, name="wkw-sample")
    return path


def sample_dataset() -> list[tuple]:
    from ._reader import read_wkw

    return read_wkw(str(sample_dataset_path()))
