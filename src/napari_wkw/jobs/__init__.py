"""Running long work: units, strategies, progress and cancel (headless, no Qt)."""

from .runner import STRATEGIES, JobSettings, Runner, default_jobs, make_executor

__all__ = ["STRATEGIES", "JobSettings", "Runner", "default_jobs", "make_executor"]
