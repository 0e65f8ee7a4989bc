"""Fixtures for the job runner's tests against real engines."""

from __future__ import annotations

import os

import pytest

from .slurm_fixture import LocalSlurm, SlurmInstance, SlurmUnavailable


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> SlurmInstance:
    """A real single-node Slurm for the session, reached through SLURM_CONF (set in os.environ meanwhile).

    Skipped with the reason when Slurm cannot run here (no root, packages missing); with
    NAPARI_WKW_REQUIRE_SLURM set (CI) that is a failure instead, so CI proves the Slurm tests ran.
    """
    slurm = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        instance = slurm.start()
    except SlurmUnavailable as error:
        reason = str(error)
    else:
        reason = None
    if reason is not None:
        if os.environ.get("NAPARI_WKW_REQUIRE_SLURM"):
            pytest.fail(f"Slurm required (NAPARI_WKW_REQUIRE_SLURM) but unavailable: {reason}", pytrace=False)
        pytest.skip(f"no Slurm here: {reason}")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SLURM_CONF", str(instance.conf))
            yield instance
    finally:
        slurm.stop()
