"""Commands that write datasets: downsample, compress, recube."""

from __future__ import annotations

import click

from ..core.downsample import INTERPOLATIONS, SAMPLING_MODES
from ..ops.info import format_bytes
from .app import echo, job_options, layer_name_option, main, parse_mag


@main.command()
@click.argument("dataset", type=click.Path(file_okay=False))
@layer_name_option
@click.option("--from-mag", callback=parse_mag, default=None, help="Source mag [default: the finest].")
@click.option("--max-mag", callback=parse_mag, default=None, help="Coarsest mag to build [default: ~100 px in x/y].")
@click.option(
    "--interpolation",
    type=click.Choice(INTERPOLATIONS),
    default=None,
    help="Filter [default: median for color, mode for segmentation].",
)
@click.option(
    "--sampling-mode", type=click.Choice(SAMPLING_MODES), default="anisotropic", show_default=True,
    help="anisotropic: z catches up with x/y first; isotropic: all axes; constant-z: x/y only.",
)
@click.option("--no-compress", is_flag=True, help="Write new mags raw instead of LZ4.")
@job_options
def downsample(dataset, layer_name, from_mag, max_mag, interpolation, sampling_mode, no_compress, jobs, progress):
    """Build the missing mags of DATASET, each from the previous one."""
    from ..ops.downsample import downsample as run
    from ..ops.downsample import plan_downsampling

    plans = plan_downsampling(
        dataset, layer_name=layer_name, from_mag=from_mag, max_mag=max_mag,
        interpolation=interpolation, sampling_mode=sampling_mode,
    )
    for plan in plans:
        mags = ", ".join(m.folder_name() for m in plan.mags) or "none (all present)"
        click.echo(
            f"{plan.layer}: from mag {plan.source.folder_name()} up to {plan.coarsest.folder_name()} "
            f"with {plan.interpolation}: building {mags}",
            err=True,
        )
    built = run(
        dataset, layer_name=layer_name, from_mag=from_mag, max_mag=max_mag, interpolation=interpolation,
        sampling_mode=sampling_mode, compress=not no_compress, jobs=jobs, progress=progress,
    )
    progress.close()
    for layer, mags in built.items():
        echo(f"{layer}: built {', '.join(m.folder_name() for m in mags) or 'nothing'}")


@main.command()
@click.argument("dataset", type=click.Path(file_okay=False))
@click.argument("target", type=click.Path(file_okay=False), required=False)
@layer_name_option
@click.option("--mag", "mags", multiple=True, callback=parse_mag, help="Only this mag (repeatable) [default: all].")
@click.option("--lz4hc", is_flag=True, help="LZ4HC: about twice the time for ~1% smaller files on EM.")
@job_options
def compress(dataset, target, layer_name, mags, lz4hc, jobs, progress):
    """Compress DATASET with LZ4, in place or into a new TARGET folder.

    In place, each file is compressed beside the original and swapped in atomically:
    a run killed at any moment leaves every file readable with its original data, and
    running the command again finishes the job.
    """
    from ..ops.compress import compress as run

    result = run(
        dataset, target, layer_name=layer_name, mags=mags or None, high_compression=lz4hc,
        jobs=jobs, progress=progress,
    )
    progress.close()
    ratio = result.bytes_after / result.bytes_before if result.bytes_before else 1.0
    echo(
        f"{result.path}: {result.files_compressed} file(s) compressed, "
        f"{format_bytes(result.bytes_before)} -> {format_bytes(result.bytes_after)} on disk ({ratio:.0%})"
    )


@main.command()
@click.argument("source", type=click.Path(file_okay=False))
@click.argument("target", type=click.Path(file_okay=False))
@layer_name_option
@click.option(
    "--file-len", type=click.Choice(["1", "2", "4", "8", "16", "32", "64", "128"]), default="32", show_default=True,
    help="Blocks (of 32^3 voxels) per file edge.",
)
@click.option("--dtype", default=None, help="Convert voxels to this type (e.g. uint8); values must fit.")
@click.option("--no-compress", is_flag=True, help="Write raw files instead of LZ4.")
@job_options
def recube(source, target, layer_name, file_len, dtype, no_compress, jobs, progress):
    """Rewrite SOURCE into a new dataset TARGET with another file length (or voxel type)."""
    from ..ops.recube import recube as run

    path = run(
        source, target, layer_name=layer_name, file_len=int(file_len), dtype=dtype,
        compress=not no_compress, jobs=jobs, progress=progress,
    )
    progress.close()
    echo(f"{path}: written with {file_len} block(s) per file edge")
