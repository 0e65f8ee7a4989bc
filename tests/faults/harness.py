"""Fault injection: the real CLI (and the napari writers) SIGKILLed at seeded moments.

For each command the inputs are built once into a template folder and a clean run
measures how long the command takes and what it produces. Each attempt then copies the
template into a fresh folder, starts the command in a session of its own, SIGKILLs the
whole process group at a seeded moment within the clean run's duration (from a little
before its first write to its end: a kill in the start-up before that cannot damage
anything) and checks:

1. inputs that are only read are byte-identical; in place, every voxel of every mag that
   existed before reads back (our reader and libwkw agree) as it was, or as the clean run
   made it (a killed merge-annotation may have merged some files and not others);
2. the properties parse and list no layer or mag that is incomplete: every listed mag
   reads back, each file's header and length checked, equal to the clean run's (in
   place: or to what it was); a ZIP or TIFF folder result is absent or complete;
3. running the same command again exits 0 and its result equals the clean run's;
4. nothing hidden is left behind after the rerun, and no process of either run.

Data lost counts attempts breaking 1 or 2. ``run_command`` returns the counts; the CI
tests (``test_kills.py``) and ``benchmarks/fault_injection.py`` both use it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import wkw

from napari_wkw.core.annotation import Annotation
from napari_wkw.core.dataset import HEADER_FILE, Dataset, MagView
from napari_wkw.core.errors import WKWError, WKWWarning
from napari_wkw.core.geometry import BoundingBox, Mag
from napari_wkw.core.properties import PROPERTIES_FILE, LayerProperties, MagEntry, read_properties

CLI = str(Path(sys.executable).parent / "napari-wkw")
PYTHON = sys.executable
VOXEL = "11.24,11.24,25"
#: (z, y, x) of every volume: small, so a clean run takes a second or two
SHAPE = (64, 256, 256)
#: where the layers of the generated datasets start (x, y, z): not on a file border
OFFSET = (32, 0, 0)
#: a run that takes longer than this hangs
RUN_TIMEOUT = 180.0
#: seconds the processes of a finished run may take to go away (dask workers shut down)
GRACE = 10.0


# ---- running and killing ----------------------------------------------------------------------


@dataclass
class Run:
    code: int | None  # None: it hung and was killed
    seconds: float
    stderr: str
    stray: list[str]  # processes of its group still there after it ended
    first_change: float | None = None  # s after the start, when it first changed the watched folder


def _argv(argv: tuple[str, ...], work: Path) -> list[str]:
    return [part.replace("{w}", str(work)) for part in argv]


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (not zombie) processes of the process group ``pgid``."""
    members = []
    for process in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _settle(pgid: int, grace: float) -> list[str]:
    """Wait up to ``grace`` s for the group to be gone; what stays is killed and returned."""
    deadline = time.monotonic() + grace
    members = group_members(pgid)
    while members and time.monotonic() < deadline:
        time.sleep(0.05)
        members = group_members(pgid)
    stray = []
    for process in members:
        try:
            stray.append(f"pid {process.pid}: {' '.join(process.cmdline())[:160]}")
            process.kill()
        except psutil.Error:
            continue
    return stray


def _start(argv: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)


def _folder_times(folder: Path) -> dict[Path, int]:
    """Modification times of ``folder`` and the folders in it: any entry created, renamed or
    removed in them changes one."""
    return {path: path.stat().st_mtime_ns for path in [folder, *folder.rglob("*")] if path.is_dir()}


def _changed(times: dict[Path, int]) -> bool:
    for path, mtime in times.items():
        try:
            if path.stat().st_mtime_ns != mtime:
                return True
        except FileNotFoundError:
            return True
    return False


def run_to_end(argv: list[str], log: Path, timeout: float = RUN_TIMEOUT, watch: Path | None = None) -> Run:
    """Run a command to its end (or kill it as hung after ``timeout`` s); with ``watch``, also
    note when it first changed anything in that folder."""
    before = _folder_times(watch) if watch is not None else {}
    started = time.monotonic()
    process = _start(argv, log)
    first_change = None
    while process.poll() is None and time.monotonic() - started < timeout:
        if watch is not None and first_change is None and _changed(before):
            first_change = time.monotonic() - started
        time.sleep(0.005)
    code = process.poll()
    if code is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    seconds = time.monotonic() - started
    return Run(code, seconds, log.read_text(errors="replace"), _settle(process.pid, GRACE), first_change)


def kill_at(
    argv: list[str], moment: float, log: Path, watch: Path | None = None, first_write: float | None = None
) -> tuple[bool, int | None, list[str]]:
    """Start a command and SIGKILL its process group ``moment`` s later.

    ``moment`` is on the clean run's time line. With ``watch`` and the clean run's
    ``first_write``, a moment after that first write is counted from when this run first
    changes ``watch``: start-up times vary with the machine's load, and a kill meant for the
    writing must not land in the start-up. Returns whether the command was still running
    then (the kill landed mid-run), its exit code if it had finished, and processes that
    outlived the kill."""
    anchored = watch is not None and first_write is not None and moment >= first_write
    times = _folder_times(watch) if anchored else None
    process = _start(argv, log)
    started = time.monotonic()
    deadline = started + (RUN_TIMEOUT if anchored else moment)
    while process.poll() is None and time.monotonic() < deadline:
        if times is not None and _changed(times):
            deadline = time.monotonic() + moment - (first_write or 0.0)
            times = None
        time.sleep(0.002)
    landed = process.poll() is None
    with contextlib.suppress(ProcessLookupError):  # ended, and its group with it
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return landed, None if landed else process.returncode, _settle(process.pid, 2.0)


# ---- reading results ---------------------------------------------------------------------------


def read_both(folder: Path, box: BoundingBox, view: MagView | None = None) -> np.ndarray:
    """Voxels of a mag folder through our reader (``view``, a mag of an opened Dataset, or
    the folder on its own), each file's header and length checked first, and through
    libwkw; they must agree."""
    view = view if view is not None else MagView.at(folder)
    view.verify = True
    ours = view.read(box)
    with wkw.Dataset.open(str(folder)) as handle:
        bare = handle.read(box.topleft, box.size)
    bare = bare[0].transpose(2, 1, 0) if bare.shape[0] == 1 else bare.transpose(3, 2, 1, 0)
    if not np.array_equal(ours, bare):
        raise WKWError(f"{folder}: our reader and libwkw read different voxels in {box.topleft}+{box.size}")
    return ours


@functools.lru_cache(maxsize=16)
def reference(folder: Path, box: BoundingBox) -> np.ndarray:
    """:func:`read_both` of a clean result or a template, which never change."""
    return read_both(folder, box)


def open_dataset(path: Path) -> Dataset:
    """The dataset as our reader opens it (its own warnings, e.g. of a listed mag that is
    missing, are left to the checks to report)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WKWWarning)
        return Dataset.open(path)


def mag_folder(dataset: Path, layer: str, entry: MagEntry) -> Path | None:
    """Where a listed mag lives (the candidates the dataset reader tries)."""
    candidates = [dataset / entry.path] if entry.path else []
    candidates.append(dataset / layer / entry.mag.folder_name())
    return next((c for c in candidates if (c / HEADER_FILE).is_file()), None)


def listed(dataset: Path) -> dict[str, LayerProperties] | None:
    """The layers the properties list (None without a properties file); invalid raises."""
    if not (dataset / PROPERTIES_FILE).is_file():
        return None
    return {layer.name: layer for layer in read_properties(dataset / PROPERTIES_FILE).layers}


def _mags(layer: LayerProperties) -> dict[Mag, MagEntry]:
    return {entry.mag: entry for entry in layer.mags}


def _describe(layer: LayerProperties) -> tuple:
    return (layer.category, layer.element_class, layer.num_channels)


def check_listed(current: Path, allowed: list[Path], per_voxel: bool = False) -> list[str]:
    """What the properties of ``current`` list that is not complete.

    Every listed layer must be one of an ``allowed`` dataset (the clean run's result, and
    in place what was there before), with one of their boxes and largest ids; every
    listed mag must read back equal to that mag of an allowed dataset (``per_voxel``:
    each voxel equal to one of them)."""
    try:
        layers = listed(current)
        opened = open_dataset(current) if layers is not None else None
    except WKWError as error:
        return [f"the dataset does not open: {error}"]
    problems = []
    options = [(path, listed(path) or {}) for path in allowed]
    for name, layer in (layers or {}).items():
        others = [(path, other[name]) for path, other in options if name in other]
        if not others:
            problems.append(f"lists layer {name!r}, which no complete result has")
            continue
        if _describe(layer) not in [_describe(o) for _, o in others]:
            problems.append(f"layer {name!r}: {_describe(layer)} is none of {[_describe(o) for _, o in others]}")
        if layer.bounding_box not in [o.bounding_box for _, o in others]:
            problems.append(f"layer {name!r}: box {layer.bounding_box} is no complete result's")
        if layer.largest_segment_id not in [o.largest_segment_id for _, o in others]:
            problems.append(f"layer {name!r}: largestSegmentId {layer.largest_segment_id} is no complete result's")
        for mag, entry in _mags(layer).items():
            having = [(path, other) for path, other in others if mag in _mags(other)]
            problems += _check_mag(opened, name, layer, entry, having, per_voxel)
    return problems


def _check_mag(current: Dataset, name: str, layer, entry: MagEntry, others, per_voxel: bool) -> list[str]:
    """A listed mag of the opened dataset ``current`` against that mag of the ``others``
    (path, layer properties) that have it."""
    where = f"layer {name!r} mag {entry.mag.folder_name()}"
    if not others:
        return [f"{where} is listed, but no complete result has it"]
    view = current.layers[name].mags.get(entry.mag) if name in current.layers else None
    if view is None:
        return [f"{where} is listed, but our reader finds no such mag"]
    region = layer.bounding_box
    for _, other in others:
        region = region.union(other.bounding_box)
    box = region.in_mag(entry.mag)
    try:
        got = read_both(view.path, box, view)
    except WKWError as error:
        return [f"{where} does not read back: {error}"]
    expected = [reference(mag_folder(path, name, _mags(other)[entry.mag]), box) for path, other in others]
    if any(np.array_equal(got, e) for e in expected):
        return []
    if per_voxel and np.logical_or.reduce([got == e for e in expected]).all():
        return []
    return [f"{where} holds voxels no complete result has ({_first_difference(got, expected[0], box)})"]


def _first_difference(got: np.ndarray, expected: np.ndarray, box: BoundingBox) -> str:
    different = got != expected
    z, y, x = (int(v) for v in np.unravel_index(np.argmax(different), different.shape)[:3])
    corner = (box.topleft[0] + x, box.topleft[1] + y, box.topleft[2] + z)
    return f"{int(different.sum())} voxels differ, first at {corner}"


def check_kept(original: Path, current: Path, clean: Path, per_voxel: bool) -> list[str]:
    """In place: every mag there was is still listed and reads back as it was or as the
    clean run left it (``per_voxel``: each voxel one of the two)."""
    problems = []
    try:
        now = listed(current) or {}
        opened = open_dataset(current)
    except WKWError as error:
        return [f"the dataset does not open: {error}"]
    for name, layer in (listed(original) or {}).items():
        for mag in _mags(layer):
            if name not in now or mag not in _mags(now[name]):
                problems.append(f"layer {name!r} mag {mag.folder_name()} was there and is no longer listed")
                continue
            options = [(original, layer)]
            final = (listed(clean) or {}).get(name)
            if final is not None and mag in _mags(final):
                options.append((clean, final))
            problems += _check_mag(opened, name, now[name], _mags(now[name])[mag], options, per_voxel)
    return problems


def same_dataset(got: Path, expected: Path) -> list[str]:
    """How the dataset ``got`` differs from ``expected`` (empty: equal)."""
    try:
        mine, theirs = read_properties(got / PROPERTIES_FILE), read_properties(expected / PROPERTIES_FILE)
    except WKWError as error:
        return [str(error)]
    problems = []
    if mine.voxel_size != theirs.voxel_size:
        problems.append(f"voxel size {mine.voxel_size} != {theirs.voxel_size}")
    names = ([layer.name for layer in mine.layers], [layer.name for layer in theirs.layers])
    if sorted(names[0]) != sorted(names[1]):
        problems.append(f"layers {names[0]} != {names[1]}")
    for layer in theirs.layers:
        other = mine.layer(layer.name)
        if other is not None and sorted(_mags(other), key=Mag.sort_key) != sorted(_mags(layer), key=Mag.sort_key):
            problems.append(f"layer {layer.name!r}: mags {list(_mags(other))} != {list(_mags(layer))}")
    return problems + check_listed(got, [expected])


def tiff_state(folder: Path) -> dict[str, str]:
    """Every TIFF under ``folder`` by relative name, with a digest of its decoded pixels."""
    import tifffile

    return {
        str(path.relative_to(folder)): hashlib.sha256(tifffile.imread(path).tobytes()).hexdigest()
        for path in sorted(folder.rglob("*.tif*"))
    }


def annotation_state(path: Path) -> tuple:
    """An annotation ZIP as (NML, {volume: {mag: voxels}}), read through the annotation reader."""
    with Annotation.open(path) as annotation:
        volumes = {}
        for volume in annotation.volumes:
            layer = volume.layer
            mags = {}
            for mag, view in (layer.mags if layer is not None else {}).items():
                mags[mag.folder_name()] = hashlib.sha256(view.read(layer.bounding_box.in_mag(mag)).tobytes()).digest()
            volumes[volume.volume_name] = mags
        return annotation.nml, volumes


def hash_tree(path: Path, ignore: tuple[str, ...] = ()) -> dict[str, str]:
    """Every file under ``path`` (or ``path`` itself) by relative name, with its sha256.

    Hidden files are left out: staging a killed run leaves is what check 4 is about."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {
        str(p.relative_to(path.parent)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
        if p.name not in ignore and not any(part.startswith(".") for part in p.relative_to(path.parent).parts)
    }


def tree_signature(folder: Path) -> set[tuple[str, int, int]]:
    """Every entry under ``folder`` with its size and modification time: whether a run changed anything."""
    signature = set()
    for path in folder.rglob("*"):
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        signature.add((str(path.relative_to(folder)), info.st_size if path.is_file() else 0, info.st_mtime_ns))
    return signature


def hidden_entries(folder: Path) -> list[str]:
    """Hidden files and folders (staging: ``.*.partial*``, ``.*.spill``, ``.*.converting`` ...)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


# ---- the commands ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One command under test: its inputs, its command line and what it writes."""

    name: str
    build: Callable[[Path], None]  # writes the inputs into an empty folder
    argv: tuple[str, ...]  # "{w}" is the work folder
    result: str  # what it writes (or changes in place), relative to the work folder
    kind: str = "dataset"  # dataset | properties | tiff | annotation
    reads: tuple[str, ...] = ()  # inputs it only reads: byte-identical afterwards
    in_place: bool = False  # ``result`` existed before and is changed
    per_voxel: bool = False  # in place, a killed run may leave each voxel old or new
    changes: tuple[str, ...] = ()  # file names it may rewrite inside what it reads


def cli(*args: str) -> tuple[str, ...]:
    return (CLI, *args, "-q")


@dataclass
class Attempt:
    """One kill and what the checks found."""

    when: str  # the moment of the kill ("0.412 s", "write_properties call 2 ...")
    landed: bool  # the kill hit the command while it was running
    wrote: bool = False  # it landed after the command had changed something on disk
    lost: list[str] = field(default_factory=list)  # checks 1 and 2
    rerun_completed: bool = False
    problems: list[str] = field(default_factory=list)  # rerun, leftovers, processes
    note: str = ""


@dataclass
class CommandResult:
    """The kills of one command: the counts the long run prints, the problems the tests show."""

    name: str
    clean_seconds: float
    first_write: float | None = None  # s into the clean run
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def tried(self) -> int:
        return len(self.attempts)

    @property
    def landed(self) -> int:
        return sum(a.landed for a in self.attempts)

    @property
    def wrote(self) -> int:
        return sum(a.wrote for a in self.attempts)

    @property
    def lost(self) -> int:
        return sum(bool(a.lost) for a in self.attempts)

    @property
    def reruns_completed(self) -> int:
        return sum(a.rerun_completed for a in self.attempts)

    @property
    def problems(self) -> list[str]:
        return [f"{self.name}, killed at {a.when}: {p}" for a in self.attempts for p in a.lost + a.problems]


def result_differences(command: Command, work: Path, clean: Path) -> list[str]:
    """How the result in ``work`` differs from the clean run's (empty: equal)."""
    got, expected = work / command.result, clean / command.result
    if not got.exists():
        return [f"{command.result} is missing"]
    try:
        if command.kind == "dataset":
            return same_dataset(got, expected)
        if command.kind == "properties":
            mine, theirs = (json.loads((p / PROPERTIES_FILE).read_text()) for p in (got, expected))
            return [] if mine == theirs else ["the properties differ from the clean run's"]
        if command.kind == "tiff":
            return [] if tiff_state(got) == tiff_state(expected) else ["the TIFFs differ from the clean run's"]
        return [] if annotation_state(got) == annotation_state(expected) else ["the annotation differs"]
    except Exception as error:  # whatever stops the reader: the result is not complete
        return [f"{command.result} does not read: {type(error).__name__}: {error}"]


def check_after_kill(command: Command, work: Path, clean: Path, template: Path, hashes: dict) -> list[str]:
    """Checks 1 and 2 on what a killed run left."""
    changed = [name for name, digest in hashes.items() if hash_tree(work / name, command.changes) != digest]
    problems = [f"input {name} changed" for name in changed]
    result = work / command.result
    if command.kind == "properties":
        if (result / PROPERTIES_FILE).exists():
            try:
                now = json.loads((result / PROPERTIES_FILE).read_text())
            except ValueError:
                return [*problems, "the properties file is not valid JSON (half-written?)"]
            before = template / command.result / PROPERTIES_FILE
            allowed = [json.loads((clean / command.result / PROPERTIES_FILE).read_text())]
            allowed += [json.loads(before.read_text())] if before.exists() else []
            if now not in allowed:
                problems.append("the properties are neither the old ones nor the finished ones")
        return problems + check_listed(result, [clean / command.result, template / command.result])
    if command.in_place:
        problems += check_kept(template / command.result, result, clean / command.result, command.per_voxel)
        return problems + check_listed(result, [clean / command.result, template / command.result], command.per_voxel)
    if not result.exists():
        return problems
    if command.kind == "dataset":
        return problems + check_listed(result, [clean / command.result])
    differences = result_differences(command, work, clean)
    return problems + [f"{command.result} exists but is not complete: {d}" for d in differences]


def _refused_as_complete(run: Run) -> bool:
    """A rerun may refuse to overwrite a result that is complete, with one error line."""
    errors = [line for line in run.stderr.splitlines() if line.startswith("napari-wkw: error:")]
    return run.code == 2 and len(errors) == 1 and "exists" in errors[0] and run.stderr.rstrip().endswith(errors[0])


@dataclass
class Killed:
    """What a kill did: whether it landed mid-run, the exit code if the command ended on its
    own, processes that outlived it, and what went wrong in the command's own reaction."""

    landed: bool
    code: int | None
    stray: list[str]
    problems: list[str] = field(default_factory=list)
    note: str = ""  # how the command reacted, when that is worth telling


#: how to kill a command: (argv, log, work folder) -> Killed
Kill = Callable[[list[str], Path, Path], Killed]


def at_moment(moment: float, first_write: float | None = None) -> Kill:
    """SIGKILL the whole process group ``moment`` s after the start, on the clean run's time
    line (see :func:`kill_at`)."""

    def kill(argv: list[str], log: Path, work: Path) -> Killed:
        landed, code, stray = kill_at(argv, moment, log, work, first_write)
        problems = [] if landed or code == 0 else [f"the run ended with exit {code}: {log.read_text()[-400:]}"]
        return Killed(landed, code, stray, problems)

    return kill


def attempt(
    command: Command,
    template: Path,
    clean: Path,
    work: Path,
    logs: Path,
    when: str,
    kill: Kill,
    after_kill: Callable[[Path], list[str]] | None = None,
) -> Attempt:
    """One kill, the checks on what it left, a rerun and the checks after it."""
    shutil.copytree(template, work)
    hashes = {name: hash_tree(work / name, command.changes) for name in command.reads}
    argv = _argv(command.argv, work)
    before = tree_signature(work)
    killed = kill(argv, logs / "killed.log", work)
    wrote = killed.landed and tree_signature(work) != before
    result = Attempt(when, killed.landed, wrote, problems=list(killed.problems), note=killed.note)
    result.problems += [f"left running after the kill: {s}" for s in killed.stray]
    result.lost = check_after_kill(command, work, clean, template, hashes)
    result.lost += after_kill(work) if after_kill is not None else []
    rerun = run_to_end(argv, logs / "rerun.log")
    differences = result_differences(command, work, clean)
    # exit 0, or a refusal to overwrite what the killed run had finished
    finished = rerun.code == 0 or (_refused_as_complete(rerun) and not differences)
    if rerun.code is None:
        result.problems.append(f"the rerun hung (killed after {RUN_TIMEOUT:.0f} s)")
    elif not finished:
        result.problems.append(f"the rerun failed with exit {rerun.code}: {rerun.stderr.strip()[-400:]}")
    result.problems += [f"after the rerun: {d}" for d in differences]
    result.rerun_completed = finished and not differences
    result.problems += [f"left behind: {name}" for name in hidden_entries(work)]
    result.problems += [f"left running after the rerun: {s}" for s in rerun.stray]
    if any(hash_tree(work / name, command.changes) != digest for name, digest in hashes.items()):
        result.lost.append("an input changed by the rerun")
    return result


def moments(name: str, seed: int, count: int, window: tuple[float, float]) -> list[float]:
    """``count`` seeded moments in ``window`` (s after the start; the same for a name and seed),
    one at random in each of ``count`` equal slices of it, so its start, middle and end all get some."""
    rng = random.Random(seed * 1_000_003 + zlib.crc32(name.encode()))
    start, end = window
    step = (end - start) / count
    return [start + step * (number + rng.random()) for number in range(count)]


@dataclass(frozen=True)
class Clean:
    """A command's inputs and its clean run."""

    template: Path  # the inputs, copied for every attempt
    folder: Path  # the clean run's work folder: its result is the reference
    seconds: float  # how long the clean run took
    first_write: float  # s after its start, when it first changed anything on disk

    def window(self) -> tuple[float, float]:
        """Where kills are worth it: from a little before the first write to the end (kills
        in the start-up before it cannot damage anything)."""
        return 0.8 * min(self.first_write, self.seconds), self.seconds


def prepare(command: Command, root: Path, argv: tuple[str, ...] | None = None) -> Clean:
    """Build the inputs and run the command cleanly (or ``argv``, a quicker way to the same
    result). Done once per command and ``root``."""
    folder = root / command.name
    template, clean, logs = folder / "template", folder / "clean", folder / "logs"
    timing = logs / "clean.json"
    if timing.exists():
        return Clean(template, clean, **json.loads(timing.read_text()))
    shutil.rmtree(folder, ignore_errors=True)
    template.mkdir(parents=True)
    command.build(template)
    shutil.copytree(template, clean)
    logs.mkdir()
    run = run_to_end(_argv(argv or command.argv, clean), logs / "clean.log", watch=clean)
    if run.code != 0:
        raise AssertionError(f"{command.name}: the clean run failed with exit {run.code}:\n{run.stderr}")
    first_write = run.first_change if run.first_change is not None else run.seconds
    timing.write_text(json.dumps({"seconds": run.seconds, "first_write": first_write}))
    return Clean(template, clean, run.seconds, first_write)


def run_command(command: Command, root: Path, count: int, seed: int) -> CommandResult:
    """The clean run, then ``count`` kills at seeded moments, each checked and rerun."""
    clean = prepare(command, root)
    result = CommandResult(command.name, clean.seconds, clean.first_write)
    logs = root / command.name / "logs"
    for number, moment in enumerate(moments(command.name, seed, count, clean.window())):
        work = root / command.name / f"kill-{number}"
        kill = at_moment(moment, clean.first_write)
        result.attempts.append(attempt(command, clean.template, clean.folder, work, logs, f"{moment:.3f} s", kill))
        shutil.rmtree(work, ignore_errors=True)
    return result


# ---- killing while the properties are written -----------------------------------------------------

#: Runs a command (the CLI's arguments, or ``-c CODE ARGS``) with every module's
#: ``write_properties`` wrapped: each call is recorded, and at call number ``nth`` the
#: process SIGKILLs itself, ``before`` anything is written or once the temporary file is
#: written (``temporary``: the properties module's ``os.replace`` kills instead of renaming).
PROPERTIES_KILLER = """
import importlib, json, os, pkgutil, signal, sys
import napari_wkw.core.properties as properties

original = properties.write_properties
mode, nth, record, rest = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
calls = []


class KillingOs:
    def __getattr__(self, name):
        return getattr(os, name)

    def replace(self, *args):
        os.kill(os.getpid(), signal.SIGKILL)


def write_properties(path, props):
    calls.append(str(path))
    with open(record, "w") as f:
        json.dump(calls, f)
    if len(calls) == nth:
        if mode == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        properties.os = KillingOs()
    return original(path, props)


for package in ("core", "ops", "convert", "jobs", "cli"):
    found = importlib.import_module(f"napari_wkw.{package}")
    for info in pkgutil.walk_packages(found.__path__, f"napari_wkw.{package}."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional dependency missing: the command cannot use it either
            continue
        if getattr(module, "write_properties", None) is original:
            module.write_properties = write_properties
if rest[0] == "-c":
    sys.argv = ["-c", *rest[2:]]
    exec(compile(rest[1], "<command>", "exec"), {"__name__": "__main__"})
else:
    from napari_wkw.cli import main

    sys.argv = ["napari-wkw", *rest]
    main()
"""

#: the moments of a properties kill: nothing written yet / temporary file written, not renamed
PROPERTIES_MODES = ("before", "temporary")


def _with_killer(argv: list[str], mode: str, nth: int, record: Path) -> list[str]:
    # argv[1:]: the CLI's arguments, or -c CODE ARGS of a python command
    return [PYTHON, "-c", PROPERTIES_KILLER, mode, str(nth), str(record), *argv[1:]]


def properties_writes(command: Command, template: Path, root: Path) -> list[str]:
    """The files ``write_properties`` writes in a clean run, in order, relative to the work folder."""
    work = root / command.name / "count"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(template, work)
    record = root / command.name / "logs" / "calls.json"
    run = run_to_end(_with_killer(_argv(command.argv, work), "count", 0, record), record.with_suffix(".log"))
    if run.code != 0:
        raise AssertionError(f"{command.name}: the counting run failed:\n{run.stderr}")
    calls = json.loads(record.read_text()) if record.exists() else []
    shutil.rmtree(work)
    return [str(Path(call).relative_to(work)) for call in calls]


def self_kill(mode: str, nth: int, record: Path) -> Kill:
    """Run the command with ``write_properties`` killing the process at call ``nth``."""

    def kill(argv: list[str], log: Path, work: Path) -> Killed:
        run = run_to_end(_with_killer(argv, mode, nth, record), log)
        landed = run.code == -signal.SIGKILL
        problems = [] if landed else [f"the call was not reached (exit {run.code}): {run.stderr[-400:]}"]
        return Killed(landed, run.code, run.stray, problems)

    return kill


def old_properties_kept(template: Path, name: str) -> Callable[[Path], list[str]]:
    """The properties file ``name`` is as it was before the run (for its first write)."""
    before = template / name

    def check(work: Path) -> list[str]:
        now = work / name
        if not before.exists():
            return [f"{name} appeared, though its first write was killed"] if now.exists() else []
        if not now.exists() or now.read_bytes() != before.read_bytes():
            return [f"{name} is not the old file any more"]
        return []

    return check


def run_properties_kills(command: Command, root: Path, which: str = "result") -> CommandResult:
    """Kill the command in ``write_properties`` calls, in both modes: ``which="all"`` every
    call (staging folders' too), ``"result"`` those writing its result's own properties,
    ``"first"`` the first of those."""
    clean = prepare(command, root)
    template = clean.template
    writes = properties_writes(command, template, root)
    target = str(Path(command.result) / PROPERTIES_FILE)
    chosen = [n for n, path in enumerate(writes, 1) if which == "all" or path == target]
    chosen = chosen[:1] if which == "first" else chosen
    result = CommandResult(f"{command.name} (properties)", clean.seconds, clean.first_write)
    logs = root / command.name / "logs"
    for nth in chosen:
        path = writes[nth - 1]
        first = writes.index(path) == nth - 1
        for mode in PROPERTIES_MODES:
            work = root / command.name / f"properties-{nth}-{mode}"
            when = f"write_properties call {nth} of {len(writes)} ({path}), {mode}"
            check = old_properties_kept(template, path) if first else None
            kill = self_kill(mode, nth, logs / "killer.json")
            result.attempts.append(attempt(command, template, clean.folder, work, logs, when, kill, check))
            shutil.rmtree(work, ignore_errors=True)
    return result


# ---- killing a dask worker ------------------------------------------------------------------------


def dask_workers(process: psutil.Process) -> list[psutil.Process]:
    """The worker processes of the LocalCluster a command started (spawned by its nannies)."""
    workers = []
    for child in process.children(recursive=True):
        try:
            if any("spawn_main" in part for part in child.cmdline()):
                workers.append(child)
        except psutil.Error:
            continue
    return workers


def _staged_files(dataset: Path) -> int:
    """Data files in the hidden staging folders of mags being built."""
    return sum(1 for _ in dataset.glob("*/.*.partial-*/z*/y*/x*.wkw"))


def kill_a_worker(dataset: str, after_files: int, rng: random.Random) -> Kill:
    """Once ``after_files`` files of a mag being built exist in ``dataset`` (relative to the
    work folder; the workers are busy with units), SIGKILL one worker of the command's
    LocalCluster; then let the command end on its own."""

    def kill(argv: list[str], log: Path, work: Path) -> Killed:
        process = _start(argv, log)
        parent = psutil.Process(process.pid)
        deadline = time.monotonic() + RUN_TIMEOUT
        victim = None
        while process.poll() is None and victim is None and time.monotonic() < deadline:
            workers = dask_workers(parent)
            if workers and _staged_files(work / dataset) >= after_files:
                victim = rng.choice(workers)
                try:
                    victim.kill()
                except psutil.Error:
                    victim = None
            time.sleep(0.005)
        try:
            code: int | None = process.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            code = None
        stray = _settle(process.pid, GRACE)
        problems = []
        errors = [line for line in log.read_text(errors="replace").splitlines() if "error" in line.lower()]
        if code is None:
            problems.append(f"the run hung after its worker was killed (killed after {RUN_TIMEOUT:.0f} s)")
        elif code != 0 and not (code == 2 and len(errors) == 1 and errors[0].startswith("napari-wkw: error:")):
            problems.append(f"the run failed with exit {code} without one clear line: {log.read_text()[-600:]}")
        note = "finished" if code == 0 else f"failed: {errors[0] if errors else code}"
        return Killed(victim is not None, code, stray, problems, note)

    return kill


def build_many_files(folder: Path) -> None:
    """Mag 1 in files of 32^3 voxels: many units, each short, so a worker always holds one."""
    write_dataset(folder / "ds", pyramid=False, file_len=1)


DASK_DOWNSAMPLE = Command(
    "downsample-dask",
    build_many_files,
    cli("downsample", "{w}/ds", "--distribution-strategy", "dask", "-j", "2"),
    "ds",
    in_place=True,
)


def run_dask_kills(root: Path, count: int, seed: int) -> CommandResult:
    """``downsample`` on its own LocalCluster of 2 workers, one worker SIGKILLed mid-run."""
    command = DASK_DOWNSAMPLE
    clean = prepare(command, root, cli("downsample", "{w}/ds", "-j", "2"))  # with threads: the same result
    result = CommandResult(command.name, clean.seconds, clean.first_write)
    logs = root / command.name / "logs"
    rng = random.Random(seed)
    for number in range(count):
        work = root / command.name / f"kill-{number}"
        after = rng.randint(1, 30)
        kill = kill_a_worker(command.result, after, rng)
        when = f"a worker, once {after} files of a new mag were written"
        result.attempts.append(attempt(command, clean.template, clean.folder, work, logs, when, kill))
        shutil.rmtree(work, ignore_errors=True)
    return result


# ---- inputs ----------------------------------------------------------------------------------------


@functools.cache
def em_image() -> np.ndarray:
    """Real EM texture, (z, y, x) uint8 of SHAPE."""
    from tests.widgets.conftest import em_volume

    return em_volume(*SHAPE)


@functools.cache
def em_labels() -> np.ndarray:
    """Segments of the EM texture: dark regions are 0, the rest numbered by brightness band
    and z slab, so ids run in the thousands."""
    image = em_image().astype(np.uint32)
    labels = image // 40 + 10 * (np.arange(SHAPE[0], dtype=np.uint32) // 8)[:, None, None] + 1000
    return np.where(image < 60, 0, labels).astype(np.uint32)


def write_dataset(path: Path, *, compress: bool = True, pyramid: bool = True, file_len: int = 2) -> None:
    """The EM image and its segments as a dataset of small files (several per mag)."""
    from napari_wkw.core.dataset import Dataset
    from napari_wkw.core.downsample import build_pyramid
    from napari_wkw.core.wkw_file import BLOCK_LZ4, BLOCK_RAW

    block_type = BLOCK_LZ4 if compress else BLOCK_RAW
    dataset = Dataset.create(path, (11.24, 11.24, 25.0))
    for name, category, data in (("color", "color", em_image()), ("segmentation", "segmentation", em_labels())):
        box = BoundingBox(OFFSET, data.shape[::-1])
        layer = dataset.add_layer(name, category, data.dtype, bounding_box=box)
        layer.add_mag(Mag(1, 1, 1), block_type=block_type, file_len=file_len).write(OFFSET, data)
        if category == "segmentation":
            layer.properties.largest_segment_id = int(data.max())
        dataset.save_properties()
        if pyramid:
            build_pyramid(layer, block_type=block_type)
            dataset.save_properties()


def build_tiff_stack(folder: Path) -> None:
    import tifffile

    (folder / "stack").mkdir()
    for z, plane in enumerate(em_image()):
        tifffile.imwrite(folder / "stack" / f"slice_{z:03d}.tif", plane)


def build_jpeg_stack(folder: Path) -> None:
    from PIL import Image

    (folder / "stack").mkdir()
    for z, plane in enumerate(em_image()):
        Image.fromarray(plane).save(folder / "stack" / f"slice_{z:03d}.jpg", quality=90)


def build_tiles(folder: Path, tile: int = 128) -> None:
    """``tiles/{z}/{y}/{x}.png``: each slice as 2 x 2 tiles."""
    from PIL import Image

    for z, plane in enumerate(em_image()):
        for y in range(SHAPE[1] // tile):
            for x in range(SHAPE[2] // tile):
                path = folder / "tiles" / str(z) / str(y) / f"{x}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(plane[y * tile : (y + 1) * tile, x * tile : (x + 1) * tile]).save(path)


def build_knossos(folder: Path) -> None:
    """A KNOSSOS root: knossos.conf and 2 x 2 x 1 raw cubes of 128^3 in mag1/, boundary at z 64."""
    edge = 128
    root = folder / "knossos"
    volume = np.zeros((edge, SHAPE[1], SHAPE[2]), np.uint8)
    volume[: SHAPE[0]] = em_image()
    volume[SHAPE[0] :] = em_image()[::-1]  # past the boundary: must not be converted
    for x in range(SHAPE[2] // edge):
        for y in range(SHAPE[1] // edge):
            cube = root / "mag1" / f"x{x:04d}" / f"y{y:04d}" / "z0000"
            cube.mkdir(parents=True)
            data = volume[:, y * edge : (y + 1) * edge, x * edge : (x + 1) * edge]
            (cube / f"em_mag1_x{x:04d}_y{y:04d}_z0000.raw").write_bytes(np.ascontiguousarray(data).tobytes())
    conf = f'experiment name "em";\nboundary x {SHAPE[2]};\nboundary y {SHAPE[1]};\nboundary z {SHAPE[0]};\n'
    (root / "knossos.conf").write_text(conf + "scale x 11.24;\nscale y 11.24;\nscale z 25;\nmagnification 1;\n")


def build_nifti(folder: Path) -> None:
    import nibabel as nib

    image = nib.Nifti1Image(np.ascontiguousarray(em_image().transpose(2, 1, 0)), np.diag([0.5, 0.5, 1.0, 1.0]))
    image.header.set_xyzt_units("mm")
    nib.save(image, folder / "em.nii")


def build_raw_dataset(folder: Path) -> None:
    write_dataset(folder / "ds", compress=False)


def build_mag1_dataset(folder: Path) -> None:
    write_dataset(folder / "ds", pyramid=False)


def build_dataset(folder: Path) -> None:
    write_dataset(folder / "ds")


def build_unlisted_dataset(folder: Path) -> None:
    """A dataset without properties (metadata derives them from the files)."""
    write_dataset(folder / "ds")
    (folder / "ds" / PROPERTIES_FILE).unlink()


def build_stale_dataset(folder: Path) -> None:
    """Properties behind the disk: a mag not listed and a color box too small (refresh fixes both)."""
    from napari_wkw.core.properties import write_properties

    write_dataset(folder / "ds")
    path = folder / "ds" / PROPERTIES_FILE
    properties = read_properties(path)
    color = properties.layer("color")
    color.mags = [entry for entry in color.mags if entry.mag != Mag(4, 4, 2)]
    color.bounding_box = BoundingBox(OFFSET, (100, 100, 20))
    properties.extra["note"] = "kept by --refresh"
    write_properties(path, properties)


def painted() -> np.ndarray:
    """Labels over the segmentation: blocks across file borders, some beyond the layer box."""
    z, y, x = SHAPE
    labels = np.zeros((z, y, x + 64), np.uint32)
    labels[z // 12 : z * 5 // 8, y // 12 : y * 3 // 5, x // 6 : x * 4 // 5] = 7
    labels[z // 2 :, y * 2 // 5 :, x * 3 // 5 :] = 9000
    labels[z - 4, 10, 10] = 42
    return labels


def set_shape(shape: tuple[int, int, int]) -> None:
    """Use volumes of ``shape`` (z, y, x) from now on (z at most 128, y and x multiples of 128)."""
    global SHAPE
    SHAPE = tuple(shape)  # type: ignore[assignment]
    em_image.cache_clear()
    em_labels.cache_clear()


def build_merge_inputs(folder: Path) -> None:
    from napari_wkw.core.annotation_write import VolumeToWrite, write_volume_annotation

    write_dataset(folder / "ds")
    write_volume_annotation(
        folder / "a.zip",
        VolumeToWrite(painted(), (0, 0, 0), name="Volume", fallback_layer="segmentation"),
        voxel_size=(11.24, 11.24, 25.0),
    )


def build_arrays(folder: Path) -> None:
    """The arrays the napari writers are given (napari holds them in memory)."""
    np.save(folder / "image.npy", em_image())
    np.save(folder / "labels.npy", em_labels())


def build_replace_inputs(folder: Path) -> None:
    build_dataset(folder)
    build_arrays(folder)


#: napari_wkw._writer.write_layers on numpy data, as napari calls it
WRITER = """
import sys
import numpy as np
from napari_wkw._writer import write_layers
work = sys.argv[1]
image, labels = np.load(f"{work}/image.npy"), np.load(f"{work}/labels.npy")
meta = {"scale": (25.0, 11.24, 11.24), "translate": (0.0, 0.0, 11.24 * 32)}
write_layers(f"{work}/{sys.argv[2]}", [
    (image[::-1].copy(), {**meta, "name": "color"}, "image"),
    (labels, {**meta, "name": "segmentation"}, "labels"),
])
"""

#: napari_wkw._annotation_writer.write_annotation on a labels array
ANNOTATION_WRITER = """
import sys
import numpy as np
from napari_wkw._annotation_writer import write_annotation
work = sys.argv[1]
labels = np.load(f"{work}/labels.npy")
write_annotation(f"{work}/out.zip", [(labels, {"name": "Volume", "scale": (25.0, 11.24, 11.24)}, "labels")])
"""

COMMANDS: dict[str, Command] = {
    command.name: command
    for command in [
        Command(
            "convert-tiff",
            build_tiff_stack,
            cli("convert", "{w}/stack", "{w}/out", "--voxel-size", VOXEL, "-j", "2"),
            "out",
            reads=("stack",),
        ),
        Command(
            "convert-jpeg",
            build_jpeg_stack,
            cli("convert", "{w}/stack", "{w}/out", "--voxel-size", VOXEL, "-j", "2"),
            "out",
            reads=("stack",),
        ),
        Command(
            "tile-cube",
            build_tiles,
            cli("tile-cube", "{w}/tiles", "{w}/out", "--voxel-size", VOXEL, "-j", "2"),
            "out",
            reads=("tiles",),
        ),
        Command(
            "convert-knossos",
            build_knossos,
            cli("convert-knossos", "{w}/knossos", "{w}/out", "-j", "2"),
            "out",
            reads=("knossos",),
        ),
        Command(
            "convert-nifti",
            build_nifti,
            cli("convert-nifti", "{w}/em.nii", "{w}/out", "-j", "2"),
            "out",
            reads=("em.nii",),
        ),
        Command("compress", build_raw_dataset, cli("compress", "{w}/ds", "-j", "2"), "ds", in_place=True),
        Command(
            "compress-copy", build_raw_dataset, cli("compress", "{w}/ds", "{w}/out", "-j", "2"), "out", reads=("ds",)
        ),
        Command("downsample", build_mag1_dataset, cli("downsample", "{w}/ds", "-j", "2"), "ds", in_place=True),
        Command(
            "recube",
            build_dataset,
            cli("recube", "{w}/ds", "{w}/out", "--file-len", "1", "-j", "2"),
            "out",
            reads=("ds",),
        ),
        Command(
            "metadata",
            build_unlisted_dataset,
            cli("metadata", "{w}/ds", "--voxel-size", VOXEL, "--compute-max-id", "-j", "2"),
            "ds",
            kind="properties",
            reads=("ds",),
            changes=(PROPERTIES_FILE,),
        ),
        Command(
            "metadata-refresh",
            build_stale_dataset,
            cli("metadata", "{w}/ds", "--refresh", "-j", "2"),
            "ds",
            kind="properties",
            reads=("ds",),
            changes=(PROPERTIES_FILE,),
        ),
        Command(
            "export-tiff",
            build_dataset,
            cli("export-tiff", "{w}/ds", "{w}/out", "-j", "2"),
            "out",
            kind="tiff",
            reads=("ds",),
        ),
        Command(
            "export-annotation",
            build_dataset,
            cli("export-annotation", "{w}/ds", "{w}/out.zip", "-l", "segmentation", "-j", "2"),
            "out.zip",
            kind="annotation",
            reads=("ds",),
        ),
        Command(
            "merge-annotation",
            build_merge_inputs,
            cli("merge-annotation", "{w}/a.zip", "{w}/ds", "-l", "segmentation", "-j", "2"),
            "ds",
            reads=("a.zip",),
            in_place=True,
            per_voxel=True,
        ),
        Command(
            "merge-annotation-into",
            build_merge_inputs,
            cli("merge-annotation", "{w}/a.zip", "{w}/ds", "-l", "segmentation", "--into", "merged", "-j", "2"),
            "ds",
            reads=("a.zip",),
            in_place=True,
        ),
        Command("writer", build_arrays, (PYTHON, "-c", WRITER, "{w}", "out"), "out", reads=("image.npy", "labels.npy")),
        Command(
            "writer-replace",
            build_replace_inputs,
            (PYTHON, "-c", WRITER, "{w}", "ds"),
            "ds",
            reads=("image.npy", "labels.npy"),
            in_place=True,
        ),
        Command(
            "annotation-writer",
            build_arrays,
            (PYTHON, "-c", ANNOTATION_WRITER, "{w}"),
            "out.zip",
            kind="annotation",
            reads=("labels.npy",),
        ),
    ]
}
