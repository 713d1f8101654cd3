"""Audit trail of KB edits: who changed which document, when, and what it was before/after.

An edit through the admin API and its audit row are one recoverable unit (issue 22: kill -9
during edits left 7 of 12 edits without a row). The row is written first, *pending*, with
the hash of the document the edit is about to write (`begin_kb_edits`); the KB files are
written atomically; then the row is marked *done* (`settle_kb_edits`). A crash in between
leaves a pending row, and whoever opens the KB next (`aldlab serve` at start-up) settles
it by looking at the KB: the document as the row says → done, otherwise → aborted
(`aldlab.serve.kb_admin.repair_kb_audit`). So a KB change never lacks its row, and a row
never claims a change that did not happen.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aldlab.store.db import connection, transaction
from aldlab.store.feedback import utc_now

ACTIONS = ("add", "update", "delete", "reload")
STATES = ("pending", "done", "aborted")


def document_hash(doc: dict[str, Any] | None) -> str | None:
    """Hash of a document's JSON (key order ignored); None for "no document"."""
    if doc is None:
        return None
    payload = json.dumps(doc, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class PlannedEdit:
    """One document change an edit is about to write (before/after as document JSON)."""

    action: str
    doc_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def _dumps(doc: dict[str, Any] | None) -> str | None:
    return None if doc is None else json.dumps(doc, ensure_ascii=False)


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
    """Append one finished audit row (no KB write to pair with, e.g. 'reload'); returns its id."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    with connection(db_path) as conn:
        cur = conn.execute(
            "INSERT INTO kb_audit (created_at, actor, client, action, doc_id, before_json, after_json,"
            " state, after_hash) VALUES (?, ?, ?, ?, ?, ?, ?, 'done', ?)",
            (utc_now(), actor, client, action, doc_id, _dumps(before), _dumps(after), document_hash(after)),
        )
        return int(cur.lastrowid or 0)


def begin_kb_edits(
    db_path: str | Path, edits: Sequence[PlannedEdit], *, actor: str, client: str, kb_dir: str
) -> list[int]:
    """Write the pending rows of one KB write, all or none, before the write; returns their ids."""
    for edit in edits:
        if edit.action not in ACTIONS:
            raise ValueError(f"unknown audit action {edit.action!r}")
    now = utc_now()
    with transaction(db_path) as conn:
        return [
            int(
                conn.execute(
                    "INSERT INTO kb_audit (created_at, actor, client, action, doc_id, before_json, after_json,"
                    " state, after_hash, kb_dir) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?) RETURNING id",
                    (now, actor, client, e.action, e.doc_id, _dumps(e.before), _dumps(e.after),
                     document_hash(e.after), kb_dir),
                ).fetchone()[0]
            )
            for e in edits
        ]


def settle_kb_edits(db_path: str | Path, ids: Sequence[int], state: str) -> None:
    """Mark pending rows done (their KB write happened) or aborted (it did not)."""
    if state not in ("done", "aborted"):
        raise ValueError(f"unknown audit state {state!r}")
    with transaction(db_path) as conn:
        conn.executemany(
            "UPDATE kb_audit SET state = ? WHERE id = ? AND state = 'pending'", [(state, int(i)) for i in ids]
        )


def pending_kb_edits(db_path: str | Path, *, kb_dir: str | None = None) -> list[dict[str, Any]]:
    """Rows a crash left pending (of one KB directory, or all), oldest first."""
    query = "SELECT * FROM kb_audit WHERE state = 'pending'"
    params: tuple[Any, ...] = ()
    if kb_dir is not None:
        query += " AND kb_dir = ?"
        params = (kb_dir,)
    with connection(db_path) as conn:
        rows = conn.execute(query + " ORDER BY id", params).fetchall()
    return [_row(r) for r in rows]


def next_kb_edit(db_path: str | Path, doc_id: str, after_id: int) -> dict[str, Any] | None:
    """The first done edit of `doc_id` after row `after_id`: its `before` is what that row left."""
    with connection(db_path) as conn:
        row = conn.execute(
            "SELECT * FROM kb_audit WHERE doc_id = ? AND id > ? AND state = 'done' AND action != 'reload'"
            " ORDER BY id LIMIT 1",
            (doc_id, int(after_id)),
        ).fetchone()
    return None if row is None else _row(row)


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
    return [_row(r) for r in rows]


def _row(r: Any) -> dict[str, Any]:
    return {
        "id": r["id"],
        "time": r["created_at"],
        "actor": r["actor"],
        "client": r["client"],
        "action": r["action"],
        "doc_id": r["doc_id"],
        "before": None if r["before_json"] is None else json.loads(r["before_json"]),
        "after": None if r["after_json"] is None else json.loads(r["after_json"]),
        "state": r["state"],
        "after_hash": r["after_hash"],
    }
