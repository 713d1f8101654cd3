"""Strict document ids/topics in the KB validator, and moves between topics that survive a crash."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import aldlab.kb.io as schema
from aldlab.kb.io import load_kb, save_kb
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.kb.validate import validate_kb


def _doc(doc_id: str, topic: str = "purge") -> Document:
    return Document(id=doc_id, title="Purge", topic=topic, keywords=[], text="Purge는 남은 가스를 불활성 가스로 밀어내는 단계이다. " * 3, source="test")


@pytest.mark.parametrize("doc_id", ["../../victim", "a/b", "Purge-1", "퍼지-1", "-x"])
def test_validator_refuses_ids_that_are_not_plain_names(doc_id: str) -> None:
    report = validate_kb(KnowledgeBase(name="t", documents=[_doc(doc_id)]), check_near_duplicates=False)
    assert any("must match" in issue.en for issue in report.errors)


def test_validator_refuses_topics_that_would_be_paths() -> None:
    report = validate_kb(KnowledgeBase(name="t", documents=[_doc("purge-001", "../x")]), check_near_duplicates=False)
    assert any("topic" in issue.en and "must match" in issue.en for issue in report.errors)


def test_shipped_style_names_pass() -> None:
    report = validate_kb(KnowledgeBase(name="t", documents=[_doc("purge-001"), _doc("221", "legacy")]), check_near_duplicates=False)
    assert not [i for i in report.errors if "must match" in i.en]


def test_a_crash_while_moving_a_document_never_loses_it(tmp_path: Path, monkeypatch) -> None:
    kb = KnowledgeBase(name="t", documents=[_doc("purge-001"), _doc("purge-002")])
    save_kb(kb, tmp_path)
    moved = KnowledgeBase(name="t", documents=[_doc("purge-001"), dataclasses.replace(_doc("purge-002"), topic="flow")])
    writes: list[str] = []
    real = schema.atomic_write_jsonl

    def crash_after_first_write(path, rows):  # noqa: ANN001, ANN202
        if writes:
            raise KeyboardInterrupt  # the process dies between the two topic files
        writes.append(Path(path).stem)
        return real(path, rows)

    monkeypatch.setattr(schema, "atomic_write_jsonl", crash_after_first_write)
    with pytest.raises(KeyboardInterrupt):
        save_kb(moved, tmp_path)
    assert writes == ["flow"]  # the receiving file first
    on_disk = {p.stem: p.read_text(encoding="utf-8") for p in (tmp_path / "documents").glob("*.jsonl")}
    assert "purge-002" in on_disk["flow"] and "purge-002" in on_disk["purge"]  # duplicated, not lost
    monkeypatch.setattr(schema, "atomic_write_jsonl", real)
    save_kb(moved, tmp_path)
    assert {d.id: d.topic for d in load_kb(tmp_path).documents} == {"purge-001": "purge", "purge-002": "flow"}
