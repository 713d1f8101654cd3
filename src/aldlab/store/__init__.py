"""aldlab.store: SQLite answer log, feedback review queue and KB audit trail (see store/db.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aldlab.store.audit import (
    PlannedEdit,
    begin_kb_edits,
    list_kb_edits,
    next_kb_edit,
    pending_kb_edits,
    record_kb_edit,
    settle_kb_edits,
)
from aldlab.store.db import init_db
from aldlab.store.feedback import (
    MAX_REVISIONS,
    SNAPSHOT_MAX_CHARS,
    FeedbackConflict,
    FeedbackForbidden,
    FeedbackKbChanged,
    FeedbackNotFound,
    FeedbackRevisionLimit,
    KbNow,
    LoggedAnswer,
    RatedPurge,
    add_feedback,
    count_feedback,
    export_feedback_rows,
    get_answer,
    iter_feedback_rows,
    log_answer,
    purge_answers,
    purge_rated_feedback,
    queue_imported_feedback,
    review_feedback,
)


class Store:
    """The service's database, bound to one file path (what `create_app` receives)."""

    def __init__(self, db_path: str | Path) -> None:
        self.path = init_db(db_path)

    def log_answer(self, **fields: Any) -> str:
        return log_answer(self.path, **fields)

    def get_answer(self, answer_id: str) -> LoggedAnswer | None:
        return get_answer(self.path, answer_id)

    def add_feedback(
        self,
        answer_id: str,
        rating: str,
        comment: str | None = None,
        correction: str | None = None,
        *,
        token: str | None = None,
        contexts: list[dict[str, Any]] | None = None,
        max_snapshot_chars: int = SNAPSHOT_MAX_CHARS,
    ) -> int:
        return add_feedback(
            self.path, answer_id, rating, comment, correction,
            token=token, contexts=contexts, max_snapshot_chars=max_snapshot_chars,
        )

    def review_feedback(
        self,
        feedback_id: int,
        status: str,
        reviewer: str,
        note: str | None = None,
        *,
        revision: int,
        kb_now: KbNow | None = None,
        accept_kb_change: bool = False,
    ) -> dict[str, Any]:
        return review_feedback(
            self.path, feedback_id, status, reviewer, note,
            revision=revision, kb_now=kb_now, accept_kb_change=accept_kb_change,
        )

    def count_feedback(self, status: str | None = None) -> int:
        return count_feedback(self.path, status)

    def iter_feedback_rows(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        return iter_feedback_rows(self.path, **kwargs)

    def export_feedback_rows(self, status: str | None = "approved") -> list[dict[str, Any]]:
        return export_feedback_rows(self.path, status)

    def queue_imported_feedback(self, rows: list[dict[str, Any]]) -> tuple[int, int]:
        return queue_imported_feedback(self.path, rows)

    def purge_answers(self, *, max_age_days: float, max_rows: int) -> int:
        return purge_answers(self.path, max_age_days=max_age_days, max_rows=max_rows)

    def purge_rated_feedback(self, *, max_age_days: float) -> RatedPurge:
        return purge_rated_feedback(self.path, max_age_days=max_age_days)

    def record_kb_edit(self, **fields: Any) -> int:
        return record_kb_edit(self.path, **fields)

    def list_kb_edits(self, **kwargs: Any) -> list[dict[str, Any]]:
        return list_kb_edits(self.path, **kwargs)

    def begin_kb_edits(self, edits: list[PlannedEdit], *, actor: str, client: str, kb_dir: str) -> list[int]:
        return begin_kb_edits(self.path, edits, actor=actor, client=client, kb_dir=kb_dir)

    def settle_kb_edits(self, ids: list[int], state: str) -> None:
        settle_kb_edits(self.path, ids, state)

    def pending_kb_edits(self, *, kb_dir: str | None = None) -> list[dict[str, Any]]:
        return pending_kb_edits(self.path, kb_dir=kb_dir)

    def next_kb_edit(self, doc_id: str, after_id: int) -> dict[str, Any] | None:
        return next_kb_edit(self.path, doc_id, after_id)


__all__ = [
    "MAX_REVISIONS",
    "SNAPSHOT_MAX_CHARS",
    "PlannedEdit",
    "FeedbackConflict",
    "FeedbackForbidden",
    "FeedbackKbChanged",
    "FeedbackNotFound",
    "FeedbackRevisionLimit",
    "KbNow",
    "LoggedAnswer",
    "RatedPurge",
    "Store",
    "add_feedback",
    "count_feedback",
    "export_feedback_rows",
    "get_answer",
    "init_db",
    "iter_feedback_rows",
    "list_kb_edits",
    "log_answer",
    "purge_answers",
    "purge_rated_feedback",
    "queue_imported_feedback",
    "record_kb_edit",
    "review_feedback",
]
