"""The "which dataset, which layer" part of the wizards that work on an existing dataset."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import ComboBox

from ..core.errors import WKWError
from .fields import dataset_problem, path_edit, path_of, selected_dataset, set_path

ALL_LAYERS = "(all layers)"


class DatasetChoice:
    """A dataset folder field (default: the dataset of the selected layer) and a layer list
    that follows it. ``widgets`` go into the form; ``layer_name`` is None for all layers."""

    def __init__(self, viewer, label: str = "dataset", with_layer: bool = True, all_layers: bool = True) -> None:
        self.all_layers = all_layers
        self.dataset = path_edit(label, mode="d", tooltip="A WKW dataset folder (holds datasource-properties.json)")
        self.layer = ComboBox(choices=self._choices, label="layer", tooltip="The layer to work on")
        self.widgets = [self.dataset, self.layer] if with_layer else [self.dataset]
        self.dataset.changed.connect(self._refresh_layers)
        set_path(self.dataset, selected_dataset(viewer))

    @property
    def path(self) -> Path | None:
        return path_of(self.dataset)

    @property
    def layer_name(self) -> str | None:
        value = self.layer.value
        return None if value in (None, ALL_LAYERS) else value

    def problem(self) -> str | None:
        return dataset_problem(self.path)

    def layer_names(self) -> list[str]:
        """The layers of the chosen dataset, from its properties or its folders (cheap)."""
        from ..core.dataset import Dataset

        path = self.path
        if path is None or dataset_problem(path) is not None:
            return []
        try:
            return list(Dataset.open(path).layers)
        except (WKWError, OSError, ValueError):
            try:
                return list(Dataset.discover(path).layers)
            except (WKWError, OSError, ValueError):
                return []

    def _choices(self, _widget=None) -> list[str]:
        names = self.layer_names()
        return ([ALL_LAYERS] if self.all_layers or not names else []) + names

    def _refresh_layers(self, *_) -> None:
        self.layer.reset_choices()
