"""A tiny, deterministic stand-in for `aldlab.rag.assistant.Assistant`.

Tests, the browser tests and the load bench need a server that answers in milliseconds
without loading a language model. `FakeAssistant` implements the same
`aldlab.rag.types.AssistantProtocol` as the real Assistant (`plan`, `run`, `answer`,
`stream_answer`, `models`, `reload_if_changed`, ...), retrieves by keyword overlap over a KB on
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

from aldlab.kb.io import load_kb
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.prompts import refusal_answer
from aldlab.rag.types import Answer, AskOptions, Citation, Passage, Plan

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

    def add_adapter(self, name: str, path: str) -> None:
        """A new model name (the fake answers by name only; `path` is not read)."""
        del path
        with self._lock:
            if name not in self._models:
                self._models.append(name)

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
        """Retrieval only, with a confidence like the real one's (0..1)."""
        passages = self.retrieve(question, top_k=top_k, filter_keyword=filter_keyword)
        return FakeRetrieval(passages, min(1.0, 0.3 + passages[0].score) if passages else 0.0)

    def plan(self, question: str, options: AskOptions = AskOptions()) -> Plan:
        """Retrieval, as the real pipeline's first half (the delay stands for the model's wait)."""
        started = time.perf_counter()
        if options.model not in self.models():
            raise ValueError(f"unknown model {options.model}")
        plan = Plan(question=question, options=options, max_new_tokens=options.max_new_tokens or 0)
        if options.use_retrieval:
            found = self.search(question, top_k=options.top_k, filter_keyword=options.filter_keyword)
            plan.passages, plan.confidence = found.passages, round(found.confidence, 4)
        plan.planning_s = time.perf_counter() - started
        return plan

    def run(self, plan: Plan, *, stream: bool = True) -> Iterator[str | Answer]:
        """Quote the best passage word by word, then the Answer."""
        del stream  # the fake yields pieces either way; `answer` keeps only the Answer
        started = time.perf_counter()
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        passages, options = plan.passages, plan.options
        generated = bool(passages) and not options.context_only
        if passages and options.context_only:
            text = "\n\n".join(f"[{p.id}] {p.title}\n{p.text}" for p in passages)
            refused, citations = False, []
        elif passages:
            best = passages[0]
            quote = best.text.strip().split("\n")[0]
            text = f"{quote} [{best.id}]"
            if options.model != "base":
                text += f" ({options.model})"
            refused, citations = False, [best.id]
        else:
            text, refused, citations = refusal_answer("KB에서 관련 문서를 찾지 못했습니다."), True, []
        words = text.split(" ")
        # A word is the fake's token: a quote longer than max_new_tokens is cut, as a model's
        # reply would be ("length"); a quote that fits ends by itself, even at exactly the limit.
        cut = generated and bool(plan.max_new_tokens) and len(words) > plan.max_new_tokens
        if plan.max_new_tokens:
            words = words[: plan.max_new_tokens]
        for i, word in enumerate(words):
            if self.token_delay_s:
                time.sleep(self.token_delay_s)
            yield word if i == 0 else " " + word
        yield Answer(
            question=plan.question,
            text=" ".join(words),
            passages=passages,
            confidence=plan.confidence if passages else 0.0,
            refused=refused,
            citations=citations,
            citation_details=[Citation(cid, "bracket") for cid in citations],
            model=options.model,
            used_retrieval=options.use_retrieval,
            latency_s=plan.planning_s + time.perf_counter() - started,
            stop_reason="length" if cut else "stop",
        )

    def answer(self, question: str, options: AskOptions = AskOptions()) -> Answer:
        answer: Answer | None = None
        for item in self.stream_answer(question, options):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None
        return answer

    def stream_answer(self, question: str, options: AskOptions = AskOptions()) -> Iterator[str | Answer]:
        yield from self.run(self.plan(question, options))
