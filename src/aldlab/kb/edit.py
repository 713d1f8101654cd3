"""Changing a KB on disk: add, update, delete, import.

All writers take an exclusive lock on the KB's kb.json and write atomically, so the web
app's admin routes, the CLI and a concurrent import queue up instead of losing edits.
Ids are never renumbered: an import that meets an existing id with different text
reports a conflict and leaves both documents as they are. An imported document that
defines a term differently from the KB (legacy docs calling VG12/VG13 gate-valve signals
where the KB defines them as vacuum gauges) is reported as a definition conflict and not
added, so two meanings never both become training targets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aldlab.errors import UserError
from aldlab.files import file_lock
from aldlab.kb.claims import DefinitionConflict, DefinitionIndex
from aldlab.kb.loaders import merge_synonym_groups
from aldlab.kb.io import load_kb, save_kb
from aldlab.kb.schema import DEFAULT_TOPIC, Document, KnowledgeBase
from aldlab.kb.similarity import NearDuplicateIndex

EDITABLE_FIELDS = {"title", "text", "keywords", "questions", "topic", "source"}


class KbUnreadable(UserError):
    """The KB on disk does not load: a fault of the server's files, not of the edit asked for."""


@dataclass(frozen=True)
class DocumentChange:
    """One document an edit changes: `before` None for an add, `after` None for a delete."""

    action: str  # "add" | "update" | "delete"
    doc_id: str
    before: Document | None
    after: Document | None


class EditJournal(Protocol):
    """Told about a KB write before and after it, so the write and its record stay one unit.

    `begin` runs under the KB lock before the files are written (an intent record),
    `commit` after they were written, `fail` when writing raised (the files may be half
    written: the journal judges from disk). A crash between the steps leaves the intent
    record for the next start to settle (`aldlab.serve.kb_admin.repair_kb_audit`).
    """

    def begin(self, changes: Sequence[DocumentChange]) -> Any: ...

    def commit(self, entry: Any) -> None: ...

    def fail(self, entry: Any) -> None: ...


def document_changes(before: dict[str, Document], after: Sequence[Document]) -> list[DocumentChange]:
    """What an edit changed, document by document (same JSON = unchanged)."""
    now = {d.id: d for d in after}
    changes = [
        DocumentChange("add" if old is None else "update", doc.id, old, doc)
        for doc in now.values()
        if (old := before.get(doc.id)) is None or old.to_json() != doc.to_json()
    ]
    changes += [DocumentChange("delete", i, old, None) for i, old in before.items() if i not in now]
    return changes


def read_kb_dir(root: Path) -> KnowledgeBase:
    """`load_kb` of a KB directory; a KB that does not load is `KbUnreadable` (a server fault)."""
    try:
        return load_kb(root)
    except KbUnreadable:
        raise
    except UserError as exc:
        raise KbUnreadable(exc.ko, exc.en, path=exc.path, line=exc.line, hint=exc.hint) from exc


@contextmanager
def locked_kb(
    kb_dir: str | Path, *, create: bool = False, journal: EditJournal | None = None
) -> Iterator[KnowledgeBase]:
    """Load the KB under its lock, yield it for changes, then save it atomically.

    With a `journal`, the changed documents are announced to it before the save and
    confirmed after it, all under the lock (so a start-up repair that takes the lock never
    sees the record of a write still in progress).
    """
    root = Path(kb_dir)
    with file_lock(root / "kb.json"):
        if (root / "kb.json").exists():
            kb = read_kb_dir(root)
        elif create:
            kb = KnowledgeBase(documents=[], name=root.name)
        else:
            raise UserError(
                "KB 디렉터리가 아닙니다 (kb.json 없음).",
                "Not a knowledge-base directory (no kb.json).",
                path=root,
                hint="`aldlab kb import 파일 --kb 새폴더`로 새 KB를 만드세요 / create one with `aldlab kb import FILE --kb NEWDIR`",
            )
        before = {d.id: d for d in kb.documents}
        yield kb
        changes = document_changes(before, kb.documents) if journal is not None else []
        entry = journal.begin(changes) if journal is not None and changes else None
        try:
            save_kb(kb, root)
        except Exception:
            if journal is not None and entry is not None:
                journal.fail(entry)
            raise
        if journal is not None and entry is not None:
            journal.commit(entry)


def remove_stale_temp_files(kb_dir: str | Path) -> list[Path]:
    """Delete temp files a killed writer left (`.<name>.<random>.tmp`); call under the KB lock,
    where no writer is mid-write. Returns what was removed."""
    root = Path(kb_dir)
    stale = [*root.glob(".*.tmp"), *(root / "documents").glob(".*.tmp")]
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return stale


def _check_document(doc: Document, kb: KnowledgeBase) -> None:
    if not doc.id.strip():
        raise UserError("id가 비어 있습니다.", "Document id is empty.")
    if not doc.text.strip():
        raise UserError(f"'{doc.id}'의 text가 비어 있습니다.", f"Document '{doc.id}' has empty text.")
    vocabulary = {t.casefold() for t in kb.domain_terms()}
    unknown = [k for k in doc.keywords if vocabulary and k.casefold() not in vocabulary]
    if unknown:
        raise UserError(
            f"알 수 없는 키워드: {', '.join(unknown)}",
            f"Unknown keyword(s): {', '.join(unknown)}",
            hint="kb.json의 keywords에 먼저 추가하세요 / add them to kb.json keywords first",
        )
    if kb.topics and doc.topic not in kb.topics:
        raise UserError(
            f"알 수 없는 topic: {doc.topic}",
            f"Unknown topic: {doc.topic}",
            hint=f"가능한 topic / known topics: {', '.join(kb.topics)}",
        )


def next_id(kb: KnowledgeBase, topic: str) -> str:
    """`<topic>-NNN` one past the highest number used for that topic."""
    prefix = topic.replace("_", "-")
    numbers = [int(m.group(1)) for d in kb.documents if (m := re.fullmatch(rf"{re.escape(prefix)}-(\d+)", d.id))]
    return f"{prefix}-{max(numbers, default=0) + 1:03d}"


def add_document(kb_dir: str | Path, doc: Document, *, journal: EditJournal | None = None) -> Document:
    """Add one document (id assigned from its topic when empty)."""
    with locked_kb(kb_dir, journal=journal) as kb:
        if not doc.id:
            doc = dataclasses.replace(doc, id=next_id(kb, doc.topic))
        if doc.id in kb.by_id():
            raise UserError(f"이미 있는 id입니다: {doc.id}", f"Document id already exists: {doc.id}")
        _check_document(doc, kb)
        kb.documents.append(doc)
    return doc


def update_document(
    kb_dir: str | Path, doc_id: str, changes: dict[str, Any], *, journal: EditJournal | None = None
) -> tuple[Document, Document]:
    """Change fields of one document; returns (before, after) for the audit log."""
    bad = sorted(set(changes) - EDITABLE_FIELDS)
    if bad:
        raise UserError(
            f"수정할 수 없는 필드: {', '.join(bad)}",
            f"Field(s) cannot be edited: {', '.join(bad)}",
            hint=f"수정 가능 / editable: {', '.join(sorted(EDITABLE_FIELDS))}",
        )
    with locked_kb(kb_dir, journal=journal) as kb:
        index = _index_of(kb, doc_id)
        before = kb.documents[index]
        after = dataclasses.replace(before, **changes)
        _check_document(after, kb)
        kb.documents[index] = after
    return before, after


#: Share of a correction's character trigrams a document must contain to count as its source.
SUPPORT_SHARE = 0.5


def supporting_document(kb: KnowledgeBase, text: str) -> tuple[Document, float] | None:
    """The document whose text holds the largest share of `text`'s character trigrams, when
    that share reaches SUPPORT_SHARE (a reviewer's correction is usually a passage's wording)."""
    from aldlab.kb.similarity import char_ngrams

    grams = char_ngrams(text)
    if not grams:
        return None
    share, doc = max(((len(grams & char_ngrams(d.text)) / len(grams), d) for d in kb.documents), key=lambda x: x[0])
    return (doc, share) if share >= SUPPORT_SHARE else None


def teach_question(
    kb_dir: str | Path, question: str, correction: str, *, journal: EditJournal | None = None
) -> tuple[Document, float, bool] | None:
    """Add an approved correction's question to the `questions` of the document that supports
    the correction; returns (document, support share, added) or None when no document does.

    Why: retrieval ranks documents by their passage and their example questions, so the
    question a user asked now finds the document the reviewer's answer came from. Retraining
    alone cannot do this: measured with `aldlab improve`, 9 of 10 corrected questions stayed
    wrong because the wrong passage was still ranked first.
    """
    question = " ".join(question.split())
    with locked_kb(kb_dir, journal=journal) as kb:
        found = supporting_document(kb, correction)
        if found is None:
            return None
        doc, share = found
        if question in doc.questions:
            return doc, share, False
        index = _index_of(kb, doc.id)
        kb.documents[index] = dataclasses.replace(doc, questions=[*doc.questions, question])
        return kb.documents[index], share, True


def delete_document(kb_dir: str | Path, doc_id: str, *, journal: EditJournal | None = None) -> Document:
    """Remove one document; returns it for the audit log."""
    with locked_kb(kb_dir, journal=journal) as kb:
        removed = kb.documents.pop(_index_of(kb, doc_id))
    return removed


def _index_of(kb: KnowledgeBase, doc_id: str) -> int:
    for i, doc in enumerate(kb.documents):
        if doc.id == doc_id:
            return i
    raise UserError(f"없는 문서 id입니다: {doc_id}", f"No document with id {doc_id!r}.")


@dataclass
class ImportReport:
    """What an import did and what it refused to do."""

    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # same id, same text: already there
    id_conflicts: list[str] = field(default_factory=list)  # same id, different text: kept old
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (incoming, existing)
    near_duplicates: list[tuple[str, str, float]] = field(default_factory=list)
    new_keywords: list[str] = field(default_factory=list)
    synonym_groups_added: int = 0
    conflicts: list[DefinitionConflict] = field(default_factory=list)  # contradicts a definition (skipped unless allowed)


def import_into(
    kb_dir: str | Path,
    incoming: KnowledgeBase,
    *,
    allow_near_duplicates: bool = False,
    allow_conflicts: bool = False,
    dry_run: bool = False,
    journal: EditJournal | None = None,
) -> ImportReport:
    """Merge `incoming` into the KB at `kb_dir` (created when missing), never renumbering."""
    report = ImportReport()
    with locked_kb(kb_dir, create=True, journal=journal) as kb:
        existing = kb.by_id()
        index = NearDuplicateIndex.from_items((d.id, d.text) for d in kb.documents)
        vocabulary = {t.casefold() for t in kb.domain_terms()}
        definitions = DefinitionIndex(kb, incoming)
        for doc in incoming.documents:
            _merge_one(kb, doc, existing, index, vocabulary, report, allow_near_duplicates, definitions, allow_conflicts)
        before = len(kb.synonym_groups)
        kb.synonym_groups = merge_synonym_groups(kb.synonym_groups, incoming.synonym_groups)
        report.synonym_groups_added = max(0, len(kb.synonym_groups) - before)
        if report.new_keywords:
            kb.keywords = [*kb.keywords, *report.new_keywords]
        _declare_topics(kb)
        if dry_run:
            raise _DryRun(report)
    return report


class _DryRun(Exception):
    """Raised inside the lock to skip saving; caught by `import_preview`."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__("dry run")
        self.report = report


def import_preview(
    kb_dir: str | Path, incoming: KnowledgeBase, *, allow_near_duplicates: bool = False, allow_conflicts: bool = False
) -> ImportReport:
    """What `import_into` would do, without writing anything."""
    try:
        import_into(
            kb_dir, incoming, allow_near_duplicates=allow_near_duplicates, allow_conflicts=allow_conflicts, dry_run=True
        )
    except _DryRun as done:
        return done.report
    raise AssertionError("unreachable")  # pragma: no cover


def _merge_one(
    kb: KnowledgeBase,
    doc: Document,
    existing: dict[str, Document],
    index: NearDuplicateIndex,
    vocabulary: set[str],
    report: ImportReport,
    allow_near_duplicates: bool,
    definitions: DefinitionIndex,
    allow_conflicts: bool,
) -> None:
    old = existing.get(doc.id)
    if old is not None:
        (report.unchanged if old.text.strip() == doc.text.strip() else report.id_conflicts).append(doc.id)
        return
    exact = index.exact_match(doc.text)
    if exact:
        report.duplicates.append((doc.id, exact))
        return
    similar = index.most_similar(doc.text)
    if similar and not allow_near_duplicates:
        report.near_duplicates.append((doc.id, similar[0], round(similar[1], 3)))
        return
    claims = definitions.claims_of(doc)
    clash = definitions.first_conflict(doc.id, claims)
    if clash is not None:
        report.conflicts.append(clash)  # reported even when added anyway
        if not allow_conflicts:
            return
    definitions.add(claims)
    if not doc.keywords:
        doc = dataclasses.replace(doc, keywords=_tag_keywords(doc.text, kb))
    for keyword in doc.keywords:
        if keyword.casefold() not in vocabulary:
            vocabulary.add(keyword.casefold())
            report.new_keywords.append(keyword)
    kb.documents.append(doc)
    existing[doc.id] = doc
    index.add(doc.id, doc.text)
    report.added.append(doc.id)


def _tag_keywords(text: str, kb: KnowledgeBase, limit: int = 5) -> list[str]:
    """Vocabulary keywords whose name or synonym occurs in the text (for txt/md/pdf imports)."""
    folded = text.casefold()
    found = [k for k in kb.keywords if any(s.casefold() in folded for s in kb.synonyms_of(k))]
    return found[:limit]


def _declare_topics(kb: KnowledgeBase) -> None:
    """Imported documents may bring topics (e.g. 'general'); declare them so validation passes."""
    for doc in kb.documents:
        if kb.topics and doc.topic not in kb.topics:
            kb.topics[doc.topic] = "일반 (가져온 문서)" if doc.topic == DEFAULT_TOPIC else doc.topic
