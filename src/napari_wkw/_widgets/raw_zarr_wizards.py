"""Wizards converting a raw binary volume and zarr inputs into WKW (`napari-wkw convert-raw`,
`napari-wkw convert-zarr`), on the shared conversion form of ``conversion_form.py``."""

from __future__ import annotations

import warnings
from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, Container, LineEdit, SpinBox

from ..core.errors import WKWError
from .conversion_form import ConversionWizard, number_edit
from .fields import optional_int

#: voxel types a raw file is offered as (``>``: big-endian)
RAW_TYPES = (
    "uint8", "uint16", "int16", "uint32", "int32", "float32", "uint64", "int64", "float64", "int8",
    ">u2", ">i2", ">u4", ">i4", ">f4", ">f8",
)  # fmt: skip
ORDER_CHOICES = {"x fastest (F)": "F", "z fastest (C)": "C"}
ALL = "(all layers)"


def _stem(path: Path) -> Path:
    """``brain.ome.zarr`` -> ``brain``, ``vol.raw`` -> ``vol``: what defaults are named after."""
    name = path.name
    for suffix in (".zarr", ".ome", ".raw", ".bin", ".dat", ".img"):
        name = name[: -len(suffix)] if name.lower().endswith(suffix) else name
    return path.with_name(name or path.name)


class RawWizard(ConversionWizard):
    """A raw binary volume (voxels only) into a WKW layer (`napari-wkw convert-raw`)."""

    title = "raw conversion"
    intro = (
        "Convert a raw file of voxels (no header, or one skipped with the offset) into a WKW layer with its "
        "pyramid. Give its shape and voxel type: the file's size must match them exactly."
    )
    run_text = "Convert"
    input_label = "raw file"
    input_folders = False
    input_filter = "Raw volumes (*.raw *.bin *.dat *.img);;All files (*)"
    input_tooltip = "One file holding x * y * z voxels"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        self.shape = LineEdit(label="shape (voxels)", tooltip="Voxels along x, y, z, e.g. 1024, 1024, 512")
        self.shape.native.setPlaceholderText("x, y, z")
        self.file_dtype = ComboBox(
            choices=RAW_TYPES,
            value="uint8",
            label="file voxel type",
            tooltip="How each voxel is stored (>: big-endian)",
        )
        self.order = ComboBox(
            choices=tuple(ORDER_CHOICES),
            value="x fastest (F)",
            label="order",
            tooltip="x fastest: each z slice is one run of x*y voxels (WEBKNOSSOS' default, most raw exports); "
            "z fastest: C order of an (x, y, z) array",
        )
        self.offset = SpinBox(value=0, min=0, max=2**31 - 1, label="offset (bytes)", tooltip="Bytes to skip first")
        self.flip = [CheckBox(value=False, text=axis) for axis in "xyz"]
        self.flip_axes = Container(widgets=self.flip, layout="horizontal", labels=False, label="flip axes")
        self.flip_axes.margins = (0, 0, 0, 0)
        self.flip_axes.tooltip = "Reverse these axes"
        super().__init__(viewer, [self.shape, self.file_dtype, self.order, self.offset], [self.flip_axes])
        for field in (self.shape, self.file_dtype, self.offset):
            field.changed.connect(self._input_changed)
        self.validate()

    def inspect_key(self) -> object:
        return (super().inspect_key(), self.shape.value.strip(), self.file_dtype.value, int(self.offset.value))

    def inspect(self, path: Path) -> str:
        from ..convert.raw import RawSource, parse_shape

        if not path.is_file():
            raise WKWError(f"{path}: not a file")
        size = path.stat().st_size
        if not self.shape.value.strip():
            return f"a file of {size:,} bytes"
        try:
            shape = parse_shape(self.shape.value.replace(" ", ""))
        except ValueError as error:
            raise WKWError(str(error)) from None
        try:
            RawSource(path, shape, self.file_dtype.value, offset=int(self.offset.value))  # checks the file's size
        except WKWError as error:
            form = "check the shape, the file voxel type and the offset"
            raise WKWError(str(error).replace("check --shape, --dtype and --offset", form)) from None
        return f"a raw volume of {' x '.join(map(str, shape))} {self.file_dtype.value} voxels ({size:,} bytes)"

    def defaults_base(self, path: Path) -> Path:
        return _stem(path)

    def problems(self) -> list[str]:
        found = super().problems()
        if not self.shape.value.strip():
            found.append("give the shape x, y, z of the volume")
        return found

    def specs_builder(self):
        from ..convert.raw import build_raw_specs, parse_shape

        source, name = self.input_path, self.layer_name.value.strip()
        options = {
            "shape": parse_shape(self.shape.value.replace(" ", "")),
            "source_dtype": self.file_dtype.value,
            "layer_name": name,
            "category": self.conversion.category_value,
            "dtype": self.conversion.dtype_value,
            "order": ORDER_CHOICES[self.order.value],
            "offset": int(self.offset.value),
            "flip_axes": tuple(box.value for box in self.flip),
        }
        return lambda: build_raw_specs(source, **options)


class ZarrWizard(ConversionWizard):
    """Zarr arrays, OME-Zarr images and WEBKNOSSOS zarr datasets into WKW (`napari-wkw convert-zarr`)."""

    title = "zarr conversion"
    intro = (
        "Convert a zarr array (v2 or v3), an OME-Zarr image or a WEBKNOSSOS zarr dataset into WKW. The levels of "
        "a pyramid are copied as mags (not downsampled); a WEBKNOSSOS dataset keeps its layers and properties."
    )
    run_text = "Convert"
    input_label = "zarr folder"
    input_files = False
    input_tooltip = "A zarr array folder (zarr.json or .zarray), an OME-Zarr image, a WEBKNOSSOS dataset or layer"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        self.kind: str | None = None
        self._dataset_layers: list[str] = []
        self._names: tuple[object, list[str]] | None = None
        self.source_layer = ComboBox(
            choices=self._layer_choices, label="layers", tooltip="The dataset's layers to convert (names kept)"
        )
        self.axes = LineEdit(
            label="axes", tooltip="The array's dimensions, slowest first, e.g. zyx or czyx; empty: from the array"
        )
        self.axes.native.setPlaceholderText("from the array (else x, y, z)")
        self.channel_index = number_edit("channel", "all (one layer each)", "Only this channel of a c axis")
        super().__init__(viewer, [self.source_layer], [self.axes, self.channel_index])
        self.source_layer.changed.connect(self.validate)
        self.axes.changed.connect(self._input_changed)
        self.validate()

    def inspect_key(self) -> object:
        return (super().inspect_key(), self._axes_value_or_text())

    def _axes_value_or_text(self) -> str:
        return self.axes.value.replace(",", "").replace(" ", "").lower()

    def _axes(self) -> list[str] | None:
        text = self._axes_value_or_text()
        if not text:
            return None
        if len(set(text)) != len(text) or not set("xyz") <= set(text):
            raise ValueError(f"axes must name each dimension once and include x, y and z, e.g. zyx, not {text!r}")
        return list(text)

    def inspect(self, path: Path) -> str:
        from ..convert.zarr_source import describe_zarr, detect_zarr

        self.kind = None
        self.kind = detect_zarr(path)
        return describe_zarr(path)

    def defaults_base(self, path: Path) -> Path:
        return _stem(path)

    def input_changed(self, path: Path | None) -> None:
        from ..core.properties import read_properties

        dataset = path is not None and self.kind == "webknossos-dataset"
        self._dataset_layers = []
        if dataset:
            try:
                layers = read_properties(path / "datasource-properties.json").layers
                self._dataset_layers = [layer.name for layer in layers if layer.data_format in ("zarr3", "zarr")]
            except (WKWError, OSError):
                self._dataset_layers = []
        self.source_layer.reset_choices()
        self.source_layer.visible = dataset
        self.layer_name.enabled = self.layer_name.visible = not dataset
        if dataset:
            self._set_default(self.layer_name, "")

    def _layer_choices(self, _widget=None) -> list[str]:
        return [ALL, *getattr(self, "_dataset_layers", [])]

    def _picked_layer(self) -> str | None:
        return None if self.source_layer.value in (None, ALL) else self.source_layer.value

    def _options(self) -> dict:
        dataset = self.kind == "webknossos-dataset"
        return {
            "layer_name": self._picked_layer() if dataset else (self.layer_name.value.strip() or None),
            "category": self.conversion.category_value,
            "dtype": self.conversion.dtype_value,
            "axes": self._axes(),
            "channel_index": optional_int(self.channel_index, "channel"),
        }

    def layer_names(self) -> list[str]:
        """The layers the conversion writes (opens the arrays' metadata; remembered per form state)."""
        from ..convert.zarr_source import build_zarr_specs

        path = self.input_path
        if path is None:
            return super().layer_names()
        options = self._options()
        key = (str(path), repr(options))
        if self._names is None or self._names[0] != key:
            with warnings.catch_warnings():  # said by the run, in the worker; not on every keystroke
                warnings.simplefilter("ignore")
                self._names = (key, [spec.name for spec in build_zarr_specs(path, **options)])
        return self._names[1]

    def problems(self) -> list[str]:
        found = super().problems()
        for check in (self._axes, lambda: optional_int(self.channel_index, "channel")):
            try:
                check()
            except ValueError as error:
                found.append(str(error))
        return list(dict.fromkeys(found))

    def specs_builder(self):
        from ..convert.zarr_source import build_zarr_specs

        source, options = self.input_path, self._options()
        return lambda: build_zarr_specs(source, **options)

    def task(self):
        from ..convert.levels import convert_pyramids
        from ..convert.zarr_source import dataset_extra

        target, settings, jobs, build = self.output_path, self.conversion.settings(), self.jobs(), self.specs_builder()
        self._source = source = self.input_path
        self._names = None
        extra_wanted = self.kind == "webknossos-dataset"

        def run(progress, cancel):
            specs = build()
            cancel.raise_if_cancelled()
            extra = dataset_extra(source) if extra_wanted else None
            return convert_pyramids(
                target, specs, settings, dataset_extra=extra, jobs=jobs, progress=progress, cancel=cancel
            )

        return run


__all__ = ["RawWizard", "ZarrWizard"]
