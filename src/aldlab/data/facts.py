"""The small objects the dataset builder passes between its steps.

A `Fact` is one thing the KB (or a user) says, with several question wordings and the
answer built from the documents that state it. A `Candidate` is one wording of one fact;
the split works on candidates, and only afterwards are they rendered into chat rows
(`TrainingRow`), so retrieval contexts can be drawn from documents of the same split side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KINDS = ("kb", "combo", "unanswerable", "feedback")
STYLES = ("closed", "rag")


@dataclass
class ContextPassage:
    """A fixed context passage of a feedback row (id, title, text), as `aldlab.prompts.format_context`
    needs it. Named apart from `aldlab.rag.types.Passage`, the retrieved passage with scores."""

    id: str
    title: str
    text: str


@dataclass
class Fact:
    """One answerable (or deliberately unanswerable) piece of knowledge."""

    fact_id: str
    kind: str  # kb | combo | unanswerable | feedback
    intent: str  # definition, role, mechanism, condition, title, combo, difference, offtopic, feedback...
    questions: list[str]
    #: (sentence(s), source document id) — rendered with "[id]" citations in the rag style
    answer_parts: list[tuple[str, str | None]]
    doc_ids: list[str]
    #: nouns that got a particle from `josa` (the particle check looks at these)
    terms: list[str] = field(default_factory=list)
    #: what the question is about, for refusal reasons ("참고 문서에 X에 대한 내용이 없습니다")
    subject: str = ""
    #: group key for facts without documents (off-topic area, feedback question)
    group: str = ""
    #: fixed retrieval context (feedback rows that carry their contexts)
    passages: list[ContextPassage] | None = None
    #: feedback answers are kept verbatim: no citations are added
    verbatim: bool = False
    #: template id of each wording (parallel to `questions`; "" when not templated)
    templates: list[str] = field(default_factory=list)

    @property
    def plain_answer(self) -> str:
        return " ".join(text for text, _ in self.answer_parts).strip()

    def group_key(self) -> str:
        """Examples from the same document set form one group (never split across sides)."""
        if self.doc_ids:
            return "docs:" + "|".join(sorted(set(self.doc_ids)))
        return self.group or f"fact:{self.fact_id}"


@dataclass
class Candidate:
    """One question wording of one fact (the unit the split and dedup work on)."""

    fact: Fact
    question: str
    variant: int

    @property
    def id(self) -> str:
        return f"{self.fact.fact_id}-q{self.variant}"

    @property
    def doc_ids(self) -> list[str]:
        return self.fact.doc_ids

    @property
    def template(self) -> str:
        t = self.fact.templates
        return t[self.variant] if self.variant < len(t) else ""

    @property
    def group(self) -> str:
        return self.fact.group_key()

    @property
    def answer(self) -> str:
        return self.fact.plain_answer

    @property
    def is_refusal(self) -> bool:
        return self.fact.kind == "unanswerable"


@dataclass
class TrainingRow:
    """One rendered chat row of train.jsonl / eval.jsonl (before tokenisation; the tokenised
    form is `aldlab.train.data.Example`)."""

    id: str
    kind: str
    style: str
    question: str
    answer: str  # exactly the assistant turn
    plain_answer: str  # answer without citations (dup checks, length stats)
    doc_ids: list[str]
    context_ids: list[str]
    group: str
    messages: list[dict[str, str]]
    fact_id: str = ""
    terms: list[str] = field(default_factory=list)
    #: question template id (stats: template count and top share)
    template: str = ""
    #: why the row refuses ("offtopic", "in_domain", "missing_context"); "" for answers
    refusal_type: str = ""

    @property
    def is_refusal(self) -> bool:
        return self.kind == "unanswerable"

    def to_row(self) -> dict[str, Any]:
        """The JSONL row (chat `messages` first, so SFTTrainer picks it up as is)."""
        return {
            "messages": self.messages,
            "id": self.id,
            "kind": self.kind,
            "style": self.style,
            "doc_ids": self.doc_ids,
            "context_ids": self.context_ids,
            "group": self.group,
        }
