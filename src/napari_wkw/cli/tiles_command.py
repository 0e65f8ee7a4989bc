"""``napari-wkw tile-cube``: a tiled stack (one image file per tile) into a WKW layer."""

from __future__ import annotations

import click

from ..convert.specs import layer_category
from .app import main
from .convert_commands import conversion_options, run_conversion


@main.command("tile-cube")
@click.argument("source", type=click.Path(file_okay=False))
@click.argument("target", type=click.Path(dir_okay=True, file_okay=False))
@click.option("--layer-name", "-l", default="color", show_default=True, help="Name of the layer to write.")
@click.option(
    "--input-path-pattern",
    default=None,
    metavar="PATTERN",
    help="Tile paths relative to SOURCE: {z}, {y}, {x} are numbers of any length, {zzzz} exactly 4 digits "
    "(zero-padded), e.g. '{z}/{y}/{x}.jpg' [default: detected from {z}/{y}/{x}.<ext> folders or "
    "{z}_{y}_{x}.<ext> files].",
)
@conversion_options(pyramid=True)
def tile_cube(source, target, layer_name, input_path_pattern, settings, category, dtype, jobs, progress):
    """Convert the tiled stack in SOURCE into a layer of the WKW dataset TARGET.

    Each file is one tile (JPEG, PNG, BMP or TIFF; grey, 16-bit or RGB); tile (x, y)
    of slice z lands at voxel (x * tile width, y * tile height, z), so the layer starts
    at the smallest tile numbers. Missing tiles are stored as zeros. Tiles in the last
    column or row may be smaller than the first tile (padded with zeros), no others.
    """
    from ..convert.tiles import build_tile_specs

    specs = build_tile_specs(
        source,
        layer_name=layer_name,
        pattern=input_path_pattern,
        category=layer_category(category, layer_name),
        dtype=dtype,
    )
    run_conversion(target, specs, settings, jobs, progress)
