"""``datasource-properties.json`` round-trips losslessly: every modelled field, and every key
this package does not know at dataset, layer and mag level; the old style reads too."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from napari_wkw.core.element_class import WKW_DTYPES, element_class_for
from napari_wkw.core.geometry import BoundingBox, Mag
from napari_wkw.core.properties import (
    DatasetProperties,
    LayerProperties,
    MagEntry,
    parse_properties,
    read_properties,
    write_properties,
)

DATA = Path(__file__).parent.parent / "data" / "wkw"
_DATASET_KEYS = {"id", "scale", "dataLayers"}
_LAYER_KEYS = {
    "name",
    "category",
    "boundingBox",
    "elementClass",
    "numChannels",
    "dataFormat",
    "mags",
    "wkwResolutions",
    "largestSegmentId",
}

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)


def extra_keys(reserved: set[str]):
    return st.dictionaries(st.text(max_size=10).filter(lambda k: k not in reserved), json_values, max_size=3)


mag_values = st.builds(Mag, st.sampled_from([1, 2, 4, 8]), st.sampled_from([1, 2, 4, 8]), st.sampled_from([1, 2, 4]))
boxes = st.builds(
    BoundingBox,
    st.tuples(*[st.integers(0, 2**40)] * 3),
    st.tuples(*[st.integers(0, 2**31)] * 3),
)


@st.composite
def layers(draw, name: str) -> LayerProperties:
    dtype = draw(st.sampled_from(WKW_DTYPES))
    num_channels = draw(st.sampled_from([1, 2, 3]))
    category = draw(st.sampled_from(["color", "segmentation"]))
    mags = draw(st.lists(mag_values, max_size=4, unique=True))
    entries = [
        MagEntry(mag, draw(st.sampled_from([f"./{name}/{mag.folder_name()}", f"{name}/{mag}", "elsewhere/1"])))
        for mag in mags
    ]
    for entry in entries:
        entry.extra = draw(extra_keys({"mag", "path"}))
    entries.sort(key=lambda entry: entry.mag.sort_key())  # written sorted by mag
    return LayerProperties(
        name=name,
        category=category,
        bounding_box=draw(boxes),
        element_class=element_class_for(dtype, num_channels),
        num_channels=num_channels,
        mags=entries,
        largest_segment_id=draw(st.none() | st.integers(0, 2**64 - 1)) if category == "segmentation" else None,
        data_format=draw(st.sampled_from(["wkw", "zarr3", "zarr", "n5"])),
        extra=draw(extra_keys(_LAYER_KEYS)),
    )


@st.composite
def datasets(draw) -> DatasetProperties:
    layer_names = draw(st.lists(names, max_size=3, unique=True))
    extra = draw(extra_keys(_DATASET_KEYS))
    extra.setdefault("version", 1)  # what the writer adds
    return DatasetProperties(
        name=draw(names),
        voxel_size=draw(st.tuples(*[st.floats(1e-3, 1e6)] * 3)),
        unit=draw(st.sampled_from(["nanometer", "micrometer", "angstrom"])),
        layers=[draw(layers(name)) for name in layer_names],
        team=draw(st.text(max_size=8)),
        extra=extra,
    )


@given(properties=datasets())
def test_properties_round_trip(properties):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "datasource-properties.json"
        write_properties(path, properties)
        again = read_properties(path)
        assert again == properties
        write_properties(path, again)
        assert read_properties(path) == properties
        assert [p.name for p in Path(folder).iterdir()] == [path.name]  # no partial file left


@given(
    scale=st.tuples(*[st.floats(1e-3, 1e4)] * 3) | st.tuples(*[st.integers(1, 1000)] * 3),
    resolutions=st.lists(
        st.tuples(
            st.sampled_from([1, 2, 4]) | st.tuples(st.sampled_from([1, 2]), st.sampled_from([1, 2]), st.just(1)),
            st.none() | st.sampled_from([32, 256, 1024]),
        ),
        max_size=3,
        unique_by=lambda item: str(item[0]),
    ),
    element_class=st.sampled_from(["uint8", "uint16", "uint24", "uint32", "float", "double", "int16"]),
    layer_extra=extra_keys(_LAYER_KEYS),
)
def test_old_style_reads_and_converts_losslessly(scale, resolutions, element_class, layer_extra):
    raw_resolutions = []
    for resolution, cube in resolutions:
        entry = {"resolution": list(resolution) if isinstance(resolution, tuple) else resolution}
        if cube is not None:
            entry["cubeLength"] = cube
        raw_resolutions.append(entry)
    layer = {
        "name": "color",
        "category": "color",
        "boundingBox": {"topLeft": [1, 2, 3], "width": 4, "height": 5, "depth": 6},
        "elementClass": element_class,
        "wkwResolutions": raw_resolutions,
        **layer_extra,
    }
    raw = {"id": {"name": "old", "team": ""}, "scale": list(scale), "dataLayers": [layer]}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "datasource-properties.json"
        path.write_text(json.dumps(raw))
        properties = read_properties(path)
        assert properties.voxel_size == tuple(float(v) for v in scale)
        assert properties.unit == "nanometer"
        (read,) = properties.layers
        assert read.num_channels == (3 if element_class == "uint24" else 1)
        assert read.extra == layer_extra
        assert [entry.mag for entry in read.mags] == [Mag.parse(r) for r, _ in resolutions]
        for entry, (_, cube) in zip(read.mags, resolutions):
            assert entry.extra == ({} if cube is None else {"cubeLength": cube})
        write_properties(path, properties)
        written = json.loads(path.read_text())
        assert "wkwResolutions" not in written["dataLayers"][0]  # written in the current style
        again = read_properties(path).layers[0]
        assert [(e.mag, e.extra) for e in again.mags] == sorted(
            ((e.mag, e.extra) for e in read.mags), key=lambda item: item[0].sort_key()
        )
        assert [e.path for e in again.mags] == [f"./color/{e.mag.folder_name()}" for e in again.mags]
        assert again.extra == layer_extra and again.element_class == element_class


@pytest.mark.parametrize("name", ["complex_property_ds", "webknossos_written", "simple_wkw_dataset", "old_wkw_dataset"])
def test_real_properties_keep_every_key(name, tmp_path):
    """The reference datasets' files: every key of the original is in the rewritten file."""
    source = DATA / name / "datasource-properties.json"
    original = json.loads(source.read_text())
    properties = read_properties(source)
    write_properties(tmp_path / "p.json", properties)
    written = json.loads((tmp_path / "p.json").read_text())
    rewritten = parse_properties((tmp_path / "p.json").read_bytes(), source)
    write_properties(tmp_path / "again.json", rewritten)
    assert read_properties(tmp_path / "again.json") == rewritten  # stable after the first rewrite
    assert (rewritten.voxel_size, rewritten.unit, rewritten.name) == (
        properties.voxel_size,
        properties.unit,
        properties.name,
    )
    assert set(original) - {"scale"} <= set(written)
    for old, new in zip(original["dataLayers"], written["dataLayers"]):
        assert set(old) - {"wkwResolutions"} <= set(new)
        assert {k: v for k, v in old.items() if k not in _LAYER_KEYS} == {
            k: v for k, v in new.items() if k not in _LAYER_KEYS
        }
        old_mags = old.get("mags") or [
            {"mag": r["resolution"], **({"cubeLength": r["cubeLength"]} if "cubeLength" in r else {})}
            for r in old["wkwResolutions"]
        ]
        by_mag = {str(Mag.parse(m["mag"])): m for m in new["mags"]}
        for mag in old_mags:
            kept = by_mag[str(Mag.parse(mag["mag"]))]
            assert {k: v for k, v in mag.items() if k != "mag"}.items() <= kept.items()
