"""What a dataset holds: layers, mags, voxel types, boxes, compression and bytes on disk.

Only headers and file names are read (plus the sizes the file system reports), so this
is instant even for datasets far larger than memory.
"""

from __future__ import annotations

import os
from typing import Any

from ..core.dataset import HEADER_FILE, Layer, MagView
from ..core.properties import PROPERTIES_FILE
from ..core.wkw_file import BLOCK_LZ4, BLOCK_LZ4HC, BLOCK_RAW, file_path
from ..core.zarr_mag import ZarrMagView
from .common import open_dataset

COMPRESSION_NAMES = {BLOCK_RAW: "raw", BLOCK_LZ4: "lz4", BLOCK_LZ4HC: "lz4hc"}


def dataset_info(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON-ready summary of the dataset at ``path``.

    Keys: ``path``, ``name``, ``voxel_size`` ([x, y, z]), ``unit``, ``has_properties``,
    ``bytes`` (all data and header files) and ``layers``, each with ``name``,
    ``category``, ``element_class``, ``dtype`` (per channel), ``num_channels``,
    ``bounding_box`` (``topleft`` and ``size``, x/y/z in mag-1 voxels),
    ``data_format`` (wkw, zarr3 or zarr; for zarr mags, chunks stand for blocks and shards
    for files), ``largest_segment_id`` (segmentation only, else None), ``bytes``, ``missing_mags``
    (listed in the properties but not on disk) and ``mags`` (finest first), each with
    ``mag`` ("2-2-1"), ``path``, ``compression`` (raw, lz4 or lz4hc), ``block_len``,
    ``file_len`` (blocks per file edge), ``file_size`` (voxels per file edge), ``files``
    (data files present) and ``bytes``.
    """
    dataset = open_dataset(path)
    layers = [_layer_info(layer) for layer in dataset.layers.values()]
    return {
        "path": str(dataset.path.absolute()),
        "name": dataset.name,
        "voxel_size": list(dataset.voxel_size),
        "unit": dataset.properties.unit,
        "has_properties": (dataset.path / PROPERTIES_FILE).is_file(),
        "bytes": sum(layer["bytes"] for layer in layers),
        "layers": layers,
    }


def _layer_info(layer: Layer) -> dict[str, Any]:
    mags = [_mag_info(view) for view in layer.mags.values()]
    box = layer.bounding_box
    return {
        "name": layer.name,
        "category": layer.category,
        "element_class": layer.properties.element_class,
        "data_format": layer.properties.data_format,
        "dtype": str(layer.dtype),
        "num_channels": layer.num_channels,
        "bounding_box": {"topleft": list(box.topleft), "size": list(box.size)},
        "largest_segment_id": layer.properties.largest_segment_id if layer.category == "segmentation" else None,
        "bytes": sum(mag["bytes"] for mag in mags),
        "missing_mags": [
            e.mag.folder_name()
            for e in sorted(layer.properties.mags, key=lambda e: e.mag.sort_key())
            if e.mag not in layer.mags
        ],
        "mags": mags,
    }


def _mag_info(view: MagView | ZarrMagView) -> dict[str, Any]:
    if isinstance(view, ZarrMagView):
        return _zarr_mag_info(view)
    files = view.files()
    size = (view.path / HEADER_FILE).stat().st_size
    for coords in files:
        size += file_path(view.path, *coords).stat().st_size
    header = view.header
    return {
        "mag": view.mag.folder_name(),
        "path": str(view.path),
        "compression": COMPRESSION_NAMES.get(header.block_type, str(header.block_type)),
        "block_len": header.block_len,
        "file_len": header.file_len,
        "file_size": header.file_size,
        "files": len(files),
        "bytes": size,
    }


def _zarr_mag_info(view: ZarrMagView) -> dict[str, Any]:
    """The zarr counterpart of a WKW mag's summary: chunk and shard edges instead of blocks
    and files (a shard plays the part of a WKW file)."""
    stored = [p for p in view.path.rglob("*") if p.is_file()]
    chunk, shard = view.chunk_shape_xyz, view.shard_shape_xyz
    return {
        "mag": view.mag.folder_name(),
        "path": str(view.path),
        "compression": view.compression,
        "block_len": chunk[0],
        "file_len": shard[0] // chunk[0],
        "file_size": shard[0],
        "files": sum(1 for p in stored if p.name not in ("zarr.json", ".zarray", ".zattrs")),
        "bytes": sum(p.stat().st_size for p in stored),
    }


def format_bytes(count: int) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _number(value: float) -> str:
    return f"{value:g}"


def _format_line(data_format: str) -> list[str]:
    return [] if data_format == "wkw" else [f"  data format   {data_format} (read only; a shard is a file)"]


def format_info(info: dict[str, Any]) -> str:
    """The summary of :func:`dataset_info` as aligned, readable text."""
    voxel = " x ".join(_number(v) for v in info["voxel_size"])
    lines = [
        f"dataset     {info['name']}",
        f"path        {info['path']}",
        f"voxel size  {voxel} {info['unit']} (x, y, z)"
        + ("" if info["has_properties"] else f"  (no {PROPERTIES_FILE}: discovered from the folders)"),
        f"layers      {len(info['layers'])}, {format_bytes(info['bytes'])} on disk",
    ]
    for layer in info["layers"]:
        box = layer["bounding_box"]
        stop = [a + s for a, s in zip(box["topleft"], box["size"])]
        channels = layer["num_channels"]
        kind = f"{layer['element_class']} ({channels} x {layer['dtype']})" if channels > 1 else layer["element_class"]
        lines += [
            "",
            f"layer {layer['name']!r}",
            f"  category      {layer['category']}",
            f"  element class {kind}",
            *_format_line(layer["data_format"]),
            f"  bounding box  topleft {tuple(box['topleft'])}, size {tuple(box['size'])} -> {tuple(stop)}"
            " (x, y, z, mag-1 voxels)",
        ]
        if layer["category"] == "segmentation":
            largest = layer["largest_segment_id"]
            lines.append(f"  largest id    {'unknown' if largest is None else largest}")
        lines.append(f"  on disk       {format_bytes(layer['bytes'])}")
        if layer["missing_mags"]:
            lines.append(f"  missing mags  {', '.join(layer['missing_mags'])} (listed, but no folder on disk)")
        rows = [("mag", "compression", "block", "file edge", "blocks/file", "files", "on disk")]
        for mag in layer["mags"]:
            rows.append(
                (
                    mag["mag"],
                    mag["compression"],
                    str(mag["block_len"]),
                    str(mag["file_size"]),
                    f"{mag['file_len']}^3",
                    str(mag["files"]),
                    format_bytes(mag["bytes"]),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            cells = [cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
            lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


__all__ = ["COMPRESSION_NAMES", "dataset_info", "format_bytes", "format_info"]
