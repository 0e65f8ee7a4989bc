"""One runner for all long work: independent units handed to an executor.

A unit is a small picklable value (paths, boxes, parameters; never big arrays) and
the function applied to it is a module-level function, so the same units run in this
thread, in a thread pool, in worker processes, or on a dask cluster or Slurm
(``cluster.py``), all of which are ``concurrent.futures.Executor``-shaped. Units that write data own
whole WKW files, so no two of them ever write the same file.

The runner keeps at most ``2 x jobs`` units in flight (memory is bounded by the unit
size times the workers, not by the dataset), reports ``(done, total, label)`` after
every finished unit, checks the cancel token while it waits, and on cancel or on a
failed unit stops submitting, lets the running units finish their files, and raises.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import pickle
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import WKWError, WKWWarning
from ..core.progress import CancelToken, ProgressCallback, cancel_scope, no_progress

STRATEGIES = ("sequential", "threads", "processes", "dask", "slurm")
#: seconds between cancel checks while units run
_POLL = 0.1
#: pickled bytes above which a unit sent to a cluster is said to carry data, not paths (an
#: image stack's unit lists every slice file, ~100 bytes each: 80k slices stay below)
BIG_UNIT = 8 * 2**20


def default_jobs() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class JobSettings:
    """How to run work units; what the CLI's and the wizards' options fill in."""

    strategy: str = "threads"
    jobs: int = field(default_factory=default_jobs)
    scheduler: str | None = None  # dask: address of a running scheduler
    job_resources: dict | None = None  # slurm: resources per worker job

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise WKWError(f"distribution strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        if int(self.jobs) < 1:
            raise WKWError(f"--jobs must be at least 1, not {self.jobs}")
        if self.scheduler and self.strategy != "dask":
            raise WKWError("--scheduler is the address of a dask scheduler: use it with --distribution-strategy dask")
        if self.scheduler:
            from .cluster import check_scheduler_address

            check_scheduler_address(self.scheduler)
        if self.job_resources is not None:
            if self.strategy != "slurm":
                raise WKWError("--job-resources are for Slurm worker jobs: use them with --distribution-strategy slurm")
            from .cluster import slurm_options

            slurm_options(self.job_resources)  # unknown keys and wrong types fail here, before any work

    @property
    def workers(self) -> int:
        """Units that run at the same time (for a running scheduler: what the runner finds there)."""
        if self.strategy == "sequential":
            return 1
        if self.strategy == "slurm":
            return int(self.jobs) * int((self.job_resources or {}).get("cores", 1))
        return int(self.jobs)


class _InlineExecutor(cf.Executor):
    """Runs each unit at submission, in the calling thread (strategy ``sequential``)."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001 - handed to the runner like any executor's
            future.set_exception(error)
        return future


def make_executor(settings: JobSettings) -> cf.Executor:
    """The executor for a strategy (dask and Slurm ones come from ``cluster.py``)."""
    if settings.strategy == "sequential":
        return _InlineExecutor()
    if settings.strategy == "threads":
        return cf.ThreadPoolExecutor(settings.jobs, thread_name_prefix="napari-wkw")
    if settings.strategy == "processes":
        # spawn, not fork: the parent may run Qt or reader threads that fork would copy mid-lock
        return cf.ProcessPoolExecutor(settings.jobs, mp_context=multiprocessing.get_context("spawn"))
    from . import cluster

    if settings.strategy == "dask":
        return cluster.connect(settings.scheduler) if settings.scheduler else cluster.local_cluster(settings.jobs)
    return cluster.slurm_cluster(settings.jobs, settings.job_resources)


def _warn_if_big(unit: Any, label: str) -> None:
    """Units travel through the scheduler: say so when they carry data instead of paths."""
    size = len(pickle.dumps(unit, protocol=pickle.HIGHEST_PROTOCOL))
    if size > BIG_UNIT:
        warnings.warn(
            f"{label}: each work unit carries {size / 2**20:.1f} MiB through the scheduler (data held in "
            "memory?); on a cluster, convert from files on the shared filesystem instead",
            WKWWarning,
            stacklevel=3,
        )


def _in_cancel_scope(token: CancelToken, function: Callable[[Any], Any], unit: Any) -> Any:
    with cancel_scope(token):
        return function(unit)


class Runner:
    """Runs units through one executor, kept for the runner's life (use it as a context)."""

    def __init__(
        self,
        settings: JobSettings | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        self.settings = settings or JobSettings()
        self.progress = progress or no_progress
        self.cancel = cancel or CancelToken()
        self._executor: cf.Executor | None = None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            executor, self._executor = self._executor, None
            executor.shutdown(wait=True, cancel_futures=True)

    @property
    def workers(self) -> int:
        """Units that run at the same time (connects to a given dask scheduler to count them)."""
        if self.settings.strategy == "dask" and self.settings.scheduler:
            return self._get_executor().workers or self.settings.workers  # type: ignore[attr-defined]
        return self.settings.workers

    def _get_executor(self) -> cf.Executor:
        if self._executor is None:
            self._executor = make_executor(self.settings)
        return self._executor

    def check(self) -> None:
        """Raise CancelledError if the user cancelled."""
        self.cancel.raise_if_cancelled()

    def _submit(self, function: Callable[[Any], Any], unit: Any) -> cf.Future:
        if self.settings.strategy in ("sequential", "threads"):
            # in this process, units see the token and stop between tiles
            return self._executor.submit(_in_cancel_scope, self.cancel, function, unit)  # type: ignore[union-attr]
        return self._executor.submit(function, unit)  # type: ignore[union-attr]

    def map(self, function: Callable[[Any], Any], units: Sequence[Any], label: str) -> list[Any]:
        """``[function(unit) for unit in units]``, run by the strategy; results in unit order."""
        units = list(units)
        total = len(units)
        self.progress(0, total, label)
        self.check()
        if not units:
            return []
        executor = self._get_executor()
        if self.settings.strategy in ("dask", "slurm"):
            _warn_if_big(units[0], label)
        window = 2 * self.workers
        results: list[Any] = [None] * total
        pending: dict[cf.Future, int] = {}
        next_unit = 0
        done = 0
        try:
            while done < total:
                while next_unit < total and len(pending) < window:
                    self.check()
                    pending[self._submit(function, units[next_unit])] = next_unit
                    next_unit += 1
                finished, _ = cf.wait(pending, timeout=_POLL, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    index = pending.pop(future)
                    results[index] = self._result(future, units[index], label, executor)
                    done += 1
                    self.progress(done, total, label)
                self.check()
        except BaseException:
            for future in pending:
                future.cancel()
            # running units finish their (whole, atomically renamed) files before we return
            cf.wait(pending)
            raise
        return results

    @staticmethod
    def _result(future: cf.Future, unit: Any, label: str, executor: cf.Executor) -> Any:
        """A finished unit's result, or one clear error for it."""
        from . import cluster

        try:
            result = future.result()
        except BrokenProcessPool:
            raise WKWError(
                f"a worker process died while {label} (killed, or out of memory?); "
                "files finished so far are complete, run the command again"
            ) from None
        except WKWError:
            raise
        except Exception as error:
            if isinstance(executor, cluster.ClusterExecutor):
                raise cluster.failure(error, unit, label, executor) from None
            raise
        if isinstance(result, cluster.Refused):
            raise result.error
        return result


__all__ = ["STRATEGIES", "JobSettings", "Runner", "default_jobs", "make_executor"]
