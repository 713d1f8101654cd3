"""KbWatcher: the one "has the KB on disk changed" check of the assistant and the server."""

from __future__ import annotations

from pathlib import Path

import pytest

import aldlab.kb.io as kb_io
from aldlab.errors import UserError
from aldlab.kb.io import KbWatcher
from rag_testkit import write_tiny_kb


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every KB read the watcher makes."""
    seen: list[Path] = []
    real = kb_io.load_kb
    monkeypatch.setattr(kb_io, "load_kb", lambda path: seen.append(path) or real(path))
    return seen


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + line, encoding="utf-8")


def test_reads_only_when_the_files_changed(tmp_path: Path, reads: list[Path]) -> None:
    kb_dir = write_tiny_kb(tmp_path / "kb")
    watcher = KbWatcher(kb_dir)
    assert watcher.read_if_changed() is None and watcher.read_if_changed() is None
    assert reads == []
    path = kb_dir / "documents" / "loadlock.jsonl"
    _append(path, path.read_text(encoding="utf-8").replace('"tiny-002"', '"tiny-099"'))
    kb = watcher.read_if_changed()
    assert kb is not None and "tiny-099" in kb.by_id() and len(reads) == 1
    assert watcher.read_if_changed() is None and len(reads) == 1


def test_unread_watcher_and_forget_read_on_the_next_check(tmp_path: Path, reads: list[Path]) -> None:
    kb_dir = write_tiny_kb(tmp_path / "kb")
    watcher = KbWatcher(kb_dir, read=False)
    assert watcher.read_if_changed() is not None and watcher.read_if_changed() is None
    watcher.forget()  # an edit that kept sizes and mtimes
    assert watcher.read_if_changed() is not None and len(reads) == 2


def test_checks_are_spaced_by_every_s(tmp_path: Path, reads: list[Path]) -> None:
    kb_dir = write_tiny_kb(tmp_path / "kb")
    watcher = KbWatcher(kb_dir, every_s=3600.0, read=False)
    assert watcher.read_if_changed() is not None
    _append(kb_dir / "kb.json", " ")  # a changed size: a different signature
    assert watcher.read_if_changed() is None and len(reads) == 1  # not checked again within the hour
    watcher.forget()
    assert watcher.read_if_changed() is not None and len(reads) == 2


def test_a_broken_kb_raises_and_is_tried_again(tmp_path: Path) -> None:
    kb_dir = write_tiny_kb(tmp_path / "kb")
    watcher = KbWatcher(kb_dir, every_s=3600.0)
    path = kb_dir / "documents" / "loadlock.jsonl"
    good = path.read_text(encoding="utf-8")
    _append(path, "{broken\n")
    for _ in range(2):  # still broken: raises again, the throttle does not hide it
        with pytest.raises(UserError):
            watcher.read_if_changed()
    path.write_text(good + good.replace('"tiny-002"', '"tiny-098"'), encoding="utf-8")
    kb = watcher.read_if_changed()
    assert kb is not None and "tiny-098" in kb.by_id()
