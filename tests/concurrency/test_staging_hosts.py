"""Leftover staging is judged by host and process id: a rerun on one node never deletes what
units still running on another node write, even when their pid is dead here.

Fake leftovers: named with another host and a dead or live pid, with this host and a dead
or live pid, and in the old pid-only style (this host's, as before).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_wkw.convert.engine import ConversionSettings, LayerSpec, convert_layers
from napari_wkw.convert.source import ArraySource
from napari_wkw.core.dataset import Dataset
from napari_wkw.core.errors import WKWError, WKWWarning
from napari_wkw.core.staging import (
    fresh_staging,
    host_tag,
    left_by_dead_process,
    owner_tag,
    remove_abandoned,
    staging_owner,
)
from napari_wkw.core.wkw_file import CompressedFileWriter, WKWHeader
from napari_wkw.jobs.runner import JobSettings

OTHER = "node-17_cluster_example_org"  # another host's tag (dots of its name become '_')


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The id of a process that has ended."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_owner_tags_parse():
    me = host_tag()
    assert owner_tag() == f"{me}-{os.getpid()}"
    assert host_tag("node1.cluster.local") == "node1_cluster_local"
    assert staging_owner(Path(f".x0.wkw.{me}-12.partial")) == (me, 12)
    assert staging_owner(Path(f".x0.wkw.{OTHER}-12.spill")) == (OTHER, 12)
    assert staging_owner(Path(f".2-2-1.partial-{OTHER}-345")) == (OTHER, 345)
    assert staging_owner(Path(".x3y0z1.partial-node-2-99")) == ("node-2", 99)
    assert staging_owner(Path(".color.replaced-7")) == (None, 7)  # old style: pid only
    assert staging_owner(Path(".x0.wkw.12.partial")) == (None, 12)
    assert staging_owner(Path(".2.partial-12")) == (None, 12)
    for name in (".x0.wkw.lock", "x0.wkw", ".x0.wkw.partial", ".color.converting", ".x0.wkw.node-.partial"):
        assert staging_owner(Path(name)) is None, name


def make_leftovers(mag: Path, dead: int) -> dict[str, Path]:
    """One leftover of each kind in a mag folder (and its layer), by owner."""
    me, alive = host_tag(), os.getpid()
    folder = mag / "z0" / "y0"
    folder.mkdir(parents=True, exist_ok=True)
    layer = mag.parent
    cases = {
        "mine-dead": folder / f".x0.wkw.{me}-{dead}.partial",
        "mine-dead-spill": folder / f".x1.wkw.{me}-{dead}.spill",
        "mine-dead-folder": layer / f".8.partial-{me}-{dead}",
        "mine-alive": folder / f".x2.wkw.{me}-{alive}.partial",
        "mine-alive-folder": mag / f".x0y0z0.partial-{me}-{alive}",
        "other-dead": folder / f".x3.wkw.{OTHER}-{dead}.partial",
        "other-dead-folder": layer / f".16.partial-{OTHER}-{dead}",
        "other-alive": folder / f".x4.wkw.{OTHER}-{alive}.spill",
        "old-dead": folder / f".x5.wkw.{dead}.partial",
        "old-dead-folder": layer / f".32.partial-{dead}",
        "old-alive": folder / f".x6.wkw.{alive}.partial",
        "lock": folder / ".x0.wkw.lock",
    }
    for name, path in cases.items():
        if name.endswith("-folder"):
            path.mkdir()
        else:
            path.write_bytes(b"x")
    return cases


REMOVED = {"mine-dead", "mine-dead-spill", "mine-dead-folder", "old-dead", "old-dead-folder"}


def test_remove_abandoned_keeps_other_hosts_and_live_processes(tmp_path, dead_pid):
    mag = tmp_path / "layer" / "1"
    cases = make_leftovers(mag, dead_pid)
    with pytest.warns(WKWWarning) as caught:
        kept = remove_abandoned(tmp_path / "layer")
    gone = {name for name, path in cases.items() if not path.exists()}
    assert gone == REMOVED
    assert sorted(kept) == sorted(cases[name] for name in ("other-dead", "other-dead-folder", "other-alive"))
    messages = [str(w.message) for w in caught if issubclass(w.category, WKWWarning)]
    assert len(messages) == 1 and OTHER in messages[0] and "kept 3" in messages[0], messages
    # in the mag folder itself too
    cases = make_leftovers(tmp_path / "again" / "1", dead_pid)
    with pytest.warns(WKWWarning):
        remove_abandoned(tmp_path / "again" / "1")
    assert not cases["mine-dead"].exists() and cases["other-dead"].exists() and cases["lock"].exists()


def test_nothing_to_report_without_other_hosts(tmp_path, dead_pid):
    folder = tmp_path / "1" / "z0" / "y0"
    folder.mkdir(parents=True)
    (folder / f".x0.wkw.{host_tag()}-{dead_pid}.partial").write_bytes(b"x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert remove_abandoned(tmp_path / "1") == []
    assert not any(folder.iterdir())


def test_fresh_staging_judges_by_host(tmp_path, dead_pid):
    target = tmp_path / "ds"
    mine = tmp_path / f".ds.partial-{host_tag()}-{dead_pid}"
    old = tmp_path / f".ds.partial-{dead_pid}"
    other = tmp_path / f".ds.partial-{OTHER}-{dead_pid}"
    live = tmp_path / f".ds.partial-{os.getppid()}"
    for folder in (mine, old, other, live):
        folder.mkdir()
    with pytest.warns(WKWWarning, match=OTHER):
        staging = fresh_staging(target)
    assert staging.name == f".ds.partial-{owner_tag()}"
    assert not mine.exists() and not old.exists()
    assert other.exists() and live.exists()
    assert left_by_dead_process(mine) and not left_by_dead_process(other)


def test_writers_name_their_staging_with_host_and_pid(tmp_path):
    dataset = Dataset.create(tmp_path / "ds", (1, 1, 1))
    layer = dataset.add_layer("layer", "color", "uint8")
    staged = layer.stage_mag(2)
    assert staged.path.name == f".2.partial-{owner_tag()}"
    header = WKWHeader(np.dtype("uint8"), 1, 8, 2, 2)
    writer = CompressedFileWriter(tmp_path / "z0" / "y0" / "x0.wkw", header, spill_bytes=0)
    try:
        writer.put_encoded(0, writer.encode(np.ones((8, 8, 8, 1), np.uint8)))
        spills = [p.name for p in (tmp_path / "z0" / "y0").iterdir()]
        assert spills == [f".x0.wkw.{owner_tag()}.spill"]
    finally:
        writer.close()


# ----------------------------------------------------------------------------- conversions


def interrupted_conversion(target: Path, owner: dict, leftovers: list[str]) -> tuple[LayerSpec, ConversionSettings]:
    """A conversion killed while cubing, whose record names ``owner``, with leftovers in its mag."""
    volume = np.arange(20 * 30 * 40, dtype=np.uint16).reshape(20, 30, 40)
    spec = LayerSpec(ArraySource(volume), "color")
    settings = ConversionSettings(voxel_size=(1, 1, 1), pyramid=False)
    convert_layers(target, [spec], settings, jobs=JobSettings("sequential"))
    # turn the finished target back into a killed run's state: the layer only staged
    staging = target / ".color.converting"
    staging.mkdir()
    (target / "color").rename(staging / "color")
    (target / "datasource-properties.json").rename(staging / "datasource-properties.json")
    mag = staging / "color" / "1"
    for name in leftovers:
        (mag / "z0" / "y0" / name).write_bytes(b"x")
    record = {"job": None, "stage": "cubing", "owner": owner}
    (staging / "conversion.json").write_text(json.dumps(record))
    return spec, settings


def _job(target: Path, spec: LayerSpec, settings: ConversionSettings) -> dict:
    from napari_wkw.convert.engine import _job_record

    return _job_record(spec, settings, (1.0, 1.0, 1.0))["job"]


def test_rerun_after_a_dead_owner_here_keeps_other_hosts_units_files(tmp_path, dead_pid):
    """The main process died on this host while units ran on another node: the rerun resumes,
    removes this host's dead leftovers and keeps (and reports) the other node's."""
    target = tmp_path / "out"
    mine, other = f".x9.wkw.{host_tag()}-{dead_pid}.partial", f".x8.wkw.{OTHER}-{dead_pid}.partial"
    owner = {"pid": dead_pid, "host": socket.gethostname()}
    spec, settings = interrupted_conversion(target, owner, [mine, other])
    record = json.loads((target / ".color.converting" / "conversion.json").read_text())
    record["job"] = _job(target, spec, settings)
    (target / ".color.converting" / "conversion.json").write_text(json.dumps(record))
    with pytest.warns(WKWWarning, match=OTHER):
        result = convert_layers(target, [spec], settings, jobs=JobSettings("sequential"))
    assert result.resumed == ["color"]
    folder = target / "color" / "1" / "z0" / "y0"
    assert not (folder / mine).exists()
    assert (folder / other).exists(), "a file another node may still be writing was deleted"


@pytest.mark.parametrize("pid", ["dead", "alive", "mine"])
def test_owner_on_another_host_is_refused(tmp_path, dead_pid, pid):
    """conversion.json names another host: whatever its pid does here (dead, alive, or even
    this very process's number), that run may be going on there."""
    target = tmp_path / "out"
    number = {"dead": dead_pid, "alive": os.getppid(), "mine": os.getpid()}[pid]
    spec, settings = interrupted_conversion(target, {"pid": number, "host": "node-17.cluster.example.org"}, [])
    with pytest.raises(WKWError, match="node-17.cluster.example.org"):
        convert_layers(target, [spec], settings, jobs=JobSettings("sequential"))
    assert (target / ".color.converting" / "color").is_dir()  # nothing removed


def test_owner_record_without_host_counts_as_this_host(tmp_path, dead_pid):
    target = tmp_path / "out"
    spec, settings = interrupted_conversion(target, {"pid": dead_pid}, [])
    record = json.loads((target / ".color.converting" / "conversion.json").read_text())
    record["job"] = _job(target, spec, settings)
    (target / ".color.converting" / "conversion.json").write_text(json.dumps(record))
    assert convert_layers(target, [spec], settings, jobs=JobSettings("sequential")).resumed == ["color"]
    alive = {"pid": os.getppid()}  # a live process of this host, old record style
    spec, settings = interrupted_conversion(tmp_path / "again", alive, [])
    with pytest.raises(WKWError, match=f"pid {os.getppid()}"):
        convert_layers(tmp_path / "again", [spec], settings, jobs=JobSettings("sequential"))


def test_replaced_layers_of_other_hosts_are_kept(tmp_path, dead_pid):
    """``.<layer>.replaced-<owner>``: an old layer a run moved aside before it died."""
    volume = np.ones((8, 8, 8), np.uint8)
    spec = LayerSpec(ArraySource(volume), "color")
    settings = ConversionSettings(voxel_size=(1, 1, 1), pyramid=False, overwrite=True)
    target = tmp_path / "out"
    convert_layers(target, [spec], settings, jobs=JobSettings("sequential"))
    mine = target / f".color.replaced-{host_tag()}-{dead_pid}"
    old = target / f".color.replaced-{dead_pid}"
    other = target / f".color.replaced-{OTHER}-{dead_pid}"
    for folder in (mine, old, other):
        folder.mkdir()
    convert_layers(target, [spec], settings, jobs=JobSettings("sequential"))
    assert not mine.exists() and not old.exists() and other.exists()
