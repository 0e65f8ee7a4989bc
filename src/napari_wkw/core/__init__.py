"""Headless WKW core: no Qt and no napari imports here, ever.

Everything long takes a progress callback and a cancel token; the napari plugin,
the command line and the tests all call these same functions.
"""

from .dataset import Dataset, Layer, MagView
from .downsample import build_pyramid, default_coarsest_mag, downsample_data, plan_mags
from .errors import CancelledError, DatasetFormatError, NotWKWError, TargetExistsError, WKWError, WKWWarning
from .geometry import BoundingBox, Mag
from .locate import Selection, locate, looks_like_wkw
from .progress import CancelToken, ProgressCallback
from .wkw_file import BLOCK_LZ4, BLOCK_LZ4HC, BLOCK_RAW, WKWHeader
from .writing import write_array

__all__ = [
    "BLOCK_LZ4",
    "BLOCK_LZ4HC",
    "BLOCK_RAW",
    "BoundingBox",
    "CancelToken",
    "CancelledError",
    "Dataset",
    "DatasetFormatError",
    "Layer",
    "Mag",
    "MagView",
    "NotWKWError",
    "ProgressCallback",
    "Selection",
    "TargetExistsError",
    "WKWError",
    "WKWHeader",
    "WKWWarning",
    "build_pyramid",
    "default_coarsest_mag",
    "downsample_data",
    "locate",
    "looks_like_wkw",
    "plan_mags",
    "write_array",
]
