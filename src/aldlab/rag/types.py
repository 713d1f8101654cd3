"""Small typed objects the RAG core hands to eval and serve."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from aldlab.llm.generator import StopReason

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

    `how` is "bracket" (the answer wrote `[id]`), "mention" (it wrote the bare id),
    "overlap" (no id written, but a sentence's content morphemes are found in the passage),
    "passage" (the best passage shown verbatim) or "later_part" (a passage added verbatim for
    the later part of a two-part question, `rag.parts`);
    `support` is the best share of a sentence's content morphemes found in the passage
    (0..1, 0.0 when no sentence was long enough to measure).
    """

    id: str
    how: str
    support: float = 0.0


#: What the reader is told when a passage was added for the question's later part (`Answer.later_part`).
LATER_PART_NOTE: tuple[str, str] = (
    "질문의 뒷부분에 답하는 문서를 덧붙였습니다",
    "a passage answering the later part of the question was added",
)

#: What the reader is told when an answer is the best passage verbatim (`Answer.fallback`):
#: one wording for the CLI, the API (`AnswerOut.fallback_note`) and the web UI. (Korean, English)
FALLBACK_NOTES: dict[str, tuple[str, str]] = {
    "model_refused": (
        "모델이 답하지 못해 검색 1위 문서를 그대로 보여 드립니다",
        "the model declined: the best passage is shown verbatim",
    ),
    "other_passage": (
        "모델 답변이 1위 문서가 아닌 다른 문서에서 나와 1위 문서를 그대로 보여 드립니다",
        "the model answered from another passage: the best passage is shown verbatim",
    ),
    "partial_copy": (
        "모델이 1위 문서의 일부만 옮겨 문서 전체를 보여 드립니다",
        "the model quoted part of the best passage: the whole passage is shown",
    ),
    "unsupported": (
        "모델 답변을 뒷받침하는 문서가 없어 검색 1위 문서를 그대로 보여 드립니다",
        "no retrieved passage supports the model's answer: the best passage is shown verbatim",
    ),
}


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
    #: Why the best passage is shown instead of the model's text ("" = it is not):
    #: "model_refused" (retrieval was confident, the model declined) or "other_passage" (the
    #: model's answer came from a passage other than the best one). See RagConfig.passage_fallback.
    fallback: str = ""
    #: Id of the passage added for the later part of a two-part question (`rag.parts`), "" if none.
    later_part: str = ""
    latency_s: float = 0.0
    #: Why the text ended, as OpenAI's `finish_reason`: "length" = the model's reply was cut at
    #: max_new_tokens; "stop" otherwise (it ended its turn, or no model text is shown: a
    #: refusal, a passage fallback, contexts only). See llm.generator.StopReason.
    stop_reason: StopReason = "stop"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["passages"] = [p.to_json() for p in self.passages]
        return data


@dataclass(frozen=True)
class AskOptions:
    """How one question is to be answered: the typed request of the answer pipeline.

    ask, chat, the server and batched eval all build one of these, so a setting has one
    name and one default. `max_new_tokens=None` means the assistant's `rag.max_new_tokens`
    (the one default length); `model` "base" means no adapter.
    """

    model: str = "base"
    use_retrieval: bool = True
    history: tuple[dict[str, str], ...] = ()
    top_k: int | None = None
    filter_keyword: str | None = None
    context_only: bool = False
    max_new_tokens: int | None = None

    @property
    def adapter(self) -> str | None:
        """The adapter to generate with (None = the base model)."""
        return None if self.model in ("", "base") else self.model


@dataclass
class Plan:
    """The first half of the answer pipeline: a question made ready to generate from.

    `Assistant.plan` follows up the history, retrieves once and applies the refusal gate.
    When that settles the question already (a refusal before the LLM, or contexts only),
    `final` holds the answer and `messages` is None; otherwise `messages` is the prompt and
    `Assistant.settle` turns the generated text into the Answer. The server shows
    `passages` while the question waits for the model, so nothing is retrieved twice.
    """

    question: str
    options: AskOptions
    max_new_tokens: int
    passages: list[Passage] = field(default_factory=list)
    confidence: float = 0.0
    messages: list[dict[str, str]] | None = None
    final: Answer | None = None
    planning_s: float = 0.0
    #: For a two-part question, the passage that answers its later part when that is not the
    #: best passage (`rag.parts`); `Assistant.settle` adds it unless the answer cites it.
    later_part: Passage | None = None


@runtime_checkable
class AssistantProtocol(Protocol):
    """What `aldlab.serve` and `aldlab.eval` need from an assistant.

    `aldlab.rag.assistant.Assistant` and the test/bench stand-in `aldlab.serve.fake.FakeAssistant`
    both implement it, so callers are typed against this and call the methods directly
    (no `getattr` probing that would hide a renamed method until a request hits it).
    The pipeline has two halves: `plan` (retrieve once, refuse or build the prompt) and
    `run` (generate from the plan and settle the text into an Answer).
    """

    @property
    def kb(self) -> KnowledgeBase:
        """The KB the answers come from (its `content_hash()` is logged with each answer)."""
        ...

    def models(self) -> list[str]:
        """Names accepted as `AskOptions.model`: 'base' plus adapter names."""
        ...

    def plan(self, question: str, options: AskOptions = AskOptions()) -> Plan:
        """The first half: follow-up rewrite, retrieval, refusal gate, prompt."""
        ...

    def run(self, plan: Plan, *, stream: bool = True) -> Iterator[str | Answer]:
        """The second half: text pieces (when streaming), then the final Answer."""
        ...

    def answer(self, question: str, options: AskOptions = AskOptions()) -> Answer: ...

    def stream_answer(self, question: str, options: AskOptions = AskOptions()) -> Iterator[str | Answer]:
        """Text pieces, then the final Answer."""
        ...

    def reload_if_changed(self) -> bool:
        """Re-read the KB and rebuild the index if the files changed; True if it did."""
        ...

    def add_adapter(self, name: str, path: str) -> None:
        """Attach one more LoRA adapter as model `name` while serving (a newly promoted model).

        Adapters already attached stay: an answer that started on one finishes on it.
        """
        ...
