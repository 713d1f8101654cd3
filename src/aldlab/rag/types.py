"""Small typed objects the RAG core hands to eval and serve."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from aldlab.kb.schema import KnowledgeBase


@dataclass
class Passage:
    """A retrieved KB document with its retrieval scores."""

    id: str
    title: str
    text: str
    score: float = 0.0
    topic: str = ""
    keywords: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)  # per-retriever raw scores

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Citation:
    """One document an answer relies on, and why we say so.

    `how` is "bracket" (the answer wrote `[id]`), "mention" (it wrote the bare id) or
    "overlap" (no id written, but a sentence's content morphemes are found in the passage);
    `support` is the best share of a sentence's content morphemes found in the passage
    (0..1, 0.0 when no sentence was long enough to measure).
    """

    id: str
    how: str
    support: float = 0.0


@dataclass
class Answer:
    """What the assistant returns for one question."""

    question: str
    text: str
    passages: list[Passage] = field(default_factory=list)
    confidence: float = 0.0
    refused: bool = False
    citations: list[str] = field(default_factory=list)  # ids the answer cites or is supported by; never padded
    citation_details: list[Citation] = field(default_factory=list)
    model: str = ""
    engine: str = ""  # what generated the text: transformers | llama.cpp | openai ("" = no LLM ran)
    used_retrieval: bool = True
    latency_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["passages"] = [p.to_json() for p in self.passages]
        return data


class RetrievalResult(Protocol):
    """What a search returns to the service: the passages and the calibrated confidence."""

    @property
    def passages(self) -> list[Passage]: ...

    @property
    def confidence(self) -> float: ...


@runtime_checkable
class AssistantProtocol(Protocol):
    """What `aldlab.serve` needs from an assistant.

    `aldlab.rag.answer.Assistant` and the test/bench stand-in `aldlab.serve.fake.FakeAssistant`
    both implement it, so the service is typed against this and calls the methods directly
    (no `getattr` probing that would hide a renamed method until a request hits it).
    """

    @property
    def kb(self) -> KnowledgeBase:
        """The KB the answers come from (its `content_hash()` is logged with each answer)."""
        ...

    def models(self) -> list[str]:
        """Names accepted as `model=`: 'base' plus adapter names."""
        ...

    def answer(
        self,
        question: str,
        *,
        model: str = "base",
        use_retrieval: bool = True,
        history: Sequence[dict[str, str]] = (),
        top_k: int | None = None,
        filter_keyword: str | None = None,
        context_only: bool = False,
        max_new_tokens: int | None = None,
    ) -> Answer: ...

    def stream_answer(
        self,
        question: str,
        *,
        model: str = "base",
        use_retrieval: bool = True,
        history: Sequence[dict[str, str]] = (),
        top_k: int | None = None,
        filter_keyword: str | None = None,
        context_only: bool = False,
        max_new_tokens: int | None = None,
    ) -> Iterator[str | Answer]:
        """Text pieces, then the final Answer."""
        ...

    def search(self, question: str, *, top_k: int | None = None, filter_keyword: str | None = None) -> RetrievalResult:
        """Retrieval only (the web UI shows the contexts while the question waits)."""
        ...

    def rewrite_followup(self, question: str, history: Sequence[dict[str, str]] = ()) -> str:
        """The question made self-contained with the history's topic."""
        ...

    def reload_if_changed(self) -> bool:
        """Re-read the KB and rebuild the index if the files changed; True if it did."""
        ...
