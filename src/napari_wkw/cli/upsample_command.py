"""``napari-wkw upsample``: finer mags from a coarser one, by repetition (nearest)."""

from __future__ import annotations

import click

from ..core.downsample import SAMPLING_MODES
from .app import echo, job_options, main, parse_mag


@main.command()
@click.argument("dataset", type=click.Path())
@click.option("--layer-name", "-l", default=None, help="Only this layer [default: all].")
@click.option("--from-mag", required=True, callback=parse_mag, metavar="MAG", help="The coarse mag to start from.")
@click.option(
    "--target-mag", callback=parse_mag, default="1", show_default=True, metavar="MAG", help="The finest mag to build."
)
@click.option(
    "--into-layer",
    default=None,
    metavar="NAME",
    help="Write a new layer NAME (copies of --from-mag and the coarser mags, plus the upsampled ones), "
    "keeping the layer's own fine mags [default: add the missing mags to the layer itself].",
)
@click.option(
    "--sampling-mode",
    type=click.Choice(SAMPLING_MODES),
    default="anisotropic",
    show_default=True,
    help="Which mags lie between: anisotropic follows the voxel size; isotropic halves every axis; constant-z keeps z.",
)
@click.option("--no-compress", is_flag=True, help="Write the new mags raw instead of LZ4.")
@job_options
def upsample(dataset, layer_name, from_mag, target_mag, into_layer, sampling_mode, no_compress, jobs, progress):
    """Build finer mags of DATASET from --from-mag by repeating each voxel (nearest), as
    WEBKNOSSOS' upsample does: every mag between --from-mag and --target-mag that a
    pyramid would have (e.g. 2-2-1 and 1 from 4-4-2 at 11.24,11.24,25 nm).

    Only missing mags are created, each in a hidden folder renamed into place when
    complete; a layer that has --target-mag already is refused (use --into-layer).
    """
    from ..ops.upsample import plan_upsampling
    from ..ops.upsample import upsample as run_upsample

    plans = plan_upsampling(
        dataset,
        layer_name=layer_name,
        from_mag=from_mag,
        target_mag=target_mag,
        sampling_mode=sampling_mode,
        into_layer=into_layer,
    )
    for plan in plans:
        where = plan.layer if plan.into == plan.layer else f"{plan.layer} into the new layer {plan.into}"
        mags = ", ".join(mag.folder_name() for mag in plan.mags) or "nothing (all there)"
        click.echo(f"{where}: from mag {plan.source.folder_name()} building {mags}", err=True)
    built = run_upsample(
        dataset,
        layer_name=layer_name,
        from_mag=from_mag,
        target_mag=target_mag,
        sampling_mode=sampling_mode,
        into_layer=into_layer,
        compress=not no_compress,
        jobs=jobs,
        progress=progress,
    )
    progress.close()
    for name, mags in built.items():
        echo(f"{name}: upsampled mags {', '.join(m.folder_name() for m in mags) or 'none (all there)'}")
