"""Running long work: units, strategies, progress and cancel (headless, no Qt)."""

# core first: core.downsample imports jobs.runner, so importing jobs alone (as a dask
# worker does when it unpickles a unit's function) would otherwise meet a half-made runner
from .. import core  # noqa: F401, I001
from .runner import STRATEGIES, JobSettings, Runner, default_jobs, make_executor

__all__ = ["STRATEGIES", "JobSettings", "Runner", "default_jobs", "make_executor"]
