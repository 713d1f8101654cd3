"""The KB's documents as the server shows them: the assistant's own KB, not a second copy.

`/api/documents/{id}` used to re-read and re-validate the whole KB on every call (33 ms
for the shipped 430 documents); 200 anonymous calls pushed `/api/health` from 12 ms to
1.7 s. Now a call costs a dict lookup plus, at most once per `CHECK_INTERVAL_S`, a
`stat()` of the KB files (`aldlab.kb.io.KbWatcher`, the check the assistant's own reload
makes too).

Documents come from `assistant.kb`. When the files change (an admin edit, or someone
editing them by hand) they are read once and shown until the assistant's index rebuild
has the same content (minutes on the 2-core CPU box), so an edit shows at once; then the
assistant's copy is the only one again.
"""

from __future__ import annotations

import threading
from pathlib import Path

from aldlab.kb.io import KbWatcher
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.rag.types import AssistantProtocol

#: How often the KB files are stat()ed for changes (seconds).
CHECK_INTERVAL_S = 1.0


class KbDocuments:
    """The KB as on disk: the assistant's KB, or the files' newer content until it catches up."""

    def __init__(self, assistant: AssistantProtocol, path: Path) -> None:
        self._assistant = assistant
        # Unread: the first use compares the files with the assistant's KB (read once).
        self._watcher = KbWatcher(path, every_s=CHECK_INTERVAL_S, read=False)
        self._lock = threading.Lock()
        self._compared: KnowledgeBase | None = None  # the assistant's KB when last compared
        self._newer: KnowledgeBase | None = None  # the files, while they differ from the assistant's KB
        self._by_id: tuple[KnowledgeBase | None, dict[str, Document]] = (None, {})

    def current(self) -> KnowledgeBase:
        """The KB to show; `UserError` when the files changed and do not validate."""
        answering = self._assistant.kb
        with self._lock:
            disk = self._watcher.read_if_changed()
            if disk is not None:
                self._newer = disk
            if self._newer is not None and (disk is not None or answering is not self._compared):
                if self._newer.content_hash() == answering.content_hash():
                    self._newer = None  # the assistant has the files' content: one copy again
            self._compared = answering
            return answering if self._newer is None else self._newer

    def edited(self) -> None:
        """Read the files on next use (an admin edit may keep their sizes and mtimes)."""
        self._watcher.forget()

    def documents(self) -> list[Document]:
        return self.current().documents

    def get(self, doc_id: str) -> Document | None:
        kb = self.current()
        indexed, by_id = self._by_id
        if indexed is not kb:
            by_id = kb.by_id()
            self._by_id = (kb, by_id)
        return by_id.get(doc_id)
