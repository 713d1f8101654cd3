"""A tiny, deterministic stand-in for `aldlab.rag.answer.Assistant`.

Tests, the browser tests and the load bench need a server that answers in milliseconds
without loading a language model. `FakeAssistant` implements the same
`aldlab.rag.types.AssistantProtocol` as the real Assistant (`answer`, `stream_answer`,
`search`, `models`, `reload_if_changed`, ...), retrieves by keyword overlap over a KB on
disk, and answers by quoting the best document with a `[doc-id]` citation, or with the
project's refusal when nothing matches.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aldlab.kb.io import load_kb
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.prompts import refusal_answer
from aldlab.rag.types import Answer, Citation, Passage

_TOKEN = re.compile(r"[0-9A-Za-z가-힣]{2,}")


def _tokens(text: str) -> set[str]:
    return {t.casefold() for t in _TOKEN.findall(text)}


@dataclass
class FakeRetrieval:
    passages: list[Passage]
    confidence: float


class FakeAssistant:
    """Keyword-overlap retrieval + quoting 'generation'; optional delays mimic a model."""

    def __init__(
        self,
        kb_path: str | Path,
        *,
        models: Sequence[str] = ("base", "ald-ft"),
        delay_s: float = 0.0,
        token_delay_s: float = 0.0,
        top_k: int = 3,
    ) -> None:
        self.kb_path = Path(kb_path)
        self._models = list(models)  # the fake composes its answers itself: names only, no generator
        self.delay_s = delay_s
        self.token_delay_s = token_delay_s
        self.top_k = top_k
        self.reloads = 0
        self.calls = 0
        self._lock = threading.Lock()
        self.kb: KnowledgeBase = load_kb(self.kb_path)

    def models(self) -> list[str]:
        return list(self._models)

    def reload_if_changed(self) -> bool:
        """Re-read the KB from disk if its content changed (what the real Assistant does
        after a KB edit); True if it did."""
        kb = load_kb(self.kb_path)
        with self._lock:
            if kb.content_hash() == self.kb.content_hash():
                return False
            self.kb = kb
            self.reloads += 1
            return True

    def retrieve(self, question: str, *, top_k: int | None = None, filter_keyword: str | None = None) -> list[Passage]:
        query = _tokens(question)
        with self._lock:
            documents = list(self.kb.documents)
        scored: list[tuple[float, Document]] = []
        for doc in documents:
            if filter_keyword and filter_keyword not in doc.keywords:
                continue
            words = _tokens(" ".join([doc.title, doc.text, *doc.keywords]))
            overlap = len(query & words)
            if overlap:
                scored.append((overlap / max(1, len(query)), doc))
        scored.sort(key=lambda item: (-item[0], item[1].id))
        return [
            Passage(id=d.id, title=d.title, text=d.text, score=round(s, 4), topic=d.topic, keywords=list(d.keywords))
            for s, d in scored[: top_k or self.top_k]
        ]

    def search(self, question: str, *, top_k: int | None = None, filter_keyword: str | None = None) -> FakeRetrieval:
        """Retrieval only, as the real Assistant offers it for the web UI's early contexts."""
        passages = self.retrieve(question, top_k=top_k, filter_keyword=filter_keyword)
        return FakeRetrieval(passages, min(1.0, 0.3 + passages[0].score) if passages else 0.0)

    def rewrite_followup(self, question: str, history: Sequence[dict[str, str]] = ()) -> str:
        return question

    def answer(self, question: str, **kwargs: Any) -> Answer:
        answer: Answer | None = None
        for item in self.stream_answer(question, **kwargs):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None
        return answer

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
        started = time.perf_counter()
        self.calls += 1
        if model not in self.models():
            raise ValueError(f"unknown model {model}")
        if self.delay_s:
            time.sleep(self.delay_s)
        passages = self.retrieve(question, top_k=top_k, filter_keyword=filter_keyword) if use_retrieval else []
        if passages and context_only:
            text = "\n\n".join(f"[{p.id}] {p.title}\n{p.text}" for p in passages)
            refused, citations, confidence = False, [], min(1.0, 0.3 + passages[0].score)
        elif passages:
            best = passages[0]
            quote = best.text.strip().split("\n")[0]
            text = f"{quote} [{best.id}]"
            if model != "base":
                text += f" ({model})"
            refused, citations, confidence = False, [best.id], min(1.0, 0.3 + best.score)
        else:
            text, refused, citations, confidence = refusal_answer("KB에서 관련 문서를 찾지 못했습니다."), True, [], 0.0
        words = text.split(" ")
        if max_new_tokens:
            words = words[:max_new_tokens]
        for i, word in enumerate(words):
            if self.token_delay_s:
                time.sleep(self.token_delay_s)
            yield word if i == 0 else " " + word
        yield Answer(
            question=question,
            text=" ".join(words),
            passages=passages,
            confidence=round(confidence, 4),
            refused=refused,
            citations=citations,
            citation_details=[Citation(cid, "bracket") for cid in citations],
            model=model,
            used_retrieval=use_retrieval,
            latency_s=time.perf_counter() - started,
        )
