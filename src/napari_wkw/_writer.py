"""napari writer: image and labels layers -> one WKW dataset folder.

napari calls writers on the GUI thread without progress, so this stays a thin,
streaming translation into :func:`napari_wkw.core.save.save_dataset`.
"""

from __future__ import annotations

import re

from .core.save import ArrayLayer, save_dataset


def write_layers(path: str, layer_data: list[tuple]) -> list[str]:
    """Save every (data, meta, layer_type) as one WKW layer; returns the dataset path.
    The pyramid is built on threads, one per core."""
    from .jobs.runner import JobSettings, Runner

    with Runner(JobSettings("threads")) as runner:
        return [str(save_dataset(path, array_layers(layer_data), runner=runner))]


def array_layers(layer_data: list[tuple]) -> list[ArrayLayer]:
    """napari's (data, meta, layer_type) tuples as layers to save, with unique folder-safe
    names (shared by this writer and the Save as WKW wizard)."""
    return _unique_names([_array_layer(data, meta, layer_type) for data, meta, layer_type in layer_data])


def _array_layer(data, meta: dict, layer_type: str) -> ArrayLayer:
    levels = list(data) if meta.get("multiscale") else [data]
    rgb = bool(meta.get("rgb")) and layer_type == "image"
    spatial = levels[0].ndim - (1 if rgb else 0)
    name = _layer_name(_original_name(meta) or meta.get("name") or layer_type)
    if spatial > 3:
        extra = levels[0].shape[: spatial - 3]
        if any(n != 1 for n in extra):
            raise ValueError(
                f"layer {name!r} has {spatial} dimensions {levels[0].shape}; WKW stores 3D volumes, "
                "so save one time point or channel at a time"
            )
        levels = [level.reshape(level.shape[spatial - 3 :]) for level in levels]
    elif spatial == 2:
        levels = [level[None] for level in levels]
    scale = _last3(meta.get("scale"), fill=None)
    translate = _last3(meta.get("translate"), fill=0.0)
    offset = tuple(int(round(t / s)) for t, s in zip(translate, scale))
    unit = _unit(meta.get("units"))
    return ArrayLayer(
        name=name,
        category="segmentation" if layer_type == "labels" else "color",
        levels=levels,
        voxel_size=tuple(scale[::-1]),  # (z, y, x) -> (x, y, z)
        offset=offset[::-1],
        num_channels=levels[0].shape[-1] if rgb else 1,
        unit=unit,
    )


def _last3(values, fill: float | None) -> tuple[float, float, float]:
    """The (z, y, x) part of a napari per-axis tuple. A 2D layer's missing z gets
    ``fill``, or with ``fill=None`` the y value (a cubic voxel is the best guess)."""
    values = [float(v) for v in (values if values is not None else [])][-3:]
    while len(values) < 3:
        values.insert(0, fill if fill is not None else (values[0] if values else 1.0))
    return tuple(values)  # type: ignore[return-value]


def _unit(units) -> str:
    if not units:
        return "nanometer"
    unit = str(units[-1])
    return "nanometer" if unit in ("pixel", "px", "") else unit


def _original_name(meta: dict) -> str | None:
    """The WKW layer name for a layer our reader opened and the user did not rename."""
    original = (meta.get("metadata") or {}).get("wkw_layer")
    if original and str(meta.get("name", "")).startswith(f"{original} ("):
        return original
    return None


def _layer_name(name: str) -> str:
    """A folder-safe layer name (WEBKNOSSOS uses the folder name)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._")
    return cleaned or "layer"


def _unique_names(layers: list[ArrayLayer]) -> list[ArrayLayer]:
    seen: dict[str, int] = {}
    for layer in layers:
        count = seen.get(layer.name, 0)
        seen[layer.name] = count + 1
        if count:
            layer.name = f"{layer.name}_{count + 1}"
    return layers


__all__ = ["array_layers", "write_layers"]
