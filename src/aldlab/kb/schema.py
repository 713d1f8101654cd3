"""KB types: `Document`, `KnowledgeBase`, and the rules for a document's JSON and names.

Types only; reading and writing a KB is `aldlab.kb.io` (the native format) and
`aldlab.kb.loaders` (the formats users bring). Ids are strings and never renumbered:
feedback, datasets and citations refer to them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from aldlab.errors import UserError
from aldlab.files import sha256_text

DOC_FIELDS = ("id", "title", "topic", "keywords", "text", "questions", "source")
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
    #: How people ask for what this document says, in their own words ("퍼지 왜 하는 거야?").
    #: Retrieval matches a user's question against these as well as the text (users write
    #: 퍼지 where the KB writes Purge, symptoms where it writes names), and the dataset
    #: trains on them as user-style questions. Optional; never shown as the answer.
    questions: list[str] = field(default_factory=list)
    # Where the document was read from, for error messages; not persisted.
    origin: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.questions = clean_questions(self.questions)

    def to_json(self) -> dict[str, Any]:
        """Persisted fields in a fixed order."""
        data = asdict(self)
        # A KB without questions keeps the files (and content hash) it had before the field.
        return {k: data[k] for k in DOC_FIELDS if k != "questions" or data[k]}


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
    questions = obj.get("questions", [])
    if isinstance(questions, str):
        questions = [questions]
    if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
        raise UserError(
            "questions는 문자열 목록이어야 합니다.",
            "questions must be a list of strings.",
            hint='예 / e.g.: "questions": ["퍼지 왜 하는 거야?"]',
            **where,
        )
    text = obj["text"] if isinstance(obj["text"], str) else str(obj["text"])
    return Document(
        id=str(obj["id"]),
        title=str(obj.get("title") or title_from_text(text)),
        text=text,
        keywords=list(keywords),
        questions=list(questions),
        topic=str(obj.get("topic") or DEFAULT_TOPIC),
        source=str(obj.get("source") or "aldlab"),
        origin=origin,
    )


def clean_questions(questions: list[str]) -> list[str]:
    """Stripped, non-empty, each once (in the order written)."""
    return list(dict.fromkeys(q.strip() for q in questions if q.strip()))


def title_from_text(text: str, limit: int = 30) -> str:
    """A title for documents that have none (legacy KBs): the first clause, shortened."""
    first = re.split(r"(?<=[.!?다])\s|\n", text.strip(), maxsplit=1)[0].rstrip(".")
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"
