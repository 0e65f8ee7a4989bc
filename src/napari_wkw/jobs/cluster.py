"""The ``dask`` and ``slurm`` strategies: work units on a dask.distributed cluster.

The runner hands units to an executor; here that executor submits them to a
``distributed.Client``: of a running scheduler (``--scheduler``), of a ``LocalCluster``
we start, or of a dask-jobqueue ``SLURMCluster`` whose workers are Slurm jobs. Clusters
we start are bound to 127.0.0.1 unless told otherwise (a dask scheduler runs any code
it is sent, so it must not listen on the network by accident), and are shut down with
the runner, on success, failure and cancel alike.

Retries: a unit that raises an unexpected error (a network filesystem hiccup, a
worker's ``OSError``) runs again up to ``RETRIES`` times (``client.submit(retries=)``),
and a unit whose worker dies is rescheduled by the scheduler, up to ``RETRIES`` times
on clusters we start. A ``WKWError`` is deterministic (bad input): it is returned, not
raised, on the worker, so dask never retries it. What still fails becomes one
``WKWError`` naming the unit's box or file, the worker and its error.

``distributed`` and ``dask_jobqueue`` take about a second to import, so they are only
imported when a cluster strategy is used.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from ..core.errors import WKWError

#: extra attempts for a failing unit (and worker deaths tolerated per unit, on our clusters)
RETRIES = 2
#: seconds to reach a scheduler before saying it cannot be reached
CONNECT_TIMEOUT = 5
#: seconds a cancelled run waits for units already running on our cluster to finish their file
DRAIN_TIMEOUT = 600
#: ``--job-resources`` keys and what they mean for SLURMCluster
SLURM_KEYS = {
    "cores": "CPU cores per worker job (its units run on that many threads) [1]",
    "mem": "memory per worker job, e.g. 4G [4G]",
    "walltime": "time limit per worker job, HH:MM:SS [01:00:00]",
    "queue": "Slurm partition [the cluster's default]",
    "account": "Slurm account [none]",
    "job_extra": 'more #SBATCH options, e.g. ["--exclusive"] [none]',
    "log_directory": "folder for the worker jobs' logs [./napari-wkw-slurm-logs]",
    "scheduler_host": "address the scheduler listens on, reachable from the nodes [127.0.0.1]",
}
DEFAULT_LOG_DIRECTORY = "napari-wkw-slurm-logs"


# ---- on the worker ---------------------------------------------------------------------------


@dataclasses.dataclass
class Refused:
    """A deterministic error (``WKWError``) carried back as a value, so it is not retried."""

    error: WKWError


class UnitFailed(Exception):
    """An unexpected error on a worker, with the worker's host in the message (retried)."""


def run_unit(function, unit):
    """``function(unit)`` on a worker: deterministic errors come back, others are raised."""
    try:
        return function(unit)
    except WKWError as error:
        return Refused(error)
    except Exception as error:
        raise UnitFailed(f"{type(error).__name__}: {error} (on {socket.gethostname()}, pid {os.getpid()})") from None


# ---- describing units in messages -------------------------------------------------------------


def _box(value) -> str:
    return ",".join(str(v) for v in (*value.topleft, *value.size))


def describe(unit: Any) -> str:
    """A short description of a unit for messages: its box(es) and files."""
    if dataclasses.is_dataclass(unit):
        items = [(field.name, getattr(unit, field.name)) for field in dataclasses.fields(unit)]
    elif isinstance(unit, tuple):
        items = [("", value) for value in unit]
    else:
        return str(unit)[:200]
    parts = []
    for name, value in items:
        if hasattr(value, "topleft") and hasattr(value, "size"):
            parts.append(f"{name or 'box'} {_box(value)}")
        elif name == "boxes" and value:
            more = f" ... ({len(value)} files)" if len(value) > 1 else ""
            parts.append(f"box {_box(value[0])}{more}")
        elif isinstance(value, str | os.PathLike) and (name in ("source", "target", "a", "b", "mag_path", "path", "")):
            parts.append(f"{name + ' ' if name else ''}{value}")
        elif name == "source" and getattr(value, "description", ""):
            parts.append(f"source {value.description}")
    return "; ".join(parts)[:300] or type(unit).__name__


# ---- the executor ------------------------------------------------------------------------------


class ClusterExecutor(cf.Executor):
    """A ``concurrent.futures`` executor over a distributed client (and the cluster we started)."""

    def __init__(self, client, cluster=None, log_directory: Path | None = None) -> None:
        self.client = client
        self.cluster = cluster  # None: someone else's scheduler, which we only disconnect from
        self.log_directory = log_directory
        self._futures: dict = {}  # key -> distributed future still outstanding

    @property
    def workers(self) -> int:
        """Threads of the workers connected now (units that run at once)."""
        try:
            return sum(self.client.nthreads().values())
        except Exception:  # noqa: BLE001 - a question, not an operation
            return 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        key = f"{getattr(fn, '__name__', 'unit')}-{uuid.uuid4().hex}"
        future = self.client.submit(run_unit, fn, *args, key=key, pure=False, retries=RETRIES)
        self._futures[key] = future
        return self._relay(key, future)

    def _relay(self, key, future) -> cf.Future:
        """A ``concurrent.futures.Future`` that follows ``future`` (and cancels it when cancelled)."""
        outer: cf.Future = cf.Future()

        def cancel_inner(done: cf.Future) -> None:
            if done.cancelled():
                # at once, not when the scheduler confirms: a lost scheduler must not hang cf.wait()
                with contextlib.suppress(RuntimeError):
                    done.set_running_or_notify_cancel()
                with contextlib.suppress(Exception):
                    future.cancel()

        def follow(inner) -> None:
            if inner.status not in ("finished", "cancelled", "error") and not outer.cancelled():
                # "lost": the worker holding the result died and the scheduler computes the unit
                # again; wait for that (reading this state as an outcome gave a result of None)
                inner.add_done_callback(follow)
                return
            self._futures.pop(key, None)
            if outer.cancelled():
                with contextlib.suppress(RuntimeError):  # already notified
                    outer.set_running_or_notify_cancel()  # wakes cf.wait() on it
                return
            try:
                if inner.status == "finished":
                    outer.set_result(inner.result())
                elif inner.status == "cancelled":
                    if outer.cancel():
                        outer.set_running_or_notify_cancel()
                else:
                    outer.set_exception(inner.exception())
            except cf.InvalidStateError:  # cancelled meanwhile
                pass
            except Exception as error:  # noqa: BLE001 - the client went away: say so through the future
                if not outer.done():
                    outer.set_exception(error)

        outer.add_done_callback(cancel_inner)
        future.add_done_callback(follow)
        return outer

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Cancel what has not run, let running units finish their files, stop our cluster."""
        try:
            if cancel_futures and self._futures:
                self.client.cancel(list(self._futures.values()))
            if self.cluster is not None and wait:
                self._drain()
        finally:
            try:
                self.client.close(timeout=10)
            finally:
                if self.cluster is not None:
                    self.cluster.close(timeout=30)
                    self.cluster = None

    def _drain(self) -> None:
        """Wait until no worker of our cluster runs a unit (cancelled ones finish their file)."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < deadline:
            try:
                running = self.client.run(_executing, on_error="ignore")
            except Exception:  # noqa: BLE001 - workers gone: nothing runs
                return
            if not any(isinstance(n, int) and n > 0 for n in running.values()):
                return
            time.sleep(0.1)


def _executing(dask_worker) -> int:
    return len(dask_worker.state.executing)


def failure(error: BaseException, unit: Any, label: str, executor: ClusterExecutor) -> WKWError:
    """One clear error for a unit that failed on the cluster after its retries."""
    logs = f"; worker logs in {executor.log_directory}" if executor.log_directory else ""
    if type(error).__name__ == "KilledWorker":
        deaths = getattr(error, "allowed_failures", RETRIES) + 1  # the scheduler's setting, not ours
        last = getattr(getattr(error, "last_worker", None), "address", None)
        where = f", last {last}" if last else ""
        return WKWError(
            f"{label}: the workers running {describe(unit)} died {deaths} times{where} (killed, or out of "
            f"memory?){logs}; files finished so far are complete, run the command again"
        )
    if isinstance(error, UnitFailed):
        return WKWError(f"{label}: {describe(unit)} failed {RETRIES + 1} times, last with {error}{logs}")
    return WKWError(f"{label}: {describe(unit)} failed: {type(error).__name__}: {error}{logs}")


# ---- making executors ----------------------------------------------------------------------------


def _quiet_dask():
    """dask config for clusters we start: our retry count, no dashboard, no log noise."""
    import dask

    return dask.config.set(
        {
            "distributed.scheduler.allowed-failures": RETRIES,
            "distributed.logging.distributed": "error",
        }
    )


def check_scheduler_address(address: str) -> None:
    """Refuse an address dask cannot parse (WKWError), before anything connects to it."""
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls"):
            parse_host_port(location)
    except Exception as error:  # noqa: BLE001 - every parse failure is the same mistake
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WKWError(f"{address!r} is not a dask scheduler address ({reason}); give it as tcp://HOST:PORT") from None


def connect(address: str) -> ClusterExecutor:
    """An executor on the running scheduler at ``address`` (one clear error if unreachable)."""
    from distributed import Client

    check_scheduler_address(address)
    try:
        # a half-made Client tries to close itself for 10 s when the address cannot be parsed
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except Exception as error:  # noqa: BLE001 - bad address, refused, timed out: all one message
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WKWError(
            f"cannot reach the dask scheduler at {address!r} ({reason}); give its address as tcp://HOST:PORT"
        ) from None
    return ClusterExecutor(client)


def local_cluster(jobs: int) -> ClusterExecutor:
    """A LocalCluster of ``jobs`` single-threaded worker processes on 127.0.0.1."""
    from distributed import Client, LocalCluster

    with _quiet_dask():
        cluster = LocalCluster(
            n_workers=jobs,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",  # None still binds 8787 (and warns when it is taken)
            scheduler_port=0,
        )
        try:
            client = Client(cluster, set_as_default=False)
        except BaseException:
            cluster.close()
            raise
    return ClusterExecutor(client, cluster)


def slurm_options(resources: dict | None) -> dict:
    """SLURMCluster keyword arguments from ``--job-resources`` (checked: unknown keys, types)."""
    resources = dict(resources or {})
    unknown = sorted(set(resources) - set(SLURM_KEYS))
    if unknown:
        raise WKWError(
            f"--job-resources: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(SLURM_KEYS)}"
        )
    cores = resources.get("cores", 1)
    if not isinstance(cores, int) or isinstance(cores, bool) or cores < 1:
        raise WKWError(f"--job-resources: cores must be a whole number of at least 1, not {cores!r}")
    extra = resources.get("job_extra", [])
    if not isinstance(extra, list) or not all(isinstance(e, str) for e in extra):
        raise WKWError(f"--job-resources: job_extra must be a list of strings, not {extra!r}")
    for key in ("mem", "walltime", "queue", "account", "log_directory", "scheduler_host"):
        if key in resources and not isinstance(resources[key], str):
            raise WKWError(f"--job-resources: {key} must be a string, not {resources[key]!r}")
    host = resources.get("scheduler_host", "127.0.0.1")
    loopback = host in ("127.0.0.1", "localhost", "::1")
    options = {
        "cores": cores,
        "processes": 1,
        "memory": resources.get("mem", "4G"),
        "walltime": resources.get("walltime", "01:00:00"),
        "queue": resources.get("queue"),
        "account": resources.get("account"),
        "job_extra_directives": extra,
        "log_directory": str(slurm_log_directory(resources)),
        "job_name": "napari-wkw",
        "python": sys.executable,
        "scheduler_options": {"host": host, "dashboard_address": ":0"},
    }
    if loopback:
        options["interface"] = "lo"  # workers listen on loopback too: all traffic stays on this node
    return options


def slurm_log_directory(resources: dict | None) -> Path:
    """Where the Slurm worker jobs write their logs (absolute: the jobs run elsewhere)."""
    return Path((resources or {}).get("log_directory", DEFAULT_LOG_DIRECTORY)).expanduser().absolute()


def slurm_cluster(jobs: int, resources: dict | None) -> ClusterExecutor:
    """A SLURMCluster of ``jobs`` worker jobs (one worker each), scaled up at once."""
    options = slurm_options(resources)
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    with _quiet_dask():
        cluster = SLURMCluster(**options)
        try:
            _check_job_script(cluster.job_script())
            cluster.scale(jobs=jobs)
            client = Client(cluster, set_as_default=False)
        except BaseException:
            cluster.close()
            raise
    return ClusterExecutor(client, cluster, Path(options["log_directory"]))


def _check_job_script(script: str) -> None:
    """``sbatch --test-only`` the worker job first: a job Slurm refuses (unknown partition or
    account, more memory than a node has) is one clear error, not a run waiting for workers
    that never come (dask-jobqueue submits in the background and only logs a refusal)."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="napari-wkw-job-") as file:
        file.write(script)
        file.flush()
        try:
            checked = subprocess.run(["sbatch", "--test-only", file.name], capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            raise WKWError("sbatch not found: the slurm strategy needs Slurm's commands on PATH") from None
        except subprocess.TimeoutExpired:
            raise WKWError("sbatch --test-only did not answer within 60 s: is Slurm's controller up?") from None
    if checked.returncode != 0:
        lines = [line for line in (checked.stderr or checked.stdout).splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit status {checked.returncode}"
        raise WKWError(f"Slurm refuses the worker job ({reason}); check --job-resources")


__all__ = [
    "RETRIES",
    "SLURM_KEYS",
    "ClusterExecutor",
    "Refused",
    "UnitFailed",
    "connect",
    "describe",
    "failure",
    "local_cluster",
    "run_unit",
    "slurm_cluster",
    "slurm_log_directory",
    "slurm_options",
]
