"""Batched answering for evaluation: the Assistant's rules, the generator's batches.

`Assistant.answer` generates one question at a time, which on this CPU is memory-bound
(the weights are read once per new token whatever the batch size). Eval has all
questions up front, so `BatchAnswerer` retrieves each question as the Assistant does,
refuses low-confidence ones *before* the LLM (same threshold, same refusal text, no
generation), builds the same prompts with `aldlab.prompts.build_messages`, and sends the
rest to `generate_batch` together. Citations are not computed: eval does not score them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from aldlab import prompts
from aldlab.rag.answer import settle_generated
from aldlab.rag.types import Answer


class BatchAnswerer:
    """Answers many questions for one (model, retrieval) setting of an Assistant.

    `batch_size` questions go to the generator together (EvalConfig.batch_size sets it).
    """

    def __init__(self, assistant: Any, batch_size: int = 8) -> None:
        self.assistant = assistant
        self.batch_size = max(1, int(batch_size))

    def answer(self, question: str, *, model: str = "base", use_retrieval: bool = True, max_new_tokens: int = 256) -> Answer:
        """One question (same result as a batch of one)."""
        return self.answer_batch([question], model=model, use_retrieval=use_retrieval, max_new_tokens=max_new_tokens)[0]

    def answer_batch(
        self, questions: Sequence[str], *, model: str = "base", use_retrieval: bool = True, max_new_tokens: int = 256
    ) -> list[Answer]:
        """Answers in question order; generated ones share one `generate_batch` call per chunk.

        `latency_s` of a generated answer is its retrieval time plus its share of the
        batch's generation time (the batch's wall time divided by its size).
        """
        model = model or "base"
        adapter = None if model == "base" else model
        answers: list[Answer] = []
        pending: list[tuple[Answer, list[dict[str, str]]]] = []
        for question in questions:
            t0 = time.perf_counter()
            answer, messages = self._prepare(question.strip(), model, use_retrieval)
            answer.latency_s = round(time.perf_counter() - t0, 4)
            answers.append(answer)
            if messages is not None:
                pending.append((answer, messages))
        for start in range(0, len(pending), self.batch_size):
            chunk = pending[start : start + self.batch_size]
            t0 = time.perf_counter()
            texts = self._generate([messages for _, messages in chunk], max_new_tokens, adapter)
            share = (time.perf_counter() - t0) / len(chunk)
            for (answer, _), text in zip(chunk, texts, strict=True):
                answer.text, answer.refused = settle_generated(text, answer.question, with_context=answer.used_retrieval)
                answer.latency_s = round(answer.latency_s + share, 4)
        return answers

    def _prepare(self, question: str, model: str, use_retrieval: bool) -> tuple[Answer, list[dict[str, str]] | None]:
        """(final refusal, None) when retrieval is not confident, else (answer to fill, prompt).

        Mirrors `Assistant.stream_answer` for a first turn without history.
        """
        if not use_retrieval:
            return Answer(question=question, text="", model=model, used_retrieval=False), prompts.build_messages(question, None)
        retrieval = self.assistant.retriever.search(question)
        passages, confidence = retrieval.passages, round(retrieval.confidence, 4)
        answer = Answer(question=question, text="", passages=passages, confidence=confidence, model=model)
        reason = self.assistant.refusal_reason(retrieval)
        if reason:
            answer.text, answer.refused = prompts.refusal_answer(reason), True
            return answer, None
        return answer, prompts.build_messages(question, passages)

    def _generate(self, batch: list[list[dict[str, str]]], max_new_tokens: int, adapter: str | None) -> list[str]:
        """The generator's batches when it has them (HF, OpenAI), else one call per prompt."""
        generator = self.assistant.generator
        if hasattr(generator, "generate_batch"):
            return list(generator.generate_batch(batch, max_new_tokens=max_new_tokens, adapter=adapter))
        return [generator.generate(m, max_new_tokens=max_new_tokens, adapter=adapter) for m in batch]
