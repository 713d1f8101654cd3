"""The server's side of the KB: documents to show, admin edits, and the index rebuild after them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from aldlab.errors import UserError
from aldlab.kb.schema import Document
from aldlab.rag.types import AssistantProtocol
from aldlab.serve.documents import KbDocuments
from aldlab.serve.errors import ApiError, kb_unavailable
from aldlab.serve.reloader import Reloader
from aldlab.store import Store


class KbAdmin:
    """Where the KB is, its documents (the assistant's copy), edits one at a time, reloads."""

    def __init__(self, assistant: AssistantProtocol, kb: str | None, *, on_reloaded: Callable[[], None]) -> None:
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

    def context_snapshot(self, ids: list[str]) -> list[dict[str, Any]] | None:
        """Texts of the logged context ids, as the KB has them now (None if any is gone)."""
        docs = [self.document(i) for i in ids]
        if any(d is None for d in docs):
            return None
        return [{"id": d.id, "title": d.title, "text": d.text} for d in docs if d is not None]


@dataclass(frozen=True)
class KbAudit:
    """The audit log of one admin request: who (actor name) and from where (client)."""

    store: Store
    actor: str
    client: str

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
