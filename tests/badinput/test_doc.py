"""docs/bad-inputs.md is what scripts/bad_inputs_table.py writes from the catalogue."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bad_inputs_table.py"


def test_the_committed_doc_is_what_the_script_writes():
    spec = importlib.util.spec_from_file_location("bad_inputs_table", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.DOC.is_file(), f"{script.DOC} is missing: run scripts/bad_inputs_table.py"
    assert script.DOC.read_text(encoding="utf-8") == script.render(), (
        f"{script.DOC} is out of date: run scripts/bad_inputs_table.py"
    )
