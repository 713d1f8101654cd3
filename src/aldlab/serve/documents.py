"""The KB's documents, held in memory and refreshed when the files change.

`/api/documents/{id}` used to re-read and re-validate the whole KB on every call (33 ms
for the shipped 430 documents); 200 anonymous calls pushed `/api/health` from 12 ms to
1.7 s. Now a call costs a dict lookup plus, at most once per `CHECK_INTERVAL_S`, a
`stat()` of the KB files; the KB is re-read only when a file's size or mtime changed
(an admin edit, or someone editing the files by hand).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from aldlab.kb.io import kb_signature, load_kb
from aldlab.kb.schema import Document

#: How often the KB files are stat()ed for changes (seconds).
CHECK_INTERVAL_S = 1.0


class DocumentCache:
    """Documents by id and the KB content hash, reloaded only when the KB changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._checked = 0.0
        self._signature: tuple[Any, ...] | None = None
        self._documents: list[Document] = []
        self._by_id: dict[str, Document] = {}
        self._hash = ""

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and self._signature is not None and now - self._checked < CHECK_INTERVAL_S:
            return
        with self._lock:
            if not force and self._signature is not None and time.monotonic() - self._checked < CHECK_INTERVAL_S:
                return
            signature = kb_signature(self.path)
            if force or signature != self._signature:
                kb = load_kb(self.path)  # a broken KB raises UserError; the old copy stays
                self._documents = list(kb.documents)
                self._by_id = {d.id: d for d in kb.documents}
                self._hash = kb.content_hash()
                self._signature = signature
            self._checked = time.monotonic()

    def invalidate(self) -> None:
        """Re-read on next use (called after an admin edit, whose mtime may not change)."""
        with self._lock:
            self._signature = None

    def documents(self) -> list[Document]:
        self._refresh()
        return self._documents

    def get(self, doc_id: str) -> Document | None:
        self._refresh()
        return self._by_id.get(doc_id)

    def content_hash(self) -> str:
        self._refresh()
        return self._hash
