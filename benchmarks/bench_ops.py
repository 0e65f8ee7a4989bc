"""Compress and downsample, as ratios against the reference CLI (webknossos[numba]) in the same run.

    python benchmarks/bench_ops.py [--depth 64 --depth 128] [--repeats 3]
        [--workdir /tmp/napari-wkw-bench] [--ref-venv DIR] [--strategies threads,processes]
        [--ops compress,downsample] [--ref-sequential] [--profile-reference] [--no-lz4hc]

Requirement checked: on a dataset of at least 64 x 2048 x 2048 uint8 of real-looking
content, with 2 jobs on a 2-core machine, ``napari-wkw compress`` and
``napari-wkw downsample`` each take at most half the time of the reference tool
(``webknossos[numba]==4.3.3``, installed into its own virtual environment by this
script, never a project dependency), and our peak memory stays flat as the dataset
grows (DEPTH 128 against 64).

Input, written once per depth with the bare ``wkw`` library: a raw (uncompressed) WKW
dataset, mag 1 only, one uint8 color layer ``color``, voxel size 11.24 x 11.24 x 25 nm,
DEPTH x 2048 x 2048 (z, y, x), file_len 32. Content: the 2 x 2 mosaic of the four real
EM tiles (shared/testdata/em_tiles, else tests/data/em_tiles), rolled by (3z, 2z)
pixels per slice so that slices differ. A fresh copy of that pristine dataset
(``cp -r``, then ``sync``; outside the timing) is what every measured run works on.

Both tools do the same work, 2 jobs each:

* compress, in place: mag 1 raw -> compressed. The reference always writes LZ4HC, ours
  LZ4 unless given ``--lz4hc``: ours is timed both ways (``ours/threads+lz4hc``);
* downsample: from mag 1 the default anisotropic pyramid for 11.24, 11.24, 25 nm
  (2-2-1, 4-4-2, 8-8-4, 16-16-8, 32-32-16), median for color, written compressed
  (the reference's CLI has no codec option there: LZ4HC against our LZ4).

Measured for each (tool, operation, depth), runs interleaved (ref, ours-threads,
ours-processes, ref, ...) after warming the page cache with one read of the input:
wall time of the whole command (a subprocess, startup included), peak memory of its
whole process tree (sums of VmRSS and of RssAnon over the process and its descendants,
polled every 50 ms from /proc; RSS includes memory-mapped file pages, which the kernel
can reclaim, RssAnon does not), and CPU time (user + system of the tree) to tell how
much of the 2 cores each tool keeps busy. Also, to tell what bounds the ratios: each
tool's bare startup (``--help``); the same compress done in process with bare ``wkw``
library calls (read mag 1, write each file whole and compressed, one thread): what a
tool pays that goes through that library, which writes compressed files only whole, so
a 1024-cube file holding DEPTH slices is compressed mostly as zero padding (ours
encodes blocks itself and can go below it); with ``--profile-reference``, where
the reference spends its time (cProfile, sequential); with ``--ref-sequential``, the
reference without worker processes, for context (the target is against 2 jobs).

Correctness is checked once, untimed: after each tool's compress, mag 1 read back with
bare ``wkw`` equals the input; after downsample, the mags each tool built, and the
fraction of equal voxels between ours and the reference for every common mag.

Medians of ``--repeats`` runs. It prints a report and always exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import wkw

REFERENCE = "webknossos[numba]==4.3.3"
VOXEL = (11.24, 11.24, 25.0)
SIDE = 2048
SLAB = 32
JOBS = 2
REPO = Path(__file__).resolve().parents[1]
TILE_DIRS = [REPO.parent / "shared" / "testdata" / "em_tiles", REPO / "tests" / "data" / "em_tiles"]
OURS = Path(sys.executable).with_name("napari-wkw")
POLL = 0.05


# ---------------------------------------------------------------------------------
# input


def em_mosaic() -> np.ndarray:
    """The 2 x 2 mosaic (y, x) of the four real EM tiles, named z_y_x.jpg."""
    from imageio.v3 import imread

    for folder in TILE_DIRS:
        tiles = sorted(folder.glob("*.jpg"))
        if len(tiles) == 4:
            break
    else:
        raise SystemExit(f"the four EM tiles were not found in {', '.join(map(str, TILE_DIRS))}")
    grid = {}
    for tile in tiles:
        _, y, x = (int(part) for part in tile.stem.split("_"))
        image = np.asarray(imread(tile))
        if image.ndim == 3:
            image = image[..., 0]
        grid[(y, x)] = image
    ys, xs = sorted({y for y, _ in grid}), sorted({x for _, x in grid})
    mosaic = np.block([[grid[(y, x)] for x in xs] for y in ys]).astype(np.uint8)
    assert mosaic.shape == (SIDE, SIDE), mosaic.shape
    return mosaic


def properties(name: str, depth: int) -> dict:
    """A current-style datasource-properties.json, as webknossos writes it: mag 1 only."""
    return {
        "id": {"name": name, "team": ""},
        "scale": {"factor": list(VOXEL), "unit": "nanometer"},
        "dataLayers": [
            {
                "name": "color",
                "category": "color",
                "boundingBox": {"topLeft": [0, 0, 0], "width": SIDE, "height": SIDE, "depth": depth},
                "dataFormat": "wkw",
                "mags": [
                    {
                        "mag": [1, 1, 1],
                        "path": "./color/1",
                        "cubeLength": 1024,
                        "axisOrder": {"c": 0, "x": 1, "y": 2, "z": 3},
                    }
                ],
                "numChannels": 1,
                "elementClass": "uint8",
            }
        ],
        "version": 1,
    }


def pristine(workdir: Path, depth: int, mosaic: np.ndarray) -> Path:
    """The raw input dataset for DEPTH, written once (bare wkw, 32-slice slabs)."""
    target = workdir / f"input-{depth}" / "pristine"
    done = target / ".complete"
    if done.exists():
        return target
    if target.exists():
        shutil.rmtree(target)
    started = time.perf_counter()
    header = wkw.Header(np.uint8, block_type=wkw.Header.BLOCK_TYPE_RAW, file_len=32)
    with wkw.Dataset.create(str(target / "color" / "1"), header) as dataset:
        for z0 in range(0, depth, SLAB):
            slab = np.empty((SIDE, SIDE, min(SLAB, depth - z0)), dtype=np.uint8, order="F")  # x, y, z
            for dz in range(slab.shape[2]):
                z = z0 + dz
                slab[:, :, dz] = np.roll(mosaic, (3 * z, 2 * z), axis=(0, 1)).T
            dataset.write((0, 0, z0), slab)
    (target / "datasource-properties.json").write_text(json.dumps(properties(target.name, depth), indent=2))
    done.touch()
    print(f"wrote the {depth} x {SIDE} x {SIDE} input {target} in {time.perf_counter() - started:.1f} s", flush=True)
    return target


def expected_slab(mosaic: np.ndarray, z0: int, count: int) -> np.ndarray:
    """Input slices z0 .. z0+count as (x, y, z), the way wkw returns them."""
    out = np.empty((SIDE, SIDE, count), dtype=np.uint8, order="F")
    for dz in range(count):
        z = z0 + dz
        out[:, :, dz] = np.roll(mosaic, (3 * z, 2 * z), axis=(0, 1)).T
    return out


def warm(path: Path) -> int:
    """Read every file under PATH once (page cache); returns the bytes read."""
    total = 0
    for file in sorted(path.rglob("*")):
        if file.is_file():
            with open(file, "rb") as handle:
                while chunk := handle.read(1 << 24):
                    total += len(chunk)
    return total


def fresh_copy(source: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-r", "--sparse=always", str(source), str(target)], check=True)
    (target / ".complete").unlink(missing_ok=True)
    subprocess.run(["sync"], check=True)
    return target


# ---------------------------------------------------------------------------------
# the reference


def ensure_reference(venv: Path) -> Path:
    """The reference CLI in its own venv (created once, reused if it has bin/webknossos)."""
    cli = venv / "bin" / "webknossos"
    if cli.exists():
        return cli
    print(f"installing {REFERENCE} into {venv} (once) ...", flush=True)
    base = getattr(sys, "_base_executable", None) or shutil.which("python3") or sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", REFERENCE], check=True)
    return cli


def reference_version(venv: Path) -> str:
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import webknossos, wkw, importlib.metadata as m; print(m.version('webknossos'), 'wkw', m.version('wkw'))",
        ],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or out.stderr.strip().splitlines()[-1]


# ---------------------------------------------------------------------------------
# running and measuring


def tree(pid: int) -> list[int]:
    """PID and its descendants, from /proc/<pid>/task/*/children."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo.extend(int(child) for child in handle.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return out


def memory(pids: list[int]) -> tuple[int, int]:
    """Sums of VmRSS and of RssAnon over PIDS, in bytes (processes gone meanwhile count 0).

    RSS includes file pages mapped into the process (a memory-mapped input file counts
    in full once touched, though the kernel can drop those pages at will); RssAnon is
    the process's own heap: what cannot be reclaimed without swap.
    """
    rss = anon = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("RssAnon:"):
                        anon += int(line.split()[1]) * 1024
                        break
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return rss, anon


@dataclass
class Run:
    wall: float
    cpu: float
    rss: int
    anon: int
    returncode: int
    log: Path


def run(command: list[str], log: Path) -> Run:
    """Wall time, CPU time and peak memory (polled every 50 ms) of COMMAND's process tree."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, "w") as out:
        out.write(" ".join(command) + "\n")
        out.flush()
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        peak_rss = peak_anon = 0
        while process.poll() is None:
            rss, anon = memory(tree(process.pid))
            peak_rss, peak_anon = max(peak_rss, rss), max(peak_anon, anon)
            time.sleep(POLL)
        wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if process.returncode != 0:
        tail = log.read_text().strip().splitlines()[-5:]
        print(f"  ! exit {process.returncode}: {' '.join(command)}\n    " + "\n    ".join(tail), flush=True)
    return Run(wall, cpu, peak_rss, peak_anon, process.returncode, log)


@dataclass
class Tool:
    label: str
    compress: list[str] | None  # the command, with {ds} for the dataset; None: not measured
    downsample: list[str] | None
    help: list[str]

    def command(self, op: str, dataset: Path) -> list[str] | None:
        parts = getattr(self, op)
        return None if parts is None else [part.replace("{ds}", str(dataset)) for part in parts]


def tools(ref_cli: Path, strategies: list[str], jobs: int, lz4hc: bool, ref_sequential: bool) -> list[Tool]:
    ref_jobs = ["--jobs", str(jobs), "--distribution-strategy", "multiprocessing"]
    out = [
        Tool(
            "reference",
            [str(ref_cli), "compress", *ref_jobs, "{ds}"],
            [str(ref_cli), "downsample", *ref_jobs, "{ds}"],
            [str(ref_cli), "--help"],
        )
    ]
    if ref_sequential:
        # context only: the reference in one process (no worker start-up), against itself with 2 jobs
        sequential = ["--distribution-strategy", "sequential"]
        out.append(
            Tool(
                "reference/sequential",
                [str(ref_cli), "compress", *sequential, "{ds}"],
                [str(ref_cli), "downsample", *sequential, "{ds}"],
                [str(ref_cli), "--help"],
            )
        )
    for strategy in strategies:
        ours_jobs = ["--jobs", str(jobs), "--distribution-strategy", strategy]
        out.append(
            Tool(
                f"ours/{strategy}",
                [str(OURS), "compress", "{ds}", *ours_jobs],
                [str(OURS), "downsample", "{ds}", *ours_jobs],
                [str(OURS), "--help"],
            )
        )
    if lz4hc and strategies:
        # the reference always writes LZ4HC, ours LZ4 unless told: the same codec too
        ours_jobs = ["--jobs", str(jobs), "--distribution-strategy", strategies[0]]
        out.append(
            Tool(
                f"ours/{strategies[0]}+lz4hc",
                [str(OURS), "compress", "{ds}", "--lz4hc", *ours_jobs],
                None,
                [str(OURS), "--help"],
            )
        )
    return out


def ours_available() -> str | None:
    """None if our compress and downsample commands exist, else why not."""
    if not OURS.exists():
        return f"{OURS} is missing"
    for op in ("compress", "downsample"):
        out = subprocess.run([str(OURS), op, "--help"], capture_output=True, text=True)
        if out.returncode != 0:
            return f"`napari-wkw {op}` does not exist yet"
    return None


# ---------------------------------------------------------------------------------
# correctness (once, untimed)


def mags_of(dataset: Path) -> list[str]:
    layer = dataset / "color"
    names = [p.name for p in layer.iterdir() if (p / "header.wkw").exists()]
    return sorted(names, key=lambda n: tuple(int(v) for v in n.split("-")) * (3 if "-" not in n else 1))


def block_type(mag_path: Path) -> str:
    with wkw.Dataset.open(str(mag_path)) as dataset:
        kind = dataset.header.block_type
    return {1: "raw", 2: "lz4", 3: "lz4hc"}.get(kind, str(kind))


def compare_to_input(dataset: Path, mosaic: np.ndarray, depth: int) -> float:
    """Fraction of mag-1 voxels equal to the input, read slab by slab with bare wkw."""
    equal = 0
    with wkw.Dataset.open(str(dataset / "color" / "1")) as data:
        for z0 in range(0, depth, SLAB):
            count = min(SLAB, depth - z0)
            got = data.read((0, 0, z0), (SIDE, SIDE, count))[0]
            equal += int(np.count_nonzero(got == expected_slab(mosaic, z0, count)))
    return equal / (SIDE * SIDE * depth)


def mag_shape(name: str, depth: int) -> tuple[int, int, int]:
    factors = [int(v) for v in name.split("-")] if "-" in name else [int(name)] * 3
    return tuple(-(-size // f) for size, f in zip((SIDE, SIDE, depth), factors))


def compare_mags(ours: Path, ref: Path, name: str, depth: int) -> float:
    shape = mag_shape(name, depth)
    with wkw.Dataset.open(str(ours / "color" / name)) as a, wkw.Dataset.open(str(ref / "color" / name)) as b:
        x = a.read((0, 0, 0), shape)[0]
        y = b.read((0, 0, 0), shape)[0]
    return float(np.count_nonzero(x == y)) / x.size


# ---------------------------------------------------------------------------------
# floors


def floor_compress(source: Path, scratch: Path, depth: int, block_type: int) -> tuple[float, float]:
    """Bare wkw, one thread, in process: (read all of mag 1, write it compressed).

    Compressed wkw files can only be written whole, so each 1024-cube file is written
    from a zero-padded buffer, as any tool writing through the ``wkw`` library must.
    """
    if scratch.exists():
        shutil.rmtree(scratch)
    read = write = 0.0
    side = 1024  # file_len 32 x block_len 32
    buffer = np.zeros((side, side, side), dtype=np.uint8, order="F")
    header = wkw.Header(np.uint8, block_type=block_type, file_len=32)
    with wkw.Dataset.open(str(source / "color" / "1")) as src, wkw.Dataset.create(str(scratch), header) as dst:
        for z0 in range(0, depth, side):
            count = min(side, depth - z0)
            for y0 in range(0, SIDE, side):
                for x0 in range(0, SIDE, side):
                    started = time.perf_counter()
                    buffer[:, :, :count] = src.read((x0, y0, z0), (side, side, count))[0]
                    read += time.perf_counter() - started
                    started = time.perf_counter()
                    dst.write((x0, y0, z0), buffer)
                    write += time.perf_counter() - started
    del buffer
    shutil.rmtree(scratch)
    return read, write


def profile_reference(venv: Path, op: str, dataset: Path, workdir: Path) -> list[str]:
    """The reference's OP, sequential, under cProfile: where its time goes (top entries)."""
    stats = workdir / f"ref-{op}.prof"
    script = (
        "import sys\nfrom webknossos.cli.main import app\n"
        f"sys.argv = ['webknossos', {op!r}, '--distribution-strategy', 'sequential', {str(dataset)!r}]\n"
        "app()\n"
    )
    driver = workdir / "profile_reference.py"
    driver.write_text(script)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "cProfile", "-o", str(stats), str(driver)], capture_output=True)
    out = subprocess.run(
        [python, "-c", f"import pstats; pstats.Stats({str(stats)!r}).sort_stats('tottime').print_stats(8)"],
        capture_output=True,
        text=True,
    ).stdout
    keep = [
        line for line in out.splitlines() if "function calls" in line or line.strip()[:1].isdigit() or "tottime" in line
    ]
    return [line.replace(str(venv), "REFVENV") for line in keep]


# ---------------------------------------------------------------------------------
# report


def mib(value: float) -> str:
    return f"{value / 2**20:,.0f}"


def median(values):
    return statistics.median(values) if values else float("nan")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if a and b and a == a and b == b else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, nargs="+", action="extend", help="z slices (default 64); repeatable")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/napari-wkw-bench"))
    parser.add_argument("--ref-venv", type=Path, default=None, help="default WORKDIR/refvenv")
    parser.add_argument("--strategies", default="threads,processes", help="ours: comma-separated")
    parser.add_argument("--ops", default="compress,downsample", help="comma-separated")
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--no-lz4hc", action="store_true", help="skip ours' compress --lz4hc (the reference's codec)")
    parser.add_argument("--reference-only", action="store_true", help="measure the reference alone")
    parser.add_argument(
        "--ref-sequential", action="store_true", help="also time the reference sequential (context; not the target)"
    )
    parser.add_argument(
        "--profile-reference",
        action="store_true",
        help="also run the reference once per op, sequential, under cProfile (untimed; smallest depth)",
    )
    args = parser.parse_args(argv)
    depths = sorted(set(args.depth or [64]))
    ops = [op.strip() for op in args.ops.split(",") if op.strip()]
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    workdir = args.workdir.absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    ref_venv = (args.ref_venv or workdir / "refvenv").absolute()

    ref_cli = ensure_reference(ref_venv)
    missing = None if args.reference_only else ours_available()
    if missing:
        print(f"NOTE: {missing}; measuring the reference alone", flush=True)
    all_tools = tools(
        ref_cli,
        [] if (missing or args.reference_only) else strategies,
        args.jobs,
        not args.no_lz4hc,
        args.ref_sequential,
    )

    print(f"reference: webknossos {reference_version(ref_venv)} ({ref_cli})")
    print(f"ours:      {OURS}")
    print(
        f"machine:   {os.cpu_count()} cores, jobs {args.jobs}, repeats {args.repeats}, depths {depths}, "
        f"load average {os.getloadavg()[0]:.2f} (other work on the machine makes runs noisy)"
    )
    print("commands (DS = a fresh copy of the raw input):")
    for tool in all_tools:
        for op in ops:
            if tool.command(op, Path("DS")):
                print(f"  {tool.label:22s} {' '.join(tool.command(op, Path('DS')))}")
    print(flush=True)

    mosaic = em_mosaic()
    results: dict[tuple[str, str, int], list[Run]] = {}
    checks: list[str] = []
    startup: dict[str, list[float]] = {}
    profiles: dict[str, list[str]] = {}
    floors: dict[tuple[int, str], tuple[float, float]] = {}

    for tool in all_tools:
        if tool.label.split("/")[0] in startup:
            continue
        startup[tool.label.split("/")[0]] = [run(tool.help, workdir / "logs" / "help.log").wall for _ in range(3)]

    for depth in depths:
        source = pristine(workdir, depth, mosaic)
        warm(source)
        for kind, code in (("lz4", wkw.Header.BLOCK_TYPE_LZ4), ("lz4hc", wkw.Header.BLOCK_TYPE_LZ4HC)):
            floors[(depth, kind)] = min(
                (floor_compress(source, workdir / "floor", depth, code) for _ in range(2)), key=sum
            )
        for op in ops:
            kept: dict[str, Path] = {}
            for repeat in range(args.repeats):
                for tool in all_tools:
                    if tool.command(op, Path("DS")) is None:
                        continue
                    slug = tool.label.replace("/", "-").replace("+", "-")
                    dataset = fresh_copy(source, workdir / "runs" / f"{slug}-{op}-{depth}")
                    result = run(tool.command(op, dataset), workdir / "logs" / f"{slug}-{op}-{depth}-{repeat}.log")
                    results.setdefault((tool.label, op, depth), []).append(result)
                    print(
                        f"  depth {depth:4d} {op:10s} {tool.label:22s} run {repeat + 1}: "
                        f"{result.wall:7.2f} s wall, {result.cpu:7.2f} s cpu, peak {mib(result.rss)} MiB rss "
                        f"/ {mib(result.anon)} MiB anon"
                        + ("" if result.returncode == 0 else f"  EXIT {result.returncode}"),
                        flush=True,
                    )
                    if repeat == 0 and result.returncode == 0:
                        keep = workdir / "keep" / f"{slug}-{op}-{depth}"
                        if keep.exists():
                            shutil.rmtree(keep)
                        keep.parent.mkdir(parents=True, exist_ok=True)
                        dataset.rename(keep)
                        kept[tool.label] = keep
                    else:
                        shutil.rmtree(dataset, ignore_errors=True)
            # correctness, once per (op, depth), untimed
            if op == "compress":
                for label, path in kept.items():
                    fraction = compare_to_input(path, mosaic, depth)
                    checks.append(
                        f"compress   depth {depth:4d} {label:22s} mag 1 {block_type(path / 'color' / '1'):6s} "
                        f"equal to the input: {fraction:.6f}"
                    )
            else:
                ref = kept.get("reference")
                for label, path in kept.items():
                    checks.append(
                        f"downsample depth {depth:4d} {label:22s} mags: {', '.join(mags_of(path))}"
                        f" ({', '.join(sorted({block_type(path / 'color' / m) for m in mags_of(path) if m != '1'}))})"
                    )
                for label, path in kept.items():
                    if label == "reference" or ref is None:
                        continue
                    common = [m for m in mags_of(ref) if m != "1" and m in mags_of(path)]
                    parts = [f"{m} {compare_mags(path, ref, m, depth):.6f}" for m in common]
                    checks.append(
                        f"downsample depth {depth:4d} {label:22s} equal voxels vs reference: " + ", ".join(parts)
                    )
            for path in kept.values():
                shutil.rmtree(path, ignore_errors=True)
            if args.profile_reference and depth == depths[0]:
                dataset = fresh_copy(source, workdir / "runs" / f"profile-{op}-{depth}")
                profiles[op] = profile_reference(ref_venv, op, dataset, workdir)
                shutil.rmtree(dataset, ignore_errors=True)

    # ------------------------------------------------------------------ the report
    print("\n== medians (wall s, tree CPU s, peak tree RSS / RssAnon MiB); ratios ours / reference ==")
    head = (
        f"{'op':10s} {'depth':>5s} {'tool':22s} {'wall':>7s} {'cpu':>7s} {'cpu/wall':>8s} {'rss':>6s} {'anon':>6s} "
        f"{'t/ref':>6s} {'rss/ref':>7s} {'anon/ref':>8s}"
    )
    print(head)
    print("-" * len(head))
    for op in ops:
        for depth in depths:
            ref = results.get(("reference", op, depth), [])
            rw, rr, rp = median([r.wall for r in ref]), median([r.rss for r in ref]), median([r.anon for r in ref])
            for tool in all_tools:
                runs = results.get((tool.label, op, depth), [])
                if not runs:
                    continue
                w, c = median([r.wall for r in runs]), median([r.cpu for r in runs])
                m, p = median([r.rss for r in runs]), median([r.anon for r in runs])
                mine = tool.label != "reference"  # reference/sequential: against the reference with 2 jobs
                print(
                    f"{op:10s} {depth:5d} {tool.label:22s} {w:7.2f} {c:7.2f} {c / w:8.2f} {mib(m):>6s} {mib(p):>6s} "
                    f"{ratio(w, rw) if mine else '':>6s} {ratio(m, rr) if mine else '':>7s} "
                    f"{ratio(p, rp) if mine else '':>8s}"
                )
    print(
        "target: t/ref <= 0.50 for both operations (2 jobs each); rss counts mapped file pages, anon only the "
        "processes' own heap"
    )
    if len(depths) > 1:
        lo, hi = depths[0], depths[-1]
        print(f"\n== memory growth: peak at depth {hi} / peak at depth {lo} (data grows {hi / lo:.1f}x; flat = 1.0) ==")
        for op in ops:
            for tool in all_tools:
                a, b = results.get((tool.label, op, lo), []), results.get((tool.label, op, hi), [])
                if a and b:
                    print(
                        f"{op:10s} {tool.label:22s} rss {ratio(median([r.rss for r in b]), median([r.rss for r in a]))}"
                        f"  anon {ratio(median([r.anon for r in b]), median([r.anon for r in a]))}"
                        f"  wall {ratio(median([r.wall for r in b]), median([r.wall for r in a]))}"
                    )
    print("\n== what bounds the ratios ==")
    for label, times in startup.items():
        print(f"startup (`--help`) {label:22s} {median(times):6.2f} s")
    print("(the wkw library writes compressed files whole: zero padding to 1024 slices is compressed too)")
    for (depth, kind), (read, write) in floors.items():
        print(
            f"compress via the wkw library, depth {depth:4d}: read mag 1 {read:5.2f} s + write it {kind:5s} "
            f"{write:5.2f} s = "
            f"{read + write:5.2f} s on one core, {(read + write) / args.jobs:5.2f} s ideal on {args.jobs}"
        )
    for op, lines in profiles.items():
        print(f"\nreference {op}, sequential, depth {depths[0]}, under cProfile (top by own time):")
        for line in lines:
            print("  " + line)
    print("\n== correctness (untimed, first run of each) ==")
    for line in checks:
        print(line)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}; logs: {workdir / 'logs'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
