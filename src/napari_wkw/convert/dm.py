"""Gatan DigitalMicrograph (DM3/DM4) images as image-stack slices.

Decoding is left to RosettaSciIO (``rsciio.digitalmicrograph``, HyperSpy's maintained
reader); this module only picks the image out of what it returns, turns it into
(z, y, x[, c]) voxels WKW can store, and reads the pixel size from the axis
calibrations. ``rsciio`` is imported inside the functions: it pulls in dask.array,
about a second on its own, which only DM users should pay.

A DM file holds one or more images (a thumbnail is skipped by the reader): a 2-D image
becomes one slice, a 3-D stack (axes z, y, x) all its slices. Spectra, spectrum images
and complex data (FFTs) are not image slices and are refused with a clear message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import WKWError
from .source import length_in_nm

#: the reader names the spatial axes of images and stacks like this (spectral axes get
#: names such as "Energy loss" or "Wavelength")
_IMAGE_AXES = (["y", "x"], ["z", "y", "x"])


@dataclass(frozen=True)
class DMInfo:
    """What a DM file holds, without decoding its pixels (where the reader allows)."""

    shape_zyx: tuple[int, int, int]  # a 2-D image has z = 1
    dtype: np.dtype  # of one channel, native byte order
    #: nm per voxel (x, y, z) from the axis calibrations; z is None unless a stack states
    #: it; None when x or y is uncalibrated (pixels) or not a length (1/nm, eV)
    voxel_size_nm: tuple[float, float, float | None] | None
    channels: int  # 3 for RGB images, else 1


def dm_info(path: str | os.PathLike) -> DMInfo:
    """Shape, voxel type and voxel size of the image in ``path``, read from its tags."""
    image = _read_image(Path(path), lazy=True)
    data = image["data"]
    channels = 3 if data.dtype.names else 1
    shape = tuple(int(n) for n in data.shape)
    return DMInfo(
        shape_zyx=shape if len(shape) == 3 else (1, *shape),  # type: ignore[arg-type]
        dtype=_voxel_dtype(data.dtype),
        voxel_size_nm=_voxel_size_nm(image["axes"]),
        channels=channels,
    )


def read_dm(path: str | os.PathLike) -> np.ndarray:
    """All voxels of the image in ``path``: (z, y, x), or (z, y, x, 3) uint8 for RGB."""
    data = np.asarray(_read_image(Path(path), lazy=False)["data"])
    return _as_voxels(data if data.ndim == 3 else data[np.newaxis])


def read_dm_slice(path: str | os.PathLike, z: int) -> np.ndarray:
    """Slice ``z`` of the image in ``path``: (y, x), or (y, x, 3) uint8 for RGB.

    Only that slice's bytes are read (the reader maps the file), so taking a big 3-D
    stack slice by slice does not decode the whole stack for every slice.
    """
    path = Path(path)
    data = _read_image(path, lazy=True)["data"]
    depth = data.shape[0] if data.ndim == 3 else 1
    if not 0 <= z < depth:
        raise WKWError(f"{path}: has {depth} slice(s); there is no slice {z}")
    page = data[z] if data.ndim == 3 else data
    if hasattr(page, "compute"):  # mapped lazily; computed here, not in dask's thread pool
        try:
            page = page.compute(scheduler="synchronous")
        except (OSError, ValueError) as error:
            raise WKWError(f"{path}: cannot read slice {z} ({error})") from None
    return _as_voxels(np.asarray(page))


def _read_image(path: Path, *, lazy: bool) -> dict:
    """The reader's dictionary (data, axes, ...) of the one image or stack in ``path``."""
    if not path.is_file():
        raise WKWError(f"{path}: no such file")
    _check_dm_header(path)
    try:
        from rsciio.digitalmicrograph import file_reader
    except ImportError:
        raise WKWError(
            f"{path}: reading DM3/DM4 needs RosettaSciIO (GPL-licensed, so optional): pip install 'napari-wkw[dm]'"
        ) from None

    try:
        try:
            entries = file_reader(str(path), lazy=lazy)
        except ValueError:
            if not lazy:
                raise
            # the reader cannot map RGB images lazily; they are decoded instead
            entries = file_reader(str(path), lazy=False)
    except Exception as error:  # the reader signals damage with many types (struct, IO, key errors)
        detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise WKWError(f"{path}: damaged or truncated DM file, the reader failed ({detail})") from None
    image = _pick_image(path, entries)
    if image["data"].dtype.kind == "c":
        raise WKWError(f"{path}: holds complex voxels (an FFT?), which WKW cannot store")
    _check_complete(path, image)
    return image


def _check_dm_header(path: Path) -> None:
    """Refuse other files up front: DM3/DM4 start with their version as a big-endian int."""
    with open(path, "rb") as file:
        head = file.read(4)
    version = int.from_bytes(head, "big") if len(head) == 4 else None
    if version not in (3, 4):
        raise WKWError(f"{path}: not a DM3/DM4 file (it does not start with a DigitalMicrograph header)")


def _pick_image(path: Path, entries: list[dict]) -> dict:
    images = [entry for entry in entries if [axis["name"] for axis in entry["axes"]] in _IMAGE_AXES]
    if len(images) == 1:
        return images[0]
    if len(images) > 1:
        raise WKWError(f"{path}: holds {len(images)} images; a slice file must hold one image or one stack")
    if not entries:
        raise WKWError(f"{path}: holds no image")
    names = [str(axis["name"]) for axis in entries[0]["axes"]]
    if len(names) == 1:
        kind = "a 1-D spectrum or profile"
    elif set(names) - {"x", "y", "z"}:
        kind = "spectral data"
    else:
        kind = f"a {len(names)}-D dataset"
    raise WKWError(f"{path}: holds {kind} (axes {', '.join(names)}), not a 2-D image or a z, y, x image stack")


def _check_complete(path: Path, image: dict) -> None:
    """A file cut inside its pixels must not read as zeros (or fail later, in a worker)."""
    tags = image.get("original_metadata", {}).get("ImageList", {}).get("TagGroup0", {})
    tags = tags.get("ImageData", {}).get("Data")
    # where the reader found the pixels (it skips them while parsing the tags)
    if isinstance(tags, dict) and {"offset", "size_bytes"} <= tags.keys():
        end = int(tags["offset"]) + int(tags["size_bytes"])
        size = path.stat().st_size
        if end > size:
            raise WKWError(f"{path}: truncated DM file, its pixels end at byte {end} but the file has {size} bytes")


def _as_voxels(data: np.ndarray) -> np.ndarray:
    """Reader output as WKW voxels: RGB as a last axis of 3 x uint8, masks as 0/1 bytes."""
    if data.dtype.names:  # RGBA as a structured type; alpha is dropped
        data = np.stack([data["R"], data["G"], data["B"]], axis=-1)
    return np.ascontiguousarray(data, dtype=_voxel_dtype(data.dtype))


def _voxel_dtype(dtype: np.dtype) -> np.dtype:
    """The WKW voxel type for what the reader returns (per channel, native byte order)."""
    if dtype.names:
        return np.dtype(np.uint8)
    if dtype.kind == "b":
        return np.dtype(np.uint8)  # binary masks as 0/1 bytes
    return dtype.newbyteorder("=")


def _voxel_size_nm(axes: list[dict]) -> tuple[float, float, float | None] | None:
    x = _length_nm(axes[-1])
    y = _length_nm(axes[-2])
    if x is None or y is None:
        return None
    z = _length_nm(axes[0]) if len(axes) == 3 else None
    return (x, y, z)


def _length_nm(axis: dict) -> float | None:
    """One axis' calibration in nm, or None for pixels and units that are not lengths."""
    return length_in_nm(axis.get("scale") or 0.0, axis.get("units"))
