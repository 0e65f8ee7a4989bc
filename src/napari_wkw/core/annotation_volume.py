"""The volume data of a WEBKNOSSOS annotation: a one-layer dataset read straight from its data ZIP.

Two variants of the data ZIP exist, and both open here:

- zarr3 (WEBKNOSSOS today): ``datasource-properties.json`` and, per mag,
  ``volumeAnnotationData/<mag>/zarr.json`` and 32^3 chunks ``c.0.<x>.<y>.<z>`` (blosc).
  tensorstore decodes them, through :class:`ZarrMagView`'s read-through store.
- WKW (older downloads): ``<mag>/header.wkw`` and one WKW file of a single 32^3 block
  per bucket, ``<mag>/z<z>/y<y>/x<x>.wkw``, decoded by :func:`decode_bucket`.

Nothing is unpacked: a read fetches only the buckets it touches from the ZIP. Viewer
reads are ``tolerant``: a corrupt bucket becomes zeros and one warning naming it.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import numpy as np

from .dataset import Dataset, Layer
from .element_class import element_class_for
from .errors import DatasetFormatError, WKWWarning
from .geometry import BoundingBox, Mag, Vec3
from .properties import PROPERTIES_FILE, DatasetProperties, LayerProperties, MagEntry, parse_properties
from .safe_zip import SafeZip
from .view import MagArray, array_shape, chunk_xy_for, dask_view
from .wkw_file import HEADER_SIZE, WKWHeader, decode_bucket
from .zarr_mag import ZarrMagView, annotation_zarr_metadata

#: the layer folder inside a zarr3 data ZIP, as WEBKNOSSOS names it
ANNOTATION_LAYER = "volumeAnnotationData"
BUCKET = 32
_WKW_BUCKET = re.compile(r"^z(\d+)/y(\d+)/x(\d+)\.wkw$")


def detect_format(data: SafeZip) -> str | None:
    """``"zarr3"`` or ``"wkw"`` from the data ZIP's entries; None when it holds neither."""
    names = data.names()
    if PROPERTIES_FILE in data or any(name.endswith("zarr.json") for name in names):
        return "zarr3"
    if any(name.endswith("/header.wkw") for name in names):
        return "wkw"
    return None


class _ZipKeys:
    """The entries of a data ZIP as a KeySource for zarr mags (absent entries are None)."""

    def __init__(self, data: SafeZip) -> None:
        self.data = data
        self.name = data.name

    def get(self, key: str) -> bytes | None:
        return self.data.read(key) if key in self.data else None


class BucketMagView:
    """A mag of a WKW-variant annotation: one WKW file (one 32^3 block) per bucket, in a ZIP."""

    def __init__(self, layer: Layer, mag: Mag, data: SafeZip, prefix: str, tolerant: bool) -> None:
        self.layer = layer
        self.mag = mag
        self.data = data
        self.prefix = prefix.rstrip("/") + "/"
        self.path = f"{data.name}!{self.prefix.rstrip('/')}"
        self.tolerant = tolerant
        self.header = WKWHeader.from_bytes(data.read(self.prefix + "header.wkw", HEADER_SIZE * 4), self.path)
        if self.header.block_len != BUCKET or self.header.file_len != 1:
            raise DatasetFormatError(
                f"{self.path}/header.wkw: buckets must be single {BUCKET}^3 blocks, the header says blocks of "
                f"{self.header.block_len} in files of {self.header.file_len}^3 blocks"
            )
        self.dtype = self.header.dtype
        self.num_channels = self.header.num_channels
        self._reported: set[str] = set()

    def __repr__(self) -> str:
        return f"BucketMagView({self.path})"

    @property
    def viewer_chunk(self) -> Vec3:
        xy = chunk_xy_for(self.header.voxel_bytes, BUCKET, 1024)
        return (xy, xy, BUCKET)

    def array_shape(self, box: BoundingBox) -> tuple[int, ...]:
        return array_shape(box, self.num_channels)

    def bucket_key(self, bx: int, by: int, bz: int) -> str:
        return f"{self.prefix}z{bz}/y{by}/x{bx}.wkw"

    def buckets(self) -> np.ndarray:
        """Bucket coordinates (x, y, z) present in the ZIP, as an (n, 3) array."""
        return _wkw_buckets(self.data.names(), self.prefix)

    def read(self, box: BoundingBox) -> np.ndarray:
        """Voxels of ``box`` (this mag's voxels); zeros where no bucket was painted."""
        out = np.zeros((*box.size[::-1], self.num_channels), self.dtype)
        for bucket in box.aligned((BUCKET,) * 3).chunks((BUCKET,) * 3):
            bx, by, bz = (a // BUCKET for a in bucket.topleft)
            key = self.bucket_key(bx, by, bz)
            if key not in self.data:
                continue
            voxels = self._decode(key)
            if voxels is not None:
                inner = bucket.intersection(box)
                out[inner.zyx_slices(box.topleft)] = voxels[inner.zyx_slices(bucket.topleft)]
        return out[..., 0] if self.num_channels == 1 else out

    def _decode(self, key: str) -> np.ndarray | None:
        where = f"{self.data.name}!{key}"
        try:
            return decode_bucket(self.data.read(key, HEADER_SIZE + 8 + 2 * self.header.block_bytes), self.header, where)
        except DatasetFormatError as error:
            if not self.tolerant:
                raise
            message = str(error)
            if message not in self._reported:
                self._reported.add(message)
                warnings.warn(f"{message}; showing zeros there", WKWWarning, stacklevel=3)
            return None

    def view(self, box: BoundingBox, on_error: str = "raise") -> MagArray:
        return MagArray(self, box, on_error=on_error)

    def lazy(self, box: BoundingBox, on_error: str = "raise"):
        return dask_view(self, box, on_error)


class ZipLayer(Layer):
    """The segmentation layer of a volume annotation: its mags are prefixes of the data ZIP."""

    dataset: AnnotationVolume

    def _mag_path(self, entry: MagEntry) -> str | None:  # type: ignore[override]
        """The ZIP folder of a mag: ``<layer>/<mag>`` for zarr3, ``<mag>`` for WKW buckets."""
        names = [entry.mag.folder_name(), str(entry.mag), str(entry.mag.x)]
        if self.dataset.data_format == "wkw":
            candidates = names
        else:
            candidates = [f"{self.name}/{name}" for name in names]
            if entry.path:
                candidates.insert(0, str(PurePosixPath(entry.path)))
        return next((c for c in candidates if c in self.dataset.mag_folders), None)

    @property
    def marker_file(self) -> str:
        return "header.wkw" if self.dataset.data_format == "wkw" else "zarr.json or chunks"

    def _open_mag(self, entry: MagEntry, prefix: str):  # type: ignore[override]
        volume = self.dataset
        if volume.data_format == "wkw":
            return BucketMagView(self, entry.mag, volume.data, prefix, volume.tolerant)
        metadata_key = f"{prefix}/zarr.json"
        if metadata_key in volume.data:
            metadata = _json(volume.data, metadata_key)
        else:  # older downloads carry chunks only: WEBKNOSSOS' layout is fixed
            extent = self.bounding_box.in_mag(entry.mag).bottomright
            metadata = annotation_zarr_metadata(self.dtype, tuple(max(1, v) for v in extent))  # type: ignore[arg-type]
        view = ZarrMagView.open_keys(self, entry.mag, _ZipKeys(volume.data), prefix, metadata)
        view.tolerant = volume.tolerant
        return view


class AnnotationVolume(Dataset):
    """One volume layer of an annotation as a dataset of one segmentation layer.

    ``data`` is its data ZIP (None for a volume without data); ``name`` the NML's
    volume name. The layer's bounding box is the dataset's box when the data ZIP's
    properties give one (zarr3), else the box of the painted buckets.
    """

    layer_class = ZipLayer

    def __init__(
        self,
        where: str,
        name: str,
        data: SafeZip | None,
        voxel_size: tuple[float, float, float],
        unit: str = "nanometer",
        *,
        data_format: str | None = None,
        largest_segment_id: int | None = None,
        tolerant: bool = False,
    ) -> None:
        self.data = data
        self.volume_name = name
        self.tolerant = tolerant
        self.data_format = data_format or (detect_format(data) if data is not None else None)
        if data is not None and self.data_format is None:
            raise DatasetFormatError(f"{data.name}: neither zarr3 chunks nor WKW buckets found in the volume data")
        if self.data_format not in (None, "wkw", "zarr3", "zarr"):
            raise DatasetFormatError(f"{where}: unknown volume data format {self.data_format!r}")
        self.mag_folders = _folders(data) if data is not None else set()
        self._buckets: dict[Mag, np.ndarray] = {}
        properties = DatasetProperties(name=name, voxel_size=voxel_size, unit=unit)
        if data is not None:
            layer = _zarr_layer_properties(data, self.mag_folders) if self.data_format != "wkw" else None
            layer = layer or _wkw_layer_properties(data, self.mag_folders)
            if largest_segment_id is not None:
                layer.largest_segment_id = largest_segment_id
            properties.layers = [layer]
        super().__init__(Path(data.name if data is not None else where), properties)

    @property
    def layer(self) -> Layer | None:
        """The volume's segmentation layer, or None when the annotation holds no data for it."""
        return next(iter(self.layers.values()), None)

    def buckets(self, mag: Mag | None = None) -> np.ndarray:
        """Bucket coordinates (x, y, z, in ``mag``'s bucket grid) present, as an (n, 3) array
        (listed from the entry names once per mag)."""
        layer = self.layer
        if layer is None or not layer.mags:
            return np.zeros((0, 3), np.int64)
        view = layer.mags[mag] if mag is not None else layer.finest_mag
        if view.mag not in self._buckets:
            if isinstance(view, BucketMagView):
                self._buckets[view.mag] = view.buckets()
            else:
                self._buckets[view.mag] = _zarr_buckets(self.data.names(), view.key_prefix)  # type: ignore[union-attr]
        return self._buckets[view.mag]

    def data_box(self) -> BoundingBox:
        """The mag-1 box the finest mag's painted buckets cover (empty when nothing is painted)."""
        layer = self.layer
        if layer is None or not layer.mags:
            return BoundingBox((0, 0, 0), (0, 0, 0))
        return _bucket_box(self.buckets(), layer.finest_mag.mag)


def _json(data: SafeZip, name: str) -> dict:
    try:
        value = json.loads(data.read(name, 1 << 20))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetFormatError(f"{data.name}!{name}: not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise DatasetFormatError(f"{data.name}!{name}: not a JSON object")
    return value


def _folders(data: SafeZip) -> set[str]:
    """Every folder of the ZIP that holds entries (``volumeAnnotationData/2-2-1``, ``1`` ...)."""
    return {name.rsplit("/", 1)[0] for name in data.names() if "/" in name}


def _wkw_buckets(names: Iterable[str], prefix: str) -> np.ndarray:
    """(x, y, z) of the bucket files ``z<z>/y<y>/x<x>.wkw`` under ``prefix``."""
    found = []
    for name in names:
        match = _WKW_BUCKET.match(name[len(prefix) :]) if name.startswith(prefix) else None
        if match:
            z, y, x = (int(v) for v in match.groups())
            found.append((x, y, z))
    return np.array(found, dtype=np.int64).reshape(-1, 3)


def _zarr_buckets(names: Iterable[str], prefix: str) -> np.ndarray:
    """(x, y, z) of the chunks under ``prefix`` (keys ``c.0.x.y.z`` or ``c/0/x/y/z``)."""
    found = []
    start = len(prefix) + 2
    for name in names:
        if name.startswith(prefix) and name[start - 2 : start - 1] == "c":
            parts = name[start:].replace("/", ".").split(".")
            if len(parts) == 4 and all(p.isdigit() for p in parts):
                found.append(parts[1:])
    return np.array(found, dtype=np.int64).reshape(-1, 3)


def _zarr_layer_properties(data: SafeZip, folders: set[str]) -> LayerProperties | None:
    """The layer described by the data ZIP's ``datasource-properties.json``; else inferred
    from its mags' ``zarr.json``; None when there is neither."""
    if PROPERTIES_FILE in data:
        where = Path(f"{data.name}!{PROPERTIES_FILE}")
        properties = parse_properties(data.read(PROPERTIES_FILE, 16 << 20), where)
        if len(properties.layers) != 1:
            raise DatasetFormatError(f"{where}: a volume's data must hold one layer, found {len(properties.layers)}")
        layer = properties.layers[0]
        layer.category = "segmentation"
        return layer
    mags = []
    for folder in sorted(folders):
        layer_name, _, mag_name = folder.rpartition("/")
        if f"{folder}/zarr.json" in data and layer_name:
            try:
                mags.append((Mag.parse(mag_name), _json(data, f"{folder}/zarr.json"), layer_name))
            except ValueError:
                continue
    if not mags:
        return None
    mags.sort(key=lambda item: item[0].sort_key())
    finest, metadata, layer_name = mags[0]
    dtype = np.dtype(metadata.get("data_type", "uint32"))
    buckets = _zarr_buckets(data.names(), f"{layer_name}/{finest.folder_name()}/")
    box = _bucket_box(buckets, finest)
    return LayerProperties(
        name=layer_name,
        category="segmentation",
        bounding_box=box,
        element_class=element_class_for(dtype),
        mags=[MagEntry(mag) for mag, _, _ in mags],
        data_format="zarr3",
    )


def _wkw_layer_properties(data: SafeZip, folders: set[str]) -> LayerProperties:
    mags = []
    for folder in folders:
        if f"{folder}/header.wkw" in data and "/" not in folder:
            try:
                mags.append(Mag.parse(folder))
            except ValueError:
                continue
    if not mags:
        raise DatasetFormatError(f"{data.name}: the volume data has no mag with a header.wkw")
    mags.sort(key=Mag.sort_key)
    finest = mags[0]
    header = WKWHeader.from_bytes(data.read(f"{finest.folder_name()}/header.wkw", HEADER_SIZE * 4), data.name)
    return LayerProperties(
        name=ANNOTATION_LAYER,
        category="segmentation",
        bounding_box=_bucket_box(_wkw_buckets(data.names(), f"{finest.folder_name()}/"), finest),
        element_class=element_class_for(header.dtype, header.num_channels),
        num_channels=header.num_channels,
        mags=[MagEntry(mag) for mag in mags],
        data_format="wkw",
    )


def _bucket_box(buckets: np.ndarray, mag: Mag) -> BoundingBox:
    if not len(buckets):
        return BoundingBox((0, 0, 0), (0, 0, 0))
    start = buckets.min(axis=0) * BUCKET
    stop = (buckets.max(axis=0) + 1) * BUCKET
    return BoundingBox.from_bounds(start, stop).from_mag(mag)
