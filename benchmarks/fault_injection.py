"""Fault injection, the long run: every command SIGKILLed at many seeded moments.

    python benchmarks/fault_injection.py [--moments 20] [--seed 14] [--only CMD ...]
        [--size 64,512,512] [--workdir DIR] [--properties all|result|none] [--dask-kills 5] [--keep]

The machinery is ``tests/faults/harness.py`` (CI runs a few moments per command through
``tests/faults/test_kills.py``). For each command (``convert`` of TIFF and JPEG stacks,
``tile-cube``, ``convert-knossos``, ``convert-nifti``, ``compress`` in place and to a copy,
``downsample``, ``recube``, ``metadata`` and ``metadata --refresh``, ``export-tiff``,
``export-annotation``, ``merge-annotation`` in place and ``--into``, the napari writers):
a clean run, then ``--moments`` kills of the whole process group at seeded moments within
the clean run's duration, each followed by the checks (inputs unchanged, nothing listed
that is incomplete), a rerun that must finish with the clean run's result, and a look for
leftovers and stray processes. Then the same with the process killing itself inside
``write_properties`` (before writing, and with the temporary file written), and a dask
worker of ``downsample --distribution-strategy dask`` killed while the workers hold units.

The moments fall between a little before the clean run first wrote anything (a kill
in the start-up before it cannot damage anything) and the clean run's end. Printed per
command: the clean run's duration and when it first wrote, kills tried, kills that landed
mid-run (of them, after the command had written something), kills after it had finished
(the killed run was quicker than the clean one), data lost (must be 0), reruns completed;
then a total line and every problem found. Exits 1 if anything was lost or any problem
was found.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.faults import harness  # noqa: E402


def parse_size(text: str) -> tuple[int, int, int]:
    size = tuple(int(v) for v in text.split(","))
    if len(size) != 3 or not 0 < size[0] <= 128 or size[1] % 128 or size[2] % 128:
        raise argparse.ArgumentTypeError("z,y,x with z up to 128 and y, x multiples of 128")
    return size  # type: ignore[return-value]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moments", type=int, default=20, help="kills per command [20]")
    parser.add_argument("--seed", type=int, default=14, help="seed of the moments [14]")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(harness.COMMANDS),
        metavar="CMD",
        help="only this command (repeatable) [all]: " + ", ".join(harness.COMMANDS),
    )
    parser.add_argument(
        "--size",
        type=parse_size,
        default=(64, 512, 512),
        metavar="Z,Y,X",
        help="volume size of the inputs (CI: 64,256,256) [64,512,512]",
    )
    parser.add_argument(
        "--properties",
        choices=("all", "result", "none"),
        default="all",
        help="write_properties calls to kill in: all, the result's own, none [all]",
    )
    parser.add_argument("--dask-kills", type=int, default=5, help="dask worker kills (0: none) [5]")
    parser.add_argument("--workdir", type=Path, default=None, help="where to work [a temporary folder]")
    parser.add_argument("--keep", action="store_true", help="keep the work folders")
    return parser.parse_args()


HEADER = (
    f"{'command':34} {'clean s':>7} {'writes from s':>13} {'tried':>5} {'landed':>6} {'wrote':>5} {'after end':>9} "
    f"{'lost':>4} {'reruns':>6}"
)


def line(result: harness.CommandResult) -> str:
    after = result.tried - result.landed
    first = "" if result.first_write is None else f"{result.first_write:.2f}"
    return (
        f"{result.name:34} {result.clean_seconds:7.2f} {first:>13} {result.tried:5d} "
        f"{result.landed:6d} {result.wrote:5d} {after:9d} {result.lost:4d} {result.reruns_completed:6d}"
    )


def runs(args: argparse.Namespace, root: Path):
    """Every result, as it comes: moments, properties kills, dask worker kills."""
    names = args.only or list(harness.COMMANDS)
    for name in names:
        yield harness.run_command(harness.COMMANDS[name], root, args.moments, args.seed)
    if args.properties != "none":
        for name in names:
            result = harness.run_properties_kills(harness.COMMANDS[name], root, args.properties)
            if result.tried:
                yield result
    if args.dask_kills and (not args.only or "downsample" in args.only):
        yield harness.run_dask_kills(root, args.dask_kills, args.seed)


def main() -> int:
    args = arguments()
    harness.set_shape(args.size)
    root = Path(tempfile.mkdtemp(prefix="napari-wkw-faults-", dir=args.workdir))
    started = time.monotonic()
    print(f"inputs {'x'.join(map(str, args.size))} (z x y x x), seed {args.seed}, work in {root}", flush=True)
    print(HEADER, flush=True)
    results = []
    try:
        for result in runs(args, root):
            results.append(result)
            print(line(result), flush=True)
            for attempt in result.attempts:
                if attempt.note and attempt.note != "finished":
                    print(f"    {attempt.when}: {attempt.note}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    total = harness.CommandResult("total", sum(r.clean_seconds for r in results))
    total.attempts = [attempt for result in results for attempt in result.attempts]
    print(line(total))
    problems = [problem for result in results for problem in result.problems]
    dask = [a.note for r in results if r.name == harness.DASK_DOWNSAMPLE.name for a in r.attempts]
    if dask:
        finished = dask.count("finished")
        print(f"dask worker kills: the run finished despite it {finished} time(s), failed {len(dask) - finished}")
    print(f"{len(problems)} problem(s) in {time.monotonic() - started:.0f} s")
    for problem in problems:
        print(f"  {problem}")
    return 1 if problems or total.lost else 0


if __name__ == "__main__":
    sys.exit(main())
