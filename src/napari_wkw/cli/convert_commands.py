"""Options and output every conversion command shares (cube, tile-cube, convert-knossos,
convert-nifti, convert); the commands themselves only build sources and layer specs."""

from __future__ import annotations

import functools

import click

from ..convert.specs import image_stack_specs, input_specs
from ..core.downsample import INTERPOLATIONS
from ..core.element_class import WKW_DTYPE_NAMES
from .app import echo, job_options, main, parse_mag, parse_voxel_size


def parse_flip_axes_option(ctx, param, value):
    """``--flip-axes`` of convert-nifti and convert-raw: which of x, y, z to reverse."""
    from ..convert.nifti import parse_flip_axes

    try:
        return parse_flip_axes(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def conversion_options(pyramid: bool = True):
    """The shared options -> ``settings: ConversionSettings``, ``category``, ``dtype``,
    ``jobs`` and ``progress`` keyword arguments of the command."""

    def decorate(function):
        @click.option(
            "--voxel-size",
            callback=parse_voxel_size,
            default=None,
            metavar="X,Y,Z",
            help="Voxel size in nm [default: what the input states, else 1,1,1].",
        )
        @click.option(
            "--category",
            type=click.Choice(("color", "segmentation")),
            default=None,
            help="Layer category [default: segmentation if the layer name says seg/label, else color].",
        )
        @click.option(
            "--dtype",
            type=click.Choice(WKW_DTYPE_NAMES),
            default=None,
            help="Stored voxel type [default: the input's].",
        )
        @click.option("--no-compress", is_flag=True, help="Write raw files instead of LZ4.")
        @click.option(
            "--pyramid/--no-pyramid",
            default=pyramid,
            show_default=True,
            help="Build the downsampled mags after mag 1.",
        )
        @click.option(
            "--max-mag",
            callback=parse_mag,
            default=None,
            help="Coarsest mag [default: ~100 px in x/y]; implies --pyramid.",
        )
        @click.option(
            "--interpolation",
            type=click.Choice(INTERPOLATIONS),
            default=None,
            help="Pyramid filter [default: median for color, mode for segmentation].",
        )
        @click.option("--overwrite", is_flag=True, help="Replace layers of the same name in TARGET.")
        @click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            default=32,
            show_default=True,
            help="Slices read at once (rounded up to whole 32-voxel blocks).",
        )
        @job_options
        @functools.wraps(function)
        def wrapper(
            *args,
            voxel_size,
            category,
            dtype,
            no_compress,
            pyramid,
            max_mag,
            interpolation,
            overwrite,
            batch_size,
            **kwargs,
        ):
            from ..convert.engine import ConversionSettings

            settings = ConversionSettings(
                voxel_size=voxel_size,
                compress=not no_compress,
                pyramid=pyramid or max_mag is not None,
                max_mag=max_mag,
                interpolation=interpolation,
                overwrite=overwrite,
                batch_size=batch_size,
            )
            return function(*args, settings=settings, category=category, dtype=dtype, **kwargs)

        return wrapper

    return decorate


def run_conversion(target, specs, settings, jobs, progress) -> None:
    """Run the conversion and print what was written (the progress bars go to stderr)."""
    from ..convert.engine import convert_layers

    for spec in specs:
        click.echo(f"{spec.name}: {spec.source.description}", err=True)
    result = convert_layers(target, specs, settings, jobs=jobs, progress=progress)
    report_conversion(result, progress)


def report_conversion(result, progress) -> None:
    """Close the progress bars and print what the conversion wrote (and what it resumed)."""
    progress.close()
    if result.resumed:
        click.echo(f"resumed the unfinished conversion of {', '.join(result.resumed)}", err=True)
    size = ",".join(f"{v:g}" for v in result.voxel_size)
    echo(f"{result.path}: voxel size {size} nm")
    for name, mags in result.layers.items():
        echo(f"  {name}: mags {', '.join(m.folder_name() for m in mags)}")


@main.command()
@click.argument("source", type=click.Path())
@click.argument("target", type=click.Path(file_okay=False))
@click.option("--layer-name", "-l", default="color", show_default=True, help="Name of the new layer.")
@click.option(
    "--start-z",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="z of the first slice (in voxels of the mag written).",
)
@click.option(
    "--skip-first-z-slices",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Leave out the first N slices.",
)
@click.option("--pad", is_flag=True, help="Pad slices smaller than the largest at the bottom/right (else an error).")
@click.option(
    "--channel-index", type=click.IntRange(min=0), default=None, help="Only this channel (C axis, e.g. OME-TIFF)."
)
@click.option(
    "--sample-index", type=click.IntRange(min=0), default=None, help="Only this sample (S axis, e.g. one of RGB)."
)
@click.option("--target-mag", callback=parse_mag, default=None, help="The slices are already this mag [default: 1].")
@click.option(
    "--prefer-channels",
    "prefer",
    flag_value="channels",
    default=None,
    help="Multi-channel input as one layer with channels (RGB: 3 x uint8 only).",
)
@click.option("--prefer-layers", "prefer", flag_value="layers", help="Multi-channel input as one layer per channel.")
@conversion_options(pyramid=False)
def cube(
    source,
    target,
    layer_name,
    start_z,
    skip_first_z_slices,
    pad,
    channel_index,
    sample_index,
    target_mag,
    prefer,
    settings,
    category,
    dtype,
    jobs,
    progress,
):
    """Cube an image stack SOURCE (folder of slices, glob, or one multi-page file) into layer
    mag 1 of the dataset TARGET.

    Slices: TIFF, JPEG, PNG, BMP, DM3, DM4, in natural order (2.tif before 10.tif).
    Without --pyramid only the one mag is written (as wkcuber's cubing).
    """
    specs = image_stack_specs(
        source,
        layer_name,
        category=category,
        dtype=dtype,
        start_z=start_z,
        skip_first=skip_first_z_slices,
        pad=pad,
        channel_index=channel_index,
        sample_index=sample_index,
        mag=target_mag,
        prefer=prefer,
    )
    run_conversion(target, specs, settings, jobs, progress)


@main.command()
@click.argument("source", type=click.Path())
@click.argument("target", type=click.Path(file_okay=False))
@click.option("--layer-name", "-l", default=None, help="Name of the new layer [default: color, or per input].")
@conversion_options(pyramid=True)
def convert(source, target, layer_name, settings, category, dtype, jobs, progress):
    """Convert SOURCE, whatever it is, into a complete WKW dataset TARGET.

    SOURCE may be an image stack (folder of slices, glob, multi-page file), a tiled
    stack (z/y/x.jpg ...), KNOSSOS cubes or NIFTI file(s); what was detected is
    printed first. Writes mag 1, the pyramid and datasource-properties.json,
    compressed unless --no-compress. Use cube, tile-cube, convert-knossos or
    convert-nifti for their specific options.
    """
    from ..convert.detect import INPUT_KINDS, detect_input

    kind = detect_input(source)
    click.echo(f"{source}: detected {INPUT_KINDS[kind]}", err=True)
    specs = input_specs(kind, source, layer_name, category, dtype)
    run_conversion(target, specs, settings, jobs, progress)
