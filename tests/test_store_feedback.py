"""SQLite store: migrations, WAL, answer log, feedback integrity, export shape, audit."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from aldlab.errors import UserError
from aldlab.store import FeedbackForbidden, Store, export_feedback_rows
from aldlab.store.db import SCHEMA_VERSION, connection, init_db


def _log(store: Store, question: str = "ALD란?") -> str:
    return store.log_answer(
        question=question,
        answer="ALD는 자기제한 반응입니다 [tiny-001]",
        contexts=[{"id": "tiny-001", "title": "ALD", "text": "본문", "score": 0.9, "extra": "dropped"}],
        model="base",
        citations=["tiny-001"],
        confidence=0.8,
    )


def test_init_sets_wal_and_schema_version(tmp_path: Path) -> None:
    db = init_db(tmp_path / "sub" / "a.sqlite3")
    with connection(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    init_db(db)  # idempotent: migrating twice is a no-op
    with connection(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = init_db(tmp_path / "a.sqlite3")
    with connection(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(UserError, match="newer aldlab"):
        init_db(db)


def test_feedback_round_trip_and_export_shape(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite3")
    answer_id = _log(store)
    assert len(answer_id) == 32
    store.add_feedback(answer_id, "like")
    feedback_id = store.add_feedback(answer_id, "dislike", " 틀림 ", "올바른 답")  # changes mind: replaces
    assert export_feedback_rows(store.path) == []  # pending: nothing reaches training yet
    store.review_feedback(feedback_id, "approved", "reviewer-kim")
    rows = export_feedback_rows(store.path)
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == {
        "question", "answer", "feedback", "comment", "correction", "contexts", "history", "model", "timestamp",
        "answer_id", "feedback_id", "kb_hash", "revisions", "review",
    }
    assert row["question"] == "ALD란?"
    assert row["feedback"] == "dislike"
    assert row["comment"] == "틀림"
    assert row["correction"] == "올바른 답"
    assert row["contexts"] == [{"id": "tiny-001", "title": "ALD", "text": "본문"}]
    assert row["model"] == "base"
    assert row["answer_id"] == answer_id and row["revisions"] == 2
    assert row["review"]["status"] == "approved" and row["review"]["reviewer"] == "reviewer-kim"
    assert row["review"]["reviewed_at"]


def test_only_the_asker_can_rate_and_a_new_rating_needs_a_new_review(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite3")
    answer_id = store.log_answer(
        question="Q", answer="A", model="base", context_ids=["d1"], kb_hash="abc", token="secret-token-1",
        history=[{"role": "user", "content": "앞 질문"}],
    )
    with pytest.raises(FeedbackForbidden):
        store.add_feedback(answer_id, "dislike", correction="독", token="guessed")
    with pytest.raises(FeedbackForbidden):
        store.add_feedback(answer_id, "dislike", correction="독")  # no token at all
    fid = store.add_feedback(answer_id, "like", token="secret-token-1", contexts=[{"id": "d1", "title": "T", "text": "본문"}])
    store.review_feedback(fid, "approved", "lee")
    assert store.count_feedback("approved") == 1
    store.add_feedback(answer_id, "dislike", correction="다른 답", token="secret-token-1")
    assert store.count_feedback("approved") == 0 and store.count_feedback("pending") == 1
    row = next(store.iter_feedback_rows(status="pending"))
    assert row["contexts"] == [{"id": "d1", "title": "T", "text": "본문"}]  # snapshot kept
    assert row["history"] == [{"role": "user", "content": "앞 질문"}] and row["kb_hash"] == "abc"
    rejected = store.review_feedback(fid, "rejected", "lee", "독성 정정")
    assert rejected["review"]["status"] == "rejected" and store.export_feedback_rows() == []
    with pytest.raises(UserError):
        store.review_feedback(fid, "approved", "  ")
    with connection(store.path) as conn:  # the token itself is never stored
        stored = conn.execute("SELECT token_hash, client FROM answers").fetchone()
    assert stored[0] != "secret-token-1" and len(stored[0]) == 64 and stored[1] == ""


def test_schema_1_feedback_is_migrated_as_pending(tmp_path: Path) -> None:
    from aldlab.store.db import MIGRATIONS

    db = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(db)
    conn.executescript(MIGRATIONS[0] + ";PRAGMA user_version = 1;")
    conn.execute(
        "INSERT INTO answers VALUES ('a1', '2026-01-01', 'Q', 'A', '[]', '[]', '[]', 0.5, 0, 'base', 1, 0.1, '1.2.3.4')"
    )
    conn.execute("INSERT INTO feedback (answer_id, rating, created_at, updated_at) VALUES ('a1', 'like', 't', 't')")
    conn.commit()
    conn.close()
    store = Store(db)
    assert store.count_feedback("pending") == 1 and store.export_feedback_rows() == []


def test_retention_purges_old_answers_without_feedback(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite3")
    ids = [_log(store, f"q{i}") for i in range(5)]
    store.add_feedback(ids[0], "like")
    with connection(store.path) as conn:
        conn.execute("UPDATE answers SET created_at = '2000-01-01T00:00:00+00:00' WHERE id IN (?, ?)", (ids[0], ids[1]))
    assert store.purge_answers(max_age_days=30, max_rows=0) == 1  # ids[1]; ids[0] has feedback
    assert store.get_answer(ids[1]) is None and store.get_answer(ids[0]) is not None
    assert store.purge_answers(max_age_days=0, max_rows=2) == 1  # keeps the newest 2 (+ the one with feedback)
    assert store.count_feedback() == 1


def test_feedback_rejects_unknown_answer_and_bad_rating(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite3")
    with pytest.raises(UserError, match="Unknown answer id"):
        store.add_feedback("0" * 32, "like")
    answer_id = _log(store)
    with pytest.raises(UserError, match="like"):
        store.add_feedback(answer_id, "meh")
    assert store.count_feedback() == 0


def test_export_of_missing_db_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError):
        export_feedback_rows(tmp_path / "nope.sqlite3")


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    """16 threads x 20 answers+feedback, each its own connection: every row lands."""
    store = Store(tmp_path / "a.sqlite3")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                store.add_feedback(_log(store, f"q{n}-{i}"), "like" if i % 2 else "dislike")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.count_feedback() == 320
    assert len({r["question"] for r in store.export_feedback_rows(status=None)}) == 320


def test_audit_records_before_and_after(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite3")
    store.record_kb_edit(actor="kim", action="add", doc_id="d1", before=None, after={"id": "d1", "text": "새"})
    store.record_kb_edit(actor="lee", action="update", doc_id="d1", before={"text": "새"}, after={"text": "고침"})
    edits = store.list_kb_edits(doc_id="d1")
    assert [e["action"] for e in edits] == ["update", "add"]
    assert edits[0]["actor"] == "lee" and edits[0]["before"] == {"text": "새"} and edits[0]["after"] == {"text": "고침"}
    with pytest.raises(ValueError):
        store.record_kb_edit(actor="x", action="drop", doc_id=None, before=None, after=None)
    with pytest.raises(sqlite3.IntegrityError):  # the CHECK constraint also guards the table
        with connection(store.path) as conn:
            conn.execute("INSERT INTO kb_audit (created_at, actor, action) VALUES ('t', 'x', 'drop')")


def test_only_approved_single_turn_feedback_reaches_the_dataset(tmp_path: Path) -> None:
    from aldlab.data.feedback import load_feedback
    from aldlab.kb.io import load_kb
    from aldlab.serve.testing import write_tiny_kb

    kb = load_kb(write_tiny_kb(tmp_path / "kb"))
    store = Store(tmp_path / "a.sqlite3")

    def rated(question: str, correction: str, history: list | None = None) -> int:
        aid = store.log_answer(question=question, answer="틀린 답", model="ft", context_ids=["tiny-003"], kb_hash="h",
                               token="t", history=history or [])
        return store.add_feedback(aid, "dislike", correction=correction, token="t")

    approved = rated("TMA는 무엇인가요?", "TMA는 Al2O3 ALD의 대표 전구체입니다.")
    rated("퍼지는 왜 하나요?", "아무 말이나 학습시키자")  # stays pending
    steered = rated("그건 왜?", "문맥이 필요한 답", history=[{"role": "user", "content": "TMA란?"}])
    store.review_feedback(approved, "approved", "kim")
    store.review_feedback(steered, "approved", "kim")
    intake = load_feedback([store.path], kb)
    assert [f.answer_parts[0][0] for f in intake.facts] == ["TMA는 Al2O3 ALD의 대표 전구체입니다."]
    assert intake.excluded_with_history == 1 and intake.rows == 2  # the pending row is never read
    assert intake.facts[0].passages[0].text.startswith("TMA(트라이메틸알루미늄)")  # text from the KB by id
    assert intake.provenance[0]["reviewer"] == "kim" and intake.provenance[0]["reviewed_at"]
    # an exported JSONL row that is not approved is excluded as well
    rows = store.export_feedback_rows(status=None)
    path = tmp_path / "export.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    intake = load_feedback([path], kb)
    assert len(intake.facts) == 1 and intake.excluded_unreviewed == 1
