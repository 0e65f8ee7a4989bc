"""The webknossos library (4.3.3, in its own virtual environment) as an independent judge:
annotations and NMLs we write load there with equal voxels at the same place and equal
trees, and what it writes opens here the same way.

The library is no dependency of ours: ``scripts/test.sh`` installs it into
``.venv-webknossos`` and the tests drive it through ``wk_side.py`` in a subprocess.
Without that environment the tests skip, unless NAPARI_WKW_REQUIRE_WEBKNOSSOS is set
(CI), where that is a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_wkw._annotation_writer import annotation_task, write_skeleton
from napari_wkw._reader import napari_get_reader
from napari_wkw.core import BoundingBox, Mag
from napari_wkw.core.annotation import Annotation
from napari_wkw.core.annotation_write import VolumeToWrite, write_volume_annotation
from napari_wkw.core.nml import read_nml

from ..annotation_files import L4_SAMPLE, SKELETON, blob_labels

ROOT = Path(__file__).resolve().parents[2]
WK_SIDE = Path(__file__).with_name("wk_side.py")
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def wk_python() -> Path:
    python = Path(os.environ.get("NAPARI_WKW_WEBKNOSSOS_PYTHON", ROOT / ".venv-webknossos" / "bin" / "python"))
    if not python.is_file():
        message = f"no webknossos library environment at {python} (scripts/test.sh makes it)"
        if os.environ.get("NAPARI_WKW_REQUIRE_WEBKNOSSOS"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return python


def wk(python: Path, *args) -> None:
    result = subprocess.run([str(python), str(WK_SIDE), *map(str, args)], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]


def _trees_of(nml) -> list[dict]:
    comments = {c.node: c.content for c in nml.comments}
    return [
        {
            "id": tree.id,
            "name": tree.name,
            "nodes": [
                [n.id, *[float(v) for v in n.position], comments.get(n.id, "")]
                for n in sorted(tree.nodes, key=lambda n: n.id)
            ],
            "edges": sorted(sorted([e.source, e.target]) for e in tree.edges),
        }
        for tree in sorted(nml.trees, key=lambda t: t.id)
    ]


def test_our_volume_annotation_loads_in_webknossos_with_equal_voxels(wk_python, tmp_path):
    labels = blob_labels((40, 100, 120))
    offset = (37, 5, 70)
    path = write_volume_annotation(
        tmp_path / "ours.zip",
        VolumeToWrite(labels, offset, name="Cells"),
        voxel_size=(11.24, 11.24, 28.0),
        dataset_name="interop_ds",
    )
    wk(wk_python, "read-annotation", path, tmp_path / "wk")
    found = json.loads((tmp_path / "wk" / "found.json").read_text())
    assert found["dataset_name"] == "interop_ds" and found["voxel_size"] == pytest.approx([11.24, 11.24, 28.0])
    (volume,) = found["volumes"]
    assert volume["name"] == "Cells" and volume["largest_segment_id"] == int(labels.max())
    assert (volume["topleft"], volume["size"]) == (list(offset), list(labels.shape[::-1]))
    with Annotation.open(path) as ours:
        layer = ours.volume().layer
        assert sorted(volume["mags"]) == sorted(mag.folder_name() for mag in layer.mags)
        for name, topleft in volume["mags"].items():
            theirs = np.load(tmp_path / "wk" / f"volume0_{name}.npy")
            mag = Mag.parse(name)
            box = BoundingBox(tuple(t // m for t, m in zip(topleft, mag.xyz)), theirs.shape[::-1])
            np.testing.assert_array_equal(layer.mags[mag].read(box), theirs, err_msg=f"mag {name}")
        np.testing.assert_array_equal(np.load(tmp_path / "wk" / "volume0_1.npy"), labels)


def test_a_labels_layer_saved_through_napari_loads_in_webknossos(wk_python, tmp_path):
    """The writer's translation of a napari labels layer (scale, translate) lands at the same voxels."""
    labels = blob_labels((24, 64, 80)).astype(np.int32)
    meta = {
        "name": "painted",
        "scale": (28.0, 11.24, 11.24),
        "translate": (28.0 * 8, 11.24 * 32, 11.24 * 64),
        "units": ("nanometer",) * 3,
    }
    path = annotation_task(tmp_path / "napari.zip", [(labels, meta, "labels")])()
    wk(wk_python, "read-annotation", path, tmp_path / "wk")
    (volume,) = json.loads((tmp_path / "wk" / "found.json").read_text())["volumes"]
    assert volume["topleft"] == [64, 32, 8]
    np.testing.assert_array_equal(np.load(tmp_path / "wk" / "volume0_1.npy"), labels)


def test_our_nml_loads_in_webknossos_with_equal_trees(wk_python, tmp_path):
    layers = napari_get_reader(str(L4_SAMPLE))(str(L4_SAMPLE))
    skeleton = [item for item in layers if item[2] in ("points", "shapes")]
    nml_path = Path(write_skeleton(str(tmp_path / "skeleton.nml"), skeleton)[0])
    wk(wk_python, "read-nml", nml_path, tmp_path / "trees.json")
    theirs = json.loads((tmp_path / "trees.json").read_text())
    with Annotation.open(L4_SAMPLE) as original:
        assert theirs["trees"] == _trees_of(original.nml)
    assert theirs["trees"] == _trees_of(read_nml(nml_path))


def test_the_real_skeleton_reads_alike_here_and_there(wk_python, tmp_path):
    wk(wk_python, "read-nml", SKELETON, tmp_path / "trees.json")
    assert json.loads((tmp_path / "trees.json").read_text())["trees"] == _trees_of(read_nml(SKELETON))


def test_what_webknossos_writes_opens_here(wk_python, tmp_path):
    labels = blob_labels((40, 100, 120))
    np.save(tmp_path / "volume.npy", labels)
    path = tmp_path / "theirs.zip"
    wk(wk_python, "write-annotation", path)
    with Annotation.open(path) as theirs:
        assert theirs.dataset_name == "interop_ds"
        volume = theirs.volume("Cells")
        box = BoundingBox((64, 32, 16), labels.shape[::-1])
        np.testing.assert_array_equal(volume.layer.finest_mag.read(box), labels)
        assert [m.folder_name() for m in volume.layer.mags] == ["1", "2-2-1", "4-4-2"]
        (tree,) = theirs.nml.trees
        assert tree.name == "axon 1" and len(tree.nodes) == 3 and len(tree.edges) == 2
        assert [c.content for c in theirs.nml.comments] == ["start"]
    layers = napari_get_reader(str(path))(str(path))
    assert [kind for _, _, kind in layers] == ["labels", "points", "shapes"]


def test_environment_is_not_ours(wk_python):
    """The judge's environment is separate: webknossos is not importable here."""
    result = subprocess.run([sys.executable, "-c", "import webknossos"], capture_output=True)
    assert result.returncode != 0
