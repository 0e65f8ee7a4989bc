"""napari reader for WEBKNOSSOS annotations: volumes as labels, skeletons as points and paths.

Only translation lives here; opening, bucket reads and the NML are in :mod:`napari_wkw.core`.
A volume whose planes are small enough to paint (:data:`EDITABLE_PLANE` voxels) becomes
an editable labels layer over mag 1 (painted blocks stay in memory, the rest is read
from the ZIP on demand); a larger one is a read-only pyramid of all its mags.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .core.annotation import Annotation
from .core.annotation_volume import AnnotationVolume
from .core.editable import EditableVolume
from .core.errors import WKWWarning
from .core.geometry import BoundingBox, Mag
from .core.nml import Nml
from .core.skeleton_layers import bounding_box_layer_data, skeleton_layer_data

#: largest plane (x * y voxels) an annotation volume opens editable at mag 1 (4096^2)
EDITABLE_PLANE = 4096 * 4096
#: an empty volume opens as this much room (x, y, z voxels) around the edit position
EMPTY_ROOM = (1024, 1024, 64)
#: direct colormaps (WEBKNOSSOS' segment colours) only up to this many labels
COLORMAP_LABELS = 65536


def read_annotation(path: str | list[str]) -> list[tuple]:
    """Labels per volume, then the skeleton's nodes and paths, then the user bounding boxes."""
    if isinstance(path, list | tuple):
        path = path[0]
    annotation = Annotation.open(path, tolerant=True)
    layers = []
    if annotation.archive is not None:
        for volume in annotation.volumes:
            layers.append(volume_layer_data(annotation, volume))
    layers += skeleton_layer_data(annotation.nml, annotation.name)
    boxes = bounding_box_layer_data(annotation.nml, annotation.name)
    if boxes is not None:
        layers.append(boxes)
    if not layers:
        warnings.warn(f"{path}: the annotation holds no volume, tree or bounding box", WKWWarning, stacklevel=2)
    return layers


def volume_layer_data(annotation: Annotation, volume: AnnotationVolume) -> tuple:
    """(data, kwargs, "labels") of one volume: editable at mag 1 when it fits, else a pyramid."""
    voxel = np.array(annotation.voxel_size, dtype=float)
    layer = volume.layer
    box = _editable_box(annotation, volume)
    editable = box is not None
    if editable:
        base = None
        if layer is not None and layer.mags and Mag(1, 1, 1) in layer.mags and volume.data_box().volume:
            base = layer.mags[Mag(1, 1, 1)].view(box, on_error="warn")
        dtype = layer.dtype if layer is not None else np.dtype(np.uint32)
        data = EditableVolume(base, shape=box.size[::-1], dtype=dtype)
        mags = [m.folder_name() for m in layer.mags] if layer is not None else []
        origin, scale = box.topleft, voxel
    else:
        data = layer.view_pyramid(on_error="warn")
        data = data if len(data) > 1 else data[0]
        mags = [m.folder_name() for m in layer.mags]
        origin, scale = layer.aligned_box().topleft, voxel * np.array(layer.finest_mag.mag.xyz)
    nml_volume = next((v for v in annotation.nml.volumes if (v.name or f"Volume {v.id}") == volume.volume_name), None)
    kwargs: dict = {
        "name": f"{volume.volume_name} ({annotation.name})",
        "scale": tuple(float(v) for v in scale[::-1]),
        "translate": tuple(float(v) for v in (voxel * np.array(origin))[::-1]),
        "axis_labels": ("z", "y", "x"),
        "units": (annotation.unit,) * 3,
        "multiscale": isinstance(data, list),
        "metadata": {
            "wk_annotation": str(Path(annotation.path).absolute()),
            "wk_volume": volume.volume_name,
            "wk_dataset": annotation.dataset_name,
            "wk_mags": mags,
            "wk_voxel_size": tuple(annotation.voxel_size),
            "wk_fallback_layer": nml_volume.fallback_layer if nml_volume is not None else None,
            "wk_segments": list(nml_volume.segments) if nml_volume is not None else [],
            "wk_nml": _template(annotation.nml),
        },
    }
    if not editable:
        warnings.warn(
            f"{annotation.path}: volume {volume.volume_name!r} spans {layer.bounding_box.size[0]} x "
            f"{layer.bounding_box.size[1]} voxels per plane, too large to paint in napari; it opens read-only "
            "(napari-wkw export-annotation cuts a smaller box)",
            WKWWarning,
            stacklevel=2,
        )
    features, colormap = _segment_styles(nml_volume, layer.properties.largest_segment_id if layer else None)
    if features is not None:
        kwargs["features"] = features
    if colormap is not None:
        kwargs["colormap"] = colormap
    return data, kwargs, "labels"


def _editable_box(annotation: Annotation, volume: AnnotationVolume) -> BoundingBox | None:
    """The mag-1 box to paint in: the dataset's box from the data when it is small enough,
    else the painted buckets' box; room around the edit position when nothing is painted;
    None when the painted part is too large (or mag 1 is missing) to edit."""
    layer = volume.layer
    painted = volume.data_box()
    if layer is not None and layer.mags and Mag(1, 1, 1) not in layer.mags and painted.volume:
        return None
    for box in (layer.bounding_box if layer is not None else None, painted):
        if box is not None and box.volume and box.size[0] * box.size[1] <= EDITABLE_PLANE:
            return box
    if painted.volume:
        return None
    center = annotation.nml.parameters.edit_position or (0.0, 0.0, 0.0)
    start = tuple(max(0, int(c) - r // 2) // 32 * 32 for c, r in zip(center, EMPTY_ROOM))
    return BoundingBox(start, EMPTY_ROOM)  # type: ignore[arg-type]


def _template(nml: Nml) -> Nml:
    """The NML without its volumes: what saving the labels again keeps (parameters, skeleton)."""
    from dataclasses import replace

    return replace(nml, volumes=[])


def _segment_styles(nml_volume, largest: int | None) -> tuple[dict | None, dict | None]:
    """Segment names and colours as napari features (shown under the cursor) and, when
    there are colours and few enough labels, a direct colormap: WEBKNOSSOS' colours for
    the listed segments, napari's own for the rest."""
    if nml_volume is None or not nml_volume.segments:
        return None, None
    segments = sorted(nml_volume.segments, key=lambda s: s.id)
    features = {
        "index": np.array([s.id for s in segments], dtype=np.int64),
        "name": np.array([s.name or "" for s in segments], dtype=object),
        "color": np.array([_hex(s.color) for s in segments], dtype=object),
    }
    coloured = {s.id: s.color for s in segments if s.color is not None}
    top = max([largest or 0, *coloured]) if coloured else 0
    if not coloured or top >= COLORMAP_LABELS:
        return features, None
    from napari.utils.colormaps import label_colormap

    ids = np.arange(1, top + 1)
    cyclic = label_colormap().map(ids)
    colors: dict = {None: np.zeros(4), 0: np.zeros(4)}
    colors.update({int(i): c for i, c in zip(ids, cyclic)})
    colors.update({i: np.array(c, dtype=float) for i, c in coloured.items()})
    return features, colors


def _hex(color) -> str:
    if color is None:
        return ""
    return "#" + "".join(f"{int(round(max(0.0, min(1.0, c)) * 255)):02x}" for c in color[:3])
