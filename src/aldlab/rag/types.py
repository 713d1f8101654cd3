"""Small typed objects the RAG core hands to eval and serve."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


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


class Generator(Protocol):
    """Turns chat messages into text. `adapter=None` means the base model."""

    def generate(self, messages: list[dict[str, str]], *, max_new_tokens: int = 256, adapter: str | None = None) -> str: ...

    def stream(
        self, messages: list[dict[str, str]], *, max_new_tokens: int = 256, adapter: str | None = None
    ) -> Iterator[str]: ...

    def models(self) -> list[str]:
        """Names accepted as `adapter` (plus 'base')."""
        ...
