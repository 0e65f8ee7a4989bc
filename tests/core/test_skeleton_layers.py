"""Skeletons as napari layer data and back: real and generated NMLs, real napari layers, edits, speed."""

from __future__ import annotations

import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from napari_wkw.core.errors import WKWError, WKWWarning
from napari_wkw.core.nml import (
    Branchpoint,
    Comment,
    Edge,
    Group,
    MetadataEntry,
    Nml,
    NmlBox,
    Node,
    Parameters,
    Segment,
    Tree,
    Volume,
    nml_bytes,
    read_nml,
)
from napari_wkw.core.skeleton_layers import (
    bounding_box_layer_data,
    chains,
    nml_from_layers,
    skeleton_layer_data,
)

ANNOTATIONS = Path(__file__).parents[1] / "data" / "annotations"
L4_ZIP = ANNOTATIONS / "l4_sample__explorational__suser__94b271.zip"


def nml_a() -> Nml:
    return read_nml(ANNOTATIONS / "test_a.nml")


def l4() -> Nml:
    with zipfile.ZipFile(L4_ZIP) as archive:
        return read_nml(archive.read("l4_sample__explorational__suser__94b271.nml"))


def node(node_id: int, x: float, y: float, z: float, **attributes) -> Node:
    return Node(node_id, (float(x), float(y), float(z)), **attributes)


FULL = {"rotation": (0.0, 90.0, 12.5), "in_vp": 1, "in_mag": 2, "bit_depth": 8, "interpolation": False, "time": 17}


def generated() -> Nml:
    """Every corner of the model: a branch, a cycle through a branch node, a pure cycle, a lone node,
    an empty tree, unicode, trees without colour, node and tree extras, groups, boxes, a volume.

    Trees are out of id order and edges point both ways, as in real files; comments and
    branchpoints are in node order (the order the layers give back).
    """
    branched = Tree(
        7,
        "Dendrit ÄÖÜ ✓",
        (0.1, 0.2, 0.30000001192092896, 1.0),
        group_id=2,
        type="DEFAULT",
        nodes=[
            node(10, 100, 200, 30, **FULL),
            node(11, 101, 201, 31, radius=2.5),
            node(12, 102, 202, 32),
            node(13, 103, 203, 33),
            node(14, 104, 204, 34),
            node(15, 90, 210, 32, extra={"myAttr": 'x "quoted"'}),
        ],
        edges=[Edge(11, 10), Edge(11, 12), Edge(12, 13), Edge(14, 13), Edge(12, 15)],
        metadata=[MetadataEntry("cell type", "string", "pyramidal"), MetadataEntry("n", "number", 3.0)],
        extra={"isVisible": "false"},
    )
    lasso = Tree(
        3,
        "lasso",
        (1.0, 0.5, 0.0, 1.0),
        nodes=[node(20, 0, 0, 0), node(21, 10, 0, 0), node(22, 10, 10, 0), node(23, 20, 20, 1)],
        edges=[Edge(20, 21), Edge(21, 22), Edge(22, 20), Edge(23, 22)],
    )
    ring = Tree(
        5,
        "ring",
        nodes=[node(30, 5, 5, 5), node(31, 6, 5, 5), node(32, 6, 6, 6), node(33, 5, 6, 7)],
        edges=[Edge(31, 30), Edge(31, 32), Edge(33, 32), Edge(30, 33)],
    )
    lone = Tree(2, "", nodes=[node(1, 1, 2, 3)])
    empty = Tree(9, "empty")
    return Nml(
        parameters=Parameters(
            dataset_name="l4_sample",
            organization="sample_organization",
            description="",
            voxel_size=(11.24, 11.24, 28.0),
            unit="nanometer",
            offset=(0.0, 0.0, 0.0),
            time=1697029744090,
            edit_position=(100.0, 200.0, 30.0),
            active_node=12,
            user_bounding_boxes=[
                NmlBox((10, 20, 30), (40, 50, 6), id=1, name="Box α", color=(1.0, 0.0, 0.0, 1.0)),
                NmlBox((0, 0, 5), (8, 8, 1), id=4, is_visible=False),
            ],
            task_bounding_box=NmlBox((0, 0, 0), (100, 100, 50)),
        ),
        trees=[branched, lasso, ring, lone, empty],
        branchpoints=[Branchpoint(12, 1700000001000), Branchpoint(22, None)],
        comments=[Comment(10, "start"), Comment(13, "Synapse 🧠\nline two"), Comment(31, "ring <&>")],
        groups=[Group(1, "Gruppe α", children=[Group(2, "inner", extra={"isExpanded": "true"})])],
        volumes=[Volume(1, "Volume", location="data_Volume.zip", format="zarr3", segments=[Segment(1, "s")])],
        meta=[("writer", "test"), ("annotationId", "abc")],
    )


def all_layers(nml: Nml, name: str = "sample") -> list:
    return skeleton_layer_data(nml, name) + [bounding_box_layer_data(nml, name)]


def by_kind(layers: list) -> dict:
    return {kwargs["metadata"]["nml_layer"]: (data, kwargs) for data, kwargs, _ in layers}


# --------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [nml_a, l4, generated], ids=["test_a", "l4_sample", "generated"])
def test_round_trip_gives_the_same_nml(make):
    nml = make()
    assert read_nml(nml_bytes(nml)) == nml  # the generated one is what a parser would build
    back = nml_from_layers(all_layers(nml))
    assert back == nml
    assert nml_bytes(back) == nml_bytes(nml)


def test_round_trip_leaves_the_source_and_the_layers_alone():
    nml = generated()
    layers = all_layers(nml)
    back = nml_from_layers(layers)
    back.trees[0].name = "changed"
    back.parameters.user_bounding_boxes.clear()
    assert nml == generated()
    assert nml_from_layers(layers) == nml


# --------------------------------------------------------------------------------------
# Layer data
# --------------------------------------------------------------------------------------


def test_nodes_layer():
    nml = generated()
    (data, kwargs, kind), _ = skeleton_layer_data(nml, "sample")
    assert kind == "points" and kwargs["name"] == "sample nodes"
    assert kwargs["scale"] == (28.0, 11.24, 11.24) and kwargs["units"] == ("nanometer",) * 3
    assert kwargs["axis_labels"] == ("z", "y", "x")
    np.testing.assert_array_equal(data[0], [30, 200, 100])  # node 10 at x=100, y=200, z=30
    features = kwargs["features"]
    assert features["node_id"].tolist() == [10, 11, 12, 13, 14, 15, 20, 21, 22, 23, 30, 31, 32, 33, 1]
    assert features["tree_id"].tolist() == [7] * 6 + [3] * 4 + [5] * 4 + [2]
    assert features["tree_name"][0] == "Dendrit ÄÖÜ ✓" and features["tree_name"][-1] == ""
    assert features["comment"][:4].tolist() == ["start", "", "", "Synapse 🧠\nline two"]
    assert features["branchpoint"].nonzero()[0].tolist() == [2, 8]
    assert features["branchpoint_time"][[2, 8]].tolist() == [1700000001000, -1]
    assert features["radius"][1] == 2.5
    assert [features[key][0] for key in ("rot_x", "rot_y", "rot_z")] == [0.0, 90.0, 12.5]
    assert np.isnan(features["rot_x"][1])
    assert [features[key][0] for key in ("in_vp", "in_mag", "bit_depth", "interpolation", "time")] == [1, 2, 8, 0, 17]
    assert [features[key][1] for key in ("in_vp", "in_mag", "bit_depth", "interpolation", "time")] == [-1] * 5
    assert features["extra"][5] == '{"myAttr": "x \\"quoted\\""}' and features["extra"][0] == ""
    assert {column.dtype.kind for column in features.values()} <= {"i", "f", "b", "O"}
    assert kwargs["feature_defaults"].keys() == features.keys()
    assert kwargs["feature_defaults"]["node_id"] == -1 and kwargs["feature_defaults"]["tree_id"] == 9
    np.testing.assert_allclose(kwargs["face_color"][0], (0.1, 0.2, 0.3, 1.0))
    ring = kwargs["face_color"][features["tree_id"] == 5]
    assert (ring == ring[0]).all() and not np.allclose(ring[0], kwargs["face_color"][-1])  # colours from the ids
    assert kwargs["text"]["string"] == "{comment}"
    template = kwargs["metadata"]["nml"]
    assert [tree.id for tree in template.trees] == [7, 3, 5, 2, 9]
    assert not any(tree.nodes or tree.edges for tree in template.trees) and not template.comments
    assert kwargs["metadata"]["nml_edges"].shape == (nml.edge_count, 2)


def test_no_text_without_comments_and_no_layers_without_nodes():
    (_, kwargs, _), *_ = skeleton_layer_data(l4(), "l4")
    assert "text" not in kwargs
    assert skeleton_layer_data(Nml(trees=[Tree(1)]), "empty") == []
    assert len(skeleton_layer_data(nml_a(), "a")) == 1  # single-node trees: no edges, no shapes


def test_trees_layer_has_one_path_per_chain():
    nml = generated()
    _, (paths, kwargs, kind) = skeleton_layer_data(nml, "sample")
    assert kind == "shapes" and kwargs["shape_type"] == "path" and kwargs["name"] == "sample trees"
    chains_ids = [[int(text) for text in ids.split(",")] for ids in kwargs["features"]["node_ids"]]
    assert chains_ids == [
        [10, 11, 12],
        [12, 13, 14],
        [12, 15],
        [22, 21, 20, 22],  # a loop walked from its branch node
        [22, 23],
        [31, 30, 33, 32, 31],  # a cycle walked along its first edge
    ]
    assert kwargs["features"]["tree_id"].tolist() == [7, 7, 7, 3, 3, 5]
    positions = {node.id: node.position for tree in nml.trees for node in tree.nodes}
    for path, ids in zip(paths, chains_ids):
        np.testing.assert_array_equal(path, [positions[node_id][::-1] for node_id in ids])
    np.testing.assert_allclose(kwargs["edge_color"][0], (0.1, 0.2, 0.3, 1.0))
    assert kwargs["feature_defaults"] == {"tree_id": -1, "tree_name": "", "node_ids": ""}


def chain_lists(edges: list[tuple[int, int]], node_count: int) -> list[list[int]]:
    vertices, lengths = chains(np.array(edges, dtype=np.int64).reshape(-1, 2), node_count)
    return [part.tolist() for part in np.split(vertices, np.cumsum(lengths)[:-1])] if len(lengths) else []


def test_chains_of_small_graphs():
    assert chain_lists([(0, 1), (1, 2), (2, 3), (1, 4)], 6) == [[0, 1], [1, 2, 3], [1, 4]]  # node 5 is isolated
    assert chain_lists([(3, 2), (2, 1)], 4) == [[1, 2, 3]]
    assert chain_lists([(2, 1), (1, 0), (0, 2)], 3) == [[2, 1, 0, 2]]  # a cycle follows its first edge
    assert chain_lists([(0, 0)], 1) == [[0, 0]]
    assert chain_lists([(0, 1), (1, 0)], 2) == [[0, 1, 0]]
    assert chain_lists([], 3) == []


def test_chains_cover_every_edge_once_and_stop_only_at_branches_and_ends():
    rng = np.random.default_rng(7)
    for _ in range(200):
        count = int(rng.integers(1, 25))
        edges = [tuple(int(v) for v in rng.integers(0, count, 2)) for _ in range(int(rng.integers(1, 35)))]
        parts = [np.array(part) for part in chain_lists(edges, count)]
        walked = sorted(tuple(sorted(pair)) for part in parts for pair in zip(part[:-1].tolist(), part[1:].tolist()))
        assert walked == sorted(tuple(sorted(edge)) for edge in edges)
        degree = np.bincount(np.array(edges).ravel(), minlength=count)
        for part in parts:
            assert (degree[part[1:-1]] == 2).all()
            assert (part[0] == part[-1] and degree[part[0]] == 2) or (degree[part[[0, -1]]] != 2).all()


def test_bounding_boxes_as_closed_paths():
    nml = generated()
    paths, kwargs, kind = bounding_box_layer_data(nml, "sample")
    assert kind == "shapes" and kwargs["name"] == "sample bounding boxes" and kwargs["shape_type"] == "path"
    first = paths[0]  # topleft (10, 20, 30), size (40, 50, 6): voxels x 10..49, y 20..69, z 30..35
    assert first.shape == (5, 3) and (first[0] == first[4]).all()
    assert first[0, 0] == 30 and first[2, 0] == 35
    assert sorted(set(first[:, 1])) == [19.5, 69.5] and sorted(set(first[:, 2])) == [9.5, 49.5]
    features = kwargs["features"]
    assert features["kind"].tolist() == ["user", "user", "task"]
    assert features["box_id"].tolist() == [1, 4, -1] and features["name"].tolist() == ["Box α", "", ""]
    assert features["is_visible"].tolist() == [True, False, True]
    np.testing.assert_array_equal(kwargs["edge_color"][0], (1, 0, 0, 1))
    assert bounding_box_layer_data(l4(), "l4") is None


# --------------------------------------------------------------------------------------
# Back to NML: edits on the layer data
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["layer metadata", "full NML as template"])
def test_edges_of_the_template_survive_without_a_trees_layer(source):
    nml = generated()
    (data, kwargs, kind), _ = skeleton_layer_data(nml, "sample")
    keep = kwargs["features"]["node_id"] != 15
    meta = {**kwargs, "features": {key: column[keep] for key, column in kwargs["features"].items()}}
    if source == "layer metadata":
        back = nml_from_layers([(data[keep], meta, kind)])
    else:
        back = nml_from_layers([(data[keep], {**meta, "metadata": {}}, kind)], template=nml)
    expected = generated()
    del expected.trees[0].nodes[5], expected.trees[0].edges[4]
    assert back == expected


def test_a_chain_across_two_trees_is_refused_naming_both():
    nml = generated()
    layers = skeleton_layer_data(nml, "sample")
    layers[0][1]["features"]["tree_id"][4] = 3  # node 14 into the lasso tree; chain 12,13,14 now spans two
    with pytest.raises(WKWError, match="edge 14-13 joins tree 3 and tree 7"):
        nml_from_layers(layers)


def test_new_and_missing_ids():
    nml = generated()
    (data, kwargs, kind), shapes = skeleton_layer_data(nml, "sample")
    features = {key: column.copy() for key, column in kwargs["features"].items()}
    features["tree_id"][-1] = 42  # the lone node, renamed by the user
    features["tree_name"][-1] = "my tree"
    features["node_id"] = features["node_id"].astype(float)  # as pandas makes it once a value is missing
    features["node_id"][[1, 2, 3]] = [-1, 10, np.nan]  # a new point, a copy of node 10's id, a missing id
    back = nml_from_layers([(data, {**kwargs, "features": features}, kind), shapes])
    assert [tree.id for tree in back.trees] == [7, 3, 5, 2, 9, 42]
    assert back.trees[-1].name == "my tree" and [node.id for node in back.trees[-1].nodes] == [1]
    assert [node.id for node in back.trees[0].nodes] == [10, 34, 35, 36, 14, 15]  # fresh ids above 33
    assert back.trees[0].edges == []  # each edge lost node 11, 12 or 13
    assert back.branchpoints == [Branchpoint(35, 1700000001000), Branchpoint(22)]  # the row keeps its features
    assert back.parameters.active_node is None  # node 12 is gone
    features["tree_id"][-1] = -1
    back = nml_from_layers([(data, {**kwargs, "features": features}, kind)])
    assert back.trees[-1].id == 10 and back.trees[-1].name == "my tree"


def test_drawn_paths_connect_nodes_they_touch_and_others_are_ignored():
    nml = generated()
    (points, nodes_kwargs, _), (paths, trees_kwargs, _) = skeleton_layer_data(nml, "sample")
    # node 11 is at (z, y, x) = (31, 201, 101), node 13 at (33, 203, 103); nothing is at (9, 9, 9)
    drawn = [np.array([[31.4, 201.2, 100.9], [32.6, 203.0, 103.4]]), np.array([[30, 200, 100], [9, 9, 9]])]
    features = {
        key: np.append(column, ["", ""] if key != "tree_id" else [-1, -1])
        for key, column in trees_kwargs["features"].items()
    }
    trees = (paths + drawn, {**trees_kwargs, "features": features}, "shapes")
    with pytest.warns(WKWWarning, match=r"shape 7 \(path\) ignored: its vertex at x=9, y=9, z=9 is not on a node"):
        back = nml_from_layers([(points, nodes_kwargs, "points"), trees])
    expected = generated()
    expected.trees[0].edges.append(Edge(11, 13))
    assert back == expected


def test_moved_resized_added_copied_and_recoloured_boxes():
    nml = generated()
    paths, kwargs, kind = bounding_box_layer_data(nml, "sample")
    moved = paths[0] + [2, 5, -3]  # 2 slices down, 5 voxels down, 3 to the left
    resized = paths[1].copy()
    resized[resized[:, 2] > 0, 2] += 4  # right edge 4 voxels further
    drawn = np.array([[7, 0.5, 0.5], [7, 0.5, 3.5], [7, 2.5, 3.5], [7, 2.5, 0.5]])  # a napari rectangle
    rows = [0, 1, 0, 0]  # the third becomes the drawn box, the fourth is a copy of the first
    features = {key: column[rows] for key, column in kwargs["features"].items()}
    features["name"][2], features["box_id"][2] = "new", -1
    colors = kwargs["edge_color"][rows]
    colors[1], colors[2] = (0, 0, 1, 1), (0, 1, 0, 1)
    meta = {**kwargs, "features": features, "edge_color": colors}
    back = nml_from_layers([([moved, resized, drawn, paths[0]], meta, kind)])
    assert back.parameters.user_bounding_boxes == [
        NmlBox((7, 25, 32), (40, 50, 6), id=1, name="Box α", color=(1.0, 0.0, 0.0, 1.0)),
        NmlBox((0, 0, 5), (12, 8, 1), id=4, color=(0.0, 0.0, 1.0, 1.0), is_visible=False),
        NmlBox((1, 1, 7), (3, 2, 1), id=5, name="new", color=(0.0, 1.0, 0.0, 1.0)),
        NmlBox((10, 20, 30), (40, 50, 6), id=6, name="Box α", color=(1.0, 0.0, 0.0, 1.0)),
    ]
    assert back.parameters.task_bounding_box == nml.parameters.task_bounding_box  # kept from the template
    assert back.trees == [] and back.groups == nml.groups


def test_layers_without_template_get_defaults_from_the_layers():
    data = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 2.0]])
    back = nml_from_layers([(data, {"name": "cells nodes", "scale": (30.0, 8.0, 4.0), "units": ("µm",) * 3}, "points")])
    assert back.parameters.dataset_name == "cells" and back.parameters.voxel_size == (4.0, 8.0, 30.0)
    assert back.parameters.unit == "micrometer"
    assert back.trees == [Tree(1, "Tree001", nodes=[node(1, 1, 2, 3), node(2, 2, 2, 3)])]


def test_translate_is_added_back_and_positions_are_rounded():
    nml = l4()
    (data, kwargs, kind), trees = skeleton_layer_data(nml, "l4")
    moved = {**kwargs, "translate": (28.0 * 2, 0.0, -11.24 * 10)}  # world units: 2 slices, -10 voxels in x
    back = nml_from_layers([(data + 0.3, moved, kind), trees])
    assert [node.position for node in back.trees[0].nodes] == [
        (3355, 3383, 1026),
        (3522, 3704, 1026),
        (3857, 3579, 1026),
    ]


def test_unknown_and_repeated_layers_are_refused():
    nml = generated()
    nodes, trees = skeleton_layer_data(nml, "sample")
    with pytest.raises(WKWError, match="'raw' \\(image\\) is neither"):
        nml_from_layers([nodes, (np.zeros((2, 2)), {"name": "raw"}, "image")])
    with pytest.raises(WKWError, match="more than one layer of skeleton nodes"):
        nml_from_layers([nodes, nodes])


def test_broken_nmls_are_refused_and_stray_comments_warned_about():
    nml = generated()
    nml.trees[1].nodes[0].id = 10
    with pytest.raises(WKWError, match="node id 10 appears more than once"):
        skeleton_layer_data(nml, "sample")
    nml = generated()
    nml.trees[1].edges.append(Edge(20, 30))
    with pytest.raises(WKWError, match="tree 3: edge 20-30"):
        skeleton_layer_data(nml, "sample")
    nml = generated()
    nml.comments.append(Comment(999, "lost"))
    with pytest.warns(WKWWarning, match="1 comment"):
        skeleton_layer_data(nml, "sample")


# --------------------------------------------------------------------------------------
# Through real napari layers (headless: layers need no viewer)
# --------------------------------------------------------------------------------------


def napari_round(layers: list) -> list:
    """What napari's writer hook receives for these layers."""
    napari = pytest.importorskip("napari")
    return [napari.layers.Layer.create(data, kwargs, kind).as_layer_data_tuple() for data, kwargs, kind in layers]


def napari_layers(nml: Nml) -> list:
    napari = pytest.importorskip("napari")
    return [napari.layers.Layer.create(*layer) for layer in all_layers(nml) if layer is not None]


@pytest.mark.parametrize("make", [nml_a, l4, generated], ids=["test_a", "l4_sample", "generated"])
def test_round_trip_through_napari_layers(make):
    nml = make()
    assert nml_from_layers(napari_round([layer for layer in all_layers(nml) if layer is not None])) == nml


def test_edits_in_napari_come_back():
    nml = generated()
    points, trees, boxes = napari_layers(nml)
    ids = points.features["node_id"].tolist()
    points.add([33.0, 205.0, 105.0])  # a new node: the feature defaults put it into the last tree (9)
    data = points.data.copy()
    data[ids.index(14)] = (40.2, 250.4, 120.6)  # move node 14
    points.data = data
    points.selected_data = {ids.index(15)}  # delete node 15 (and with it edge 12-15)
    points.remove_selected()
    points.selected_data = {ids.index(11)}  # selecting makes node 11's features the defaults
    points.add([40.0, 250.0, 130.0])  # napari copies node 11's features, id included
    trees.add_paths([np.array([[40.0, 250.0, 130.0], [40.0, 250.0, 121.0]])])  # new node to node 14
    back = nml_from_layers([layer.as_layer_data_tuple() for layer in (points, trees, boxes)])

    expected = generated()
    branched = expected.trees[0]
    branched.nodes[4].position = (121.0, 250.0, 40.0)
    del branched.nodes[5], branched.edges[4]
    branched.nodes.append(node(35, 130, 250, 40, radius=2.5))
    branched.edges.append(Edge(35, 14))
    expected.trees[4].nodes = [node(34, 105, 205, 33)]
    assert back == expected


# --------------------------------------------------------------------------------------
# Speed and independence
# --------------------------------------------------------------------------------------


def big_nml(node_count: int = 100_000, tree_count: int = 100) -> Nml:
    """Trees of mostly long chains with 5 % branches, nodes with all attributes, like a traced skeleton."""
    rng = np.random.default_rng(3)
    positions = rng.integers(0, 5000, (node_count, 3)).astype(float).tolist()
    per_tree = node_count // tree_count
    trees = []
    for tree_index in range(tree_count):
        first = tree_index * per_tree + 1
        ids = range(first, first + per_tree)
        parents = [node_id - 1 if rng.random() > 0.05 else int(rng.integers(first, node_id)) for node_id in ids[1:]]
        nodes = [Node(node_id, tuple(positions[node_id - 1]), **FULL) for node_id in ids]
        edges = [Edge(parent, node_id) for parent, node_id in zip(parents, ids[1:])]
        trees.append(Tree(tree_index + 1, f"tree {tree_index}", nodes=nodes, edges=edges))
    return Nml(Parameters("big", voxel_size=(11.24, 11.24, 28.0)), trees, comments=[Comment(5, "here")])


def test_a_hundred_thousand_nodes_convert_quickly():
    nml = big_nml()
    start = time.perf_counter()
    layers = skeleton_layer_data(nml, "big")
    to_layers = time.perf_counter() - start
    start = time.perf_counter()
    back = nml_from_layers(layers)
    to_nml = time.perf_counter() - start
    print(f"100,000 nodes: {to_layers:.2f} s to layer data, {to_nml:.2f} s back")
    assert back == nml
    assert to_layers < 2.0 and to_nml < 6.0  # measured about 0.3 s and 0.7 s; generous for busy machines


def test_module_imports_neither_napari_nor_qt_nor_pandas():
    code = (
        "import sys, napari_wkw.core.skeleton_layers; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('napari', 'pandas', 'qtpy', 'PyQt6', 'PySide6')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
