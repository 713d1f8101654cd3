"""Reading and writing a KB in the native on-disk format.

A KB is a directory:

    kb.json                 name, topics {id: label}, keyword vocabulary, synonym groups
    documents/<topic>.jsonl one document per line: id, title, topic, keywords, text, source

JSON Lines keeps one document per line, so validation errors can name file *and* line,
and git diffs of KB edits stay readable. `load_kb` also takes the formats users bring
(legacy `docs_ald.json`, `.txt`, `.md`, `.pdf`) through `aldlab.kb.loaders`.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from aldlab.errors import UserError
from aldlab.files import atomic_write_json, atomic_write_jsonl, iter_jsonl, read_json
from aldlab.kb.loaders import load_any
from aldlab.kb.schema import Document, KnowledgeBase, document_from_json


def load_kb(path: str | Path) -> KnowledgeBase:
    """Load a KB from a native directory, a native `kb.json`, or a legacy/plain file.

    Legacy `docs_ald.json`, `.txt`, `.md` and `.pdf` inputs are converted in memory by
    `aldlab.kb.loaders`, so every stage can take any of them directly.
    """
    p = Path(path)
    if p.is_dir() and (p / "kb.json").exists():
        return _load_native(p)
    if p.is_file() and p.name == "kb.json":
        return _load_native(p.parent)
    if p.is_file() or p.is_dir():
        return load_any(p)
    raise UserError(
        "KB 경로가 없습니다.",
        "Knowledge base path not found.",
        path=p,
        hint="KB 디렉터리(kb.json 포함) 또는 docs_ald.json 경로를 주세요 / give a KB directory or a docs_ald.json",
    )


def _load_native(root: Path) -> KnowledgeBase:
    meta = read_json(root / "kb.json")
    if not isinstance(meta, dict):
        raise UserError("kb.json은 객체여야 합니다.", "kb.json must be a JSON object.", path=root / "kb.json")
    documents: list[Document] = []
    for file in sorted((root / "documents").glob("*.jsonl")):
        for lineno, obj in iter_jsonl(file):
            documents.append(document_from_json(obj, origin=f"{file}:{lineno}"))
    return KnowledgeBase(
        documents=documents,
        name=str(meta.get("name", root.name)),
        description=str(meta.get("description", "")),
        language=str(meta.get("language", "ko")),
        version=int(meta.get("version", 1)),
        topics=dict(meta.get("topics", {})),
        keywords=list(meta.get("keywords", [])),
        synonym_groups=[list(g) for g in meta.get("synonym_groups", [])],
    )


def kb_signature(path: Path) -> tuple[Any, ...]:
    """Names, sizes and mtimes of the KB files (cheap change detector)."""
    files = [path] if path.is_file() else [path / "kb.json", *sorted((path / "documents").glob("*.jsonl"))]
    out = []
    for f in files:
        try:
            st = f.stat()
            out.append((f.name, st.st_size, st.st_mtime_ns))
        except FileNotFoundError:
            out.append((f.name, None, None))
    return tuple(out)


class KbWatcher:
    """Has the KB on disk changed since it was last read? One check for every reader.

    The assistant (before it rebuilds its index) and the server (before it serves a
    document) both ask this; a check is a `stat()` of the files (`kb_signature`), the KB
    is read only when one changed. `every_s` spaces the checks (a document lookup per
    request must not stat the KB each time).
    """

    def __init__(self, path: Path, *, every_s: float = 0.0, read: bool = True) -> None:
        """`read`: the caller's copy was read from `path` just now (else the first check reads)."""
        self.path = path
        self.every_s = every_s
        self._lock = threading.Lock()
        self._seen: tuple[Any, ...] | None = kb_signature(path) if read else None
        self._checked = float("-inf")

    def read_if_changed(self) -> KnowledgeBase | None:
        """The KB, re-read because its files changed since the last read; None if they did not.

        A KB that does not validate raises `UserError` and counts as unread, so the next
        check tries again and the caller keeps its old copy meanwhile.
        """
        if time.monotonic() - self._checked < self.every_s:
            return None
        with self._lock:
            signature = kb_signature(self.path)
            kb = load_kb(self.path) if signature != self._seen else None
            self._seen = signature
            self._checked = time.monotonic()
            return kb

    def forget(self) -> None:
        """Read on the next check (after an edit that may keep the files' sizes and mtimes)."""
        with self._lock:
            self._seen = None
            self._checked = float("-inf")


def _ids_on_disk(path: Path) -> set[str]:
    ids: set[str] = set()
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                ids.add(str(json.loads(line).get("id")))
            except (ValueError, AttributeError):
                continue
    return ids


def _gaining_files_first(docs_dir: Path, by_topic: dict[str, list[Document]]) -> list[tuple[str, list[Document]]]:
    """Topic files that receive a document are written before the files that lose one.

    Each file is replaced atomically, but a move between topics touches two files: written
    in this order, a crash between them leaves the document in both files (a duplicate id
    that `aldlab kb validate` reports), never in neither.
    """
    def gains(item: tuple[str, list[Document]]) -> bool:
        return bool({d.id for d in item[1]} - _ids_on_disk(docs_dir / f"{item[0]}.jsonl"))

    return sorted(by_topic.items(), key=lambda item: 0 if gains(item) else 1)


def _manifest_on_disk(root: Path) -> dict[str, Any] | None:
    """kb.json as it is now (None when missing or unreadable)."""
    try:
        meta = read_json(root / "kb.json")
    except UserError:
        return None
    return meta if isinstance(meta, dict) else None


def _widened(on_disk: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """`manifest`, still declaring every topic, keyword and synonym group `on_disk` did."""
    topics = dict(manifest["topics"])
    topics.update({k: v for k, v in dict(on_disk.get("topics") or {}).items() if k not in topics})
    keywords = [*manifest["keywords"], *(k for k in on_disk.get("keywords") or [] if k not in manifest["keywords"])]
    groups = [*manifest["synonym_groups"], *(g for g in on_disk.get("synonym_groups") or [] if g not in manifest["synonym_groups"])]
    return {**manifest, "topics": topics, "keywords": keywords, "synonym_groups": groups}


def save_kb(kb: KnowledgeBase, root: str | Path) -> None:
    """Write a KB in the native format; each file atomically, one JSONL per topic.

    kb.json declares the topics and keywords the documents use, so what it gains is written
    before the documents and what it loses after them: a crash between two files leaves a
    declared name no document uses, never a document using an undeclared one. (Written
    last, an import cut by kill -9 left documents `aldlab kb validate` rejects and the admin
    API refuses to edit: bench/serve_crash.py.)
    """
    root = Path(root)
    manifest = kb.manifest()
    on_disk = _manifest_on_disk(root)
    first = manifest if on_disk is None else _widened(on_disk, manifest)
    if first != on_disk:
        atomic_write_json(root / "kb.json", first)
    by_topic: dict[str, list[Document]] = {}
    for doc in kb.documents:
        by_topic.setdefault(doc.topic, []).append(doc)
    docs_dir = root / "documents"
    for topic, docs in _gaining_files_first(docs_dir, by_topic):
        atomic_write_jsonl(docs_dir / f"{topic}.jsonl", (d.to_json() for d in docs))
    if docs_dir.exists():
        for stale in docs_dir.glob("*.jsonl"):
            if stale.stem not in by_topic:
                stale.unlink()
    if manifest != first:
        atomic_write_json(root / "kb.json", manifest)
