"""Throughput of the dask strategy on this machine: sequential, dask with 1 and 2 workers.

    python benchmarks/bench_cluster.py [--depth 64] [--repeats 3] [--workdir /tmp/napari-wkw-bench]
        [--ops convert,compress,downsample] [--quiet-below 0.3] [--patience 300]

What it answers (docs/cluster.md): how much does running the units on a dask cluster
cost or gain against running them in the command itself, on real EM data, and how does
it grow from 1 to 2 workers. Every variant runs the same ``napari-wkw`` command as a
subprocess; only the job options differ:

* ``sequential``: ``--distribution-strategy sequential`` (the baseline, ratio 1.00);
* ``threads-2``: the local default, ``--jobs 2`` on threads (for context);
* ``dask-1``, ``dask-2``: ``--distribution-strategy dask --jobs N``: the command starts its
  own LocalCluster of N worker processes (startup and shutdown included);
* ``dask-1@running``, ``dask-2@running``: ``--scheduler`` of a LocalCluster of N workers
  this script started just before the run (startup excluded; the workers are not in the
  measured process tree: their CPU shows as "others used", their memory nowhere).

Input (shared with ``bench_ops.py`` and ``bench_convert.py``, written once per depth
under WORKDIR): DEPTH slices of 2048 x 2048 uint8, the 2 x 2 mosaic of the four real EM
tiles rolled by (3z, 2z) per slice; as uncompressed TIFF slices for ``convert`` (into a
complete compressed dataset with its pyramid), and as a raw WKW dataset (mag 1, 4 files
of 1024^3) for ``compress`` (in place) and ``downsample`` (the pyramid up to 32-32-16).
Every measured run starts on a fresh copy (untimed, synced) once the machine is quiet
(fewer than ``--quiet-below`` cores busy over one second; other sessions run tests), and
the cores the rest of the machine used during the run are printed next to it.

Correctness, untimed: the first run of every variant must leave exactly the files of the
sequential run, byte for byte. Medians of ``--repeats``; always exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import logging
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_convert import busy_seconds, code_state, stack, wait_for_quiet  # noqa: E402
from bench_ops import OURS, em_mosaic, fresh_copy, median, mib, pristine, run, warm  # noqa: E402

VARIANTS = {
    "sequential": ["--distribution-strategy", "sequential"],
    "threads-2": ["--distribution-strategy", "threads", "--jobs", "2"],
    "dask-1": ["--distribution-strategy", "dask", "--jobs", "1"],
    "dask-2": ["--distribution-strategy", "dask", "--jobs", "2"],
    "dask-1@running": ["--distribution-strategy", "dask", "--scheduler", "{1}"],
    "dask-2@running": ["--distribution-strategy", "dask", "--scheduler", "{2}"],
}


def command(op: str, source: Path, target: Path, options: list[str]) -> list[str]:
    if op == "convert":
        return [str(OURS), "convert", str(source), str(target), "--voxel-size", "11.24,11.24,25", "-q", *options]
    return [str(OURS), op, str(target), "-q", *options]


def same_files(a: Path, b: Path) -> str:
    """'' when both trees hold the same files with the same bytes, else what differs first."""
    names_a = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    names_b = sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    if names_a != names_b:
        return f"different files: {sorted(set(names_a) ^ set(names_b))[:3]}"
    for name in names_a:
        if not filecmp.cmp(a / name, b / name, shallow=False):
            return f"{name} differs"
    return ""


@contextlib.contextmanager
def running_cluster(options: list[str]):
    """For an ``@running`` variant, a LocalCluster of N single-threaded workers on 127.0.0.1
    (a user's running scheduler) while its run lasts, its address put into ``options``.

    Started per run, not once: idle, its scheduler and workers keep ~0.3 cores busy, which
    would hold back the quiet gate and disturb the other variants."""
    workers = next((int(o[1:-1]) for o in options if o in ("{1}", "{2}")), None)
    if workers is None:
        yield options
        return
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as cluster:
        with Client(cluster) as client:  # workers import the units' code first, as on a cluster in use
            client.run(_import_units)
        time.sleep(1)  # startup's CPU settles
        yield [cluster.scheduler_address if o.startswith("{") else o for o in options]


def _import_units() -> None:
    import napari_wkw.convert.cubing  # noqa: F401
    import napari_wkw.ops.compress  # noqa: F401
    import napari_wkw.ops.downsample  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "napari-wkw-bench")
    parser.add_argument("--ops", default="convert,compress,downsample")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--quiet-below", type=float, default=0.3, help="cores busy over 1 s [0.3]")
    parser.add_argument("--patience", type=float, default=300, help="seconds to wait for quiet [300]")
    args = parser.parse_args(argv)
    ops = args.ops.split(",")
    variants = args.variants.split(",")
    quiet = (args.quiet_below, args.patience)
    work = args.workdir.expanduser().absolute()
    print(f"measuring {code_state()}, {os.cpu_count()} cores, depth {args.depth}", flush=True)

    mosaic = em_mosaic()
    inputs = {"convert": stack(work, "tif", args.depth, mosaic)}
    raw = pristine(work, args.depth, mosaic)
    inputs["compress"] = inputs["downsample"] = raw
    for source in {*inputs.values()}:
        warm(source)
    runs: dict[tuple[str, str], list] = {}
    checks: dict[tuple[str, str], str] = {}
    out = work / "cluster-bench"
    for repeat in range(args.repeats):
        for op in ops:
            for variant in variants:  # interleaved: drift of the VM hits every variant alike
                target = out / variant / op / "ds"
                if op == "convert":
                    shutil.rmtree(target, ignore_errors=True)
                    target.parent.mkdir(parents=True, exist_ok=True)
                else:
                    fresh_copy(inputs[op], target)
                os.sync()
                wait_for_quiet(*quiet)
                with running_cluster(VARIANTS[variant]) as options:
                    before = busy_seconds()
                    log = out / "logs" / f"{variant}-{op}-{repeat}.log"
                    result = run(command(op, inputs[op], target, options), log)
                    others = max(busy_seconds() - before - result.cpu, 0.0) / result.wall
                runs.setdefault((op, variant), []).append(result)
                print(
                    f"  {op:10s} {variant:15s} #{repeat}: {result.wall:6.2f} s, cpu {result.cpu:6.2f} s, "
                    f"peak rss {mib(result.rss)}, others used {others:.2f} cores"
                    + ("" if result.returncode == 0 else f"  EXIT {result.returncode}"),
                    flush=True,
                )
                if repeat == 0 and variant != "sequential" and "sequential" in variants:
                    checks[(op, variant)] = same_files(out / "sequential" / op / "ds", target)

    print(f"\nmedians of {args.repeats}, depth {args.depth} x 2048 x 2048 uint8, ratio = wall / sequential wall")
    print(f"{'operation':10s} {'variant':15s} {'wall s':>7s} {'ratio':>6s} {'cpu s':>7s} {'peak rss':>9s}  same bytes")
    for op in ops:
        base = median([r.wall for r in runs.get((op, "sequential"), [])]) if (op, "sequential") in runs else None
        for variant in variants:
            measured = runs[(op, variant)]
            wall = median([r.wall for r in measured])
            ratio = f"{wall / base:.2f}" if base else "-"
            check = (
                "base"
                if variant == "sequential"
                else ("yes" if not checks.get((op, variant)) else checks[(op, variant)])
            )
            print(
                f"{op:10s} {variant:15s} {wall:7.2f} {ratio:>6s} {median([r.cpu for r in measured]):7.2f} "
                f"{mib(median([r.rss for r in measured])):>9s}  {check}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
