"""SQLite store: migrations, WAL, answer log, feedback integrity, export shape, audit."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from aldlab.errors import UserError
from aldlab.store import (
    MAX_REVISIONS,
    FeedbackConflict,
    FeedbackForbidden,
    FeedbackNotFound,
    FeedbackRevisionLimit,
    Store,
    export_feedback_rows,
)
from aldlab.store.db import SCHEMA_VERSION, connection, init_db


def run_together(*work: Callable[[], None]) -> None:
    """Each callable in its own thread, all started before any is joined."""
    threads = [threading.Thread(target=w) for w in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


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
    store.review_feedback(feedback_id, "approved", "reviewer-kim", revision=2)
    rows = export_feedback_rows(store.path)
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == {
        "question", "answer", "feedback", "comment", "correction", "contexts", "history", "model", "model_version",
        "timestamp", "answer_id", "feedback_id", "kb_hash", "revisions", "review",
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
    store.review_feedback(fid, "approved", "lee", revision=1)
    assert store.count_feedback("approved") == 1
    # Issue 22: a new rating after the decision is a new item to review; the approval stands.
    again = store.add_feedback(answer_id, "dislike", correction="다른 답", token="secret-token-1")
    assert again != fid and store.count_feedback("approved") == 1 and store.count_feedback("pending") == 1
    row = next(store.iter_feedback_rows(status="pending"))
    assert row["feedback_id"] == again and row["correction"] == "다른 답" and row["revisions"] == 1
    assert row["history"] == [{"role": "user", "content": "앞 질문"}] and row["kb_hash"] == "abc"
    rejected = store.review_feedback(again, "rejected", "lee", "독성 정정", revision=1)
    assert rejected["review"]["status"] == "rejected"
    assert [(r["feedback_id"], r["feedback"]) for r in store.export_feedback_rows()] == [(fid, "like")]
    assert next(store.iter_feedback_rows(status=None, feedback_id=fid))["contexts"] == [{"id": "d1", "title": "T", "text": "본문"}]
    with pytest.raises(UserError):
        store.review_feedback(again, "approved", "  ", revision=1)
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

    run_together(*(partial(work, n) for n in range(16)))
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
    store.review_feedback(approved, "approved", "kim", revision=1)
    store.review_feedback(steered, "approved", "kim", revision=1)
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


# ---------------------------------------------------------------- issue 22: decisions


def _rated(store: Store, correction: str = "TMA는 물과 반응한다.") -> tuple[str, int]:
    answer_id = store.log_answer(question="TMA 취급은?", answer="답", model="ft", token="asker-token")
    return answer_id, store.add_feedback(answer_id, "dislike", correction=correction, token="asker-token")


def test_a_decision_applies_only_to_the_revision_the_reviewer_read(tmp_path: Path) -> None:
    """The reviewer read a harmless correction; the asker swapped in a dangerous one; approve."""
    store = Store(tmp_path / "a.sqlite3")
    answer_id, fid = _rated(store)
    read = next(store.iter_feedback_rows(status="pending"))
    assert read["revisions"] == 1
    assert store.add_feedback(answer_id, "dislike", correction="TMA는 맨손으로 다뤄도 안전하다", token="asker-token") == fid
    with pytest.raises(FeedbackConflict, match="revision 1, it is now 2"):
        store.review_feedback(fid, "approved", "kim", revision=read["revisions"])
    assert store.export_feedback_rows() == [] and store.count_feedback("pending") == 1
    rejected = store.review_feedback(fid, "rejected", "kim", "위험한 정정", revision=2)  # after reading revision 2
    assert rejected["correction"] == "TMA는 맨손으로 다뤄도 안전하다" and rejected["review"]["status"] == "rejected"


def test_a_decided_item_is_never_decided_again(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite3")
    _, fid = _rated(store)
    store.review_feedback(fid, "approved", "kim", revision=1)
    with pytest.raises(FeedbackConflict, match="already reviewed"):
        store.review_feedback(fid, "rejected", "lee", revision=1)
    row = next(store.iter_feedback_rows(status=None, feedback_id=fid))
    assert row["review"]["status"] == "approved" and row["review"]["reviewer"] == "kim"
    with pytest.raises(FeedbackNotFound, match="999"):
        store.review_feedback(999, "approved", "kim", revision=1)


def test_concurrent_decisions_on_one_item_have_exactly_one_winner(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite3")
    _, fid = _rated(store)
    won: list[str] = []
    refused: list[BaseException] = []
    start = threading.Barrier(8)

    def decide(n: int) -> None:
        status = "approved" if n % 2 else "rejected"
        start.wait()
        try:
            store.review_feedback(fid, status, f"reviewer-{n}", revision=1)
            won.append(status)
        except FeedbackConflict as exc:
            refused.append(exc)

    run_together(*(partial(decide, n) for n in range(8)))
    assert len(won) == 1 and len(refused) == 7
    assert next(store.iter_feedback_rows(status=None, feedback_id=fid))["review"]["status"] == won[0]


def test_racing_resubmits_never_get_an_unread_revision_approved(tmp_path: Path) -> None:
    """Each approval names the revision listed; whatever is approved is the text listed with it."""
    store = Store(tmp_path / "a.sqlite3")
    answer_id, _ = _rated(store, "정정 0")
    approved: list[tuple[int, str]] = []

    def resubmit() -> None:
        for i in range(1, 15):
            store.add_feedback(answer_id, "dislike", correction=f"정정 {i}", token="asker-token")

    def review() -> None:
        for _ in range(30):
            listed = next(store.iter_feedback_rows(status="pending"), None)
            if listed is None:
                continue
            try:
                store.review_feedback(listed["feedback_id"], "approved", "kim", revision=listed["revisions"])
                approved.append((listed["feedback_id"], listed["correction"]))
            except FeedbackConflict:
                pass

    run_together(resubmit, review)
    exported = {(r["feedback_id"], r["correction"]) for r in store.export_feedback_rows()}
    assert exported == set(approved)


def test_revisions_of_a_pending_item_are_capped(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite3")
    answer_id, fid = _rated(store)
    for i in range(MAX_REVISIONS - 1):
        store.add_feedback(answer_id, "dislike", correction=f"정정 {i}", token="asker-token")
    with pytest.raises(FeedbackRevisionLimit):
        store.add_feedback(answer_id, "dislike", correction="한 번 더", token="asker-token")
    row = next(store.iter_feedback_rows(status=None, feedback_id=fid))
    assert row["revisions"] == MAX_REVISIONS and row["correction"] == f"정정 {MAX_REVISIONS - 2}"
    store.review_feedback(fid, "rejected", "kim", revision=MAX_REVISIONS)
    assert store.add_feedback(answer_id, "like", token="asker-token") != fid  # a new item after the decision


def test_schema_2_feedback_migrates_keeping_ids_and_decisions(tmp_path: Path) -> None:
    from aldlab.store.db import MIGRATIONS, migrate

    db = tmp_path / "v2.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript(MIGRATIONS[0] + ";" + MIGRATIONS[1] + ";PRAGMA user_version = 2;")
    for answer_id in ("a1", "a2"):
        conn.execute("INSERT INTO answers (id, created_at, question, answer, contexts_json, citations_json, history_json,"
                     " confidence, refused, model, used_retrieval, latency_s)"
                     " VALUES (?, 't', 'Q', 'A', '[]', '[]', '[]', 0.5, 0, 'ft', 1, 0.1)", (answer_id,))
    conn.execute("INSERT INTO feedback (answer_id, rating, created_at, updated_at, status, reviewer) VALUES"
                 " ('a1', 'like', 't', 't', 'approved', 'kim'), ('a2', 'like', 't', 't', 'pending', NULL)")
    conn.execute("DELETE FROM feedback WHERE answer_id = 'a2'")
    conn.close()
    store = Store(db)
    with connection(db) as conn:
        assert migrate(conn) == SCHEMA_VERSION
    assert [(r["feedback_id"], r["review"]["status"]) for r in store.export_feedback_rows(status=None)] == [(1, "approved")]
    assert store.add_feedback("a1", "dislike", correction="새 정정") == 3  # id 2 was used once: never again
    with connection(db) as conn, pytest.raises(sqlite3.IntegrityError):  # one pending item per answer
        conn.execute("INSERT INTO feedback (answer_id, rating, created_at, updated_at) VALUES ('a1', 'like', 't', 't')")


def test_schema_3_answers_migrate_with_an_unknown_model_version(tmp_path: Path) -> None:
    """Issue 23: answers logged before the registry keep their rows, with model_version ''."""
    from aldlab.store.db import MIGRATIONS

    db = tmp_path / "v3.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript(";".join(MIGRATIONS[:3]) + ";PRAGMA user_version = 3;")
    conn.execute("INSERT INTO answers (id, created_at, question, answer, contexts_json, citations_json, history_json,"
                 " confidence, refused, model, used_retrieval, latency_s)"
                 " VALUES ('old', 't', 'Q', 'A', '[]', '[]', '[]', 0.5, 0, 'ft', 1, 0.1)")
    conn.close()
    store = Store(db)
    assert store.get_answer("old").model_version == ""
    new_id = store.log_answer(question="Q2", answer="A2", model="v0002", model_version="v0002")
    assert store.get_answer(new_id).model_version == "v0002"
    fid = store.add_feedback(new_id, "dislike", correction="정정")
    assert next(store.iter_feedback_rows(status=None, feedback_id=fid))["model_version"] == "v0002"
