"""Image stacks: a folder (or glob) of slices, or multi-page files, as one volume.

Formats: TIFF (any bit depth, RGB, multi-page, OME axes, compressed) through
tifffile; JPEG, PNG and BMP through Pillow; Gatan DM3/DM4 through RosettaSciIO
(:mod:`.dm`). Slices sort naturally (``2.tif`` before ``10.tif``). Uncompressed TIFF
pages are memory-mapped, so a work unit reads only its part of each slice; other
formats decode whole slices, and the engine then reads each slice once for a whole
row of files.
"""

from __future__ import annotations

import bisect
import glob
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import WKWError
from ..core.geometry import BoundingBox, Vec3
from .source import VolumeSource, length_in_nm

TIFF_SUFFIXES = (".tif", ".tiff")
PILLOW_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DM_SUFFIXES = (".dm3", ".dm4")
IMAGE_SUFFIXES = TIFF_SUFFIXES + PILLOW_SUFFIXES + DM_SUFFIXES
#: Pillow modes -> (mode to convert to, or None, voxel type, channels)
_PILLOW_MODES = {
    "1": ("L", np.uint8, 1),
    "L": (None, np.uint8, 1),
    "P": ("RGB", np.uint8, 3),
    "LA": ("L", np.uint8, 1),
    "RGB": (None, np.uint8, 3),
    "RGBA": ("RGB", np.uint8, 3),
    "CMYK": ("RGB", np.uint8, 3),
    "YCbCr": ("RGB", np.uint8, 3),
    "I;16": (None, np.uint16, 1),
    "I;16L": (None, np.uint16, 1),
    "I;16B": (None, np.uint16, 1),
    "I": (None, np.int32, 1),
    "F": (None, np.float32, 1),
}


def natural_key(path: Path) -> list:
    """Sort key reading digit runs as numbers: ``2.tif`` before ``10.tif``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_slice_files(source: str | os.PathLike) -> list[Path]:
    """The image files of a folder, a glob pattern or one file, in natural order."""
    text = str(source)
    path = Path(text).expanduser().absolute()  # workers of a cluster may run in another folder
    if path.is_dir():
        files = [f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")]
        if not files:
            raise WKWError(f"{path}: no image slices ({', '.join(s[1:] for s in IMAGE_SUFFIXES)}) in this folder")
    elif path.is_file():
        files = [path]
    elif glob.has_magic(text):
        files = [Path(f).absolute() for f in glob.glob(os.path.expanduser(text)) if Path(f).is_file()]
        if not files:
            raise WKWError(f"{text}: no file matches this pattern")
    else:
        raise WKWError(f"{path}: no such file or folder")
    unknown = [f for f in files if f.suffix.lower() not in IMAGE_SUFFIXES]
    if unknown:
        raise WKWError(f"{unknown[0]}: not an image format napari-wkw reads ({', '.join(IMAGE_SUFFIXES)})")
    return sorted(files, key=natural_key)


@dataclass(frozen=True)
class SliceFile:
    """One file of the stack: its slices, their size, and where pages sit if memory-mappable."""

    path: str
    kind: str  # "tiff", "pillow" or "dm"
    first_z: int  # index of its first slice in the stack
    depth: int  # slices it holds (after --channel-index, per channel)
    height: int
    width: int
    channels: int  # channels per voxel in the file (C or S axis), 1 if none
    dtype: str
    page_shape: tuple[int, ...] = ()  # TIFF: shape of the page axes (incl. C)
    channel_axis: int | None = None  # TIFF: which page axis is C, if C is a page axis
    sample_axis: bool = False  # TIFF: the pages carry samples (YXS)
    memmap: tuple[tuple[int, ...], ...] | None = None  # per page: (offset,) when uncompressed
    decoder: str = "tifffile"  # TIFF: "pillow" for the pages libtiff decodes faster (see _pillow_decodes)


def _tiff_voxel_size(tif) -> tuple[float, float, float] | None:
    """nm per voxel from OME-XML (``PhysicalSizeX/Y/Z``, µm unless stated) or ImageJ
    metadata (``spacing``, ``unit`` and the resolution tags); None unless all three are known."""
    if tif.is_ome and tif.ome_metadata:
        pixels = re.search(r"<(?:\w+:)?Pixels\b[^>]*>", tif.ome_metadata)
        if pixels:
            attributes = dict(re.findall(r'(\w+)="([^"]*)"', pixels.group(0)))
            sizes = [
                length_in_nm(attributes.get(f"PhysicalSize{axis}"), attributes.get(f"PhysicalSize{axis}Unit", "µm"))
                for axis in "XYZ"
            ]
            if all(sizes):
                return tuple(sizes)  # type: ignore[return-value]
    metadata = tif.imagej_metadata or {}
    if "spacing" in metadata:
        unit = metadata.get("unit", "")
        tags = tif.pages[0].tags
        sizes = []
        for name in ("XResolution", "YResolution"):
            numerator, denominator = tags[name].value if name in tags else (0, 1)
            sizes.append(length_in_nm(denominator / numerator, unit) if numerator else None)
        sizes.append(length_in_nm(metadata["spacing"], unit))
        if all(sizes):
            return tuple(sizes)  # type: ignore[return-value]
    return None


def _tiff_file(path: Path, first_z: int) -> tuple[SliceFile, tuple[float, float, float] | None]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape = series.axes, series.shape
            pages = list(series.pages)
            if "Y" not in axes or "X" not in axes:
                raise WKWError(f"{path}: TIFF series has axes {axes}, no Y and X")
            sample_axis = axes.endswith("S")
            if "S" in axes[:-1]:
                raise WKWError(f"{path}: TIFF with planar (separate) samples is not supported; save it interleaved")
            page_axes = axes[: axes.index("Y")]
            page_shape = tuple(shape[: len(page_axes)])
            channel_axis = page_axes.index("C") if "C" in page_axes else None
            channels = shape[-1] if sample_axis else 1
            if channel_axis is not None:
                if sample_axis and channels > 1 and page_shape[channel_axis] > 1:
                    raise WKWError(f"{path}: TIFF has both channels (C) and samples (S); pick one with --channel-index")
                channels = max(channels, page_shape[channel_axis])
            depth = int(np.prod(page_shape)) // (page_shape[channel_axis] if channel_axis is not None else 1)
            memmap = None
            if all(page is not None and page.is_memmappable for page in pages) and len(pages) == int(
                np.prod(page_shape)
            ):
                memmap = tuple((int(page.dataoffsets[0]),) for page in pages)
            dtype = np.dtype(series.dtype).newbyteorder(tif.byteorder)
            stated = _tiff_voxel_size(tif)
            decoder = "pillow" if _pillow_decodes(pages, sample_axis, channels, dtype) else "tifffile"
    except WKWError:
        raise
    except Exception as error:  # tifffile raises many kinds on damaged files
        raise WKWError(f"{path}: cannot read this TIFF ({error})") from None
    height, width = shape[axes.index("Y")], shape[axes.index("X")]
    file = SliceFile(
        str(path),
        "tiff",
        first_z,
        depth,
        height,
        width,
        channels,
        dtype.str,
        page_shape,
        channel_axis,
        sample_axis,
        memmap,
        decoder,
    )
    return file, stated


def _pillow_decodes(pages: list, sample_axis: bool, channels: int, dtype: np.dtype) -> bool:
    """Whether a TIFF is one LZW page of grey uint8/uint16 or RGB uint8 in one plane:
    Pillow (libtiff) decodes those 2-4x faster than tifffile + imagecodecs (a 2048^2 EM
    slice: grey 37-45 vs 87 ms, RGB 57-68 vs 103-256 ms, 16-bit 35 vs 75 ms; measured for
    deflate, PackBits and JPEG too, where tifffile is as fast or faster)."""
    if len(pages) != 1 or pages[0] is None:
        return False
    page = pages[0]
    grey = not sample_axis and channels == 1 and dtype.itemsize in (1, 2) and dtype.kind == "u"
    rgb = sample_axis and channels == 3 and dtype == np.uint8
    return int(page.compression) == 5 and int(page.planarconfig) == 1 and (grey or rgb)


def _pillow_file(path: Path, first_z: int) -> SliceFile:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode, (width, height) = image.mode, image.size
            frames = getattr(image, "n_frames", 1)
    except (UnidentifiedImageError, OSError) as error:
        raise WKWError(f"{path}: cannot read this image ({error})") from None
    if mode not in _PILLOW_MODES:
        raise WKWError(f"{path}: image mode {mode} is not supported")
    _, dtype, channels = _PILLOW_MODES[mode]
    return SliceFile(str(path), "pillow", first_z, frames, height, width, channels, np.dtype(dtype).str)


def _dm_file(path: Path, first_z: int) -> tuple[SliceFile, tuple[float, float, float] | None]:
    from .dm import dm_info

    info = dm_info(path)
    depth, height, width = info.shape_zyx
    file = SliceFile(str(path), "dm", first_z, depth, height, width, info.channels, np.dtype(info.dtype).str)
    stated = info.voxel_size_nm
    return file, stated if stated is not None and stated[2] is not None else None  # type: ignore[return-value]


class ImageStackSource(VolumeSource):
    """A stack of slices from one or more image files (see the module docstring)."""

    def __init__(
        self,
        files: list[SliceFile],
        *,
        width: int,
        height: int,
        dtype: np.dtype,
        channel: int | None = None,
        all_channels: bool = False,
        voxel_size: tuple[float, float, float] | None = None,
        skip: int = 0,
        description: str = "",
    ) -> None:
        self.files = files
        self.width, self.height = width, height
        self._dtype = np.dtype(dtype)
        self.channel = channel  # read this channel only (None: all, or the only one)
        self.all_channels = all_channels
        self._voxel_size = voxel_size
        self.skip = skip
        self.description = description
        self.croppable = all(f.kind == "tiff" and f.memmap is not None for f in files)
        self._starts = [f.first_z for f in files]
        self._local = threading.local()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_local"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    @property
    def size(self) -> Vec3:
        depth = self.files[-1].first_z + self.files[-1].depth - self.skip
        return (self.width, self.height, depth)

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def num_channels(self) -> int:
        return self.files[0].channels if self.all_channels else 1

    @property
    def voxel_size(self):
        return self._voxel_size

    def fingerprint(self) -> dict:
        stats = [os.stat(f.path) for f in self.files]
        return {
            **super().fingerprint(),
            "files": [f.path for f in self.files],
            "bytes": sum(s.st_size for s in stats),
            "mtime": max(s.st_mtime_ns for s in stats),
            "channel": self.channel,
            "skip": self.skip,
        }

    def read(self, box: BoundingBox) -> np.ndarray:
        out = np.zeros(self.array_shape(box), self.dtype)
        x0, y0, z0 = box.topleft
        x1, y1 = min(box.bottomright[0], self.width), min(box.bottomright[1], self.height)
        for z in range(z0, box.bottomright[2]):
            stack_z = z + self.skip
            file = self.files[bisect.bisect_right(self._starts, stack_z) - 1]
            y_stop, x_stop = min(y1, file.height), min(x1, file.width)
            if y_stop <= y0 or x_stop <= x0:
                continue  # a smaller (padded) slice: zeros here
            plane = self._plane(file, stack_z - file.first_z, (y0, y_stop), (x0, x_stop))
            out[z - z0, : y_stop - y0, : x_stop - x0] = plane
        return out

    def _plane(self, file: SliceFile, index: int, ys: tuple[int, int], xs: tuple[int, int]) -> np.ndarray:
        """Slice ``index`` of ``file``, cropped, (y, x) or (y, x, c), in this source's channels."""
        try:
            if file.kind == "tiff":
                plane = self._tiff_plane(file, index, ys, xs)
            else:
                plane = self._decoded(file, index)[ys[0] : ys[1], xs[0] : xs[1]]
                if self.channel is not None and plane.ndim == 3:
                    plane = plane[..., self.channel]
        except WKWError:
            raise
        except Exception as error:
            raise WKWError(f"{file.path}: cannot read slice {index} ({error})") from None
        return plane

    def _tiff_plane(self, file: SliceFile, index: int, ys, xs) -> np.ndarray:
        channels = [self.channel] if self.channel is not None else list(range(file.channels))
        if file.channel_axis is None or file.sample_axis:
            planes = [self._tiff_page(file, self._page_index(file, index, None), ys, xs)]
            plane = planes[0]
            if file.sample_axis and plane.ndim == 3:
                plane = plane[..., channels] if len(channels) > 1 else plane[..., channels[0]]
            return plane
        planes = [self._tiff_page(file, self._page_index(file, index, c), ys, xs) for c in channels]
        return planes[0] if len(planes) == 1 else np.stack(planes, axis=-1)

    @staticmethod
    def _page_index(file: SliceFile, index: int, channel: int | None) -> int:
        if file.channel_axis is None:
            return index
        z_shape = [s for i, s in enumerate(file.page_shape) if i != file.channel_axis]
        position = list(np.unravel_index(index, z_shape)) if z_shape else []
        position.insert(file.channel_axis, channel or 0)
        return int(np.ravel_multi_index(position, file.page_shape))

    def _tiff_page(self, file: SliceFile, page: int, ys, xs) -> np.ndarray:
        dtype = np.dtype(file.dtype)
        if file.memmap is not None:
            shape = (file.height, file.width) + ((file.channels,) if file.sample_axis else ())
            mapped = np.memmap(file.path, dtype=dtype, mode="r", offset=file.memmap[page][0], shape=shape)
            return np.asarray(mapped[ys[0] : ys[1], xs[0] : xs[1]], dtype=dtype.newbyteorder("="))
        decoded = self._decoded(file, page)
        return decoded[ys[0] : ys[1], xs[0] : xs[1]]

    def _decoded(self, file: SliceFile, index: int) -> np.ndarray:
        """A whole decoded page, remembered per thread (the rows of one slice are read in turn)."""
        key = (file.path, index)
        cached = getattr(self._local, "decoded", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        if file.kind == "tiff" and file.decoder == "pillow":
            data = _pillow_frame(Path(file.path), index)
        elif file.kind == "tiff":
            import tifffile

            data = tifffile.imread(file.path, key=index, series=0)
        elif file.kind == "dm":
            from .dm import read_dm_slice

            data = read_dm_slice(file.path, index)
        else:
            data = _pillow_frame(Path(file.path), index)
        data = np.asarray(data)
        data = data.astype(data.dtype.newbyteorder("="), copy=False)
        self._local.decoded = (key, data)
        return data


def _pillow_frame(path: Path, index: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        if index:
            image.seek(index)
        convert_to, dtype, _ = _PILLOW_MODES[image.mode]
        if convert_to is not None:
            image = image.convert(convert_to)
        data = np.asarray(image)
    return data.astype(dtype, copy=False)


def open_image_stack(
    source: str | os.PathLike,
    *,
    pad: bool = False,
    skip_first: int = 0,
    channel_index: int | None = None,
    sample_index: int | None = None,
    prefer: str | None = None,
) -> list[ImageStackSource]:
    """The stack at ``source`` as one source, or one per channel (``prefer="layers"``).

    Without ``pad``, every slice must have the first slice's size; the first that does
    not is an error naming it. Multi-channel data (OME channels, RGB samples) becomes
    one RGB layer for 3 x uint8 and one layer per channel otherwise, unless ``prefer``
    is ``"channels"`` or ``"layers"``.
    """
    files: list[SliceFile] = []
    voxel_size = None
    z = 0
    for path in list_slice_files(source):
        suffix = path.suffix.lower()
        if suffix in TIFF_SUFFIXES:
            file, stated = _tiff_file(path, z)
            voxel_size = voxel_size or stated
        elif suffix in DM_SUFFIXES:
            file, stated = _dm_file(path, z)
            voxel_size = voxel_size or stated
        else:
            file = _pillow_file(path, z)
        files.append(file)
        z += file.depth
    _check_consistent(files, pad)
    first = files[0]
    if skip_first < 0 or skip_first >= z:
        raise WKWError(f"{source}: cannot skip {skip_first} of its {z} slices")
    pick = channel_index if channel_index is not None else sample_index
    if pick is not None and not 0 <= pick < first.channels:
        raise WKWError(f"{first.path}: has {first.channels} channel(s); there is no channel {pick}")
    width, height = max(f.width for f in files), max(f.height for f in files)
    dtype = np.dtype(first.dtype).newbyteorder("=")
    count = len(files)
    where = f"{count} {_format_name(files)} file{'s' if count > 1 else ''}" + (f" ({z} slices)" if z != count else "")
    where += f" in {Path(str(source)).expanduser()}"

    def make(channel: int | None, all_channels: bool, note: str) -> ImageStackSource:
        return ImageStackSource(
            files,
            width=width,
            height=height,
            dtype=dtype,
            channel=channel,
            all_channels=all_channels,
            voxel_size=voxel_size,
            skip=skip_first,
            description=where + note,
        )

    if first.channels == 1:
        return [make(None, False, "")]
    if pick is not None:
        return [make(pick, False, f", channel {pick}")]
    rgb = first.channels == 3 and dtype == np.uint8
    if prefer == "channels" or (prefer is None and rgb):
        return [make(None, True, f", {first.channels} channels")]
    return [make(c, False, f", channel {c}") for c in range(first.channels)]


def _check_consistent(files: list[SliceFile], pad: bool) -> None:
    first = files[0]
    for file in files[1:]:
        if file.channels != first.channels or np.dtype(file.dtype) != np.dtype(first.dtype):
            raise WKWError(
                f"{file.path}: {file.channels} channel(s) of {np.dtype(file.dtype)}, but {first.path} has "
                f"{first.channels} of {np.dtype(first.dtype)}; all slices must have the same voxel type"
            )
        if (file.width, file.height) != (first.width, first.height) and not pad:
            raise WKWError(
                f"{file.path}: slice is {file.width} x {file.height} pixels but {Path(first.path).name} is "
                f"{first.width} x {first.height}; pass --pad to pad smaller slices at the bottom/right"
            )


def _format_name(files: list[SliceFile]) -> str:
    kinds = {Path(f.path).suffix.lower().lstrip(".") for f in files}
    names = {"tif": "TIFF", "tiff": "TIFF", "jpg": "JPEG", "jpeg": "JPEG", "dm3": "DM3", "dm4": "DM4"}
    return "/".join(sorted({names.get(k, k.upper()) for k in kinds}))
