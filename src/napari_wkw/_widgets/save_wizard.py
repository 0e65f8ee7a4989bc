"""Save as WKW, in the background: napari's File > Save runs writers on the GUI thread
with no progress, which freezes the viewer for a large layer; this wizard writes the
same dataset (the writer's own translation of layers) in a worker, with progress and
Cancel. The dataset is built in a hidden staging folder and moved in when complete."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import CheckBox, Select

from .fields import (
    format_triple,
    layer_voxel_size,
    name_from_folder,
    parse_triple,
    path_edit,
    path_of,
    selected_layer,
    set_path,
    sibling_output,
    voxel_size_edit,
)
from .wizard import Wizard

SAVABLE = ("Image", "Labels")


class SaveAsWKWWizard(Wizard):
    """Write image and labels layers as one WKW dataset with a pyramid and properties."""

    title = "saving"
    intro = (
        "Save image and labels layers as a WKW dataset (a layer per napari layer, with its pyramid) "
        "in the background. An existing dataset keeps its other layers."
    )
    run_text = "Save"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        self.viewer = viewer
        self.layers = Select(choices=self._layer_choices, label="layers", allow_multiple=True)
        self.layers.native.setMaximumHeight(110)
        self.output = path_edit("dataset folder", mode="d", tooltip="New folder, empty folder or a WKW dataset")
        self.voxel_size = voxel_size_edit("Voxel size x, y, z in nm; prefilled from the first layer's scale")
        self.pyramid = CheckBox(value=True, text="build the pyramid (mags 2-2-1, 4-4-2 ...)")
        self.compress = CheckBox(value=True, text="LZ4-compress")
        super().__init__(viewer, [self.layers, self.output, self.voxel_size, self.pyramid, self.compress])
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)
        self.layers.changed.connect(self._fill_defaults)
        active = selected_layer(viewer)
        if active is not None and type(active).__name__ in SAVABLE:
            self.layers.value = [active.name]
        self.validate()

    def _savable(self) -> list:
        return [layer for layer in self.viewer.layers if type(layer).__name__ in SAVABLE]

    def _layer_choices(self, _widget=None) -> list[str]:
        return [layer.name for layer in self._savable()]

    def _refresh(self, *_) -> None:
        self.layers.reset_choices()

    def chosen(self) -> list:
        names = set(self.layers.value or ())
        return [layer for layer in self._savable() if layer.name in names]

    def _fill_defaults(self, *_) -> None:
        """Voxel size and folder from the first chosen layer, unless the user typed them."""
        chosen = self.chosen()
        if not chosen:
            return
        first = chosen[0]
        if not self.voxel_size.value.strip():
            size = layer_voxel_size(first)
            if size is not None:
                self.voxel_size.value = format_triple(size)
        if path_of(self.output) is None:
            set_path(self.output, _default_folder(first))

    def problems(self) -> list[str]:
        found = []
        chosen = self.chosen()
        if not chosen:
            found.append("choose the layers to save")
        output = path_of(self.output)
        if output is None:
            found.append("choose the dataset folder")
        else:
            from ..core.locate import looks_like_wkw

            if output.is_file():
                found.append(f"{output} is a file; a WKW dataset is a folder")
            elif output.is_dir() and any(output.iterdir()) and not looks_like_wkw(output):
                found.append(f"{output} is neither empty nor a WKW dataset; choose another folder")
        try:
            parse_triple(self.voxel_size.value, "voxel size")
        except ValueError as error:
            found.append(str(error))
        for layer in chosen:
            if getattr(layer, "rgb", False) and layer.data.shape[-1] == 4:
                found.append(f"layer {layer.name!r} is RGBA; WKW stores RGB (3 x uint8), so drop the alpha first")
        return found

    def task(self):
        from .._writer import array_layers
        from ..core.save import save_dataset

        voxel_size = parse_triple(self.voxel_size.value, "voxel size")
        tuples = [layer.as_layer_data_tuple() for layer in self.chosen()]  # GUI thread: reads no voxels
        layers = array_layers(tuples)
        if voxel_size is not None:
            for layer in layers:
                layer.voxel_size, layer.unit = voxel_size, "nanometer"
        path, pyramid, compress, jobs = path_of(self.output), self.pyramid.value, self.compress.value, self.jobs()
        self._saved = [layer.name for layer in layers]

        def run(progress, cancel):
            from ..jobs.runner import Runner

            with Runner(jobs, progress, cancel) as runner:
                return save_dataset(
                    path, layers, compress=compress, pyramid=pyramid, runner=runner, progress=progress, cancel=cancel
                )

        return run

    def succeeded(self, path: Path) -> str:
        return f"saved {', '.join(self._saved)} as a WKW dataset in {path}"


def _default_folder(layer) -> Path:
    """Next to the file the layer came from, else in the home folder."""
    source = getattr(getattr(layer, "source", None), "path", None)
    name = layer.metadata.get("wkw_layer") or layer.name
    if source:
        return sibling_output(Path(source), "_wkw")
    return Path.home() / f"{name_from_folder(Path(name))}_wkw"
