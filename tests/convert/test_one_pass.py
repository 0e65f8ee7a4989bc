"""One-pass cubing: the finer mags built from the slabs in memory are the mags built from mag 1
afterwards, byte for byte, for every filter, layout and strategy; and a run stopped while
they are assembled resumes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_wkw.convert.engine import ConversionSettings, LayerSpec, convert_layers
from napari_wkw.convert.source import ArraySource
from napari_wkw.convert.specs import image_stack_specs
from napari_wkw.core import Dataset, Mag
from napari_wkw.core.errors import CancelledError
from napari_wkw.core.progress import CancelToken
from napari_wkw.jobs.runner import JobSettings
from napari_wkw.ops.equality import check_equality

from ..conftest import DATA

VOXEL = (11.24, 11.24, 25.0)


def em_mosaic() -> np.ndarray:
    """The 2 x 2 mosaic of the four real EM tiles (y, x)."""
    tiles = sorted((DATA / "em_tiles").glob("*.jpg"))
    images = [np.asarray(Image.open(path).convert("L")) for path in tiles]
    return np.block([[images[0], images[1]], [images[2], images[3]]])


def em_stack(depth: int, height: int, width: int) -> np.ndarray:
    """Real EM slices: the mosaic rolled a little per slice, as the benchmark's input."""
    mosaic = em_mosaic()
    return np.stack([np.roll(mosaic, (3 * z, 2 * z), axis=(0, 1))[:height, :width] for z in range(depth)])


def file_hashes(dataset: Path) -> dict[str, str]:
    """Every data file of the dataset (all layers and mags) by its path, with its sha256."""
    return {
        str(path.relative_to(dataset)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(dataset.rglob("*.wkw"))
    }


def both_ways(tmp_path: Path, specs, jobs=None, **options) -> tuple[Path, Path]:
    """Convert with one pass and from mag 1 (the old path); both results."""
    results = []
    options.setdefault("voxel_size", VOXEL)
    for one_pass in (True, False):
        target = tmp_path / ("one-pass" if one_pass else "from-mag-1")
        settings = ConversionSettings(one_pass=one_pass, **options)
        stages: set[str] = set()
        convert_layers(
            target, specs, settings, jobs=jobs or JobSettings("threads", 2), progress=lambda *a, s=stages: s.add(a[2])
        )
        assert any(stage.startswith("assembling") for stage in stages) == one_pass, stages
        results.append(target)
    return results[0], results[1]


def assert_same(one_pass: Path, old: Path, mags: list[str] | None = None) -> None:
    report = check_equality(one_pass, old)
    assert report.equal, report.format()
    ours, theirs = file_hashes(one_pass), file_hashes(old)
    assert sorted(ours) == sorted(theirs)
    different = [name for name in ours if ours[name] != theirs[name]]
    assert not different, f"files differ: {different[:5]}"
    if mags is not None:
        layer = json.loads((one_pass / "datasource-properties.json").read_text())["dataLayers"][0]
        assert [entry["path"].rsplit("/", 1)[1] for entry in layer["mags"]] == mags
    assert not list(one_pass.rglob(".*")), "hidden staging left behind"


class SliceSource(ArraySource):
    """An array read as a slice-decoding source: units take rows of files, read on threads."""

    croppable = False


def test_real_em_tiff_stack_both_ways(tmp_path):
    """Uncompressed TIFF slices (memory-mapped, one unit per file), 2 x 2 files of mag 1 whose
    box starts inside a block: every mag equal, file for file."""
    stack = tmp_path / "stack"
    stack.mkdir()
    for z, plane in enumerate(em_stack(70, 1100, 1300)):
        tifffile.imwrite(stack / f"slice_{z:03d}.tif", plane)
    specs = image_stack_specs(stack, "color", start_z=5)
    one_pass, old = both_ways(tmp_path, specs)
    assert_same(one_pass, old, ["1", "2-2-1", "4-4-2", "8-8-4", "16-16-8"])


def test_real_em_png_stack_both_ways(tmp_path):
    """PNG slices decode whole: one unit holds a row of files and reads slices on threads."""
    stack = tmp_path / "stack"
    stack.mkdir()
    for z, plane in enumerate(em_stack(36, 1030, 1050)):
        Image.fromarray(plane).save(stack / f"slice_{z:03d}.png", compress_level=1)
    specs = image_stack_specs(stack, "color")
    assert not specs[0].source.croppable
    one_pass, old = both_ways(tmp_path, specs)
    assert_same(one_pass, old)


@pytest.mark.parametrize("batch_size", [32, 64])
def test_deep_unaligned_stack_streams_through_every_level(tmp_path, batch_size):
    """150 slices from z = 7: coarse block layers gather several slabs (8-8-4 needs 128
    slices), the first and last ones partly covered."""
    volume = em_stack(150, 600, 700)
    spec = LayerSpec(ArraySource(volume), "color", offset=(3, 1030, 7))
    one_pass, old = both_ways(tmp_path, [spec], batch_size=batch_size)
    assert_same(one_pass, old, ["1", "2-2-1", "4-4-2", "8-8-4"])


def test_isotropic_steps_need_two_slabs(tmp_path):
    """Voxel size 1,1,1: 2-2-2 from mag 1 takes 64 slices for one block layer."""
    volume = em_stack(100, 500, 600)
    spec = LayerSpec(ArraySource(volume), "color", offset=(0, 0, 40))
    one_pass, old = both_ways(tmp_path, [spec], voxel_size=(1.0, 1.0, 1.0))
    assert_same(one_pass, old, ["1", "2", "4", "8"])


def test_segmentation_mode_rgb_and_other_filters(tmp_path):
    volume = em_stack(45, 300, 1100)
    bands = volume.astype(np.uint32) // 40 + 1000 + 10 * (np.arange(45, dtype=np.uint32)[:, None, None] // 8)
    labels = np.where(volume < 60, 0, bands).astype(np.uint32)
    rgb = np.stack([volume, volume[:, ::-1], 255 - volume], axis=-1)
    specs = [
        LayerSpec(ArraySource(labels), "segmentation", category="segmentation", offset=(1000, 2, 3)),
        LayerSpec(ArraySource(rgb), "rgb", offset=(5, 0, 0)),
    ]
    one_pass, old = both_ways(tmp_path, specs)
    assert_same(one_pass, old)
    for method in ("nearest", "mean", "max"):
        spec = LayerSpec(ArraySource(volume.astype(np.uint16) * 200), "color", offset=(9, 9, 9))
        one_pass, old = both_ways(tmp_path / method, [spec], interpolation=method)
        assert_same(one_pass, old)


def test_small_files_build_the_coarse_mags_from_the_previous_one(tmp_path):
    """A 200 x 200 layer has files of 256 voxels: only mags up to 8 are one pass (a 16-16-8
    block would cover more than one file); the rest is built from 8-8-4 as before."""
    volume = em_stack(40, 200, 200)
    spec = LayerSpec(ArraySource(volume), "color", offset=(20, 30, 2))
    one_pass, old = both_ways(tmp_path, [spec], max_mag=Mag(32, 32, 32))
    assert_same(one_pass, old, ["1", "2-2-1", "4-4-2", "8-8-4", "16-16-8", "32-32-16"])


class SparseSource(ArraySource):
    """Holds nothing beyond x = 1024 (like missing tiles or cubes): no file, no piece there."""

    def has_data(self, box) -> bool:
        return box.topleft[0] < 1024


def test_sparse_sources_leave_files_out(tmp_path):
    volume = em_stack(40, 300, 2100)
    volume[:, :, 1024:] = 0
    spec = LayerSpec(SparseSource(volume), "color")
    one_pass, old = both_ways(tmp_path, [spec])
    assert_same(one_pass, old)
    assert not (one_pass / "color" / "1" / "z0" / "y0" / "x1.wkw").exists()


def test_a_source_at_a_coarser_mag(tmp_path):
    """Voxels given at mag 2-2-1 (offset in its voxels): the pyramid steps from there."""
    volume = em_stack(40, 300, 700)
    spec = LayerSpec(ArraySource(volume), "color", offset=(5, 3, 1), mag=Mag(2, 2, 1))
    one_pass, old = both_ways(tmp_path, [spec])
    assert_same(one_pass, old, ["2-2-1", "4-4-2", "8-8-4", "16-16-8"])


@pytest.mark.parametrize("strategy", ["sequential", "processes"])
def test_every_strategy_and_slice_sources(tmp_path, strategy):
    volume = em_stack(40, 300, 1100)
    spec = LayerSpec(SliceSource(volume), "color", offset=(1, 2, 3))
    one_pass, old = both_ways(tmp_path, [spec], jobs=JobSettings(strategy, 2))
    assert_same(one_pass, old)


def test_same_pyramid_as_the_reference(tmp_path):
    """Converted one pass, the reference dataset's voxels give its own 2-2-1 and 4-4-2."""
    from ..core.test_interop import DATASET, OFFSET, expected_volumes

    reference = Dataset.open(DATASET)
    specs = [
        LayerSpec(ArraySource(volume), name, category=name, offset=OFFSET)
        for name, volume in expected_volumes().items()
    ]
    target = tmp_path / "out"
    convert_layers(target, specs, ConversionSettings(voxel_size=VOXEL, max_mag=Mag(4, 4, 4)))
    ours = Dataset.open(target)
    for name in expected_volumes():
        for mag in (Mag(2, 2, 1), Mag(4, 4, 2)):
            box = reference.layers[name].bounding_box.in_mag(mag)
            np.testing.assert_array_equal(
                ours.layers[name].mags[mag].read(box), reference.layers[name].mags[mag].read(box)
            )


def cancel_at(label: str, token: CancelToken):
    def progress(done, total, stage):
        if stage.startswith(label):
            token.cancel()

    return progress


@pytest.mark.parametrize("stage", ["assembling", "downsampling"])
def test_stopped_while_the_pyramid_is_built_resumes(tmp_path, stage):
    """Cancelled as the assembly (or the mags beyond it) starts: the rerun keeps mag 1 and the
    pieces, and ends equal to a clean run."""
    volume = em_stack(40, 200, 1100)
    spec = LayerSpec(ArraySource(volume), "color", offset=(3, 5, 7))
    settings = ConversionSettings(voxel_size=VOXEL, max_mag=Mag(64, 64, 64) if stage == "downsampling" else None)
    clean = tmp_path / "clean"
    convert_layers(clean, [spec], settings)
    target = tmp_path / "out"
    token = CancelToken()
    with pytest.raises(CancelledError):
        convert_layers(
            target, [spec], settings, jobs=JobSettings("sequential"), cancel=token, progress=cancel_at(stage, token)
        )
    staging = target / ".color.converting"
    assert json.loads((staging / "conversion.json").read_text())["stage"] == "pyramid"
    mag1 = {p.name: p.stat().st_mtime_ns for p in (staging / "color" / "1").rglob("x*.wkw")}
    assert mag1 and list((staging / "pieces").rglob("*.blocks"))
    result = convert_layers(target, [spec], settings)
    assert result.resumed == ["color"]
    assert {p.name: p.stat().st_mtime_ns for p in (target / "color" / "1").rglob("x*.wkw")} == mag1
    assert file_hashes(target) == file_hashes(clean)
    assert not list(target.rglob(".*"))


def test_pieces_missing_falls_back_to_building_from_mag_1(tmp_path):
    """Staging from a run without pieces (another version, or pieces removed): the one-pass
    mags are built from mag 1 as before, the same bytes."""
    volume = em_stack(40, 200, 1100)
    spec = LayerSpec(ArraySource(volume), "color", offset=(3, 5, 7))
    settings = ConversionSettings(voxel_size=VOXEL)
    clean = tmp_path / "clean"
    convert_layers(clean, [spec], settings)
    target = tmp_path / "out"
    token = CancelToken()
    with pytest.raises(CancelledError):
        convert_layers(target, [spec], settings, cancel=token, progress=cancel_at("assembling", token))
    staging = target / ".color.converting"
    next((staging / "pieces").rglob("*.blocks")).unlink()
    convert_layers(target, [spec], settings)
    assert file_hashes(target) == file_hashes(clean)
    assert not list(target.rglob(".*"))


def test_killed_between_renaming_and_listing_the_assembled_mags(tmp_path, monkeypatch):
    """The assembled mags are in place, marked, but not listed: the rerun lists them, in order."""
    import napari_wkw.convert.engine as engine

    volume = em_stack(40, 200, 1100)
    spec = LayerSpec(ArraySource(volume), "color", offset=(3, 5, 7))
    settings = ConversionSettings(voxel_size=VOXEL)
    clean = tmp_path / "clean"
    convert_layers(clean, [spec], settings)

    def killed(*args):
        raise RuntimeError("killed")

    monkeypatch.setattr(engine, "list_layer", killed)
    target = tmp_path / "out"
    with pytest.raises(RuntimeError, match="killed"):
        convert_layers(target, [spec], settings)
    layer = target / ".color.converting" / "color"
    assert (layer / "2-2-1" / ".built-not-listed").is_file()
    monkeypatch.undo()
    convert_layers(target, [spec], settings)
    assert file_hashes(target) == file_hashes(clean)
    listed = json.loads((target / "datasource-properties.json").read_text())["dataLayers"][0]["mags"]
    assert listed == json.loads((clean / "datasource-properties.json").read_text())["dataLayers"][0]["mags"]
    assert not list(target.rglob(".*"))
