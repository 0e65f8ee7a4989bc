"""Every import of the headless core points down: no core module imports the job layer,
the operations, the converters, the command line, the widgets, napari or Qt (at module
level or inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "src" / "napari_wkw" / "core"
ABOVE = ("jobs", "ops", "convert", "cli", "_widgets", "_reader", "_writer", "_annotation_reader",
         "_annotation_writer", "_sample_data", "demo")
FOREIGN = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a core module, relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from ..jobs import x -> napari_wkw.jobs; from .units import x -> napari_wkw.core.units
                base = ["napari_wkw", "core"][: 3 - node.level] if node.level <= 2 else []
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
    return found


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_imports_point_down(path):
    for line, module in imported_modules(path):
        parts = module.split(".")
        if parts[0] == "napari_wkw":
            assert parts[1:2] in (["core"], []), f"{path.name}:{line} imports {module}, which sits above the core"
            assert not (len(parts) > 1 and parts[1] in ABOVE), f"{path.name}:{line} imports {module}"
        assert parts[0] not in FOREIGN, f"{path.name}:{line} imports {module}: the core stays headless"


def test_the_check_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from ..jobs.runner import Runner\n")
    assert (2, "napari_wkw.jobs.runner") in imported_modules(bad)
