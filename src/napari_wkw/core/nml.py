"""WEBKNOSSOS NML annotations: model, streaming parser and writer (headless).

NML is the XML format in which WEBKNOSSOS downloads and uploads annotations. One
``<things>`` root holds, in this order: ``<meta>`` tags (who wrote the file and when),
``<parameters>`` (dataset, voxel size and unit, camera, bounding boxes), one ``<thing>``
per skeleton tree with its ``<nodes>``, ``<edges>`` and optional ``<metadata>``, then
``<branchpoints>``, ``<comments>``, the nested tree ``<groups>``, and one ``<volume>`` per
volume annotation layer. The voxels of a volume layer live in a separate zip next to the
NML (``location``); the XML only carries its metadata: segments and segment groups.

Everything an NML says is in attributes, never in text. So the parser handles each element
at its start tag and drops it from the XML tree at its end tag: a skeleton with millions of
nodes is parsed without ever holding the XML tree, only the model built from it. Parsing
goes through defusedxml with DTDs forbidden: an NML never has one, and refusing them stops
entity bombs (billion laughs) and external entities (XXE) before anything expands or is read.

Every problem with a file is one :class:`DatasetFormatError` whose message starts with the
file name and says what is wrong, so shells can show it as it is.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO
from xml.etree.ElementTree import ParseError
from xml.parsers import expat
from xml.sax.saxutils import escape

import defusedxml
import defusedxml.ElementTree as defused_etree

from .errors import DatasetFormatError

Vec3f = tuple[float, float, float]
Color = tuple[float, float, float, float]  # r, g, b, a in 0..1
Vec3i = tuple[int, int, int]

VOLUME_FORMATS = ("wkw", "zarr3", "zarr")
"""Volume data formats WEBKNOSSOS writes into the ``format`` attribute of ``<volume>``."""

METADATA_KINDS = ("string", "number", "bool", "string_list")
"""Values of :attr:`MetadataEntry.kind`: stringValue, numberValue, boolValue, stringListValue-N."""

SUPPORTED_NML_MAJOR_VERSION = 1

# Long unit names as WEBKNOSSOS writes them into ``<scale unit=...>``, and the abbreviations
# it accepts (abbreviations are case sensitive: "mm" is not "Mm").
LENGTH_UNITS = (
    "yoctometer",
    "zeptometer",
    "attometer",
    "femtometer",
    "picometer",
    "nanometer",
    "micrometer",
    "millimeter",
    "centimeter",
    "decimeter",
    "meter",
    "hectometer",
    "kilometer",
    "megameter",
    "gigameter",
    "terameter",
    "petameter",
    "exameter",
    "zettameter",
    "yottameter",
    "angstrom",
    "inch",
    "foot",
    "yard",
    "mile",
    "parsec",
)
_UNIT_ABBREVIATIONS = {
    "ym": "yoctometer",
    "zm": "zeptometer",
    "am": "attometer",
    "fm": "femtometer",
    "pm": "picometer",
    "nm": "nanometer",
    "\u00b5m": "micrometer",  # micro sign
    "\u03bcm": "micrometer",  # greek small letter mu
    "um": "micrometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "dm": "decimeter",
    "m": "meter",
    "hm": "hectometer",
    "km": "kilometer",
    "Mm": "megameter",
    "Gm": "gigameter",
    "Tm": "terameter",
    "Pm": "petameter",
    "Em": "exameter",
    "Zm": "zettameter",
    "Ym": "yottameter",
    "\u00c5": "angstrom",
    "in": "inch",
    "ft": "foot",
    "yd": "yard",
    "mi": "mile",
    "pc": "parsec",
}
DEFAULT_UNIT = "nanometer"


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Node:
    """One skeleton node; slots keep a million of them affordable."""

    id: int
    position: Vec3f
    radius: float = 1.0
    rotation: Vec3f | None = None  # camera rotation when the node was placed (flight mode)
    in_vp: int | None = None  # viewport it was placed in: 0 XY, 1 YZ, 2 XZ, 3 3D
    in_mag: int | None = None  # rendered magnification when placed (a hint of precision)
    bit_depth: int | None = None
    interpolation: bool | None = None
    time: int | None = None  # creation time, Unix milliseconds
    extra: dict[str, str] = field(default_factory=dict)  # unknown attributes kept verbatim


@dataclass(slots=True)
class Edge:
    """An undirected connection between two nodes of the same tree."""

    source: int
    target: int


@dataclass
class MetadataEntry:
    """User metadata of a tree or segment: ``kind`` is one of :data:`METADATA_KINDS`.

    WEBKNOSSOS stores the key plus exactly one of ``stringValue``, ``numberValue``,
    ``boolValue`` or ``stringListValue-0..N`` attributes; an entry with only a key is an
    empty string list.
    """

    key: str
    kind: str
    value: str | float | bool | list[str]


@dataclass
class Tree:
    """A skeleton tree (``<thing>``); WEBKNOSSOS expects it to be connected."""

    id: int
    name: str = ""
    color: Color | None = None
    group_id: int | None = None
    type: str | None = None  # "DEFAULT" or "AGGLOMERATE"
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    metadata: list[MetadataEntry] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)  # e.g. isVisible, kept verbatim


@dataclass
class Comment:
    """Free text (Markdown in WEBKNOSSOS) attached to a node."""

    node: int
    content: str


@dataclass
class Branchpoint:
    """A node marked to come back to: WEBKNOSSOS jumps there with "J"."""

    node: int
    time: int | None = None


@dataclass
class Group:
    """A folder of trees (``<groups>`` under ``<things>``) or of segments (inside ``<volume>``)."""

    id: int
    name: str
    children: list[Group] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)  # e.g. isExpanded, kept verbatim


@dataclass
class NmlBox:
    """A user or task bounding box in voxels of mag 1: top-left corner and size."""

    topleft: Vec3i
    size: Vec3i
    id: int | None = None
    name: str | None = None
    color: Color | None = None
    is_visible: bool = True


@dataclass
class Segment:
    """Metadata of one segment id of a volume layer (its voxels are in the volume zip)."""

    id: int
    name: str | None = None
    color: Color | None = None
    anchor_position: Vec3i | None = None
    group_id: int | None = None
    created: int | None = None  # Unix milliseconds
    metadata: list[MetadataEntry] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Volume:
    """A volume annotation layer: where its data is and which segments it names."""

    id: int
    name: str | None = None
    location: str | None = None  # zip next to the NML; absent when data was skipped
    fallback_layer: str | None = None  # segmentation layer of the dataset it edits
    format: str | None = None  # one of VOLUME_FORMATS; absent in older NMLs (then wkw)
    largest_segment_id: int | None = None
    segments: list[Segment] = field(default_factory=list)
    segment_groups: list[Group] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)  # e.g. mappingName, kept verbatim


@dataclass
class Parameters:
    """``<parameters>``: which dataset, its voxel size, and where the user left the camera."""

    dataset_name: str = ""
    organization: str | None = None
    description: str | None = None
    dataset_id: str | None = None
    wk_url: str | None = None
    voxel_size: Vec3f = (1.0, 1.0, 1.0)
    unit: str = DEFAULT_UNIT
    offset: Vec3f | None = None  # deprecated by WEBKNOSSOS, always 0, kept for round trips
    time: int | None = None  # annotation creation, Unix milliseconds
    edit_position: Vec3f | None = None
    edit_rotation: Vec3f | None = None
    zoom_level: float | None = None
    active_node: int | None = None
    task_bounding_box: NmlBox | None = None
    user_bounding_boxes: list[NmlBox] = field(default_factory=list)


@dataclass
class Nml:
    """A whole NML file; ``groups`` are tree groups, segment groups live in each volume."""

    parameters: Parameters = field(default_factory=Parameters)
    trees: list[Tree] = field(default_factory=list)
    branchpoints: list[Branchpoint] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    volumes: list[Volume] = field(default_factory=list)
    meta: list[tuple[str, str]] = field(default_factory=list)

    @property
    def node_count(self) -> int:
        """Nodes over all trees."""
        return sum(len(tree.nodes) for tree in self.trees)

    @property
    def edge_count(self) -> int:
        """Edges over all trees."""
        return sum(len(tree.edges) for tree in self.trees)

    def tree(self, tree_id: int) -> Tree:
        """The tree with this id (KeyError if there is none)."""
        for tree in self.trees:
            if tree.id == tree_id:
                return tree
        raise KeyError(f"no tree with id {tree_id}")

    def meta_value(self, name: str) -> str | None:
        """Content of the first ``<meta name=...>`` tag, e.g. "writer" or "annotationId"."""
        return next((content for key, content in self.meta if key == name), None)


# --------------------------------------------------------------------------------------
# Attribute values
# --------------------------------------------------------------------------------------


class _Invalid(ValueError):
    """A problem in the content; the public functions prefix it with the file name."""


def normalize_unit(text: str) -> str:
    """The long unit name WEBKNOSSOS writes for ``text`` ("nm" -> "nanometer"); ValueError if unknown."""
    stripped = text.strip()
    if stripped in _UNIT_ABBREVIATIONS:
        return _UNIT_ABBREVIATIONS[stripped]
    if stripped.lower() in LENGTH_UNITS:
        return stripped.lower()
    raise _Invalid(f"unknown length unit {text!r} (expected e.g. nanometer, micrometer, nm, \u00b5m)")


def _int(text: str | None, what: str) -> int:
    if text is None:
        raise _Invalid(f"{what} is missing")
    try:
        return int(text)
    except ValueError:
        raise _Invalid(f"{what} is not an integer: {text!r}") from None


def _optional_int(text: str | None, what: str) -> int | None:
    return None if text is None or not text.strip() else _int(text, what)


def _whole(text: str | None, what: str) -> int:
    """An integer that may be written as a float ("12.0"), as some writers do for voxels."""
    if text is None:
        raise _Invalid(f"{what} is missing")
    try:
        return int(text)
    except ValueError:
        pass
    value = _float(text, what)
    if not value.is_integer():
        raise _Invalid(f"{what} is not a whole number: {text!r}")
    return int(value)


def _float(text: str | None, what: str) -> float:
    if text is None:
        raise _Invalid(f"{what} is missing")
    try:
        value = float(text)
    except ValueError:
        raise _Invalid(f"{what} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise _Invalid(f"{what} is not a finite number: {text!r}")
    return value


def _optional_float(text: str | None, what: str) -> float | None:
    return None if text is None or not text.strip() else _float(text, what)


def _bool(text: str, what: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise _Invalid(f"{what} is not true or false: {text!r}")


def _vec3(attrs: dict[str, str], keys: tuple[str, str, str], what: str, default: float | None = None) -> Vec3f:
    """Three floats; missing ones become ``default`` where WEBKNOSSOS is lenient too."""
    values = []
    for key in keys:
        text = attrs.get(key)
        if text is None and default is not None:
            values.append(default)
        else:
            values.append(_float(text, f"{what} {key}"))
    return (values[0], values[1], values[2])


_COLOR_KEYS = ("color.r", "color.g", "color.b", "color.a")


def _color(attrs: dict[str, str], what: str) -> Color | None:
    """RGBA, or None where WEBKNOSSOS writes no colour (missing or empty attributes)."""
    texts = [attrs.get(key) for key in _COLOR_KEYS]
    if all(text is None or not text.strip() for text in texts):
        return None
    r, g, b, a = (_float(text, f"{what} {key}") for key, text in zip(_COLOR_KEYS, texts))
    return (r, g, b, a)


def _extra(attrs: dict[str, str], known: frozenset[str]) -> dict[str, str]:
    return {key: value for key, value in attrs.items() if key not in known}


_NODE_KEYS = frozenset(
    ("id", "radius", "x", "y", "z", "rotX", "rotY", "rotZ", "inVp", "inMag", "bitDepth", "interpolation", "time")
)
_TREE_KEYS = frozenset(("id", "name", "groupId", "type", *_COLOR_KEYS))
_GROUP_KEYS = frozenset(("id", "name"))
_VOLUME_KEYS = frozenset(("id", "name", "location", "fallbackLayer", "format", "largestSegmentId"))
_ANCHOR_KEYS = ("anchorPositionX", "anchorPositionY", "anchorPositionZ")
_SEGMENT_KEYS = frozenset(("id", "name", "created", "groupId", *_ANCHOR_KEYS, *_COLOR_KEYS))
_STRING_LIST_KEY = re.compile(r"stringListValue-(\d+)")


_PLAIN_BOOLS = {None: None, "true": True, "false": False}


def _parse_node(attrs: dict[str, str], tree_id: int) -> Node:
    """Fast path for the usual, well-formed node; anything else goes through the checked parser.

    Nodes are nearly all of a big NML, and building error messages in advance for every
    attribute would triple the parse time. This path uses the same conversions as
    :func:`_parse_node_checked` and hands over whenever one fails or a value is unusual,
    so both give the same node or the checked one explains the problem.
    """
    get = attrs.get
    try:
        x, y, z = float(attrs["x"]), float(attrs["y"]), float(attrs["z"])
        radius_text = get("radius")
        radius = 1.0 if radius_text is None else float(radius_text)
        rotation_texts = (get("rotX"), get("rotY"), get("rotZ"))
        if rotation_texts == (None, None, None):
            rotation, rotation_sum = None, 0.0
        else:
            rotation = (float(rotation_texts[0]), float(rotation_texts[1]), float(rotation_texts[2]))  # None: TypeError
            rotation_sum = rotation[0] + rotation[1] + rotation[2]
        in_vp, in_mag, bit_depth, time = get("inVp"), get("inMag"), get("bitDepth"), get("time")
        node = Node(
            id=int(attrs["id"]),
            position=(x, y, z),
            radius=radius,
            rotation=rotation,
            in_vp=None if in_vp is None else int(in_vp),
            in_mag=None if in_mag is None else int(in_mag),
            bit_depth=None if bit_depth is None else int(bit_depth),
            interpolation=_PLAIN_BOOLS[get("interpolation")],
            time=None if time is None else int(time),
            extra={} if attrs.keys() <= _NODE_KEYS else _extra(attrs, _NODE_KEYS),
        )
    except (KeyError, ValueError, TypeError):
        return _parse_node_checked(attrs, tree_id)
    if not math.isfinite(x + y + z + radius + rotation_sum):  # any inf or nan makes the sum one
        return _parse_node_checked(attrs, tree_id)
    return node


def _parse_node_checked(attrs: dict[str, str], tree_id: int) -> Node:
    """Parse one node attribute by attribute, saying exactly which one is wrong."""
    node_id = _int(attrs.get("id"), f"tree {tree_id}: node id")
    where = f"tree {tree_id}, node {node_id}:"
    get = attrs.get
    rotation = None
    if get("rotX") is not None or get("rotY") is not None or get("rotZ") is not None:
        rotation = _vec3(attrs, ("rotX", "rotY", "rotZ"), where, default=0.0)
    radius = get("radius")
    interpolation = get("interpolation")
    return Node(
        id=node_id,
        position=_vec3(attrs, ("x", "y", "z"), where),
        radius=1.0 if radius is None else _float(radius, f"{where} radius"),
        rotation=rotation,
        in_vp=_optional_int(get("inVp"), f"{where} inVp"),
        in_mag=_optional_int(get("inMag"), f"{where} inMag"),
        bit_depth=_optional_int(get("bitDepth"), f"{where} bitDepth"),
        interpolation=None if interpolation is None else _bool(interpolation, f"{where} interpolation"),
        time=_optional_int(get("time"), f"{where} time"),
        extra=_extra(attrs, _NODE_KEYS),
    )


def _parse_metadata_entry(attrs: dict[str, str], owner: str) -> MetadataEntry:
    key = attrs.get("key")
    if key is None:
        raise _Invalid(f"{owner}: a metadata entry has no key")
    what = f"{owner}: metadata entry {key!r}"
    if "stringValue" in attrs:
        return MetadataEntry(key, "string", attrs["stringValue"])
    if "numberValue" in attrs:
        return MetadataEntry(key, "number", _float(attrs["numberValue"], f"{what} numberValue"))
    if "boolValue" in attrs:
        return MetadataEntry(key, "bool", _bool(attrs["boolValue"], f"{what} boolValue"))
    indexed = []
    for name, value in attrs.items():
        match = _STRING_LIST_KEY.fullmatch(name)
        if match:
            indexed.append((int(match.group(1)), value))
    return MetadataEntry(key, "string_list", [value for _, value in sorted(indexed)])


def _parse_box(attrs: dict[str, str], what: str) -> NmlBox:
    """A bounding box; only the corner and size are required, as in WEBKNOSSOS."""
    topleft = tuple(_whole(attrs.get(key), f"{what} {key}") for key in ("topLeftX", "topLeftY", "topLeftZ"))
    size = tuple(_whole(attrs.get(key), f"{what} {key}") for key in ("width", "height", "depth"))
    visible = attrs.get("isVisible")
    name = attrs.get("name")
    return NmlBox(
        topleft=(topleft[0], topleft[1], topleft[2]),
        size=(size[0], size[1], size[2]),
        id=_optional_int(attrs.get("id"), f"{what} id"),
        name=name if name else None,
        color=_color(attrs, what),
        is_visible=True if visible is None or not visible.strip() else _bool(visible, f"{what} isVisible"),
    )


# --------------------------------------------------------------------------------------
# Parser: one handler per (parent element, element); anything else is skipped with its subtree
# --------------------------------------------------------------------------------------

_IGNORED = "#ignored"


class _NmlBuilder:
    """Builds an :class:`Nml` from start/end tags and checks what WEBKNOSSOS would refuse."""

    def __init__(self) -> None:
        self.nml = Nml()
        self.root_seen = False
        self.parameters_seen = False
        self.scale_seen = False
        self.tree: Tree | None = None
        self.tree_node_ids: set[int] = set()
        self.all_node_ids: set[int] = set()
        self.tree_ids: set[int] = set()
        self.volume: Volume | None = None
        self.segment: Segment | None = None
        self.metadata_target: tuple[list[MetadataEntry], str] | None = None
        self.group_roots: list[Group] = []
        self.open_groups: list[Group] = []
        self.handlers: dict[tuple[str, str], Callable[[dict[str, str]], None]] = {
            ("things", "meta"): self._meta,
            ("things", "parameters"): self._parameters,
            ("things", "thing"): self._thing,
            ("things", "branchpoints"): _container,
            ("things", "comments"): _container,
            ("things", "groups"): self._tree_groups,
            ("things", "volume"): self._volume,
            ("parameters", "experiment"): self._experiment,
            ("parameters", "scale"): self._scale,
            ("parameters", "offset"): self._offset,
            ("parameters", "time"): self._time,
            ("parameters", "editPosition"): self._edit_position,
            ("parameters", "editRotation"): self._edit_rotation,
            ("parameters", "zoomLevel"): self._zoom_level,
            ("parameters", "activeNode"): self._active_node,
            ("parameters", "userBoundingBox"): self._user_bounding_box,
            ("parameters", "taskBoundingBox"): self._task_bounding_box,
            ("thing", "nodes"): _container,
            ("thing", "edges"): _container,
            ("thing", "metadata"): self._tree_metadata,
            ("nodes", "node"): self._node,
            ("edges", "edge"): self._edge,
            ("metadata", "metadataEntry"): self._metadata_entry,
            ("branchpoints", "branchpoint"): self._branchpoint,
            ("comments", "comment"): self._comment,
            ("groups", "group"): self._top_group,
            ("group", "group"): self._nested_group,
            ("volume", "segments"): _container,
            ("volume", "groups"): self._segment_groups,
            ("segments", "segment"): self._segment,
            ("segment", "metadata"): self._segment_metadata,
        }
        self.end_handlers: dict[str, Callable[[], None]] = {
            "thing": self._end_thing,
            "group": self._end_group,
            "segment": self._end_segment,
            "volume": self._end_volume,
        }

    def start(self, tag: str, attrs: dict[str, str], parent: str | None) -> str:
        """Handle a start tag; returns the name to put on the context stack."""
        if parent is None:
            self._root(tag, attrs)
            return tag
        handler = self.handlers.get((parent, tag))
        if handler is None:
            return _IGNORED
        handler(attrs)
        return tag

    def end(self, tag: str) -> None:
        handler = self.end_handlers.get(tag)
        if handler is not None:
            handler()

    def finish(self) -> Nml:
        if not self.parameters_seen:
            raise _Invalid("no <parameters> element (WEBKNOSSOS needs it for the dataset and voxel size)")
        if not self.scale_seen:
            raise _Invalid("<parameters> has no <scale> element (the voxel size)")
        return self.nml

    # root and top level

    def _root(self, tag: str, attrs: dict[str, str]) -> None:
        self.root_seen = True
        if tag != "things":
            raise _Invalid(f"root element is <{tag}>, an NML file has <things>")
        version = attrs.get("version")
        if version is not None:
            major = version.strip().split(".")[0]
            if not major.isdigit() or int(major) != SUPPORTED_NML_MAJOR_VERSION:
                raise _Invalid(f"unknown NML version {version} (only version {SUPPORTED_NML_MAJOR_VERSION} is known)")

    def _meta(self, attrs: dict[str, str]) -> None:
        self.nml.meta.append((attrs.get("name", ""), attrs.get("content", "")))

    def _parameters(self, attrs: dict[str, str]) -> None:
        if self.parameters_seen:
            raise _Invalid("more than one <parameters> element")
        self.parameters_seen = True

    # parameters

    def _experiment(self, attrs: dict[str, str]) -> None:
        parameters = self.nml.parameters
        parameters.dataset_name = attrs.get("name", "")
        parameters.organization = attrs.get("organization")
        parameters.description = attrs.get("description")
        parameters.dataset_id = attrs.get("datasetId")
        parameters.wk_url = attrs.get("wkUrl")

    def _scale(self, attrs: dict[str, str]) -> None:
        texts = [attrs.get(key) for key in ("x", "y", "z")]
        try:
            voxel_size = tuple(_float(text, "voxel size") for text in texts)
        except _Invalid:
            voxel_size = ()
        if len(voxel_size) != 3 or min(voxel_size) <= 0:
            shown = ", ".join(f"{key}={text!r}" for key, text in zip("xyz", texts))
            raise _Invalid(f"the voxel size in <scale> must be three positive numbers, got {shown}")
        self.nml.parameters.voxel_size = (voxel_size[0], voxel_size[1], voxel_size[2])
        unit = attrs.get("unit")
        self.nml.parameters.unit = DEFAULT_UNIT if unit is None or not unit.strip() else normalize_unit(unit)
        self.scale_seen = True

    def _offset(self, attrs: dict[str, str]) -> None:
        self.nml.parameters.offset = _vec3(attrs, ("x", "y", "z"), "<offset>", default=0.0)

    def _time(self, attrs: dict[str, str]) -> None:
        self.nml.parameters.time = _optional_int(attrs.get("ms"), "<time> ms")

    def _edit_position(self, attrs: dict[str, str]) -> None:
        self.nml.parameters.edit_position = _vec3(attrs, ("x", "y", "z"), "<editPosition>", default=0.0)

    def _edit_rotation(self, attrs: dict[str, str]) -> None:
        self.nml.parameters.edit_rotation = _vec3(attrs, ("xRot", "yRot", "zRot"), "<editRotation>", default=0.0)

    def _zoom_level(self, attrs: dict[str, str]) -> None:
        self.nml.parameters.zoom_level = _optional_float(attrs.get("zoom"), "<zoomLevel> zoom")

    def _active_node(self, attrs: dict[str, str]) -> None:
        self.nml.parameters.active_node = _optional_int(attrs.get("id"), "<activeNode> id")

    def _user_bounding_box(self, attrs: dict[str, str]) -> None:
        boxes = self.nml.parameters.user_bounding_boxes
        boxes.append(_parse_box(attrs, f"user bounding box {len(boxes) + 1}"))

    def _task_bounding_box(self, attrs: dict[str, str]) -> None:
        self.nml.parameters.task_bounding_box = _parse_box(attrs, "task bounding box")

    # trees

    def _thing(self, attrs: dict[str, str]) -> None:
        tree_id = _int(attrs.get("id"), "a tree (<thing>) id")
        if tree_id in self.tree_ids:
            raise _Invalid(f"tree id {tree_id} appears more than once")
        self.tree_ids.add(tree_id)
        what = f"tree {tree_id}:"
        tree_type = attrs.get("type")
        self.tree = Tree(
            id=tree_id,
            name=attrs.get("name", ""),
            color=_color(attrs, what),
            group_id=_optional_int(attrs.get("groupId"), f"{what} groupId"),
            type=tree_type if tree_type else None,
            extra=_extra(attrs, _TREE_KEYS),
        )
        self.tree_node_ids = set()
        self.nml.trees.append(self.tree)

    def _node(self, attrs: dict[str, str]) -> None:
        tree = self.tree
        assert tree is not None  # only reachable inside <thing><nodes>
        node = _parse_node(attrs, tree.id)
        if node.id in self.all_node_ids:
            raise _Invalid(self._duplicate_node_message(node.id, tree))
        self.all_node_ids.add(node.id)
        self.tree_node_ids.add(node.id)
        tree.nodes.append(node)

    def _duplicate_node_message(self, node_id: int, tree: Tree) -> str:
        if node_id in self.tree_node_ids:
            return f"node id {node_id} appears twice in tree {tree.id} (WEBKNOSSOS needs unique node ids)"
        first = next(other.id for other in self.nml.trees if any(node.id == node_id for node in other.nodes))
        return f"node id {node_id} appears in tree {first} and in tree {tree.id} (WEBKNOSSOS needs unique node ids)"

    def _edge(self, attrs: dict[str, str]) -> None:
        tree = self.tree
        assert tree is not None
        what = f"tree {tree.id}: edge"
        tree.edges.append(
            Edge(_int(attrs.get("source"), f"{what} source"), _int(attrs.get("target"), f"{what} target"))
        )

    def _end_thing(self) -> None:
        """Edges may only join nodes of their own tree; checked once all nodes are known."""
        tree = self.tree
        assert tree is not None
        for edge in tree.edges:
            for end in (edge.source, edge.target):
                if end not in self.tree_node_ids:
                    raise _Invalid(
                        f"tree {tree.id}: edge {edge.source}-{edge.target} refers to node {end}, "
                        "which is not in this tree"
                    )
        self.tree = None
        self.tree_node_ids = set()

    def _tree_metadata(self, attrs: dict[str, str]) -> None:
        assert self.tree is not None
        self.metadata_target = (self.tree.metadata, f"tree {self.tree.id}")

    def _segment_metadata(self, attrs: dict[str, str]) -> None:
        assert self.segment is not None
        self.metadata_target = (self.segment.metadata, f"segment {self.segment.id}")

    def _metadata_entry(self, attrs: dict[str, str]) -> None:
        assert self.metadata_target is not None
        entries, owner = self.metadata_target
        entries.append(_parse_metadata_entry(attrs, owner))

    def _branchpoint(self, attrs: dict[str, str]) -> None:
        self.nml.branchpoints.append(
            Branchpoint(_int(attrs.get("id"), "branchpoint id"), _optional_int(attrs.get("time"), "branchpoint time"))
        )

    def _comment(self, attrs: dict[str, str]) -> None:
        self.nml.comments.append(Comment(_int(attrs.get("node"), "comment node"), attrs.get("content", "")))

    # groups (tree groups and segment groups share the element)

    def _tree_groups(self, attrs: dict[str, str]) -> None:
        self.group_roots = self.nml.groups

    def _segment_groups(self, attrs: dict[str, str]) -> None:
        assert self.volume is not None
        self.group_roots = self.volume.segment_groups

    def _top_group(self, attrs: dict[str, str]) -> None:
        self._open_group(attrs, self.group_roots)

    def _nested_group(self, attrs: dict[str, str]) -> None:
        self._open_group(attrs, self.open_groups[-1].children)

    def _open_group(self, attrs: dict[str, str], siblings: list[Group]) -> None:
        group = Group(
            id=_int(attrs.get("id"), f"group {attrs.get('name', '')!r} id"),
            name=attrs.get("name", ""),
            extra=_extra(attrs, _GROUP_KEYS),
        )
        siblings.append(group)
        self.open_groups.append(group)

    def _end_group(self) -> None:
        self.open_groups.pop()

    # volumes

    def _volume(self, attrs: dict[str, str]) -> None:
        volume_id = _int(attrs.get("id"), "volume id")
        what = f"volume {volume_id}:"
        data_format = attrs.get("format")
        if data_format is not None and data_format not in VOLUME_FORMATS:
            raise _Invalid(
                f"{what} unknown volume data format {data_format!r} (expected one of {', '.join(VOLUME_FORMATS)})"
            )
        self.volume = Volume(
            id=volume_id,
            name=attrs.get("name"),
            location=attrs.get("location"),
            fallback_layer=attrs.get("fallbackLayer"),
            format=data_format,
            largest_segment_id=_optional_int(attrs.get("largestSegmentId"), f"{what} largestSegmentId"),
            extra=_extra(attrs, _VOLUME_KEYS),
        )
        self.nml.volumes.append(self.volume)

    def _segment(self, attrs: dict[str, str]) -> None:
        assert self.volume is not None
        segment_id = _int(attrs.get("id"), f"volume {self.volume.id}: segment id")
        what = f"volume {self.volume.id}, segment {segment_id}:"
        anchor = None
        if any(attrs.get(key) is not None for key in _ANCHOR_KEYS):
            x, y, z = (_whole(attrs.get(key), f"{what} {key}") for key in _ANCHOR_KEYS)
            anchor = (x, y, z)
        self.segment = Segment(
            id=segment_id,
            name=attrs.get("name"),
            color=_color(attrs, what),
            anchor_position=anchor,
            group_id=_optional_int(attrs.get("groupId"), f"{what} groupId"),
            created=_optional_int(attrs.get("created"), f"{what} created"),
            extra=_extra(attrs, _SEGMENT_KEYS),
        )
        self.volume.segments.append(self.segment)

    def _end_segment(self) -> None:
        self.segment = None

    def _end_volume(self) -> None:
        self.volume = None


def _container(attrs: dict[str, str]) -> None:
    """Elements that only hold others (``<nodes>``, ``<comments>`` ...): nothing to read."""


def _stream_into(stream: IO[bytes], builder: _NmlBuilder) -> None:
    """Feed start/end tags to the builder, dropping each element once it has ended."""
    elements: list[Any] = []  # open elements, to detach finished children from their parent
    context: list[str] = []  # their tags, or _IGNORED for skipped subtrees
    events = defused_etree.iterparse(
        stream, events=("start", "end"), forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    for event, element in events:
        if event == "start":
            context.append(builder.start(element.tag, element.attrib, context[-1] if context else None))
            elements.append(element)
        else:
            tag = context.pop()
            elements.pop()
            if tag != _IGNORED:
                builder.end(tag)
            if elements:
                # finished siblings were removed before, so this is the first child: O(1)
                elements[-1].remove(element)


_NO_ELEMENTS = expat.errors.codes[expat.errors.XML_ERROR_NO_ELEMENTS]


def _describe_xml_error(error: ParseError, root_seen: bool) -> str:
    code = getattr(error, "code", None)
    if code == _NO_ELEMENTS and not root_seen:
        return "empty file (no XML element in it)"
    reason = expat.ErrorString(code) if code is not None else str(error).split(": line")[0]
    line, column = getattr(error, "position", (0, -1))
    return f"not valid XML (line {line}, column {column + 1}: {reason})"


def _describe_forbidden(error: defusedxml.DefusedXmlException) -> str:
    if isinstance(error, defusedxml.DTDForbidden):
        what = "a document type declaration (<!DOCTYPE ...>)"
    elif isinstance(error, defusedxml.EntitiesForbidden):
        what = "an entity declaration (<!ENTITY ...>)"
    else:
        what = "a reference to an external resource"
    return (
        f"refused: contains {what}; NML files never do, and such declarations can expand "
        "into huge documents or read other files"
    )


def _label(source: object, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        return path if isinstance(path, str) else os.fsdecode(path)
    file_name = getattr(source, "name", None)
    return file_name if isinstance(file_name, str) else "NML data"


@contextmanager
def _open_source(source: str | os.PathLike | bytes | BinaryIO) -> Iterator[IO[bytes]]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as stream:
            yield stream
    else:
        yield source


def read_nml(source: str | os.PathLike | bytes | BinaryIO, name: str | None = None) -> Nml:
    """Parse an NML file, its bytes or a binary stream.

    ``name`` labels error messages (default: the path, or the stream's name). Every problem
    raises one :class:`DatasetFormatError` starting with that label.
    """
    label = _label(source, name)
    builder = _NmlBuilder()
    try:
        with _open_source(source) as stream:
            _stream_into(stream, builder)
        return builder.finish()
    except _Invalid as problem:
        raise DatasetFormatError(f"{label}: {problem}") from None
    except ParseError as error:
        raise DatasetFormatError(f"{label}: {_describe_xml_error(error, builder.root_seen)}") from None
    except defusedxml.DefusedXmlException as error:
        raise DatasetFormatError(f"{label}: {_describe_forbidden(error)}") from None
    except OSError as error:
        raise DatasetFormatError(f"{label}: cannot be read ({error.strerror or error})") from None


# --------------------------------------------------------------------------------------
# Writer: line by line in WEBKNOSSOS's element order, so big skeletons stream out
# --------------------------------------------------------------------------------------

_ATTRIBUTE_ENTITIES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
# characters XML 1.0 cannot carry at all, not even as character references
_NOT_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_XML_NAME = re.compile(r"[^\W\d][\w.\-]*")


def _text(value: str) -> str:
    """An attribute value: escaped so that names, comments and newlines survive a round trip."""
    bad = _NOT_IN_XML.search(value)
    if bad:
        raise _Invalid(f"text {value!r} contains the character U+{ord(bad.group()):04X}, which XML cannot store")
    return escape(value, _ATTRIBUTE_ENTITIES)


def _finite(value: float) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise _Invalid(f"{value!r} cannot be written: NML numbers must be finite")
    return number


def _num(value: float) -> str:
    """Ids, times and positions: whole numbers without ".0" (x="3365"), others with repr precision."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    number = _finite(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _real(value: float) -> str:
    """Quantities WEBKNOSSOS writes as doubles (colour, radius, rotation, voxel size): repr, "1.0"."""
    return repr(_finite(value))


def _bool_text(value: bool) -> str:
    return "true" if value else "false"


Attributes = list[tuple[str, str | None]]  # name, value already formatted; None = left out


def _tag(depth: int, name: str, attributes: Attributes, closed: bool = True) -> str:
    parts = [f'{key}="{value}"' for key, value in attributes if value is not None]
    inner = " ".join([name, *parts])
    return f"{'  ' * depth}<{inner}{' />' if closed else '>'}\n"


def _end(depth: int, name: str) -> str:
    return f"{'  ' * depth}</{name}>\n"


def _block(depth: int, name: str, children: list[str], attributes: Attributes | None = None) -> Iterator[str]:
    """``<name>children</name>``, or ``<name />`` when empty, as WEBKNOSSOS writes it."""
    if not children:
        yield _tag(depth, name, attributes or [])
        return
    yield _tag(depth, name, attributes or [], closed=False)
    yield from children
    yield _end(depth, name)


def _extra_attributes(extra: dict[str, str], known: frozenset[str], owner: str) -> Attributes:
    attributes: Attributes = []
    for key, value in extra.items():
        if key in known or not _XML_NAME.fullmatch(key):
            raise _Invalid(f"{owner}: extra attribute {key!r} clashes with a modelled one or is no XML name")
        attributes.append((key, _text(value)))
    return attributes


def _color_attributes(color: Color | None) -> Attributes:
    if color is None:
        return []
    return [(key, _real(value)) for key, value in zip(_COLOR_KEYS, color)]


def _optional(value: float | None) -> str | None:
    return None if value is None else _num(value)


def _optional_text(value: str | None) -> str | None:
    return None if value is None else _text(value)


def _vec3_attributes(
    keys: tuple[str, str, str], values: Iterable[float], as_text: Callable[[float], str] = _num
) -> Attributes:
    return [(key, as_text(value)) for key, value in zip(keys, values)]


def _box_attributes(box: NmlBox, with_visibility: bool) -> Attributes:
    attributes: Attributes = [("id", _optional(box.id)), ("name", _optional_text(box.name))]
    if with_visibility or not box.is_visible:
        attributes.append(("isVisible", _bool_text(box.is_visible)))
    attributes += _color_attributes(box.color)
    attributes += _vec3_attributes(("topLeftX", "topLeftY", "topLeftZ"), box.topleft)
    attributes += _vec3_attributes(("width", "height", "depth"), box.size)
    return attributes


def _parameter_lines(parameters: Parameters) -> Iterator[str]:
    depth = 2
    yield _tag(1, "parameters", [], closed=False)
    yield _tag(
        depth,
        "experiment",
        [
            ("name", _text(parameters.dataset_name)),
            ("organization", _optional_text(parameters.organization)),
            ("description", _optional_text(parameters.description)),
            ("datasetId", _optional_text(parameters.dataset_id)),
            ("wkUrl", _optional_text(parameters.wk_url)),
        ],
    )
    if len(parameters.voxel_size) != 3 or min(parameters.voxel_size) <= 0:
        raise _Invalid(f"the voxel size must be three positive numbers, not {parameters.voxel_size!r}")
    unit = normalize_unit(parameters.unit)
    yield _tag(depth, "scale", [*_vec3_attributes(("x", "y", "z"), parameters.voxel_size, _real), ("unit", unit)])
    if parameters.offset is not None:
        yield _tag(depth, "offset", _vec3_attributes(("x", "y", "z"), parameters.offset))
    if parameters.time is not None:
        yield _tag(depth, "time", [("ms", _num(parameters.time))])
    if parameters.edit_position is not None:
        yield _tag(depth, "editPosition", _vec3_attributes(("x", "y", "z"), parameters.edit_position))
    if parameters.edit_rotation is not None:
        yield _tag(depth, "editRotation", _vec3_attributes(("xRot", "yRot", "zRot"), parameters.edit_rotation, _real))
    if parameters.zoom_level is not None:
        yield _tag(depth, "zoomLevel", [("zoom", _real(parameters.zoom_level))])
    if parameters.active_node is not None:
        yield _tag(depth, "activeNode", [("id", _num(parameters.active_node))])
    for box in parameters.user_bounding_boxes:
        yield _tag(depth, "userBoundingBox", _box_attributes(box, with_visibility=True))
    if parameters.task_bounding_box is not None:
        yield _tag(depth, "taskBoundingBox", _box_attributes(parameters.task_bounding_box, with_visibility=False))
    yield _end(1, "parameters")


def _node_line(node: Node) -> str:
    """One ``<node />`` line, built directly: nodes are nearly all of a big NML."""
    x, y, z = node.position
    line = f'      <node id="{_num(node.id)}" radius="{_real(node.radius)}" x="{_num(x)}" y="{_num(y)}" z="{_num(z)}"'
    if node.rotation is not None:
        rot_x, rot_y, rot_z = node.rotation
        line += f' rotX="{_real(rot_x)}" rotY="{_real(rot_y)}" rotZ="{_real(rot_z)}"'
    if node.in_vp is not None:
        line += f' inVp="{_num(node.in_vp)}"'
    if node.in_mag is not None:
        line += f' inMag="{_num(node.in_mag)}"'
    if node.bit_depth is not None:
        line += f' bitDepth="{_num(node.bit_depth)}"'
    if node.interpolation is not None:
        line += f' interpolation="{_bool_text(node.interpolation)}"'
    if node.time is not None:
        line += f' time="{_num(node.time)}"'
    for key, value in _extra_attributes(node.extra, _NODE_KEYS, f"node {node.id}") if node.extra else ():
        line += f' {key}="{value}"'
    return line + " />\n"


def _metadata_line(depth: int, entry: MetadataEntry) -> str:
    attributes: Attributes = [("key", _text(entry.key))]
    if entry.kind == "string" and isinstance(entry.value, str):
        attributes.append(("stringValue", _text(entry.value)))
    elif entry.kind == "number" and isinstance(entry.value, (int, float)) and not isinstance(entry.value, bool):
        attributes.append(("numberValue", _real(entry.value)))
    elif entry.kind == "bool" and isinstance(entry.value, bool):
        attributes.append(("boolValue", _bool_text(entry.value)))
    elif entry.kind == "string_list" and isinstance(entry.value, list):
        attributes += [(f"stringListValue-{index}", _text(item)) for index, item in enumerate(entry.value)]
    else:
        raise _Invalid(
            f"metadata entry {entry.key!r}: kind {entry.kind!r} with value {entry.value!r} "
            f"(kind must be one of {', '.join(METADATA_KINDS)} and match the value)"
        )
    return _tag(depth, "metadataEntry", attributes)


def _tree_lines(tree: Tree) -> Iterator[str]:
    attributes: Attributes = [("id", str(tree.id)), *_color_attributes(tree.color), ("name", _text(tree.name))]
    attributes += [("groupId", _optional(tree.group_id)), ("type", _optional_text(tree.type))]
    attributes += _extra_attributes(tree.extra, _TREE_KEYS, f"tree {tree.id}")
    yield _tag(1, "thing", attributes, closed=False)
    if tree.nodes:
        yield _tag(2, "nodes", [], closed=False)
        for node in tree.nodes:
            yield _node_line(node)
        yield _end(2, "nodes")
    else:
        yield _tag(2, "nodes", [])
    yield from _block(
        2, "edges", [_tag(3, "edge", [("source", str(e.source)), ("target", str(e.target))]) for e in tree.edges]
    )
    if tree.metadata:
        yield from _block(2, "metadata", [_metadata_line(3, entry) for entry in tree.metadata])
    yield _end(1, "thing")


def _group_lines(depth: int, group: Group) -> Iterator[str]:
    attributes: Attributes = [("name", _text(group.name)), ("id", str(group.id))]
    attributes += _extra_attributes(group.extra, _GROUP_KEYS, f"group {group.id}")
    children = [line for child in group.children for line in _group_lines(depth + 1, child)]
    yield from _block(depth, "group", children, attributes)


def _segment_lines(segment: Segment) -> Iterator[str]:
    attributes: Attributes = [
        ("id", str(segment.id)),
        ("name", _optional_text(segment.name)),
        ("created", _optional(segment.created)),
    ]
    if segment.anchor_position is not None:
        attributes += _vec3_attributes(_ANCHOR_KEYS, segment.anchor_position)
    attributes += _color_attributes(segment.color)
    attributes.append(("groupId", _optional(segment.group_id)))
    attributes += _extra_attributes(segment.extra, _SEGMENT_KEYS, f"segment {segment.id}")
    metadata = [_metadata_line(5, entry) for entry in segment.metadata]
    yield from _block(3, "segment", list(_block(4, "metadata", metadata)) if metadata else [], attributes)


def _volume_lines(volume: Volume) -> Iterator[str]:
    if volume.format is not None and volume.format not in VOLUME_FORMATS:
        raise _Invalid(f"volume {volume.id}: unknown volume data format {volume.format!r}")
    attributes: Attributes = [
        ("id", str(volume.id)),
        ("name", _optional_text(volume.name)),
        ("location", _optional_text(volume.location)),
        ("fallbackLayer", _optional_text(volume.fallback_layer)),
        ("format", volume.format),
        ("largestSegmentId", _optional(volume.largest_segment_id)),
    ]
    attributes += _extra_attributes(volume.extra, _VOLUME_KEYS, f"volume {volume.id}")
    yield _tag(1, "volume", attributes, closed=False)
    yield from _block(2, "segments", [line for segment in volume.segments for line in _segment_lines(segment)])
    yield from _block(2, "groups", [line for group in volume.segment_groups for line in _group_lines(3, group)])
    yield _end(1, "volume")


def _nml_lines(nml: Nml) -> Iterator[str]:
    """The whole file, line by line, in the order WEBKNOSSOS writes it."""
    yield '<?xml version="1.0" encoding="UTF-8"?>\n'
    yield "<things>\n"
    for name, content in nml.meta:
        yield _tag(1, "meta", [("name", _text(name)), ("content", _text(content))])
    yield from _parameter_lines(nml.parameters)
    for tree in nml.trees:
        yield from _tree_lines(tree)
    yield from _block(
        1,
        "branchpoints",
        [_tag(2, "branchpoint", [("id", str(b.node)), ("time", _optional(b.time))]) for b in nml.branchpoints],
    )
    yield from _block(
        1,
        "comments",
        [_tag(2, "comment", [("node", str(c.node)), ("content", _text(c.content))]) for c in nml.comments],
    )
    yield from _block(1, "groups", [line for group in nml.groups for line in _group_lines(2, group)])
    for volume in nml.volumes:
        yield from _volume_lines(volume)
    yield "</things>\n"


_LINES_PER_WRITE = 8192


def _write_lines(nml: Nml, stream: IO[bytes]) -> None:
    batch: list[str] = []
    for line in _nml_lines(nml):
        batch.append(line)
        if len(batch) >= _LINES_PER_WRITE:
            stream.write("".join(batch).encode("utf-8"))
            batch.clear()
    stream.write("".join(batch).encode("utf-8"))


def write_nml(nml: Nml, target: str | os.PathLike | BinaryIO) -> None:
    """Write ``nml`` as UTF-8 in WEBKNOSSOS's layout; the same model always gives the same bytes.

    A path is written through a temporary file in the same folder and renamed at the end,
    so a failed write never leaves half an NML behind.
    """
    label = _label(target, None)
    try:
        if isinstance(target, (str, os.PathLike)):
            _write_file_atomically(nml, label)
        else:
            _write_lines(nml, target)
    except _Invalid as problem:
        raise DatasetFormatError(f"{label}: {problem}") from None
    except OSError as error:
        raise DatasetFormatError(f"{label}: cannot be written ({error.strerror or error})") from None


def _write_file_atomically(nml: Nml, path: str) -> None:
    # open() rather than mkstemp: the file gets the usual permissions, not 0600
    temporary = f"{path}.{os.getpid()}.partial"
    try:
        with open(temporary, "xb") as stream:
            _write_lines(nml, stream)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def nml_bytes(nml: Nml) -> bytes:
    """The file :func:`write_nml` would write, as bytes."""
    buffer = io.BytesIO()
    write_nml(nml, buffer)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------
# Summary for `annotation-info`
# --------------------------------------------------------------------------------------


def _count_groups(groups: list[Group]) -> int:
    return sum(1 + _count_groups(group.children) for group in groups)


def skeleton_summary(nml: Nml) -> dict[str, Any]:
    """Counts and volume/bounding-box facts of an annotation, JSON-ready (for ``annotation-info``)."""
    parameters = nml.parameters
    return {
        "dataset": parameters.dataset_name,
        "organization": parameters.organization,
        "voxel_size": list(parameters.voxel_size),
        "unit": parameters.unit,
        "trees": len(nml.trees),
        "nodes": nml.node_count,
        "edges": nml.edge_count,
        "comments": len(nml.comments),
        "branchpoints": len(nml.branchpoints),
        "groups": _count_groups(nml.groups),
        "volumes": [
            {
                "id": volume.id,
                "name": volume.name,
                "format": volume.format,
                "location": volume.location,
                "fallback_layer": volume.fallback_layer,
                "largest_segment_id": volume.largest_segment_id,
                "segments": len(volume.segments),
                "segment_groups": _count_groups(volume.segment_groups),
            }
            for volume in nml.volumes
        ],
        "user_bounding_boxes": [
            {"id": box.id, "name": box.name, "topleft": list(box.topleft), "size": list(box.size)}
            for box in parameters.user_bounding_boxes
        ],
    }


__all__ = [
    "DEFAULT_UNIT",
    "LENGTH_UNITS",
    "METADATA_KINDS",
    "VOLUME_FORMATS",
    "Branchpoint",
    "Color",
    "Comment",
    "Edge",
    "Group",
    "MetadataEntry",
    "Nml",
    "NmlBox",
    "Node",
    "Parameters",
    "Segment",
    "Tree",
    "Vec3f",
    "Volume",
    "normalize_unit",
    "nml_bytes",
    "read_nml",
    "skeleton_summary",
    "write_nml",
]
