"""``napari-wkw convert-zarr``: zarr arrays, OME-Zarr images and WEBKNOSSOS zarr datasets into WKW."""

from __future__ import annotations

import click

from .app import main
from .convert_commands import conversion_options, report_conversion


def _parse_axes(ctx, param, value):
    if value is None:
        return None
    text = value.replace(",", "").replace(" ", "").lower()
    if not text or len(set(text)) != len(text) or not set("xyz") <= set(text):
        raise click.BadParameter(f"axes must name each dimension once and include x, y and z, e.g. zyx, not {value!r}")
    return list(text)


@main.command("convert-zarr")
@click.argument("source", type=click.Path())
@click.argument("target", type=click.Path(file_okay=False))
@click.option(
    "--layer-name",
    "-l",
    default=None,
    help="Name of the new layer [default: color, or segmentation]; for a WEBKNOSSOS dataset: only this layer.",
)
@click.option(
    "--axes",
    callback=_parse_axes,
    default=None,
    metavar="AXES",
    help="The array's dimensions, slowest first, e.g. zyx or czyx (t and others: index 0) "
    "[default: the array's names, else xyz / cxyz as WEBKNOSSOS].",
)
@click.option(
    "--channel-index",
    type=click.IntRange(min=0),
    default=None,
    help="Only this channel [default: every channel, one layer each: NAME_0, NAME_1 ...].",
)
@conversion_options(pyramid=True)
def convert_zarr(source, target, layer_name, axes, channel_index, settings, category, dtype, jobs, progress):
    """Convert the zarr input SOURCE into the WKW dataset TARGET, reading through tensorstore.

    SOURCE: a zarr v2 or v3 array, an OME-Zarr image (NGFF 0.4/0.5: the axes and the
    levels' scale and translation say the voxel size and offset), a WEBKNOSSOS zarr
    dataset (every layer, with its properties) or one of its layer folders. Every level
    of a pyramid whose factors are powers of two becomes that mag, copied, not
    downsampled; with --pyramid (the default) mags beyond the coarsest level are built.
    """
    from ..convert.levels import convert_pyramids
    from ..convert.zarr_source import KINDS, build_zarr_specs, dataset_extra, detect_zarr

    kind = detect_zarr(source)
    click.echo(f"{source}: detected {KINDS[kind]}", err=True)
    specs = build_zarr_specs(
        source, layer_name=layer_name, category=category, dtype=dtype, axes=axes, channel_index=channel_index
    )
    extra = dataset_extra(source) if kind == "webknossos-dataset" else None
    for spec in specs:
        mags = ", ".join(level.mag.folder_name() for level in spec.levels)
        click.echo(f"{spec.name}: {spec.source.description} (mags {mags})", err=True)
    result = convert_pyramids(target, specs, settings, dataset_extra=extra, jobs=jobs, progress=progress)
    report_conversion(result, progress)
