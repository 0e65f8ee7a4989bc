"""Does the viewer stay responsive while a wizard works?

Measures the GUI event loop's stalls (gaps between ticks of a 10 ms QTimer) while
idle, while the Save as WKW wizard writes a layer in its worker, and while napari's
own File > Save writes the same layer through our writer on the GUI thread. Prints
the gaps and the ratio of each to the idle baseline of the same session.

    xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python benchmarks/bench_gui.py [--depth 128]

Under Xvfb the wizard's job itself takes up to 2x the bare core call: napari animates
a "loading" GIF in the status bar while any progress bar exists, and the software
renderer (llvmpipe) repaints on the same two cores. A machine with a GPU does not pay it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TILES = Path(__file__).parents[1] / "tests" / "data" / "em_tiles"


def em_stack(depth: int) -> np.ndarray:
    """A 2048 x 2048 mosaic of the real EM tiles, shifted a little per slice."""
    from PIL import Image

    tiles = {p.stem: np.asarray(Image.open(p)) for p in TILES.glob("*.jpg")}
    mosaic = np.block([[tiles["1_60_140"], tiles["1_60_141"]], [tiles["1_61_140"], tiles["1_61_141"]]])
    return np.stack([np.roll(mosaic, (z, 2 * z), axis=(0, 1)) for z in range(depth)])


class StallMeter:
    """Records the gaps between ticks of a 10 ms timer on the GUI thread."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def start(self) -> None:
        self.gaps.clear()
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> dict:
        self.timer.stop()
        self._tick()
        gaps = np.array(self.gaps) * 1000
        return {"p50": float(np.percentile(gaps, 50)), "p99": float(np.percentile(gaps, 99)), "max": float(gaps.max())}


def spin(app, seconds: float) -> None:
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=128, help="slices of 2048 x 2048 uint8")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, interleaved; the best is shown")
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtCore import QEventLoop
    from qtpy.QtWidgets import QApplication

    from napari_wkw._widgets.save_wizard import SaveAsWKWWizard

    work = Path(tempfile.mkdtemp(prefix="napari-wkw-bench-gui-"))
    stack = em_stack(args.depth)
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.add_image(stack, name="em", scale=(25, 11.24, 11.24))
    meter = StallMeter()
    spin(app, 1.0)

    meter.start()
    spin(app, 3.0)
    idle = meter.stop()

    wizard = SaveAsWKWWizard(viewer)
    viewer.window.add_dock_widget(wizard)
    wizard.layers.value = ["em"]
    spin(app, 0.5)
    runs: dict[str, list[tuple[float, dict]]] = {"wizard": [], "file": []}
    for repeat in range(args.repeats):
        target = work / f"run{repeat}"
        target.mkdir()
        wizard.output.value = target / "wizard"
        meter.start()
        started = time.perf_counter()
        worker = wizard.run()
        loop = QEventLoop()  # as napari's own event loop waits: asleep until something happens
        worker.finished.connect(loop.quit)
        loop.exec()
        app.processEvents()
        runs["wizard"].append((time.perf_counter() - started, meter.stop()))

        meter.start()
        started = time.perf_counter()
        viewer.layers.save(str(target / "file-save"), selected=False, plugin="napari-wkw")
        app.processEvents()
        runs["file"].append((time.perf_counter() - started, meter.stop()))
    wizard_time, during_wizard = min(runs["wizard"], key=lambda run: run[0])
    save_time, during_save = min(runs["file"], key=lambda run: run[0])

    mib = stack.nbytes / 2**20
    print(f"layer: {args.depth} x 2048 x 2048 uint8 ({mib:.0f} MiB), saved with pyramid, LZ4")
    print(f"{'GUI event loop gaps (ms)':34s} {'p50':>7s} {'p99':>7s} {'max':>8s}  max / idle max")
    for name, gaps in (("idle", idle), ("Save as WKW wizard (worker)", during_wizard),
                       ("File > Save (GUI thread)", during_save)):
        print(f"{name:34s} {gaps['p50']:7.1f} {gaps['p99']:7.1f} {gaps['max']:8.1f}  {gaps['max'] / idle['max']:.1f}x")
    print(f"wizard: {wizard_time:.1f} s of work; File > Save: {save_time:.1f} s, all of it with the viewer frozen")
    viewer.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
