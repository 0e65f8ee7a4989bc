"""Commands that read two datasets or write other formats: check-equality, export-tiff."""

from __future__ import annotations

import click

from ..ops.equality import check_equality
from ..ops.export_tiff import export_tiff
from .app import EXIT_DIFFERENT, echo, job_options, layer_name_option, main, parse_bbox, parse_mag


def parse_tile_size(ctx, param, value):
    if value is None:
        return None
    parts = value.replace(" ", "").split(",")
    try:
        numbers = tuple(int(p) for p in parts)
    except ValueError:
        numbers = ()
    if len(numbers) != 2 or min(numbers) < 1:
        raise click.BadParameter(f"tile size must be two positive whole numbers width,height, not {value!r}")
    return numbers


@main.command("check-equality")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@layer_name_option
@click.option("--mag", "-m", callback=parse_mag, default=None, metavar="MAG", help="Only this mag [default: all].")
@job_options
def check_equality_command(a, b, layer_name, mag, jobs, progress):
    """Compare datasets A and B: layers, element classes, bounding boxes, mags and every voxel.

    Exit 0 and print one "equal" line when they are equal; exit 1 and print what differs
    and where (layer, mag, first differing box) when they are not. Compression and file
    sizes are storage details: a compressed and a raw copy of the same voxels are equal.
    """
    report = check_equality(a, b, layer_name=layer_name, mag=mag, jobs=jobs, progress=progress)
    if hasattr(progress, "close"):
        progress.close()  # the bar ends before the report starts
    echo(report.format())
    if not report.equal:
        click.get_current_context().exit(EXIT_DIFFERENT)


@main.command("export-tiff")
@click.argument("dataset", metavar="DATASET")
@click.argument("target", metavar="TARGET")
@layer_name_option
@click.option("--mag", "-m", callback=parse_mag, default=None, metavar="MAG",
              help="Mag to export [default: each layer's finest].")
@click.option("--bbox", "-b", callback=parse_bbox, default=None, metavar="X,Y,Z,W,H,D",
              help="Box to export, in mag-1 voxels [default: the layer's bounding box].")
@click.option("--tile-size", "-t", callback=parse_tile_size, default=None, metavar="W,H",
              help="Write each slice as tiles of W x H pixels in TARGET/<z>/<y>/<x>.tiff [default: whole slices].")
@click.option("--downsample", type=click.IntRange(min=1), default=1, show_default=True,
              help="Shrink x and y by N: read the mag N times coarser in x/y if the layer has it, "
                   "else downsample with the pyramid's filter (median for color, mode for segmentation).")
@click.option("--name", "-n", default=None,
              help="File name prefix: <name>_<z:06d>.tiff [default: the layer name].")
@job_options
def export_tiff_command(dataset, target, layer_name, mag, bbox, tile_size, downsample, name, jobs, progress):
    """Export layers of DATASET as TIFF slices (or tiles) into the new folder TARGET.

    One TIFF per z slice, named <name>_<z:06d>.tiff with z the slice's coordinate in the
    exported mag; with --tile-size, tiles in TARGET/<z>/<y>/<x>.tiff (tile row and column
    from the box's corner). Several layers go to TARGET/<layer>/. RGB layers give RGB
    TIFFs; 16-bit, 32-bit, 64-bit and float voxels keep their type. TARGET must be
    missing or empty.
    """
    files = export_tiff(
        dataset, target, layer_name=layer_name, mag=mag, bbox=bbox, tile_size=tile_size,
        downsample=downsample, name=name, jobs=jobs, progress=progress,
    )
    if hasattr(progress, "close"):
        progress.close()
    echo(f"wrote {len(files)} TIFF file(s) to {target}")
