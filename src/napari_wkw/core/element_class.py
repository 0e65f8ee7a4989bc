"""``elementClass`` strings of datasource-properties.json and numpy dtypes.

WEBKNOSSOS names the type of a whole voxel: ``uint24`` is RGB (3 x uint8), ``uint16``
with ``numChannels: 2`` is two uint8 channels, ``float`` and ``double`` are the
floating types. WKW files store the per-channel dtype and the channel count.
"""

from __future__ import annotations

import re

import numpy as np

from .errors import DatasetFormatError, WKWError

#: dtypes a WKW file can hold per channel (the order is the header's voxel-type code - 1)
WKW_DTYPES: tuple[np.dtype, ...] = tuple(
    np.dtype(name)
    for name in (
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float32",
        "float64",
        "int8",
        "int16",
        "int32",
        "int64",
    )
)

#: their names, for the choices the CLI and the wizards offer
WKW_DTYPE_NAMES: tuple[str, ...] = tuple(str(dtype) for dtype in WKW_DTYPES)

_FLOAT_NAMES = {"float": np.dtype("float32"), "double": np.dtype("float64")}
_FLOAT_CLASSES = {np.dtype("float32"): "float", np.dtype("float64"): "double"}


def element_class_for(dtype: np.dtype | str, num_channels: int = 1) -> str:
    """The elementClass WEBKNOSSOS expects for ``num_channels`` channels of ``dtype``."""
    dtype = np.dtype(dtype)
    if num_channels == 1 and dtype in _FLOAT_CLASSES:
        return _FLOAT_CLASSES[dtype]
    kind = {"u": "uint", "i": "int", "f": "float"}[dtype.kind]
    return f"{kind}{dtype.itemsize * 8 * num_channels}"


def dtype_for(element_class: str, num_channels: int = 1) -> np.dtype:
    """Per-channel dtype of an elementClass (``uint24`` with 3 channels is uint8)."""
    if element_class in _FLOAT_NAMES:
        return _FLOAT_NAMES[element_class]
    match = re.fullmatch(r"(uint|int|float)(\d+)", element_class)
    if not match:
        raise DatasetFormatError(f"unknown elementClass {element_class!r}")
    kind, bits = match.group(1), int(match.group(2))
    if element_class == "uint24" and num_channels == 1:
        num_channels = 3
    if bits % num_channels:
        raise DatasetFormatError(f"elementClass {element_class!r} cannot hold {num_channels} channels")
    try:
        dtype = np.dtype(f"{kind}{bits // num_channels}")
    except TypeError:
        raise DatasetFormatError(
            f"elementClass {element_class!r} with {num_channels} channels has no numpy type"
        ) from None
    if dtype not in WKW_DTYPES:
        raise DatasetFormatError(f"elementClass {element_class!r} is not a WKW voxel type")
    return dtype


def channels_for(element_class: str, num_channels: int | None) -> int:
    """Channel count from ``numChannels``, or the uint24 convention when it is absent."""
    if num_channels:
        return int(num_channels)
    return 3 if element_class == "uint24" else 1


def cast_checked(data: np.ndarray, dtype: np.dtype, where: str) -> np.ndarray:
    """``data`` as ``dtype``; integer targets must hold every value (no silent wrap-around)."""
    if data.dtype == dtype:
        return data
    if dtype.kind in "ui" and data.size:
        info = np.iinfo(dtype)
        low, high = data.min(), data.max()
        if low < info.min or high > info.max:
            raise WKWError(f"{where}: values {low}..{high} do not fit {dtype} (range {info.min}..{info.max})")
        if data.dtype.kind == "f":
            data = np.rint(data)
    return data.astype(dtype)
