"""The npe2 manifest and the packaging rules napari plugins live by."""

from __future__ import annotations

import tomllib
from pathlib import Path

from npe2 import PluginManifest

ROOT = Path(__file__).parents[1]


def test_manifest_is_valid_and_every_command_imports():
    manifest = PluginManifest.from_distribution("napari-wkw")
    manifest.validate_imports()
    assert manifest.name == "napari-wkw"
    reader = manifest.contributions.readers[0]
    assert reader.accepts_directories
    assert {"datasource-properties.json", "header.wkw", "*.wkw"} <= set(reader.filename_patterns)
    assert {"datasource-properties.json", "*.zip", "*.nml"} <= set(reader.filename_patterns)
    writers = {writer.display_name: writer for writer in manifest.contributions.writers}
    assert set(writers) == {"WKW dataset (folder)", "WEBKNOSSOS volume annotation", "WEBKNOSSOS skeleton (NML)"}
    folder = writers["WKW dataset (folder)"]
    assert folder.filename_extensions == [] and [str(t) for t in folder.layer_types] == ["image*", "labels*"]
    assert writers["WEBKNOSSOS volume annotation"].filename_extensions == [".zip"]
    assert writers["WEBKNOSSOS skeleton (NML)"].filename_extensions == [".nml"]


def test_no_qt_binding_in_runtime_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bindings = ("pyqt5", "pyqt6", "pyside2", "pyside6", "napari[all]", "napari[pyqt")
    for requirement in project["dependencies"]:
        assert not requirement.lower().startswith(bindings), requirement
    assert any("pyqt6" in r.lower() for r in project["optional-dependencies"]["all"])


def test_plugin_code_uses_qtpy_only():
    for source in (ROOT / "src" / "napari_wkw").rglob("*.py"):
        text = source.read_text()
        for binding in ("PyQt5", "PyQt6", "PySide2", "PySide6"):
            assert f"import {binding}" not in text and f"from {binding}" not in text, source
