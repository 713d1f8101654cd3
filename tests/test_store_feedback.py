"""SQLite store: migrations, WAL, answer log, feedback integrity, export shape, audit."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from aldlab.errors import UserError
from aldlab.store import Store, export_feedback_rows
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
    store.add_feedback(answer_id, "dislike", " 틀림 ", "올바른 답")  # changes mind: replaces
    rows = export_feedback_rows(store.path)
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == {"question", "answer", "feedback", "comment", "correction", "contexts", "model", "timestamp", "answer_id"}
    assert row["question"] == "ALD란?"
    assert row["feedback"] == "dislike"
    assert row["comment"] == "틀림"
    assert row["correction"] == "올바른 답"
    assert row["contexts"] == [{"id": "tiny-001", "title": "ALD", "text": "본문"}]
    assert row["model"] == "base"
    assert row["answer_id"] == answer_id


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
    assert len({r["question"] for r in store.export_feedback_rows()}) == 320


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
