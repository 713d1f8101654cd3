"""KB validation: every problem with the file and line that holds it.

Errors make `aldlab kb validate` fail (duplicate ids, empty text, unknown keyword or
topic, bad JSON); warnings (length outside the shipped KB's 60-400 characters, near
duplicates) are printed but do not fail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from aldlab.errors import UserError
from aldlab.kb.io import load_kb
from aldlab.kb.schema import NAME_PATTERN, Document, KnowledgeBase
from aldlab.kb.similarity import NearDuplicateIndex

MIN_CHARS = 60
MAX_CHARS = 400


@dataclass
class Issue:
    """One validation finding."""

    level: str  # "error" | "warning"
    where: str  # file:line or a description
    ko: str
    en: str

    def render(self) -> str:
        return f"{self.where}: {self.ko} / {self.en}"


@dataclass
class ValidationReport:
    """All findings of one validation run."""

    documents: int
    issues: list[Issue]

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors


def validate_path(path: str | Path) -> ValidationReport:
    """Load and validate; a load failure (bad JSON, missing field) becomes an error issue."""
    try:
        kb = load_kb(path)
    except UserError as exc:
        return ValidationReport(0, [Issue("error", exc.location() or str(path), exc.ko, exc.en)])
    return validate_kb(kb)


def validate_kb(kb: KnowledgeBase, *, check_near_duplicates: bool = True) -> ValidationReport:
    """Check ids, text, keywords, topics and duplicates of an in-memory KB."""
    issues: list[Issue] = []
    vocabulary = {t.casefold() for t in kb.domain_terms()}
    seen: dict[str, Document] = {}
    for doc in kb.documents:
        where = doc.origin or f"id={doc.id}"
        issues.extend(_document_issues(doc, where, kb, vocabulary))
        if doc.id in seen:
            first = seen[doc.id].origin or "?"
            issues.append(
                Issue("error", where, f"중복 id '{doc.id}' (처음: {first})", f"duplicate id '{doc.id}' (first at {first})")
            )
        else:
            seen[doc.id] = doc
    issues.extend(_duplicate_title_issues(kb.documents))
    if check_near_duplicates:
        issues.extend(_near_duplicate_issues(kb.documents))
    if not kb.documents:
        issues.append(Issue("error", kb.name, "문서가 하나도 없습니다.", "the knowledge base has no documents"))
    return ValidationReport(len(kb.documents), issues)


def _document_issues(doc: Document, where: str, kb: KnowledgeBase, vocabulary: set[str]) -> list[Issue]:
    issues: list[Issue] = []
    if not doc.id.strip():
        issues.append(Issue("error", where, "id가 비어 있습니다.", "empty id"))
    elif not re.match(NAME_PATTERN, doc.id):
        issues.append(
            Issue("error", where, f"id '{doc.id}'는 영문 소문자·숫자·-·_만 쓸 수 있습니다 (64자 이하).",
                  f"id '{doc.id}' must match {NAME_PATTERN} (lowercase letters, digits, '-', '_')")
        )
    if doc.topic and not re.match(NAME_PATTERN, doc.topic):
        issues.append(
            Issue("error", where, f"topic '{doc.topic}'는 영문 소문자·숫자·-·_만 쓸 수 있습니다 (64자 이하).",
                  f"topic '{doc.topic}' must match {NAME_PATTERN} (it names documents/<topic>.jsonl)")
        )
    if not doc.text.strip():
        issues.append(Issue("error", where, f"'{doc.id}'의 text가 비어 있습니다.", f"'{doc.id}' has empty text"))
    elif not MIN_CHARS <= len(doc.text) <= MAX_CHARS:
        issues.append(
            Issue(
                "warning",
                where,
                f"'{doc.id}' 길이 {len(doc.text)}자 (권장 {MIN_CHARS}-{MAX_CHARS})",
                f"'{doc.id}' is {len(doc.text)} chars (recommended {MIN_CHARS}-{MAX_CHARS})",
            )
        )
    if vocabulary:
        for keyword in doc.keywords:
            if keyword.casefold() not in vocabulary:
                issues.append(
                    Issue(
                        "error",
                        where,
                        f"'{doc.id}'의 알 수 없는 키워드 '{keyword}' (kb.json keywords에 추가하세요)",
                        f"'{doc.id}' has unknown keyword '{keyword}' (add it to kb.json keywords)",
                    )
                )
    if kb.topics and doc.topic not in kb.topics:
        issues.append(
            Issue(
                "error",
                where,
                f"'{doc.id}'의 알 수 없는 topic '{doc.topic}'",
                f"'{doc.id}' has unknown topic '{doc.topic}' (known: {', '.join(kb.topics)})",
            )
        )
    return issues


def _duplicate_title_issues(documents: list[Document]) -> list[Issue]:
    """Titles label citations in answers and the web UI, so two documents must not share one."""
    first_by_title: dict[str, str] = {}
    issues: list[Issue] = []
    for doc in documents:
        key = doc.title.strip().casefold()
        if not key:
            continue
        if key in first_by_title:
            other = first_by_title[key]
            issues.append(
                Issue(
                    "warning",
                    doc.origin or doc.id,
                    f"'{doc.id}'의 제목이 '{other}'와 같음: {doc.title}",
                    f"'{doc.id}' has the same title as '{other}': {doc.title}",
                )
            )
        else:
            first_by_title[key] = doc.id
    return issues


def _near_duplicate_issues(documents: list[Document]) -> list[Issue]:
    issues: list[Issue] = []
    index = NearDuplicateIndex()
    for doc in documents:
        if not doc.text.strip():
            continue
        exact = index.exact_match(doc.text)
        similar = None if exact else index.most_similar(doc.text)
        if exact:
            issues.append(
                Issue("warning", doc.origin or doc.id, f"'{doc.id}'는 '{exact}'와 같은 내용", f"'{doc.id}' duplicates '{exact}'")
            )
        elif similar:
            issues.append(
                Issue(
                    "warning",
                    doc.origin or doc.id,
                    f"'{doc.id}'는 '{similar[0]}'와 거의 같음 ({similar[1]:.2f})",
                    f"'{doc.id}' is a near-duplicate of '{similar[0]}' ({similar[1]:.2f})",
                )
            )
        index.add(doc.id, doc.text)
    return issues
