"""``napari-wkw merge-annotation``: paint a WEBKNOSSOS volume annotation over a segmentation layer."""

from __future__ import annotations

import click

from ..ops.merge_annotation import MODES
from .app import echo, job_options, main


@main.command("merge-annotation")
@click.argument("annotation", type=click.Path(dir_okay=False), metavar="ANNOTATION.zip")
@click.argument("dataset", type=click.Path(file_okay=False), metavar="DATASET")
@click.option("--layer-name", "-l", required=True, help="The segmentation layer to paint over.")
@click.option(
    "--into",
    default=None,
    metavar="NEW_LAYER",
    help="Write the result as this new layer and leave the layer untouched [default: merge in place].",
)
@click.option("--volume-name", default=None, help="The annotation's volume layer [default: its only one].")
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="auto",
    show_default=True,
    help="bucket: painted buckets replace the layer, zeros included (erasures, as WEBKNOSSOS merges); "
    "voxel: only non-zero voxels replace it; auto: bucket when the annotation names a fallback layer, else voxel.",
)
@job_options
def merge_annotation_command(annotation, dataset, layer_name, into, volume_name, mode, jobs, progress):
    """Merge a volume of ANNOTATION.zip into a segmentation layer of DATASET.

    Where the annotation holds a bucket its voxels win, elsewhere the layer's ids stay;
    the coarser mags are updated where the merged buckets reach, the bounding box grows to
    cover them. In place, each file is replaced atomically and the merge can be run again
    after an interruption to finish it; with --into the layer is left as it is.
    """
    from ..ops.merge_annotation import merge_annotation

    result = merge_annotation(
        annotation, dataset, layer_name, into=into, volume_name=volume_name, mode=mode, jobs=jobs, progress=progress
    )
    progress.close()
    box = result.bounding_box
    corner = ",".join(str(v) for v in (*box.topleft, *box.size))
    mags = ", ".join(mag.folder_name() for mag in result.mags_updated) or "none"
    largest = "unknown" if result.largest_segment_id is None else result.largest_segment_id
    echo(
        f"{result.dataset / result.layer}: merged {result.buckets} bucket(s) of volume {result.volume!r} "
        f"in {result.mode} mode ({result.mode_reason}); {result.files_rewritten} file(s) rewritten in mags {mags}; "
        f"bounding box {corner}, largest segment id {largest}"
    )
