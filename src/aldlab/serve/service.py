"""The service behind the routes: validation, queueing, answering, logging, KB access.

Routes stay thin (parse, call one or two methods here, shape the response); everything a
request needs lives on one `Service` per app, no globals. The assistant is anything that
implements `aldlab.rag.types.AssistantProtocol`: the real `aldlab.rag.assistant.Assistant`,
or `aldlab.serve.fake.FakeAssistant` for tests and the load bench.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from aldlab.errors import UserError
from aldlab.kb.schema import Document
from aldlab.rag.types import Answer, AskOptions, AssistantProtocol, Plan
from aldlab.serve.documents import KbDocuments
from aldlab.serve.errors import ApiError, kb_unavailable
from aldlab.serve.guards import FailureThrottle, RateLimiter
from aldlab.serve.reloader import Reloader
from aldlab.serve.schemas import AnswerOut, Bilingual, CitationOut, ConfidenceLabel, ContextOut, Usage
from aldlab.serve.settings import ServeSettings
from aldlab.serve.worker import GenerationWorker, QueueStatus, Ticket
from aldlab.store import Store

log = logging.getLogger("aldlab.serve")

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


@dataclass(frozen=True)
class LoggedRef:
    """A logged answer's id and the secret token only its asker receives."""

    answer_id: str
    token: str


def check_text(field: str, value: str | None) -> None:
    """Refuse text that is not valid Unicode (a lone surrogate such as "\\ud800").

    It used to pass validation, run generation, and then fail as a 500 when the answer
    was written to SQLite; now it is a 400 before any work is done.
    """
    if value is None:
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ApiError(
            400,
            "invalid_text",
            f"{field}에 올바르지 않은 문자(짝 없는 서로게이트)가 있습니다.",
            f"{field} contains invalid characters (a lone surrogate).",
        ) from exc


class Service:
    """Everything a request handler needs; one per app, no globals."""

    def __init__(self, assistant: AssistantProtocol, store: Store, settings: ServeSettings) -> None:
        self.assistant = assistant
        self.store = store
        self.settings = settings
        self.worker = GenerationWorker(
            threads=settings.generation_threads,
            max_pending=settings.max_pending,
            max_pending_per_client=settings.max_pending_per_client,
        )
        self.started = time.time()
        self._models: tuple[float, list[str]] | None = None
        self.reloader = Reloader(self.reload_kb, kb=Path(settings.kb) if settings.kb else None, on_done=self.forget_models)
        self.docs = KbDocuments(assistant, Path(settings.kb)) if settings.kb else None
        self._logged = 0
        # Admin edits of this server run one at a time, each with its audit row.
        self.edit_lock = asyncio.Lock()
        self.limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
        self.admin_failures = FailureThrottle()

    # -- models

    #: How long the model list is reused. A remote LLM server (--llm-url) is asked over
    #: HTTP, so the list is not fetched on every request.
    MODELS_TTL_S = 60.0

    async def model_names(self) -> list[str]:
        """'base' first, then adapters; cached, fetched off the event loop."""
        cached = self._models
        if cached is not None and time.monotonic() - cached[0] < self.MODELS_TTL_S:
            return cached[1]
        try:
            names = await anyio.to_thread.run_sync(self._fetch_model_names)
        except UserError as exc:
            if cached is not None:
                return cached[1]  # a stale list beats failing every request
            raise ApiError(502, "llm_unavailable", exc.ko, exc.en, hint=exc.hint) from exc
        self._models = (time.monotonic(), names)
        return names

    def _fetch_model_names(self) -> list[str]:
        names = self.assistant.models()
        return ["base", *dict.fromkeys(n for n in names if n != "base")]

    def forget_models(self) -> None:
        """Ask the assistant again next time (after a reload the adapters may differ)."""
        self._models = None

    async def default_model(self) -> str:
        """The model that answers when a request names none: the configured one, else the
        first fine-tuned adapter, else base (the trained assistant is the default)."""
        names = await self.model_names()
        wanted = self.settings.default_model
        if wanted and wanted in names:
            return wanted
        return next((n for n in names if n != "base"), "base")

    async def check_model(self, model: str | None) -> str:
        if not model:
            return await self.default_model()
        names = await self.model_names()
        if model not in names:
            raise ApiError(
                404,
                "model_not_found",
                f"알 수 없는 모델입니다: {model}",
                f"Unknown model: {model}",
                hint=f"사용 가능 / available: {', '.join(names)}",
            )
        return model

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
        s = self.settings
        check_text("question", question)
        for turn in history:
            check_text("history", turn["content"])
        if filter_keyword:
            check_text("filter_keyword", filter_keyword)
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
        if top_k is not None and not 1 <= top_k <= s.max_top_k:
            raise ApiError(
                400,
                "invalid_top_k",
                f"top_k는 1~{s.max_top_k} 사이여야 합니다.",
                f"top_k must be between 1 and {s.max_top_k}.",
            )
        if max_new_tokens is not None and not 1 <= max_new_tokens <= s.max_new_tokens_limit:
            raise ApiError(
                400,
                "invalid_max_tokens",
                f"max_tokens는 1~{s.max_new_tokens_limit} 사이여야 합니다.",
                f"max_tokens must be between 1 and {s.max_new_tokens_limit}.",
            )
        if filter_keyword is not None and len(filter_keyword) > 100:
            raise ApiError(400, "invalid_request", "filter_keyword가 너무 깁니다.", "filter_keyword is too long.")
        options = AskOptions(
            model=await self.check_model(model),
            use_retrieval=bool(use_retrieval),
            history=tuple(history),
            top_k=top_k,
            filter_keyword=filter_keyword or None,
            context_only=bool(context_only and use_retrieval),
            max_new_tokens=max_new_tokens,  # None: the assistant's rag.max_new_tokens (one default)
        )
        return PreparedQuery(question=question, options=options)

    # -- answers

    def admit(self, client: str) -> Ticket:
        """A place in the generation queue, taken before any response starts.

        429 + Retry-After when this client is over its rate or already has its share of
        the queue; 503 when the whole queue is full.
        """
        wait = self.limiter.acquire(client)
        if wait:
            raise ApiError(
                429,
                "rate_limited",
                f"질문이 너무 잦습니다. {wait}초 뒤에 다시 시도하세요.",
                f"Too many questions; retry in {wait} s.",
                retry_after=wait,
            )
        return self.worker.admit(client)

    async def answer(self, query: PreparedQuery, ticket: Ticket) -> Answer:
        """Plan and generate on the worker (a JSON answer shows nothing before it is done)."""
        return await self.worker.run(partial(self.assistant.answer, query.question, query.options), ticket=ticket)

    async def plan(self, query: PreparedQuery) -> Plan:
        """The pipeline's first half, off the event loop and outside the generation queue.

        Retrieval takes milliseconds, generation tens of seconds on the CPU demo: planning
        first lets the user read the plan's passages (`preview`) while the question waits,
        and `stream` generates from the same plan, so nothing is retrieved twice.
        """
        return await anyio.to_thread.run_sync(self.assistant.plan, query.question, query.options)

    @staticmethod
    def preview(plan: Plan) -> dict[str, Any] | None:
        """The contexts the answer will use (None when the question is answered without retrieval)."""
        if not plan.options.use_retrieval:
            return None
        return {"contexts": [ContextOut.of(p).model_dump() for p in plan.passages], "confidence": plan.confidence}

    def stream(self, plan: Plan, ticket: Ticket, *, report_status: bool = False) -> AsyncIterator[str | Answer | QueueStatus]:
        """The pipeline's second half on the worker: text pieces, then the Answer."""
        return self.worker.stream(lambda: self.assistant.run(plan), ticket=ticket, report_status=report_status)

    async def log_answer(self, query: PreparedQuery, answer: Answer, client: str) -> LoggedRef:
        """Log the answer (ids + KB hash, no texts, no client IP); returns its id and token."""
        del client  # not stored (see aldlab.store.feedback); rate limits keep it in memory only
        token = secrets.token_urlsafe(24)
        answer_id = await anyio.to_thread.run_sync(
            partial(
                self.store.log_answer,
                question=query.question,
                answer=answer.text,
                context_ids=[p.id for p in answer.passages],
                kb_hash=self.kb_hash(),
                token=token,
                model=query.model,
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
        s = self.settings
        if s.retention_days <= 0 and s.retention_rows <= 0:
            return 0
        return await anyio.to_thread.run_sync(
            partial(self.store.purge_answers, max_age_days=s.retention_days, max_rows=s.retention_rows)
        )

    def count_tokens(self, text: str) -> int:
        """Tokens of the serving model's tokenizer when one is loaded, else words (fake,
        remote server): OpenAI clients need integers, and cost accounting reads them.

        Only the local transformers engine has a tokenizer (`HFGenerator._tokenizer`), so
        this probes for it: the one engine detail outside `AssistantProtocol`.
        """
        tokenizer = getattr(getattr(self.assistant, "generator", None), "_tokenizer", None)
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

    def kb_hash(self) -> str:
        """The hash of the KB the assistant answered from (logged with every answer)."""
        return str(self.assistant.kb.content_hash())

    def answer_payload(self, answer: Answer, ref: LoggedRef) -> AnswerOut:
        """What /api/ask returns and what the OpenAI routes put under `aldlab`."""
        label = self.confidence_label(answer)
        by_id = {p.id: p for p in answer.passages}
        basis = {c.id: (c.how, round(float(c.support), 3)) for c in answer.citation_details}
        citations = []
        for cid in answer.citations:
            how, support = basis.get(cid, ("bracket", 0.0))
            citations.append(CitationOut(id=cid, title=by_id[cid].title if cid in by_id else "", how=how, support=support))
        return AnswerOut(
            answer_id=ref.answer_id,
            answer_token=ref.token,
            answer=answer.text,
            model=answer.model,
            contexts=[ContextOut.of(p) for p in answer.passages],
            citations=citations,
            confidence=round(float(answer.confidence), 4),
            confidence_label=label,
            confidence_explanation=self.explain_confidence(answer, label),
            refused=bool(answer.refused),
            used_retrieval=bool(answer.used_retrieval),
            latency_s=round(float(answer.latency_s), 3),
        )

    def confidence_label(self, answer: Answer) -> ConfidenceLabel:
        if answer.refused:
            return "low"
        if answer.confidence >= self.settings.confidence_high:
            return "high"
        if answer.confidence >= self.settings.confidence_medium:
            return "medium"
        return "low"

    def explain_confidence(self, answer: Answer, label: ConfidenceLabel) -> Bilingual:
        """One sentence per language saying where the confidence comes from."""
        names = {"high": ("높음", "high"), "medium": ("보통", "medium"), "low": ("낮음", "low")}
        ko_label, en_label = names[label]
        if answer.refused:
            return Bilingual(
                ko="KB에서 충분한 근거를 찾지 못해 답변을 보류했습니다.",
                en="No sufficient evidence was found in the KB, so the assistant declined to answer.",
            )
        if not answer.used_retrieval or not answer.passages:
            return Bilingual(
                ko=f"문서 검색 없이 모델 지식만으로 답했습니다 (신뢰도 {ko_label}). 사실 확인이 필요합니다.",
                en=f"Answered from model knowledge without retrieval ({en_label}); verify the facts.",
            )
        n, c = len(answer.passages), len(answer.citations)
        # `confidence` is the retriever's calibrated probability that a relevant document
        # was found (aldlab.rag.confidence), not a raw fusion score, so it is what we show.
        return Bilingual(
            ko=(
                f"관련 문서 {n}개를 찾았고 검색 신뢰도(보정된 확률)는 {answer.confidence:.2f} ({ko_label})입니다. "
                + (f"답변이 문서 {c}개를 인용했습니다." if c else "답변이 문서를 인용하지 않았습니다.")
            ),
            en=(
                f"{n} relevant passages found; calibrated retrieval confidence {answer.confidence:.2f} ({en_label}). "
                + (f"The answer cites {c} document(s)." if c else "The answer cites no document.")
            ),
        )

    # -- KB

    def kb_path(self) -> Path:
        if not self.settings.kb:
            raise ApiError(409, "kb_not_configured", "KB 경로가 설정되지 않았습니다.", "No KB path is configured.")
        return Path(self.settings.kb)

    def editable_kb_dir(self) -> Path:
        path = self.kb_path()
        if not (path.is_dir() and (path / "kb.json").exists()):
            raise ApiError(
                409,
                "kb_not_editable",
                "KB 편집은 kb.json이 있는 KB 디렉터리에서만 가능합니다.",
                "KB editing needs a native KB directory (with kb.json).",
                hint="`aldlab kb import` 로 변환한 뒤 --kb 로 지정하세요 / convert with `aldlab kb import` first",
            )
        return path

    def load_documents(self) -> list[Document]:
        """The KB's documents from memory (re-read only when the files changed)."""
        if self.docs is None:
            self.kb_path()  # raises the 409 "no KB configured"
        assert self.docs is not None
        try:
            return self.docs.documents()
        except UserError as exc:
            raise kb_unavailable(exc, self.kb_path()) from exc

    def check_topic_path(self, kb_dir: Path, topic: str | None) -> None:
        """Belt and braces after the name pattern: the topic's file stays in the KB."""
        if topic is None:
            return
        documents = (kb_dir / "documents").resolve()
        target = (documents / f"{topic}.jsonl").resolve()
        if target.parent != documents:
            raise ApiError(400, "invalid_topic", "주제 이름이 올바르지 않습니다.", "Invalid topic name.")

    def edited(self) -> None:
        if self.docs is not None:
            self.docs.edited()

    def context_snapshot(self, ids: list[str]) -> list[dict[str, Any]] | None:
        """Texts of the logged context ids, as the KB has them now (None if any is gone)."""
        docs = [self.document(i) for i in ids]
        if any(d is None for d in docs):
            return None
        return [{"id": d.id, "title": d.title, "text": d.text} for d in docs if d is not None]

    def reload_kb(self) -> bool:
        """The assistant's reload (looked up per call, so a swapped-in method is used)."""
        return self.assistant.reload_if_changed()

    def document(self, doc_id: str) -> Document | None:
        self.load_documents()
        assert self.docs is not None
        return self.docs.get(doc_id)
