"""The file lock itself: exclusive between processes and threads, refused without waiting
on request, gone from the folder after release, and harmless where nobody may write."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from napari_wkw.core.locks import LockedError, lock_path, locked

pytestmark = pytest.mark.skipif(os.name != "posix", reason="flock")


def count_up(path: str, rounds: int) -> None:
    """A read-modify-write of a counter file that loses updates unless locked."""
    for _ in range(rounds):
        with locked(Path(path)):
            value = int(Path(path).read_text())
            time.sleep(0.0005)
            Path(path).write_text(str(value + 1))


def test_read_modify_write_from_processes_and_threads_loses_nothing(tmp_path):
    counter = tmp_path / "counter"
    counter.write_text("0")
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=count_up, args=(str(counter), 40)) for _ in range(3)]
    threads = [threading.Thread(target=count_up, args=(str(counter), 40)) for _ in range(3)]
    for worker in processes + threads:
        worker.start()
    for worker in processes + threads:
        worker.join(60)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    assert int(counter.read_text()) == 6 * 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter"], "the lock file stays behind"


def test_without_waiting_a_held_lock_is_refused_in_one_sentence(tmp_path):
    target = tmp_path / ".layer.converting"
    assert lock_path(target).name == ".layer.converting.lock"
    assert lock_path(tmp_path / "x0.wkw").name == ".x0.wkw.lock"
    with locked(target), pytest.raises(LockedError, match="busy here"), locked(target, wait=False, busy="busy here"):
        pass
    with locked(target, wait=False):  # free again
        assert lock_path(target).exists()
    assert not lock_path(target).exists()


def test_a_waiter_relocks_when_the_holder_removed_the_file(tmp_path):
    """The holder unlinks the lock file on release; a waiter that got the lock of the removed
    file must not run alongside a newcomer who locked the new file."""
    target = tmp_path / "file"
    inside = []
    overlap = []
    lock = threading.Lock()

    def critical(name: str) -> None:
        with locked(target):
            with lock:
                if inside:
                    overlap.append((inside[0], name))
                inside.append(name)
            time.sleep(0.01)
            with lock:
                inside.remove(name)

    threads = [threading.Thread(target=critical, args=(str(i),)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not overlap


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_a_folder_nobody_may_write_to_takes_no_lock(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with locked(folder / "datasource-properties.json"):
            pass
    finally:
        folder.chmod(0o755)
