"""KNOSSOS cube trees as a volume source.

A KNOSSOS mag folder holds 128^3-voxel cubes at ``x0001/y0002/z0003/<name>.raw``,
each a headerless file of little-endian voxels with x fastest, then y, then z (the
bytes of a C-order (z, y, x) array). A dataset root holds one such folder per mag
(``mag1/``, ``mag2/`` ...; KNOSSOS also writes ``<experiment>_mag1``, wkcuber wrote
``1``). ``knossos.conf`` (in the mag folder or the root) states the size (``boundary``),
the voxel size (``scale``) and the mag they refer to (``magnification``). Missing cubes
are empty space and read as zeros.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.element_class import WKW_DTYPES
from ..core.errors import DatasetFormatError, WKWError
from ..core.geometry import BoundingBox, Mag, Vec3
from .engine import LayerSpec
from .source import VolumeSource, file_fingerprint

CUBE_EDGE = 128
CONF_NAME = "knossos.conf"
#: cube file look-ups a source remembers (per process; a path each)
CUBE_FILE_CACHE = 65536
#: cube folder names along each axis: x0001 (more digits past 9999)
_AXIS_FOLDER = {axis: re.compile(rf"^{axis}(\d{{4,}})$") for axis in "xyz"}
#: mag folders: mag2, <experiment>_mag2, or a bare 2 as wkcuber wrote them
_MAG_FOLDER = re.compile(r"^(?:.*mag)?(\d+)$")
#: a cube file of another kind (KNOSSOS also stores JPEG/PNG cubes and segmentation overlays)
_OTHER_CUBE_FILE = re.compile(r"_x\d+_y\d+_z\d+\.")
#: ``key value;`` lines of knossos.conf (cubing tools also wrote ``key: value;``)
_CONF_LINE = re.compile(r"^\s*(experiment name|boundary [xyz]|scale [xyz]|magnification)\s*:?\s*(.*?)\s*;\s*$")


# ---- knossos.conf -------------------------------------------------------------------------


@dataclass(frozen=True)
class KnossosConf:
    """What a knossos.conf states; ``boundary`` and ``scale`` refer to ``magnification``."""

    path: str
    experiment: str | None
    boundary: Vec3 | None
    scale: tuple[float, float, float] | None
    magnification: int


def read_knossos_conf(path: str | os.PathLike) -> KnossosConf:
    """Parse ``path``; lines it does not know (ftp_mode, compression ...) are skipped."""
    path = Path(path)
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _CONF_LINE.match(line)
        if match:
            values[match.group(1)] = match.group(2)
    experiment = values.get("experiment name", "").strip('"') or None
    magnification = _conf_number(path, values, "magnification", int) if "magnification" in values else 1
    if magnification < 1:
        raise DatasetFormatError(f"{path}: magnification {magnification} must be positive")
    boundary = _conf_triple(path, values, "boundary", int)
    scale = _conf_triple(path, values, "scale", float)
    return KnossosConf(str(path), experiment, boundary, scale, magnification)  # type: ignore[arg-type]


def _conf_number(path: Path, values: dict[str, str], key: str, kind):
    text = values[key]
    try:
        number = float(text)
    except ValueError:
        raise DatasetFormatError(f"{path}: {key} {text!r} is not a number") from None
    if kind is int:
        if number != int(number):
            raise DatasetFormatError(f"{path}: {key} {text!r} is not a whole number")
        return int(number)
    return number


def _conf_triple(path: Path, values: dict[str, str], name: str, kind) -> tuple | None:
    keys = [f"{name} {axis}" for axis in "xyz"]
    present = [key for key in keys if key in values]
    if not present:
        return None
    if len(present) < 3:
        missing = ", ".join(key for key in keys if key not in values)
        raise DatasetFormatError(f"{path}: states {', '.join(present)} but not {missing}")
    triple = tuple(_conf_number(path, values, key, kind) for key in keys)
    if min(triple) <= 0:
        raise DatasetFormatError(f"{path}: {name} {triple} must be positive")
    return triple


# ---- finding the mag folder ---------------------------------------------------------------


def _subfolders(path: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as entries:
            return [entry for entry in entries if entry.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _is_mag_folder(path: Path) -> bool:
    """Holds at least one x????/ cube column folder."""
    return any(_AXIS_FOLDER["x"].match(entry.name) for entry in _subfolders(path))


def _mag_folders(root: Path) -> dict[int, Path]:
    """The KNOSSOS mag folders of a dataset root, by mag number."""
    found: dict[int, Path] = {}
    for entry in _subfolders(root):
        match = _MAG_FOLDER.match(entry.name)
        if match and int(match.group(1)) > 0 and _is_mag_folder(Path(entry.path)):
            mag = int(match.group(1))
            if mag in found:
                raise WKWError(f"{root}: two folders for KNOSSOS mag {mag}: {found[mag].name} and {entry.name}")
            found[mag] = Path(entry.path)
    return found


def looks_like_knossos(path: str | os.PathLike) -> bool:
    """Cheap test for auto-detection: a knossos.conf, mag folders of cubes, or cube folders."""
    path = Path(path)
    if path.is_file():
        return path.name == CONF_NAME
    if (path / CONF_NAME).is_file():
        return True
    if _first_cube_file(path) is not None:
        return True
    return any(
        _MAG_FOLDER.match(entry.name) and _first_cube_file(Path(entry.path)) is not None for entry in _subfolders(path)
    )


def _first_cube_file(mag_path: Path) -> Path | None:
    """A .raw file under the first x????/y????/z????/ folders, if there is one."""
    folder = mag_path
    for axis in "xyz":
        names = sorted(entry.name for entry in _subfolders(folder) if _AXIS_FOLDER[axis].match(entry.name))
        if not names:
            return None
        folder = folder / names[0]
    try:
        with os.scandir(folder) as entries:
            return next((Path(e.path) for e in entries if e.name.lower().endswith(".raw")), None)
    except OSError:
        return None


# ---- the source ---------------------------------------------------------------------------


class KnossosSource(VolumeSource):
    """The cubes of one KNOSSOS mag, read only where a box touches them.

    ``path`` is a mag folder, a dataset root (``mag`` picks the folder, default the
    finest) or a knossos.conf. Coordinates are voxels of that mag, from ``origin``:
    0 with a knossos.conf boundary, else the first cube present (as the reference
    converter places the layer).
    """

    croppable = True

    def __init__(self, path: str | os.PathLike, mag: int | None = None, dtype: str | np.dtype = "uint8") -> None:
        path = Path(path).expanduser().absolute()  # workers may run elsewhere; resuming compares it
        if path.is_file() and path.name == CONF_NAME:
            path = path.parent
        if not path.is_dir():
            raise WKWError(f"{path}: no such folder")
        self._dtype = _voxel_type(dtype)
        if _is_mag_folder(path):
            mag_path = path
            named = _MAG_FOLDER.match(path.name)
            # a mag folder inside a dataset root may leave the conf to the root
            conf = _conf_in(path) or (_conf_in(path.parent) if named else None)
            if mag is None:
                mag = int(named.group(1)) if named else conf.magnification if conf else 1
        else:
            mags = _mag_folders(path)
            if not mags:
                raise WKWError(
                    f"{path}: no KNOSSOS cubes (no x0000/y0000/z0000/ cube folders and no mag1/, mag2/ ... folders)"
                )
            if mag is None:
                mag = min(mags)
            if mag not in mags:
                listed = ", ".join(str(m) for m in sorted(mags))
                raise WKWError(f"{path}: no KNOSSOS mag {mag} (mags found: {listed})")
            mag_path = mags[mag]
            conf = _conf_in(mag_path) or _conf_in(path)
        if mag < 1:
            raise WKWError(f"{path}: mag {mag} must be positive")
        self.path = str(mag_path)
        self.mag = int(mag)
        self.conf = conf
        self.description = f"KNOSSOS cubes in {mag_path} (mag {self.mag})"
        #: where the layer lies in this mag's voxels: from 0 to the conf's boundary, else the cubes present
        self.data_box = self._box_from_conf() or self._box_from_cubes()

    # -- what the engine asks -------------------------------------------------------------

    @property
    def size(self) -> Vec3:
        return self.data_box.size

    @property
    def origin(self) -> Vec3:
        """The KNOSSOS voxel that source voxel (0, 0, 0) is (the layer's offset in this mag)."""
        return self.data_box.topleft

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def voxel_size(self) -> tuple[float, float, float] | None:
        """Mag-1 voxel size: the conf's scale refers to its own magnification."""
        if self.conf is None or self.conf.scale is None:
            return None
        return tuple(s / self.conf.magnification for s in self.conf.scale)  # type: ignore[return-value]

    @property
    def output_mag(self) -> Mag:
        return Mag(self.mag, self.mag, self.mag)

    def read(self, box: BoundingBox) -> np.ndarray:
        out = np.zeros(self.array_shape(box), self._dtype)
        shifted = BoundingBox(tuple(a + o for a, o in zip(box.topleft, self.origin)), box.size)  # type: ignore[arg-type]
        for part in shifted.chunks((CUBE_EDGE,) * 3):
            cube = tuple(a // CUBE_EDGE for a in part.topleft)
            data = self._read_cube_part(cube, part)  # type: ignore[arg-type]
            if data is not None:
                out[part.zyx_slices(shifted.topleft)] = data
        return out

    def has_data(self, box: BoundingBox) -> bool:
        """Whether any cube present lies under ``box`` (a stat per cube, no read)."""
        shifted = BoundingBox(tuple(a + o for a, o in zip(box.topleft, self.origin)), box.size)  # type: ignore[arg-type]
        return any(
            self.cube_file(tuple(a // CUBE_EDGE for a in part.topleft)) is not None  # type: ignore[arg-type]
            for part in shifted.chunks((CUBE_EDGE,) * 3)
        )

    def fingerprint(self) -> dict:
        conf = file_fingerprint(self.conf.path) if self.conf is not None else None
        return {**super().fingerprint(), "path": self.path, "mag": self.mag, "origin": list(self.origin), "conf": conf}

    # -- cubes ----------------------------------------------------------------------------

    def cube_folder(self, cube: Vec3) -> str:
        x, y, z = cube
        return os.path.join(self.path, f"x{x:04d}", f"y{y:04d}", f"z{z:04d}")

    def cube_file(self, cube: Vec3) -> str | None:
        """The cube's .raw file, or None where the cube is missing (empty space).

        Remembered per process: slice-by-slice reads ask for each cube up to 128 times.
        """
        cache = self.__dict__.setdefault("_cube_files", {})
        if cube in cache:
            return cache[cube]
        if len(cache) >= CUBE_FILE_CACHE:
            cache.clear()
        cache[cube] = found = self._find_cube_file(cube)
        return found

    def _find_cube_file(self, cube: Vec3) -> str | None:
        folder = self.cube_folder(cube)
        try:
            names = sorted(os.listdir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return None
        raw = [name for name in names if name.lower().endswith(".raw")]
        if len(raw) > 1:
            raise DatasetFormatError(f"{folder}: {len(raw)} .raw cubes ({', '.join(raw)}), expected one")
        if raw:
            return os.path.join(folder, raw[0])
        others = [name for name in names if _OTHER_CUBE_FILE.search(name)]
        if others:
            raise DatasetFormatError(
                f"{folder}: holds {others[0]} but no .raw cube (only uncompressed .raw KNOSSOS cubes can be converted)"
            )
        return None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_cube_files", None)  # found again by each process
        return state

    def _read_cube_part(self, cube: Vec3, part: BoundingBox) -> np.ndarray | None:
        """``part`` (inside one cube) as (z, y, x), reading only the cube's z-planes it spans."""
        path = self.cube_file(cube)
        if path is None:
            return None
        plane = CUBE_EDGE * CUBE_EDGE
        itemsize = self._dtype.itemsize
        origin = tuple(c * CUBE_EDGE for c in cube)
        (x0, x1), (y0, y1), (z0, z1) = ((a - o, b - o) for a, b, o in zip(part.topleft, part.bottomright, origin))
        descriptor = os.open(path, os.O_RDONLY)
        try:
            length = os.fstat(descriptor).st_size
            expected = plane * CUBE_EDGE * itemsize
            if length != expected:
                raise DatasetFormatError(
                    f"{path}: {length} bytes, but a {CUBE_EDGE}^3 cube of {self._dtype} has {expected}"
                    f" (is --dtype right?)"
                )
            data = os.pread(descriptor, (z1 - z0) * plane * itemsize, z0 * plane * itemsize)
        finally:
            os.close(descriptor)
        planes = np.frombuffer(data, self._dtype.newbyteorder("<")).reshape(z1 - z0, CUBE_EDGE, CUBE_EDGE)
        return planes[:, y0:y1, x0:x1].astype(self._dtype, copy=False)

    # -- size -----------------------------------------------------------------------------

    def _box_from_conf(self) -> BoundingBox | None:
        """From 0 to the conf's boundary in voxels of this mag (rounded up: a partial voxel is data)."""
        if self.conf is None or self.conf.boundary is None:
            return None
        factor = self.conf.magnification / self.mag
        size = tuple(max(1, math.ceil(b * factor)) for b in self.conf.boundary)
        return BoundingBox((0, 0, 0), size)  # type: ignore[arg-type]

    def _box_from_cubes(self) -> BoundingBox:
        """Without a boundary: from the first to the last cube present along each axis."""
        low, high = [math.inf] * 3, [-1] * 3
        root = Path(self.path)
        for x_entry in _subfolders(root):
            x = _AXIS_FOLDER["x"].match(x_entry.name)
            if not x:
                continue
            for y_entry in _subfolders(Path(x_entry.path)):
                y = _AXIS_FOLDER["y"].match(y_entry.name)
                if not y:
                    continue
                for z_entry in _subfolders(Path(y_entry.path)):
                    z = _AXIS_FOLDER["z"].match(z_entry.name)
                    if z:
                        cube = [int(m.group(1)) for m in (x, y, z)]
                        low = [min(a, c) for a, c in zip(low, cube)]
                        high = [max(a, c) for a, c in zip(high, cube)]
        if min(high) < 0:
            raise WKWError(f"{root}: no KNOSSOS cubes (no x0000/y0000/z0000/ folders)")
        start = [int(a) * CUBE_EDGE for a in low]
        stop = [(a + 1) * CUBE_EDGE for a in high]
        return BoundingBox.from_bounds(start, stop)


def _conf_in(folder: Path) -> KnossosConf | None:
    path = folder / CONF_NAME
    return read_knossos_conf(path) if path.is_file() else None


def _voxel_type(dtype: str | np.dtype) -> np.dtype:
    try:
        parsed = np.dtype(dtype)
    except TypeError:
        parsed = None
    if parsed is None or parsed.newbyteorder("=") not in WKW_DTYPES:
        names = ", ".join(str(d) for d in WKW_DTYPES)
        raise WKWError(f"KNOSSOS voxel type {dtype!r} is not one of {names}")
    return parsed.newbyteorder("=")


def build_knossos_specs(
    source: str | os.PathLike,
    *,
    layer_name: str = "color",
    mag: int | None = None,
    dtype: np.dtype | str | None = None,
    category: str = "color",
) -> list[LayerSpec]:
    """The one layer of a KNOSSOS dataset: mag ``mag`` (default the finest) as WKW mag ``mag``.

    Raw cubes carry no voxel type, so ``dtype`` (default uint8) is both how the cubes
    are read and how the layer is stored.
    """
    cubes = KnossosSource(source, mag=mag, dtype=dtype if dtype is not None else "uint8")
    return [LayerSpec(cubes, layer_name, category=category, offset=cubes.origin, mag=cubes.output_mag)]


__all__ = ["KnossosConf", "KnossosSource", "build_knossos_specs", "looks_like_knossos", "read_knossos_conf"]
