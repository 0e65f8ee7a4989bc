"""The job runner: order, progress, cancel, errors, every local strategy."""

from __future__ import annotations

import threading
import time

import pytest

from napari_wkw.core.errors import CancelledError, WKWError
from napari_wkw.core.progress import CancelToken
from napari_wkw.jobs import JobSettings, Runner


def square(value: int) -> int:
    return value * value


def slow_square(value: int) -> int:
    time.sleep(0.02)
    return value * value


def fail_on_three(value: int) -> int:
    if value == 3:
        raise WKWError(f"unit {value}: broken file")
    return value


@pytest.mark.parametrize("strategy", ["sequential", "threads", "processes"])
def test_results_in_unit_order_and_progress_per_unit(strategy):
    seen = []
    with Runner(JobSettings(strategy, jobs=2), progress=lambda d, t, label: seen.append((d, t, label))) as runner:
        assert runner.map(slow_square, range(12), "squaring") == [i * i for i in range(12)]
    assert seen[0] == (0, 12, "squaring") and seen[-1] == (12, 12, "squaring")
    assert [d for d, _, _ in seen] == list(range(13))


@pytest.mark.parametrize("strategy", ["sequential", "threads"])
def test_cancel_stops_between_units(strategy):
    token = CancelToken()
    started = []

    def cancel_after_three(done, total, label):
        started.append(done)
        if done == 3:
            token.cancel()

    runner = Runner(JobSettings(strategy, jobs=2), progress=cancel_after_three, cancel=token)
    with runner, pytest.raises(CancelledError):
        runner.map(slow_square, range(100), "squaring")
    assert max(started) < 10  # stopped promptly, not after all 100


def test_cancel_from_another_thread_while_units_run():
    token = CancelToken()
    threading.Timer(0.1, token.cancel).start()
    start = time.perf_counter()
    with Runner(JobSettings("threads", jobs=2), cancel=token) as runner, pytest.raises(CancelledError):
        runner.map(slow_square, range(1000), "squaring")
    assert time.perf_counter() - start < 2  # 1000 units would take 10 s


@pytest.mark.parametrize("strategy", ["sequential", "threads", "processes"])
def test_a_failing_unit_raises_its_error(strategy):
    with Runner(JobSettings(strategy, jobs=2)) as runner, pytest.raises(WKWError, match="unit 3: broken file"):
        runner.map(fail_on_three, range(8), "checking")


def test_bad_settings_are_refused():
    with pytest.raises(WKWError, match="distribution strategy"):
        JobSettings("cloud")
    with pytest.raises(WKWError, match="at least 1"):
        JobSettings("threads", jobs=0)


def test_cluster_options_only_with_their_strategy():
    with pytest.raises(WKWError, match="use it with --distribution-strategy dask"):
        JobSettings("threads", scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(WKWError, match="use them with --distribution-strategy slurm"):
        JobSettings("dask", job_resources={"cores": 1})
    with pytest.raises(WKWError, match="unknown keys 'gpu', 'nodes'; known: cores, mem"):
        JobSettings("slurm", job_resources={"cores": 1, "nodes": 2, "gpu": 1})
    with pytest.raises(WKWError, match="cores must be a whole number"):
        JobSettings("slurm", job_resources={"cores": "2"})


def test_at_most_jobs_units_run_at_once():
    running = []
    lock = threading.Lock()
    peak = [0]

    def track(value):
        with lock:
            running.append(value)
            peak[0] = max(peak[0], len(running))
        time.sleep(0.01)
        with lock:
            running.remove(value)
        return value

    with Runner(JobSettings("threads", jobs=3)) as runner:
        runner.map(track, range(30), "x")
    assert peak[0] <= 3


def die(value: int) -> int:
    import os

    if value == 2:
        os._exit(9)  # as if killed, or taken by the out-of-memory killer
    return value


def test_a_dead_worker_process_is_one_clear_error():
    runner = Runner(JobSettings("processes", jobs=2))
    with runner, pytest.raises(WKWError, match="a worker process died while testing"):
        runner.map(die, range(4), "testing")
