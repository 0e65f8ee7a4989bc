"""``napari-wkw export-nifti``: a box of a layer as one NIFTI file."""

from __future__ import annotations

import click

from .app import echo, job_options, main, parse_bbox, parse_mag


@main.command("export-nifti")
@click.argument("dataset", type=click.Path())
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--layer-name", "-l", default=None, help="The layer [default: the only one].")
@click.option("--mag", callback=parse_mag, default=None, metavar="MAG", help="Mag to export [default: the finest].")
@click.option(
    "--bbox",
    callback=parse_bbox,
    default=None,
    metavar="X,Y,Z,W,H,D",
    help="Box in mag-1 voxels [default: the layer's bounding box].",
)
@click.option(
    "--unit",
    type=click.Choice(("mm", "um")),
    default="mm",
    show_default=True,
    help="Length unit of the header's voxel size (pixdim, xyzt_units).",
)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@job_options
def export_nifti(dataset, output, layer_name, mag, bbox, unit, overwrite, jobs, progress):
    """Write a box of a layer of DATASET as the NIFTI file OUTPUT (.nii, or .nii.gz compressed).

    The file's axes are the dataset's x, y, z; the header holds the voxel size times the
    mag (convert-nifti reads it back) and an affine placing the box where it lies.
    Streamed slab by slab (memory does not grow with the box); written under a hidden
    name and renamed into place when complete.
    """
    from ..ops.export_nifti import export_nifti as run_export

    result = run_export(
        dataset,
        output,
        layer_name=layer_name,
        mag=mag,
        bbox=bbox,
        unit=unit,
        overwrite=overwrite,
        jobs=jobs,
        progress=progress,
    )
    progress.close()
    x, y, z = result.box.size
    size = ",".join(f"{v * m:g}" for v, m in zip(result.voxel_size, result.mag.xyz))
    echo(f"{result.path}: {x} x {y} x {z} {result.dtype} of {result.layer} mag {result.mag.folder_name()}, {size} nm")
