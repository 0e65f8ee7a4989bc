"""Tiled stacks: one image file per tile, placed by the z, y and x numbers in its path.

A path pattern relative to the stack folder, such as ``{z}/{y}/{x}.jpg`` or
``{zzz}_{yy}_{xx}.png``, says where the numbers sit: ``{z}`` is any number of
digits, ``{zzz}`` exactly three (zero-padded). Tile (x, y) of slice z covers voxels
``x * width .. (x + 1) * width`` (and so on) of the dataset; missing tiles are zeros.

The stack is scanned once (walking only the folders the pattern allows) for the
range of tile numbers; reads then build each tile's path from the pattern, so the
source stays small to pickle however many tiles there are.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import WKWError
from ..core.geometry import BoundingBox, Mag, Vec3
from .engine import LayerSpec
from .source import VolumeSource

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
TIFF_SUFFIXES = (".tif", ".tiff")
AXES = "zyx"
#: edge of the data files the engine writes for all but small layers (32 blocks of 32 voxels)
FILE_EDGE = 1024

_TOKEN = re.compile(r"\{([^{}]*)\}")
_FLAT_TILE = re.compile(r"^\d+_\d+_\d+(\.[A-Za-z]+)$")
_NUMBERED_FILE = re.compile(r"^\d+(\.[A-Za-z]+)$")
_NUMBER = re.compile(r"^\d+$")
#: Pillow modes stored as another mode: alpha is dropped (WEBKNOSSOS layers are grey or RGB)
_PILLOW_MODES = {"1": "L", "LA": "L", "La": "L", "P": "RGB", "PA": "RGB", "RGBA": "RGB", "RGBa": "RGB",
                 "RGBX": "RGB", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}  # fmt: skip


# ----------------------------------------------------------------------------- the pattern


@dataclass(frozen=True)
class _Field:
    """One ``{zzz}`` of a pattern: an axis, its digits (0: any number) and its zero-padding."""

    axis: str
    digits: int
    pad: int = 0

    def regex(self) -> str:
        return r"(\d+)" if self.digits == 0 else rf"(\d{{{self.digits}}})"

    def text(self) -> str:
        return "{" + self.axis * max(1, self.digits or self.pad) + "}"


class TilePattern:
    """A parsed path pattern: folder components, each literal text and ``_Field`` parts."""

    def __init__(self, text: str, components: list[list[str | _Field]]) -> None:
        self.text = text
        self.components = components
        self.regexes = [
            re.compile("".join(p.regex() if isinstance(p, _Field) else re.escape(p) for p in parts))
            for parts in components
        ]

    @classmethod
    def parse(cls, text: str) -> TilePattern:
        """``{z}``/``{y}``/``{x}`` (any digits) or ``{zzz}`` (exactly that many); the rest literal."""
        clean = text.strip().replace("\\", "/")
        if not clean or clean.startswith("/"):
            raise WKWError(
                f"tile pattern {text!r} must be a path relative to the stack folder, like {{z}}/{{y}}/{{x}}.jpg"
            )
        components: list[list[str | _Field]] = []
        for component in clean.split("/"):
            if component in ("", ".", ".."):
                raise WKWError(f"tile pattern {text!r} has an empty, '.' or '..' folder")
            components.append(_parse_component(component, text))
        axes = {p.axis for parts in components for p in parts if isinstance(p, _Field)}
        missing = [axis for axis in AXES if axis not in axes]
        if missing:
            raise WKWError(
                f"tile pattern {text!r} does not say where {' and '.join(missing)} are (e.g. {{z}}/{{y}}/{{x}}.jpg)"
            )
        return cls(clean, components)

    def fields(self) -> Iterator[tuple[int, int, _Field]]:
        for c, parts in enumerate(self.components):
            for i, part in enumerate(parts):
                if isinstance(part, _Field):
                    yield c, i, part

    def format(self, x: int, y: int, z: int) -> str:
        """The relative path of tile (x, y) of slice z."""
        values = {"x": x, "y": y, "z": z}
        return "/".join(
            "".join(f"{values[p.axis]:0{max(1, p.pad)}d}" if isinstance(p, _Field) else p for p in parts)
            for parts in self.components
        )

    def with_pads(self, pads: dict[tuple[int, int], int]) -> TilePattern:
        """The same pattern with the zero-padding found on disk for each ``{z}`` field."""
        components = [list(parts) for parts in self.components]
        for (c, i), pad in pads.items():
            part = components[c][i]
            assert isinstance(part, _Field)
            components[c][i] = _Field(part.axis, part.digits, pad)
        resolved = TilePattern(self.text, components)
        resolved.text = "/".join(
            "".join(p.text() if isinstance(p, _Field) else p for p in parts) for parts in components
        )
        return resolved


def _parse_component(component: str, pattern: str) -> list[str | _Field]:
    parts: list[str | _Field] = []
    position = 0
    for match in _TOKEN.finditer(component):
        parts.append(component[position : match.start()])
        name = match.group(1)
        if not name or len(set(name)) != 1 or name[0] not in AXES:
            raise WKWError(
                f"tile pattern {pattern!r}: {{{name}}} is not a number field "
                "(write {z}, {y}, {x} for any digits or {zzz} for exactly three)"
            )
        digits = 0 if len(name) == 1 else len(name)
        parts.append(_Field(name[0], digits, pad=digits))
        position = match.end()
    parts.append(component[position:])
    parts = [p for p in parts if p != ""]
    for part in parts:
        if isinstance(part, str) and ("{" in part or "}" in part):
            raise WKWError(f"tile pattern {pattern!r} has an unmatched brace in {component!r}")
    for before, after in zip(parts, parts[1:]):
        if isinstance(before, _Field) and isinstance(after, _Field) and 0 in (before.digits, after.digits):
            raise WKWError(f"tile pattern {pattern!r}: two number fields side by side need fixed widths ({{zzz}})")
    return parts


# ----------------------------------------------------------------------------- finding tiles


@dataclass
class _Scan:
    """What one walk over the stack found: the range of tile numbers and the first tile."""

    count: int = 0
    low: list[int] | None = None  # x, y, z
    high: list[int] | None = None
    first: tuple[int, int, int] | None = None  # (z, y, x) of the first tile
    first_path: str = ""
    total_bytes: int = 0
    newest_mtime_ns: int = 0
    columns: set[tuple[int, int]] = dataclasses.field(default_factory=set)  # (x, y) tile numbers present in any slice


def _walk(root: Path, pattern: TilePattern) -> Iterator[tuple[str, os.DirEntry, tuple[str, ...]]]:
    """Every file matching the pattern: (relative path, entry, text of each field in order)."""
    last = len(pattern.components) - 1

    def walk(folder: str, depth: int, texts: tuple[str, ...]) -> Iterator:
        regex = pattern.regexes[depth]
        try:
            entries = list(os.scandir(os.path.join(root, folder) if folder else root))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            match = regex.fullmatch(entry.name)
            if match is None:
                continue
            relative = f"{folder}/{entry.name}" if folder else entry.name
            if depth == last:
                if entry.is_file():
                    yield relative, entry, texts + match.groups()
            elif entry.is_dir():
                yield from walk(relative, depth + 1, texts + match.groups())

    yield from walk("", 0, ())


def _scan(root: Path, pattern: TilePattern) -> tuple[_Scan, TilePattern]:
    """Walk the stack once; the pattern comes back with the padding each ``{z}`` field uses."""
    scan = _Scan()
    fields = list(pattern.fields())
    axis_of = ["xyz".index(field.axis) for _, _, field in fields]
    widths: list[set[int]] = [set() for _ in fields]
    padded: list[set[int]] = [set() for _ in fields]
    low, high = [np.inf] * 3, [-np.inf] * 3
    for relative, entry, texts in _walk(root, pattern):
        xyz: list = [None, None, None]
        for axis, text in zip(axis_of, texts):
            value = int(text)
            if xyz[axis] is None:
                xyz[axis] = value
            elif xyz[axis] != value:
                break  # an axis named twice with two numbers: not a tile of this pattern
        else:
            for k, text in enumerate(texts):
                widths[k].add(len(text))
                if len(text) > 1 and text[0] == "0":
                    padded[k].add(len(text))
            stat = entry.stat()
            scan.count += 1
            scan.total_bytes += stat.st_size
            scan.newest_mtime_ns = max(scan.newest_mtime_ns, stat.st_mtime_ns)
            for axis in range(3):
                low[axis] = min(low[axis], xyz[axis])
                high[axis] = max(high[axis], xyz[axis])
            scan.columns.add((xyz[0], xyz[1]))
            zyx = (xyz[2], xyz[1], xyz[0])
            if scan.first is None or zyx < scan.first:
                scan.first, scan.first_path = zyx, relative
    if scan.count:
        scan.low, scan.high = [int(v) for v in low], [int(v) for v in high]
    pads = {}
    for (c, i, field), found, zero_padded in zip(fields, widths, padded):
        if field.digits or not zero_padded:
            continue
        if len(zero_padded) > 1 or min(found) < min(zero_padded):
            raise WKWError(
                f"{root}: the {{{field.axis}}} numbers are zero-padded to different widths "
                f"({', '.join(str(n) for n in sorted(found))} digits); give the width in the pattern, "
                f"e.g. {{{field.axis * min(zero_padded)}}}"
            )
        pads[(c, i)] = min(zero_padded)
    return scan, pattern.with_pads(pads)


def detect_tile_pattern(path: str | os.PathLike) -> str | None:
    """``{z}_{y}_{x}.<ext>`` if the folder holds such files, ``{z}/{y}/{x}.<ext>`` if it
    holds numbered folders of numbered folders of numbered images; else None.

    Looks at the folder's own names and at most a few numbered folders inside it.
    """
    root = Path(path)
    if not root.is_dir():
        return None
    flat: Counter = Counter()
    folders = []
    for entry in os.scandir(root):
        if entry.is_file():
            match = _FLAT_TILE.match(entry.name)
            if match and match.group(1).lower() in IMAGE_SUFFIXES:
                flat[match.group(1)] += 1
        elif _NUMBER.match(entry.name) and entry.is_dir():
            folders.append(entry.name)
    if flat:
        return "{z}_{y}_{x}" + flat.most_common(1)[0][0]
    for z_folder in sorted(folders, key=int)[:3]:
        rows = sorted((e.name for e in os.scandir(root / z_folder) if _NUMBER.match(e.name) and e.is_dir()), key=int)
        for y_folder in rows[:3]:
            suffixes: Counter = Counter()
            for entry in os.scandir(root / z_folder / y_folder):
                match = _NUMBERED_FILE.match(entry.name)
                if match and match.group(1).lower() in IMAGE_SUFFIXES and entry.is_file():
                    suffixes[match.group(1)] += 1
            if suffixes:
                return "{z}/{y}/{x}" + suffixes.most_common(1)[0][0]
    return None


def looks_like_tiled_stack(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder of tiles in one of the layouts :func:`detect_tile_pattern` knows."""
    try:
        return detect_tile_pattern(path) is not None
    except OSError:
        return False


# ----------------------------------------------------------------------------- decoding


def decode_tile(path: str) -> np.ndarray:
    """One tile as (height, width) or (height, width, 3), native byte order.

    Pillow for JPEG/PNG/BMP, tifffile for TIFF. A missing file raises FileNotFoundError;
    a file that cannot be decoded raises WKWError naming it.
    """
    try:
        data = _decode_tiff(path) if path.lower().endswith(TIFF_SUFFIXES) else _decode_pillow(path)
    except (FileNotFoundError, WKWError):
        raise
    except Exception as error:  # noqa: BLE001 - any decoder failure means the same to the user
        text = str(error).replace(f" {path!r}", "").replace(path, "the file").strip()
        reason = text.splitlines()[0] if text else type(error).__name__
        raise WKWError(f"{path}: not a readable image ({reason})") from None
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    if data.ndim not in (2, 3) or (data.ndim == 3 and data.shape[2] != 3):
        raise WKWError(f"{path}: a tile must be one grey or RGB image, this one has shape {data.shape}")
    return data.astype(data.dtype.newbyteorder("="), copy=False)


def _decode_pillow(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if image.mode in _PILLOW_MODES:
            image = image.convert(_PILLOW_MODES[image.mode])
        return np.asarray(image)


def _decode_tiff(path: str) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages.first
        data = page.asarray()
        axes = page.axes
    if axes.startswith("S") and data.ndim == 3:  # planar RGB: samples first
        data = np.moveaxis(data, 0, -1)
    if data.ndim == 3 and data.shape[2] == 4:  # RGBA: alpha dropped, as for Pillow's images
        data = data[:, :, :3]
    return data


# ----------------------------------------------------------------------------- the source


class TiledStackSource(VolumeSource):
    """A tiled stack; its voxel (0, 0, 0) is the top-left corner of the smallest tile numbers.

    Tiles must all have the first tile's size (the first: smallest z, then y, then x),
    except that tiles in the last column or row may be narrower or shorter: they are
    padded with zeros. Every tile must also have the first tile's voxel type and channels.

    A tile is decoded whole for any part of it, so the source is ``croppable`` only when
    tiles never straddle the 1024-voxel WKW files the engine cubes one by one (the tile
    edges divide 1024; placement is a multiple of them). Other tiles would be decoded once
    for every file they touch: 2048-pixel JPEG tiles took 2.9x the CPU time of 1024-pixel
    ones for the same volume; uncroppable, the engine reads each slice once per row of files.
    """

    def __init__(self, root: str | os.PathLike, pattern: str | None = None) -> None:
        root = Path(root).expanduser().absolute()
        if not root.exists():
            raise WKWError(f"{root}: no such folder")
        if not root.is_dir():
            raise WKWError(f"{root}: not a folder of tiles")
        detected = pattern is None
        if pattern is None:
            pattern = detect_tile_pattern(root)
            if pattern is None:
                raise WKWError(
                    f"{root}: no tiles found as {{z}}/{{y}}/{{x}}.<ext> folders or {{z}}_{{y}}_{{x}}.<ext> files "
                    "(jpg, png, bmp, tif); give --input-path-pattern"
                )
        scan, resolved = _scan(root, TilePattern.parse(pattern))
        if scan.count == 0 or scan.low is None or scan.high is None:
            raise WKWError(f"{root}: no tile matches the pattern {pattern}")
        self.root = str(root)
        self.pattern = resolved
        self.tile_count = scan.count
        self.tile_low: Vec3 = tuple(scan.low)  # type: ignore[assignment]
        self.tile_high: Vec3 = tuple(scan.high)  # type: ignore[assignment]
        self.first_tile = scan.first_path
        self._bytes, self._mtime_ns = scan.total_bytes, scan.newest_mtime_ns
        first = decode_tile(os.path.join(self.root, scan.first_path))
        self.tile_size = (first.shape[1], first.shape[0])  # width, height
        self.croppable = all(FILE_EDGE % edge == 0 for edge in self.tile_size)
        self._dtype = first.dtype
        self._channels = 1 if first.ndim == 2 else first.shape[2]
        nx, ny, nz = (high - low + 1 for low, high in zip(self.tile_low, self.tile_high))
        #: [ty, tx]: whether any slice has a tile there (files no tile reaches are not written)
        self.footprint = np.zeros((ny, nx), bool)
        for x, y in scan.columns:
            self.footprint[y - self.tile_low[1], x - self.tile_low[0]] = True
        w, h = self.tile_size
        self._size: Vec3 = (nx * w, ny * h, nz)
        how = "detected" if detected else "given"
        kind = f"{self._channels} x {self._dtype}" if self._channels > 1 else str(self._dtype)
        start = ", ".join(map(str, self.tile_low))
        self.description = (
            f"{self.tile_count} tiles {self.pattern.text} ({how}) in {self.root}: {w} x {h} {kind} pixels each, "
            f"{nx} x {ny} tiles from ({start}), {nz} slice{'' if nz == 1 else 's'}"
        )

    # ---- what the engine asks

    @property
    def size(self) -> Vec3:
        return self._size

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def num_channels(self) -> int:
        return self._channels

    @property
    def placement(self) -> Vec3:
        """Where source voxel (0, 0, 0) lands in the dataset: (xmin * width, ymin * height, zmin)."""
        x, y, z = self.tile_low
        return (x * self.tile_size[0], y * self.tile_size[1], z)

    def read(self, box: BoundingBox) -> np.ndarray:
        out = np.zeros(self.array_shape(box), self.dtype)
        (x0, y0, z0), (x1, y1, z1) = box.topleft, box.bottomright
        w, h = self.tile_size
        for z in range(max(z0, 0), min(z1, self.size[2])):
            for ty in range(max(y0, 0) // h, (min(y1, self.size[1]) - 1) // h + 1):
                for tx in range(max(x0, 0) // w, (min(x1, self.size[0]) - 1) // w + 1):
                    tile = self._tile(tx, ty, z)
                    if tile is None:
                        continue
                    left, top = tx * w, ty * h
                    xs = slice(max(x0, left), min(x1, left + tile.shape[1]))
                    ys = slice(max(y0, top), min(y1, top + tile.shape[0]))
                    if xs.start < xs.stop and ys.start < ys.stop:
                        out[z - z0, ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = tile[
                            ys.start - top : ys.stop - top, xs.start - left : xs.stop - left
                        ]
        return out

    def has_data(self, box: BoundingBox) -> bool:
        """Whether any tile lies under ``box`` in x and y (in any slice)."""
        w, h = self.tile_size
        (x0, y0, _), (x1, y1, _) = box.topleft, box.bottomright
        columns = self.footprint[max(0, y0 // h) : max(0, -(-y1 // h)), max(0, x0 // w) : max(0, -(-x1 // w))]
        return bool(columns.any())

    def fingerprint(self) -> dict:
        return {
            **super().fingerprint(),
            "root": self.root,
            "pattern": self.pattern.text,
            "tiles": self.tile_count,
            "tile_low": list(self.tile_low),
            "bytes": self._bytes,
            "newest_mtime_ns": self._mtime_ns,
        }

    # ---- tiles

    def tile_path(self, tx: int, ty: int, z: int) -> str:
        """The file of tile (tx, ty) of source slice z (numbers counted from the smallest tile)."""
        x0, y0, z0 = self.tile_low
        return os.path.join(self.root, self.pattern.format(x0 + tx, y0 + ty, z0 + z))

    def _tile(self, tx: int, ty: int, z: int) -> np.ndarray | None:
        """The decoded tile, checked against the first one; None where there is no file."""
        path = self.tile_path(tx, ty, z)
        try:
            tile = decode_tile(path)
        except FileNotFoundError:
            return None
        w, h = self.tile_size
        last_x, last_y = (high - low for low, high in zip(self.tile_low[:2], self.tile_high[:2]))
        height, width = tile.shape[:2]
        if (width != w and not (tx == last_x and width < w)) or (height != h and not (ty == last_y and height < h)):
            raise WKWError(
                f"{path}: the tile is {width} x {height} pixels, the first tile ({self.first_tile}) is {w} x {h} "
                "(only tiles in the last column or row may be smaller)"
            )
        channels = 1 if tile.ndim == 2 else tile.shape[2]
        if tile.dtype != self.dtype or channels != self.num_channels:
            raise WKWError(
                f"{path}: the tile has {channels} channel(s) of {tile.dtype}, the first tile ({self.first_tile}) "
                f"has {self.num_channels} of {self.dtype}"
            )
        return tile


def build_tile_specs(
    source: str | os.PathLike,
    *,
    layer_name: str = "color",
    pattern: str | None = None,
    category: str = "color",
    dtype: np.dtype | str | None = None,
) -> list[LayerSpec]:
    """The one layer of a tiled stack, placed where its smallest tile numbers say."""
    stack = TiledStackSource(source, pattern)
    return [LayerSpec(stack, layer_name, category=category, dtype=dtype, offset=stack.placement, mag=Mag(1, 1, 1))]


__all__ = [
    "TiledStackSource",
    "TilePattern",
    "build_tile_specs",
    "decode_tile",
    "detect_tile_pattern",
    "looks_like_tiled_stack",
]
