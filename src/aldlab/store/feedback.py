"""Answer log, user feedback and its review queue.

The server logs every answer it gives and returns an `answer_id` plus an unguessable
`answer_token` (only its SHA-256 is stored). Feedback carries the id, the token, the
rating, comment and correction, so:
- a client cannot forge what was asked or answered (the dataset builder reads question,
  answer and contexts from the server's own log), and
- only the client that asked can rate an answer (the token went to it alone).

Feedback is *pending* until an admin approves or rejects it (`aldlab feedback`, the web
UI's review tab); only approved rows are exported for `aldlab data build --feedback`,
with the reviewer and the time in the row. A user's correction therefore never becomes a
training target without a person reading it first, and it must be the text that person
read (issue 22: the asker could swap in "TMA는 맨손으로 다뤄도 안전하다" between the
reviewer's list and the click):
- each change to a pending item is a new revision (`revisions`, at most `MAX_REVISIONS`);
- a decision names the revision the reviewer saw and applies in one transaction only if
  the item is still pending at that revision (compare-and-set), else `FeedbackConflict`;
- a decided item never reopens: feedback sent again afterwards is a new pending item.

The answer log keeps the context ids and the KB hash, not the passage texts (a question
used to cost ~40 KB); the texts are snapshotted when feedback arrives, which is the only
time they are needed. Rated answers are kept long (review, export), so the snapshot's
size matters: a like used to copy every passage into its row (up to ~0.6 MB). Passages are
now stored once in `passages`, keyed by the hash of (id, title, text), and a feedback row
keeps only `[{"id", "passage": hash}]`; the 50th like citing the same documents adds ~150
bytes, not the texts again. A new snapshot is also capped (`SNAPSHOT_MAX_CHARS`): passages
are kept whole, best first, and those past the cap are kept by id only, which the dataset
builder reads from the KB (as for an answer with no snapshot). Cutting texts instead would
have cut the evidence the reviewer reads, and made every cut passage look "changed" to the
review's KB check. No client IP is stored.

Rated answers are not kept for ever either (`purge_rated_feedback`, `aldlab serve`'s
`rated_retention_days`): a rejected item, and its answer and snapshot, goes that long after
the decision; an approved item that can never be a training target (a dislike without
correction, an answer steered by chat history) keeps its row but loses its snapshot.
Pending items and approved training targets stay: the dataset builder needs them whole.

An answer made on an older KB than the one the reviewer approves it on may pair the old
answer with new passage text (issue 22). A review therefore compares the cited documents
with the KB now (`KbNow`, given by the caller) and with the KB audit log since the answer;
approving when a cited document changed needs `accept_kb_change` (`FeedbackKbChanged`
otherwise), and the review keeps the KB hash and the changed ids for the export.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from aldlab.errors import UserError
from aldlab.store.db import connection, init_db, transaction

RATINGS = ("like", "dislike")
#: Rows read per query while exporting (memory stays flat for any number of rows).
EXPORT_BATCH = 200
STATUSES = ("pending", "approved", "rejected")
#: Revisions of one pending item: enough for a person changing their mind, not a write loop.
MAX_REVISIONS = 20
#: Passage characters one feedback snapshot keeps with their texts (~150 KB of Korean in
#: UTF-8). The shipped KB's passages are ~200 characters, so ten fit many times over; an
#: imported KB of long documents made a like's snapshot ~0.6 MB before this cap.
SNAPSHOT_MAX_CHARS = 50_000


def utc_now() -> str:
    """ISO-8601 UTC timestamp with microseconds (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class FeedbackForbidden(UserError):
    """Feedback on an answer the sender did not receive."""


class FeedbackNotFound(UserError):
    """A review of a feedback id that does not exist."""


class FeedbackConflict(UserError):
    """A review of a revision that is not the item's current one, or of a decided item."""


class FeedbackRevisionLimit(UserError):
    """A pending item already revised `MAX_REVISIONS` times."""


class FeedbackKbChanged(UserError):
    """An approval of an answer whose cited documents changed since it was made."""

    def __init__(self, feedback_id: int, changed: list[str]) -> None:
        ids = ", ".join(changed)
        super().__init__(
            f"피드백 {feedback_id}의 답변이 쓴 문서가 답변 뒤에 바뀌었습니다: {ids}. 옛 답변과 새 문서가 짝지어집니다.",
            f"Documents cited by feedback {feedback_id}'s answer changed after it was made: {ids}; "
            "the old answer would be paired with the new text.",
            hint="바뀐 문서를 읽고도 승인하려면 accept_kb_change=true (CLI: --accept-kb-change), 아니면 거절하세요 / "
            "to approve anyway send accept_kb_change=true (CLI: --accept-kb-change), or reject it",
        )
        self.changed = changed


@dataclass(frozen=True)
class KbNow:
    """The KB a reviewer decides on: its content hash and each document's text."""

    kb_hash: str
    texts: dict[str, str]


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
    context_ids: list[str]
    kb_hash: str
    history: list[dict[str, str]]
    model_version: str = ""  # registry id of the model that answered ('' = base / not registered)


def log_answer(
    db_path: str | Path,
    *,
    question: str,
    answer: str,
    model: str,
    contexts: Sequence[dict[str, Any]] = (),
    context_ids: Sequence[str] | None = None,
    kb_hash: str = "",
    token: str | None = None,
    citations: Sequence[str] = (),
    history: Sequence[dict[str, str]] = (),
    confidence: float = 0.0,
    refused: bool = False,
    used_retrieval: bool = True,
    latency_s: float = 0.0,
    client: str = "",
    model_version: str = "",
) -> str:
    """Record an answer the server produced; returns its id (uuid4 hex).

    The service passes `context_ids` + `kb_hash` and no context texts; `contexts` with
    texts is still accepted (tools, older callers). `client` is kept for API compatibility
    and not stored.
    """
    del client  # not stored: see the module docstring
    answer_id = uuid.uuid4().hex
    ids = list(context_ids) if context_ids is not None else [str(c.get("id", "")) for c in contexts]
    with connection(db_path) as conn:
        conn.execute(
            "INSERT INTO answers (id, created_at, question, answer, contexts_json, citations_json,"
            " history_json, confidence, refused, model, used_retrieval, latency_s, client,"
            " token_hash, context_ids_json, kb_hash, model_version)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?)",
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
                token_hash(token) if token else None,
                json.dumps(ids, ensure_ascii=False),
                kb_hash,
                model_version,
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
        context_ids=json.loads(row["context_ids_json"]),
        kb_hash=row["kb_hash"],
        history=json.loads(row["history_json"]),
        model_version=row["model_version"],
    )


def add_feedback(
    db_path: str | Path,
    answer_id: str,
    rating: str,
    comment: str | None = None,
    correction: str | None = None,
    *,
    token: str | None = None,
    contexts: Sequence[dict[str, Any]] | None = None,
    max_snapshot_chars: int = SNAPSHOT_MAX_CHARS,
) -> int:
    """Store feedback on a logged answer as *pending*; returns the feedback item's id.

    The answer's token must match when the answer has one (every answer the service
    logs does) or when one is given. Feedback sent again while the answer's item is
    pending replaces it as a new revision; after that item was approved or rejected it
    starts a new item (the decision stands). `contexts` (with texts) is the snapshot the
    dataset builder will use, texts of at most `max_snapshot_chars` characters in all.
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
        _check_asker(conn, answer_id, token)
        snapshot = None if contexts is None else _store_passages(conn, contexts, max_snapshot_chars)
        pending = conn.execute(
            "SELECT id, revisions FROM feedback WHERE answer_id = ? AND status = 'pending'", (answer_id,)
        ).fetchone()
        if pending is None:
            row = conn.execute(
                "INSERT INTO feedback (answer_id, rating, comment, correction, created_at, updated_at, contexts_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (answer_id, rating, comment, correction, now, now, snapshot),
            ).fetchone()
            return int(row[0])
        if pending["revisions"] >= MAX_REVISIONS:
            raise FeedbackRevisionLimit(
                f"이 피드백은 이미 {MAX_REVISIONS}번 수정되었습니다. 관리자 검토 뒤에 다시 보내세요.",
                f"This feedback was already revised {MAX_REVISIONS} times; send it again after an admin reviews it.",
            )
        conn.execute(
            "UPDATE feedback SET rating = ?, comment = ?, correction = ?, updated_at = ?,"
            " revisions = revisions + 1, contexts_json = COALESCE(?, contexts_json) WHERE id = ?",
            (rating, comment, correction, now, snapshot, pending["id"]),
        )
        return int(pending["id"])


def passage_hash(context: dict[str, Any]) -> str:
    """Key of a passage in `passages`: the hash of its id, title and text."""
    key = [str(context.get("id", "")), str(context.get("title", "")), str(context.get("text", ""))]
    return hashlib.sha256(json.dumps(key, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()


def _store_passages(
    conn: sqlite3.Connection, contexts: Sequence[dict[str, Any]], max_chars: int = SNAPSHOT_MAX_CHARS
) -> str:
    """Each passage once in `passages`; returns the snapshot that refers to them by hash.

    Passages are taken whole in the given (retrieval) order while their texts fit in
    `max_chars` (0 = no cap); the rest are kept by id only (`{"id"}`, texts from the KB).
    """
    refs: list[dict[str, str]] = []
    budget = max_chars if max_chars > 0 else None
    for context in contexts:
        size = len(str(context.get("text", "")))
        if budget is not None and size > budget:
            refs.append({"id": str(context.get("id", ""))})
            budget = 0  # later passages are less relevant: a shorter one does not jump the queue
            continue
        if budget is not None:
            budget -= size
        key = passage_hash(context)
        conn.execute(
            "INSERT OR IGNORE INTO passages (hash, doc_id, title, text) VALUES (?, ?, ?, ?)",
            (key, str(context.get("id", "")), str(context.get("title", "")), str(context.get("text", ""))),
        )
        refs.append({"id": str(context.get("id", "")), "passage": key})
    return json.dumps(refs, ensure_ascii=False)


def _expand_snapshot(conn: sqlite3.Connection, snapshot: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A snapshot with its texts: references to `passages` looked up, older full rows kept."""
    keys = [c["passage"] for c in snapshot if "passage" in c]
    found: dict[str, dict[str, Any]] = {}
    if keys:
        marks = ",".join("?" * len(keys))
        for r in conn.execute(f"SELECT hash, doc_id, title, text FROM passages WHERE hash IN ({marks})", keys):
            found[r["hash"]] = {"id": r["doc_id"], "title": r["title"], "text": r["text"]}
    return [found.get(c["passage"], {"id": c.get("id", "")}) if "passage" in c else c for c in snapshot]


def _check_asker(conn: sqlite3.Connection, answer_id: str, token: str | None) -> None:
    """The answer exists and `token` is its answer token (only the asker may rate it)."""
    known = conn.execute("SELECT token_hash FROM answers WHERE id = ?", (answer_id,)).fetchone()
    if known is None:
        raise UserError(
            "알 수 없는 답변 ID입니다.",
            f"Unknown answer id: {answer_id!r}.",
            hint="서버가 돌려준 answer_id로 피드백하세요 / send the answer_id the server returned",
        )
    expected = known["token_hash"]
    if (expected is not None or token is not None) and not hmac.compare_digest(
        expected or "", token_hash(token) if token else "-"
    ):
        raise FeedbackForbidden(
            "이 답변에 피드백할 권한이 없습니다 (답변 토큰 불일치).",
            "Not allowed to rate this answer (answer token mismatch).",
            hint="질문한 클라이언트만 평가할 수 있습니다 / only the client that asked can rate it",
        )


def review_feedback(
    db_path: str | Path,
    feedback_id: int,
    status: str,
    reviewer: str,
    note: str | None = None,
    *,
    revision: int,
    kb_now: KbNow | None = None,
    accept_kb_change: bool = False,
) -> dict[str, Any]:
    """Approve or reject revision `revision` of a pending item; returns the reviewed row.

    One transaction, one compare-and-set on state and revision: of two concurrent
    decisions exactly one applies, and a decision on a revision the asker has since
    replaced applies to nothing. `FeedbackNotFound` for an unknown id, `FeedbackConflict`
    when the item is decided or at another revision. An approval of an answer whose cited
    documents changed since (`cited_documents_changed`) is `FeedbackKbChanged` unless
    `accept_kb_change`; the row keeps `kb_now`'s hash and the changed ids either way.
    """
    if status not in ("approved", "rejected"):
        raise UserError(f"알 수 없는 검토 상태: {status!r}", f"Unknown review status: {status!r}.")
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise UserError("검토자 이름이 필요합니다.", "A reviewer name is required.", hint="--reviewer 이름 / --reviewer NAME")
    with transaction(db_path) as conn:
        changed = cited_documents_changed(conn, int(feedback_id), kb_now)
        if changed is None:
            _explain_refused_review(conn, int(feedback_id), int(revision))
        if status == "approved" and changed and not accept_kb_change:
            _explain_refused_review(conn, int(feedback_id), int(revision), only_if_refused=True)
            raise FeedbackKbChanged(int(feedback_id), changed or [])
        cur = conn.execute(
            "UPDATE feedback SET status = ?, reviewer = ?, reviewed_at = ?, review_note = ?,"
            " review_kb_hash = ?, review_kb_changed_json = ?"
            " WHERE id = ? AND status = 'pending' AND revisions = ?",
            (status, reviewer[:64], utc_now(), (note or "").strip() or None,
             kb_now.kb_hash if kb_now is not None else None, json.dumps(changed or []),
             int(feedback_id), int(revision)),
        )
        if cur.rowcount == 0:
            _explain_refused_review(conn, int(feedback_id), int(revision))
    # Decided rows never change again, so reading after the commit reads this decision.
    rows = list(iter_feedback_rows(db_path, status=None, feedback_id=int(feedback_id)))
    return rows[0]


def cited_documents_changed(conn: sqlite3.Connection, feedback_id: int, kb_now: KbNow | None) -> list[str] | None:
    """Ids of the documents an item's answer cited that changed since the answer (None: no item).

    Changed means: edited through the admin API after the answer (a done KB audit row), or,
    given the KB now, gone from it or with a text other than the one snapshotted with the
    feedback. Hand edits made before the feedback arrived are not seen (no record of them):
    the export's `kb_hash` still tells the dataset builder which KB the answer came from.
    """
    row = conn.execute(
        "SELECT a.created_at, a.context_ids_json, f.contexts_json FROM feedback f JOIN answers a ON a.id = f.answer_id"
        " WHERE f.id = ?",
        (feedback_id,),
    ).fetchone()
    if row is None:
        return None
    ids = [str(i) for i in json.loads(row["context_ids_json"]) if i]
    snapshot = _expand_snapshot(conn, json.loads(row["contexts_json"])) if row["contexts_json"] else []
    changed: set[str] = set()
    if ids:
        marks = ",".join("?" * len(ids))
        changed |= {
            r[0]
            for r in conn.execute(
                f"SELECT DISTINCT doc_id FROM kb_audit WHERE state = 'done' AND created_at > ? AND doc_id IN ({marks})",
                (row["created_at"], *ids),
            )
        }
    if kb_now is not None:
        seen = {str(c.get("id", "")): c.get("text") for c in snapshot if c.get("id")}
        for doc_id in ids or list(seen):
            if doc_id not in kb_now.texts or (seen.get(doc_id) is not None and seen[doc_id] != kb_now.texts[doc_id]):
                changed.add(doc_id)
    return sorted(changed)


def _explain_refused_review(
    conn: sqlite3.Connection, feedback_id: int, revision: int, *, only_if_refused: bool = False
) -> None:
    """Raise why a review changed no row: unknown id, already decided, or another revision.

    `only_if_refused`: return quietly when the item is pending at `revision` (the check
    before another reason to refuse, so a stale reviewer hears "changed" first)."""
    row = conn.execute("SELECT status, reviewer, revisions FROM feedback WHERE id = ?", (feedback_id,)).fetchone()
    if only_if_refused and row is not None and row["status"] == "pending" and row["revisions"] == revision:
        return
    if row is None:
        raise FeedbackNotFound(f"피드백 {feedback_id} 이(가) 없습니다.", f"No feedback with id {feedback_id}.")
    if row["status"] != "pending":
        raise FeedbackConflict(
            f"피드백 {feedback_id} 은(는) 이미 검토되었습니다 ({row['status']}, {row['reviewer']}).",
            f"Feedback {feedback_id} was already reviewed ({row['status']} by {row['reviewer']}).",
            hint="목록을 새로 고치세요 / refresh the list",
        )
    raise FeedbackConflict(
        f"피드백 {feedback_id} 이(가) 읽은 뒤에 바뀌었습니다 (읽은 수정본 {revision}, 현재 {row['revisions']}).",
        f"Feedback {feedback_id} changed after you read it (you read revision {revision}, it is now {row['revisions']}).",
        hint="목록을 새로 고쳐 새 내용을 읽고 다시 결정하세요 / refresh, read the new text and decide again",
    )


def count_feedback(db_path: str | Path, status: str | None = None) -> int:
    """Number of feedback rows (the load bench compares it with acknowledged writes)."""
    with connection(db_path) as conn:
        if status is None:
            return int(conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])
        return int(conn.execute("SELECT COUNT(*) FROM feedback WHERE status = ?", (status,)).fetchone()[0])


def _open_existing(db_path: str | Path) -> Path:
    path = Path(db_path)
    if not path.exists():
        raise UserError(
            "피드백 데이터베이스가 없습니다.",
            "Feedback database not found.",
            path=path,
            hint="`aldlab serve --db` 에 준 경로를 쓰세요 / use the path given to `aldlab serve --db`",
        )
    init_db(path)  # an older schema is migrated before reading
    return path


def iter_feedback_rows(
    db_path: str | Path,
    *,
    status: str | None = "approved",
    limit: int | None = None,
    offset: int = 0,
    feedback_id: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Feedback joined with its answer, oldest first, one row at a time (exports stream).

    Row shape (the legacy feedback_data.json fields plus review and provenance):
    {"question", "answer", "feedback": "like"|"dislike", "comment", "correction",
     "contexts": [{"id", "title", "text"}], "history": [{"role", "content"}], "model",
     "model_version" (registry id of the model that answered, '' when unknown), "timestamp", "answer_id", "feedback_id", "kb_hash", "revisions",
     "review": {"status", "reviewer", "reviewed_at", "note"}}
    """
    if status is not None and status not in STATUSES:
        raise UserError(f"알 수 없는 상태: {status!r}", f"Unknown status: {status!r}.", hint=" | ".join(STATUSES))
    path = _open_existing(db_path)
    where, params = [], []
    if status is not None:
        where.append("f.status = ?")
        params.append(status)
    if feedback_id is not None:
        where.append("f.id = ?")
        params.append(feedback_id)
    query = (
        "SELECT a.id AS answer_id, a.question, a.answer, a.contexts_json, a.context_ids_json, a.kb_hash,"
        " a.history_json, a.model, a.model_version, f.id AS feedback_id, f.rating, f.comment, f.correction, f.updated_at,"
        " f.revisions, f.status, f.reviewer, f.reviewed_at, f.review_note, f.contexts_json AS snapshot,"
        " f.review_kb_hash, f.review_kb_changed_json"
        " FROM feedback f JOIN answers a ON a.id = f.answer_id"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY f.updated_at, f.id LIMIT ? OFFSET ?"
    )
    # Batches, each on its own short connection: a streaming response pulls rows from
    # whichever worker thread is free, and a sqlite3 connection must stay in one thread.
    remaining = limit
    while remaining is None or remaining > 0:
        size = EXPORT_BATCH if remaining is None else min(EXPORT_BATCH, remaining)
        with connection(path) as conn:
            batch = conn.execute(query, [*params, size, offset]).fetchall()
            snapshots = [_expand_snapshot(conn, json.loads(r["snapshot"])) if r["snapshot"] else None for r in batch]
        yield from (_export_row(r, snapshot) for r, snapshot in zip(batch, snapshots))
        if len(batch) < size:
            return
        offset += len(batch)
        if remaining is not None:
            remaining -= len(batch)


def _export_row(r: Any, snapshot: list[dict[str, Any]] | None) -> dict[str, Any]:
    contexts = snapshot if snapshot else json.loads(r["contexts_json"])
    if not contexts:  # ids only (no snapshot): the builder looks the texts up in the KB
        contexts = [{"id": cid} for cid in json.loads(r["context_ids_json"])]
    return {
        "question": r["question"],
        "answer": r["answer"],
        "feedback": r["rating"],
        "comment": r["comment"],
        "correction": r["correction"],
        "contexts": [
            {"id": c.get("id", ""), "title": c.get("title", ""), "text": c.get("text", "")} for c in contexts
        ],
        "history": json.loads(r["history_json"]),
        "model": r["model"],
        "model_version": r["model_version"],
        "timestamp": r["updated_at"],
        "answer_id": r["answer_id"],
        "feedback_id": r["feedback_id"],
        "kb_hash": r["kb_hash"],
        "revisions": r["revisions"],
        "review": {
            "status": r["status"],
            "reviewer": r["reviewer"],
            "reviewed_at": r["reviewed_at"],
            "note": r["review_note"],
            # The KB the decision was made on, and the cited documents changed since the
            # answer (approved anyway only with accept_kb_change): data build can tell.
            "kb_hash": r["review_kb_hash"],
            "kb_changed": json.loads(r["review_kb_changed_json"]) if r["review_kb_changed_json"] else [],
        },
    }


def export_feedback_rows(db_path: str | Path, status: str | None = "approved") -> list[dict[str, Any]]:
    """All rows of `iter_feedback_rows` (approved only unless `status` says otherwise)."""
    return list(iter_feedback_rows(db_path, status=status))


def queue_imported_feedback(db_path: str | Path, rows: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """Put feedback rows from files (legacy feedback_data.json, JSONL exports) into the review
    queue as pending items; returns (queued, already in the store). All rows or none.

    `rows` are in the export shape (`aldlab.data.feedback.queue_row` makes them). Each row
    becomes a logged answer whose id is a hash of its content, so importing a file twice
    queues nothing new, and an item already decided stays decided. A row exported from this
    store (its `answer_id` is logged here) is already in the queue. The answer token is a
    random one nobody receives: an imported item cannot be changed through the web API.
    """
    queued = known = 0
    now = utc_now()
    with transaction(db_path) as conn:
        for row in rows:
            origin = row.get("answer_id")
            if origin and conn.execute("SELECT 1 FROM answers WHERE id = ?", (origin,)).fetchone():
                known += 1
                continue
            answer_id = _imported_answer_id(row)
            contexts = [_context_row(c) for c in row.get("contexts") or []]
            inserted = conn.execute(
                "INSERT OR IGNORE INTO answers (id, created_at, question, answer, contexts_json, citations_json,"
                " history_json, confidence, refused, model, used_retrieval, latency_s, client, token_hash,"
                " context_ids_json, kb_hash) VALUES (?, ?, ?, ?, '[]', '[]', ?, 0, 0, ?, ?, 0, '', ?, ?, ?)",
                (
                    answer_id,
                    row.get("timestamp") or now,
                    row["question"],
                    row.get("answer") or "",
                    json.dumps(row.get("history") or [], ensure_ascii=False),
                    row.get("model") or "imported",
                    int(bool(contexts)),
                    token_hash(secrets.token_urlsafe(32)),
                    json.dumps([str(c["id"]) for c in contexts if c.get("id")], ensure_ascii=False),
                    row.get("kb_hash") or "",
                ),
            ).rowcount
            if not inserted:
                known += 1
                continue
            conn.execute(
                "INSERT INTO feedback (answer_id, rating, comment, correction, created_at, updated_at, contexts_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    answer_id,
                    row["feedback"],
                    (row.get("comment") or "").strip() or None,
                    (row.get("correction") or "").strip() or None,
                    now,
                    now,
                    json.dumps(contexts, ensure_ascii=False),
                ),
            )
            queued += 1
    return queued, known


def _imported_answer_id(row: dict[str, Any]) -> str:
    """`import-<hash>` of what a reviewer judges: the same row always gets the same id."""
    judged = [row.get(k) for k in ("question", "answer", "feedback", "comment", "correction", "history")]
    judged.append([[c.get("id"), c.get("text")] for c in row.get("contexts") or []])
    return "import-" + hashlib.sha256(json.dumps(judged, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class RatedPurge:
    """What `purge_rated_feedback` removed."""

    rejected: int = 0  # rejected items deleted
    answers: int = 0  # their answers, deleted when no other item refers to them
    snapshots: int = 0  # snapshots dropped from approved items that can never be trained on
    passages: int = 0  # passage texts no snapshot refers to any more


def _cutoff(max_age_days: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=max_age_days)).isoformat(timespec="microseconds")


def purge_rated_feedback(db_path: str | Path, *, max_age_days: float) -> RatedPurge:
    """Retention for rated answers, counted from the review decision (0 = keep for good).

    Older than `max_age_days` since the decision:
    - a rejected item is deleted, and its answer with it unless another item (a later
      resubmission, pending or approved) refers to it: nothing will ever read either;
    - an approved item that `aldlab.data.feedback` can never train on (a dislike without a
      correction, or an answer steered by chat history) keeps its row, the record of the
      decision, but drops its snapshot: the passages are what makes a row big;
    - passages no snapshot refers to any more are deleted.
    Pending items wait for a reviewer and approved training targets keep their snapshot
    (the dataset builder's prompt is those passages), so neither is touched.
    """
    if max_age_days <= 0:
        return RatedPurge()
    cutoff = _cutoff(max_age_days)
    with transaction(db_path) as conn:
        old_rejected = "status = 'rejected' AND reviewed_at < ?"
        answer_ids = [r[0] for r in conn.execute(f"SELECT DISTINCT answer_id FROM feedback WHERE {old_rejected}", (cutoff,))]
        rejected = conn.execute(f"DELETE FROM feedback WHERE {old_rejected}", (cutoff,)).rowcount
        answers = sum(
            conn.execute(
                "DELETE FROM answers WHERE id = ? AND NOT EXISTS (SELECT 1 FROM feedback WHERE answer_id = ?)",
                (answer_id, answer_id),
            ).rowcount
            for answer_id in answer_ids
        )
        snapshots = conn.execute(
            "UPDATE feedback SET contexts_json = NULL WHERE status = 'approved' AND reviewed_at < ?"
            " AND contexts_json IS NOT NULL AND ("
            "  (rating = 'dislike' AND COALESCE(TRIM(correction), '') = '')"
            "  OR answer_id IN (SELECT id FROM answers WHERE history_json NOT IN ('[]', '')))",
            (cutoff,),
        ).rowcount
        passages = _delete_unreferenced_passages(conn)
    return RatedPurge(rejected, answers, snapshots, passages)


def _delete_unreferenced_passages(conn: sqlite3.Connection) -> int:
    """Delete passage texts no feedback snapshot refers to; returns how many.

    Read in Python, not with SQLite's JSON functions: feedback rows are written by people
    (thousands, not millions), and a snapshot written before migration 5 holds full rows
    with no `passage` key, which this simply skips.
    """
    referenced: set[str] = set()
    for (snapshot,) in conn.execute("SELECT contexts_json FROM feedback WHERE contexts_json IS NOT NULL"):
        try:
            refs = json.loads(snapshot)
        except ValueError:
            continue
        referenced.update(str(c["passage"]) for c in refs if isinstance(c, dict) and "passage" in c)
    stale = [h for (h,) in conn.execute("SELECT hash FROM passages") if h not in referenced]
    for start in range(0, len(stale), 500):  # SQLite's bound-parameter limit
        chunk = stale[start : start + 500]
        conn.execute(f"DELETE FROM passages WHERE hash IN ({','.join('?' * len(chunk))})", chunk)
    return len(stale)


def purge_answers(db_path: str | Path, *, max_age_days: float, max_rows: int) -> int:
    """Retention: delete answers without feedback older than `max_age_days` or beyond the
    newest `max_rows`; returns how many were deleted. Answers with feedback stay (review
    and export need them). 0 disables a limit."""
    deleted = 0
    with transaction(db_path) as conn:
        if max_age_days > 0:
            cutoff = _cutoff(max_age_days)
            deleted += conn.execute(
                "DELETE FROM answers WHERE created_at < ? AND id NOT IN (SELECT answer_id FROM feedback)", (cutoff,)
            ).rowcount
        if max_rows > 0:
            deleted += conn.execute(
                "DELETE FROM answers WHERE id NOT IN (SELECT answer_id FROM feedback) AND id NOT IN"
                " (SELECT id FROM answers ORDER BY created_at DESC LIMIT ?)",
                (int(max_rows),),
            ).rowcount
    return deleted
