"""napari writers for WEBKNOSSOS annotations: labels (+ skeleton) as a ZIP, a skeleton as NML.

napari calls writers on the GUI thread; the "Save as WEBKNOSSOS annotation" wizard runs
the same :func:`annotation_task` in a worker, with progress and cancel. Only translation
lives here: what to write comes from the layers' data, scale, translate and the metadata
our readers put there (the original annotation's NML, its mags and segments), so a labels
layer opened from an annotation is saved with everything else that annotation held.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from .core.annotation_write import VolumeToWrite, is_pyramid, write_volume_annotation
from .core.errors import WKWError
from .core.geometry import Mag
from .core.nml import Nml, Segment, write_nml
from .core.skeleton_layers import nml_from_layers


def write_annotation(path: str, layer_data: list[tuple]) -> list[str]:
    """Labels (one at most) and points/shapes as one volume annotation ZIP."""
    return [str(annotation_task(path, layer_data)())]


def write_skeleton(path: str, layer_data: list[tuple]) -> list[str]:
    """Points (the nodes) and shapes (trees, bounding boxes) as an NML file."""
    path = _with_suffix(path, ".nml")
    if not layer_data:
        raise WKWError("nothing to save: select the nodes (points) and trees (shapes) of a skeleton")
    write_nml(nml_from_layers(layer_data, _template(layer_data)), path)
    return [str(path)]


def annotation_task(path: str | Path, layer_data: list[tuple]) -> Callable[..., Path]:
    """A call ``task(progress=None, cancel=None)`` that writes the annotation ZIP: everything
    is taken from the layers now (on the GUI thread), nothing touches them later."""
    path = _with_suffix(path, ".zip")
    labels = [item for item in layer_data if item[2] == "labels"]
    skeleton = [item for item in layer_data if item[2] in ("points", "shapes")]
    if len(labels) > 1:
        names = ", ".join(repr(meta.get("name")) for _, meta, _ in labels)
        raise WKWError(f"select one labels layer for a volume annotation, not {len(labels)} ({names})")
    if not labels:
        raise WKWError("a volume annotation needs a labels layer; save a skeleton alone as .nml")
    data, meta, _ = labels[0]
    template = _template(layer_data)
    if skeleton:
        template = nml_from_layers(skeleton, template)
    volume, voxel_size, unit = _volume(data, meta, template)
    mags = _mags(meta)
    dataset_name = _dataset_name(meta, template) or path.stem

    def task(progress=None, cancel=None) -> Path:
        return write_volume_annotation(
            path,
            volume,
            voxel_size=voxel_size,
            unit=unit,
            dataset_name=dataset_name,
            mags=mags,
            template=template,
            progress=progress,
            cancel=cancel,
        )

    return task


def _with_suffix(path: str | Path, suffix: str) -> Path:
    path = Path(path)
    return path if path.suffix.lower() == suffix else path.with_name(path.name + suffix)


def _template(layer_data: list[tuple]) -> Nml | None:
    """The NML our reader kept in a layer's metadata (parameters, skeleton), if any."""
    for _, meta, _ in layer_data:
        metadata = meta.get("metadata") or {}
        template = metadata.get("wk_nml") or metadata.get("nml")
        if isinstance(template, Nml):
            return template
    return None


def _volume(data, meta: dict, template: Nml | None) -> tuple[VolumeToWrite, tuple[float, float, float], str]:
    levels = list(data) if meta.get("multiscale") else [data]
    labels = levels[0]
    name = str(meta.get("name") or "Volume")
    if labels.ndim != 3:
        raise WKWError(f"labels {name!r} have {labels.ndim} dimensions; a volume annotation is 3D (z, y, x)")
    scale = np.asarray(meta.get("scale") or (1.0, 1.0, 1.0), dtype=float)[-3:]
    translate = np.asarray(meta.get("translate") or (0.0, 0.0, 0.0), dtype=float)[-3:]
    offset = translate / scale
    if not np.allclose(offset, np.round(offset), atol=1e-3):
        raise WKWError(f"labels {name!r} are translated by {tuple(translate)}, not by whole voxels of {tuple(scale)}")
    metadata = meta.get("metadata") or {}
    units = meta.get("units") or ()
    unit = str(units[-1]) if units and str(units[-1]) not in ("pixel", "px", "") else "nanometer"
    if template is not None and not units:
        unit = template.parameters.unit
    volume = VolumeToWrite(
        labels=labels,
        offset=tuple(int(v) for v in np.round(offset)[::-1]),  # type: ignore[arg-type]
        name=str(metadata.get("wk_volume") or name.split(" (")[0] or "Volume"),
        segments=_segments(meta, metadata),
        fallback_layer=metadata.get("wk_fallback_layer"),
    )
    return volume, tuple(float(v) for v in scale[::-1]), unit  # type: ignore[return-value]


def _segments(meta: dict, metadata: dict) -> list[Segment]:
    """The segments our reader kept, with the names and colours now in the layer's features."""
    kept = {segment.id: segment for segment in metadata.get("wk_segments") or []}
    features = meta.get("features")
    if features is not None and len(features) and "index" in features:
        ids = np.asarray(features["index"])
        names = np.asarray(features["name"]) if "name" in features else [None] * len(ids)
        for label, name in zip(ids, names):
            label = int(label)
            if label <= 0:
                continue
            name = None if name is None or (isinstance(name, float) and np.isnan(name)) or name == "" else str(name)
            segment = kept.get(label, Segment(id=label))
            kept[label] = replace(segment, name=name if name is not None else segment.name)
    return [kept[key] for key in sorted(kept)]


def _mags(meta: dict) -> list[Mag] | None:
    """The mags of the annotation or dataset the labels came from (WEBKNOSSOS expects the
    dataset's), when they form a pyramid from mag 1; else None (our default pyramid)."""
    metadata = meta.get("metadata") or {}
    names = metadata.get("wk_mags") or metadata.get("wkw_mags")
    try:
        mags = sorted((Mag.parse(name) for name in names or ()), key=Mag.sort_key)
    except ValueError:
        return None
    return mags if is_pyramid(mags) else None


def _dataset_name(meta: dict, template: Nml | None) -> str | None:
    metadata = meta.get("metadata") or {}
    if metadata.get("wk_dataset"):
        return str(metadata["wk_dataset"])
    if metadata.get("wkw_dataset"):
        return Path(str(metadata["wkw_dataset"])).name
    if template is not None and template.parameters.dataset_name:
        return template.parameters.dataset_name
    return None


__all__ = ["annotation_task", "write_annotation", "write_skeleton"]
