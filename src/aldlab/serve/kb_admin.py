"""The server's side of the KB: documents to show, admin edits, and the index rebuild after them.

An admin edit and its audit row are one recoverable unit: `AuditJournal` writes the row
pending before the KB files and marks it done after (`aldlab.store.audit`), and
`repair_kb_audit` settles rows a crash left pending when the server starts.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio

from aldlab.errors import UserError
from aldlab.files import file_lock
from aldlab.kb.edit import DocumentChange, KbUnreadable, read_kb_dir, remove_stale_temp_files
from aldlab.kb.io import save_kb
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.rag.types import AssistantProtocol
from aldlab.serve.documents import KbDocuments
from aldlab.serve.errors import ApiError, kb_unavailable
from aldlab.serve.reloader import Reloader
from aldlab.store import KbNow, Store
from aldlab.store.audit import PlannedEdit, document_hash

log = logging.getLogger("aldlab.serve")
T = TypeVar("T")


class KbHash:
    """`content_hash()` of a KB object, computed once per object.

    Hashing the shipped KB takes ~12 ms, and every logged answer used to do it on the event
    loop. A KB object is never changed in place once served: a reload or an edit makes a new
    one (`Assistant.reload_if_changed`, `KbDocuments`), so the identity of the object is
    the cache key and a KB change invalidates it by itself.
    """

    def __init__(self) -> None:
        self._ref: weakref.ref[KnowledgeBase] | None = None
        self._hash = ""

    def of(self, kb: KnowledgeBase) -> str:
        ref, value = self._ref, self._hash  # one read of each: a racing refill is harmless
        if ref is not None and ref() is kb:
            return value
        value = str(kb.content_hash())
        self._ref, self._hash = weakref.ref(kb), value
        return value


class KbAdmin:
    """Where the KB is, its documents (the assistant's copy), edits one at a time, reloads."""

    def __init__(self, assistant: AssistantProtocol, kb: str | None, *, on_reloaded: Callable[[], None]) -> None:
        self._assistant = assistant
        self._answering_hash = KbHash()
        self._current_hash = KbHash()
        self._kb = Path(kb) if kb else None
        self._docs = KbDocuments(assistant, self._kb) if self._kb else None
        # Looked up per call: a reload swapped in on the assistant (tests) is the one used.
        self.reloader = Reloader(lambda: assistant.reload_if_changed(), kb=self._kb, on_done=on_reloaded)
        # Admin edits of this server run one at a time, each with its audit row.
        self.edit_lock = asyncio.Lock()

    def path(self) -> Path:
        if self._kb is None:
            raise ApiError(409, "kb_not_configured", "KB 경로가 설정되지 않았습니다.", "No KB path is configured.")
        return self._kb

    def editable_dir(self) -> Path:
        path = self.path()
        if not (path.is_dir() and (path / "kb.json").exists()):
            raise ApiError(
                409,
                "kb_not_editable",
                "KB 편집은 kb.json이 있는 KB 디렉터리에서만 가능합니다.",
                "KB editing needs a native KB directory (with kb.json).",
                hint="`aldlab kb import` 로 변환한 뒤 --kb 로 지정하세요 / convert with `aldlab kb import` first",
            )
        return path

    @staticmethod
    def check_topic_path(kb_dir: Path, topic: str | None) -> None:
        """Belt and braces after the name pattern: the topic's file stays in the KB."""
        if topic is None:
            return
        documents = (kb_dir / "documents").resolve()
        target = (documents / f"{topic}.jsonl").resolve()
        if target.parent != documents:
            raise ApiError(400, "invalid_topic", "주제 이름이 올바르지 않습니다.", "Invalid topic name.")

    def _documents(self) -> KbDocuments:
        """409 without a KB path; the KB's documents otherwise."""
        if self._docs is None:
            self.path()  # raises the 409 "no KB configured"
        assert self._docs is not None
        return self._docs

    def documents(self) -> list[Document]:
        """The KB's documents from memory (re-read only when the files changed); 503 if they do not validate."""
        try:
            return self._documents().documents()
        except UserError as exc:
            raise kb_unavailable(exc, self._kb) from exc

    def document(self, doc_id: str) -> Document | None:
        try:
            return self._documents().get(doc_id)
        except UserError as exc:
            raise kb_unavailable(exc, self._kb) from exc

    def edited(self) -> None:
        """After an admin edit: the next document lookup shows it."""
        if self._docs is not None:
            self._docs.edited()

    async def edit(self, work: Callable[[], T]) -> T:
        """Run one KB edit (`aldlab.kb.edit` with an `AuditJournal`) off the event loop.

        One at a time, so audit rows chain before -> after. A KB whose files do not load is
        the server's fault, not the request's: 503 `kb_unavailable`, not 400.
        """
        async with self.edit_lock:
            try:
                return await anyio.to_thread.run_sync(work)
            except KbUnreadable as exc:
                raise kb_unavailable(exc, self._kb) from exc
            finally:
                self.edited()

    def repair_audit(self, store: Store) -> AuditRepair | None:
        """At start-up: settle the audit rows a crash left pending (None without an editable KB)."""
        if self._kb is None or not (self._kb / "kb.json").exists():
            return None
        try:
            repair = repair_kb_audit(store, self._kb)
        except UserError as exc:  # the KB does not load: its rows stay pending until it does
            log.warning("KB audit repair postponed: %s", exc.en)
            return None
        if repair.settled or repair.temp_files:
            log.warning("KB audit repair: %s", repair.describe())
        return repair

    def context_snapshot(self, ids: list[str], kb_hash: str = "") -> list[dict[str, Any]] | None:
        """Texts of the logged context ids (None if any is gone).

        From the KB the answer was made with when the assistant still answers from it
        (`kb_hash` matches), so feedback pairs the answer with the text it read; else from
        the KB as it is now, and the review's check (`aldlab.store.feedback.KbNow`) tells.
        """
        answering = self._assistant.kb
        if kb_hash and self._answering_hash.of(answering) == kb_hash:
            by_id = answering.by_id()
            docs = [by_id.get(i) for i in ids]
        else:
            docs = [self.document(i) for i in ids]
        if any(d is None for d in docs):
            return None
        return [{"id": d.id, "title": d.title, "text": d.text} for d in docs if d is not None]

    def kb_now(self) -> KbNow | None:
        """The KB a reviewer decides on (None without a KB path): hash and document texts."""
        if self._docs is None:
            return None
        try:
            kb = self._docs.current()
        except UserError as exc:
            raise kb_unavailable(exc, self._kb) from exc
        return KbNow(self._current_hash.of(kb), {d.id: d.text for d in kb.documents})


@dataclass(frozen=True)
class KbAudit:
    """The audit log of one admin request: who (actor name) and from where (client)."""

    store: Store
    actor: str
    client: str

    def journal(self, kb_dir: Path) -> AuditJournal:
        """The `EditJournal` that records this request's edits of `kb_dir`."""
        return AuditJournal(self.store, self.actor, self.client, kb_dir)

    async def record(self, action: str, doc_id: str | None, before: Any, after: Any) -> None:
        await anyio.to_thread.run_sync(
            partial(
                self.store.record_kb_edit,
                actor=self.actor,
                action=action,
                doc_id=doc_id,
                before=before,
                after=after,
                client=self.client,
            )
        )


def _json(doc: Document | None) -> dict[str, Any] | None:
    return None if doc is None else doc.to_json()


def kb_key(kb_dir: Path) -> str:
    """How audit rows name a KB directory (one database may have served several)."""
    return str(kb_dir.resolve())


@dataclass(frozen=True)
class AuditJournal:
    """`aldlab.kb.edit.EditJournal` writing audit rows: pending before the write, done after."""

    store: Store
    actor: str
    client: str
    kb_dir: Path

    def begin(self, changes: Sequence[DocumentChange]) -> list[int]:
        planned = [PlannedEdit(c.action, c.doc_id, _json(c.before), _json(c.after)) for c in changes]
        return self.store.begin_kb_edits(planned, actor=self.actor, client=self.client, kb_dir=kb_key(self.kb_dir))

    def commit(self, entry: list[int]) -> None:
        self.store.settle_kb_edits(entry, "done")

    def fail(self, entry: list[int]) -> None:
        """The write raised (disk full, ...): judge from the files what it changed. Runs under
        the KB lock already (taking it again would deadlock: flock is per open file)."""
        rows = [r for r in self.store.pending_kb_edits(kb_dir=kb_key(self.kb_dir)) if r["id"] in set(entry)]
        settle_pending(self.store, self.kb_dir, rows)


@dataclass
class AuditRepair:
    """What a repair did: rows settled done/aborted, temp files and duplicate copies removed."""

    done: list[int] = field(default_factory=list)
    aborted: list[int] = field(default_factory=list)
    temp_files: int = 0
    duplicates_removed: list[str] = field(default_factory=list)

    @property
    def settled(self) -> int:
        return len(self.done) + len(self.aborted)

    def describe(self) -> str:
        return (
            f"{len(self.done)} pending edit(s) had happened (done), {len(self.aborted)} had not (aborted), "
            f"{self.temp_files} temp file(s) removed; "
            f"duplicate copies removed: {', '.join(self.duplicates_removed) or 'none'}"
        )


def _copies(documents: Sequence[Document]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for doc in documents:
        found.setdefault(doc.id, []).append(doc.to_json())
    return found


def settle_pending(store: Store, kb_dir: Path, rows: Sequence[dict[str, Any]]) -> AuditRepair:
    """Mark each pending row done if its write is on disk, aborted if not.

    What the write left is the `before` of the next done edit of the same document, or
    the KB as it is now when there is none: an add or update happened when that holds the
    document with the row's hash; a delete happened when the document is absent.
    """
    repair = AuditRepair()
    copies = _copies(read_kb_dir(kb_dir).documents)
    for row in rows:
        later = store.next_kb_edit(row["doc_id"], row["id"])
        if later is not None:
            observed = [] if later["before"] is None else [later["before"]]
        else:
            observed = copies.get(row["doc_id"], [])
        if row["action"] == "delete":
            happened = not observed
        else:
            happened = row["after_hash"] in {document_hash(o) for o in observed}
        (repair.done if happened else repair.aborted).append(row["id"])
    store.settle_kb_edits(repair.done, "done")
    store.settle_kb_edits(repair.aborted, "aborted")
    return repair


def _finish_interrupted_moves(kb_dir: Path, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Roll forward a topic move a crash cut in half.

    A move writes the gaining topic file before the losing one (`aldlab.kb.io.save_kb`), so
    a kill between them leaves the document in both files. When a pending update's new
    version is one of the copies, the write got that far: the stale copies are removed.
    """
    kb = read_kb_dir(kb_dir)
    copies = _copies(kb.documents)
    stale: set[tuple[str, str | None]] = set()
    for row in rows:
        found = copies.get(row["doc_id"], [])
        if row["action"] == "update" and len(found) > 1 and row["after_hash"] in {document_hash(c) for c in found}:
            stale |= {(row["doc_id"], document_hash(c)) for c in found if document_hash(c) != row["after_hash"]}
    if not stale:
        return []
    kb.documents = [d for d in kb.documents if (d.id, document_hash(d.to_json())) not in stale]
    save_kb(kb, kb_dir)
    return sorted({doc_id for doc_id, _ in stale})


def repair_kb_audit(store: Store, kb_dir: Path) -> AuditRepair:
    """Settle the pending audit rows of `kb_dir` and remove a killed writer's temp files.

    Under the KB lock, so no writer is mid-write: every pending row found is a crash's.
    """
    with file_lock(kb_dir / "kb.json"):
        temp_files = len(remove_stale_temp_files(kb_dir))
        rows = store.pending_kb_edits(kb_dir=kb_key(kb_dir))
        moved = _finish_interrupted_moves(kb_dir, rows) if rows else []
        repair = settle_pending(store, kb_dir, rows) if rows else AuditRepair()
    repair.temp_files = temp_files
    repair.duplicates_removed = moved
    return repair
