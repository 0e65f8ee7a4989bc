"""The bad-input catalogue (issue 14): every broken input a user may have, as data.

One :class:`Row` per bad input: how to build it in an empty folder, the command line to
run on it, the message the user must see (a regular expression that starts with the
file's name: one line naming the file and the problem), what the napari reader does
with it and which wizard shows it, and how. ``test_cli.py``, ``test_reader.py`` and
``test_wizards.py`` run every row; ``scripts/bad_inputs_table.py`` writes the table
of ``docs/bad-inputs.md`` from it.

Placeholders: ``{name}`` in a command, a message or a reader path is the path
``files[name]`` of the row, relative to the folder the input is built in. In a
message it stands for that path, escaped; the doc shows the relative path.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).parent.parent / "data"
SIMPLE = DATA / "wkw" / "simple_wkw_dataset"
ZARR3 = DATA / "zarr3" / "webknossos_zarr3"
L4_SAMPLE = DATA / "annotations" / "l4_sample__explorational__suser__94b271.zip"
L4_NML = "l4_sample__explorational__suser__94b271.nml"

#: the data file of the simple dataset (raw, 3 x uint8, 4^3 blocks of 8 voxels)
DATA_FILE = "ds/color/1/z0/y0/x0.wkw"
HEADER = "ds/color/1/header.wkw"
PROPERTIES = "ds/datasource-properties.json"

# ---- what is expected -------------------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """What the napari reader does with the input.

    ``raises``: napari-wkw claims the path and raises (napari shows the error);
    ``warns``: it opens what it can and warns (a WKWWarning, shown as a notification),
    on opening or, with ``on_read``, when the voxels are read; ``opens``: it works;
    ``declines``: not a WKW dataset or annotation, napari-wkw leaves it to other readers;
    ``n/a``: the bad part is an output (a target), which no reader sees.
    """

    outcome: str
    path: str = "{ds}"
    message: str | None = None  # default: the row's message
    on_read: bool = False


@dataclass(frozen=True)
class Wizard:
    """The wizard that shows the problem: ``form`` lists it before Run (Run is disabled),
    ``run`` shows it in a ``show_error`` notification after Run, ``succeeds`` runs to the end."""

    name: str  # a class of napari_wkw._widgets
    outcome: str
    fill: Callable[[Any, Paths], None]
    message: str | None = None  # default: the row's message


@dataclass(frozen=True)
class Row:
    id: str
    input: str  # the bad input, in words (the doc's first column)
    build: Callable[[Path], None]
    files: Mapping[str, str]
    cli: tuple[str, ...]
    message: str  # regular expression, starts with the file's {name}
    reader: Reader
    wizard: Wizard | None
    #: the CLI runs as a user other than root (permission bits mean nothing to root)
    nonroot: bool = False
    #: not bad at all: must work (exit 0, opens, the wizard succeeds)
    works: bool = False
    note: str = ""  # why a shell is not exercised, or a decision the doc explains


@dataclass(frozen=True)
class Paths:
    """The absolute paths of a row's files, built under ``root``."""

    root: Path
    files: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Path:
        return self.root / self.files[name]

    def text(self, template: str) -> str:
        """``template`` with each ``{name}`` replaced by its absolute path."""
        return _substitute(template, self.files, lambda name: str(self[name]))

    def pattern(self, template: str) -> re.Pattern:
        """The message template as a regular expression for these paths."""
        return re.compile(_substitute(template, self.files, lambda name: re.escape(str(self[name]))))


def _substitute(template: str, files: Mapping[str, str], value: Callable[[str], str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: value(m.group(1)) if m.group(1) in files else m.group(0), template)


def argv(row: Row, paths: Paths) -> list[str]:
    return [paths.text(part) for part in row.cli]


def readable(row: Row, template: str | None = None) -> str:
    """A message template as the doc shows it: the relative paths, regex syntax undone."""
    text = _substitute(template or row.message, row.files, lambda name: row.files[name])
    text = re.sub(r"\\d\+|\.\*\??|\.\+|\[\^\]\]\+|\\S\+|\(\?:[^)]*\)", "…", text)
    text = re.sub(r"\\(.)", r"\1", text)
    return text


# ---- building blocks ------------------------------------------------------------------------------


def simple_dataset(root: Path, name: str = "ds") -> Path:
    """A writable copy of tests/data/wkw/simple_wkw_dataset (raw, RGB, 24^3 voxels)."""
    target = root / name
    shutil.copytree(SIMPLE, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def edit_properties(path: Path, change: Callable[[dict], None]) -> None:
    properties = json.loads(path.read_text())
    change(properties)
    path.write_text(json.dumps(properties, indent=2))


def png_stack(folder: Path, sizes=((40, 30),) * 3, names: str = "slice_{}.png") -> None:
    """PNG slices of real EM texture, one per (width, height)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    tile = np.asarray(Image.open(DATA / "em_tiles" / "1_60_140.jpg"))
    for z, (width, height) in enumerate(sizes):
        Image.fromarray(tile[z : z + height, 2 * z : 2 * z + width]).save(folder / names.format(z))


def segmentation_dataset(root: Path, name: str = "seg") -> Path:
    """A small compressed dataset with one segmentation layer, mag 1 only."""
    from napari_wkw.core.save import ArrayLayer, save_dataset

    labels = np.zeros((32, 64, 64), np.uint32)
    labels[4:20, 10:40, 5:50] = 3
    layer = ArrayLayer("segmentation", "segmentation", [labels], (11.24, 11.24, 25.0))
    return save_dataset(root / name, [layer], pyramid=False)


def l4_entries() -> dict[str, bytes]:
    with zipfile.ZipFile(L4_SAMPLE) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_zip(path: Path, entries: Mapping[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)


def nobody_prefix() -> list[str] | None:
    """How to run a command as the user nobody here (setpriv, else runuser); [] when this
    process is not root already; None when neither works."""
    if os.geteuid() != 0:
        return []
    for prefix in (
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"],
        ["runuser", "-u", "nobody", "--"],
    ):
        if shutil.which(prefix[0]) is None:
            continue
        try:
            done = subprocess.run([*prefix, "true"], capture_output=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            return prefix
    return None


# ---- builders --------------------------------------------------------------------------------------


def _damaged_data_file(damage: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        simple_dataset(root)
        victim = root / DATA_FILE
        victim.write_bytes(damage(victim.read_bytes()))

    return build


def _header_bad_magic(root: Path) -> None:
    simple_dataset(root)
    (root / HEADER).write_bytes(b"XYZ\x01" + (root / HEADER).read_bytes()[4:])


def _file_header_disagrees(root: Path) -> None:
    """The data file says uint16 x 3 (voxel type 2, 6 bytes a voxel); header.wkw says uint8 x 3."""
    simple_dataset(root)
    victim = root / DATA_FILE
    content = bytearray(victim.read_bytes())
    content[6], content[7] = 2, 6
    victim.write_bytes(bytes(content))


def _properties_disagree(root: Path) -> None:
    simple_dataset(root)

    def change(properties):
        layer = properties["dataLayers"][0]
        layer["elementClass"], layer["numChannels"] = "uint16", 1

    edit_properties(root / PROPERTIES, change)


def _properties_text(text: Callable[[str], str]) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        simple_dataset(root)
        path = root / PROPERTIES
        path.write_text(text(path.read_text()))

    return build


def _huge_properties(root: Path) -> None:
    """200 MB: valid JSON up front, then 200 MB of spaces (a sparse file: nothing is written)."""
    simple_dataset(root)
    path = root / PROPERTIES
    with path.open("r+b") as f:
        f.truncate(200 * 2**20)


def _unknown_element_class(root: Path) -> None:
    simple_dataset(root)
    edit_properties(root / PROPERTIES, lambda p: p["dataLayers"][0].update(elementClass="complex64"))


def _mag_missing(root: Path) -> None:
    simple_dataset(root)
    edit_properties(
        root / PROPERTIES,
        lambda p: p["dataLayers"][0]["wkwResolutions"].append({"resolution": [2, 2, 1], "cubeLength": 32}),
    )


def _no_layers(root: Path) -> None:
    simple_dataset(root)
    edit_properties(root / PROPERTIES, lambda p: p.update(dataLayers=[]))
    shutil.rmtree(root / "ds" / "color")


def _unreadable_slice(root: Path) -> None:
    png_stack(root / "stack")
    (root / "stack" / "slice_1.png").chmod(0)
    root.chmod(0o777)  # nobody writes the target here


def _mis_sized(root: Path) -> None:
    png_stack(root / "stack", sizes=((40, 30), (40, 30), (52, 30)))


def _text_as_tif(root: Path) -> None:
    (root / "stack").mkdir()
    (root / "stack" / "a.tif").write_text("this is a text file, not a TIFF\n")


def _nifti_4d(root: Path) -> None:
    shutil.copy(DATA / "nifti" / "functional.nii", root / "functional.nii")


def _nifti_5d(root: Path) -> None:
    import nibabel as nib

    volume = np.arange(6 * 5 * 4 * 2 * 3, dtype=np.int16).reshape(6, 5, 4, 2, 3)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), root / "five.nii")


def _empty(root: Path) -> None:
    (root / "empty").mkdir()


def _unicode(root: Path) -> None:
    png_stack(root / "Ünïcødé slices ✓", names="schnitt {} ü.png")
    simple_dataset(root, "dätensatz mit Lücken ✓")


def _target_inside(root: Path) -> None:
    simple_dataset(root)


def _target_file(root: Path) -> None:
    png_stack(root / "stack")
    (root / "out.txt").write_text("a file, not a folder\n")


def _target_not_empty(root: Path) -> None:
    png_stack(root / "stack")
    (root / "out").mkdir()
    (root / "out" / "notes.txt").write_text("someone else's\n")


def _target_forbidden(root: Path) -> None:
    png_stack(root / "stack")
    (root / "locked").mkdir(mode=0o755)  # root's: nobody may not write in it
    (root / "locked").chmod(0o755)


def _folder_loop(root: Path) -> None:
    (root / "loop").mkdir()
    (root / "loop" / "again").symlink_to("..", target_is_directory=True)
    (root / "loop" / "self").symlink_to(".", target_is_directory=True)


def _layer_loop(root: Path) -> None:
    simple_dataset(root)

    def change(properties):
        segmentation = json.loads(json.dumps(properties["dataLayers"][0]))
        segmentation.update(name="segmentation", category="segmentation", elementClass="uint8", numChannels=1)
        properties["dataLayers"].append(segmentation)

    edit_properties(root / PROPERTIES, change)
    (root / "ds" / "segmentation").symlink_to("segmentation")  # a link to itself


def _annotation(entries_change: Callable[[dict], None], name: str) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        entries = l4_entries()
        entries_change(entries)
        write_zip(root / name, entries)
        segmentation_dataset(root)

    return build


def _climbing(entries: dict) -> None:
    entries["../escape.txt"] = b"x"


def _cut_inner(entries: dict) -> None:
    entries["data_Volume.zip"] = entries["data_Volume.zip"][:-300]


def _nml_file(content: bytes) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        (root / "broken.nml").write_bytes(content)
        segmentation_dataset(root)

    return build


def _bucket_wrong_size(root: Path) -> None:
    from tests.annotation_files import annotation_zip, wkw_bucket_zip

    labels = np.zeros((32, 64, 64), np.uint32)
    labels[4:20, 10:40, 5:50] = 7
    data = wkw_bucket_zip(root / "buckets", labels, (0, 0, 0))
    shutil.rmtree(root / "buckets")
    inner = zipfile.ZipFile(io.BytesIO(data))
    rebuilt = io.BytesIO()
    with zipfile.ZipFile(rebuilt, "w") as out:
        for name in inner.namelist():
            content = inner.read(name)
            out.writestr(name, content[: len(content) // 2] if name == "1/z0/y0/x0.wkw" else content)
    annotation_zip(root / "cut.zip", rebuilt.getvalue())
    segmentation_dataset(root)


def _zarr_json(root: Path) -> None:
    shutil.copytree(ZARR3, root / "ds")
    (root / "ds" / "color" / "1" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "arr')


# ---- wizard forms ------------------------------------------------------------------------------------


def _set(edit, path: Path | str) -> None:
    from napari_wkw._widgets.fields import set_path

    set_path(edit, Path(path))


def compress_into(name: str = "ds", mags: str = "") -> Callable[[Any, Paths], None]:
    def fill(wizard, paths: Paths) -> None:
        _set(wizard.choice.dataset, paths[name])
        wizard.into_copy.value = True
        _set(wizard.output.edit, paths["out"])
        wizard.mags.value = mags

    return fill


def downsample(name: str = "ds") -> Callable[[Any, Paths], None]:
    def fill(wizard, paths: Paths) -> None:
        _set(wizard.choice.dataset, paths[name])

    return fill


def convert(source: str = "stack", target: str = "out") -> Callable[[Any, Paths], None]:
    def fill(wizard, paths: Paths) -> None:
        _set(wizard.input, paths[source])
        _set(wizard.output, paths[target])
        wizard.job_options.workers.value = 2

    return fill


def merge(annotation: str) -> Callable[[Any, Paths], None]:
    def fill(wizard, paths: Paths) -> None:
        _set(wizard.annotation_file, paths[annotation])
        _set(wizard.choice.dataset, paths["seg"])
        wizard.choice.layer.value = "segmentation"

    return fill


# ---- the catalogue ----------------------------------------------------------------------------------

_DS = {"ds": "ds", "out": "out", "victim": DATA_FILE, "header": HEADER, "properties": PROPERTIES}
_STACK = {"stack": "stack", "out": "out"}
_SEG = {"seg": "seg"}
COMPRESS = ("compress", "{ds}", "{out}", "-q")
NOTHING_TO_CONVERT = (
    r"{path}: cannot tell what this is: not NIFTI \(\.nii, \.nii\.gz\), KNOSSOS cubes, a tiled stack or image "
    r"slices \(.*\)"
)
INFO = ("info", "{ds}")

ROWS: tuple[Row, ...] = (
    # ---- WKW files
    Row(
        "wkw-truncated",
        "truncated `.wkw` data file",
        _damaged_data_file(lambda content: content[:4000]),
        _DS,
        COMPRESS,
        r"{victim}: raw WKW file is truncated \(4000 bytes\)",
        Reader("warns", on_read=True),
        Wizard("CompressWizard", "run", compress_into()),
    ),
    Row(
        "wkw-empty",
        "zero-length `.wkw` data file",
        _damaged_data_file(lambda content: b""),
        _DS,
        COMPRESS,
        r"{victim}: WKW header is truncated \(0 of 16 bytes\)",
        Reader("warns", on_read=True),
        Wizard("CompressWizard", "run", compress_into()),
    ),
    Row(
        "wkw-bad-magic",
        "`.wkw` data file with wrong magic bytes",
        _damaged_data_file(lambda content: b"XYZ" + content[3:]),
        _DS,
        COMPRESS,
        r"{victim}: not a WKW file \(bad magic bytes b'XYZ'\)",
        Reader("warns", on_read=True),
        Wizard("CompressWizard", "run", compress_into()),
    ),
    Row(
        "header-bad-magic",
        "`header.wkw` with wrong magic bytes",
        _header_bad_magic,
        _DS,
        INFO,
        r"{header}: not a WKW file \(bad magic bytes b'XYZ'\)",
        Reader("raises"),
        Wizard("DownsampleWizard", "run", downsample()),
    ),
    Row(
        "wkw-header-mismatch",
        "data file header disagrees with its mag's `header.wkw`",
        _file_header_disagrees,
        _DS,
        COMPRESS,
        r"{victim}: the file's header does not match header.wkw of its mag",
        Reader("warns", on_read=True),
        Wizard("CompressWizard", "run", compress_into()),
    ),
    Row(
        "header-vs-properties",
        "`header.wkw` disagrees with the properties (element class)",
        _properties_disagree,
        _DS,
        INFO,
        r"{header}: holds 3 x uint8 voxels, but datasource-properties.json gives layer 'color' elementClass "
        r"'uint16' \(1 x uint16\)",
        Reader("warns"),
        Wizard("CompressWizard", "run", compress_into()),
    ),
    # ---- datasource-properties.json
    Row(
        "json-malformed",
        "malformed JSON in `datasource-properties.json`",
        _properties_text(lambda text: text.replace('"dataLayers": [', '"dataLayers": [,', 1)),
        _DS,
        INFO,
        r"{properties}: not valid JSON \(line \d+, column \d+: .*\); the file may be half-written",
        Reader("warns"),
        Wizard("CompressWizard", "run", compress_into()),
    ),
    Row(
        "json-half-written",
        "half-written `datasource-properties.json` (cut in the middle)",
        _properties_text(lambda text: text[: len(text) // 2]),
        _DS,
        INFO,
        r"{properties}: not valid JSON \(line \d+, column \d+: .*\); the file may be half-written",
        Reader("warns"),
        Wizard("DownsampleWizard", "run", downsample()),
    ),
    Row(
        "json-huge",
        "huge `datasource-properties.json` (200 MB)",
        _huge_properties,
        _DS,
        INFO,
        r"{properties}: 200\.0 MiB, too large for a properties file \(the limit is \d+ MiB\)",
        Reader("warns"),
        Wizard("CompressWizard", "run", compress_into()),
        note="refused by its size before anything is read or parsed",
    ),
    Row(
        "element-class-unknown",
        "unknown `elementClass`",
        _unknown_element_class,
        _DS,
        INFO,
        r"{properties}: unknown elementClass 'complex64'",
        Reader("warns"),
        Wizard("CompressWizard", "run", compress_into()),
    ),
    Row(
        "mag-missing",
        "a mag listed in the properties but missing on disk",
        _mag_missing,
        {**_DS, "mag": "ds/color/2-2-1"},
        ("export-tiff", "{ds}", "{out}", "--mag", "2-2-1", "-q"),
        r"{mag}: mag 2-2-1 of layer 'color' is listed in datasource-properties.json but missing on disk "
        r"\(mags on disk: 1\)",
        Reader("warns", message=r"{properties}: layer 'color' lists mag\(s\) 2-2-1 but .*; using the mags that exist"),
        Wizard("CompressWizard", "run", compress_into(mags="2-2-1")),
    ),
    Row(
        "no-layers",
        "a dataset with no layers",
        _no_layers,
        _DS,
        COMPRESS,
        r"{ds}: the dataset has no WKW layers",
        Reader("raises", message=r"{ds}: the dataset has no layers"),
        Wizard("CompressWizard", "run", compress_into()),
    ),
    # ---- image stacks and NIFTI
    Row(
        "image-unreadable",
        "unreadable image file (permission 000)",
        _unreadable_slice,
        {**_STACK, "slice": "stack/slice_1.png"},
        ("cube", "{stack}", "{out}", "-q"),
        r"{slice}: cannot read this image \(\[Errno 13\] Permission denied: .*\)",
        Reader("declines", path="{stack}"),
        None,
        nonroot=True,
        note="runs as the user nobody; the wizard runs in the test's (root) process, where permission bits "
        "mean nothing",
    ),
    Row(
        "images-mis-sized",
        "images of different sizes in a stack",
        _mis_sized,
        {**_STACK, "slice": "stack/slice_2.png"},
        ("cube", "{stack}", "{out}", "-q"),
        r"{slice}: slice is 52 x 30 pixels but slice_0\.png is 40 x 30; pass --pad to pad smaller slices at the "
        r"bottom/right",
        Reader("declines", path="{stack}"),
        Wizard(
            "CubingWizard",
            "run",
            convert(),
            message=r"{slice}: slice is 52 x 30 pixels but slice_0\.png is 40 x 30; tick 'pad smaller slices' to pad "
            r"smaller slices at the bottom/right",
        ),
    ),
    Row(
        "text-as-tif",
        "a file named like an image that is none (`a.tif` holding text)",
        _text_as_tif,
        {**_STACK, "tif": "stack/a.tif"},
        ("convert", "{stack}", "{out}", "-q"),
        r"{tif}: cannot read this TIFF \(not a TIFF file: header=b'this'\)",
        Reader("declines", path="{stack}"),
        Wizard("ConvertWizard", "run", convert()),
    ),
    Row(
        "nifti-4d",
        "4D NIFTI",
        _nifti_4d,
        {"nii": "functional.nii", "out": "out"},
        ("convert-nifti", "{nii}", "{out}", "-q"),
        r"{nii}: a 4D NIFTI \(17 x 21 x 3 x 20\) cannot be converted: only 3D volumes can \(axes past the third "
        r"must have size 1\); split it into 3D files first",
        Reader("declines", path="{nii}"),
        Wizard("NiftiWizard", "run", convert("nii")),
    ),
    Row(
        "nifti-5d",
        "5D NIFTI",
        _nifti_5d,
        {"nii": "five.nii", "out": "out"},
        ("convert", "{nii}", "{out}", "-q"),
        r"{nii}: a 5D NIFTI \(6 x 5 x 4 x 2 x 3\) cannot be converted: only 3D volumes can \(axes past the third "
        r"must have size 1\); split it into 3D files first",
        Reader("declines", path="{nii}"),
        Wizard("ConvertWizard", "run", convert("nii")),
    ),
    # ---- folders and paths
    Row(
        "empty-folder-input",
        "an empty folder to convert",
        _empty,
        {"empty": "empty", "out": "out"},
        ("convert", "{empty}", "{out}", "-q"),
        NOTHING_TO_CONVERT.replace("{path}", "{empty}"),
        Reader("declines", path="{empty}"),
        Wizard("ConvertWizard", "form", convert("empty")),
    ),
    Row(
        "empty-folder-dataset",
        "an empty folder as a dataset",
        _empty,
        {"ds": "empty", "out": "out"},
        COMPRESS,
        r"{ds}: no WKW layer \(no <layer>/<mag>/header.wkw\) found",
        Reader("declines"),
        Wizard("CompressWizard", "form", compress_into(), message=r"{ds} is not a WKW dataset"),
    ),
    Row(
        "unicode-paths",
        "unicode and spaces in paths (must work)",
        _unicode,
        {"stack": "Ünïcødé slices ✓", "out": "zïel mit Leerzeichen ✓/daten", "ds": "dätensatz mit Lücken ✓"},
        ("convert", "{stack}", "{out}", "-q"),
        "",
        Reader("opens"),
        Wizard("CubingWizard", "succeeds", convert()),
        works=True,
    ),
    Row(
        "target-inside-source",
        "a target inside the source",
        _target_inside,
        {"ds": "ds", "out": "ds/recubed"},
        ("recube", "{ds}", "{out}", "-q"),
        r"{out}: the target is inside the source {ds}; choose a folder outside it",
        Reader("n/a"),
        Wizard("CompressWizard", "form", compress_into(), message=r"{out} is inside the dataset {ds}"),
    ),
    Row(
        "target-is-file",
        "a target that is a file",
        _target_file,
        {"stack": "stack", "out": "out.txt"},
        ("cube", "{stack}", "{out}", "-q"),
        r"Invalid value for 'TARGET': Directory '{out}' is a file",
        Reader("n/a"),
        Wizard("CubingWizard", "form", convert(), message=r"{out} is a file; the output must be a folder"),
    ),
    Row(
        "target-not-empty",
        "an existing non-empty target",
        _target_not_empty,
        _STACK,
        ("convert", "{stack}", "{out}", "-q"),
        r"{out}: the target folder exists and is not a WKW dataset",
        Reader("n/a"),
        Wizard("ConvertWizard", "form", convert(), message=r"{out} exists and is not a WKW dataset"),
    ),
    Row(
        "permission-denied",
        "a target where the user may not write (permission denied)",
        _target_forbidden,
        {"stack": "stack", "locked": "locked", "out": "locked/out"},
        ("convert", "{stack}", "{out}", "-q"),
        r"{locked}: cannot write here \(permission denied\)",
        Reader("n/a"),
        None,
        nonroot=True,
        note="runs as the user nobody; the wizard runs in the test's (root) process, where permission bits "
        "mean nothing",
    ),
    Row(
        "folder-symlink-loop",
        "a folder symlinked into itself",
        _folder_loop,
        {"loop": "loop", "out": "out"},
        ("convert", "{loop}", "{out}", "-q"),
        NOTHING_TO_CONVERT.replace("{path}", "{loop}"),
        Reader("declines", path="{loop}"),
        Wizard("ConvertWizard", "form", convert("loop")),
    ),
    Row(
        "layer-symlink-loop",
        "a dataset whose layer is a symlink loop",
        _layer_loop,
        {**_DS, "layer": "ds/segmentation"},
        ("compress", "{ds}", "{out}", "--layer-name", "segmentation", "-q"),
        r"{layer}: layer 'segmentation' has no mags on disk \(Too many levels of symbolic links\)",
        Reader(
            "warns",
            message=r"{properties}: layer 'segmentation' lists mag\(s\) 1 but {layer} cannot be read "
            r"\(Too many levels of symbolic links\); the layer has no readable mag and is skipped",
        ),
        Wizard("CompressWizard", "run", compress_into()),
    ),
    # ---- WEBKNOSSOS annotations
    Row(
        "zip-climbing-entry",
        "annotation ZIP with a climbing entry (`../x`)",
        _annotation(_climbing, "climb.zip"),
        {"zip": "climb.zip", **_SEG},
        ("annotation-info", "{zip}"),
        r"{zip}: entry '\.\./escape\.txt' climbs out of the archive; refusing to open it",
        Reader("raises", path="{zip}"),
        Wizard("MergeAnnotationWizard", "run", merge("zip")),
    ),
    Row(
        "zip-truncated-inner",
        "annotation ZIP with a truncated inner ZIP",
        _annotation(_cut_inner, "cut.zip"),
        {"zip": "cut.zip", **_SEG},
        ("annotation-info", "{zip}"),
        r"{zip}!data_Volume\.zip: truncated or corrupt ZIP \(its end record is missing\)",
        Reader("raises", path="{zip}"),
        Wizard("MergeAnnotationWizard", "run", merge("zip")),
    ),
    Row(
        "nml-broken-xml",
        "NML with broken XML",
        _nml_file(b"<things><parameters><scale x='1' y='1' z='1'/></parameters>"),
        {"nml": "broken.nml", **_SEG},
        ("annotation-info", "{nml}"),
        r"{nml}: not valid XML \(line 1, column \d+: no element found\)",
        Reader("raises", path="{nml}"),
        Wizard("MergeAnnotationWizard", "run", merge("nml")),
    ),
    Row(
        "nml-unknown-version",
        'NML of an unknown version (`<things version="2">`)',
        _nml_file(
            b'<things version="2"><parameters><experiment name="d"/><scale x="1" y="1" z="1"/></parameters></things>'
        ),
        {"nml": "broken.nml", **_SEG},
        ("annotation-info", "{nml}"),
        r"{nml}: unknown NML version 2 \(only version 1 is known\)",
        Reader("raises", path="{nml}"),
        Wizard("MergeAnnotationWizard", "run", merge("nml")),
    ),
    Row(
        "bucket-wrong-size",
        "annotation bucket of the wrong size",
        _bucket_wrong_size,
        {"zip": "cut.zip", **_SEG},
        ("merge-annotation", "{zip}", "{seg}", "--layer-name", "segmentation", "-q"),
        r"{zip}!data_Volume\.zip!1/z0/y0/x0\.wkw: bucket is truncated or corrupt \(\d+ bytes, table says \d+\)",
        Reader("warns", path="{zip}", on_read=True),
        Wizard("MergeAnnotationWizard", "run", merge("zip")),
    ),
    Row(
        "zarr3-broken-json",
        "zarr3 layer with a broken `zarr.json`",
        _zarr_json,
        {"ds": "ds", "out": "out", "json": "ds/color/1/zarr.json"},
        INFO,
        r"{ds}/color/1: cannot read zarr data \(.*{json}.*Invalid JSON\)",
        Reader("raises"),
        Wizard("DownsampleWizard", "run", downsample()),
    ),
)

BY_ID = {row.id: row for row in ROWS}
assert len(BY_ID) == len(ROWS), "row ids must differ"


def build(row: Row, root: Path) -> Paths:
    """Build the row's input in the empty folder ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    row.build(root)
    return Paths(root, row.files)
