"""Batched answering for evaluation: the Assistant's two halves around the generator's batches.

`Assistant.answer` generates one question at a time, which on this CPU is memory-bound
(the weights are read once per new token whatever the batch size). Eval has all
questions up front, so `BatchAnswerer` plans every question with `Assistant.plan`
(retrieval, refusal before the LLM, prompt), sends the prompts that need a model to
`generate_batch` together, and settles each text with `Assistant.settle`: the same two
halves `ask`, `chat` and the server use, so eval scores the answers users see.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aldlab.rag.types import Answer, AskOptions, Plan

if TYPE_CHECKING:
    from aldlab.rag.assistant import Assistant


class BatchAnswerer:
    """Answers many questions for one (model, retrieval) setting of an Assistant.

    `batch_size` questions go to the generator together (EvalConfig.batch_size sets it).
    """

    def __init__(self, assistant: Assistant, batch_size: int = 8) -> None:
        self.assistant = assistant
        self.batch_size = max(1, int(batch_size))

    def answer(self, question: str, options: AskOptions = AskOptions()) -> Answer:
        """One question (same result as a batch of one)."""
        return self.answer_batch([question], options)[0]

    def answer_batch(self, questions: Sequence[str], options: AskOptions = AskOptions()) -> list[Answer]:
        """Answers in question order; generated ones share one `generate_batch` call per chunk.

        `latency_s` of a generated answer is its planning time plus its share of the
        batch's generation time (the batch's wall time divided by its size).
        """
        plans = [self.assistant.plan(question, options) for question in questions]
        answers: dict[int, Answer] = {i: p.final for i, p in enumerate(plans) if p.final is not None}
        pending = [i for i, p in enumerate(plans) if p.final is None]
        for start in range(0, len(pending), self.batch_size):
            chunk = pending[start : start + self.batch_size]
            t0 = time.perf_counter()
            texts = self._generate([plans[i] for i in chunk])
            share = (time.perf_counter() - t0) / len(chunk)
            for i, text in zip(chunk, texts, strict=True):
                answers[i] = self.assistant.settle(plans[i], text, generation_s=share)
        return [answers[i] for i in range(len(plans))]

    def _generate(self, plans: list[Plan]) -> list[str]:
        """The generator's batches when it has them (HF, OpenAI), else one call per prompt."""
        generator = self.assistant.generator
        options = plans[0].options
        batch = [p.messages for p in plans if p.messages is not None]
        max_new_tokens = plans[0].max_new_tokens
        if hasattr(generator, "generate_batch"):
            return list(generator.generate_batch(batch, max_new_tokens=max_new_tokens, adapter=options.adapter))
        return [generator.generate(m, max_new_tokens=max_new_tokens, adapter=options.adapter) for m in batch]
