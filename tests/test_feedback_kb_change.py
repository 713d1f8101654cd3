"""Feedback against KB edits and snapshot size (issue 22): a review sees which cited
documents changed since the answer, and a like's passages are stored once, by hash."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aldlab.serve.feedback_commands import feedback_app
from aldlab.serve.testing import TINY_DOCUMENTS, write_tiny_kb
from aldlab.store import FeedbackKbChanged, KbNow, Store

runner = CliRunner()
CONTEXTS = [{"id": d.id, "title": d.title, "text": d.text * 40} for d in TINY_DOCUMENTS]  # ~3-5 KB each


def liked(store: Store, n: int) -> list[int]:
    ids = []
    for i in range(n):
        aid = store.log_answer(question=f"질문 {i}", answer="답", model="ft", context_ids=[c["id"] for c in CONTEXTS],
                               kb_hash="old", token="t")
        ids.append(store.add_feedback(aid, "like", token="t", contexts=CONTEXTS))
    return ids


def test_a_like_stores_its_passages_once(tmp_path: Path) -> None:
    """Rated answers are kept for good; the 50th like citing the same passages adds no texts."""
    store = Store(tmp_path / "s.sqlite3")
    liked(store, 50)
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM passages").fetchone()[0] == len(CONTEXTS)
        biggest = conn.execute("SELECT MAX(LENGTH(contexts_json)) FROM feedback").fetchone()[0]
    assert biggest < 400  # references only; the texts are ~12 KB
    rows = store.export_feedback_rows(status="pending")
    assert len(rows) == 50 and [c["text"] for c in rows[-1]["contexts"]] == [c["text"] for c in CONTEXTS]


def test_retention_keeps_rated_answers(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    liked(store, 3)
    for i in range(5):
        store.log_answer(question=f"평가 없음 {i}", answer="답", model="ft", token="t")
    assert store.purge_answers(max_age_days=0, max_rows=1) == 4
    assert len(store.export_feedback_rows(status="pending")) == 3


def test_review_names_cited_documents_changed_in_the_kb_now(tmp_path: Path) -> None:
    """A hand edit (no audit row) is seen when the reviewer's KB differs from the snapshot."""
    store = Store(tmp_path / "s.sqlite3")
    [fid] = liked(store, 1)
    texts = {c["id"]: c["text"] for c in CONTEXTS}
    same = KbNow("old", texts)
    changed = KbNow("new", {**texts, "tiny-002": "손으로 고친 본문"})
    with pytest.raises(FeedbackKbChanged) as refused:
        store.review_feedback(fid, "approved", "kim", revision=1, kb_now=changed)
    assert refused.value.changed == ["tiny-002"]
    row = store.review_feedback(fid, "approved", "kim", revision=1, kb_now=same)
    assert row["review"]["kb_changed"] == [] and row["review"]["kb_hash"] == "old"


def test_cli_approve_stops_on_a_changed_document_unless_accepted(tmp_path: Path) -> None:
    kb = write_tiny_kb(tmp_path / "kb")
    store = Store(tmp_path / "s.sqlite3")
    [fid] = liked(store, 1)  # snapshot texts are 40x the KB's: every cited document differs now
    args = ["approve", str(fid), "--revision", "1", "--reviewer", "kim", "--db", str(store.path), "--kb", str(kb)]
    result = runner.invoke(feedback_app, args)
    assert result.exit_code != 0 and "tiny-001" in str(result.exception) and "--accept-kb-change" in result.exception.hint
    result = runner.invoke(feedback_app, [*args, "--accept-kb-change"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "approved.jsonl"
    runner.invoke(feedback_app, ["export", str(out), "--db", str(store.path)])
    [row] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert row["review"]["kb_changed"] == ["tiny-001", "tiny-002", "tiny-003"] and row["kb_hash"] == "old"
