"""Commands on WEBKNOSSOS annotations: annotation-info and export-annotation."""

from __future__ import annotations

import json

import click

from ..ops.annotations import annotation_info, export_annotation, format_annotation_info
from .app import ProgressBar, echo, main, parse_bbox


@main.command("annotation-info")
@click.argument("annotation", metavar="ANNOTATION")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (for scripts).")
def annotation_info_command(annotation, as_json):
    """Show what a WEBKNOSSOS annotation (.zip or .nml) holds: dataset, voxel size, skeleton
    counts, and per volume layer its data format, mags, painted buckets and segments.

    Reads the NML and the ZIPs' directories only, never voxels.
    """
    info = annotation_info(annotation)
    if as_json:
        echo(json.dumps(info, indent=2))
    else:
        click.echo(format_annotation_info(info), nl=False)


@main.command("export-annotation")
@click.argument("dataset", metavar="DATASET")
@click.argument("target", metavar="OUT.zip")
@click.option("--layer-name", "-l", required=True, help="The segmentation layer to export.")
@click.option(
    "--bbox",
    callback=parse_bbox,
    metavar="X,Y,Z,W,H,D",
    help="Only this box, in mag-1 voxels [default: the layer's bounding box].",
)
@click.option("--volume-name", default=None, help="The volume layer's name in the annotation [default: the layer's].")
@click.option(
    "--fallback-layer",
    default=None,
    metavar="NAME",
    help="Name the segmentation layer WEBKNOSSOS shows where the annotation holds no bucket.",
)
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Threads [default: cores].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def export_annotation_command(dataset, target, layer_name, bbox, volume_name, fallback_layer, jobs, quiet):
    """Write a box of DATASET's layer as a WEBKNOSSOS volume annotation ZIP (zarr3, as
    WEBKNOSSOS writes it), with the layer's mags as the pyramid; upload it to WEBKNOSSOS
    or open it in napari.

    Buckets without a label are not stored. OUT.zip is written beside itself and renamed
    into place, so an existing file is replaced only by a complete one.
    """
    with ProgressBar(enabled=not quiet) as progress:
        path = export_annotation(
            dataset,
            target,
            layer_name,
            bbox=bbox,
            volume_name=volume_name,
            fallback_layer=fallback_layer,
            progress=progress,
            threads=jobs,
        )
    info = annotation_info(path)
    volume = info["volumes"][0]
    buckets = sum(m["buckets"] for m in volume["mags"])
    echo(
        f"wrote {path}: volume {volume['name']!r}, {buckets} buckets in mags "
        f"{', '.join(m['mag'] for m in volume['mags'])}, largest id {volume['largest_segment_id']}"
    )
