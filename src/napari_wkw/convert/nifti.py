"""NIFTI volumes (``.nii``, ``.nii.gz``, NIfTI-1 and NIfTI-2) as volume sources, read with nibabel.

nibabel gives the voxels as an (x, y, z) array in Fortran order; a source maps boxes of
our (x, y, z) space onto slices of that array, through an optional reorientation to the
closest canonical (RAS+) axes, flips and a placement into an enforced bounding box, so
nothing but the box asked for is ever read.

A ``.nii.gz`` cannot be read at random places without decompressing from its start
(nibabel reopens the stream for every read: 76x one full decode for single slices of a
256^3 volume, 7x for 32-slice slabs of a 512^3 one; with ``indexed_gzip`` 1.4-2.5x in
order, 5x reversed, 12x for x/y quarters). Each process therefore decompresses the voxel
bytes once, in one sequential pass, into an unnamed temporary file (in ``TMPDIR``) and
reads boxes from there: 1-1.7x one decode in all those orders, and any orientation. The
file is freed with its last reader, and by the operating system when the process ends,
even when it is killed.
"""

from __future__ import annotations

import errno
import gzip
import os
import tempfile
import threading
import warnings
import weakref
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.errors import DatasetFormatError, WKWError, WKWWarning
from ..core.geometry import BoundingBox, Vec3
from .engine import LayerSpec
from .source import VolumeSource, file_fingerprint, length_in_nm

NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: bytes decompressed at once when a .nii.gz is unpacked into its temporary file
INFLATE_CHUNK = 16 * 2**20
#: slices checked at once when float segmentation data is checked for whole numbers
CHECK_SLICES = 16
AXES = "xyz"


# ---- recognising files ----------------------------------------------------------------------


def is_nifti_name(path: str | os.PathLike) -> bool:
    name = Path(path).name.lower()
    return name.endswith(NIFTI_SUFFIXES) and not name.startswith(".")


def _has_nifti_header(path: Path) -> bool:
    """Whether the file starts with a NIfTI-1 or NIfTI-2 single-file header."""
    import nibabel as nib

    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as file:
            head = file.read(540)
    except (OSError, EOFError, zlib.error):
        return False
    return nib.Nifti1Header.may_contain_header(head[:348]) or nib.Nifti2Header.may_contain_header(head)


def looks_like_nifti(path: str | os.PathLike) -> bool:
    """A ``.nii``/``.nii.gz`` file with a NIFTI header, or a folder holding such files directly."""
    path = Path(path).expanduser()
    if path.is_file():
        return is_nifti_name(path) and _has_nifti_header(path)
    if path.is_dir():
        return any(child.is_file() and is_nifti_name(child) and _has_nifti_header(child) for child in path.iterdir())
    return False


def find_nifti_files(folder: str | os.PathLike) -> list[Path]:
    """The NIFTI files in ``folder`` and its subfolders (as wkcuber), sorted by path."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_nifti_name(p))


def nifti_stem(path: str | os.PathLike) -> str:
    """``brain`` for ``brain.nii`` and ``brain.nii.gz``."""
    name = Path(path).name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else name[: -len(".nii")]


# ---- options --------------------------------------------------------------------------------


def parse_flip_axes(text: str | None) -> tuple[bool, bool, bool]:
    """``"x,z"`` (or wkcuber's indices ``"1,3"``) -> which of x, y, z to flip."""
    if not text:
        return (False, False, False)
    flips = [False, False, False]
    for part in (p.strip().lower() for p in text.split(",")):
        if part in ("x", "y", "z"):
            flips[AXES.index(part)] = True
        elif part in ("1", "2", "3"):
            flips[int(part) - 1] = True
        else:
            raise ValueError(f"flip axes must be a list of x, y, z (or 1, 2, 3), not {text!r}")
    return tuple(flips)  # type: ignore[return-value]


# ---- the source -----------------------------------------------------------------------------


class NiftiSource(VolumeSource):
    """One NIFTI volume: (x, y, z) voxels, or a trailing axis of size 1 that is dropped.

    ``canonical`` reorients to the closest RAS+ axes the header's affine gives, then
    ``flip`` reverses the chosen axes; ``box`` (size and placement only, its corner is
    the layer offset) pads the result with zeros or crops it: centred in x and y, from
    the start in z, as wkcuber's ``--enforce_bounding_box`` did.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        canonical: bool = False,
        flip: Sequence[bool] = (False, False, False),
        box: BoundingBox | None = None,
    ) -> None:
        self.path = str(Path(path).expanduser().absolute())
        self.canonical = bool(canonical)
        self.flip_axes = tuple(bool(f) for f in flip)
        self.enforced_box = box
        self.description = f"NIFTI file {self.path}"
        self.croppable = True
        self._proxy = None
        self._read_header()

    # -- header

    def _read_header(self) -> None:
        import nibabel as nib

        image = _load(self.path)
        header = image.header
        shape = tuple(int(n) for n in image.shape)
        if len(shape) > 3 and all(n == 1 for n in shape[3:]):
            shape = shape[:3]
        if len(shape) > 3:
            raise DatasetFormatError(
                f"{self.path}: a {len(shape)}D NIFTI ({' x '.join(map(str, shape))}) cannot be converted: "
                "only 3D volumes can (axes past the third must have size 1); split it into 3D files first"
            )
        self.disk_shape: Vec3 = tuple(shape + (1,) * (3 - len(shape)))  # type: ignore[assignment]
        proxy = image.dataobj
        raw = np.dtype(proxy.dtype)
        if raw.kind not in "uif" or raw.fields is not None:
            raise DatasetFormatError(
                f"{self.path}: voxels of type {_nifti_type_name(header, raw)} cannot be stored in WKW "
                "(only integer and floating-point volumes)"
            )
        self.raw_dtype = raw.str
        self.data_offset = int(proxy.offset)
        self.slope = float(proxy.slope)
        self.inter = float(proxy.inter)
        from nibabel.volumeutils import apply_read_scaling

        scaled = apply_read_scaling(np.zeros(0, raw), np.asanyarray(self.slope), np.asanyarray(self.inter)).dtype
        self._dtype = scaled.newbyteorder("=")
        self.compressed = self.path.lower().endswith(".gz")
        self._check_length()

        axes, reversed_ = (0, 1, 2), [False, False, False]
        if self.canonical:
            if int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0:
                warnings.warn(
                    f"{self.path}: the header states no orientation (qform and sform codes are 0); "
                    "nibabel's default axes (x flipped) are used",
                    WKWWarning,
                    stacklevel=3,
                )
            ornt = nib.orientations.io_orientation(image.affine)
            axes_list = [0, 1, 2]
            for disk_axis, (ours, direction) in enumerate(ornt[:3]):
                axes_list[int(ours)] = disk_axis
                reversed_[int(ours)] = direction < 0
            axes = tuple(axes_list)
        #: our axis j is the file's axis ``disk_axes[j]``, reversed where ``reversed_axes[j]``
        self.disk_axes: Vec3 = axes  # type: ignore[assignment]
        self.reversed_axes = tuple(r != f for r, f in zip(reversed_, self.flip_axes))
        self.data_size: Vec3 = tuple(self.disk_shape[a] for a in axes)  # type: ignore[assignment]

        zooms = [float(z) for z in header.get_zooms()[:3]]
        zooms += [1.0] * (3 - len(zooms))  # a 2D file: one slice
        self.zooms = tuple(zooms[a] for a in axes)
        self.unit = header.get_xyzt_units()[0]

        if self.enforced_box is None:
            self._size = self.data_size
            self.placement: Vec3 = (0, 0, 0)
        else:
            self._size = tuple(self.enforced_box.size)
            self.placement = (_centred(self._size[0], self.data_size[0]), _centred(self._size[1], self.data_size[1]), 0)

    def _check_length(self) -> None:
        """A truncated .nii would read as garbage at its end: refuse it up front."""
        if self.compressed:
            return
        needed = self.data_offset + self.data_bytes
        have = os.path.getsize(self.path)
        if have < needed:
            raise DatasetFormatError(f"{self.path}: truncated: the header needs {needed} bytes, the file has {have}")

    @property
    def data_bytes(self) -> int:
        return int(np.prod(self.disk_shape)) * np.dtype(self.raw_dtype).itemsize

    # -- VolumeSource

    @property
    def size(self) -> Vec3:
        return self._size  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def voxel_size(self) -> tuple[float, float, float] | None:
        """The header's voxel size (pixdim) in nm; unknown units are taken as nm, with a warning."""
        if min(self.zooms) <= 0 or not all(np.isfinite(self.zooms)):
            warnings.warn(
                f"{self.path}: the header's voxel size {_numbers(self.zooms)} is not usable; ignoring it",
                WKWWarning,
                stacklevel=2,
            )
            return None
        factor = length_in_nm(1.0, self.unit)
        if factor is None:
            warnings.warn(
                f"{self.path}: the header gives no length unit; taking its voxel size {_numbers(self.zooms)} as nm",
                WKWWarning,
                stacklevel=2,
            )
            factor = 1.0
        return tuple(float(z * factor) for z in self.zooms)  # type: ignore[return-value]

    def fingerprint(self) -> dict:
        return {
            **super().fingerprint(),
            **file_fingerprint(self.path),
            "canonical": self.canonical,
            "flip": list(self.flip_axes),
            "box": self.enforced_box.to_json() if self.enforced_box else None,
        }

    def read(self, box: BoundingBox) -> np.ndarray:
        out = np.zeros(self.array_shape(box), self.dtype)
        part = box.intersection(BoundingBox(self.placement, self.data_size))
        if part.is_empty:
            return out
        disk_slices: list[slice] = [slice(None)] * 3
        for ours, disk_axis in enumerate(self.disk_axes):
            start = part.topleft[ours] - self.placement[ours]
            stop = start + part.size[ours]
            if self.reversed_axes[ours]:
                length = self.disk_shape[disk_axis]
                start, stop = length - stop, length - start
            disk_slices[disk_axis] = slice(start, stop)
        block = np.asarray(self._array()[tuple(disk_slices)])
        block = block.transpose(self.disk_axes)
        flipped = tuple(axis for axis in range(3) if self.reversed_axes[axis])
        if flipped:
            block = np.flip(block, flipped)
        out[part.zyx_slices(box.topleft)] = block.transpose(2, 1, 0)
        return out

    # -- file access

    def _array(self):
        """nibabel's array proxy over the voxel bytes (3D, Fortran order, scaled on reading)."""
        if self._proxy is None:
            if self.compressed:
                self._proxy = _decompressed(self)
            else:
                from nibabel.arrayproxy import ArrayProxy

                spec = (self.disk_shape, np.dtype(self.raw_dtype), self.data_offset, self.slope, self.inter)
                # a new file handle per read: threads never share a file position
                self._proxy = ArrayProxy(self.path, spec, mmap=False, order="F", keep_file_open=False)
        return self._proxy

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_proxy"] = None  # open files stay in the process that opened them
        return state


def _centred(box_length: int, data_length: int) -> int:
    """Where data starts in a box along one axis: half the difference before it, rounded down."""
    if box_length >= data_length:
        return (box_length - data_length) // 2
    return -((data_length - box_length) // 2)


def _load(path: str):
    """The nibabel image of a NIFTI file, or one clear error naming the file."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    if not os.path.isfile(path):
        raise WKWError(f"{path}: no such file")
    try:
        image = nib.load(path)
    except (ImageFileError, nib.spatialimages.HeaderDataError, EOFError, zlib.error, gzip.BadGzipFile, ValueError) as e:
        raise DatasetFormatError(f"{path}: not a readable NIFTI file ({e})") from None
    if not isinstance(image, nib.Nifti1Image):  # NIfTI-2 images are NIfTI-1 images too; CIFTI ones are not
        raise DatasetFormatError(f"{path}: nibabel reads it as a {type(image).__name__}, not as a NIFTI volume")
    return image


def _nifti_type_name(header, dtype: np.dtype) -> str:
    try:
        return str(header.get_value_label("datatype"))
    except Exception:  # noqa: BLE001 - only for the message
        return str(dtype)


def _numbers(values) -> str:
    return ",".join(f"{v:g}" for v in values)


# ---- .nii.gz: decompressed once per process --------------------------------------------------

_decompressed_lock = threading.Lock()
#: the last file decompressed in this process: (path, size, mtime ...) -> array proxy over it
_decompressed_cache: dict[tuple, object] = {}


def _decompressed(source: NiftiSource):
    """An array proxy over an unnamed temporary file holding the voxel bytes of a .nii.gz.

    One per process and file, shared by every copy of the source (one proxy, so one lock
    around the shared file position), kept for the last file only: a conversion reads
    one layer at a time, and an old file is freed once no reader holds it any more.
    """
    from nibabel.arrayproxy import ArrayProxy

    stat = os.stat(source.path)
    spec = (source.disk_shape, np.dtype(source.raw_dtype), 0, source.slope, source.inter)
    key = (source.path, stat.st_size, stat.st_mtime_ns, source.data_offset, spec)
    with _decompressed_lock:
        if key not in _decompressed_cache:
            _decompressed_cache.clear()
            file = _inflate(source.path, source.data_offset, source.data_bytes)
            proxy = ArrayProxy(file, spec, mmap=False, order="F")
            weakref.finalize(proxy, file.close)  # freed with its last reader (or at exit)
            _decompressed_cache[key] = proxy
        return _decompressed_cache[key]


def _inflate(path: str, offset: int, nbytes: int):
    folder = tempfile.gettempdir()
    temporary = tempfile.TemporaryFile(prefix="napari-wkw-nifti-")  # noqa: SIM115 - returned open, to its readers
    try:
        with gzip.open(path, "rb") as stream:
            stream.seek(offset)
            remaining = nbytes
            while remaining:
                chunk = stream.read(min(remaining, INFLATE_CHUNK))
                if not chunk:
                    raise DatasetFormatError(
                        f"{path}: truncated: the header needs {nbytes} bytes of voxels, "
                        f"the file holds {nbytes - remaining}"
                    )
                temporary.write(chunk)
                remaining -= len(chunk)
        temporary.flush()
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        temporary.close()
        raise DatasetFormatError(f"{path}: broken gzip data ({e})") from None
    except OSError as e:
        temporary.close()
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise WKWError(
                f"{path}: no room in {folder} to decompress its {nbytes / 2**30:.1f} GiB of voxels; "
                "set TMPDIR to a folder with more space"
            ) from None
        raise
    except BaseException:
        temporary.close()
        raise
    return temporary


# ---- layer specs ----------------------------------------------------------------------------


def build_nifti_specs(
    source: str | os.PathLike,
    *,
    layer_name: str | None = None,
    category: str | None = None,
    is_segmentation: bool = False,
    dtype: np.dtype | str | None = None,
    color_file: str | os.PathLike | None = None,
    segmentation_file: str | os.PathLike | None = None,
    flip_axes: Sequence[bool] = (False, False, False),
    use_orientation_header: bool = False,
    enforce_bounding_box: BoundingBox | None = None,
) -> list[LayerSpec]:
    """Layer specs for one NIFTI file, or one per NIFTI file of a folder.

    One file: layer ``layer_name`` [default: color, or segmentation with
    ``is_segmentation``]. A folder: each file a layer named by its stem, except the
    ``color_file`` (layer ``color``) and the ``segmentation_file`` (``segmentation``).
    Segmentation layers stored from float voxels are checked to hold whole numbers
    and become uint32 unless ``dtype`` says otherwise.
    """
    from ..ops.metadata import guess_category

    path = Path(source).expanduser()
    if is_segmentation:
        if category == "color":
            raise WKWError("a layer cannot be both color and segmentation (--category color with --is-segmentation)")
        category = "segmentation"
    options = {"canonical": use_orientation_header, "flip": tuple(flip_axes), "box": enforce_bounding_box}
    offset = tuple(enforce_bounding_box.topleft) if enforce_bounding_box else (0, 0, 0)

    if path.is_file():
        if color_file or segmentation_file:
            raise WKWError(f"{path}: --color-file and --segmentation-file pick files of a folder, not of one file")
        name = layer_name or ("segmentation" if category == "segmentation" else "color")
        layers = [(path, name, category or guess_category(name))]
    elif path.is_dir():
        if layer_name:
            raise WKWError(
                f"{path}: a folder's layers are named by their files (or --color-file/--segmentation-file); "
                "--layer-name names the layer of one file"
            )
        layers = folder_layers(path, category, color_file, segmentation_file)
    else:
        raise WKWError(f"{path}: no such file or folder")

    specs = []
    for file, name, layer_category in layers:
        nifti = NiftiSource(file, **options)
        specs.append(
            LayerSpec(nifti, name, layer_category, _stored_dtype(nifti, layer_category, dtype), offset)  # type: ignore[arg-type]
        )
    return specs


def folder_layers(folder: Path, category, color_file, segmentation_file) -> list[tuple[Path, str, str]]:
    """(file, layer name, category) for each NIFTI file of ``folder``; the wizards list them too."""
    from ..ops.metadata import guess_category

    files = find_nifti_files(folder)
    if not files:
        raise WKWError(f"{folder}: holds no NIFTI files (.nii, .nii.gz)")
    chosen = {
        "color": _pick(folder, files, color_file, "--color-file"),
        "segmentation": _pick(folder, files, segmentation_file, "--segmentation-file"),
    }
    if chosen["color"] is not None and chosen["color"] == chosen["segmentation"]:
        raise WKWError(f"{chosen['color']}: cannot be both the color and the segmentation file")
    layers = []
    for file in files:
        role = next((role for role, picked in chosen.items() if picked == file), None)
        if role is not None:
            layers.append((file, role, role))
        else:
            stem = nifti_stem(file)
            layers.append((file, stem, category or guess_category(stem)))
    by_name: dict[str, list[Path]] = {}
    for file, name, _ in layers:
        by_name.setdefault(name, []).append(file)
    for name, same in by_name.items():
        if len(same) > 1:
            raise WKWError(
                f"{folder}: {', '.join(str(f.relative_to(folder)) for f in same)} would all become layer {name!r}; "
                "rename files or convert them one by one with --layer-name"
            )
    return layers


def _pick(folder: Path, files: list[Path], given, option: str) -> Path | None:
    """The file an option names: relative to the folder, or a path to one of its files."""
    if given is None:
        return None
    for candidate in (folder / given, Path(given).expanduser()):
        if candidate.is_file() and candidate.resolve() in {f.resolve() for f in files}:
            return next(f for f in files if f.resolve() == candidate.resolve())
    raise WKWError(
        f"{folder}: {option} {given} is not one of its NIFTI files "
        f"({', '.join(str(f.relative_to(folder)) for f in files[:5])}{' ...' if len(files) > 5 else ''})"
    )


def _stored_dtype(source: NiftiSource, category: str, dtype) -> np.dtype | None:
    """The voxel type to store: as asked, else the file's; float segmentations become uint32."""
    if category != "segmentation" or source.dtype.kind != "f":
        return np.dtype(dtype) if dtype is not None else None
    low, high = check_whole_numbers(source)
    if dtype is not None:
        return np.dtype(dtype)
    if low < 0 or high > np.iinfo(np.uint32).max:
        raise WKWError(
            f"{source.path}: segment ids {low:g}..{high:g} do not fit uint32; give --dtype (e.g. int64 or uint64)"
        )
    return np.dtype(np.uint32)


def check_whole_numbers(source: NiftiSource) -> tuple[float, float]:
    """The smallest and largest value of a float volume that must hold whole numbers (ids)."""
    low, high = np.inf, -np.inf
    x, y, z = source.size
    for start in range(0, z, CHECK_SLICES):
        box = BoundingBox((0, 0, start), (x, y, min(CHECK_SLICES, z - start)))
        data = source.read(box)
        bad = ~np.isfinite(data) | (data != np.floor(data))
        if bad.any():
            bz, by, bx = (int(v) for v in np.argwhere(bad)[0])
            value = data[bz, by, bx]
            raise WKWError(
                f"{source.path}: voxel {bx},{by},{start + bz} holds {value:g}, not a whole number, so the file "
                "cannot be a segmentation; convert it as color or round it first"
            )
        if data.size:
            low, high = min(low, float(data.min())), max(high, float(data.max()))
    return low, high


__all__ = [
    "NiftiSource",
    "build_nifti_specs",
    "folder_layers",
    "check_whole_numbers",
    "find_nifti_files",
    "looks_like_nifti",
    "parse_flip_axes",
]
