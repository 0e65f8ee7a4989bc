"""The slurm strategy: the SLURMCluster we build, and a conversion run as real Slurm jobs.

The end-to-end tests use ``slurm_cluster`` (tests/jobs/conftest.py): a real single-node
Slurm on 127.0.0.1, or a skip that says why it cannot run here.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from napari_wkw.cli import main
from napari_wkw.core.errors import WKWError
from napari_wkw.jobs import JobSettings, Runner
from napari_wkw.jobs.cluster import slurm_options

pytestmark = pytest.mark.timeout(120)


def test_job_script_carries_the_resources_asked_for(tmp_path):
    from dask_jobqueue import SLURMCluster

    logs = tmp_path / "logs"
    options = slurm_options(
        {
            "cores": 2,
            "mem": "6G",
            "walltime": "01:30:00",
            "queue": "short",
            "account": "lab42",
            "job_extra": ["--exclusive", "--constraint=avx2"],
            "log_directory": str(logs),
        }
    )
    with SLURMCluster(**options) as cluster:
        script = cluster.job_script()
        address = cluster.scheduler_address
    lines = script.splitlines()
    for expected in [
        "#SBATCH -J napari-wkw",
        f"#SBATCH -e {logs}/napari-wkw-%J.err",
        f"#SBATCH -o {logs}/napari-wkw-%J.out",
        "#SBATCH -p short",
        "#SBATCH -A lab42",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH -t 01:30:00",
        "#SBATCH --exclusive",
        "#SBATCH --constraint=avx2",
    ]:
        assert expected in lines, (expected, script)
    assert any(line.startswith("#SBATCH --mem=") for line in lines)
    assert "--nthreads 2" in script and "--interface lo" in script  # one worker of 2 threads, on loopback
    assert address.startswith("tcp://127.0.0.1:")
    assert logs.is_dir()


def test_defaults_and_refusals(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = slurm_options({})
    assert (options["cores"], options["memory"], options["walltime"]) == (1, "4G", "01:00:00")
    assert options["log_directory"] == str(tmp_path / "napari-wkw-slurm-logs")
    assert "interface" not in slurm_options({"scheduler_host": "10.0.0.5"})  # reachable from other nodes
    with pytest.raises(WKWError, match="unknown key 'memory'; known: cores, mem"):
        slurm_options({"memory": "4G"})
    with pytest.raises(WKWError, match="job_extra must be a list of strings"):
        slurm_options({"job_extra": "--exclusive"})


# ---- against a real Slurm ---------------------------------------------------------------------


def job_id(value: int) -> tuple[int, str | None]:
    """Which Slurm job ran this unit (module level: workers unpickle it)."""
    return value, os.environ.get("SLURM_JOB_ID")


def napari_wkw_jobs(slurm) -> dict[str, str]:
    """Our worker jobs Slurm knows of (finished ones stay listed), id -> state."""
    listing = slurm.run("squeue", "-h", "-t", "all", "-o", "%i %j %T").stdout.split("\n")
    return {line.split()[0]: line.split()[2] for line in listing if line.strip() and line.split()[1] == "napari-wkw"}


@pytest.fixture
def resources(slurm_cluster, request):
    logs = slurm_cluster.log_dir / request.node.name
    logs.mkdir()
    return {"cores": 1, "mem": "1G", "walltime": "00:10:00", "log_directory": str(logs)}


def test_units_run_as_slurm_jobs_and_the_jobs_end_with_the_runner(slurm_cluster, resources):
    before = set(napari_wkw_jobs(slurm_cluster))
    with Runner(JobSettings("slurm", jobs=2, job_resources=resources)) as runner:
        results = runner.map(job_id, range(6), "asking Slurm")
    assert [value for value, _ in results] == list(range(6))
    ran_in = {job for _, job in results}
    assert None not in ran_in
    ours = {job: state for job, state in napari_wkw_jobs(slurm_cluster).items() if job not in before}
    assert ran_in <= set(ours)
    logs = {path.name for path in Path(resources["log_directory"]).iterdir()}
    assert {f"napari-wkw-{job}.err" for job in ran_in} <= logs
    deadline = time.monotonic() + 20  # the runner scancels its workers when it closes
    while time.monotonic() < deadline and any(
        s in ("RUNNING", "PENDING") for s in napari_wkw_jobs(slurm_cluster).values()
    ):
        time.sleep(0.5)
    assert not any(s in ("RUNNING", "PENDING") for s in napari_wkw_jobs(slurm_cluster).values())


def test_conversion_on_slurm_equals_sequential(slurm_cluster, resources, tmp_path):
    import json

    stack = tmp_path / "stack"
    stack.mkdir()
    rng = np.random.default_rng(11)
    for z in range(40):
        tifffile.imwrite(stack / f"{z}.tif", rng.integers(0, 255, (200, 300), dtype=np.uint8))
    options = ["--voxel-size", "11.24,11.24,25", "--jobs", "2", "-q"]
    runner = CliRunner()
    sequential = runner.invoke(main, ["convert", str(stack), str(tmp_path / "a" / "out"), *options,
                                      "--distribution-strategy", "sequential"])  # fmt: skip
    assert sequential.exit_code == 0, sequential.output
    before = set(napari_wkw_jobs(slurm_cluster))
    result = runner.invoke(
        main,
        ["convert", str(stack), str(tmp_path / "b" / "out"), *options, "--distribution-strategy", "slurm",
         "--job-resources", json.dumps(resources)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"Slurm worker logs go to {resources['log_directory']}" in result.stderr
    new_jobs = set(napari_wkw_jobs(slurm_cluster)) - before
    assert new_jobs, "no Slurm job ran"
    assert {f"napari-wkw-{job}.err" for job in new_jobs} <= {p.name for p in Path(resources["log_directory"]).iterdir()}
    check = subprocess.run(
        ["diff", "-r", str(tmp_path / "a" / "out"), str(tmp_path / "b" / "out")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout[:2000]


def test_a_job_slurm_refuses_is_one_line_not_a_wait(slurm_cluster, resources):
    resources = dict(resources, queue="no-such-partition")
    start = time.monotonic()
    with (
        Runner(JobSettings("slurm", jobs=1, job_resources=resources)) as runner,
        pytest.raises(WKWError, match=r"Slurm refuses the worker job \(.*[Pp]artition.*\); check --job-resources"),
    ):
        runner.map(job_id, [1], "asking Slurm")
    assert time.monotonic() - start < 30
