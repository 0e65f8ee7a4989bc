"""``upsample``: the reference tool's mags, exact repetition, missing mags only, a new layer that keeps
mag 1, resuming after a cancel. Data: the real EM tiles, written as a coarse mag with the core API."""

from __future__ import annotations

import json

import numpy as np
import pytest
import wkw

from napari_wkw.core.dataset import Dataset
from napari_wkw.core.errors import CancelledError, TargetExistsError, WKWError
from napari_wkw.core.geometry import BoundingBox, Mag
from napari_wkw.core.progress import CancelToken
from napari_wkw.jobs.runner import JobSettings
from napari_wkw.ops.upsample import plan_upsampling, repeat_voxels, upsample, upsample_chain

from ..widgets.conftest import em_volume

VOXEL = (11.24, 11.24, 25.0)
BOX = BoundingBox((32, 0, 8), (210, 150, 37))  # mag-1 voxels, not aligned to 4


def bare(mag_path, box: BoundingBox) -> np.ndarray:
    with wkw.Dataset.open(str(mag_path)) as handle:
        return handle.read(box.topleft, box.size)[0].transpose(2, 1, 0)


def names(mags) -> list[str]:
    return [mag.folder_name() for mag in mags]


@pytest.fixture
def coarse(tmp_path):
    """A dataset whose layers hold only mag 4-4-2 (and 8-8-4): EM texture and labels from it."""
    dataset = Dataset.create(tmp_path / "ds", VOXEL)
    coarse_box = BOX.in_mag(Mag(4, 4, 2))
    image = em_volume(*coarse_box.size[::-1])
    labels = (image // 50).astype(np.uint32) + 1
    for name, category, data in (("color", "color", image), ("segmentation", "segmentation", labels)):
        layer = dataset.add_layer(name, category, data.dtype, bounding_box=BOX)
        layer.add_mag(Mag(4, 4, 2), file_len=8).write(coarse_box.topleft, data)
        layer.add_mag(Mag(8, 8, 4), file_len=8).write((2, 0, 1), data[::2, ::2, ::2])
        if category == "segmentation":
            layer.properties.largest_segment_id = int(labels.max())
        layer.properties.extra["defaultViewConfiguration"] = {"color": [255, 0, 0]}
    dataset.save_properties()
    return tmp_path / "ds", coarse_box, image, labels


def test_the_mags_between_are_the_reference_tools():
    # as webknossos 4.3.3's calculate_mags_to_upsample gives them (checked against it)
    cases = [
        ("4-4-2", "1", VOXEL, "anisotropic", ["2-2-1", "1"]),
        ("4-4-4", "1", VOXEL, "anisotropic", ["2-2-1", "1"]),
        ("8-8-4", "1", VOXEL, "anisotropic", ["4-4-2", "2-2-1", "1"]),
        ("16-16-8", "2-2-1", VOXEL, "anisotropic", ["8-8-4", "4-4-2", "2-2-1"]),
        ("2-2-2", "1", VOXEL, "anisotropic", ["1"]),
        ("4", "1", VOXEL, "isotropic", ["2", "1"]),
        ("4-4-2", "1", VOXEL, "constant-z", ["2", "1-1-2"]),
    ]
    for source, target, voxel, mode, expected in cases:
        assert names(upsample_chain(Mag.parse(source), Mag.parse(target), voxel, mode)) == expected, source
    with pytest.raises(WKWError, match="the target must be finer along every axis"):
        upsample_chain(Mag(2, 2, 1), Mag(1, 1, 2), VOXEL)


def test_repetition_is_exact():
    data = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4)
    out = repeat_voxels(data, (2, 4, 1))
    assert out.shape == (2, 12, 8)
    np.testing.assert_array_equal(out, np.repeat(np.repeat(data, 4, axis=1), 2, axis=2))
    rgb = np.stack([data, data + 1, data + 2], axis=-1)
    np.testing.assert_array_equal(repeat_voxels(rgb, (2, 2, 2))[..., 1], repeat_voxels(data + 1, (2, 2, 2)))


def test_missing_mags_of_the_layer_itself(coarse):
    path, coarse_box, image, labels = coarse
    [plan] = plan_upsampling(path, layer_name="segmentation", from_mag="4-4-2")
    assert names(plan.mags) == ["2-2-1", "1"] and plan.into == "segmentation"
    built = upsample(path, layer_name="segmentation", from_mag="4-4-2", jobs=JobSettings("threads", 2))
    assert names(built["segmentation"]) == ["2-2-1", "1"]
    expected = repeat_voxels(labels, (4, 4, 2))  # from the grid corner of the coarse box
    corner = coarse_box.from_mag(Mag(4, 4, 2)).topleft
    inside = BoundingBox(tuple(a - c for a, c in zip(BOX.topleft, corner)), BOX.size)
    np.testing.assert_array_equal(bare(path / "segmentation" / "1", BOX), expected[inside.zyx_slices()])
    fine = BOX.in_mag(Mag(2, 2, 1))
    expected = repeat_voxels(labels, (2, 2, 2))
    offset = BoundingBox(
        tuple(a - c for a, c in zip(fine.topleft, coarse_box.from_mag(Mag(2, 2, 2)).topleft)), fine.size
    )
    np.testing.assert_array_equal(bare(path / "segmentation" / "2-2-1", fine), expected[offset.zyx_slices()])
    layer = json.loads((path / "datasource-properties.json").read_text())["dataLayers"][1]
    assert [m["mag"] for m in layer["mags"]] == [[1, 1, 1], [2, 2, 1], [4, 4, 2], [8, 8, 4]]
    assert not [p for p in (path / "segmentation").iterdir() if p.name.startswith(".")]

    with pytest.raises(TargetExistsError) as error:  # mag 1 is there now: never overwritten
        upsample(path, layer_name="segmentation", from_mag="4-4-2")
    assert str(error.value) == (
        f"{path / 'segmentation'}: layer 'segmentation' has mag 1 already; upsampling would overwrite it: "
        "write into a new layer with --into-layer NAME (the existing mag is kept)"
    )
    with pytest.raises(WKWError, match=r"has no mag 16 \(mags: 4-4-2, 8-8-4\)"):
        upsample(path, layer_name="color", from_mag=16)


def test_into_a_new_layer_keeps_mag_1_and_resumes_after_a_cancel(coarse):
    path, coarse_box, image, _ = coarse
    upsample(path, layer_name="color", from_mag="4-4-2", target_mag="2-2-1")  # the layer gets 2-2-1
    cancel = CancelToken()

    def progress(done, total, label):
        if label == "upsampling color_up mag 1":  # 4-4-2 and 2-2-1 are done by then
            cancel.cancel()

    settings = JobSettings("sequential")
    with pytest.raises(CancelledError):
        upsample(path, layer_name="color", from_mag="8-8-4", into_layer="color_up", jobs=settings,
                 progress=progress, cancel=cancel)  # fmt: skip
    listed = [layer["name"] for layer in json.loads((path / "datasource-properties.json").read_text())["dataLayers"]]
    assert listed == ["color", "segmentation"] and not (path / "color_up").exists()
    assert (path / ".color_up.upsampling" / "color_up" / "2-2-1").is_dir()  # finished before the cancel

    built = upsample(path, layer_name="color", from_mag="8-8-4", into_layer="color_up", jobs=settings)
    assert names(built["color_up"]) == ["1"]  # the rest was built before the cancel
    assert not (path / ".color_up.upsampling").exists()
    dataset = Dataset.open(path)
    new, old = dataset.layers["color_up"], dataset.layers["color"]
    assert names(new.mags) == ["1", "2-2-1", "4-4-2", "8-8-4"] and names(old.mags) == ["2-2-1", "4-4-2", "8-8-4"]
    assert new.bounding_box == old.bounding_box and new.properties.extra == old.properties.extra
    # the new 4-4-2 is the old 8-8-4 repeated, not the old 4-4-2
    eight = old.mags[Mag(8, 8, 4)].read(BOX.in_mag(Mag(8, 8, 4)))
    four_box = BOX.in_mag(Mag(4, 4, 2))
    grid = BOX.in_mag(Mag(8, 8, 4)).from_mag(Mag(2, 2, 2)).topleft
    window = BoundingBox(tuple(a - g for a, g in zip(four_box.topleft, grid)), four_box.size)
    np.testing.assert_array_equal(
        new.mags[Mag(4, 4, 2)].read(four_box), repeat_voxels(eight, (2, 2, 2))[window.zyx_slices()]
    )
    np.testing.assert_array_equal(new.mags[Mag(8, 8, 4)].read(BOX.in_mag(Mag(8, 8, 4))), eight)  # copied
    with pytest.raises(TargetExistsError, match="layer 'color_up' exists already"):
        upsample(path, layer_name="color", from_mag="8-8-4", into_layer="color_up")
    with pytest.raises(WKWError, match="give --layer-name too"):
        upsample(path, from_mag="8-8-4", into_layer="other")
