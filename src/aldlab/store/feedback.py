"""Answer log and user feedback.

The server logs every answer it gives (question, answer, contexts, model, time) and
returns an `answer_id`; feedback only carries that id plus the rating, comment and
correction. So a client can rate an answer but cannot forge what was asked or answered:
the dataset builder (`aldlab data build`) reads the question/answer/contexts from the
server's own log through `export_feedback_rows`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aldlab.errors import UserError
from aldlab.store.db import connection, init_db, transaction

RATINGS = ("like", "dislike")


def utc_now() -> str:
    """ISO-8601 UTC timestamp with microseconds (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class LoggedAnswer:
    """What the server stored about one answer."""

    id: str
    created_at: str
    question: str
    answer: str
    contexts: list[dict[str, Any]]
    citations: list[str]
    model: str
    confidence: float
    refused: bool


def log_answer(
    db_path: str | Path,
    *,
    question: str,
    answer: str,
    contexts: Sequence[dict[str, Any]],
    model: str,
    citations: Sequence[str] = (),
    history: Sequence[dict[str, str]] = (),
    confidence: float = 0.0,
    refused: bool = False,
    used_retrieval: bool = True,
    latency_s: float = 0.0,
    client: str = "",
) -> str:
    """Record an answer the server produced; returns its id (uuid4 hex)."""
    answer_id = uuid.uuid4().hex
    with connection(db_path) as conn:
        conn.execute(
            "INSERT INTO answers (id, created_at, question, answer, contexts_json, citations_json,"
            " history_json, confidence, refused, model, used_retrieval, latency_s, client)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                answer_id,
                utc_now(),
                question,
                answer,
                json.dumps([_context_row(c) for c in contexts], ensure_ascii=False),
                json.dumps(list(citations), ensure_ascii=False),
                json.dumps(list(history), ensure_ascii=False),
                float(confidence),
                int(bool(refused)),
                model,
                int(bool(used_retrieval)),
                float(latency_s),
                client,
            ),
        )
    return answer_id


def _context_row(context: dict[str, Any]) -> dict[str, Any]:
    """The context fields worth keeping: enough to rebuild a training example."""
    keep = ("id", "title", "text", "score", "topic")
    return {k: context[k] for k in keep if k in context}


def get_answer(db_path: str | Path, answer_id: str) -> LoggedAnswer | None:
    """A logged answer by id, or None."""
    with connection(db_path) as conn:
        row = conn.execute("SELECT * FROM answers WHERE id = ?", (answer_id,)).fetchone()
    if row is None:
        return None
    return LoggedAnswer(
        id=row["id"],
        created_at=row["created_at"],
        question=row["question"],
        answer=row["answer"],
        contexts=json.loads(row["contexts_json"]),
        citations=json.loads(row["citations_json"]),
        model=row["model"],
        confidence=row["confidence"],
        refused=bool(row["refused"]),
    )


def add_feedback(
    db_path: str | Path,
    answer_id: str,
    rating: str,
    comment: str | None = None,
    correction: str | None = None,
) -> int:
    """Store feedback on a logged answer; returns the feedback row id.

    A second rating of the same answer replaces the first (a user who clicks 👍 and then
    👎 with a correction changed their mind; the dataset wants one label per answer).
    Unknown answer ids are rejected, so feedback always points at a real logged answer.
    """
    if rating not in RATINGS:
        raise UserError(
            f"평가는 like 또는 dislike여야 합니다: {rating!r}",
            f"Rating must be 'like' or 'dislike', got {rating!r}.",
        )
    comment = (comment or "").strip() or None
    correction = (correction or "").strip() or None
    now = utc_now()
    with transaction(db_path) as conn:
        known = conn.execute("SELECT 1 FROM answers WHERE id = ?", (answer_id,)).fetchone()
        if known is None:
            raise UserError(
                "알 수 없는 답변 ID입니다.",
                f"Unknown answer id: {answer_id!r}.",
                hint="서버가 돌려준 answer_id로 피드백하세요 / send the answer_id the server returned",
            )
        row = conn.execute(
            "INSERT INTO feedback (answer_id, rating, comment, correction, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(answer_id) DO UPDATE SET rating = excluded.rating,"
            " comment = excluded.comment, correction = excluded.correction,"
            " updated_at = excluded.updated_at, revisions = feedback.revisions + 1"
            " RETURNING id",
            (answer_id, rating, comment, correction, now, now),
        ).fetchone()
    return int(row[0])


def count_feedback(db_path: str | Path) -> int:
    """Number of feedback rows (the load bench compares it with acknowledged writes)."""
    with connection(db_path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])


def export_feedback_rows(db_path: str | Path) -> list[dict[str, Any]]:
    """Feedback joined with the logged answers, oldest first, for `aldlab data build`.

    Row shape (same fields as the legacy feedback_data.json, plus correction/model/id):
    {"question", "answer", "feedback": "like"|"dislike", "comment", "correction",
     "contexts": [{"id", "title", "text"}], "model", "timestamp", "answer_id"}
    """
    path = Path(db_path)
    if not path.exists():
        raise UserError(
            "피드백 데이터베이스가 없습니다.",
            "Feedback database not found.",
            path=path,
            hint="`aldlab serve --db` 에 준 경로를 쓰세요 / use the path given to `aldlab serve --db`",
        )
    init_db(path)  # an older schema is migrated before reading
    with connection(path) as conn:
        rows = conn.execute(
            "SELECT a.id AS answer_id, a.question, a.answer, a.contexts_json, a.model,"
            " f.rating, f.comment, f.correction, f.updated_at"
            " FROM feedback f JOIN answers a ON a.id = f.answer_id"
            " ORDER BY f.updated_at, f.id"
        ).fetchall()
    return [
        {
            "question": r["question"],
            "answer": r["answer"],
            "feedback": r["rating"],
            "comment": r["comment"],
            "correction": r["correction"],
            "contexts": [
                {"id": c.get("id", ""), "title": c.get("title", ""), "text": c.get("text", "")}
                for c in json.loads(r["contexts_json"])
            ],
            "model": r["model"],
            "timestamp": r["updated_at"],
            "answer_id": r["answer_id"],
        }
        for r in rows
    ]
