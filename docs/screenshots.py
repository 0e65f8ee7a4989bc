"""Screenshots of every wizard and of a converted dataset in the viewer, for the README.

Run under a (virtual) display:  xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python docs/screenshots.py
(add ``annotations`` to make only the WEBKNOSSOS annotation screenshots).
It builds the demo dataset in a temporary folder, opens it, docks each wizard with its
form filled for the demo data, and saves docs/wizards/<name>.png plus full-window shots.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

DOCS = Path(__file__).parent
WINDOW = (1400, 900)


def settle(app, rounds: int = 30) -> None:
    for _ in range(rounds):
        app.processEvents()


def wait(app, done, timeout: float = 120.0) -> None:
    import time

    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end:
            raise TimeoutError("a wizard did not finish")
        app.processEvents()
        time.sleep(0.02)


def save_widget(widget, path: Path) -> None:
    """The widget's picture, cut below its last row of content (docks are taller than forms)."""
    from PIL import Image

    widget.native.grab().save(str(path))
    image = np.asarray(Image.open(path).convert("RGB")).astype(int)
    background = image[-1, -1]
    rows = np.flatnonzero(np.abs(image - background).sum(axis=(1, 2)) > 0)
    bottom = min(image.shape[0], (rows[-1] + 12) if len(rows) else image.shape[0])
    Image.open(path).crop((0, 0, image.shape[1], bottom)).save(path)


def wizard_class(path: str):
    module, name = path.rsplit(":", 1)
    try:
        return getattr(importlib.import_module(f"napari_wkw._widgets.{module}"), name)
    except (ImportError, AttributeError) as error:
        print(f"skipping {path}: {error}", file=sys.stderr)
        return None


def main() -> int:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_wkw.demo import build

    work = Path(tempfile.mkdtemp(prefix="napari-wkw-shots-"))
    demo = build(work / "demo")
    slices = work / "demo-slices"
    viewer = napari.Viewer(title="napari-wkw")
    viewer.window._qt_window.resize(*WINDOW)
    app = QApplication.instance()
    viewer.open(str(demo), plugin="napari-wkw")
    viewer.layers.selection.active = viewer.layers[0]
    settle(app)

    # a copy of the demo with one bright patch, for Check equality to find
    edited = work / "demo-edited"
    shutil.copytree(demo, edited)
    from napari_wkw.core import Dataset

    color = Dataset.open(edited).layers["color"]
    origin = color.bounding_box.topleft
    color.mags[next(iter(color.mags))].write(
        (origin[0] + 300, origin[1] + 200, origin[2] + 5), np.full((3, 40, 40), 255, np.uint8)
    )

    tests_data = DOCS.parent / "tests" / "data"
    tiles = work / "em_tiles"
    shutil.copytree(tests_data / "em_tiles", tiles)
    nifti = work / "nifti"
    nifti.mkdir()
    for name in ("anatomical.nii", "standard.nii.gz"):
        shutil.copy(tests_data / "nifti" / name, nifti / name)

    def fill_cubing(w):
        w.input.value = slices / "color"

    def fill_convert(w):
        w.input.value = slices / "color"
        w.conversion.voxel_size.value = "11.24, 11.24, 25"

    def fill_tiles(w):
        w.input.value = tiles

    def fill_nifti(w):
        w.input.value = nifti
        w.segmentation_file.value = "standard.nii.gz"
        w.flip[0].value = True

    def fill_equality(w):
        w.choice.dataset.value = demo
        w.other.value = edited

    def fill_compress(w):
        w.into_copy.value = True

    scenes = [
        ("convert", "convert_wizards:ConvertWizard", fill_convert),
        ("cubing", "convert_wizards:CubingWizard", fill_cubing),
        ("tile-cubing", "convert_wizards:TileCubingWizard", fill_tiles),
        ("knossos", "convert_wizards:KnossosWizard", None),
        ("nifti", "convert_wizards:NiftiWizard", fill_nifti),
        ("downsample", "dataset_wizards:DownsampleWizard", None),
        ("compress", "dataset_wizards:CompressWizard", fill_compress),
        ("metadata", "dataset_wizards:MetadataWizard", None),
        ("recube", "output_wizards:RecubeWizard", None),
        ("export-tiff", "output_wizards:ExportTiffWizard", None),
        ("check-equality", "equality_wizard:CheckEqualityWizard", fill_equality),
        ("save-as-wkw", "save_wizard:SaveAsWKWWizard", None),
        ("dataset-info", "info_panel:DatasetInfoPanel", None),
        ("raw", "raw_zarr_wizards:RawWizard", None),
        ("zarr", "raw_zarr_wizards:ZarrWizard", None),
        ("upsample", "upsample_export_wizards:UpsampleWizard", None),
        ("export-nifti", "upsample_export_wizards:ExportNiftiWizard", None),
    ]
    for name, path, fill in scenes:
        cls = wizard_class(path)
        if cls is None:
            continue
        widget = cls(viewer)
        if fill is not None:
            try:
                fill(widget)
            except AttributeError as error:
                print(f"{name}: form not filled ({error})", file=sys.stderr)
        dock = viewer.window.add_dock_widget(widget, name=name, area="right")
        settle(app)
        if name == "dataset-info":
            wait(app, lambda w=widget: w.info is not None)
            settle(app)
        save_widget(widget, DOCS / "wizards" / f"{name}.png")
        if name == "convert":
            # the whole window, with the wizard run on the demo slices and the result open
            widget.output.value = work / "converted"
            widget.run()
            wait(app, lambda w=widget: not w.running)
            settle(app)
            viewer.screenshot(str(DOCS / "viewer-convert-wizard.png"), canvas_only=False)
            for layer in [layer for layer in viewer.layers if "(converted)" in layer.name]:
                viewer.layers.remove(layer)
        if name == "check-equality":
            widget.run()
            wait(app, lambda w=widget: not w.running)
            # look at the edited patch: 2 screen pixels per voxel around it
            voxel = Dataset.open(demo).voxel_size
            viewer.scene.camera.center = ((origin[1] + 220) * voxel[1], (origin[0] + 320) * voxel[0])
            viewer.scene.camera.zoom = 2 / voxel[0]
            viewer.dims.set_point(0, (origin[2] + 6) * voxel[2])  # a slice of the bright patch
            settle(app)
            save_widget(widget, DOCS / "wizards" / f"{name}.png")
            viewer.screenshot(str(DOCS / "viewer-check-equality.png"), canvas_only=False)
            viewer.reset_view()
            for layer in [layer for layer in viewer.layers if layer.name.startswith("differences")]:
                viewer.layers.remove(layer)
            viewer.dims.set_current_step(0, 0)
        if name == "dataset-info":
            viewer.screenshot(str(DOCS / "viewer-dataset-info.png"), canvas_only=False)
        viewer.window.remove_dock_widget(dock)
        settle(app)
    viewer.close()
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {len(list((DOCS / 'wizards').glob('*.png')))} wizard screenshots to {DOCS / 'wizards'}")
    return 0


def annotation_scene() -> int:
    """The real l4_sample annotation dropped onto a stand-in of its dataset (EM from
    tests/data at the annotation's voxel size and place), a segment painted next to it, and
    the four annotation widgets: docs/annotation-viewer.png and docs/wizards/<name>.png."""
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_wkw.core.save import ArrayLayer, save_dataset
    from napari_wkw.demo import ShiftedMosaic, em_mosaic

    tests_data = DOCS.parent / "tests" / "data"
    annotation = tests_data / "annotations" / "l4_sample__explorational__suser__94b271.zip"
    voxel = (11.239999771118164, 11.239999771118164, 28.0)
    work = Path(tempfile.mkdtemp(prefix="napari-wkw-shots-"))
    start, size = (3264, 3328, 1008), (768, 512, 64)
    stack = ShiftedMosaic(em_mosaic(), size[2])
    image = stack[slice(0, size[2]), slice(0, size[1]), slice(0, size[0])]
    dataset = save_dataset(work / "l4_sample", [ArrayLayer("color", "color", [image], voxel, offset=start)])
    viewer = napari.Viewer(title="napari-wkw")
    viewer.window._qt_window.resize(*WINDOW)
    app = QApplication.instance()
    viewer.open(str(dataset), plugin="napari-wkw")
    opened = viewer.open(str(annotation), plugin="napari-wkw")
    labels = next(layer for layer in opened if type(layer).__name__ == "Labels")
    plane = 1024  # inside the painted buckets (z 1024-1056), where the skeleton's nodes are
    in_layer = plane - int(round(labels.translate[0] / labels.scale[0]))
    y0 = 3650 - int(round(labels.translate[1] / labels.scale[1]))
    x0 = 3450 - int(round(labels.translate[2] / labels.scale[2]))
    labels.data[in_layer, y0 : y0 + 60, x0 : x0 + 90] = 77  # what a proofreader paints
    labels.refresh()
    labels.opacity = 0.8
    viewer.dims.set_point(0, plane * voxel[2])
    viewer.scene.camera.center = (3590 * voxel[1], 3620 * voxel[0])
    viewer.scene.camera.zoom = 0.95 / voxel[0]
    viewer.layers.selection.active = labels
    settle(app)
    scenes = [
        ("save-annotation", "annotation_wizards:SaveAnnotationWizard"),
        ("export-annotation", "annotation_wizards:ExportAnnotationWizard"),
        ("merge-annotation", "annotation_wizards:MergeAnnotationWizard"),
        ("annotation-info", "annotation_wizards:AnnotationInfoPanel"),
    ]
    for name, path in scenes:
        widget = wizard_class(path)(viewer)
        widget.native.setMaximumWidth(470)
        dock = viewer.window.add_dock_widget(widget, name=name, area="right")
        settle(app)
        if name == "annotation-info":
            wait(app, lambda w=widget: w.info is not None)
            settle(app)
            viewer.screenshot(str(DOCS / "annotation-viewer.png"), canvas_only=False)
        save_widget(widget, DOCS / "wizards" / f"{name}.png")
        viewer.window.remove_dock_widget(dock)
        settle(app)
    viewer.close()
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {DOCS / 'annotation-viewer.png'} and the annotation widgets' screenshots")
    return 0


if __name__ == "__main__":
    sys.exit(annotation_scene() if sys.argv[1:] == ["annotations"] else main() or annotation_scene())
