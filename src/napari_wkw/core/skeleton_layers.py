"""WEBKNOSSOS skeletons as napari layer data and back (headless: no napari, Qt or pandas here).

A skeleton becomes up to three LayerData tuples ``(data, kwargs, layer_type)``, all in voxels of
mag 1 as (z, y, x) with ``scale`` = voxel size, like the dataset's image layers:

* ``"<name> nodes"``, points: one point per node. ``features`` (one numpy column per key; "sentinel"
  is the value that stands for an attribute the NML does not have):

  ================ ======== ==============================================================
  column           dtype    meaning (sentinel)
  ================ ======== ==============================================================
  node_id          int64    node id (-1: a point added in napari, gets a fresh id on saving)
  tree_id          int64    tree id (-1: no tree, the point goes into a new tree)
  tree_name        object   the tree's name, to read in napari (saving takes it from the template)
  radius           float64  node radius
  comment          object   the node's comment ("": none)
  branchpoint      bool     the node is a branchpoint
  branchpoint_time int64    time of the branchpoint, Unix ms (-1: none)
  rot_x/y/z        float64  camera rotation when placed (NaN: none)
  in_vp            int64    viewport it was placed in (-1: none)
  in_mag           int64    magnification it was placed in (-1: none)
  bit_depth        int64    bit depth (-1: none)
  interpolation    int8     1 true, 0 false (-1: none)
  time             int64    creation time, Unix ms (-1: none)
  extra            object   unknown node attributes as a JSON object ("": none)
  ================ ======== ==============================================================

* ``"<name> trees"``, shapes: the edges as paths, one per maximal chain of edges (a chain ends at
  nodes with other than two edges; a cycle of such nodes is one closed path). ``features``:
  ``tree_id``, ``tree_name`` and ``node_ids``, the chain's node ids as "3,4,5".
* ``"<name> bounding boxes"``, shapes: the user bounding boxes and the task bounding box, each a
  closed path of 5 vertices. (y, x) trace the box's outline on voxel borders (x0 - 0.5 to
  x0 + width - 0.5, where WEBKNOSSOS draws it); z runs from the first slice z0 (first vertex) to the
  last slice z0 + depth - 1 (third vertex). ``features``: ``name`` ("": none), ``box_id``
  (-1: none), ``is_visible``, ``kind`` ("user" or "task").

Every tuple's ``metadata`` holds ``"nml"``: the NML without nodes, edges, comments and branchpoints
(its trees are empty shells that keep each tree's name, colour, group, type and metadata), and
``"nml_layer"``: "nodes", "trees" or "bounding boxes". The nodes layer also holds ``"nml_edges"``,
the original edges (source, target) in NML order. :func:`nml_from_layers` needs nothing else, so
what napari hands to a writer (``layer.as_layer_data_tuple()``) is saved without losing anything.

Saving edits (:func:`nml_from_layers`): positions are rounded to whole voxels after adding the
layer's ``translate`` (rotate, shear and affine are not applied). Points with node id -1, NaN or a
repeated id get fresh ids above every id in use or named by a path. A tree id the template does
not know makes a new tree; the template's trees are all kept, even when emptied. Edges are the
consecutive ``node_ids`` of each path (a path whose id count differs from its vertex count counts
as drawn in napari: it connects the nodes its vertices round to, or is ignored with a
:class:`WKWWarning`), each undirected edge once, dropped when a node is gone, refused when it joins
two trees. Without a trees layer the original edges among the surviving nodes stay. A box layer
replaces the user bounding boxes (and the task box if it holds one). An empty comment is no
comment; the active node is dropped when its node is.

NML order that says nothing is made deterministic: comments and branchpoints come back in node
order, edges in their original order and direction followed by new ones in path order, new trees
after the template's trees by id.

napari 0.9 draws a shape on a 2D slice only when all its vertices round to that slice
(``ShapeList._update_displayed``), so boxes deeper than one slice and paths across slices show in
the 3D view only.
"""

from __future__ import annotations

import colorsys
import copy
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import WKWError, WKWWarning
from .nml import Branchpoint, Color, Comment, Edge, Nml, NmlBox, Node, Parameters, Tree, normalize_unit

NODES, TREES, BOXES = "nodes", "trees", "bounding boxes"
LAYER_KEY = "nml_layer"
TEMPLATE_KEY = "nml"
EDGES_KEY = "nml_edges"
AXIS_LABELS = ("z", "y", "x")
POINT_SIZE = 5.0  # voxels: big enough to click, radius stays a feature
EDGE_WIDTH = 1.0
BOX_EDGE_WIDTH = 2.0
COMMENT_TEXT = {"string": "{comment}", "color": "white", "anchor": "upper_left", "size": 10}

_ROTATION = ("rot_x", "rot_y", "rot_z")
_NO_ROTATION = (math.nan, math.nan, math.nan)


# --------------------------------------------------------------------------------------
# NML -> layer data
# --------------------------------------------------------------------------------------


def skeleton_layer_data(nml: Nml, name: str) -> list[tuple]:
    """[(points data, kwargs, "points"), (paths, kwargs, "shapes")] for the trees of ``nml`` ([] without nodes;
    no shapes tuple when there are no edges)."""
    nodes = [node for tree in nml.trees for node in tree.nodes]
    if not nodes:
        return []
    tree_index = np.repeat(np.arange(len(nml.trees)), [len(tree.nodes) for tree in nml.trees])
    positions, features = _node_features(nml, nodes, tree_index)
    zyx = positions[:, ::-1].copy()
    colors = _tree_colors(nml)
    template = _template(nml)
    common = _common_kwargs(nml)
    edges = _edge_array(nml)
    points_kwargs = {
        **common,
        "name": f"{name} nodes",
        "features": features,
        "feature_defaults": _node_defaults(nml, features),
        "face_color": colors[tree_index],
        "size": POINT_SIZE,
        "metadata": {TEMPLATE_KEY: template, LAYER_KEY: NODES, EDGES_KEY: edges},
    }
    if (features["comment"] != "").any():
        points_kwargs["text"] = dict(COMMENT_TEXT)
    layers: list[tuple] = [(zyx, points_kwargs, "points")]
    if len(edges):
        layers.append(_tree_shapes(nml, name, features, zyx, tree_index, edges, colors, template))
    return layers


def bounding_box_layer_data(nml: Nml, name: str) -> tuple | None:
    """(paths, kwargs, "shapes") of the user bounding boxes (and the task bounding box), None without any."""
    parameters = nml.parameters
    boxes = [(box, "user") for box in parameters.user_bounding_boxes]
    if parameters.task_bounding_box is not None:
        boxes.append((parameters.task_bounding_box, "task"))
    if not boxes:
        return None
    features = {
        "name": np.array([box.name or "" for box, _ in boxes], dtype=object),
        "box_id": np.array([-1 if box.id is None else box.id for box, _ in boxes], dtype=np.int64),
        "is_visible": np.array([box.is_visible for box, _ in boxes], dtype=bool),
        "kind": np.array([kind for _, kind in boxes], dtype=object),
    }
    kwargs = {
        **_common_kwargs(nml),
        "name": f"{name} bounding boxes",
        "shape_type": "path",
        "edge_color": np.array([_box_color(box) for box, _ in boxes], dtype=np.float64),
        "edge_width": BOX_EDGE_WIDTH,
        "face_color": "transparent",
        "features": features,
        "feature_defaults": {"name": "", "box_id": -1, "is_visible": True, "kind": "user"},
        "metadata": {TEMPLATE_KEY: _template(nml), LAYER_KEY: BOXES},
    }
    return ([_box_path(box) for box, _ in boxes], kwargs, "shapes")


def _common_kwargs(nml: Nml) -> dict[str, Any]:
    """Scale, units and axis labels that put the layer on the dataset's world coordinates."""
    x, y, z = nml.parameters.voxel_size
    return {"scale": (z, y, x), "units": (nml.parameters.unit,) * 3, "axis_labels": AXIS_LABELS}


def _template(nml: Nml) -> Nml:
    """The NML without nodes, edges, comments and branchpoints: what saving needs besides the layers."""
    return Nml(
        parameters=copy.deepcopy(nml.parameters),
        trees=[_shell(tree) for tree in nml.trees],
        groups=copy.deepcopy(nml.groups),
        volumes=copy.deepcopy(nml.volumes),
        meta=list(nml.meta),
    )


def _shell(tree: Tree) -> Tree:
    """A copy of the tree's own attributes, without nodes and edges."""
    return Tree(
        id=tree.id,
        name=tree.name,
        color=tree.color,
        group_id=tree.group_id,
        type=tree.type,
        metadata=copy.deepcopy(tree.metadata),
        extra=dict(tree.extra),
    )


def _objects(values: list) -> np.ndarray:
    """A 1-d object array even when the values are tuples or lists."""
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


def _id_color(ident: int) -> Color:
    """A colour for trees and boxes without one: golden-ratio hues, always the same for an id."""
    red, green, blue = colorsys.hsv_to_rgb((ident * 0.618033988749895) % 1.0, 0.75, 1.0)
    return (red, green, blue, 1.0)


def _tree_colors(nml: Nml) -> np.ndarray:
    return np.array([tree.color or _id_color(tree.id) for tree in nml.trees], dtype=np.float64).reshape(-1, 4)


def _box_color(box: NmlBox) -> Color:
    return box.color or _id_color(0 if box.id is None else box.id)


def _optional(values: tuple, dtype: type = np.int64) -> np.ndarray:
    """A column of optional ints (or bools) with -1 for None, converted in numpy rather than per node."""
    column = np.array(values, dtype=object)
    column[np.equal(column, None)] = -1
    return column.astype(dtype)


def _node_features(nml: Nml, nodes: list[Node], tree_index: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(x, y, z) positions and the feature columns of the nodes layer (see the module docstring for sentinels).

    One list per attribute: building a tuple per node instead wakes the garbage collector often
    enough to triple the time.
    """
    ids = [node.id for node in nodes]
    positions = [node.position for node in nodes]
    radius = [node.radius for node in nodes]
    rotation = [node.rotation for node in nodes]
    in_vp, in_mag = [node.in_vp for node in nodes], [node.in_mag for node in nodes]
    bit_depth, interpolation = [node.bit_depth for node in nodes], [node.interpolation for node in nodes]
    time, extra = [node.time for node in nodes], [node.extra for node in nodes]
    ids = np.array(ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    repeated = np.nonzero(np.diff(ids[order]) == 0)[0]
    if len(repeated):
        raise WKWError(f"node id {ids[order][repeated[0]]} appears more than once (WEBKNOSSOS needs unique node ids)")
    count = len(ids)
    features: dict[str, np.ndarray] = {
        "node_id": ids,
        "tree_id": np.array([tree.id for tree in nml.trees], dtype=np.int64)[tree_index],
        "tree_name": _objects([tree.name for tree in nml.trees])[tree_index],
        "radius": np.array(radius, dtype=np.float64),
        "comment": np.full(count, "", dtype=object),
        "branchpoint": np.zeros(count, dtype=bool),
        "branchpoint_time": np.full(count, -1, dtype=np.int64),
    }
    rotation = np.array([angles or _NO_ROTATION for angles in rotation], dtype=np.float64).reshape(-1, 3)
    features.update(zip(_ROTATION, rotation.T))
    features.update(in_vp=_optional(in_vp), in_mag=_optional(in_mag), bit_depth=_optional(bit_depth))
    features.update(interpolation=_optional(interpolation, np.int8), time=_optional(time))
    features["extra"] = _objects([json.dumps(attributes) if attributes else "" for attributes in extra])
    comments = _per_node(ids, order, [comment.node for comment in nml.comments], "comment")
    for index, position in comments:
        features["comment"][index] = nml.comments[position].content
    branchpoints = _per_node(ids, order, [point.node for point in nml.branchpoints], "branchpoint")
    for index, position in branchpoints:
        features["branchpoint"][index] = True
        time = nml.branchpoints[position].time
        features["branchpoint_time"][index] = -1 if time is None else time
    return np.array(positions, dtype=np.float64).reshape(-1, 3), features


def _per_node(ids: np.ndarray, order: np.ndarray, wanted: list[int], what: str) -> list[tuple[int, int]]:
    """(node index, position in ``wanted``) of comments/branchpoints; orphans and repeats are warned about."""
    if not wanted:
        return []
    index = _index_of(ids, order, np.asarray(wanted, dtype=np.int64))
    found = np.nonzero(index >= 0)[0]
    _, first = np.unique(index[found], return_index=True)
    kept = found[np.sort(first)]
    orphans, repeats = len(wanted) - len(found), len(found) - len(kept)
    if orphans:
        warnings.warn(f"{orphans} {what}(s) refer to nodes that do not exist; left out", WKWWarning, stacklevel=4)
    if repeats:
        message = f"{repeats} more {what}(s) for nodes that already have one; only the first is kept"
        warnings.warn(message, WKWWarning, stacklevel=4)
    return list(zip(index[kept].tolist(), kept.tolist()))


def _index_of(ids: np.ndarray, order: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Index into ``ids`` (sorted by ``order``) of every wanted id, -1 where there is none."""
    if not len(ids):
        return np.full(len(wanted), -1, dtype=np.int64)
    sorted_ids = ids[order]
    position = np.minimum(np.searchsorted(sorted_ids, wanted), len(ids) - 1)
    return np.where(sorted_ids[position] == wanted, order[position], -1)


def _node_defaults(nml: Nml, features: dict[str, np.ndarray]) -> dict[str, Any]:
    """Features of a point added in napari: a new node (id -1) of the last tree, no optional attributes."""
    last_tree = nml.trees[-1]
    defaults: dict[str, Any] = {
        "node_id": -1,
        "tree_id": last_tree.id,
        "tree_name": last_tree.name,
        "radius": float(features["radius"][-1]),
        "comment": "",
        "branchpoint": False,
        "branchpoint_time": -1,
        **dict.fromkeys(_ROTATION, math.nan),
        **dict.fromkeys(("in_vp", "in_mag", "bit_depth", "interpolation", "time"), -1),
        "extra": "",
    }
    assert defaults.keys() == features.keys()  # napari refuses defaults that miss or add a column
    return defaults


def _edge_array(nml: Nml) -> np.ndarray:
    """All edges (source, target) in NML order (two plain lists: a tuple per edge wakes the garbage collector)."""
    sources = [edge.source for tree in nml.trees for edge in tree.edges]
    targets = [edge.target for tree in nml.trees for edge in tree.edges]
    return np.stack((np.array(sources, dtype=np.int64), np.array(targets, dtype=np.int64)), axis=1)


def _tree_shapes(
    nml: Nml,
    name: str,
    features: dict[str, np.ndarray],
    zyx: np.ndarray,
    tree_index: np.ndarray,
    edges: np.ndarray,
    colors: np.ndarray,
    template: Nml,
) -> tuple:
    """The shapes tuple of the edges: one path per maximal chain."""
    ids = features["node_id"]
    order = np.argsort(ids, kind="stable")
    ends = _index_of(ids, order, edges)
    edge_trees = np.repeat(np.arange(len(nml.trees)), [len(tree.edges) for tree in nml.trees])
    for column in (0, 1):
        outside = np.nonzero((ends[:, column] < 0) | (tree_index[np.maximum(ends[:, column], 0)] != edge_trees))[0]
        if len(outside):
            source, target = edges[outside[0]].tolist()
            tree_id = nml.trees[edge_trees[outside[0]]].id
            raise WKWError(f"tree {tree_id}: edge {source}-{target} refers to a node that is not in this tree")
    vertices, lengths = chains(ends, len(ids))
    stops = np.cumsum(lengths)
    starts = stops - lengths
    first_trees = tree_index[vertices[starts]]
    kwargs = {
        **_common_kwargs(nml),
        "name": f"{name} trees",
        "shape_type": "path",
        "edge_color": colors[first_trees],
        "edge_width": EDGE_WIDTH,
        "face_color": "transparent",
        "features": {
            "tree_id": features["tree_id"][vertices[starts]],
            "tree_name": features["tree_name"][vertices[starts]],
            "node_ids": _joined_ids(ids[vertices], starts, stops),
        },
        "feature_defaults": {"tree_id": -1, "tree_name": "", "node_ids": ""},
        "metadata": {TEMPLATE_KEY: template, LAYER_KEY: TREES},
    }
    path_vertices = zyx[vertices]
    return ([path_vertices[start:stop] for start, stop in zip(starts.tolist(), stops.tolist())], kwargs, "shapes")


def _joined_ids(ids: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Each chain's node ids as "3,4,5", cut out of one joined string (a join per chain costs more)."""
    text = ids.astype(str)
    after = np.cumsum(np.char.str_len(text) + 1)  # just past each id's comma in the joined text
    joined = ",".join(text.tolist())
    first = np.concatenate(([0], after))[starts].tolist()
    return _objects([joined[begin:end] for begin, end in zip(first, (after[stops - 1] - 1).tolist())])


# --------------------------------------------------------------------------------------
# Maximal chains of edges, vectorised
# --------------------------------------------------------------------------------------


def chains(edges: np.ndarray, node_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Decompose a graph's edges into maximal chains: (node indices of all chains one after the other, lengths).

    ``edges`` is (m, 2) of node indices. A chain runs between nodes whose degree is not 2;
    a cycle through nodes of degree 2 only is one closed chain (its first node repeated at the
    end). Every edge is in exactly one chain, isolated nodes in none. Chains are ordered by their
    first node, and each starts at its lower end node (cycles at their lowest edge).

    This is list ranking by pointer doubling on half-edges (an edge walked in one direction),
    so it takes O(m log m) numpy work instead of a Python walk per edge. Half-edge ``h`` leaves
    end ``h`` of edge ``h // 2`` (``ends.ravel()[h]`` is its node) and arrives at end ``h ^ 1``;
    at a node of degree 2 it continues through the node's other end.
    """
    ends = np.asarray(edges, dtype=np.int64).ravel()
    count = len(ends)
    if not count:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    degree = np.bincount(ends, minlength=node_count)
    following = _successors(ends, degree)
    steps, last = _rank(following)
    on_cycle = following[last] >= 0
    starts = np.nonzero(degree[ends] != 2)[0]
    reverse = last[starts] ^ 1  # the same chain walked from its other end
    starts = starts[(ends[starts] < ends[reverse]) | ((ends[starts] == ends[reverse]) & (starts < reverse))]
    half_edges, chain_of, chain_start = _open_chains(starts, steps, last, on_cycle)
    if on_cycle.any():
        cycle_edges, cycle_of, cycle_start = _closed_chains(np.nonzero(on_cycle)[0], following)
        half_edges = np.concatenate((half_edges, cycle_edges))
        chain_of = np.concatenate((chain_of, cycle_of + len(chain_start)))
        chain_start = np.concatenate((chain_start, cycle_start))
    # chains ordered by (first node, first half-edge); ranks of chain_start give the output order
    chain_rank = np.empty(len(chain_start), dtype=np.int64)
    chain_rank[np.lexsort((chain_start, ends[chain_start]))] = np.arange(len(chain_start))
    lengths = np.bincount(chain_rank[chain_of], minlength=len(chain_start)) + 1
    # half_edges are in walking order within each chain: a stable sort by chain keeps it
    walk = half_edges[np.argsort(chain_rank[chain_of], kind="stable")]
    stops = np.cumsum(lengths) - 1  # where each chain's final node goes
    vertices = np.empty(len(walk) + len(lengths), dtype=np.int64)
    is_stop = np.zeros(len(vertices), dtype=bool)
    is_stop[stops] = True
    vertices[~is_stop] = ends[walk]
    vertices[stops] = ends[walk[np.cumsum(lengths - 1) - 1] ^ 1]
    return vertices, lengths


def _successors(ends: np.ndarray, degree: np.ndarray) -> np.ndarray:
    """For each half-edge the next one along its chain, -1 where it arrives at a node of degree != 2."""
    order = np.argsort(ends, kind="stable")
    sorted_nodes = ends[order]
    group_start = np.ones(len(ends), dtype=bool)
    group_start[1:] = sorted_nodes[1:] != sorted_nodes[:-1]
    pairs = np.nonzero(group_start & (degree[sorted_nodes] == 2))[0]
    partner = np.full(len(ends), -1, dtype=np.int64)
    partner[order[pairs]] = order[pairs + 1]
    partner[order[pairs + 1]] = order[pairs]
    return partner[np.arange(len(ends)) ^ 1]


def _rank(following: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pointer doubling: steps to the end of each half-edge's chain and that last half-edge.

    Half-edges on cycles never reach an end; for them ``following[last] >= 0`` afterwards.
    """
    steps = (following >= 0).astype(np.int64)
    last = np.where(following >= 0, following, np.arange(len(following)))
    for _ in range(len(following).bit_length() + 1):
        further = last[last]
        if np.array_equal(further, last):
            break
        steps = steps + steps[last]
        last = further
    return steps, last


def _open_chains(
    starts: np.ndarray, steps: np.ndarray, last: np.ndarray, on_cycle: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-edges of the chains that begin at ``starts``, in walking order, with their chain number."""
    if not len(starts):
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
    # a directed chain is known by its last half-edge: members are the half-edges ending there
    by_last = np.argsort(last[starts])
    candidates = np.nonzero(~on_cycle)[0]
    chain_of = _index_of(last[starts], by_last, last[candidates])
    members, chain_of = candidates[chain_of >= 0], chain_of[chain_of >= 0]
    walking = np.lexsort((-steps[members], chain_of))
    return members[walking], chain_of[walking], starts


def _closed_chains(cycle: np.ndarray, following: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-edges of cycles in walking order from each cycle's lowest half-edge, one direction per cycle."""
    local = np.full(len(following), -1, dtype=np.int64)
    local[cycle] = np.arange(len(cycle))
    successor = local[following[cycle]]
    lowest = cycle.copy()
    hop = successor.copy()
    for _ in range(len(cycle).bit_length() + 1):
        lowest = np.minimum(lowest, lowest[hop])
        hop = hop[hop]
    # both directions of a cycle hold one half of its lowest edge: keep the one walking it forwards
    forwards = lowest % 2 == 0
    cut = np.where(forwards & (cycle[successor] != lowest), successor, -1)
    steps, _ = _rank(cut)
    kept = np.nonzero(forwards)[0]
    starts, chain_of = np.unique(lowest[kept], return_inverse=True)
    walking = np.lexsort((-steps[kept], chain_of))
    return cycle[kept][walking], chain_of[walking], starts


def _box_path(box: NmlBox) -> np.ndarray:
    """A closed path around the box's voxels in (y, x), from its first slice (vertex 1) to its last (vertex 3)."""
    x0, y0, z0 = box.topleft
    width, height, depth = box.size
    left, right, top, bottom = x0 - 0.5, x0 + width - 0.5, y0 - 0.5, y0 + height - 0.5
    z_last = z0 + depth - 1
    return np.array(
        [[z0, top, left], [z0, top, right], [z_last, bottom, right], [z_last, bottom, left], [z0, top, left]],
        dtype=np.float64,
    )


# --------------------------------------------------------------------------------------
# Layer data -> NML
# --------------------------------------------------------------------------------------


def nml_from_layers(layers: list[tuple], template: Nml | None = None) -> Nml:
    """The NML of points/shapes LayerData (as napari hands them to writers): the inverse of the two above.

    ``None`` entries are skipped, so ``skeleton_layer_data(...) + [bounding_box_layer_data(...)]``
    works as it is. The template (argument, else the layers' ``metadata["nml"]``) gives the
    parameters, groups, volumes, meta and tree attributes; without one they are defaults with the
    voxel size of the layers' scale.
    """
    found = _sort_layers(layers)
    if template is None:
        stored = [(meta.get("metadata") or {}).get(TEMPLATE_KEY) for _, meta in found.values()]
        template = next((candidate for candidate in stored if candidate is not None), None)
    nml = _base_nml(template, found)
    if NODES in found:
        _add_skeleton(nml, template, found)
    if BOXES in found:
        _add_boxes(nml, template, *found[BOXES])
    return nml


def _sort_layers(layers: Sequence[tuple | None]) -> dict[str, tuple[Any, Mapping]]:
    """{"nodes" | "trees" | "bounding boxes": (data, meta)}; anything else is refused by name."""
    found: dict[str, tuple[Any, Mapping]] = {}
    for layer in layers:
        if layer is None:
            continue
        data, meta, layer_type = layer
        meta = meta or {}
        kind = (meta.get("metadata") or {}).get(LAYER_KEY) or _kind_from_features(meta.get("features"), layer_type)
        label = meta.get("name", layer_type)
        if kind is None:
            raise WKWError(
                f"layer {label!r} ({layer_type}) is neither skeleton nodes, skeleton trees nor bounding boxes"
            )
        if kind in found:
            raise WKWError(f"layer {label!r}: more than one layer of skeleton {kind} given; save them one by one")
        found[kind] = (data, meta)
    return found


def _kind_from_features(features: Any, layer_type: str) -> str | None:
    if layer_type == "points":
        return NODES
    if layer_type == "shapes" and features is not None:
        if "node_ids" in features:
            return TREES
        if "box_id" in features:
            return BOXES
    return None


def _base_nml(template: Nml | None, found: dict[str, tuple[Any, Mapping]]) -> Nml:
    """Parameters, groups, volumes and meta of the template, or defaults from the first layer."""
    if template is not None:
        return Nml(
            parameters=copy.deepcopy(template.parameters),
            groups=copy.deepcopy(template.groups),
            volumes=copy.deepcopy(template.volumes),
            meta=list(template.meta),
        )
    _, meta = next(iter(found.values()), (None, {}))
    parameters = Parameters(dataset_name=_dataset_name(str(meta.get("name", ""))))
    scale = meta.get("scale")
    if scale is not None and len(scale) == 3:
        z, y, x = (float(value) for value in scale)
        parameters.voxel_size = (x, y, z)
    units = meta.get("units")
    if units:
        try:
            parameters.unit = normalize_unit(str(units[0]))
        except ValueError:
            warnings.warn(f"unit {units[0]!r} unknown to WEBKNOSSOS; the NML says nanometer", WKWWarning, stacklevel=3)
    return Nml(parameters=parameters)


def _dataset_name(layer_name: str) -> str:
    for suffix in (NODES, TREES, BOXES):
        if layer_name.endswith(f" {suffix}"):
            return layer_name[: -len(suffix) - 1]
    return layer_name


def _voxels(data: Any, meta: Mapping) -> np.ndarray:
    """(n, 3) (z, y, x) voxel positions of layer data moved by the layer's translate (world units)."""
    points = np.asarray(data, dtype=np.float64)
    if points.size == 0:
        points = points.reshape(0, 3)
    if points.ndim != 2 or points.shape[1] != 3:
        raise WKWError(f"layer {meta.get('name')!r}: skeletons are 3D (z, y, x), this layer's data is {points.shape}")
    translate = np.asarray(meta.get("translate", (0.0, 0.0, 0.0)), dtype=np.float64)
    scale = np.asarray(meta.get("scale", (1.0, 1.0, 1.0)), dtype=np.float64)
    return points + translate / scale


# ---- columns of napari features (a dict of arrays or a pandas DataFrame)


def _missing(value: Any) -> bool:
    """None, NaN or pandas' NA."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or type(value).__name__ == "NAType"


def _column(features: Any, name: str, count: int) -> np.ndarray | None:
    if features is None or name not in features:
        return None
    values = np.asarray(features[name])
    if len(values) != count:
        raise WKWError(f"feature {name!r} has {len(values)} values for {count} shapes or points")
    return values


def _float_column(features: Any, name: str, count: int, default: float) -> np.ndarray:
    values = _column(features, name, count)
    if values is None:
        return np.full(count, default, dtype=np.float64)
    try:
        numbers = values.astype(np.float64)
    except (TypeError, ValueError):
        numbers = np.array([math.nan if _missing(value) else float(value) for value in values], dtype=np.float64)
    return np.where(np.isnan(numbers), default, numbers)


def _int_column(features: Any, name: str, count: int, default: int = -1) -> np.ndarray:
    values = _column(features, name, count)
    if values is not None and values.dtype.kind in "biu":
        return values.astype(np.int64)
    numbers = _float_column(features, name, count, math.nan)
    return np.where(np.isnan(numbers), default, np.rint(np.nan_to_num(numbers))).astype(np.int64)


def _text_column(features: Any, name: str, count: int) -> np.ndarray:
    values = _column(features, name, count)
    if values is None:
        return np.full(count, "", dtype=object)
    if values.dtype.kind == "U":
        return values.astype(object)
    try:
        present = (values == values) & np.not_equal(values, None)  # NaN is not equal to itself
    except TypeError:  # pandas' NA has no truth value
        present = np.array([not _missing(value) for value in values], dtype=bool)
    text = np.full(count, "", dtype=object)
    text[present] = values[present].astype(str)
    return text


def _bool_column(features: Any, name: str, count: int, default: bool) -> np.ndarray:
    values = _column(features, name, count)
    if values is None:
        return np.full(count, default, dtype=bool)
    if values.dtype.kind == "b":
        return values.copy()
    return np.array([default if _missing(value) else bool(value) for value in values], dtype=bool)


# ---- nodes, trees and edges


def _add_skeleton(nml: Nml, template: Nml | None, found: dict[str, tuple[Any, Mapping]]) -> None:
    """Trees, comments and branchpoints of the nodes layer, edges of the trees layer (or of the template)."""
    data, meta = found[NODES]
    positions = np.rint(_voxels(data, meta)[:, ::-1]) + 0.0  # x, y, z; + 0.0 turns -0.0 into 0.0
    if not np.isfinite(positions).all():
        raise WKWError(f"layer {meta.get('name')!r}: node positions must be finite")
    features, count = meta.get("features"), len(positions)
    original_edges = _original_edges(meta, template)
    listed = _listed_chains(*found[TREES]) if TREES in found else None
    referenced = [original_edges.ravel()] + ([listed[0]] if listed is not None else [])
    node_ids = _fresh_ids(_int_column(features, "node_id", count), referenced)
    tree_ids, trees = _trees(_int_column(features, "tree_id", count), template, features, count)
    all_tree_ids = np.array([tree.id for tree in trees], dtype=np.int64)
    tree_position = _index_of(all_tree_ids, np.argsort(all_tree_ids), tree_ids)
    order = np.argsort(tree_position, kind="stable")
    nodes = _nodes(features, count, node_ids, positions, order)
    stops = np.cumsum(np.bincount(tree_position, minlength=len(trees))).tolist()
    for tree, start, stop in zip(trees, [0, *stops], stops):
        tree.nodes = nodes[start:stop]
    if listed is None:
        edges = original_edges
    else:
        edges = _keep_original_order(_trees_layer_edges(listed, found[TREES], node_ids, positions), original_edges)
    _place_edges(trees, node_ids, tree_position, edges[np.isin(edges, node_ids).all(axis=1)])
    nml.trees = trees
    _add_comments(nml, features, count, node_ids, order)
    if nml.parameters.active_node is not None and not (node_ids == nml.parameters.active_node).any():
        nml.parameters.active_node = None


def _original_edges(meta: Mapping, template: Nml | None) -> np.ndarray:
    """The edges the nodes layer came with; else those of a template that still has its trees' edges."""
    stored = (meta.get("metadata") or {}).get(EDGES_KEY)
    if stored is None:
        return _edge_array(template) if template is not None else np.empty((0, 2), dtype=np.int64)
    return np.asarray(stored, dtype=np.int64).reshape(-1, 2)


def _fresh_ids(ids: np.ndarray, referenced: list[np.ndarray]) -> np.ndarray:
    """``ids`` with fresh ones (above every id in use or referenced) for missing (< 0) and repeated ones."""
    ids = ids.copy()
    _, first = np.unique(ids, return_index=True)
    fresh = np.ones(len(ids), dtype=bool)
    fresh[first] = False
    fresh |= ids < 0
    in_use = np.concatenate([ids[~fresh], *referenced])
    start = int(in_use.max()) + 1 if len(in_use) else 1
    ids[fresh] = np.arange(max(start, 1), max(start, 1) + int(fresh.sum()), dtype=np.int64)
    return ids


def _trees(tree_ids: np.ndarray, template: Nml | None, features: Any, count: int) -> tuple[np.ndarray, list[Tree]]:
    """Tree id per node and the trees: the template's (all of them, in order), then new ones by id.

    A tree id the template does not know makes a new tree of that id, named by the ``tree_name`` of
    its nodes unless that is a template tree's name (copied along with its features in napari); a
    missing id (-1) puts the node into one new tree with a fresh id. Template trees are all kept,
    also when all their nodes were deleted (then they are empty, as WEBKNOSSOS allows).
    """
    template_trees = template.trees if template is not None else []
    known = {tree.id for tree in template_trees}
    if (tree_ids < 0).any():
        fresh = max(*known, int(tree_ids.max()), 0) + 1
        tree_ids = np.where(tree_ids < 0, fresh, tree_ids)
    trees = [_shell(tree) for tree in template_trees]
    new = [tree_id for tree_id in np.unique(tree_ids).tolist() if tree_id not in known]
    if new:
        names = _text_column(features, "tree_name", count)
        taken = {tree.name for tree in template_trees}  # a name copied along with another tree's features
        for tree_id in new:
            chosen = (text for text in names[tree_ids == tree_id] if text and text not in taken)
            trees.append(Tree(id=tree_id, name=next(chosen, f"Tree{tree_id:03d}")))
    return tree_ids, trees


def _nodes(features: Any, count: int, node_ids: np.ndarray, positions: np.ndarray, order: np.ndarray) -> list[Node]:
    """Node objects in tree order (``order``) from the feature columns and sentinels.

    Flat per-column lists are zipped straight into the nodes: nested lists per node would wake
    the garbage collector.
    """
    rotation = np.stack([_float_column(features, key, count, math.nan) for key in _ROTATION])[:, order]
    has_rotation = (~np.isnan(rotation).all(axis=0)).tolist()
    rotations = [angles if flag else None for angles, flag in zip(zip(*np.nan_to_num(rotation).tolist()), has_rotation)]

    def optional(key: str) -> list[int | None]:
        return [None if value < 0 else value for value in _int_column(features, key, count)[order].tolist()]

    interpolation = [None if value is None else value == 1 for value in optional("interpolation")]
    columns = zip(
        node_ids[order].tolist(),
        zip(*positions[order].T.tolist()),
        _float_column(features, "radius", count, 1.0)[order].tolist(),
        rotations,
        optional("in_vp"),
        optional("in_mag"),
        optional("bit_depth"),
        interpolation,
        optional("time"),
        _text_column(features, "extra", count)[order].tolist(),
    )
    return [
        Node(node_id, position, radius, rotation, in_vp, in_mag, bits, interp, time, _extra(text, node_id))
        for node_id, position, radius, rotation, in_vp, in_mag, bits, interp, time, text in columns
    ]


def _extra(text: str, node_id: int) -> dict[str, str]:
    """Unknown node attributes back from their JSON text ("" = none)."""
    if not text:
        return {}
    try:
        extra = json.loads(text)
    except json.JSONDecodeError:
        extra = None
    if not isinstance(extra, dict):
        raise WKWError(f"node {node_id}: feature 'extra' must be a JSON object of attributes, not {text!r}")
    return {str(key): str(value) for key, value in extra.items()}


def _listed_chains(data: Any, meta: Mapping) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The trees layer's chains: (node ids one chain after another, chain lengths, shapes drawn in napari).

    A shape's ``node_ids`` count when they are as many as its vertices; other shapes were drawn
    (or reshaped) in napari and are matched to nodes by position once the nodes are known.
    """
    shapes = list(data)
    texts = _text_column(meta.get("features"), "node_ids", len(shapes)).tolist()
    pieces, lengths, drawn = [], [], []
    for index, (text, vertices) in enumerate(zip(texts, shapes)):
        count = text.count(",") + 1 if text.strip() else 0
        if count and count == len(vertices):
            pieces.append(text)
            lengths.append(count)
        else:
            drawn.append(index)
    try:
        ids = np.array(",".join(pieces).split(",") if pieces else [], dtype=np.int64)
    except ValueError:
        raise WKWError(f"layer {meta.get('name')!r}: feature 'node_ids' must be node ids like '3,4,5'") from None
    return ids, np.array(lengths, dtype=np.int64), drawn


def _trees_layer_edges(
    listed: tuple[np.ndarray, np.ndarray, list[int]], layer: tuple[Any, Mapping], node_ids: np.ndarray, xyz: np.ndarray
) -> np.ndarray:
    """Edges of the listed chains, then of the drawn paths whose vertices all lie on nodes."""
    ids, lengths, drawn = listed
    edges = [_chain_pairs(ids, lengths)]
    if drawn:
        edges.append(_chain_pairs(*_drawn_chains(layer, drawn, node_ids, xyz)))
    return np.concatenate(edges)


def _drawn_chains(
    layer: tuple[Any, Mapping], drawn: list[int], node_ids: np.ndarray, xyz: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Node ids of drawn paths whose vertices each round to a node's voxel (within half a voxel of it)."""
    data, meta = layer
    shapes = list(data)
    types = meta.get("shape_type", "path")
    types = [types] * len(shapes) if isinstance(types, str) else list(types)
    vertices = [np.rint(_voxels(shapes[index], meta)[:, ::-1]) for index in drawn]
    keys = _row_keys(xyz, *vertices)
    node_at = np.full(sum(len(key) for key in keys), -1, dtype=np.int64)  # node id by row key
    node_at[keys[0][::-1]] = node_ids[::-1]  # the first node at a voxel wins
    chains_found, lengths = [], []
    for index, points, key in zip(drawn, vertices, keys[1:]):
        matched = node_at[key]
        where = f"layer {meta.get('name')!r}: shape {index} ({types[index]})"
        if types[index] not in ("path", "line"):
            warnings.warn(f"{where} ignored: only paths and lines connect nodes", WKWWarning, stacklevel=5)
        elif (matched < 0).any():
            x, y, z = points[np.argmax(matched < 0)].tolist()
            message = f"{where} ignored: its vertex at x={x:g}, y={y:g}, z={z:g} is not on a node"
            warnings.warn(message, WKWWarning, stacklevel=5)
        elif len(matched) > 1:
            chains_found.append(matched)
            lengths.append(len(matched))
    ids = np.concatenate(chains_found) if chains_found else np.empty(0, dtype=np.int64)
    return ids, np.array(lengths, dtype=np.int64)


def _row_keys(*arrays: np.ndarray) -> list[np.ndarray]:
    """One integer per row, equal for equal rows across all ``arrays`` (each (n, k) of whole numbers)."""
    stacked = np.concatenate([np.asarray(array).reshape(len(array), -1) for array in arrays]).astype(np.int64)
    if not len(stacked):
        return [np.empty(0, dtype=np.int64) for _ in arrays]
    low = stacked.min(axis=0)
    spans = (stacked.max(axis=0) - low + 1).tolist()
    if math.prod(spans) < 2**62:  # rows as one number each: unique of a flat array is much faster
        strides = np.cumprod([1, *spans[:-1]], dtype=np.int64)
        _, inverse = np.unique((stacked - low) @ strides, return_inverse=True)
    else:
        _, inverse = np.unique(stacked, axis=0, return_inverse=True)
    return np.split(inverse.reshape(-1), np.cumsum([len(array) for array in arrays])[:-1])


def _chain_pairs(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Consecutive node ids within each chain, as (m, 2) edges."""
    if not len(ids):
        return np.empty((0, 2), dtype=np.int64)
    inside = np.ones(len(ids) - 1, dtype=bool)
    inside[np.cumsum(lengths)[:-1] - 1] = False
    return np.stack((ids[:-1][inside], ids[1:][inside]), axis=1)


def _keep_original_order(edges: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Each undirected edge once: the original ones that are still there in their order and direction,
    then the others in the order given (so an unchanged skeleton gives back its exact edge list)."""
    original_key, edge_key = _row_keys(np.sort(original, axis=1), np.sort(edges, axis=1))
    size = max(int(original_key.max(initial=-1)), int(edge_key.max(initial=-1))) + 1
    present, in_original = np.zeros(size, dtype=bool), np.zeros(size, dtype=bool)
    present[edge_key] = True
    in_original[original_key] = True
    _, first_original = np.unique(original_key, return_index=True)
    first_original = np.sort(first_original)
    kept = first_original[present[original_key[first_original]]]
    _, first_new = np.unique(edge_key, return_index=True)
    first_new = np.sort(first_new)
    new = first_new[~in_original[edge_key[first_new]]]
    return np.concatenate((original[kept], edges[new])).reshape(-1, 2)


def _place_edges(trees: list[Tree], node_ids: np.ndarray, tree_position: np.ndarray, edges: np.ndarray) -> None:
    """Give each tree its edges; an edge between two trees is refused, naming both."""
    order = np.argsort(node_ids)
    source_tree = tree_position[_index_of(node_ids, order, edges[:, 0])]
    target_tree = tree_position[_index_of(node_ids, order, edges[:, 1])]
    across = np.nonzero(source_tree != target_tree)[0]
    if len(across):
        source, target = edges[across[0]].tolist()
        first, second = trees[source_tree[across[0]]].id, trees[target_tree[across[0]]].id
        raise WKWError(
            f"edge {source}-{target} joins tree {first} and tree {second}: WEBKNOSSOS keeps every edge inside one "
            "tree (a path of the trees layer spans both, or a node was given another tree id)"
        )
    by_tree = np.argsort(source_tree, kind="stable")
    bounds = np.cumsum(np.bincount(source_tree, minlength=len(trees)))[:-1]
    for tree, chunk in zip(trees, np.split(edges[by_tree], bounds)):
        tree.edges = [Edge(source, target) for source, target in chunk.tolist()]


def _add_comments(nml: Nml, features: Any, count: int, node_ids: np.ndarray, order: np.ndarray) -> None:
    """Comments and branchpoints in node order (NML order of these says nothing)."""
    ids = node_ids[order]
    comments = _text_column(features, "comment", count)[order]
    marked = _bool_column(features, "branchpoint", count, False)[order]
    times = _int_column(features, "branchpoint_time", count)[order]
    with_comment = comments != ""
    nml.comments = [Comment(node, text) for node, text in zip(ids[with_comment].tolist(), comments[with_comment])]
    nml.branchpoints = [
        Branchpoint(node, None if time < 0 else time)
        for node, time in zip(ids[marked].tolist(), times[marked].tolist())
    ]


# ---- bounding boxes


def _add_boxes(nml: Nml, template: Nml | None, data: Any, meta: Mapping) -> None:
    """User bounding boxes from the box shapes; the task box too when the layer has one (kind "task")."""
    shapes = list(data)
    count, features = len(shapes), meta.get("features")
    kinds = np.where(_text_column(features, "kind", count) == "task", "task", "user").astype(object)
    names = _text_column(features, "name", count)
    ids = _int_column(features, "box_id", count)
    visible = _bool_column(features, "is_visible", count, True)
    colors = meta.get("edge_color")
    colors = None if colors is None else np.asarray(colors, dtype=np.float64).reshape(-1, 4)
    originals = _template_boxes(template)
    user_ids = _box_ids(kinds, names, ids, originals)
    users, tasks = [], []
    for index, shape in enumerate(shapes):
        kind = kinds[index]
        original = originals.pop((kind, int(ids[index]), names[index]), None)
        topleft, size = _box_extent(_voxels(shape, meta))
        color = None if colors is None else _kept_color(colors[index], original)
        box_id = user_ids[index] if kind == "user" else (None if ids[index] < 0 else int(ids[index]))
        box = NmlBox(topleft, size, box_id, names[index] or None, color, bool(visible[index]))
        (tasks if kind == "task" else users).append(box)
    nml.parameters.user_bounding_boxes = users
    if tasks:
        if len(tasks) > 1:
            warnings.warn(f"{len(tasks)} task bounding boxes; only the first is kept", WKWWarning, stacklevel=3)
        nml.parameters.task_bounding_box = tasks[0]


def _template_boxes(template: Nml | None) -> dict[tuple[str, int, str], NmlBox]:
    """The template's boxes by (kind, id or -1, name or "")."""
    if template is None:
        return {}
    parameters = template.parameters
    boxes = [("user", box) for box in reversed(parameters.user_bounding_boxes)]  # reversed: the first one wins
    if parameters.task_bounding_box is not None:
        boxes.append(("task", parameters.task_bounding_box))
    return {(kind, -1 if box.id is None else box.id, box.name or ""): box for kind, box in boxes}


def _box_ids(kinds: np.ndarray, names: np.ndarray, ids: np.ndarray, originals: Mapping) -> list[int | None]:
    """User box ids: kept where unique, fresh for new boxes without one and for copies."""
    result: list[int | None] = []
    taken = {int(box_id) for box_id, kind in zip(ids, kinds) if kind != "task" and box_id >= 0}
    seen: set[int] = set()
    fresh = max(taken, default=-1) + 1
    for kind, name, box_id in zip(kinds.tolist(), names.tolist(), ids.tolist()):
        if kind == "task":
            result.append(None)
        elif box_id >= 0 and box_id not in seen:
            seen.add(box_id)
            result.append(box_id)
        elif box_id < 0 and (kind, box_id, name) in originals:
            result.append(None)  # an id-less box of the template stays so
        else:
            result.append(fresh)
            fresh += 1
    return result


def _box_extent(vertices: np.ndarray) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(topleft, size) of box vertices: (y, x) from their extent on voxel borders, z from vertices 1 and 3."""
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    y0, x0 = np.rint(low[1:] + 0.5).astype(int).tolist()
    height, width = np.rint(high[1:] - low[1:]).astype(int).tolist()
    z0, depth = int(np.rint(low[0])), int(np.rint(high[0] - low[0])) + 1
    if len(vertices) >= 3 and vertices[2, 0] >= vertices[0, 0] - 1:  # as drawn: depth 0 has z3 = z1 - 1
        z0, depth = int(np.rint(vertices[0, 0])), int(np.rint(vertices[2, 0] - vertices[0, 0])) + 1
    return (x0, y0, z0), (width, height, depth)


def _kept_color(color: np.ndarray, original: NmlBox | None) -> Color | None:
    """The box colour; the template's exact value (or its absence) when napari still shows that colour."""
    if original is not None and np.allclose(color, _box_color(original), rtol=0, atol=1e-6):
        return original.color
    red, green, blue, alpha = color.tolist()
    return (red, green, blue, alpha)


__all__ = ["bounding_box_layer_data", "chains", "nml_from_layers", "skeleton_layer_data"]
