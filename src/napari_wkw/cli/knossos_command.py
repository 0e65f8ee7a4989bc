"""``napari-wkw convert-knossos``: a KNOSSOS cube tree into a WKW layer."""

from __future__ import annotations

import click

from ..convert.specs import layer_category
from .app import main
from .convert_commands import conversion_options, run_conversion


@main.command("convert-knossos")
@click.argument("source", type=click.Path())
@click.argument("target", type=click.Path(file_okay=False))
@click.option("--layer-name", "-l", default="color", show_default=True, help="Name of the layer to write.")
@click.option(
    "--mag",
    type=click.IntRange(min=1),
    default=None,
    help="KNOSSOS mag to convert, written as the same WKW mag [default: the finest present; for a mag folder its own].",
)
@conversion_options(pyramid=True)
def convert_knossos(source, target, layer_name, mag, settings, category, dtype, jobs, progress):
    """Convert the KNOSSOS cubes in SOURCE into a layer of the WKW dataset TARGET.

    SOURCE is a dataset root with mag1/, mag2/ ... folders, one mag folder (x0000/y0000/z0000/
    cube folders) or its knossos.conf. Cubes are 128^3 raw voxels of --dtype [default: uint8];
    missing cubes are empty (zeros). knossos.conf gives the layer size (boundary) and the
    voxel size (scale); without it the size reaches to the last cube present.
    """
    from ..convert.knossos import build_knossos_specs

    specs = build_knossos_specs(
        source, layer_name=layer_name, mag=mag, dtype=dtype, category=layer_category(category, layer_name)
    )
    run_conversion(target, specs, settings, jobs, progress)
