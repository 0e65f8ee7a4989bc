"""``napari-wkw convert-raw``: a raw binary volume (one file of voxels) into a WKW layer."""

from __future__ import annotations

import click

from .app import main
from .convert_commands import conversion_options, parse_flip_axes_option, run_conversion


def _parse_shape(ctx, param, value):
    from ..convert.raw import parse_shape

    if value is None:
        return None
    try:
        return parse_shape(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _parse_source_dtype(ctx, param, value):
    from ..convert.raw import parse_raw_dtype

    if value is None:
        return None
    try:
        return parse_raw_dtype(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@main.command("convert-raw")
@click.argument("source", type=click.Path())
@click.argument("target", type=click.Path(file_okay=False))
@click.option(
    "--shape", required=True, callback=_parse_shape, metavar="X,Y,Z", help="Voxels of the volume along x, y, z."
)
@click.option(
    "--source-dtype",
    callback=_parse_source_dtype,
    default=None,
    metavar="TYPE",
    help="Voxel type in the file, e.g. uint16, float32, >u2 for big-endian [default: --dtype].",
)
@click.option(
    "--order",
    type=click.Choice(("F", "C"), case_sensitive=False),
    default="F",
    show_default=True,
    help="F: x varies fastest (then y, z), as WEBKNOSSOS and most raw exports; C: z fastest (C order of x,y,z).",
)
@click.option(
    "--offset",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="BYTES",
    help="Bytes to skip at the start of the file (a header).",
)
@click.option("--layer-name", "-l", default="color", show_default=True, help="Name of the new layer.")
@click.option(
    "--flip-axes",
    callback=parse_flip_axes_option,
    default=None,
    metavar="AXES",
    help="Reverse these axes, e.g. x,z (or the reference's 1,3).",
)
@conversion_options(pyramid=True)
def convert_raw(
    source, target, shape, source_dtype, order, offset, layer_name, flip_axes, settings, category, dtype, jobs, progress
):
    """Convert the raw file SOURCE (voxels only, no header unless --offset) of --shape X,Y,Z
    voxels into layer mag 1 and its pyramid of the WKW dataset TARGET.

    --dtype names the voxel type of the file (and of the layer); give --source-dtype too
    to read one type and store another (values must fit). A file whose size is not
    exactly the shape times the voxel size plus --offset is refused.
    """
    from ..convert.raw import build_raw_specs

    if source_dtype is None and dtype is None:
        raise click.UsageError("give the file's voxel type with --dtype (e.g. --dtype uint8)")
    specs = build_raw_specs(
        source,
        shape=shape,
        source_dtype=source_dtype if source_dtype is not None else dtype,
        layer_name=layer_name,
        category=category,
        dtype=dtype,
        order=order.upper(),
        offset=offset,
        flip_axes=flip_axes,
    )
    run_conversion(target, specs, settings, jobs, progress)
