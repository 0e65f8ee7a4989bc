"""The demo: convert a stack of TIFF slices made from real EM tiles into WKW, then show it in napari.

    python -m napari_wkw.demo [OUTPUT_FOLDER] [--no-viewer]

It mosaics the four real FAFB EM tiles shipped in tests/data/em_tiles into a
2048 x 2048 x 32 stack (synthetic cells when the tiles are not there), segments the
bright compartments between membranes with a blur, a threshold and connected
components (a stand-in for a real segmentation), writes both as folders of TIFF
slices (what a microscope or a segmentation tool hands over), converts them with the
same engine as ``napari-wkw convert`` into a compressed dataset with its full pyramid
and ``datasource-properties.json``, and opens it in napari. Without a display it says
what it wrote and how to open it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .core import Dataset
from .core.synthetic import cells

VOXEL_SIZE = (11.24, 11.24, 25.0)
TILES = Path(__file__).resolve().parents[2] / "tests" / "data" / "em_tiles"


class ShiftedMosaic:
    """A lazy (z, y, x) stack: the EM mosaic shifted a little per slice (memory: one mosaic)."""

    def __init__(self, mosaic: np.ndarray, depth: int) -> None:
        self.mosaic = mosaic
        self.shape = (depth, *mosaic.shape)
        self.dtype = mosaic.dtype
        self.ndim = 3

    def __getitem__(self, key):
        zs, ys, xs = key
        planes = [np.roll(self.mosaic, (3 * z, 2 * z), axis=(0, 1))[ys, xs] for z in range(*zs.indices(self.shape[0]))]
        return np.stack(planes)


def em_mosaic() -> np.ndarray | None:
    """The 2 x 2 mosaic of the real EM tiles (named z_y_x.jpg), or None without them."""
    from imageio.v3 import imread

    tiles = sorted(TILES.glob("*.jpg"))
    if len(tiles) != 4:
        return None
    grid = {}
    for tile in tiles:
        _, y, x = (int(part) for part in tile.stem.split("_"))
        grid[(y, x)] = imread(tile)
    ys, xs = sorted({y for y, _ in grid}), sorted({x for _, x in grid})
    return np.block([[grid[(y, x)] for x in xs] for y in ys]).astype(np.uint8)


def segment(image: np.ndarray) -> np.ndarray:
    """Connected bright compartments of a 2D EM image, as uint32 labels (0 = membrane)."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(image.astype(np.float32), 3)
    inside = smooth > np.percentile(smooth, 80)
    inside = ndimage.binary_opening(inside, iterations=2)
    labels, _ = ndimage.label(inside)
    sizes = np.bincount(labels.ravel())
    labels[sizes[labels] < 400] = 0
    _, compact = np.unique(labels, return_inverse=True)
    return compact.reshape(labels.shape).astype(np.uint32)


def write_slices(folder: Path, stack, compression: str | None) -> Path:
    """The stack as one TIFF per slice, named so that natural order matters (1.tif ... 32.tif)."""
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    for z in range(stack.shape[0]):
        tifffile.imwrite(folder / f"{z + 1}.tif", np.asarray(stack[z : z + 1, :, :])[0], compression=compression)
    return folder


def build(target: Path) -> Path:
    from .convert.engine import ConversionSettings, LayerSpec, convert_layers
    from .convert.image_stack import open_image_stack

    started = time.perf_counter()
    mosaic = em_mosaic()
    if mosaic is None:
        print(f"EM tiles not found in {TILES}; using a synthetic volume", file=sys.stderr)
        color, labels = cells((32, 512, 512), n_cells=120)
    else:
        color = ShiftedMosaic(mosaic, 32)
        labels = ShiftedMosaic(segment(mosaic).astype(np.uint16), 32)
    slices = target.with_name(f"{target.name}-slices")
    specs = [
        LayerSpec(open_image_stack(write_slices(slices / "color", color, None))[0], "color"),
        LayerSpec(
            open_image_stack(write_slices(slices / "segmentation", labels, "zlib"))[0], "segmentation", "segmentation"
        ),
    ]
    print(f"wrote TIFF slices to {slices} in {time.perf_counter() - started:.1f} s; converting them")
    started = time.perf_counter()
    convert_layers(target, specs, ConversionSettings(voxel_size=VOXEL_SIZE))
    dataset = Dataset.open(target)
    print(f"wrote {target} in {time.perf_counter() - started:.1f} s (napari-wkw convert {slices / 'color'} ...):")
    for layer in dataset.layers.values():
        box = layer.bounding_box
        print(
            f"  {layer.name:13s} {layer.category:12s} {layer.properties.element_class:7s} "
            f"size {box.size} at {box.topleft}, mags {', '.join(m.folder_name() for m in layer.mags)}"
        )
    return target


def has_display() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m napari_wkw.demo", description=__doc__.split("\n")[0])
    parser.add_argument("output", nargs="?", type=Path, default=Path(tempfile.gettempdir()) / "napari-wkw-demo")
    parser.add_argument("--no-viewer", action="store_true", help="only write the dataset")
    args = parser.parse_args(argv)
    target = args.output.expanduser().absolute()
    if (target / "datasource-properties.json").is_file():
        print(f"using the existing demo dataset {target} (delete it to rebuild)")
    else:
        build(target)
    if args.no_viewer or not has_display():
        print(
            "no display here, so napari was not started. To look at the dataset on a machine with a screen:\n"
            f"  napari --plugin napari-wkw {target}\n"
            f"or drop {target / 'datasource-properties.json'} onto the napari window."
        )
        return 0
    import napari

    viewer = napari.Viewer(title="napari-wkw demo")
    viewer.open(str(target), plugin="napari-wkw")
    # what the dataset holds, beside it; every other wizard is in the Plugins menu
    viewer.window.add_plugin_dock_widget("napari-wkw", "Dataset info")
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
