"""Every operation of the command line is a widget in napari's Plugins menu."""

from __future__ import annotations

import pytest
from npe2 import PluginManifest

pytestmark = pytest.mark.timeout(120)

#: each CLI command and the Plugins-menu entry that does the same from napari
COMMAND_WIDGETS = {
    "cube": "Cubing (image stack)",
    "tile-cube": "Tile cubing (z/y/x tiles)",
    "convert-knossos": "KNOSSOS conversion",
    "convert-nifti": "NIFTI conversion",
    "convert": "Convert (auto-detect)",
    "downsample": "Downsample (build the pyramid)",
    "compress": "Compress",
    "metadata": "Metadata (datasource-properties.json)",
    "recube": "Recube",
    "check-equality": "Check equality",
    "export-tiff": "Export TIFF",
    "convert-raw": "Raw conversion",
    "convert-zarr": "Zarr conversion",
    "upsample": "Upsample",
    "export-nifti": "Export NIFTI",
    "info": "Dataset info",
    "annotation-info": "Annotation info",
    "export-annotation": "Export annotation",
    "merge-annotation": "Merge annotation",
}


def test_every_cli_command_has_a_widget():
    from napari_wkw.cli import main
    from napari_wkw.cli.app import load_all_commands

    load_all_commands()
    assert set(main.commands) == set(COMMAND_WIDGETS)
    manifest = PluginManifest.from_distribution("napari-wkw")
    names = {widget.display_name for widget in manifest.contributions.widgets}
    assert set(COMMAND_WIDGETS.values()) | {"Save as WKW (with progress)", "Save as WEBKNOSSOS annotation"} == names


def test_every_widget_opens_from_the_plugins_menu(make_napari_viewer, em_dataset):
    path, _, _ = em_dataset
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-wkw")
    manifest = PluginManifest.from_distribution("napari-wkw")
    for contribution in manifest.contributions.widgets:
        dock, widget = viewer.window.add_plugin_dock_widget("napari-wkw", contribution.display_name)
        assert not dock.isHidden(), contribution.display_name
        # wizards on a dataset start from the one the selected layer came from
        if hasattr(widget, "choice"):
            assert widget.choice.path == path, contribution.display_name
        viewer.window.remove_dock_widget(dock)
