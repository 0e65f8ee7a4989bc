"""Options and output every conversion command shares (cube, tile-cube, convert-knossos,
convert-nifti, convert); the commands themselves only build sources and layer specs."""

from __future__ import annotations

import functools

import click

from ..core.downsample import INTERPOLATIONS
from ..core.element_class import WKW_DTYPES
from .app import echo, job_options, parse_mag, parse_voxel_size

DTYPE_NAMES = sorted({str(d) for d in WKW_DTYPES})


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
            "--dtype", type=click.Choice(DTYPE_NAMES), default=None, help="Stored voxel type [default: the input's]."
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


def layer_category(category: str | None, layer_name: str) -> str:
    """The category asked for, else guessed from the layer name (seg/label -> segmentation)."""
    from ..ops.metadata import guess_category

    return category or guess_category(layer_name)


def run_conversion(target, specs, settings, jobs, progress) -> None:
    """Run the conversion and print what was written (the progress bars go to stderr)."""
    from ..convert.engine import convert_layers

    for spec in specs:
        click.echo(f"{spec.name}: {spec.source.description}", err=True)
    result = convert_layers(target, specs, settings, jobs=jobs, progress=progress)
    progress.close()
    if result.resumed:
        click.echo(f"resumed the unfinished conversion of {', '.join(result.resumed)}", err=True)
    size = ",".join(f"{v:g}" for v in result.voxel_size)
    echo(f"{result.path}: voxel size {size} nm")
    for name, mags in result.layers.items():
        echo(f"  {name}: mags {', '.join(m.folder_name() for m in mags)}")
