"""Form pieces of the wizards that write a new folder from a dataset (compress into a copy,
recube, export TIFF) and read a list of mags from a line of text."""

from __future__ import annotations

import re
from pathlib import Path

from magicgui.widgets import FileEdit

from ..core.geometry import Mag
from .fields import new_folder_problem, parse_mag_text, path_edit, path_of, set_path, sibling_output


class OutputFolder:
    """A new-folder field whose default, ``<dataset><suffix>`` next to the dataset, follows
    the dataset field until the user types a folder of their own."""

    def __init__(self, source: FileEdit, suffix: str, label: str = "output folder", tooltip: str = "") -> None:
        self.source = source
        self.suffix = suffix
        self.edit = path_edit(label, mode="d", tooltip=tooltip or "A new (or empty) folder")
        self._default: Path | None = None
        source.changed.connect(self._follow)
        self._follow()

    @property
    def path(self) -> Path | None:
        return path_of(self.edit)

    def problem(self, what: str = "output folder") -> str | None:
        source, path = path_of(self.source), self.path
        if path is not None and source is not None and path.absolute() == source.absolute():
            return f"the {what} is the dataset itself; choose a new folder"
        if path is not None and source is not None and path.resolve().is_relative_to(source.resolve()):
            return f"{path} is inside the dataset {source}; choose a folder outside it"
        return new_folder_problem(path, what)

    def _follow(self, *_) -> None:
        source = path_of(self.source)
        if self.path is not None and self.path != self._default:
            return  # the user's own choice
        self._default = sibling_output(source, self.suffix) if source is not None else None
        set_path(self.edit, self._default)


def parse_mags(text: str) -> list[Mag] | None:
    """``"1, 2-2-1"`` -> [Mag(1), Mag(2, 2, 1)]; empty -> None (all mags)."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    return [parse_mag_text(part, "each mag") for part in parts] or None  # type: ignore[misc]
