"""Operations on WEBKNOSSOS annotations: describe one, and cut one out of a dataset's layer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..core.annotation import Annotation
from ..core.annotation_write import VolumeToWrite, default_mags, is_pyramid, write_volume_annotation
from ..core.errors import WKWError
from ..core.geometry import BoundingBox, Mag
from ..core.nml import skeleton_summary
from ..core.progress import CancelToken, ProgressCallback
from .common import open_dataset
from .info import format_bytes


def annotation_info(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON-ready summary: the NML's skeleton and metadata, and per volume its data format,
    mags with their painted bucket counts, painted box and segments. Reads no voxels."""
    with Annotation.open(path) as annotation:
        volumes = []
        for volume in annotation.volumes:
            layer = volume.layer
            mags = []
            if layer is not None:
                for mag in layer.mags:
                    mags.append({"mag": mag.folder_name(), "buckets": int(len(volume.buckets(mag)))})
            painted = volume.data_box()
            nml_volume = next(
                (v for v in annotation.nml.volumes if (v.name or f"Volume {v.id}") == volume.volume_name), None
            )
            volumes.append(
                {
                    "name": volume.volume_name,
                    "data_format": volume.data_format,
                    "element_class": layer.properties.element_class if layer is not None else None,
                    "largest_segment_id": layer.properties.largest_segment_id if layer is not None else None,
                    "fallback_layer": nml_volume.fallback_layer if nml_volume is not None else None,
                    "segments": len(nml_volume.segments) if nml_volume is not None else 0,
                    "bounding_box": _box_json(layer.bounding_box) if layer is not None else None,
                    "painted_box": _box_json(painted) if painted.volume else None,
                    "mags": mags,
                }
            )
        parameters = annotation.nml.parameters
        return {
            "path": str(Path(annotation.path).absolute()),
            "bytes": Path(annotation.path).stat().st_size,
            "dataset": parameters.dataset_name,
            "organization": parameters.organization,
            "voxel_size": list(annotation.voxel_size),
            "unit": annotation.unit,
            "edit_position": list(parameters.edit_position) if parameters.edit_position else None,
            "skeleton": skeleton_summary(annotation.nml),
            "volumes": volumes,
        }


def _box_json(box: BoundingBox) -> dict[str, list[int]]:
    return {"topleft": list(box.topleft), "size": list(box.size)}


def format_annotation_info(info: dict[str, Any]) -> str:
    """:func:`annotation_info` as aligned, readable text."""
    voxel = " x ".join(f"{v:g}" for v in info["voxel_size"])
    skeleton = info["skeleton"]
    lines = [
        f"annotation  {info['path']} ({format_bytes(info['bytes'])})",
        f"dataset     {info['dataset'] or '(not named)'}"
        + (f" of {info['organization']}" if info.get("organization") else ""),
        f"voxel size  {voxel} {info['unit']} (x, y, z)",
        f"skeleton    {_count(skeleton, 'trees')} trees, {_count(skeleton, 'nodes')} nodes, "
        f"{_count(skeleton, 'edges')} edges, {_count(skeleton, 'comments')} comments, "
        f"{_count(skeleton, 'branchpoints')} branchpoints",
    ]
    boxes = skeleton.get("user_bounding_boxes") or []
    if boxes:
        lines.append(f"boxes       {len(boxes)} user bounding box(es)")
    for volume in info["volumes"]:
        lines += ["", f"volume {volume['name']!r}"]
        if volume["data_format"] is None:
            lines.append("  no data")
            continue
        lines.append(f"  format        {volume['data_format']}, {volume['element_class']}")
        largest = volume["largest_segment_id"]
        lines.append(
            f"  largest id    {'unknown' if largest is None else largest}, {volume['segments']} named segments"
        )
        if volume["fallback_layer"]:
            lines.append(f"  fallback      {volume['fallback_layer']}")
        box = volume["painted_box"]
        if box is None:
            lines.append("  painted       nothing")
        else:
            stop = [a + s for a, s in zip(box["topleft"], box["size"])]
            lines.append(f"  painted       {tuple(box['topleft'])} -> {tuple(stop)} (x, y, z, mag-1 voxels)")
        mags = ", ".join(f"{m['mag']} ({m['buckets']})" for m in volume["mags"])
        lines.append(f"  mags (buckets) {mags}")
    return "\n".join(lines) + "\n"


def _count(summary: dict, key: str) -> int:
    value = summary.get(key, 0)
    return len(value) if isinstance(value, list) else int(value or 0)


def export_annotation(
    dataset: str | os.PathLike,
    target: str | os.PathLike,
    layer_name: str,
    *,
    bbox: BoundingBox | None = None,
    volume_name: str | None = None,
    fallback_layer: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    threads: int | None = None,
) -> Path:
    """A box of a dataset's segmentation layer as a WEBKNOSSOS volume annotation ZIP.

    Mag 1 is read lazily (WKW or zarr); the annotation gets the layer's mags when they
    form a pyramid from mag 1, else the default pyramid. Buckets without a label are
    not stored.
    """
    source = open_dataset(dataset)
    if layer_name not in source.layers:
        known = ", ".join(sorted(source.layers)) or "none"
        raise WKWError(f"{source.path}: no layer {layer_name!r} (layers: {known})")
    layer = source.layers[layer_name]
    if layer.num_channels != 1 or layer.dtype.kind not in "ui":
        raise WKWError(
            f"{layer.path}: layer {layer_name!r} holds {layer.properties.element_class} voxels; a volume "
            "annotation holds integer labels"
        )
    if Mag(1, 1, 1) not in layer.mags:
        raise WKWError(f"{layer.path}: layer {layer_name!r} has no mag 1 to export")
    box = layer.bounding_box if bbox is None else bbox
    if box.intersection(layer.bounding_box).is_empty:
        raise WKWError(
            f"{layer.path}: the box {box.topleft}+{box.size} lies outside the layer's "
            f"{layer.bounding_box.topleft}+{layer.bounding_box.size}"
        )
    labels = layer.mags[Mag(1, 1, 1)].view(box)
    mags = sorted(layer.mags, key=Mag.sort_key)
    if not is_pyramid(mags):
        mags = default_mags(box, source.voxel_size)
    return write_volume_annotation(
        target,
        VolumeToWrite(labels, offset=box.topleft, name=volume_name or layer_name, fallback_layer=fallback_layer),
        voxel_size=source.voxel_size,
        unit=source.properties.unit,
        dataset_name=source.name,
        mags=mags,
        progress=progress,
        cancel=cancel,
        threads=threads,
    )
