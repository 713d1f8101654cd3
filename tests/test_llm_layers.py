"""Import layering: serving, eval and the LLM layer never import the training stage, and the
KB types import no other KB module (no loaders <-> schema circle)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "aldlab"


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at top level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("package", ["llm", "rag", "serve", "eval"])
def test_no_import_of_the_training_stage(package: str) -> None:
    offenders = {
        str(path.relative_to(SRC)): sorted(m for m in _imported_modules(path) if m.startswith("aldlab.train"))
        for path in sorted((SRC / package).rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_llm_layer_imports_nothing_above_it() -> None:
    above = ("aldlab.train", "aldlab.rag", "aldlab.serve", "aldlab.eval", "aldlab.data", "aldlab.pipeline")
    offenders = {
        str(path.relative_to(SRC)): sorted(m for m in _imported_modules(path) if m.startswith(above))
        for path in sorted((SRC / "llm").rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_kb_schema_is_types_only_and_loaders_do_not_read_the_native_format() -> None:
    assert not [m for m in _imported_modules(SRC / "kb" / "schema.py") if m.startswith("aldlab.kb")]
    assert not [m for m in _imported_modules(SRC / "kb" / "loaders.py") if m.startswith("aldlab.kb.io")]
