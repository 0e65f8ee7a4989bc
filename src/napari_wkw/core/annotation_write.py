"""Write labels as a WEBKNOSSOS volume annotation ZIP, the zarr3 variant WEBKNOSSOS writes today.

The ZIP holds the NML and ``data_0_<name>.zip``: ``datasource-properties.json``, and per
mag ``volumeAnnotationData/<mag>/zarr.json`` plus one 32^3 chunk ``c.0.<x>.<y>.<z>``
(blosc LZ4, F-order transpose) per bucket that holds a label. Empty buckets are not
stored; coarser mags are the mode of the finer ones, as WEBKNOSSOS computes them.

Streaming: the layer is cut into columns of ``32 x coarsest mag`` voxels in x and y
(so every coarse bucket lies inside one column), and each column is read one bucket
layer (32 slices) at a time. Each coarser mag collects the layers of the finer one it
needs, downsamples them and passes its own layer on; a layer that is all zeros is never
materialised or encoded. Memory is a few bucket layers of one column per thread,
whatever the size of the labels. tensorstore encodes the chunks (into a memory store
from which the bytes go into the ZIP), so the bytes are exactly what it reads back.
"""

from __future__ import annotations

import glob
import json
import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .downsample import default_coarsest_mag, downsample_data, plan_mags
from .errors import TargetExistsError, WKWError
from .geometry import BoundingBox, Mag, Vec3
from .nml import Nml, Parameters, Segment, Volume, nml_bytes
from .progress import CancelToken, ProgressCallback, ProgressReporter
from .staging import left_by_dead_process
from .threads import bounded_map
from .zarr_mag import annotation_zarr_metadata, zyxc_view

BUCKET = 32
LAYER = "volumeAnnotationData"
#: element classes WEBKNOSSOS accepts for volume annotations
VOLUME_DTYPES = tuple(np.dtype(name) for name in ("uint8", "uint16", "uint32", "uint64"))


@dataclass
class VolumeToWrite:
    """One volume layer to write: labels (z, y, x) at ``offset`` (x, y, z mag-1 voxels)."""

    labels: object  # numpy array or any array-like napari labels can be
    offset: Vec3 = (0, 0, 0)
    name: str = "Volume"
    segments: list[Segment] = field(default_factory=list)
    fallback_layer: str | None = None

    @property
    def box(self) -> BoundingBox:
        z, y, x = self.labels.shape[-3:]  # type: ignore[attr-defined]
        return BoundingBox(tuple(int(v) for v in self.offset), (int(x), int(y), int(z)))  # type: ignore[arg-type]


def annotation_dtype(dtype: np.dtype, name: str) -> np.dtype:
    """The WEBKNOSSOS element class for labels of ``dtype``: signed ints become the unsigned
    type of their width (negative labels are refused while writing), bool becomes uint8."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return np.dtype(np.uint8)
    if dtype.kind == "i":
        return np.dtype(f"uint{dtype.itemsize * 8}")
    if dtype in VOLUME_DTYPES:
        return dtype
    raise WKWError(f"labels {name!r} are {dtype}; a volume annotation holds unsigned integer labels")


def default_mags(box: BoundingBox, voxel_size: Sequence[float]) -> list[Mag]:
    """Mag 1 and the pyramid our datasets get (anisotropic, down to ~100 voxels across)."""
    return [Mag(1, 1, 1), *plan_mags(Mag(1, 1, 1), default_coarsest_mag(box.size), voxel_size)]


def write_volume_annotation(
    path: str | os.PathLike,
    volume: VolumeToWrite,
    *,
    voxel_size: Sequence[float],
    unit: str = "nanometer",
    dataset_name: str | None = None,
    mags: Sequence[Mag] | None = None,
    template: Nml | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    threads: int | None = None,
) -> Path:
    """Write ``volume`` as the annotation ZIP ``path`` and return it.

    ``template`` supplies everything but the volume (parameters, skeleton, meta), so a
    labels layer opened from an annotation is saved with the rest of that annotation.
    The ZIP is built beside ``path`` and renamed over it at the end: a cancelled or
    failed write leaves ``path`` as it was.
    """
    path = Path(path).expanduser().absolute()
    if path.suffix.lower() != ".zip":
        raise WKWError(f"{path}: a volume annotation is a .zip file")
    if path.is_dir():
        raise TargetExistsError(f"{path}: is a folder; choose a .zip file name")
    if len(volume.labels.shape) != 3:  # type: ignore[attr-defined]
        raise WKWError(f"labels {volume.name!r} have shape {volume.labels.shape}; a volume annotation is 3D (z, y, x)")
    if min(volume.offset) < 0:
        raise WKWError(
            f"labels {volume.name!r} start at voxel {tuple(volume.offset)} (x, y, z); WEBKNOSSOS "
            "coordinates cannot be negative"
        )
    dtype = annotation_dtype(volume.labels.dtype, volume.name)  # type: ignore[attr-defined]
    box = volume.box
    mags = sorted(mags or default_mags(box, voxel_size), key=Mag.sort_key)
    _check_mags(mags)
    inner_name = f"data_0_{_file_safe(volume.name)}.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):  # of runs that were killed
        if left_by_dead_process(stale):
            stale.unlink(missing_ok=True)
    inner_path = path.with_name(f".{path.name}.data.{os.getpid()}.partial")
    outer_path = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with zipfile.ZipFile(inner_path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as inner:
            largest = _write_chunks(inner, volume, box, dtype, mags, progress, cancel, threads or os.cpu_count() or 1)
            inner.writestr(
                "datasource-properties.json", json.dumps(_properties(box, dtype, mags, voxel_size, unit), indent=2)
            )
            for mag in mags:
                shape = box.in_mag(mag).bottomright
                inner.writestr(
                    f"{LAYER}/{mag.folder_name()}/zarr.json", json.dumps(annotation_zarr_metadata(dtype, shape))
                )
        nml = _nml(template, volume, box, inner_name, largest, voxel_size, unit, dataset_name or path.stem)
        with zipfile.ZipFile(outer_path, "w", zipfile.ZIP_DEFLATED) as outer:
            outer.writestr(f"{_file_safe(path.stem)}.nml", nml_bytes(nml))
            outer.write(inner_path, inner_name, compress_type=zipfile.ZIP_STORED)  # its chunks are compressed
        os.replace(outer_path, path)
    finally:
        inner_path.unlink(missing_ok=True)
        outer_path.unlink(missing_ok=True)
    return path


def is_pyramid(mags: Sequence[Mag]) -> bool:
    """Whether sorted ``mags`` start at mag 1 and each is the one before it times 1 or 2 per
    axis: the mags a volume annotation can hold, each computed from the one before."""
    return (
        bool(mags)
        and mags[0] == Mag(1, 1, 1)
        and all(
            coarser != finer and all(c in (f, 2 * f) for c, f in zip(coarser.xyz, finer.xyz))
            for finer, coarser in zip(mags, mags[1:])
        )
    )


def _check_mags(mags: list[Mag]) -> None:
    if not is_pyramid(mags):
        names = ", ".join(mag.folder_name() for mag in mags)
        raise WKWError(
            f"mags {names} are no pyramid from mag 1 (each mag must be the one before times 1 or 2 per axis)"
        )


def _file_safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return cleaned or "Volume"


def _properties(box: BoundingBox, dtype: np.dtype, mags: list[Mag], voxel_size, unit: str) -> dict:
    """The data ZIP's properties, shaped as WEBKNOSSOS writes them in its downloads."""
    return {
        "id": {"name": "", "team": ""},
        "dataLayers": [
            {
                "name": LAYER,
                "boundingBox": box.to_json(),
                "elementClass": dtype.name,
                "mags": [{"mag": list(mag.xyz), "axisOrder": {"x": 1, "y": 2, "z": 3, "c": 0}} for mag in mags],
                "numChannels": 1,
                "category": "segmentation",
                "dataFormat": "zarr3",
            }
        ],
        "scale": {"factor": [float(v) for v in voxel_size], "unit": unit},
    }


def _nml(template, volume: VolumeToWrite, box, inner_name, largest, voxel_size, unit, dataset_name) -> Nml:
    if template is not None:
        parameters = replace(template.parameters, voxel_size=tuple(float(v) for v in voxel_size), unit=unit)
        nml = replace(template, parameters=parameters)
    else:
        center = tuple(float(a + s // 2) for a, s in zip(box.topleft, box.size))
        parameters = Parameters(
            dataset_name=dataset_name, voxel_size=tuple(float(v) for v in voxel_size), unit=unit, edit_position=center
        )
        nml = Nml(parameters=parameters)
    nml.volumes = [
        Volume(
            id=0,
            name=volume.name,
            location=inner_name,
            fallback_layer=volume.fallback_layer,
            format="zarr3",
            largest_segment_id=int(largest),
            segments=list(volume.segments),
        )
    ]
    return nml


def _write_chunks(inner, volume, box, dtype, mags, progress, cancel, threads) -> int:
    """Encode every non-empty bucket of every mag into ``inner``; the largest label."""
    coarsest = mags[-1]
    column_size = (BUCKET * coarsest.x, BUCKET * coarsest.y)
    z_step = BUCKET * coarsest.z
    z0 = box.topleft[2] // z_step * z_step
    z1 = -(-box.bottomright[2] // z_step) * z_step
    columns = [
        (x, y)
        for x in range(box.topleft[0] // column_size[0] * column_size[0], box.bottomright[0], column_size[0])
        for y in range(box.topleft[1] // column_size[1] * column_size[1], box.bottomright[1], column_size[1])
    ]
    reporter = ProgressReporter(progress, len(columns), f"writing volume {volume.name!r}", cancel)
    largest = 0

    def encode_column(corner: tuple[int, int]) -> tuple[list[tuple[str, bytes]], int]:
        reporter.check()
        column = _Column(volume, box, dtype, mags, corner, column_size, cancel)
        return column.run(z0, z1), column.largest

    for chunks, top in bounded_map(encode_column, columns, max(1, min(threads, len(columns)))):
        for key, data in chunks:
            inner.writestr(key, data)
        largest = max(largest, top)
        reporter.advance()
    return largest


class _Column:
    """One column of the layer (all of z), streamed bucket layer by bucket layer."""

    def __init__(self, volume, box, dtype, mags, corner, size, cancel) -> None:
        self.labels = volume.labels
        self.name = volume.name
        self.box = box
        self.dtype = dtype
        self.mags = mags
        self.corner = corner
        self.size = size
        self.cancel = cancel
        self.largest = 0
        self.encoder = _Encoder(dtype, box, mags)
        #: per mag after the first: the finer mag's layers waiting to be downsampled
        self.pending: list[list[np.ndarray | None]] = [[] for _ in mags]

    def run(self, z0: int, z1: int) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        for z in range(z0, z1, BUCKET):
            if self.cancel is not None:
                self.cancel.raise_if_cancelled()
            self._emit(0, self._read(z), z, out)
        return out

    def _read(self, z: int) -> np.ndarray | None:
        """Mag-1 voxels of the bucket layer at ``z`` (zeros outside the labels), or None if all zero."""
        (x, y), (sx, sy) = self.corner, self.size
        want = BoundingBox((x, y, z), (sx, sy, BUCKET))
        inner = want.intersection(self.box)
        if inner.is_empty:
            return None
        part = np.asarray(self.labels[inner.zyx_slices(self.box.topleft)])
        if not part.any():
            return None
        if part.dtype.kind == "i" and part.min() < 0:
            raise WKWError(f"labels {self.name!r} hold the negative value {part.min()}; labels must be 0 or positive")
        self.largest = max(self.largest, int(part.max()))
        layer = np.zeros((BUCKET, sy, sx), self.dtype)
        layer[inner.zyx_slices(want.topleft)] = part
        return layer

    def _emit(self, level: int, data: np.ndarray | None, z: int, out: list) -> None:
        """Encode one bucket layer of mag ``level`` (its ``z`` in that mag's voxels) and feed the next mag."""
        mag = self.mags[level]
        if data is not None:
            x, y = (c // m for c, m in zip(self.corner, mag.xyz[:2]))
            out.extend(self.encoder.encode(level, data, (x, y, z)))
        if level + 1 == len(self.mags):
            return
        coarser = self.mags[level + 1]
        factor = tuple(c // f for c, f in zip(coarser.xyz, mag.xyz))
        waiting = self.pending[level + 1]
        waiting.append(data)
        if len(waiting) < factor[2]:
            return
        self.pending[level + 1] = []
        if all(part is None for part in waiting):
            down = None
        else:
            stack = np.concatenate(
                [np.zeros_like(next(p for p in waiting if p is not None)) if p is None else p for p in waiting]
            )
            down = downsample_data(stack, factor, "mode")
            down = down if down.any() else None
        self._emit(level + 1, down, (z - (len(waiting) - 1) * BUCKET) // factor[2], out)


class _Encoder:
    """tensorstore zarr3 arrays over a memory store, one per mag, that turn bucket layers
    into chunk bytes: only chunks holding a label are stored, each read out and dropped."""

    def __init__(self, dtype: np.dtype, box: BoundingBox, mags: list[Mag]) -> None:
        import tensorstore as ts

        self.views = []
        self.stores = []
        for mag in mags:
            shape = tuple(max(1, v) for v in box.in_mag(mag).bottomright)
            spec = {
                "driver": "zarr3",
                "kvstore": {"driver": "memory"},
                "metadata": annotation_zarr_metadata(dtype, shape),  # type: ignore[arg-type]
                "create": True,
            }
            array = ts.open(spec, context=ts.Context()).result()  # a memory store of its own
            self.views.append(zyxc_view(array, None, "annotation"))
            self.stores.append(array.kvstore)
        self.prefixes = [f"{LAYER}/{mag.folder_name()}/" for mag in mags]

    def encode(self, level: int, data: np.ndarray, corner: Vec3) -> Iterator[tuple[str, bytes]]:
        import tensorstore as ts

        x, y, z = corner
        sz, sy, sx = data.shape
        view = self.views[level]
        stop = [min(a + s, m) for a, s, m in zip((z, y, x), (sz, sy, sx), view.shape[:3])]
        clipped = data[: stop[0] - z, : stop[1] - y, : stop[2] - x]
        view[z : stop[0], y : stop[1], x : stop[2], 0].write(clipped).result()
        store = self.stores[level]
        keys = [key.decode() for key in store.list().result() if not key.endswith(b"zarr.json")]
        pieces = [(self.prefixes[level] + key, store.read(key).result().value) for key in keys]
        store.delete_range(ts.KvStore.KeyRange(inclusive_min="c.", exclusive_max="c/")).result()  # chunks only
        return iter(pieces)
