"""Zarr mags (zarr3 and zarr v2) of WEBKNOSSOS layers, decoded by tensorstore.

WEBKNOSSOS writes zarr3 today: datasets (``"dataFormat": "zarr3"``, usually sharded)
and volume annotations (32^3 chunks). Its arrays are (c, x, y, z) with a
``transpose {"order": "F"}`` codec, which zarr-python 3 refuses and tensorstore
reads, so tensorstore does all decoding here; this module only finds the arrays,
maps their axes to (z, y, x[, c]) and turns tensorstore's errors into ours.

Two kinds of storage: a folder (tensorstore reads the files itself), or a
:class:`KeySource` such as the entries of a ZIP. For the latter, the chunks a read
needs are copied (still encoded) into a tensorstore memory store just before the
read: tensorstore's own nested-ZIP store re-inflates a deflated inner ZIP for every
read, about 40x slower than a folder, while this path matches a folder's speed.
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from collections.abc import Callable
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .errors import DatasetFormatError, WKWWarning
from .geometry import BoundingBox, Mag, Vec3
from .view import MagArray, array_shape, chunk_xy_for, dask_view

if TYPE_CHECKING:
    import dask.array as da
    import tensorstore as ts

#: dataFormat of datasource-properties.json -> (tensorstore driver, metadata file)
ZARR_FORMATS = {"zarr3": ("zarr3", "zarr.json"), "zarr": ("zarr", ".zarray")}
#: encoded chunk bytes a read-through store keeps before it starts afresh
MEMORY_STORE_BYTES = 256 * 2**20


class KeySource(Protocol):
    """Encoded chunks by key (``volumeAnnotationData/1/c.0.3.4.1``); None when absent."""

    name: str

    def get(self, key: str) -> bytes | None: ...


def is_zarr_mag(folder: Path, data_format: str) -> bool:
    """Whether ``folder`` holds a zarr array of ``data_format`` (cheap: one stat)."""
    entry = ZARR_FORMATS.get(data_format)
    return entry is not None and (Path(folder) / entry[1]).is_file()


def _tensorstore():
    import tensorstore  # imported here: 0.2 s, and WKW-only users never need it

    return tensorstore


def _failure(where: str, error: Exception) -> DatasetFormatError:
    message = str(error).split("\n")[0]
    message = re.sub(r" \[tensorstore_spec='.*'\]$", "", message)  # its whole JSON spec: noise to a user
    return DatasetFormatError(f"{where}: cannot read zarr data ({message})")


class ZarrMagView:
    """One mag of a zarr layer: reads (z, y, x[, c]) arrays of any box, lazily viewable.

    ``axis_order`` maps ``x``, ``y``, ``z`` (and ``c``) to the array's dimensions; by
    default it comes from the array's ``dimension_names`` and else is (c, x, y, z), as
    WEBKNOSSOS writes. Further axes (time ...) are read at index 0, with a warning.
    """

    def __init__(
        self, layer, mag: Mag, path: Path | str, array: ts.TensorStore, axis_order: dict | None = None
    ) -> None:
        self.layer = layer
        self.mag = mag
        self.path = path
        self.axis_order = axis_order
        self._source: _ReadThrough | None = None
        #: for arrays read from a KeySource: where their keys start (``volumeAnnotationData/1/``)
        self.key_prefix: str | None = None
        #: a chunk that does not decode reads as zeros, with one warning (viewers of ZIP sources)
        self.tolerant = False
        self._reported: set[str] = set()
        self._view = zyxc_view(array, axis_order, str(path))
        self.dtype = np.dtype(self._view.dtype.numpy_dtype)
        self.num_channels = int(self._view.shape[3])

    def __repr__(self) -> str:
        return f"ZarrMagView({self.path})"

    @classmethod
    def open_folder(cls, layer, mag: Mag, folder: Path, data_format: str, axis_order: dict | None = None):
        """The zarr array in ``folder`` (its ``zarr.json`` or ``.zarray`` must exist)."""
        ts = _tensorstore()
        driver, _ = ZARR_FORMATS[data_format]
        spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(Path(folder).absolute()) + "/"}}
        try:
            array = ts.open(spec, read=True, open=True).result()
        except Exception as error:  # tensorstore raises ValueError with a multi-line message
            raise _failure(str(folder), error) from None
        return cls(layer, mag, Path(folder), array, axis_order)

    @classmethod
    def open_keys(cls, layer, mag: Mag, source: KeySource, prefix: str, metadata: dict, axis_order: dict | None = None):
        """A zarr3 array whose chunks come from ``source`` under ``prefix`` (e.g. a ZIP)."""
        where = f"{source.name}!{prefix.rstrip('/')}"
        through = _ReadThrough(source, prefix, metadata, lambda array: zyxc_view(array, axis_order, where))
        view = cls(layer, mag, where, through.array, axis_order)
        view._source = through
        view.key_prefix = through.prefix
        return view

    @property
    def shape_xyz(self) -> Vec3:
        z, y, x, _ = self._view.shape
        return (int(x), int(y), int(z))

    @property
    def chunk_shape_xyz(self) -> Vec3:
        """The array's read chunk (x, y, z): one inner chunk of a sharded array."""
        return _xyz_of(self._view.chunk_layout.read_chunk.shape)

    @property
    def shard_shape_xyz(self) -> Vec3:
        """The array's write chunk (x, y, z): a shard, or a chunk when not sharded."""
        return _xyz_of(self._view.chunk_layout.write_chunk.shape)

    @property
    def viewer_chunk(self) -> Vec3:
        """One chunk deep (as WKW blocks), up to a shard wide, within view.CHUNK_BYTES."""
        cx, _, cz = self.chunk_shape_xyz
        width = max(self.shard_shape_xyz[0], 1024)
        xy = max(cx, chunk_xy_for(self.dtype.itemsize * self.num_channels, cz, width))
        return (xy, xy, cz)

    @property
    def compression(self) -> str:
        """The array's compressor as a short name (``blosc-lz4``, ``zstd``, ``raw`` ...)."""
        names = []

        def walk(codecs) -> None:
            for codec in codecs or []:
                config = codec.get("configuration") or {}
                if codec.get("name") == "sharding_indexed":
                    walk(config.get("codecs"))
                elif codec.get("name") == "blosc":
                    names.append(f"blosc-{config.get('cname', 'lz4')}")
                elif codec.get("name") in ("zstd", "gzip"):
                    names.append(codec["name"])

        spec = self._view.codec.to_json()
        walk(spec.get("codecs"))
        if "compressor" in spec:  # zarr v2
            compressor = spec.get("compressor") or {}
            names.append(compressor.get("id", "raw") if not compressor.get("cname") else f"blosc-{compressor['cname']}")
        return "+".join(names) or "raw"

    @property
    def bounding_box(self) -> BoundingBox:
        return self.layer.bounding_box.in_mag(self.mag)

    def array_shape(self, box: BoundingBox) -> tuple[int, ...]:
        return array_shape(box, self.num_channels)

    def read(self, box: BoundingBox) -> np.ndarray:
        """Voxels of ``box`` (this mag's voxels); zeros outside the array and where no chunk is."""
        inner = box.intersection(BoundingBox((0, 0, 0), self.shape_xyz))
        data = None
        if not inner.is_empty:
            try:
                data = self._source.read(inner) if self._source is not None else read_box(self._view, inner)
            except DatasetFormatError:
                raise
            except Exception as error:
                if not self.tolerant:
                    raise _failure(str(self.path), error) from None
                data = self._read_chunk_by_chunk(inner)
        if inner != box:  # parts beyond the array read as zeros
            out = np.zeros((*box.size[::-1], self.num_channels), self.dtype)
            if data is not None:
                out[inner.zyx_slices(box.topleft)] = data
            data = out
        return data[..., 0] if self.num_channels == 1 else data

    def _read_chunk_by_chunk(self, box: BoundingBox) -> np.ndarray:
        """``box`` read one stored chunk at a time, so that only the chunks that fail to
        decode become zeros (each reported once)."""
        out = np.zeros((*box.size[::-1], self.num_channels), self.dtype)
        for chunk in box.chunks(self.chunk_shape_xyz):
            try:
                data = self._source.read(chunk) if self._source is not None else read_box(self._view, chunk)
            except Exception as error:
                message = str(_failure(f"{self.path} chunk at {chunk.topleft}", error))
                if message not in self._reported:
                    self._reported.add(message)
                    warnings.warn(f"{message}; showing zeros there", WKWWarning, stacklevel=4)
                continue
            out[chunk.zyx_slices(box.topleft)] = data
        return out

    def view(self, box: BoundingBox, on_error: str = "raise") -> MagArray:
        """A read-only array-like of ``box`` for viewers (see :class:`MagArray`)."""
        return MagArray(self, box, on_error=on_error)

    def lazy(self, box: BoundingBox, on_error: str = "raise") -> da.Array:
        """A dask array of ``box`` that reads nothing until computed."""
        return dask_view(self, box, on_error)


def read_box(view, box: BoundingBox) -> np.ndarray:
    """The (z, y, x, c) voxels of ``box`` from a :func:`zyxc_view`."""
    (x0, y0, z0), (x1, y1, z1) = box.topleft, box.bottomright
    return view[z0:z1, y0:y1, x0:x1, :].read().result()


def _xyz_of(shape_zyxc) -> Vec3:
    z, y, x = (int(v) for v in list(shape_zyxc)[:3])
    return (x, y, z)


def zyxc_view(array, axis_order: dict | None, where: str):
    """``array`` seen as (z, y, x, c) from 0, other axes fixed at their first index."""
    ts = _tensorstore()
    names = list(array.domain.labels)
    if not all(names):
        order = axis_order or ({"c": 0, "x": 1, "y": 2, "z": 3} if array.rank == 4 else {"x": 0, "y": 1, "z": 2})
        names = [""] * array.rank
        for axis, index in order.items():
            if not 0 <= int(index) < array.rank:
                raise DatasetFormatError(f"{where}: axis {axis} is dimension {index} of a {array.rank}-d array")
            names[int(index)] = axis
        names = [name or f"extra{i}" for i, name in enumerate(names)]
        array = array[ts.d[:].label[names]]
    missing = [axis for axis in "xyz" if axis not in names]
    if missing:
        raise DatasetFormatError(f"{where}: the array has no {'/'.join(missing)} axis (dimensions {names})")
    extra = [name for name in names if name not in ("x", "y", "z", "c")]
    if extra:
        warnings.warn(f"{where}: showing index 0 of axes {', '.join(extra)}", WKWWarning, stacklevel=3)
        for name in extra:
            array = array[ts.d[name][array.domain[name].inclusive_min]]
    if "c" not in names:
        array = array[ts.newaxis, ...][ts.d[0].label["c"]]
    return array[ts.d["z", "y", "x", "c"].transpose[:]].translate_to[0, 0, 0, 0]


class _ReadThrough:
    """A tensorstore array over a memory store that fetches its chunks from a KeySource.

    Before each read, the keys of the chunks (shards, for sharded arrays) it touches
    are looked up once and their encoded bytes put into the memory store; absent keys
    read as the fill value. Past MEMORY_STORE_BYTES the store starts afresh.
    """

    def __init__(self, source: KeySource, prefix: str, metadata: dict, make_view) -> None:
        self.source = source
        self.prefix = prefix.rstrip("/") + "/"
        self.metadata = dict(metadata)
        self._make_view = make_view
        self._key = _key_function(self.metadata, f"{source.name}!{self.prefix}")
        self._grid = [int(c) for c in self.metadata["chunk_grid"]["configuration"]["chunk_shape"]]
        self._names = list(self.metadata.get("dimension_names") or ["c", "x", "y", "z"][-len(self._grid) :])
        self._shape = [int(s) for s in self.metadata["shape"]]
        self._lock = threading.Lock()
        self._fresh()

    def _fresh(self) -> None:
        ts = _tensorstore()
        spec = {"driver": "zarr3", "kvstore": {"driver": "memory"}, "metadata": self.metadata, "create": True}
        try:
            self.array = ts.open(spec, context=ts.Context()).result()
        except Exception as error:
            raise _failure(f"{self.source.name}!{self.prefix}zarr.json", error) from None
        self._view = self._make_view(self.array)
        self._store = self.array.kvstore
        self._looked_up: set[str] = set()
        self._held = 0

    def read(self, box: BoundingBox) -> np.ndarray:
        """Fetch the missing chunks under the lock, decode outside it: reads of several
        threads decode in parallel. A store started afresh meanwhile keeps serving the
        view taken here, which still holds its chunks."""
        with self._lock:
            pieces = self._missing(box)
            size = sum(len(piece) for _, piece in pieces if piece is not None)
            if self._held and self._held + size > MEMORY_STORE_BYTES:
                self._fresh()
                pieces = self._missing(box)
                size = sum(len(piece) for _, piece in pieces if piece is not None)
            self._put(pieces, size)
            view = self._view
        return read_box(view, box)

    def _missing(self, box: BoundingBox) -> list[tuple[str, bytes | None]]:
        """(key, encoded bytes or None) of the chunks ``box`` needs that were not looked up."""
        keys = [key for key in self._keys_for(box) if key not in self._looked_up]
        return [(key, self.source.get(self.prefix + key)) for key in keys]

    def _put(self, pieces: list[tuple[str, bytes | None]], size: int) -> None:
        ts = _tensorstore()
        transaction = ts.Transaction()
        store = self._store.with_transaction(transaction)
        for key, piece in pieces:
            if piece is not None:
                store.write(key, piece)
        transaction.commit_sync()
        self._looked_up.update(key for key, _ in pieces)
        self._held += size

    def _keys_for(self, box: BoundingBox) -> list[str]:
        """Keys of the stored chunks (shards) that ``box`` (x, y, z voxels) touches."""
        spans = dict(zip("xyz", zip(box.topleft, box.bottomright)))
        ranges = [spans.get(name, (0, size)) for name, size in zip(self._names, self._shape)]
        per_axis = [range(lo // step, -(-hi // step)) for (lo, hi), step in zip(ranges, self._grid)]
        return [self._key(indices) for indices in product(*per_axis)]


def _key_function(metadata: dict, where: str) -> Callable[[tuple[int, ...]], str]:
    """The zarr3 chunk key of grid indices, from ``chunk_key_encoding``."""
    encoding = metadata.get("chunk_key_encoding") or {"name": "default"}
    name = encoding.get("name")
    separator = (encoding.get("configuration") or {}).get("separator", "/" if name == "default" else ".")
    if name == "default":
        return lambda indices: separator.join(["c", *(str(i) for i in indices)])
    if name == "v2":
        return lambda indices: separator.join(str(i) for i in indices) if indices else "0"
    raise DatasetFormatError(f"{where}: unknown chunk key encoding {json.dumps(encoding)}")


def annotation_zarr_metadata(dtype: np.dtype, shape_xyz: Vec3, chunk: int = 32) -> dict[str, Any]:
    """The zarr3 metadata of a WEBKNOSSOS volume-annotation mag: (c, x, y, z), 32^3 chunks,
    F-order transpose, blosc LZ4 with byte shuffle; ``.``-separated ``c.0.x.y.z`` keys."""
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": [1, *(int(v) for v in shape_xyz)],
        "data_type": np.dtype(dtype).name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1, chunk, chunk, chunk]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "."}},
        "fill_value": 0,
        "codecs": [
            {"name": "transpose", "configuration": {"order": "F"}},
            {"name": "bytes", "configuration": {"endian": "little"}},
            {
                "name": "blosc",
                "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle", "typesize": 1, "blocksize": 0},
            },
        ],
        "dimension_names": ["c", "x", "y", "z"],
    }
