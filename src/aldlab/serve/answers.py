"""Answering a question: validation, queue admission, the two pipeline halves, the answer log.

The assistant is anything that implements `aldlab.rag.types.AssistantProtocol`: the real
`aldlab.rag.assistant.Assistant`, or `aldlab.serve.fake.FakeAssistant` for tests and the
load bench.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio

from aldlab.rag.types import Answer, AskOptions, AssistantProtocol, Plan
from aldlab.serve.errors import ApiError, rate_limited
from aldlab.serve.guards import RateLimiter
from aldlab.serve.kb_admin import KbHash
from aldlab.serve.models import Models
from aldlab.serve.payload import LoggedRef
from aldlab.serve.schemas import ContextOut, Usage
from aldlab.serve.settings import ServeSettings
from aldlab.serve.worker import GenerationWorker, QueueStatus, Ticket
from aldlab.store import Store

#: Retention runs on the first logged answer and then every this many.
RETENTION_EVERY = 200


@dataclass(frozen=True)
class PreparedQuery:
    """A validated question and how to answer it, ready for the assistant."""

    question: str
    options: AskOptions

    @property
    def model(self) -> str:
        return self.options.model

    @property
    def history(self) -> list[dict[str, str]]:
        return list(self.options.history)


def check_range(field: str, value: int | None, limit: int, *, code: str) -> None:
    """A 400 unless `value` is absent or within 1..`limit`."""
    if value is not None and not 1 <= value <= limit:
        raise ApiError(400, code, f"{field}는 1~{limit} 사이여야 합니다.", f"{field} must be between 1 and {limit}.")


class Answers:
    """From a request's question to a logged answer; owns the generation queue and rate limits."""

    def __init__(self, assistant: AssistantProtocol, store: Store, settings: ServeSettings, models: Models) -> None:
        self._assistant = assistant
        self._store = store
        self._settings = settings
        self._models = models
        self.worker = GenerationWorker(
            threads=settings.generation_threads,
            max_pending=settings.max_pending,
            max_pending_per_client=settings.max_pending_per_client,
        )
        self._limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
        self._logged = 0
        self._kb_hashes = KbHash()

    # -- validation

    async def validate_query(
        self,
        question: str,
        *,
        model: str | None,
        history: list[dict[str, str]],
        top_k: int | None,
        max_new_tokens: int | None,
        use_retrieval: bool = True,
        filter_keyword: str | None = None,
        context_only: bool = False,
    ) -> PreparedQuery:
        s = self._settings  # text is valid Unicode already (`aldlab.serve.schemas.RequestBody`)
        question = question.strip()
        if not question:
            raise ApiError(400, "invalid_request", "질문이 비어 있습니다.", "The question is empty.")
        if len(question) > s.max_question_chars:
            raise ApiError(
                400,
                "question_too_long",
                f"질문이 너무 깁니다 ({len(question)}자, 최대 {s.max_question_chars}자).",
                f"Question too long ({len(question)} chars, max {s.max_question_chars}).",
            )
        if len(history) > s.max_history_turns:
            history = history[-s.max_history_turns :]  # keep the most recent turns
        for turn in history:
            if len(turn["content"]) > 4 * s.max_question_chars:
                raise ApiError(
                    400, "history_too_long", "대화 기록의 한 턴이 너무 깁니다.", "A history turn is too long."
                )
        check_range("top_k", top_k, s.max_top_k, code="invalid_top_k")
        check_range("max_tokens", max_new_tokens, s.max_new_tokens_limit, code="invalid_max_tokens")
        if filter_keyword is not None and len(filter_keyword) > 100:
            raise ApiError(400, "invalid_request", "filter_keyword가 너무 깁니다.", "filter_keyword is too long.")
        options = AskOptions(
            model=await self._models.check(model),
            use_retrieval=bool(use_retrieval),
            history=tuple(history),
            top_k=top_k,
            filter_keyword=filter_keyword or None,
            context_only=bool(context_only and use_retrieval),
            max_new_tokens=max_new_tokens,  # None: the assistant's rag.max_new_tokens (one default)
        )
        return PreparedQuery(question=question, options=options)

    # -- answering

    def admit(self, client: str) -> Ticket:
        """A place in the generation queue, taken before any response starts.

        429 + Retry-After when this client is over its rate or already has its share of
        the queue; 503 when the whole queue is full.
        """
        wait = self._limiter.acquire(client)
        if wait:
            raise rate_limited(wait, "질문이 너무 잦습니다", "Too many questions")
        return self.worker.admit(client)

    async def answer(self, query: PreparedQuery, ticket: Ticket) -> Answer:
        """Plan and generate on the worker (a JSON answer shows nothing before it is done)."""
        return await self.worker.run(partial(self._assistant.answer, query.question, query.options), ticket=ticket)

    async def plan(self, query: PreparedQuery) -> Plan:
        """The pipeline's first half, off the event loop and outside the generation queue.

        Retrieval takes milliseconds, generation tens of seconds on the CPU demo: planning
        first lets the user read the plan's passages (`preview`) while the question waits,
        and `stream` generates from the same plan, so nothing is retrieved twice.
        """
        return await anyio.to_thread.run_sync(self._assistant.plan, query.question, query.options)

    @staticmethod
    def preview(plan: Plan) -> dict[str, Any] | None:
        """The contexts the answer will use (None when the question is answered without retrieval).

        `generates` is False when the plan is settled already (a refusal before the model, or
        contexts only): the web UI then does not call the passages "given to the model".
        """
        if not plan.options.use_retrieval:
            return None
        return {
            "contexts": [ContextOut.of(p).model_dump() for p in plan.passages],
            "confidence": plan.confidence,
            "generates": plan.final is None,
        }

    def stream(self, plan: Plan, ticket: Ticket, *, report_status: bool = False) -> AsyncIterator[str | Answer | QueueStatus]:
        """The pipeline's second half on the worker: text pieces, then the Answer."""
        return self.worker.stream(lambda: self._assistant.run(plan), ticket=ticket, report_status=report_status)

    # -- the answer log

    async def log_answer(self, query: PreparedQuery, answer: Answer, client: str) -> LoggedRef:
        """Log the answer (ids + KB hash, no texts, no client IP); returns its id and token."""
        del client  # not stored (see aldlab.store.feedback); rate limits keep it in memory only
        token = secrets.token_urlsafe(24)
        answer_id = await anyio.to_thread.run_sync(
            partial(
                self._store.log_answer,
                question=query.question,
                answer=answer.text,
                context_ids=[p.id for p in answer.passages],
                kb_hash=self._kb_hash(),
                token=token,
                model=query.model,
                model_version=self._models.version_of(query.model),
                citations=list(answer.citations),
                history=query.history,
                confidence=float(answer.confidence),
                refused=bool(answer.refused),
                used_retrieval=bool(answer.used_retrieval),
                latency_s=float(answer.latency_s),
            )
        )
        self._logged += 1
        if self._logged % RETENTION_EVERY == 1:
            await self.apply_retention()
        return LoggedRef(answer_id, token)

    async def apply_retention(self) -> int:
        """Both retention rules (`ServeSettings.retention_*`, `rated_retention_days`); returns
        the answers deleted. Rated items go first: an answer whose only item was a rejected
        one is deleted with it."""
        s = self._settings
        rated = await anyio.to_thread.run_sync(
            partial(self._store.purge_rated_feedback, max_age_days=s.rated_retention_days)
        )
        if s.retention_days <= 0 and s.retention_rows <= 0:
            return rated.answers
        return rated.answers + await anyio.to_thread.run_sync(
            partial(self._store.purge_answers, max_age_days=s.retention_days, max_rows=s.retention_rows)
        )

    def _kb_hash(self) -> str:
        """The hash of the KB the assistant answered from (logged with every answer); cached
        per KB object, so it is computed once per reload, not per answer on the event loop."""
        return self._kb_hashes.of(self._assistant.kb)

    # -- token counts

    def count_tokens(self, text: str) -> int:
        """Tokens of the serving model's tokenizer when one is loaded, else words (fake,
        remote server): OpenAI clients need integers, and cost accounting reads them.

        Only the local transformers engine has a tokenizer (`HFGenerator._tokenizer`), so
        this probes for it: the one engine detail outside `AssistantProtocol`.
        """
        tokenizer = getattr(getattr(self._assistant, "generator", None), "_tokenizer", None)
        if tokenizer is not None:
            try:
                return len(tokenizer(text, add_special_tokens=False)["input_ids"])
            except Exception:  # noqa: BLE001 - fall back to a word count
                pass
        return len(text.split())

    def usage(self, query: PreparedQuery, answer: Answer) -> Usage:
        """OpenAI `usage`; the prompt is counted as question + history + contexts."""
        prompt = query.question + "".join(t["content"] for t in query.history) + "".join(p.text for p in answer.passages)
        prompt_tokens, completion_tokens = self.count_tokens(prompt), self.count_tokens(answer.text)
        return Usage(
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens
        )
