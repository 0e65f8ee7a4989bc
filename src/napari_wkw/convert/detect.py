"""Tell what kind of input a path is, for ``convert`` (which says what it found)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from ..core.errors import WKWError
from ..core.locate import looks_like_wkw

#: what ``detect_input`` can answer, with the words ``convert`` prints
INPUT_KINDS = {
    "nifti": "NIFTI volume(s)",
    "knossos": "KNOSSOS cubes",
    "tiled-stack": "a tiled image stack",
    "image-stack": "an image stack",
}


def detect_input(source: str | os.PathLike) -> str:
    """One of :data:`INPUT_KINDS`; a clear error for WKW data and for what is none of them."""
    from .image_stack import IMAGE_SUFFIXES
    from .knossos import looks_like_knossos
    from .nifti import looks_like_nifti
    from .tiles import looks_like_tiled_stack

    text = str(source)
    path = Path(text).expanduser()
    if not path.exists():
        if glob.has_magic(text):
            return "image-stack"
        raise WKWError(f"{path}: no such file or folder")
    if path.is_dir() and looks_like_wkw(path):
        raise WKWError(f"{path}: this is a WKW dataset already (see downsample, compress, recube)")
    if looks_like_nifti(path):
        return "nifti"
    if looks_like_knossos(path):
        return "knossos"
    if path.is_dir() and looks_like_tiled_stack(path):
        return "tiled-stack"
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return "image-stack"
    if path.is_dir() and any(
        child.suffix.lower() in IMAGE_SUFFIXES and not child.name.startswith(".") for child in path.iterdir()
    ):
        return "image-stack"
    raise WKWError(
        f"{path}: cannot tell what this is: not NIFTI (.nii, .nii.gz), KNOSSOS cubes, a tiled stack "
        f"or image slices ({', '.join(s[1:] for s in IMAGE_SUFFIXES)})"
    )
