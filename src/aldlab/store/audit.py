"""Audit trail of KB edits: who changed which document, when, and what it was before/after."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aldlab.store.db import connection
from aldlab.store.feedback import utc_now

ACTIONS = ("add", "update", "delete", "reload")


def record_kb_edit(
    db_path: str | Path,
    *,
    actor: str,
    action: str,
    doc_id: str | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    client: str = "",
) -> int:
    """Append one audit row; returns its id. `before`/`after` are the document JSON (or None)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    with connection(db_path) as conn:
        cur = conn.execute(
            "INSERT INTO kb_audit (created_at, actor, client, action, doc_id, before_json, after_json)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                utc_now(),
                actor,
                client,
                action,
                doc_id,
                None if before is None else json.dumps(before, ensure_ascii=False),
                None if after is None else json.dumps(after, ensure_ascii=False),
            ),
        )
        return int(cur.lastrowid or 0)


def list_kb_edits(db_path: str | Path, *, doc_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Most recent audit rows first, optionally for one document."""
    query = "SELECT * FROM kb_audit"
    params: tuple[Any, ...] = ()
    if doc_id is not None:
        query += " WHERE doc_id = ?"
        params = (doc_id,)
    query += " ORDER BY id DESC LIMIT ?"
    with connection(db_path) as conn:
        rows = conn.execute(query, (*params, int(limit))).fetchall()
    return [
        {
            "id": r["id"],
            "time": r["created_at"],
            "actor": r["actor"],
            "client": r["client"],
            "action": r["action"],
            "doc_id": r["doc_id"],
            "before": None if r["before_json"] is None else json.loads(r["before_json"]),
            "after": None if r["after_json"] is None else json.loads(r["after_json"]),
        }
        for r in rows
    ]
