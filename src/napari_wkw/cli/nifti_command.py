"""``napari-wkw convert-nifti``: NIFTI volumes (.nii, .nii.gz) into WKW layers."""

from __future__ import annotations

import click

from .app import main, parse_bbox
from .convert_commands import conversion_options, parse_flip_axes_option, run_conversion


@main.command("convert-nifti")
@click.argument("source", type=click.Path())
@click.argument("target", type=click.Path(file_okay=False))
@click.option(
    "--layer-name",
    "-l",
    default=None,
    help="Layer name for one file [default: color, or segmentation with --is-segmentation].",
)
@click.option("--is-segmentation", is_flag=True, help="The file is a segmentation (same as --category segmentation).")
@click.option(
    "--color-file",
    default=None,
    metavar="FILE",
    help="In a folder: the file to become layer 'color' (path relative to SOURCE).",
)
@click.option(
    "--segmentation-file",
    default=None,
    metavar="FILE",
    help="In a folder: the file to become layer 'segmentation' (path relative to SOURCE).",
)
@click.option(
    "--flip-axes",
    callback=parse_flip_axes_option,
    default=None,
    metavar="AXES",
    help="Reverse these axes, e.g. x,z (or wkcuber's 1,3); after --use-orientation-header.",
)
@click.option(
    "--use-orientation-header",
    is_flag=True,
    help="Reorient to the closest RAS+ axes the header's affine gives (nibabel's as_closest_canonical); "
    "wkcuber also flipped y and z after that: add --flip-axes y,z for its output.",
)
@click.option(
    "--enforce-bounding-box",
    callback=parse_bbox,
    default=None,
    metavar="X,Y,Z,W,H,D",
    help="Write the data into this box: its corner is the layer offset; data is padded with zeros or "
    "cropped to its size, centred in x and y, from the start in z (as wkcuber).",
)
@conversion_options(pyramid=True)
def convert_nifti(
    source,
    target,
    layer_name,
    is_segmentation,
    color_file,
    segmentation_file,
    flip_axes,
    use_orientation_header,
    enforce_bounding_box,
    settings,
    category,
    dtype,
    jobs,
    progress,
):
    """Convert the NIFTI file SOURCE, or every NIFTI file in the folder SOURCE (one layer
    each, named by its file), into the WKW dataset TARGET.

    Volumes must be 3D (a 4th or 5th axis of size 1 is dropped). The voxel size defaults
    to the header's, converted to nm. Voxels keep the file's type (scaled files: float)
    unless --dtype; a float segmentation must hold whole numbers and is stored as uint32.
    """
    from ..convert.nifti import build_nifti_specs

    if is_segmentation and category == "color":
        raise click.UsageError("--is-segmentation contradicts --category color")
    specs = build_nifti_specs(
        source,
        layer_name=layer_name,
        category=category,
        is_segmentation=is_segmentation,
        dtype=dtype,
        color_file=color_file,
        segmentation_file=segmentation_file,
        flip_axes=flip_axes,
        use_orientation_header=use_orientation_header,
        enforce_bounding_box=enforce_bounding_box,
    )
    run_conversion(target, specs, settings, jobs, progress)
