"""``compress``: raw WKW files to LZ4, in place or into a copy, never losing data.

In place, every file is compressed beside the original and renamed over it, and the
mag's ``header.wkw`` is switched last. WKW readers take the block type from each
file's own header, so a run killed at any moment leaves a mag whose files are each
either the original or its complete compressed twin, all readable with the original
data; running the command again skips finished files and completes the job.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import WKWError
from ..core.geometry import Mag
from ..core.progress import CancelToken, ProgressCallback
from ..core.staging import remove_abandoned, staged
from ..core.wkw_file import BLOCK_LZ4, BLOCK_LZ4HC, WKWHeader, check_data_file, compress_file, write_header
from ..jobs.runner import JobSettings, Runner
from .common import check_new_target, open_dataset, select_layers, select_mags


@dataclass(frozen=True)
class CompressUnit:
    """One data file: where it is, where its compressed version goes."""

    source: str
    target: str
    compress: bool  # False: copy as it is (a mag that is not being compressed)
    block_type: int = BLOCK_LZ4
    threads: int = 1


@dataclass
class CompressResult:
    path: Path
    files_compressed: int
    bytes_before: int
    bytes_after: int


def compress_unit(unit: CompressUnit) -> tuple[int, int, bool]:
    """Compress (or copy) one file; returns (bytes on disk before, after, compressed now)."""
    source, target = Path(unit.source), Path(unit.target)
    before = _on_disk(source)
    if unit.compress:
        # against the mag's header.wkw: a file whose own header disagrees would be compressed as what it says
        check_data_file(source, WKWHeader.read(source.parents[2] / "header.wkw"))
        changed = compress_file(source, target, unit.block_type, unit.threads)
    else:
        shutil.copyfile(source, target)
        changed = False
    return before, _on_disk(target), changed


def _on_disk(path: Path) -> int:
    """Bytes a file takes on disk (raw WKW files are often sparse: less than their size)."""
    info = path.stat()
    return min(info.st_size, info.st_blocks * 512) if hasattr(info, "st_blocks") else info.st_size


def compress(
    path: str | os.PathLike,
    target: str | os.PathLike | None = None,
    *,
    layer_name: str | None = None,
    mags: list[Mag] | tuple[Mag, ...] | None = None,
    high_compression: bool = False,
    jobs: JobSettings | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> CompressResult:
    """Compress the chosen mags (default: every mag of every layer); returns the sizes.

    Without ``target`` the dataset is compressed in place (see the module docstring).
    With one, a complete copy is built in a hidden folder beside ``target`` and renamed
    into place at the end; mags not chosen are copied as they are.
    """
    dataset = open_dataset(path)
    layers = select_layers(dataset, layer_name)
    chosen = {view.path for layer in layers for view in select_mags(layer, mags)}
    block_type = BLOCK_LZ4HC if high_compression else BLOCK_LZ4
    if target is None:
        return _compress_in_place(dataset.path, sorted(chosen), block_type, jobs, progress, cancel)
    target_path = check_new_target(target, source=dataset.path)
    if target_path == dataset.path.absolute():
        raise WKWError(f"{target_path}: the target is the dataset itself; leave TARGET out to compress in place")
    return _compress_to_copy(dataset, target_path, chosen, block_type, jobs, progress, cancel)


def _units_for(mag_path: Path, target_mag: Path, compress: bool, block_type: int) -> list[CompressUnit]:
    files = sorted(_data_files(mag_path))
    return [CompressUnit(str(mag_path / rel), str(target_mag / rel), compress, block_type) for rel in files]


def _data_files(mag_path: Path) -> list[Path]:
    """Data files of a mag, relative to it (z*/y*/x*.wkw, no hidden staging)."""
    return [p.relative_to(mag_path) for p in mag_path.glob("z*/y*/x*.wkw") if p.name[1:-4].isdigit()]


def _with_threads(units: list[CompressUnit], workers: int) -> list[CompressUnit]:
    """Fewer files than workers: let each file's blocks be compressed by several threads."""
    threads = max(1, workers // max(1, len(units)))
    if threads == 1:
        return units
    return [CompressUnit(u.source, u.target, u.compress, u.block_type, threads) for u in units]


def _compress_in_place(
    dataset_path: Path,
    mag_paths: list[Path],
    block_type: int,
    jobs: JobSettings | None,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> CompressResult:
    result = CompressResult(dataset_path, 0, 0, 0)
    with Runner(jobs, progress, cancel) as runner:
        for mag_path in mag_paths:
            remove_abandoned(mag_path)
            header = WKWHeader.read(mag_path / "header.wkw")
            units = _with_threads(_units_for(mag_path, mag_path, True, block_type), runner.workers)
            label = f"compressing {mag_path.parent.name} mag {mag_path.name}"
            _add(result, runner.map(compress_unit, units, label))
            if not header.compressed:
                write_header(mag_path, header.with_block_type(block_type))
    return result


def _compress_to_copy(
    dataset,
    target: Path,
    chosen: set[Path],
    block_type: int,
    jobs: JobSettings | None,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> CompressResult:
    result = CompressResult(target, 0, 0, 0)
    with staged(target) as staging:
        # everything but the data files (properties, headers, other files), then the data by units
        shutil.copytree(dataset.path, staging, ignore=_ignore_data_and_staging)
        mag_paths = [view.path for layer in dataset.layers.values() for view in layer.mags.values()]
        with Runner(jobs, progress, cancel) as runner:
            for mag_path in mag_paths:
                target_mag = staging / mag_path.relative_to(dataset.path)
                compress_now = mag_path in chosen
                units = _with_threads(_units_for(mag_path, target_mag, compress_now, block_type), runner.workers)
                for unit in units:
                    Path(unit.target).parent.mkdir(parents=True, exist_ok=True)
                verb = "compressing" if compress_now else "copying"
                _add(result, runner.map(compress_unit, units, f"{verb} {mag_path.parent.name} mag {mag_path.name}"))
                header = WKWHeader.read(mag_path / "header.wkw")
                if compress_now and not header.compressed:
                    write_header(target_mag, header.with_block_type(block_type))
    return result


def _ignore_data_and_staging(folder: str, names: list[str]) -> list[str]:
    ignored = [n for n in names if n.startswith(".") and (".partial" in n or n.endswith(".spill"))]
    if Path(folder).name.startswith("y"):
        ignored += [n for n in names if n.startswith("x") and n.endswith(".wkw")]
    return ignored


def _add(result: CompressResult, outcomes: list[tuple[int, int, bool]]) -> None:
    for before, after, changed in outcomes:
        result.bytes_before += before
        result.bytes_after += after
        result.files_compressed += int(changed)
