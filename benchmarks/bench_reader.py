"""Reader performance, as ratios against bare ``wkw`` reads in the same run.

    python benchmarks/bench_reader.py [--depth 128] [--workdir /tmp/napari-wkw-bench]

Writes (once) a realistic compressed dataset of DEPTH x 2048 x 2048 uint8 with its full
pyramid: a mosaic of the four real EM tiles in tests/data/em_tiles, shifted a little
per slice. Then measures, with a warm page cache (every file read once first):

1. opening through the napari reader (target <= 0.2 s, independent of size: also
   timed on a small dataset and on a header-only 100k x 80k x 20k one);
2. one mag-1 plane through the layer's array, cold view cache, against a bare read of
   the 32-deep block layer holding it (target <= 1.3x);
3. a z-scroll of 32 consecutive planes of one block layer, each read as napari reads
   it, against one bare read of that 32-plane slab (target <= 1.5x).

Medians of repeated runs. It prints a report and always exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import wkw

from napari_wkw._reader import read_wkw
from napari_wkw.core import BoundingBox, Dataset, Mag, plan_mags
from napari_wkw.core.save import ArrayLayer, save_dataset
from napari_wkw.demo import ShiftedMosaic, em_mosaic

VOXEL = (11.24, 11.24, 25.0)


def timed(function, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        out.append(time.perf_counter() - started)
    return out


def build(path: Path, depth: int, size: int, rewrite: bool) -> None:
    if (path / "datasource-properties.json").is_file() and not rewrite:
        print(f"reusing {path}")
        return
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    mosaic = em_mosaic()
    if mosaic is None:
        raise SystemExit("tests/data/em_tiles is missing; run from a checkout")
    started = time.perf_counter()
    save_dataset(path, [ArrayLayer("color", "color", [ShiftedMosaic(mosaic[:size, :size], depth)], VOXEL)])
    elapsed = time.perf_counter() - started
    disk = sum(f.stat().st_size for f in path.rglob("*.wkw"))
    mags = ", ".join(m.folder_name() for m in Dataset.open(path).layers["color"].mags)
    print(f"wrote {path}: {depth} x {size} x {size} uint8, mags {mags}, {elapsed:.1f} s, {disk / 1e6:.0f} MB on disk")


def build_huge(path: Path) -> None:
    if (path / "datasource-properties.json").is_file():
        return
    ds = Dataset.create(path, (10.0, 10.0, 25.0))
    layer = ds.add_layer("color", "color", np.uint8, bounding_box=BoundingBox((0, 0, 0), (100_000, 80_000, 20_000)))
    layer.add_mag(1)
    for mag in plan_mags(Mag(1, 1, 1), Mag(1024, 1024, 1024), ds.voxel_size):
        layer.add_mag(mag)
    ds.save_properties()


def warm_page_cache(path: Path) -> None:
    for file in path.rglob("*.wkw"):
        with open(file, "rb") as f:
            while f.read(1 << 24):
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=128)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/napari-wkw-bench"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rewrite", action="store_true")
    args = parser.parse_args()

    big = args.workdir / f"em-{args.depth}x2048x2048"
    small = args.workdir / "em-32x1024x1024"
    huge = args.workdir / "huge-header-only"
    build(big, args.depth, 2048, args.rewrite)
    build(small, 32, 1024, args.rewrite)
    build_huge(huge)
    warm_page_cache(big)
    rows = []

    read_wkw(str(big))  # imports and first-call costs out of the way
    for label, path in (("open 128x2048^2", big), ("open 32x1024^2", small), ("open 20k x 80k x 100k", huge)):
        seconds = statistics.median(timed(lambda p=path: read_wkw(str(p)), 10))
        rows.append((label, seconds, None, 0.2, "s"))

    mag1 = wkw.Dataset.open(str(big / "color" / "1"))
    z = min(args.depth - 1, 70)
    z0 = (z // 32) * 32
    slab = (2048, 2048, min(32, args.depth - z0))
    bare = statistics.median(timed(lambda: mag1.read((0, 0, z0), slab), args.repeats))

    def one_plane():
        [(levels, _, _)] = read_wkw(str(big))  # a fresh view: nothing cached
        np.asarray(levels[0][z])

    plane = statistics.median(timed(one_plane, args.repeats))
    rows.append(("one mag-1 plane (cold)", plane, bare, 1.3, "x"))

    def z_scroll():
        [(levels, _, _)] = read_wkw(str(big))
        for plane_index in range(z0, z0 + slab[2]):
            np.asarray(levels[0][plane_index])

    scroll = statistics.median(timed(z_scroll, args.repeats))
    rows.append((f"z-scroll of {slab[2]} planes", scroll, bare, 1.5, "x"))

    print(f"\nbare wkw read of the {slab[2]}-deep block layer at z={z0}: {bare:.3f} s (warm page cache)\n")
    print(f"{'metric':28s} {'seconds':>8s} {'baseline':>9s} {'ratio':>6s} {'target':>8s}  verdict")
    for label, seconds, baseline, target, kind in rows:
        if kind == "x":
            ratio = seconds / baseline
            verdict = "PASS" if ratio <= target else "FAIL"
            print(f"{label:28s} {seconds:8.3f} {baseline:9.3f} {ratio:6.2f} {'<= ' + str(target) + 'x':>8s}  {verdict}")
        else:
            verdict = "PASS" if seconds <= target else "FAIL"
            print(f"{label:28s} {seconds:8.4f} {'':>9s} {'':>6s} {'<= ' + str(target) + 's':>8s}  {verdict}")


if __name__ == "__main__":
    main()
