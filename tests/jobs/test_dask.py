"""The dask strategy against a real LocalCluster: same bytes as sequential, retries, cancel.

One LocalCluster of 2 worker processes on 127.0.0.1 is shared by the module (starting
one takes 2-3 s); a few tests start their own through ``--distribution-strategy dask``
without ``--scheduler``.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from napari_wkw.cli import main
from napari_wkw.core.errors import CancelledError, WKWError, WKWWarning
from napari_wkw.core.geometry import BoundingBox
from napari_wkw.core.progress import CancelToken
from napari_wkw.core.save import ArrayLayer, save_dataset
from napari_wkw.jobs import JobSettings, Runner
from napari_wkw.jobs.cluster import RETRIES, describe

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def scheduler():
    """The address of a running LocalCluster: 2 single-threaded worker processes."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0")
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args] + ["-q"], catch_exceptions=False)


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` by relative name, with its bytes."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def assert_same_tree(a: Path, b: Path) -> None:
    files_a, files_b = tree(a), tree(b)
    assert sorted(files_a) == sorted(files_b)
    different = [name for name in files_a if files_a[name] != files_b[name]]
    assert not different, different[:5]


@pytest.fixture(scope="module")
def many_files(tmp_path_factory):
    """A raw dataset of 32^3-voxel files (7 x 5 x 3 of them): many units per step."""
    root = tmp_path_factory.mktemp("many")
    data = np.random.default_rng(7).integers(0, 255, (70, 150, 210), dtype=np.uint8)
    layer = ArrayLayer("color", "color", [data], (11.24, 11.24, 25.0), offset=(5, 6, 7))
    save_dataset(root / "big", [layer], compress=False, pyramid=False)
    result = invoke("recube", root / "big", root / "small", "--file-len", "1", "--no-compress")
    assert result.exit_code == 0, result.output
    return root / "small"


def run_operations(source: Path, folder: Path, *strategy: str) -> Path:
    """downsample, compress, recube, export-tiff, metadata and check-equality, with ``strategy``."""
    folder.mkdir()
    dataset = folder / "ds"
    shutil.copytree(source, dataset)
    steps = [
        ("downsample", dataset, "--max-mag", "4"),
        ("compress", dataset, folder / "lz4"),
        ("recube", folder / "lz4", folder / "recubed", "--file-len", "2"),
        ("export-tiff", folder / "lz4", folder / "tiff", "--mag", "2-2-1"),
        ("metadata", folder / "recubed", "--voxel-size", "11.24,11.24,25"),  # from disk: reads every file
        ("check-equality", dataset, folder / "lz4"),
    ]
    for step in steps:
        if step[0] == "metadata":
            (folder / "recubed" / "datasource-properties.json").unlink()
        result = invoke(*step, "--jobs", "2", *strategy)
        assert result.exit_code == 0, (step, result.output)
    return folder


def test_operations_on_a_running_scheduler_equal_sequential(many_files, scheduler, tmp_path):
    expected = run_operations(many_files, tmp_path / "sequential", "--distribution-strategy", "sequential")
    got = run_operations(many_files, tmp_path / "dask", "--distribution-strategy", "dask", "--scheduler", scheduler)
    assert_same_tree(expected, got)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A folder of 70 TIFF slices of 300 x 260."""
    folder = tmp_path_factory.mktemp("stack")
    rng = np.random.default_rng(3)
    for z in range(70):
        tifffile.imwrite(folder / f"{z}.tif", rng.integers(0, 255, (260, 300), dtype=np.uint8))
    return folder


@pytest.mark.parametrize("where", ["scheduler", "own cluster"])
def test_conversion_equals_sequential(stack, scheduler, tmp_path, where):
    options = ["--voxel-size", "11.24,11.24,25", "--batch-size", "32", "--jobs", "2"]
    assert (
        invoke("convert", stack, tmp_path / "seq" / "out", *options, "--distribution-strategy", "sequential").exit_code
        == 0
    )
    dask = ["--distribution-strategy", "dask"] + (["--scheduler", scheduler] if where == "scheduler" else [])
    result = invoke("convert", stack, tmp_path / "dask" / "out", *options, *dask)
    assert result.exit_code == 0, result.output
    assert_same_tree(tmp_path / "seq", tmp_path / "dask")


def test_downsample_on_own_cluster_equals_sequential(many_files, tmp_path):
    for name, strategy in [("seq", "sequential"), ("dask", "dask")]:
        shutil.copytree(many_files, tmp_path / name)
        result = invoke(
            "downsample", tmp_path / name, "--max-mag", "4", "--jobs", "2", "--distribution-strategy", strategy
        )
        assert result.exit_code == 0, result.output
    assert_same_tree(tmp_path / "seq", tmp_path / "dask")


# ---- units that die, fail, or take long: module-level so workers can unpickle them ----------


def die_once(marker: str) -> str:
    """Kill this worker process the first time (as the out-of-memory killer would)."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os._exit(1)
    return f"{marker} done in {os.getpid()}"


def count_then_fail(unit: tuple[str, BoundingBox]) -> None:
    folder, box = unit
    with open(Path(folder) / "attempts", "a") as attempts:
        attempts.write("x")
    raise OSError(f"disk on fire at {box.topleft}")


def count_then_refuse(folder: str) -> None:
    with open(Path(folder) / "attempts", "a") as attempts:
        attempts.write("x")
    raise WKWError(f"{folder}/z0/y0/x0.wkw: not a WKW file")


def slow(value: int) -> int:
    time.sleep(0.3)
    return value


def test_a_unit_whose_worker_dies_runs_again_elsewhere(scheduler, tmp_path):
    units = [str(tmp_path / f"marker-{i}") for i in range(2)]
    with Runner(JobSettings("dask", jobs=2, scheduler=scheduler)) as runner:
        results = runner.map(die_once, units, "dying")
    assert [r.split(" done")[0] for r in results] == units  # every unit complete, in order
    killed = {Path(u).read_text() for u in units}
    assert all(r.split()[-1] not in killed for r in results)  # each finished in another process


def test_workers_killed_during_a_real_operation(many_files, scheduler, tmp_path):
    from distributed import Client

    with Client(scheduler, set_as_default=False) as client:
        pids = list(client.run(os.getpid).values())
    shutil.copytree(many_files, tmp_path / "seq")
    shutil.copytree(many_files, tmp_path / "dask")
    assert invoke("compress", tmp_path / "seq", "--distribution-strategy", "sequential").exit_code == 0
    killed = []

    def kill_one(done, total, label):
        if done == 10 and not killed:
            killed.append(pids[0])
            os.kill(pids[0], signal.SIGKILL)

    from napari_wkw.ops.compress import compress

    compress(tmp_path / "dask", jobs=JobSettings("dask", jobs=2, scheduler=scheduler), progress=kill_one)
    assert killed
    assert_same_tree(tmp_path / "seq", tmp_path / "dask")


def test_a_unit_that_always_fails_is_reported_once_after_its_retries(scheduler, tmp_path):
    box = BoundingBox((32, 64, 0), (32, 32, 32))
    with (
        Runner(JobSettings("dask", jobs=2, scheduler=scheduler)) as runner,
        pytest.raises(WKWError) as raised,
    ):
        runner.map(count_then_fail, [(str(tmp_path), box)], "compressing color mag 1")
    message = str(raised.value)
    assert f"compressing color mag 1: {tmp_path}; box 32,64,0,32,32,32 failed" in message
    assert f"failed {RETRIES + 1} times, last with OSError: disk on fire at (32, 64, 0)" in message
    assert "\n" not in message
    assert (tmp_path / "attempts").read_text() == "x" * (RETRIES + 1)


def test_bad_input_is_not_retried(scheduler, tmp_path):
    with (
        Runner(JobSettings("dask", jobs=2, scheduler=scheduler)) as runner,
        pytest.raises(WKWError, match="x0.wkw: not a WKW file"),
    ):
        runner.map(count_then_refuse, [str(tmp_path)], "reading")
    assert (tmp_path / "attempts").read_text() == "x"


def test_cancel_stops_promptly_and_shuts_our_cluster_down():
    token = CancelToken()
    runner = Runner(JobSettings("dask", jobs=2), progress=lambda d, t, label: d >= 2 and token.cancel(), cancel=token)
    executor = runner._get_executor()
    client, cluster = executor.client, executor.cluster
    start = time.perf_counter()
    with runner, pytest.raises(CancelledError):
        runner.map(slow, range(200), "sleeping")  # 30 s of work on 2 workers
    assert time.perf_counter() - start < 10
    assert client.status == "closed"
    assert cluster.status.name == "closed"


def test_cancel_on_a_running_scheduler_drops_the_queued_units(scheduler):
    from distributed import Client

    token = CancelToken()
    threading.Timer(0.5, token.cancel).start()
    with (
        Runner(JobSettings("dask", jobs=2, scheduler=scheduler), cancel=token) as runner,
        pytest.raises(CancelledError),
    ):
        runner.map(slow, range(200), "sleeping")
    with Client(scheduler, set_as_default=False) as client:
        deadline = time.monotonic() + 5
        while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0


def test_an_unreachable_scheduler_is_one_line_not_a_hang(many_files):
    start = time.perf_counter()
    result = invoke("compress", many_files, "--distribution-strategy", "dask", "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 2
    assert "cannot reach the dask scheduler at 'tcp://127.0.0.1:9' (Timed out" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert time.perf_counter() - start < 20


@pytest.mark.filterwarnings("ignore:Sending large graph")  # distributed's own word on the same thing
def test_units_carrying_arrays_are_named(scheduler, tmp_path):
    from napari_wkw.convert.engine import ConversionSettings, LayerSpec, convert_layers
    from napari_wkw.convert.source import ArraySource

    volume = np.zeros((40, 600, 600), np.uint8)  # 14 MiB, travels with every unit
    with pytest.warns(WKWWarning, match="each work unit carries .* MiB"):
        convert_layers(
            tmp_path / "out",
            [LayerSpec(ArraySource(volume), "color")],
            ConversionSettings((1.0, 1.0, 1.0), pyramid=False),
            jobs=JobSettings("dask", jobs=2, scheduler=scheduler),
        )


def test_describe_names_boxes_and_files():
    from napari_wkw.core.downsample import DownsampleUnit

    unit = DownsampleUnit(
        "/d/color/1",
        "/d/color/2",
        (2, 2, 1),
        "median",
        BoundingBox((0,) * 3, (9,) * 3),
        BoundingBox((32, 0, 0), (32, 32, 32)),
    )
    assert describe(unit) == "source /d/color/1; target /d/color/2; inside 0,0,0,9,9,9; box 32,0,0,32,32,32"
    assert describe(("/d/color/1", BoundingBox((1, 2, 3), (4, 5, 6)))) == "/d/color/1; box 1,2,3,4,5,6"


def test_relative_paths_reach_workers_running_elsewhere(stack, scheduler, tmp_path, monkeypatch):
    """The fixture's workers run in the folder pytest started in, not in this one."""
    monkeypatch.chdir(stack.parent)
    options = ["--voxel-size", "11.24,11.24,25", "--no-pyramid", "--jobs", "2"]
    assert (
        invoke(
            "convert", stack.name, tmp_path / "seq" / "out", *options, "--distribution-strategy", "sequential"
        ).exit_code
        == 0
    )
    result = invoke(
        "convert",
        stack.name,
        tmp_path / "dask" / "out",
        *options,
        "--distribution-strategy",
        "dask",
        "--scheduler",
        scheduler,
    )
    assert result.exit_code == 0, result.output
    assert_same_tree(tmp_path / "seq", tmp_path / "dask")


def test_a_unit_that_kills_every_worker_is_one_line():
    """What the scheduler raises once a unit's workers died more than allowed-failures times."""
    from distributed.scheduler import KilledWorker

    from napari_wkw.jobs.cluster import ClusterExecutor, failure

    unit = ("/d/color/1", BoundingBox((0, 0, 1024), (1024, 1024, 1024)))
    executor = ClusterExecutor(client=None, log_directory=Path("/shared/logs"))
    worker = type("WorkerState", (), {"address": "tcp://10.0.0.7:4242"})()
    error = failure(KilledWorker("task-1", worker, 3), unit, "compressing color mag 1", executor)
    assert str(error) == (
        "compressing color mag 1: the workers running /d/color/1; box 0,0,1024,1024,1024,1024 died 4 times, "
        "last tcp://10.0.0.7:4242 (killed, or out of memory?); worker logs in /shared/logs; "
        "files finished so far are complete, run the command again"
    )
