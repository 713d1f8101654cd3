"""Feedback against KB edits and snapshot size (issue 22): a review sees which cited
documents changed since the answer, a like's passages are stored once, by hash, and capped,
and rated answers have their own retention."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aldlab.serve.feedback_commands import feedback_app
from aldlab.serve.testing import TINY_DOCUMENTS, write_tiny_kb
from aldlab.store import FeedbackKbChanged, KbNow, Store
from aldlab.store.db import connection

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
    """Rated answers are kept long; the 50th like citing the same passages adds no texts."""
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


# ---------------------------------------------------------------- snapshot cap, rated retention

OLD = "2000-01-01T00:00:00+00:00"


def age_decision(store: Store, feedback_id: int) -> None:
    """Make an item (and its review decision, if any) look decades old."""
    with connection(store.path) as conn:
        conn.execute(
            "UPDATE feedback SET created_at = ?, updated_at = ?, reviewed_at = CASE WHEN reviewed_at IS NULL"
            " THEN NULL ELSE ? END WHERE id = ?",
            (OLD, OLD, OLD, feedback_id),
        )


def snapshot_of(store: Store, feedback_id: int) -> list[dict] | None:
    with connection(store.path) as conn:
        raw = conn.execute("SELECT contexts_json FROM feedback WHERE id = ?", (feedback_id,)).fetchone()[0]
    return None if raw is None else json.loads(raw)


def passage_count(store: Store) -> int:
    with connection(store.path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM passages").fetchone()[0])


def test_a_snapshot_keeps_whole_passages_up_to_its_cap(tmp_path: Path) -> None:
    """Best passages first, each whole; the rest by id, read from the KB at build time."""
    store = Store(tmp_path / "s.sqlite3")
    size = len(CONTEXTS[0]["text"]) + len(CONTEXTS[1]["text"])
    aid = store.log_answer(question="질문", answer="답", model="ft", context_ids=[c["id"] for c in CONTEXTS], token="t")
    fid = store.add_feedback(aid, "like", token="t", contexts=CONTEXTS, max_snapshot_chars=size)
    refs = snapshot_of(store, fid)
    assert [("passage" in r) for r in refs] == [True, True] + [False] * (len(CONTEXTS) - 2)
    assert [r["id"] for r in refs] == [c["id"] for c in CONTEXTS]  # every id is still recorded
    [row] = store.export_feedback_rows(status="pending")
    assert [c["text"] for c in row["contexts"]] == [CONTEXTS[0]["text"], CONTEXTS[1]["text"]] + [""] * (len(CONTEXTS) - 2)
    # A passage kept by id is not "changed": there is no snapshotted text to compare.
    texts = {c["id"]: c["text"] for c in CONTEXTS}
    assert store.review_feedback(fid, "approved", "kim", revision=1, kb_now=KbNow("h", texts))["review"]["kb_changed"] == []


def test_the_default_cap_bounds_a_snapshot_of_huge_passages(tmp_path: Path) -> None:
    from aldlab.store import SNAPSHOT_MAX_CHARS

    store = Store(tmp_path / "s.sqlite3")
    huge = [{"id": f"long-{i}", "title": "긴 문서", "text": "가" * 20_000} for i in range(10)]  # ~0.6 MB of UTF-8
    aid = store.log_answer(question="질문", answer="답", model="ft", context_ids=[c["id"] for c in huge], token="t")
    fid = store.add_feedback(aid, "like", token="t", contexts=huge)
    with connection(store.path) as conn:
        stored = conn.execute("SELECT SUM(LENGTH(text)) FROM passages").fetchone()[0]
    assert stored <= SNAPSHOT_MAX_CHARS and passage_count(store) == 2  # the two best; eight by id
    assert len(snapshot_of(store, fid)) == 10


def test_rated_retention_purges_old_rejections_and_keeps_training_targets(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    rejected, approved_like, dislike_alone, pending, recent_rejected = liked(store, 5)
    store.review_feedback(rejected, "rejected", "kim", revision=1)
    store.review_feedback(approved_like, "approved", "kim", revision=1)
    store.review_feedback(recent_rejected, "rejected", "kim", revision=1)
    aid = store.log_answer(question="싫어요", answer="답", model="ft", context_ids=["tiny-001"], token="t")
    dislike_alone = store.add_feedback(aid, "dislike", token="t", contexts=CONTEXTS[:1])  # no correction
    store.review_feedback(dislike_alone, "approved", "kim", revision=1)
    for fid in (rejected, approved_like, dislike_alone, pending):
        age_decision(store, fid)
    rejected_answer = next(r["answer_id"] for r in store.export_feedback_rows(status=None) if r["feedback_id"] == rejected)

    assert store.purge_rated_feedback(max_age_days=0).rejected == 0  # 0 = keep for good
    purged = store.purge_rated_feedback(max_age_days=90)
    assert (purged.rejected, purged.answers, purged.snapshots) == (1, 1, 1)
    left = {r["feedback_id"]: r for r in store.export_feedback_rows(status=None)}
    assert rejected not in left and store.get_answer(rejected_answer) is None
    assert recent_rejected in left  # decided lately: kept for the review history
    assert left[pending]["review"]["status"] == "pending"  # waits for a reviewer, however old
    # An approved training target keeps every passage text the dataset builder needs.
    assert [c["text"] for c in left[approved_like]["contexts"]] == [c["text"] for c in CONTEXTS]
    # A dislike without correction is never trained on: the decision stays, the texts go.
    assert snapshot_of(store, dislike_alone) is None and left[dislike_alone]["review"]["reviewer"] == "kim"
    assert passage_count(store) == len(CONTEXTS)  # still referenced by the kept items
    assert store.purge_rated_feedback(max_age_days=90) == type(purged)()  # nothing more to do


def test_rated_retention_deletes_passages_no_item_refers_to(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    [fid] = liked(store, 1)
    store.review_feedback(fid, "rejected", "kim", revision=1)
    age_decision(store, fid)
    assert passage_count(store) == len(CONTEXTS)
    purged = store.purge_rated_feedback(max_age_days=90)
    assert purged.passages == len(CONTEXTS) and passage_count(store) == 0


def test_a_resubmitted_answer_outlives_its_old_rejection(tmp_path: Path) -> None:
    """The answer stays while another item (here a pending resubmission) refers to it."""
    store = Store(tmp_path / "s.sqlite3")
    [first] = liked(store, 1)
    store.review_feedback(first, "rejected", "kim", revision=1)
    age_decision(store, first)
    [row] = store.export_feedback_rows(status="rejected")
    again = store.add_feedback(row["answer_id"], "dislike", correction="고친 답", token="t", contexts=CONTEXTS)
    purged = store.purge_rated_feedback(max_age_days=90)
    assert (purged.rejected, purged.answers, purged.passages) == (1, 0, 0)
    assert store.get_answer(row["answer_id"]) is not None
    assert [r["feedback_id"] for r in store.export_feedback_rows(status=None)] == [again]
