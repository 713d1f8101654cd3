"""KB schema and the native on-disk format.

A KB is a directory:

    kb.json                 name, topics {id: label}, keyword vocabulary, synonym groups
    documents/<topic>.jsonl one document per line: id, title, topic, keywords, text, source

JSON Lines keeps one document per line, so validation errors can name file *and* line,
and git diffs of KB edits stay readable. Ids are strings and never renumbered: feedback,
datasets and citations refer to them.
"""

from __future__ import annotations

import json

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aldlab.errors import UserError
from aldlab.files import atomic_write_json, atomic_write_jsonl, iter_jsonl, read_json, sha256_text

DOC_FIELDS = ("id", "title", "topic", "keywords", "text", "source")
DEFAULT_TOPIC = "general"



#: Document ids and topics: lowercase ASCII, digits, '-' and '_'. A topic names the file
#: documents/<topic>.jsonl and an id appears in URLs and citations, so neither may hold a
#: path separator or anything a shell, URL or `[id]` citation would mangle.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"

@dataclass
class Document:
    """One KB passage. `id` is stable forever; `source` says where it came from."""

    id: str
    title: str
    text: str
    keywords: list[str] = field(default_factory=list)
    topic: str = DEFAULT_TOPIC
    source: str = "aldlab"
    # Where the document was read from, for error messages; not persisted.
    origin: str | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """Persisted fields in a fixed order."""
        data = asdict(self)
        return {k: data[k] for k in DOC_FIELDS}


@dataclass
class KnowledgeBase:
    """Documents plus the vocabulary that gives them meaning."""

    documents: list[Document]
    name: str = "kb"
    description: str = ""
    language: str = "ko"
    version: int = 1
    topics: dict[str, str] = field(default_factory=dict)
    keywords: list[str] = field(default_factory=list)
    synonym_groups: list[list[str]] = field(default_factory=list)

    def by_id(self) -> dict[str, Document]:
        """Documents indexed by id."""
        return {d.id: d for d in self.documents}

    def synonyms_of(self, term: str) -> list[str]:
        """All spellings in the synonym groups that contain `term` (case-insensitive)."""
        needle = term.casefold()
        found: list[str] = []
        for group in self.synonym_groups:
            if any(needle == g.casefold() for g in group):
                found.extend(g for g in group if g not in found)
        return found or [term]

    def domain_terms(self) -> list[str]:
        """Keywords and every synonym: the user dictionary for the Korean tokenizer."""
        terms = list(dict.fromkeys([*self.keywords, *(t for g in self.synonym_groups for t in g)]))
        return [t for t in terms if t.strip()]

    def content_hash(self) -> str:
        """Hash of everything retrieval depends on: index caches are keyed by it."""
        payload = repr(
            (
                [d.to_json() for d in self.documents],
                self.synonym_groups,
                self.keywords,
            )
        )
        return sha256_text(payload)[:16]

    def manifest(self) -> dict[str, Any]:
        """kb.json content."""
        return {
            "name": self.name,
            "description": self.description,
            "language": self.language,
            "version": self.version,
            "topics": self.topics,
            "keywords": self.keywords,
            "synonym_groups": self.synonym_groups,
        }


def document_from_json(obj: dict[str, Any], *, origin: str | None = None) -> Document:
    """Build a Document from a JSON object, with a clear error for missing/wrong fields."""
    path, _, line = (origin or "").rpartition(":")
    where = {"path": path or origin, "line": int(line) if line.isdigit() else None}
    missing = [k for k in ("id", "text") if k not in obj]
    if missing:
        raise UserError(
            f"문서에 필수 필드가 없습니다: {', '.join(missing)}",
            f"Document is missing required field(s): {', '.join(missing)}",
            hint="id와 text는 필수입니다 / id and text are required",
            **where,
        )
    keywords = obj.get("keywords", [])
    if isinstance(keywords, str):
        keywords = [keywords]
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise UserError(
            "keywords는 문자열 목록이어야 합니다.", "keywords must be a list of strings.", **where
        )
    text = obj["text"] if isinstance(obj["text"], str) else str(obj["text"])
    return Document(
        id=str(obj["id"]),
        title=str(obj.get("title") or title_from_text(text)),
        text=text,
        keywords=list(keywords),
        topic=str(obj.get("topic") or DEFAULT_TOPIC),
        source=str(obj.get("source") or "aldlab"),
        origin=origin,
    )


def title_from_text(text: str, limit: int = 30) -> str:
    """A title for documents that have none (legacy KBs): the first clause, shortened."""
    first = re.split(r"(?<=[.!?다])\s|\n", text.strip(), maxsplit=1)[0].rstrip(".")
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


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
        from aldlab.kb.loaders import load_any  # local import: loaders depend on schema

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


def save_kb(kb: KnowledgeBase, root: str | Path) -> None:
    """Write a KB in the native format; each file atomically, one JSONL per topic."""
    root = Path(root)
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
    atomic_write_json(root / "kb.json", kb.manifest())


def iter_texts(documents: Iterable[Document]) -> list[str]:
    """Texts in document order (handy for index builders)."""
    return [d.text for d in documents]
