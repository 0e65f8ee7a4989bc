"""Shared fixtures: copies of the reference datasets and small generated datasets."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def wkw_copy(tmp_path):
    """Copy a dataset from tests/data/wkw into tmp_path (tests never touch tests/data)."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        if target.exists():
            return target
        shutil.copytree(DATA / "wkw" / name, target)
        for path in target.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        return target

    return copy


@pytest.fixture
def em_dataset(tmp_path):
    """A compressed two-layer dataset with an anisotropic pyramid and a non-zero offset."""
    from napari_wkw.core.save import ArrayLayer, save_dataset

    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (40, 150, 210), dtype=np.uint8)
    labels = np.repeat(np.arange(40 * 150 * 210 // 500, dtype=np.uint32), 500)
    labels = labels[: 40 * 150 * 210].reshape(40, 150, 210)
    voxel = (11.24, 11.24, 25.0)
    path = save_dataset(
        tmp_path / "em",
        [
            ArrayLayer("color", "color", [image], voxel, offset=(64, 32, 8)),
            ArrayLayer("segmentation", "segmentation", [labels], voxel, offset=(64, 32, 8)),
        ],
    )
    return path, image, labels
