"""The question-set format (evalsets/*.jsonl): JSON Lines, validated with file:line errors.

One object per line::

    {"id": "q01", "question": "ALD가 뭐야?", "topic": "ALD 기본", "difficulty": "기본",
     "answerable": true, "expect": [["self-limiting", "자기 제한"], ["사이클", "cycle"]],
     "reference": "...", "doc_ids": ["ald-basics-001"]}

`expect` is a list of key-fact groups; a group is satisfied when any of its alternatives
appears in the answer. Unanswerable (boundary) questions have `answerable: false` and
usually an empty `expect`: the right behaviour there is the refusal phrase. `doc_ids`
(optional) names the KB documents that answer the question: retrieval calibration
(`aldlab.rag.confidence`) counts a hit when one of them is retrieved.

One parser for both readers, eval (scores answers) and the RAG confidence calibration
(fits the refusal threshold on dev.jsonl), so a set that one accepts the other accepts too.
It sits at the package top, not in eval/, because rag/ must not import from eval/.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aldlab.errors import UserError
from aldlab.files import iter_jsonl

#: The seed guide's four difficulty levels, easiest first (used to order report tables).
DIFFICULTIES = ("기본", "중급", "중상급", "고급")

REQUIRED_FIELDS = ("id", "question", "topic", "difficulty", "answerable", "expect")
OPTIONAL_FIELDS = ("reference", "doc_ids", "kind", "intent", "note")


@dataclass
class Question:
    """One evaluation item."""

    id: str
    question: str
    topic: str
    difficulty: str
    answerable: bool
    expect: list[list[str]] = field(default_factory=list)
    reference: str | None = None
    #: KB documents that answer the question (dev sets; empty when not given)
    doc_ids: list[str] = field(default_factory=list)
    #: User-style sets: in_scope | out_of_scope | ald_unanswerable, and what is asked
    #: (definition, cause, effect, downside, procedure, value, ...). Labels for reading, not scoring.
    kind: str | None = None
    intent: str | None = None
    #: For readers: why a label changed (e.g. a question the grown KB now answers). Not scored.
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("reference", "kind", "intent", "note"):
            if data[key] is None:
                del data[key]
        if not data["doc_ids"]:
            del data["doc_ids"]
        return data


def _fail(ko: str, en: str, path: Path, line: int, hint: str | None = None) -> UserError:
    return UserError(ko, en, path=path, line=line, hint=hint)


def parse_question(obj: dict[str, Any], path: Path, line: int) -> Question:
    """Validate one JSON object and build a Question; errors name file, line and field."""
    missing = [k for k in REQUIRED_FIELDS if k not in obj]
    if missing:
        raise _fail(
            f"필수 필드가 없습니다: {', '.join(missing)}",
            f"Missing required field(s): {', '.join(missing)}",
            path,
            line,
            hint=f"필수 / required: {', '.join(REQUIRED_FIELDS)}",
        )
    unknown = sorted(set(obj) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise _fail(
            f"알 수 없는 필드: {', '.join(unknown)}",
            f"Unknown field(s): {', '.join(unknown)}",
            path,
            line,
            hint=f"가능한 필드 / valid fields: {', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)}",
        )
    for key in ("id", "question", "topic", "difficulty"):
        value = obj[key]
        if not isinstance(value, str) or not value.strip():
            raise _fail(
                f"'{key}'는 비어 있지 않은 문자열이어야 합니다.",
                f"'{key}' must be a non-empty string (got {type(value).__name__}: {value!r}).",
                path,
                line,
            )
    if not isinstance(obj["answerable"], bool):
        raise _fail(
            "'answerable'은 true 또는 false여야 합니다.",
            f"'answerable' must be true or false (got {obj['answerable']!r}).",
            path,
            line,
        )
    expect = obj["expect"]
    groups_ok = isinstance(expect, list) and all(
        isinstance(g, list) and g and all(isinstance(a, str) and a.strip() for a in g) for g in expect
    )
    if not groups_ok:
        raise _fail(
            "'expect'는 비어 있지 않은 문자열 목록들의 목록이어야 합니다.",
            "'expect' must be a list of key-fact groups, each a non-empty list of non-empty strings.",
            path,
            line,
            hint='예 / e.g. "expect": [["self-limiting", "자기 제한"], ["퍼지", "purge"]]',
        )
    if obj["answerable"] and not expect:
        raise _fail(
            "답할 수 있는 질문(answerable=true)에는 'expect' 핵심 사실이 하나 이상 필요합니다.",
            "An answerable question needs at least one 'expect' key-fact group.",
            path,
            line,
        )
    reference = obj.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise _fail(
            "'reference'는 문자열이어야 합니다.",
            f"'reference' must be a string (got {type(reference).__name__}).",
            path,
            line,
        )
    doc_ids = obj.get("doc_ids", [])
    if not isinstance(doc_ids, list) or not all(isinstance(d, str) and d.strip() for d in doc_ids):
        raise _fail(
            "'doc_ids'는 문서 id 문자열 목록이어야 합니다.",
            f"'doc_ids' must be a list of document id strings (got {doc_ids!r}).",
            path,
            line,
            hint='예 / e.g. "doc_ids": ["ald-basics-001"]',
        )
    return Question(
        id=obj["id"].strip(),
        question=obj["question"].strip(),
        topic=obj["topic"].strip(),
        difficulty=obj["difficulty"].strip(),
        answerable=obj["answerable"],
        expect=[[a.strip() for a in g] for g in expect],
        reference=reference.strip() if reference and reference.strip() else None,
        doc_ids=[d.strip() for d in doc_ids],
        kind=str(obj["kind"]).strip() if obj.get("kind") else None,
        intent=str(obj["intent"]).strip() if obj.get("intent") else None,
        note=str(obj["note"]).strip() if obj.get("note") else None,
    )


def load_questions(path: str | Path, *, limit: int | None = None) -> list[Question]:
    """Read and validate a question file; ids must be unique. `limit` keeps the first N."""
    p = Path(path)
    questions: list[Question] = []
    seen: dict[str, int] = {}
    for line, obj in iter_jsonl(p):
        question = parse_question(obj, p, line)
        if question.id in seen:
            raise _fail(
                f"중복된 id입니다: {question.id} ({seen[question.id]}번 줄과 중복)",
                f"Duplicate id {question.id!r} (first seen on line {seen[question.id]}).",
                p,
                line,
            )
        seen[question.id] = line
        questions.append(question)
    if not questions:
        raise UserError("질문 파일이 비어 있습니다.", "The question file has no questions.", path=p)
    if limit is not None:
        if limit < 1:
            raise UserError("--limit은 1 이상이어야 합니다.", "--limit must be at least 1.")
        questions = questions[:limit]
    return questions
