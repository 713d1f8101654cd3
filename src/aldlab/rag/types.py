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
class Answer:
    """What the assistant returns for one question."""

    question: str
    text: str
    passages: list[Passage] = field(default_factory=list)
    confidence: float = 0.0
    refused: bool = False
    citations: list[str] = field(default_factory=list)
    model: str = ""
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
