#!/usr/bin/env python
"""Write docs/bad-inputs.md from the bad-input catalogue (tests/badinput/catalogue.py).

    .venv/bin/python scripts/bad_inputs_table.py           # (re)write the doc
    .venv/bin/python scripts/bad_inputs_table.py --check   # exit 1 when the doc is not what it writes

The doc is never edited by hand: change the catalogue and run this script
(tests/badinput/test_doc.py fails while the two differ).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "bad-inputs.md"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.badinput.catalogue import ROWS, Row, readable  # noqa: E402

INTRO = """\
# Bad inputs

What napari-wkw does with every broken or awkward input we know of, and the test that
holds it to that. Each bad input gives **one line naming the file and the problem**:

- **command line**: `napari-wkw: error: <file>: <problem>` on stderr, exit code 2, never a
  traceback (warnings before it are `napari-wkw: warning: ...` lines);
- **napari reader**: an error napari shows (the reader raises), or, where napari-wkw can
  still show something, the layers with a `WKWWarning` naming the file (a notification);
  a broken data file reads as zeros there, with the warning, instead of stopping the viewer;
- **wizards**: the problem listed in the form before Run (Run stays disabled), or one
  `show_error` notification naming the file after Run;

and the viewer keeps working afterwards (it takes new layers).

Paths below are relative to the folder the input was built in; the real messages carry
the full paths. The messages are regular expressions in the catalogue, shown here with
`…` for the parts that vary.

This file is generated from `tests/badinput/catalogue.py` by
`scripts/bad_inputs_table.py`; `tests/badinput/test_doc.py` fails when it is out of date.
The tests are `tests/badinput/test_cli.py::test_cli[<id>]` (or `test_cli_as_another_user`),
`test_reader.py::test_reader[<id>]` with `test_one_viewer_survives_every_bad_input` (one
real viewer opens them all in turn), and `test_wizards.py::test_wizard[<id>]` (all in one
real viewer, which then still takes a new layer).
"""

DECISIONS = """\
## Decisions

- **Huge properties files** are refused by their size before a byte is read or parsed:
  `datasource-properties.json` over {limit} MiB is no properties file (real ones are
  kilobytes), and parsing 200 MB of JSON would take seconds and gigabytes. The napari
  reader then shows the layers found on disk, with the warning.
- **Broken data files** (truncated, empty, wrong magic bytes, a header that disagrees with
  `header.wkw`) are checked before every read: libwkw reads such files as zeros without a
  word. Operations stop with the error; the viewer shows zeros there and warns once per file.
- **`header.wkw` against the properties**: a mag whose header holds other voxels than the
  layer's `elementClass` says is an error (its voxels would be misread); the reader falls
  back to what is on disk, with the warning. `napari-wkw metadata --refresh` rewrites the
  properties from the headers.
- **Targets inside their source** (`recube`, `compress` into a copy, `export-tiff`) are
  refused: the dataset would hold its own copy.
- **Usage errors** (a target that is a file, a bad option value) are one line too, not
  click's usage block.
- **Permission rows** need a user other than root: root ignores permission bits. Their
  commands run as the user `nobody` through `setpriv --reuid=nobody --regid=nogroup
  --clear-groups` (else `runuser -u nobody --`); without either the test is skipped with
  the reason, and fails when `NAPARI_WKW_REQUIRE_NONROOT` is set. Their wizards run in the
  test's own process and are not exercised as root.
- **Unicode and spaces in paths** are no bad input: conversion, reading and the wizards
  must work with them, and the tests check that they do.
"""

READER = {
    "raises": "error: {message}",
    "warns": "opens what it can; warning {message}",
    "opens": "opens",
    "declines": "not claimed (no WKW dataset or annotation): left to other readers",
    "n/a": "— (an output, no reader input)",
}
WIZARD = {
    "form": "listed in the form before Run",
    "run": "error notification after Run",
    "succeeds": "runs to the end",
}


def _code(text: str) -> str:
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _command(row: Row) -> str:
    return _code(shlex.join(["napari-wkw", *(readable(row, part) if "{" in part else part for part in row.cli)]))


def _sees(row: Row) -> str:
    if row.works:
        return "exit 0, no error: the dataset is written"
    return _code("napari-wkw: error: " + readable(row))


def _reader(row: Row) -> str:
    reader = row.reader
    message = _code(readable(row, reader.message)) if reader.outcome in ("raises", "warns") else ""
    text = READER[reader.outcome].format(message=message)
    if reader.on_read:
        text += " when the voxels are read (zeros shown there)"
    if reader.path != "{ds}" and reader.outcome != "n/a":
        text = f"{_code(readable(row, reader.path))}: {text}"
    return text


def _wizard(row: Row) -> str:
    if row.wizard is None:
        return "— (see note)"
    text = f"{row.wizard.name}: {WIZARD[row.wizard.outcome]}"
    if row.wizard.message is not None:
        text += f": {_code(readable(row, row.wizard.message))}"
    return text


def _tests(row: Row) -> str:
    cli = "test_cli_as_another_user" if row.nonroot else "test_cli"
    names = [cli]
    if row.reader.outcome != "n/a":
        names.append("test_reader")
    if row.wizard is not None:
        names.append("test_wizard")
    return f"`{row.id}`: " + ", ".join(names)


def render() -> str:
    from napari_wkw.core.properties import MAX_PROPERTIES_BYTES

    lines = [
        INTRO,
        "## The catalogue",
        "",
        "| Input | Command | What the user sees | napari reader | Wizard | Tests |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    notes = []
    for row in ROWS:
        name = _cell(row.input)
        if row.note:
            notes.append(f"{len(notes) + 1}. {row.input}: {row.note}.")
            name += f" [{len(notes)}]"
        cells = [name, _command(row), _sees(row), _reader(row), _wizard(row), _tests(row)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Notes:", "", *notes, "", DECISIONS.format(limit=MAX_PROPERTIES_BYTES >> 20)]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not DOC.is_file() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC} is out of date: run scripts/bad_inputs_table.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC} ({len(ROWS)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
