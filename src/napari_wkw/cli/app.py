"""The command group, the options every long command shares, errors and progress.

Exit codes: 0 success, 1 a difference found (check-equality), 2 bad input or usage
(one line naming the file and the problem, no traceback), 130 cancelled (Ctrl-C).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib
import json
import sys
import warnings

import click

from ..core.errors import CancelledError, WKWError, WKWWarning
from ..core.geometry import BoundingBox, Mag
from ..jobs.runner import STRATEGIES, JobSettings, default_jobs

EXIT_DIFFERENT = 1
EXIT_BAD_INPUT = 2
EXIT_CANCELLED = 130


class Failure(click.ClickException):
    """Bad input: printed as one line, exit 2."""

    exit_code = EXIT_BAD_INPUT

    def show(self, file=None) -> None:
        click.echo(f"napari-wkw: error: {self.format_message()}", err=True)


def _usage_failure(error: click.UsageError) -> Failure:
    """A usage error (a bad value, a missing argument) as one line too, not click's four."""
    message = error.format_message()
    if error.ctx is not None and not isinstance(error, click.BadParameter):
        message += f" (see {error.ctx.command_path} {error.ctx.help_option_names[0]})"
    return Failure(message)


#: each command's module (it registers the command on ``main`` when imported): a command
#: imports only its own module, so ``napari-wkw convert`` starts without libwkw, zarr or the
#: annotation code (0.1 s of the start-up)
COMMAND_MODULES = {
    "annotation-info": "annotation_commands",
    "export-annotation": "annotation_commands",
    "check-equality": "compare_commands",
    "export-tiff": "compare_commands",
    "cube": "convert_commands",
    "convert": "convert_commands",
    "downsample": "dataset_commands",
    "compress": "dataset_commands",
    "recube": "dataset_commands",
    "export-nifti": "export_nifti_command",
    "metadata": "inspect_commands",
    "info": "inspect_commands",
    "convert-knossos": "knossos_command",
    "merge-annotation": "merge_command",
    "convert-nifti": "nifti_command",
    "convert-raw": "raw_command",
    "tile-cube": "tiles_command",
    "upsample": "upsample_command",
    "convert-zarr": "zarr_command",
}


def load_all_commands() -> None:
    """Import every command's module (for listings, and the tests)."""
    for module in sorted(set(COMMAND_MODULES.values())):
        importlib.import_module(f"{__package__}.{module}")


class Group(click.Group):
    """Turns the core's errors into one line and exit 2 instead of a traceback; imports a
    command's module when the command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMAND_MODULES))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMAND_MODULES:
            importlib.import_module(f"{__package__}.{COMMAND_MODULES[name]}")
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        try:
            with _warnings_as_lines():
                return super().invoke(ctx)
        except (CancelledError, KeyboardInterrupt):
            click.echo("napari-wkw: cancelled; every file written so far is complete", err=True)
            sys.exit(EXIT_CANCELLED)
        except WKWError as error:
            message = str(error)
            if message.endswith(("no space left on device", "read-only file system")):
                message += _RERUN_HINT
            raise Failure(message) from None
        except click.UsageError as error:
            raise _usage_failure(error) from None
        except OSError as error:
            raise Failure(_os_message(error)) from None


@contextlib.contextmanager
def _warnings_as_lines():
    """Show the core's warnings as one ``napari-wkw: warning: ...`` line each on stderr."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", WKWWarning)
            yield
    finally:
        # shown after the recording ends: inside it, showwarning appends to ``caught``,
        # and a foreign warning (e.g. from a dask cluster) made this loop endless
        seen = set()
        for warning in caught:
            message = str(warning.message)
            if issubclass(warning.category, WKWWarning) and message not in seen:
                seen.add(message)
                click.echo(f"napari-wkw: warning: {message}", err=True)
            elif not issubclass(warning.category, WKWWarning):
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)


#: what to do after a write failed because of the file system, not the data
_RERUN_HINT = "; nothing half-written was kept: make room (or make it writable) and run the same command again"


def _os_message(error: OSError) -> str:
    name = error.filename if error.filename is not None else ""
    reason = error.strerror or str(error)
    if error.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
        reason += _RERUN_HINT
    return f"{name}: {reason}" if name else reason


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="napari-wkw")
def main() -> None:
    """WKW (webknossos-wrap) datasets: convert into WKW, inspect, downsample, compress, recube, compare, export;
    WEBKNOSSOS annotations: inspect, export, merge.

    Run `napari-wkw COMMAND --help` for a command's options. Voxel sizes are x,y,z in
    nanometres, mags are written 1, 2, 2-2-1 ..., boxes are x,y,z,width,height,depth
    in mag-1 voxels.
    """


# ---- parsing ------------------------------------------------------------------------------


def _triple(text: str, what: str, kind=float) -> tuple:
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = tuple(kind(p) for p in parts)
    except ValueError:
        raise click.BadParameter(f"{what} must be three numbers x,y,z, not {text!r}") from None
    if len(values) != 3:
        raise click.BadParameter(f"{what} must be three numbers x,y,z, not {text!r}")
    return values


def parse_voxel_size(ctx, param, value):
    if value is None:
        return None
    size = _triple(value, "voxel size")
    if min(size) <= 0:
        raise click.BadParameter(f"voxel size must be positive, not {value!r}")
    return size


def parse_mag(ctx, param, value):
    if value is None:
        return None
    if isinstance(value, tuple):  # multiple=True
        return tuple(parse_mag(ctx, param, v) for v in value)
    try:
        return Mag.parse(value)
    except (ValueError, WKWError):
        raise click.BadParameter(f"mag must be like 2 or 2-2-1, not {value!r}") from None


def parse_bbox(ctx, param, value):
    if value is None:
        return None
    parts = value.replace(" ", "").split(",")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) != 6 or min(numbers[3:]) <= 0 or min(numbers[:3]) < 0:
        raise click.BadParameter(f"bounding box must be x,y,z,width,height,depth (whole voxels), not {value!r}")
    return BoundingBox(tuple(numbers[:3]), tuple(numbers[3:]))  # type: ignore[arg-type]


def parse_json(ctx, param, value):
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not valid JSON ({error.msg})") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object")
    return parsed


# ---- shared options -----------------------------------------------------------------------


def job_options(function):
    """--jobs, --distribution-strategy, --scheduler, --job-resources -> ``jobs=JobSettings``."""

    @click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Workers [default: cores].")
    @click.option(
        "--distribution-strategy",
        type=click.Choice(STRATEGIES),
        default="threads",
        show_default=True,
        help="How work units run.",
    )
    @click.option(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="Running dask scheduler, tcp://HOST:PORT (strategy dask) [default: start a local cluster of --jobs].",
    )
    @click.option(
        "--job-resources",
        default=None,
        callback=parse_json,
        metavar="JSON",
        help='Slurm worker jobs (strategy slurm; --jobs of them), e.g. \'{"cores": 2, "mem": "4G", '
        '"walltime": "01:00:00", "queue": "q", "job_extra": [], "log_directory": "logs"}\'. See docs/cluster.md.',
    )
    @click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
    @functools.wraps(function)
    def wrapper(*args, jobs, distribution_strategy, scheduler, job_resources, quiet, **kwargs):
        try:
            settings = JobSettings(distribution_strategy, jobs or default_jobs(), scheduler, job_resources)
        except WKWError as error:
            raise click.UsageError(str(error)) from None
        if settings.strategy == "slurm":
            from ..jobs.cluster import slurm_log_directory

            click.echo(f"napari-wkw: Slurm worker logs go to {slurm_log_directory(job_resources)}", err=True)
        with ProgressBar(enabled=not quiet) as progress:
            return function(*args, jobs=settings, progress=progress, **kwargs)

    return wrapper


layer_name_option = click.option("--layer-name", "-l", default=None, help="Only this layer [default: all].")


class ProgressBar:
    """A ``(done, total, label)`` callback drawing one tqdm bar per stage on stderr."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and sys.stderr is not None
        self._bar = None
        self._label = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __call__(self, done: int, total: int, label: str) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self._bar is None or label != self._label or total != self._bar.total:
            self.close()
            self._label = label
            self._bar = tqdm(total=total, desc=label, unit="file", file=sys.stderr, leave=True, dynamic_ncols=True)
        self._bar.n = done
        self._bar.refresh()


def echo(text: str = "") -> None:
    click.echo(text)
