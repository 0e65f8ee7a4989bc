"""The single-node Slurm fixture itself: batch jobs run, are listed, and carry dask workers."""

from __future__ import annotations

import os
import sys
import time


def wait_until_done(slurm, job_id: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = slurm.run("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T").stdout.strip()
        if state in {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}:
            return state
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} not done after {timeout} s: {state}")


def test_sbatch_runs_jobs_side_by_side_and_sacct_lists_them(slurm_cluster, tmp_path):
    jobs = [
        slurm_cluster.run(
            "sbatch",
            "--parsable",
            f"--chdir={tmp_path}",
            "--output=slurm-%j.out",
            f"--wrap=sleep 4; hostname > out{i}",
        ).stdout.strip()
        for i in range(2)
    ]
    if slurm_cluster.cpus >= 2:  # cons_tres with CR_Core_Memory: 1-core jobs share the node
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            running = slurm_cluster.run("squeue", "-h", "-t", "running", "-o", "%i").stdout.split()
            if sorted(running) == sorted(jobs):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"two 1-core jobs did not run at once: running {running} of {jobs}")
    assert [wait_until_done(slurm_cluster, job) for job in jobs] == ["COMPLETED"] * 2
    for i in range(2):
        assert (tmp_path / f"out{i}").read_text().strip() == slurm_cluster.hostname
    # no slurmdbd: sacct reads the job completion log (JobCompType=jobcomp/filetxt) with -c
    listed = slurm_cluster.run("sacct", "-c", "-n", "-P", "-o", "jobid,state").stdout.split()
    assert {f"{job}|COMPLETED" for job in jobs} <= set(listed)


def test_dask_jobqueue_worker_runs_as_a_slurm_job(slurm_cluster):
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    with (
        SLURMCluster(
            cores=1,
            memory="1G",
            processes=1,
            python=sys.executable,
            walltime="00:10:00",
            log_directory=str(slurm_cluster.log_dir),
            scheduler_options={"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"},
            worker_extra_args=["--host", "127.0.0.1"],
        ) as cluster,
        Client(cluster) as client,
    ):
        cluster.scale(jobs=1)
        client.wait_for_workers(1, timeout=60)
        assert client.submit(lambda: 1 + 1).result(timeout=30) == 2
        job_ids = set(client.run(lambda: os.environ.get("SLURM_JOB_ID")).values())
        assert len(job_ids) == 1 and None not in job_ids
        (job_id,) = job_ids
        assert slurm_cluster.run("squeue", "-h", "-j", job_id, "-o", "%T").stdout.strip() == "RUNNING"
        assert (slurm_cluster.log_dir / f"dask-worker-{job_id}.err").exists()
