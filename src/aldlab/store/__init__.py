"""aldlab.store: SQLite answer log, feedback and KB audit trail (see store/db.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aldlab.store.audit import list_kb_edits, record_kb_edit
from aldlab.store.db import init_db
from aldlab.store.feedback import (
    LoggedAnswer,
    add_feedback,
    count_feedback,
    export_feedback_rows,
    get_answer,
    log_answer,
)


class Store:
    """The service's database, bound to one file path (what `create_app` receives)."""

    def __init__(self, db_path: str | Path) -> None:
        self.path = init_db(db_path)

    def log_answer(self, **fields: Any) -> str:
        return log_answer(self.path, **fields)

    def get_answer(self, answer_id: str) -> LoggedAnswer | None:
        return get_answer(self.path, answer_id)

    def add_feedback(self, answer_id: str, rating: str, comment: str | None = None, correction: str | None = None) -> int:
        return add_feedback(self.path, answer_id, rating, comment, correction)

    def count_feedback(self) -> int:
        return count_feedback(self.path)

    def export_feedback_rows(self) -> list[dict[str, Any]]:
        return export_feedback_rows(self.path)

    def record_kb_edit(self, **fields: Any) -> int:
        return record_kb_edit(self.path, **fields)

    def list_kb_edits(self, **kwargs: Any) -> list[dict[str, Any]]:
        return list_kb_edits(self.path, **kwargs)


__all__ = [
    "LoggedAnswer",
    "Store",
    "add_feedback",
    "count_feedback",
    "export_feedback_rows",
    "get_answer",
    "init_db",
    "list_kb_edits",
    "log_answer",
    "record_kb_edit",
]
