"""Import layering, read from the source: every `aldlab.X` import goes to the same or a lower floor.

Floors, bottom to top (README "구조 / Layout"):

    5  eval, serve        use the artefacts and the assistant
    4  data, train        make the dataset and the adapter
    3  rag                retrieval and answering (data uses the real retriever for hard negatives)
    2  llm                model loading, chat template, generation
    1  kb, store, manifest  records: the KB, the feedback store, manifests that record a KB
    0  shared modules     errors, files, settings, progress, config, cli_options, prompts, evalset, text

`cli.py` (with `cli_usage.py`), `pipeline.py`, `improve.py` and each package's `commands.py` are wiring: they may import any
floor, and nothing but wiring may import them. Imports inside functions and under
TYPE_CHECKING count too: a type from a higher floor is still a dependency on that floor.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "aldlab"

FLOORS: list[set[str]] = [
    {"errors", "files", "settings", "progress", "config", "cli_options", "prompts", "evalset", "text"},
    {"kb", "store", "manifest"},
    {"llm"},
    {"rag"},
    {"data", "train"},
    {"eval", "serve"},
]
FLOOR = {unit: level for level, units in enumerate(FLOORS) for unit in units}
#: improve.py chains data, train, eval and the registry like pipeline.py chains the stages;
#: cli_usage.py is the root command's class (typer usage errors in Korean), part of cli.py.
WIRING_MODULES = {"cli", "cli_usage", "pipeline", "improve"}


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


def _unit_of_file(rel: Path) -> str:
    """'rag/index.py' -> 'rag', 'prompts.py' -> 'prompts'."""
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _is_wiring(rel: Path) -> bool:
    return rel.name == "commands.py" or (len(rel.parts) == 1 and rel.stem in WIRING_MODULES)


def _is_wiring_module(module: str) -> bool:
    parts = module.split(".")
    return (len(parts) >= 2 and parts[1] in WIRING_MODULES) or "commands" in parts[2:]


def floor_violations(src: Path) -> dict[str, list[str]]:
    """File -> the `aldlab` modules it imports from a higher floor (or from wiring)."""
    found: dict[str, list[str]] = {}
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        if _is_wiring(rel) or rel.name == "__init__.py" and len(rel.parts) == 1:
            continue
        own = FLOOR[_unit_of_file(rel)]
        bad = sorted(
            m
            for m in _imported_modules(path)
            if m.startswith("aldlab.")
            and (_is_wiring_module(m) or FLOOR.get(m.split(".")[1], -1) > own)
        )
        if bad:
            found[str(rel)] = bad
    return found


def test_every_import_goes_to_the_same_or_a_lower_floor() -> None:
    assert floor_violations(SRC) == {}


def test_every_package_and_top_level_module_has_a_floor() -> None:
    units = {_unit_of_file(p.relative_to(SRC)) for p in SRC.rglob("*.py")} - WIRING_MODULES - {"__init__"}
    assert units - FLOOR.keys() == set(), "a new package needs a floor in FLOORS (and the README picture)"


def test_the_floor_check_finds_a_back_arrow_and_lets_wiring_through(tmp_path: Path) -> None:
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "audit.py").write_text("def f():\n    from aldlab.rag.index import load_or_build_index\n")
    (tmp_path / "kb" / "commands.py").write_text("from aldlab.rag.index import document_embeddings\n")
    (tmp_path / "kb" / "io.py").write_text("from aldlab.files import iter_jsonl\nfrom aldlab.kb.schema import Document\n")
    (tmp_path / "text.py").write_text("from aldlab.kb.commands import app\n")
    assert floor_violations(tmp_path) == {
        "kb/audit.py": ["aldlab.rag.index", "aldlab.rag.index.load_or_build_index"],
        "text.py": ["aldlab.kb.commands", "aldlab.kb.commands.app"],
    }


@pytest.mark.parametrize("package", ["llm", "rag", "serve", "eval"])
def test_no_import_of_the_training_stage(package: str) -> None:
    """Serving and eval sit above train but never need it: the adapter is a directory on disk."""
    offenders = {
        str(path.relative_to(SRC)): sorted(m for m in _imported_modules(path) if m.startswith("aldlab.train"))
        for path in sorted((SRC / package).rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize(("package", "other"), [("data", "train"), ("train", "data")])
def test_data_and_train_talk_through_the_dataset_files(package: str, other: str) -> None:
    offenders = {
        str(path.relative_to(SRC)): sorted(m for m in _imported_modules(path) if m.startswith(f"aldlab.{other}"))
        for path in sorted((SRC / package).rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_kb_schema_is_types_only_and_loaders_do_not_read_the_native_format() -> None:
    assert not [m for m in _imported_modules(SRC / "kb" / "schema.py") if m.startswith("aldlab.kb")]
    assert not [m for m in _imported_modules(SRC / "kb" / "loaders.py") if m.startswith("aldlab.kb.io")]
