"""`aldlab kb` commands: clear messages, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aldlab.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_validate_and_stats_on_shipped_kb() -> None:
    result = run("kb", "validate")
    assert result.returncode == 0, result.stderr
    stats = run("kb", "stats", "--json")
    data = json.loads(stats.stdout)
    assert data["documents"] >= 400 and data["topics"]["vacuum_gauge"] >= 20
    # Every shipped document says how people ask for it (4 each, written by hand).
    assert data["without_questions"] == 0 and data["questions"] >= 4 * data["documents"]


def test_import_bad_file_gives_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "docs.json"
    bad.write_text("{ not json", "utf-8")
    result = run("kb", "import", str(bad), "--kb", str(tmp_path / "kb"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{bad}:1" in result.stderr and "JSON" in result.stderr
    assert not (tmp_path / "kb").exists()


def test_import_of_a_lone_surrogate_names_the_field(tmp_path: Path) -> None:
    """JSON may escape a lone surrogate; the KB write used to fail with a traceback."""
    bad = tmp_path / "docs.json"
    bad.write_text('{"documents": [{"id": "x-1", "keywords": ["\\ud800"], "text": "ALD 본문입니다."}]}', "utf-8")
    result = run("kb", "import", str(bad), "--kb", str(tmp_path / "kb"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "documents.0.keywords.0" in result.stderr and "surrogate" in result.stderr
    assert not (tmp_path / "kb").exists()


def test_import_legacy_then_search(legacy_dir: Path, tmp_path: Path) -> None:
    result = run("kb", "import", str(legacy_dir / "docs_ald.json"), "--kb", str(tmp_path / "kb"))
    assert result.returncode == 0, result.stderr
    assert "257" in result.stdout
    synonyms = run("kb", "import", str(legacy_dir / "synonyms.json"), "--kb", str(tmp_path / "kb"))
    assert synonyms.returncode == 0, synonyms.stderr
    found = run("kb", "search", "loadlock", "--kb", str(tmp_path / "kb"), "--limit", "3")
    assert found.returncode == 0 and "로드락" in found.stdout


def test_import_reports_definition_conflicts(legacy_dir: Path, tmp_path: Path) -> None:
    result = run("kb", "import", str(legacy_dir / "docs_ald.json"), "--kb", str(tmp_path / "kb"), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "definition conflicts" in result.stdout
    assert "정의 충돌 / definition conflict: 233 — 'VG12'" in result.stderr


def test_feedback_json_as_kb_says_not_a_kb(legacy_dir: Path) -> None:
    result = run("kb", "stats", "--kb", str(legacy_dir / "feedback_data.json"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "not a KB" in result.stderr and "feedback_data.json" in result.stderr
    assert "빈 텍스트" not in result.stderr
