"""NML model, parser and writer: real WEBKNOSSOS files, round trips and every broken input."""

from __future__ import annotations

import io
import tracemalloc
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from napari_wkw.core.errors import DatasetFormatError
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
    skeleton_summary,
    write_nml,
)

ANNOTATIONS = Path(__file__).parents[1] / "data" / "annotations"
TEST_A = ANNOTATIONS / "test_a.nml"
L4_ZIP = ANNOTATIONS / "l4_sample__explorational__suser__94b271.zip"
L4_MEMBER = "l4_sample__explorational__suser__94b271.nml"
SKIN_ZIP = ANNOTATIONS / "empty_volume_annotation.zip"
SKIN_MEMBER = "skin__explorational__jstriebel__f0f5b9.nml"

PARAMETERS = '<parameters><experiment name="ds" /><scale x="11.24" y="11.24" z="28.0" /></parameters>'


def zip_member(archive: Path, member: str) -> bytes:
    with zipfile.ZipFile(archive) as opened:
        return opened.read(member)


def l4_bytes() -> bytes:
    return zip_member(L4_ZIP, L4_MEMBER)


def skin_bytes() -> bytes:
    return zip_member(SKIN_ZIP, SKIN_MEMBER)


def nml_text(body: str = "", parameters: str = PARAMETERS, root: str = "<things>") -> bytes:
    """A small NML around ``body`` (trees, volumes ...) with valid parameters by default."""
    return f"{root}{parameters}{body}</things>".encode()


def tree_xml(tree_id: int, node_ids: list[int], edges: list[tuple[int, int]] = ()) -> str:
    nodes = "".join(f'<node id="{node_id}" x="{node_id}" y="2" z="3" />' for node_id in node_ids)
    edge_xml = "".join(f'<edge source="{source}" target="{target}" />' for source, target in edges)
    return f'<thing id="{tree_id}"><nodes>{nodes}</nodes><edges>{edge_xml}</edges></thing>'


def generate_large_nml(node_count: int, nodes_per_tree: int = 1000) -> bytes:
    """An NML as WEBKNOSSOS writes it with ``node_count`` nodes in chains of ``nodes_per_tree``.

    Also used by hand to time big files, e.g. ``generate_large_nml(200_000)``.
    """
    parts = [
        "<things>\n  <parameters>\n"
        '    <experiment name="big" />\n    <scale x="11.24" y="11.24" z="28.0" />\n'
        "  </parameters>\n"
    ]
    first, tree_id = 1, 1
    while first <= node_count:
        ids = range(first, min(first + nodes_per_tree, node_count + 1))
        parts.append(
            f'  <thing id="{tree_id}" color.r="0.5" color.g="0.25" color.b="1.0" color.a="1.0" name="t{tree_id}">\n'
        )
        parts.append("    <nodes>\n")
        parts.extend(
            f'      <node id="{i}" radius="1.0" x="{i % 5000}" y="{i * 7 % 5000}" z="{i % 300}" rotX="0.0" '
            f'rotY="0.0" rotZ="0.0" inVp="0" inMag="1" bitDepth="8" interpolation="false" '
            f'time="{1_700_000_000_000 + i}" />\n'
            for i in ids
        )
        parts.append("    </nodes>\n    <edges>\n")
        parts.extend(f'      <edge source="{i}" target="{i + 1}" />\n' for i in ids[:-1])
        parts.append("    </edges>\n  </thing>\n")
        first, tree_id = ids[-1] + 1, tree_id + 1
    parts.append("  <branchpoints />\n  <comments />\n  <groups />\n</things>\n")
    return "".join(parts).encode()


def full_nml() -> Nml:
    """An annotation that uses every field of the model, with awkward values."""
    nodes = [
        Node(
            1,
            (10.0, 20.5, 30.0),
            radius=2.5,
            rotation=(0.0, 90.0, 1 / 3),
            in_vp=1,
            in_mag=4,
            bit_depth=8,
            interpolation=True,
            time=1_700_000_000_001,
            extra={"additionalCoordinate-t": "3"},
        ),
        Node(2, (11.0, 21.0, 31.0)),
        Node(3, (-5.25, 0.1, 1e-7), radius=0.5, interpolation=False, time=7),
    ]
    tree = Tree(
        id=4,
        name="axon",
        color=(0.1, 0.2, 0.30000000000000004, 1.0),
        group_id=11,
        type="DEFAULT",
        nodes=nodes,
        edges=[Edge(1, 2), Edge(2, 3)],
        metadata=[
            MetadataEntry("cell type", "string", "pyramidal"),
            MetadataEntry("length", "number", 12.75),
            MetadataEntry("count", "number", 3.0),
            MetadataEntry("verified", "bool", True),
            MetadataEntry("reviewed", "bool", False),
            MetadataEntry("tags", "string_list", ["a", "b", "c"]),
            MetadataEntry("nothing", "string_list", []),
        ],
        extra={"isVisible": "false"},
    )
    empty_tree = Tree(id=5, name="", color=None, nodes=[Node(9, (1.0, 1.0, 1.0))])
    segment = Segment(
        id=42,
        name="mitochondrion",
        color=(1.0, 0.0, 0.5, 0.75),
        anchor_position=(100, 200, 300),
        group_id=2,
        created=1_600_000_000_000,
        metadata=[MetadataEntry("volume", "number", 1234.5)],
        extra={"anchorPositionAdditionalCoordinate-t": "1"},
    )
    volume = Volume(
        id=0,
        name="segmentation",
        location="data_0_segmentation.zip",
        fallback_layer="segmentation",
        format="wkw",
        largest_segment_id=2_504_698,
        segments=[segment, Segment(id=43)],
        segment_groups=[Group(1, "organelles", [Group(2, "mito")])],
        extra={"mappingName": "agglomerate_view_70"},
    )
    return Nml(
        parameters=Parameters(
            dataset_name="l4_sample",
            organization="scalable_minds",
            description="a description",
            dataset_id="65269e70df0100140a94b271",
            wk_url="https://webknossos.org",
            voxel_size=(11.24, 11.24, 28.0),
            unit="micrometer",
            offset=(0.0, 0.0, 0.0),
            time=1_697_029_744_090,
            edit_position=(3867.0, 3579.5, 1024.0),
            edit_rotation=(0.0, 45.5, 180.0),
            zoom_level=1.5,
            active_node=3,
            task_bounding_box=NmlBox((0, 0, 0), (512, 512, 256)),
            user_bounding_boxes=[
                NmlBox((1, 2, 3), (10, 20, 30), id=0, name="roi", color=(0.2, 0.5, 0.1, 1.0), is_visible=True),
                NmlBox((-4, 5, 6), (7, 8, 9), id=1, name="hidden", is_visible=False),
            ],
        ),
        trees=[tree, empty_tree],
        branchpoints=[Branchpoint(1, 1_700_000_000_005), Branchpoint(3)],
        comments=[Comment(1, "soma"), Comment(3, "ends here")],
        groups=[
            Group(10, "cells", [Group(11, "neurons", extra={"isExpanded": "false"})], extra={"isExpanded": "true"})
        ],
        volumes=[volume, Volume(id=1, name="second", format="zarr3")],
        meta=[("writer", "napari-wkw"), ("annotationId", "abc")],
    )


# -- the real files -------------------------------------------------------------------


def test_test_a_skeleton_with_nested_groups_and_micrometer_unit():
    nml = read_nml(TEST_A)
    parameters = nml.parameters
    assert (parameters.dataset_name, parameters.organization, parameters.description) == ("ds_name", "orga", "")
    assert parameters.voxel_size == (4.0, 4.0, 35.0)
    assert parameters.unit == "micrometer"
    assert parameters.offset == (0.0, 0.0, 0.0)
    assert parameters.time == 1644425515615
    assert parameters.edit_position == (199480.0, 199906.0, 3593.0)
    assert parameters.edit_rotation == (0.0, 0.0, 0.0)
    assert parameters.zoom_level == 2.0
    assert parameters.active_node == 3
    assert parameters.task_bounding_box is None and parameters.user_bounding_boxes == []

    assert [tree.id for tree in nml.trees] == [3, 2, 1]
    assert [tree.name for tree in nml.trees] == ["003", "002", "001"]
    assert [tree.group_id for tree in nml.trees] == [2, 2, None]
    assert nml.tree(3).color == (0.8509804010391235, 0.5215686559677124, 0.07058823853731155, 1.0)
    assert nml.tree(2).color == (0.0, 0.0, 1.0, 1.0)
    assert nml.node_count == 3 and nml.edge_count == 0
    assert nml.tree(3).nodes == [
        Node(
            id=3,
            position=(199480.0, 199906.0, 3593.0),
            radius=1.0,
            rotation=(0.0, 0.0, 0.0),
            in_vp=0,
            in_mag=1,
            bit_depth=8,
            interpolation=True,
            time=1644425546725,
        )
    ]
    assert nml.groups == [Group(1, "Group 1", [Group(2, "Group 2")])]
    assert (nml.branchpoints, nml.comments, nml.volumes, nml.meta) == ([], [], [], [])
    with pytest.raises(KeyError):
        nml.tree(99)


def test_l4_sample_skeleton_and_volume():
    nml = read_nml(l4_bytes(), name=L4_MEMBER)
    assert nml.meta[0] == ("writer", "NmlWriter.scala")
    assert nml.meta_value("annotationId") == "65269e70df0100140a94b271"
    assert nml.meta_value("username") == "Sample User"
    assert len(nml.meta) == 5

    parameters = nml.parameters
    assert (parameters.dataset_name, parameters.organization) == ("l4_sample", "sample_organization")
    assert parameters.wk_url == "http://localhost:9000"
    assert parameters.voxel_size == (11.239999771118164, 11.239999771118164, 28.0)
    assert parameters.unit == "nanometer"  # no unit attribute: WEBKNOSSOS means nanometres
    assert parameters.edit_position == (3867.0, 3579.0, 1024.0)
    assert parameters.active_node == 3

    [tree] = nml.trees
    assert (tree.id, tree.name, tree.type) == (1, "explorative_2023-10-11_Sample_User_001", "DEFAULT")
    assert tree.color == (0.6784313917160034, 0.1411764770746231, 0.05098039284348488, 1.0)
    assert [node.id for node in tree.nodes] == [1, 2, 3]
    assert [node.position for node in tree.nodes] == [(3365, 3383, 1024), (3532, 3704, 1024), (3867, 3579, 1024)]
    assert [node.time for node in tree.nodes] == [1697030675476, 1697030676578, 1697030677331]
    assert all(node.in_mag == 2 and node.interpolation is False for node in tree.nodes)
    assert tree.edges == [Edge(2, 3), Edge(1, 2)]

    [volume] = nml.volumes
    assert (volume.id, volume.name, volume.location) == (0, "Volume", "data_Volume.zip")
    assert (volume.format, volume.largest_segment_id, volume.fallback_layer) == ("zarr3", 1, None)
    assert volume.segments == [Segment(id=1, created=1697029748584, anchor_position=(3395, 3761, 1024))]
    assert volume.segment_groups == []


def test_volume_without_format_and_without_trees():
    nml = read_nml(skin_bytes())
    assert nml.parameters.dataset_name == "skin"
    assert nml.parameters.voxel_size == (550.0, 550.0, 550.0)
    assert nml.parameters.active_node is None
    assert nml.trees == [] and nml.node_count == 0
    assert nml.volumes == [Volume(id=0, name="Volume", location="data_Volume.zip", format=None, largest_segment_id=0)]
    assert nml.meta_value("username") == "Jonathan Striebel"


def test_source_can_be_a_path_a_string_bytes_or_a_stream():
    expected = read_nml(TEST_A)
    assert read_nml(str(TEST_A)) == expected
    assert read_nml(TEST_A.read_bytes()) == expected
    assert read_nml(bytearray(TEST_A.read_bytes())) == expected
    with TEST_A.open("rb") as stream:
        assert read_nml(stream) == expected
    with zipfile.ZipFile(L4_ZIP) as archive, archive.open(L4_MEMBER) as member:
        assert read_nml(member) == read_nml(l4_bytes())


# -- writing and round trips -----------------------------------------------------------


@pytest.mark.parametrize(
    "load", [lambda: TEST_A.read_bytes(), l4_bytes, skin_bytes], ids=["test_a", "l4_sample", "empty_volume"]
)
def test_real_files_round_trip(load):
    original = read_nml(load())
    written = nml_bytes(original)
    assert read_nml(written) == original
    assert nml_bytes(read_nml(written)) == written  # deterministic: same model, same bytes


def test_written_file_is_what_webknossos_writes():
    """Apart from the XML declaration and the explicit unit, our l4 file is WEBKNOSSOS's, byte for byte."""
    original = l4_bytes().decode()
    written = nml_bytes(read_nml(l4_bytes())).decode()
    expected = original.replace('z="28.0" />', 'z="28.0" unit="nanometer" />', 1)
    assert written == '<?xml version="1.0" encoding="UTF-8"?>\n' + expected.rstrip("\n") + "\n"
    assert 'x="3365" y="3383" z="1024"' in written


def test_every_field_round_trips():
    nml = full_nml()
    assert read_nml(nml_bytes(nml)) == nml


def test_element_order_follows_webknossos():
    root = ET.fromstring(nml_bytes(full_nml()))
    assert [child.tag for child in root] == [
        "meta",
        "meta",
        "parameters",
        "thing",
        "thing",
        "branchpoints",
        "comments",
        "groups",
        "volume",
        "volume",
    ]
    assert [child.tag for child in root.find("parameters")] == [
        "experiment",
        "scale",
        "offset",
        "time",
        "editPosition",
        "editRotation",
        "zoomLevel",
        "activeNode",
        "userBoundingBox",
        "userBoundingBox",
        "taskBoundingBox",
    ]
    thing = root.find("thing")
    assert [child.tag for child in thing] == ["nodes", "edges", "metadata"]
    assert thing.attrib["color.b"] == "0.30000000000000004"
    volume = root.find("volume")
    assert [child.tag for child in volume] == ["segments", "groups"]
    segment = volume.find("segments/segment")
    assert segment.attrib["anchorPositionX"] == "100" and segment.find("metadata/metadataEntry") is not None
    box = root.find("parameters/userBoundingBox")
    assert box.attrib == {
        "id": "0",
        "name": "roi",
        "isVisible": "true",
        "color.r": "0.2",
        "color.g": "0.5",
        "color.b": "0.1",
        "color.a": "1.0",
        "topLeftX": "1",
        "topLeftY": "2",
        "topLeftZ": "3",
        "width": "10",
        "height": "20",
        "depth": "30",
    }
    entries = {entry.attrib["key"]: entry.attrib for entry in thing.iter("metadataEntry")}
    assert entries["tags"] == {
        "key": "tags",
        "stringListValue-0": "a",
        "stringListValue-1": "b",
        "stringListValue-2": "c",
    }
    assert entries["verified"]["boolValue"] == "true"
    assert entries["nothing"] == {"key": "nothing"}


def test_numbers_are_written_without_needless_digits():
    written = nml_bytes(full_nml()).decode()
    assert (
        '<node id="1" radius="2.5" x="10" y="20.5" z="30" rotX="0.0" rotY="90.0" rotZ="0.3333333333333333"' in written
    )
    assert 'x="-5.25" y="0.1" z="1e-07"' in written
    assert '<scale x="11.24" y="11.24" z="28.0" unit="micrometer" />' in written
    assert '<editPosition x="3867" y="3579.5" z="1024" />' in written
    assert '<time ms="1697029744090" />' in written
    assert 'largestSegmentId="2504698"' in written


def test_write_to_path_and_stream_give_the_same_bytes(tmp_path):
    nml = full_nml()
    target = tmp_path / "out.nml"
    write_nml(nml, target)
    stream = io.BytesIO()
    write_nml(nml, stream)
    assert target.read_bytes() == stream.getvalue() == nml_bytes(nml)
    assert [path.name for path in tmp_path.iterdir()] == ["out.nml"]  # no temporary file left
    assert read_nml(target) == nml


def test_unicode_and_markup_characters_round_trip():
    awkward = "a <b> & \"c\" 'd'\nsecond line\ttab\r\ncr 🧠 ニューロン é"
    nml = full_nml()
    nml.trees[0].name = awkward
    nml.comments.append(Comment(2, "**Markdown** <br> & more\n- item"))
    nml.meta.append(("note", awkward))
    nml.groups[0].name = awkward
    nml.volumes[0].name = awkward
    nml.volumes[0].segments[0].name = awkward
    nml.trees[0].metadata.append(MetadataEntry(awkward, "string_list", [awkward, ""]))
    nml.parameters.description = awkward
    written = nml_bytes(nml)
    assert read_nml(written) == nml
    text = written.decode("utf-8")
    assert "&lt;b&gt; &amp; &quot;c&quot; 'd'&#10;second line&#9;tab&#13;&#10;cr 🧠 ニューロン é" in text
    assert ET.fromstring(written).find("thing").attrib["name"] == awkward  # any XML reader agrees


@pytest.mark.parametrize(
    ("spoil", "fragment"),
    [
        (lambda nml: setattr(nml.trees[0], "name", "bell\x07"), "U+0007, which XML cannot store"),
        (lambda nml: setattr(nml.volumes[0], "format", "n5"), "unknown volume data format 'n5'"),
        (lambda nml: setattr(nml.parameters, "voxel_size", (1.0, 0.0, 1.0)), "three positive numbers"),
        (lambda nml: setattr(nml.parameters, "unit", "furlong"), "unknown length unit 'furlong'"),
        (lambda nml: setattr(nml.trees[0].metadata[0], "value", 3.0), "kind 'string' with value 3.0"),
        (lambda nml: nml.trees[0].nodes[1].extra.update({"x": "1"}), "extra attribute 'x'"),
        (lambda nml: setattr(nml.trees[0].nodes[0], "position", (float("nan"), 1.0, 1.0)), "must be finite"),
    ],
)
def test_writing_what_no_reader_could_read_is_refused(tmp_path, spoil, fragment):
    nml = full_nml()
    spoil(nml)
    target = tmp_path / "refused.nml"
    with pytest.raises(DatasetFormatError) as caught:
        write_nml(nml, target)
    assert str(caught.value).startswith(f"{target}: ")
    assert fragment in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


# -- leniency where WEBKNOSSOS is lenient -----------------------------------------------


def test_missing_optional_attributes_get_defaults():
    nml = read_nml(nml_text('<thing id="1"><nodes><node id="1" x="12.0" y="3.5" z="7" /></nodes></thing>'))
    [tree] = nml.trees
    assert (tree.name, tree.color, tree.group_id, tree.type) == ("", None, None, None)
    assert tree.nodes == [Node(1, (12.0, 3.5, 7.0))]
    assert tree.nodes[0].radius == 1.0 and tree.nodes[0].rotation is None and tree.nodes[0].time is None
    assert nml.parameters.unit == "nanometer" and nml.parameters.dataset_name == "ds"
    assert read_nml(nml_text(parameters='<parameters><scale x="1" y="2" z="3" /></parameters>')).parameters == (
        Parameters(voxel_size=(1.0, 2.0, 3.0))
    )


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ('rotX="1.5"', Node(1, (1.0, 2.0, 3.0), rotation=(1.5, 0.0, 0.0))),
        ('inVp="" inMag=" " time=" 12 "', Node(1, (1.0, 2.0, 3.0), time=12)),
        ('interpolation="TRUE" bitDepth="4"', Node(1, (1.0, 2.0, 3.0), interpolation=True, bit_depth=4)),
        ('interpolation="0" radius="30"', Node(1, (1.0, 2.0, 3.0), interpolation=False, radius=30.0)),
    ],
)
def test_unusual_but_valid_node_attributes(attributes, expected):
    data = nml_text(f'<thing id="1"><nodes><node id=" 1 " x="1" y="2.0" z="3" {attributes} /></nodes></thing>')
    assert read_nml(data).trees[0].nodes == [expected]


def test_unknown_elements_are_skipped_and_unknown_attributes_kept():
    data = nml_text(
        parameters=(
            '<parameters><experiment name="ds" /><scale x="1" y="1" z="1" />'
            '<additionalAxes><additionalAxis name="t" index="0" start="0" end="10" /></additionalAxes></parameters>'
        ),
        body=(
            '<thing id="1" isVisible="false" color.r="" color.g="" color.b="" color.a="" groupId="">'
            '<nodes><node id="1" x="1" y="2" z="3" additionalCoordinate-t="4" /></nodes>'
            '<future><node id="1" x="0" y="0" z="0" /></future><edges /></thing>'
            '<hologram id="7" />'
            '<groups><group name="g" id="5" isExpanded="false" /></groups>'
            '<volume id="0" mappingName="agglomerate" mappingIsLocked="true"><!-- data omitted -->'
            '<segments><segment id="3" anchorPositionX="1.0" anchorPositionY="2" anchorPositionZ="3" /></segments>'
            "</volume>"
        ),
    )
    nml = read_nml(data)
    [tree] = nml.trees
    assert tree.extra == {"isVisible": "false"} and tree.color is None and tree.group_id is None
    assert tree.nodes == [Node(1, (1.0, 2.0, 3.0), extra={"additionalCoordinate-t": "4"})]
    assert nml.groups == [Group(5, "g", extra={"isExpanded": "false"})]
    assert nml.volumes[0].extra == {"mappingName": "agglomerate", "mappingIsLocked": "true"}
    assert nml.volumes[0].segments[0].anchor_position == (1, 2, 3)
    assert read_nml(nml_bytes(nml)) == nml
    assert b'additionalCoordinate-t="4"' in nml_bytes(nml)


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("nm", "nanometer"),
        ("nanometer", "nanometer"),
        ("\u00b5m", "micrometer"),  # micro sign
        ("\u03bcm", "micrometer"),  # greek mu
        ("um", "micrometer"),
        ("Micrometer", "micrometer"),
        ("mm", "millimeter"),
        ("\u00c5", "angstrom"),
        ("", "nanometer"),
    ],
)
def test_units_are_normalised_to_the_long_names(unit, expected):
    parameters = f'<parameters><scale x="1" y="1" z="1" unit="{unit}" /></parameters>'
    assert read_nml(nml_text(parameters=parameters)).parameters.unit == expected


def test_version_one_xml_declaration_and_byte_order_mark_are_accepted():
    data = b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?>\n' + nml_text(root='<things version="1.2">')
    assert read_nml(data).parameters.voxel_size == (11.24, 11.24, 28.0)


def test_metadata_entries_of_every_kind():
    entries = (
        '<metadataEntry key="s" stringValue="text" />'
        '<metadataEntry key="n" numberValue="-2.5" />'
        '<metadataEntry key="b" boolValue="false" />'
        '<metadataEntry key="l" stringListValue-1="second" stringListValue-0="first" />'
        '<metadataEntry key="empty" />'
    )
    body = (
        f'<thing id="1"><nodes /><edges /><metadata>{entries}</metadata></thing>'
        f'<volume id="0"><segments><segment id="2"><metadata>{entries}</metadata></segment></segments></volume>'
    )
    nml = read_nml(nml_text(body))
    expected = [
        MetadataEntry("s", "string", "text"),
        MetadataEntry("n", "number", -2.5),
        MetadataEntry("b", "bool", False),
        MetadataEntry("l", "string_list", ["first", "second"]),
        MetadataEntry("empty", "string_list", []),
    ]
    assert nml.trees[0].metadata == expected
    assert nml.volumes[0].segments[0].metadata == expected


# -- broken input: one DatasetFormatError naming the file -------------------------------


BAD_INPUTS = {
    "broken XML": (
        b'<things>\n  <parameters>\n    <scale x="1" y="1" z="1">\n  </parameters>\n</things>\n',
        "not valid XML (line 4, column 5: mismatched tag)",
    ),
    "truncated": (nml_text()[:-12], "not valid XML (line 1, column"),
    "empty file": (b"", "empty file"),
    "only whitespace": (b" \n\t\n", "empty file"),
    "not XML": (b"hello", "not valid XML (line 1, column 1: syntax error)"),
    "undefined entity": (nml_text('<thing id="1" name="&nbsp;" />'), "undefined entity"),
    "invalid UTF-8": (nml_text('<thing id="1" name="X" />').replace(b"X", b"\xff"), "invalid token"),
    "other root": (
        b"<annotation><parameters /></annotation>",
        "root element is <annotation>, an NML file has <things>",
    ),
    "version 2": (nml_text(root='<things version="2">'), "unknown NML version 2"),
    "version text": (nml_text(root='<things version="beta">'), "unknown NML version beta"),
    "volume format": (nml_text('<volume id="0" format="n5" />'), "volume 0: unknown volume data format 'n5'"),
    "no parameters": (b"<things><thing id='1' /></things>", "no <parameters> element"),
    "no scale": (nml_text(parameters='<parameters><experiment name="x" /></parameters>'), "no <scale> element"),
    "two parameters": (nml_text(parameters=PARAMETERS * 2), "more than one <parameters> element"),
    "node id": (
        nml_text('<thing id="1"><nodes><node id="n1" x="1" y="1" z="1" /></nodes></thing>'),
        "node id is not an integer: 'n1'",
    ),
    "no node id": (
        nml_text('<thing id="1"><nodes><node x="1" y="1" z="1" /></nodes></thing>'),
        "tree 1: node id is missing",
    ),
    "position": (
        nml_text('<thing id="1"><nodes><node id="5" x="1" y="left" z="1" /></nodes></thing>'),
        "tree 1, node 5: y is not a number: 'left'",
    ),
    "no position": (
        nml_text('<thing id="1"><nodes><node id="5" x="1" y="1" /></nodes></thing>'),
        "node 5: z is missing",
    ),
    "infinite position": (
        nml_text('<thing id="1"><nodes><node id="5" x="inf" y="1" z="1" /></nodes></thing>'),
        "x is not a finite number",
    ),
    "radius": (
        nml_text('<thing id="1"><nodes><node id="5" x="1" y="1" z="1" radius="big" /></nodes></thing>'),
        "node 5: radius is not a number",
    ),
    "interpolation": (
        nml_text('<thing id="1"><nodes><node id="5" x="1" y="1" z="1" interpolation="maybe" /></nodes></thing>'),
        "interpolation is not true or false: 'maybe'",
    ),
    "tree id": (nml_text('<thing id="first" />'), "tree (<thing>) id is not an integer: 'first'"),
    "tree colour": (
        nml_text('<thing id="1" color.r="red" color.g="0" color.b="0" color.a="1" />'),
        "color.r is not a number",
    ),
    "duplicate tree ids": (nml_text(tree_xml(1, [1]) + tree_xml(1, [2])), "tree id 1 appears more than once"),
    "duplicate node across trees": (
        nml_text(tree_xml(1, [1, 2], [(1, 2)]) + tree_xml(2, [3, 2], [(3, 2)])),
        "node id 2 appears in tree 1 and in tree 2",
    ),
    "duplicate node in a tree": (nml_text(tree_xml(1, [1, 1])), "node id 1 appears twice in tree 1"),
    "edge to a missing node": (nml_text(tree_xml(1, [1, 2], [(1, 7)])), "tree 1: edge 1-7 refers to node 7"),
    "edge to another tree": (
        nml_text(tree_xml(1, [1, 2], [(1, 2)]) + tree_xml(2, [3], [(3, 1)])),
        "tree 2: edge 3-1 refers to node 1, which is not in this tree",
    ),
    "edge source": (
        nml_text('<thing id="1"><edges><edge source="a" target="1" /></edges></thing>'),
        "edge source is not an integer",
    ),
    "zero voxel size": (
        nml_text(parameters='<parameters><scale x="1" y="0" z="1" /></parameters>'),
        "three positive numbers",
    ),
    "negative voxel size": (
        nml_text(parameters='<parameters><scale x="-1" y="-1" z="-1" /></parameters>'),
        "got x='-1'",
    ),
    "text voxel size": (nml_text(parameters='<parameters><scale x="1" y="one" z="1" /></parameters>'), "y='one'"),
    "missing voxel size": (nml_text(parameters='<parameters><scale x="1" y="1" /></parameters>'), "z=None"),
    "unknown unit": (
        nml_text(parameters='<parameters><scale x="1" y="1" z="1" unit="furlong" /></parameters>'),
        "unknown length unit 'furlong'",
    ),
    "time": (
        nml_text(parameters=PARAMETERS.replace("</parameters>", '<time ms="yesterday" /></parameters>')),
        "<time> ms is not an integer",
    ),
    "bounding box": (
        nml_text(
            parameters=PARAMETERS.replace(
                "</parameters>",
                '<userBoundingBox id="0" topLeftX="0" topLeftY="0" topLeftZ="0" width="wide" height="1" depth="1" />'
                "</parameters>",
            )
        ),
        "user bounding box 1 width is not a number: 'wide'",
    ),
    "largest segment id": (
        nml_text('<volume id="0" largestSegmentId="many" />'),
        "volume 0: largestSegmentId is not an integer",
    ),
    "segment anchor": (
        nml_text(
            '<volume id="0"><segments>'
            '<segment id="1" anchorPositionX="1.5" anchorPositionY="1" anchorPositionZ="1" />'
            "</segments></volume>"
        ),
        "volume 0, segment 1: anchorPositionX is not a whole number: '1.5'",
    ),
    "group id": (nml_text('<groups><group name="g" id="x" /></groups>'), "group 'g' id is not an integer"),
    "metadata bool": (
        nml_text('<thing id="1"><metadata><metadataEntry key="k" boolValue="yes" /></metadata></thing>'),
        "tree 1: metadata entry 'k' boolValue is not true or false",
    ),
}


@pytest.mark.parametrize(("data", "fragment"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_one_clear_error(data, fragment):
    with pytest.raises(DatasetFormatError) as caught:
        read_nml(data, name="bad.nml")
    message = str(caught.value)
    assert type(caught.value) is DatasetFormatError
    assert message.startswith("bad.nml: "), message
    assert fragment in message, message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no chained traceback


def test_error_names_the_path_or_the_stream(tmp_path):
    broken = tmp_path / "broken.nml"
    broken.write_bytes(b"<things><parameters>")
    for source in (broken, str(broken)):
        with pytest.raises(DatasetFormatError, match="^" + str(broken).replace("\\", "\\\\") + ": not valid XML"):
            read_nml(source)
    with broken.open("rb") as stream, pytest.raises(DatasetFormatError, match="broken.nml: not valid XML"):
        read_nml(stream)
    with pytest.raises(DatasetFormatError, match="^NML data: empty file"):
        read_nml(b"")
    with pytest.raises(DatasetFormatError, match="missing.nml: cannot be read"):
        read_nml(tmp_path / "missing.nml")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE things [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<things><parameters><experiment name="&lol9;" /><scale x="1" y="1" z="1" /></parameters></things>
"""


def xxe_documents(secret: Path) -> list[bytes]:
    url = secret.resolve().as_uri()
    return [
        (
            f'<!DOCTYPE things [<!ENTITY xxe SYSTEM "{url}">]>'
            '<things><parameters><experiment name="&xxe;" /><scale x="1" y="1" z="1" /></parameters></things>'
        ).encode(),
        b'<!DOCTYPE things [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><things>&xxe;</things>',
        f'<!DOCTYPE things [<!ENTITY % remote SYSTEM "{url}"> %remote;]><things />'.encode(),
        f'<!DOCTYPE things SYSTEM "{url}"><things />'.encode(),
    ]


def test_billion_laughs_is_refused_before_expanding():
    with pytest.raises(DatasetFormatError, match=r"^bomb\.nml: refused: contains a document type declaration"):
        read_nml(BILLION_LAUGHS, name="bomb.nml")


def test_external_entities_are_refused_and_never_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    for document in xxe_documents(secret):
        with pytest.raises(DatasetFormatError) as caught:
            read_nml(document, name="xxe.nml")
        assert str(caught.value).startswith("xxe.nml: refused:")
        assert "TOP-SECRET" not in str(caught.value)


# -- summary and size ------------------------------------------------------------------


def test_summary_of_the_real_files():
    assert skeleton_summary(read_nml(l4_bytes())) == {
        "dataset": "l4_sample",
        "organization": "sample_organization",
        "voxel_size": [11.239999771118164, 11.239999771118164, 28.0],
        "unit": "nanometer",
        "trees": 1,
        "nodes": 3,
        "edges": 2,
        "comments": 0,
        "branchpoints": 0,
        "groups": 0,
        "volumes": [
            {
                "id": 0,
                "name": "Volume",
                "format": "zarr3",
                "location": "data_Volume.zip",
                "fallback_layer": None,
                "largest_segment_id": 1,
                "segments": 1,
                "segment_groups": 0,
            }
        ],
        "user_bounding_boxes": [],
    }
    summary = skeleton_summary(read_nml(TEST_A))
    assert (summary["trees"], summary["nodes"], summary["groups"], summary["unit"]) == (3, 3, 2, "micrometer")


def test_summary_counts_everything_of_a_full_annotation():
    summary = skeleton_summary(full_nml())
    assert (summary["trees"], summary["nodes"], summary["edges"]) == (2, 4, 2)
    assert (summary["comments"], summary["branchpoints"], summary["groups"]) == (2, 2, 2)
    assert [volume["segments"] for volume in summary["volumes"]] == [2, 0]
    assert summary["volumes"][0]["segment_groups"] == 2 and summary["volumes"][1]["format"] == "zarr3"
    assert summary["user_bounding_boxes"] == [
        {"id": 0, "name": "roi", "topleft": [1, 2, 3], "size": [10, 20, 30]},
        {"id": 1, "name": "hidden", "topleft": [-4, 5, 6], "size": [7, 8, 9]},
    ]


def test_large_nml_parses_without_holding_the_xml_tree():
    node_count = 20_000
    data = generate_large_nml(node_count)
    tracemalloc.start()
    try:
        nml = read_nml(data, name="big.nml")
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert nml.node_count == node_count and nml.edge_count == node_count - len(nml.trees)
    assert len(nml.trees) == 20
    assert nml.trees[-1].nodes[-1] == Node(
        node_count,
        (node_count % 5000, node_count * 7 % 5000, node_count % 300),
        rotation=(0.0, 0.0, 0.0),
        in_vp=0,
        in_mag=1,
        bit_depth=8,
        interpolation=False,
        time=1_700_000_000_000 + node_count,
    )
    # The XML elements of 20,000 nodes would take well over 10 MB; streaming keeps the
    # parse overhead (peak minus what the model itself keeps) to a few chunks.
    assert peak - retained < 3_000_000, (peak, retained)
    assert read_nml(nml_bytes(nml)) == nml
