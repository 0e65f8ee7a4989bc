"""Commands that describe a dataset: metadata (write the properties file) and info."""

from __future__ import annotations

import json

import click

from ..ops.info import dataset_info, format_info
from ..ops.metadata import BOX_SOURCES, write_metadata
from .app import echo, job_options, layer_name_option, main, parse_voxel_size


def _parse_categories(ctx, param, values):
    categories = {}
    for value in values or ():
        layer, sep, category = value.partition("=")
        if not sep or not layer or category not in ("color", "segmentation"):
            raise click.BadParameter(f"must be LAYER=color or LAYER=segmentation, not {value!r}")
        categories[layer] = category
    return categories


@main.command("metadata")
@click.argument("dataset", metavar="DATASET")
@click.option("--voxel-size", "--scale", "-s", callback=parse_voxel_size, metavar="X,Y,Z",
              help="Voxel size in nanometres; required when there is no properties file yet "
                   "[default on --refresh: keep].")
@click.option("--name", default=None, help="Dataset name [default: the folder name; on --refresh: keep].")
@click.option("--refresh", is_flag=True,
              help="Update an existing properties file: add new layers and mags, drop mags whose folders "
                   "are gone, grow boxes to cover new data; keep voxel size, names, categories and extra keys.")
@click.option("--category", "categories", multiple=True, callback=_parse_categories, metavar="LAYER=KIND",
              help="Category of a layer, color or segmentation (repeatable) [default: segmentation when the "
                   "name contains seg or label, else color].")
@click.option("--compute-max-id", is_flag=True,
              help="Read all data of the finest mag of each segmentation layer to set largestSegmentId.")
@click.option("--max-id", type=click.IntRange(min=0), default=None, metavar="N",
              help="Set largestSegmentId of the segmentation layer(s) to N.")
@click.option("--box-from", type=click.Choice(BOX_SOURCES), default="data", show_default=True,
              help="Bounding boxes tight to the non-zero voxels (reads the files on the boxes' faces), or "
                   "to the whole files present (reads nothing; on --refresh a box grows only by files it "
                   "does not reach yet).")
@layer_name_option
@job_options
def metadata_command(dataset, voxel_size, name, refresh, categories, compute_max_id, max_id, box_from,
                     layer_name, jobs, progress):
    """Write DATASET/datasource-properties.json from what is on disk.

    Layers are the folders holding <mag>/header.wkw; element class, channels and mags come
    from the headers; bounding boxes from the data in the finest mag (see --box-from).
    With --refresh, an existing properties file is updated and what the user set is kept.
    --layer-name limits --compute-max-id and --max-id to one layer. Data files are never
    written.
    """
    if compute_max_id and max_id is not None:
        raise click.UsageError("give --compute-max-id or --max-id, not both")
    properties = write_metadata(
        dataset,
        voxel_size=voxel_size,
        name=name,
        refresh=refresh,
        compute_max_id=compute_max_id,
        max_id=max_id,
        categories=categories,
        layer_name=layer_name,
        box_from=box_from,
        progress=progress,
        jobs=jobs,
    )
    progress.close()
    echo(f"wrote the properties of {len(properties.layers)} layer(s):")
    for layer in properties.layers:
        box = layer.bounding_box
        extra = ""
        if layer.category == "segmentation":
            extra = f", largest id {'unknown' if layer.largest_segment_id is None else layer.largest_segment_id}"
        mags = ", ".join(entry.mag.folder_name() for entry in layer.mags)
        echo(f"  {layer.name}: {layer.category} {layer.element_class}, box {box.topleft}+{box.size}, "
             f"mags {mags}{extra}")


@main.command("info")
@click.argument("dataset", metavar="DATASET")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (for scripts).")
def info_command(dataset, as_json):
    """Show the layers, mags, voxel types, bounding boxes, compression and size of DATASET.

    Reads only headers and file names, so it is instant on any dataset size.
    """
    info = dataset_info(dataset)
    if as_json:
        echo(json.dumps(info, indent=2))
    else:
        click.echo(format_info(info), nl=False)
