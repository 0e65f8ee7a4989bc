"""``napari-wkw convert-zarr`` of a WEBKNOSSOS zarr3 dataset to WKW, against the reference's
``webknossos copy-dataset --data-format wkw``, in the same run.

    python benchmarks/bench_convert_zarr.py [--depth 128] [--repeats 3]
        [--workdir /tmp/napari-wkw-bench] [--ref-venv .venv-webknossos] [--jobs 2]

Target: with 2 jobs, ours takes at most half the reference's time (ratio <= 0.5).

Input, written once: the real EM mosaic (the four tiles in tests/data/em_tiles, shifted a
little per slice: ``napari_wkw.demo.ShiftedMosaic``), DEPTH x 2048 x 2048 uint8 at
11.24 x 11.24 x 25 nm with its full pyramid (1, 2-2-1, 4-4-2 ... 32-32-16), first as WKW
(``bench_reader.build``), then as the webknossos library writes zarr3 (``bench_reader.
build_zarr3``: (c, x, y, z) arrays, 1024^3 shards of 32^3 chunks, zstd, ``dataFormat``
zarr3, the same mags). Both tools copy every mag into a new WKW dataset with 2 jobs:

* reference: ``webknossos copy-dataset ZARR3 TARGET --data-format wkw --jobs 2``
  (webknossos 4.3.3 in its own virtual environment, multiprocessing);
* ours: ``napari-wkw convert-zarr ZARR3 TARGET --jobs 2 -q`` (threads; LZ4).

Runs are interleaved (reference, ours, reference ...) on a warm page cache, each into a
fresh target (removed and ``sync`` outside the timing) and started once the machine is
quiet (other sessions run tests on it: fewer than ``--quiet-below`` cores busy over a
second; each run also reports the cores other processes kept busy meanwhile); wall time of the whole command
(start-up included), peak RSS of its process tree and CPU time, as in bench_ops.py.
Correctness, untimed: every mag of both outputs equals the source mag voxel for voxel.

Medians of ``--repeats`` runs; prints a report (last line: the ratio) and exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_convert import code_state, timed  # noqa: E402
from bench_ops import OURS, REPO, warm  # noqa: E402
from bench_reader import build, build_zarr3  # noqa: E402

from napari_wkw.core import Dataset  # noqa: E402


def reference_cli(venv: Path) -> Path:
    cli = venv / "bin" / "webknossos"
    if not cli.exists():
        raise SystemExit(f"{cli} is missing: install webknossos==4.3.3 there (python -m venv; pip install webknossos)")
    return cli


def compare(source: Path, output: Path) -> str:
    """'equal' when every mag of ``output`` (WKW) equals the source's (zarr3), else what differs."""
    a, b = Dataset.open(source).layers["color"], Dataset.open(output).layers["color"]
    if set(a.mags) != set(b.mags):
        return f"mags differ: {sorted(m.folder_name() for m in a.mags)} vs {sorted(m.folder_name() for m in b.mags)}"
    for mag, view in a.mags.items():
        box = a.bounding_box.in_mag(mag)
        for chunk in box.chunks((1024, 1024, 32)):
            if not np.array_equal(view.read(chunk), b.mags[mag].read(chunk)):
                return f"mag {mag.folder_name()} differs in {chunk.topleft}+{chunk.size}"
    return "equal"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/napari-wkw-bench"))
    parser.add_argument("--ref-venv", type=Path, default=REPO / ".venv-webknossos")
    parser.add_argument("--quiet-below", type=float, default=0.3, help="cores busy over 1 s before a run [0.3]")
    parser.add_argument("--patience", type=float, default=300, help="seconds to wait for quiet [300]")
    args = parser.parse_args()

    ref = reference_cli(args.ref_venv)
    wkw_source = args.workdir / f"em-{args.depth}x2048x2048"
    zarr = args.workdir / f"em-{args.depth}x2048x2048-zarr3"
    build(wkw_source, args.depth, 2048, False)
    build_zarr3(wkw_source, zarr)
    mags = ", ".join(m.folder_name() for m in Dataset.open(zarr).layers["color"].mags)
    size = sum(f.stat().st_size for f in zarr.rglob("*") if f.is_file())
    print(f"input {zarr}: {args.depth} x 2048 x 2048 uint8, zarr3, mags {mags}, {size / 1e6:.0f} MB", flush=True)

    jobs = str(args.jobs)
    commands = {
        "reference": [str(ref), "copy-dataset", str(zarr), "{target}", "--data-format", "wkw", "--jobs", jobs],
        "ours": [str(OURS), "convert-zarr", str(zarr), "{target}", "--jobs", jobs, "-q"],
    }
    out = args.workdir / "convert-zarr-out"
    logs = args.workdir / "convert-zarr-logs"
    results: dict[str, list] = {name: [] for name in commands}
    checked: dict[str, str] = {}
    print(f"code: {code_state()}", flush=True)
    warm(zarr)
    for repeat in range(args.repeats):
        for name, command in commands.items():
            target = out / name
            logs.mkdir(parents=True, exist_ok=True)
            measured, others = timed(
                [part.replace("{target}", str(target)) for part in command],
                target,
                logs / f"{name}-{repeat}.log",
                (args.quiet_below, args.patience),
            )
            results[name].append(measured)
            print(
                f"  {name:9s} run {repeat + 1}: {measured.wall:6.2f} s, cpu {measured.cpu:6.2f} s, "
                f"peak RSS {measured.rss / 2**20:5.0f} MiB (anon {measured.anon / 2**20:.0f}), "
                f"other processes {others:.2f} cores"
                + ("" if measured.returncode == 0 else f"  FAILED (exit {measured.returncode})"),
                flush=True,
            )
            if name not in checked and measured.returncode == 0:
                checked[name] = compare(zarr, target)

    print()
    print(f"{'tool':10s} {'wall (median)':>14s} {'cpu':>8s} {'peak RSS':>10s}  output")
    medians = {}
    for name, runs in results.items():
        medians[name] = statistics.median(r.wall for r in runs)
        cpu = statistics.median(r.cpu for r in runs)
        rss = statistics.median(r.rss for r in runs)
        output = checked.get(name, "not checked")
        print(f"{name:10s} {medians[name]:12.2f} s {cpu:6.2f} s {rss / 2**20:7.0f} MiB  {output}")
    ratio = medians["ours"] / medians["reference"]
    print(f"\nconvert-zarr / copy-dataset time ratio: {ratio:.3f} (target <= 0.5)")


if __name__ == "__main__":
    main()
