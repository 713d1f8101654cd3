"""The `aldlab serve` web application: OpenAI-compatible API, ask/feedback API, admin KB
editing and the static web UI.

`create_app(assistant, store, settings)` takes any object with the Assistant interface
(`answer`, `stream_answer`, `generator.models()`, optional `reload`), so tests and the
load bench run it with `aldlab.serve.fake.FakeAssistant` and never load a model.

Hardening, in one place:
- every error is JSON `{"error": {"message", "message_ko", "message_en", "type", "code"}}`
  (the shape the `openai` client reads), never a traceback;
- request bodies, question length, history, top_k and max tokens are capped;
- admin routes are off unless a token is configured and compare it in constant time;
- CORS is off unless origins are configured; every response carries a strict CSP, so
  even a rendering bug in the UI cannot run injected script.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as FastApiPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aldlab import __version__
from aldlab.errors import UserError
from aldlab.kb.schema import NAME_PATTERN, Document
from aldlab.rag.types import Answer
from aldlab.serve.documents import DocumentCache
from aldlab.serve.guards import (
    FailureThrottle,
    GuardMiddleware,
    RateLimiter,
    allowed_hosts,
    bearer_token,
    token_matches,
)
from aldlab.serve.settings import ServeSettings
from aldlab.store import FeedbackForbidden
from aldlab.serve.worker import ClientBusy, GenerationWorker, QueueStatus, Ticket, WorkerBusy

log = logging.getLogger("aldlab.serve")

STATIC_DIR = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


# --------------------------------------------------------------------------- errors


class ApiError(StarletteHTTPException):
    """An error answered as JSON with a bilingual message (Korean first)."""

    def __init__(
        self, status: int, code: str, ko: str, en: str, *, hint: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(status_code=status, detail=en)
        self.code = code
        self.ko = ko
        self.en = en
        self.hint = hint
        self.retry_after = retry_after


def error_body(code: str, ko: str, en: str, hint: str | None = None) -> dict[str, Any]:
    """The one error shape of the service (OpenAI-compatible: `error.message`)."""
    error: dict[str, Any] = {"message": f"{ko} / {en}", "message_ko": ko, "message_en": en, "type": code, "code": code}
    if hint:
        error["hint"] = hint
    return {"error": error}


def error_response(status: int, code: str, ko: str, en: str, hint: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, ko, en, hint), status_code=status)


def user_error_body(exc: UserError) -> dict[str, Any]:
    """A UserError for a client: file names stay, the server's directories do not."""
    loc = redact_paths(exc.location(), None)
    prefix = f"{loc}: " if loc else ""
    return error_body("invalid_request", prefix + redact_paths(exc.ko, None), prefix + redact_paths(exc.en, None), exc.hint)


def install_error_handlers(app: FastAPI) -> None:
    """JSON for every failure; tracebacks only in the server log."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, ApiError):
            response = error_response(exc.status_code, exc.code, exc.ko, exc.en, exc.hint)
            if exc.retry_after is not None:
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
        messages = {
            404: ("경로를 찾을 수 없습니다.", "Not found."),
            405: ("허용되지 않는 메서드입니다.", "Method not allowed."),
        }
        ko, en = messages.get(exc.status_code, ("요청을 처리할 수 없습니다.", str(exc.detail)))
        return error_response(exc.status_code, "http_error", ko, en)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
        detail = "; ".join(problems)
        return error_response(422, "invalid_request", f"요청 형식이 잘못되었습니다: {detail}", f"Invalid request: {detail}")

    @app.exception_handler(UserError)
    async def user_error(_: Request, exc: UserError) -> JSONResponse:
        return JSONResponse(user_error_body(exc), status_code=400)

    @app.exception_handler(WorkerBusy)
    async def busy(_: Request, exc: WorkerBusy) -> JSONResponse:
        return busy_response(exc)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error: %s", exc)
        return error_response(500, "internal_error", "서버 내부 오류입니다.", "Internal server error.")


def busy_response(exc: WorkerBusy | None = None) -> JSONResponse:
    """503 when the whole queue is full; 429 when this client already has its share."""
    if isinstance(exc, ClientBusy):
        response = error_response(
            429,
            "too_many_requests",
            "이 클라이언트의 대기 중인 질문이 너무 많습니다. 앞의 답변이 끝난 뒤 다시 시도하세요.",
            "Too many of your questions are waiting; retry after the earlier answers finish.",
        )
    else:
        response = error_response(
            503, "server_busy", "요청이 많아 잠시 후 다시 시도하세요.", "The server is busy; retry shortly."
        )
    response.headers["Retry-After"] = "2"
    return response


# --------------------------------------------------------------------------- middleware


class BodyLimitMiddleware:
    """Reject request bodies over `max_bytes` (checked on Content-Length and while reading)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> ApiError:
        return ApiError(
            413,
            "request_too_large",
            f"요청 본문이 너무 큽니다 (최대 {self.max_bytes} 바이트).",
            f"Request body too large (max {self.max_bytes} bytes).",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_bytes + 1
                if declared > self.max_bytes:
                    err = self._too_large()
                    await JSONResponse(error_body(err.code, err.ko, err.en), status_code=413)(scope, receive, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, limited_receive, send)


class SecurityHeadersMiddleware:
    """CSP and friends on every response (defence in depth for the web UI)."""

    HEADERS = [
        (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + self.HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --------------------------------------------------------------------------- request models


class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    question: str
    model: str | None = None  # None: the server's default (the fine-tuned adapter when loaded)
    top_k: int | None = None
    use_retrieval: bool = True
    context_only: bool = False
    history: list[Turn] = Field(default_factory=list)
    filter_keyword: str | None = None
    max_new_tokens: int | None = None
    stream: bool = False


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    answer_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    # Returned with the answer to the client that asked, and to no one else.
    answer_token: str = Field(min_length=16, max_length=128)
    rating: Literal["like", "dislike"]
    comment: str | None = Field(default=None, max_length=2000)
    correction: str | None = Field(default=None, max_length=8000)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """Plain text of a message (OpenAI content may be a list of typed parts)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type") in ("text", "input_text"))


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    stream_options: StreamOptions | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = None
    # Extra options (the openai client sends them with `extra_body={"aldlab": {...}}`).
    aldlab: dict[str, Any] | None = None


# Document ids and topics (aldlab.kb.schema.NAME_PATTERN, the KB validator's rule too) become
# file names and URL segments, so nothing that could climb out of the KB dir ("../x", "a/b") passes.


DocId = Annotated[str, FastApiPath(pattern=NAME_PATTERN)]


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=2000)


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=NAME_PATTERN)
    title: str = Field(default="", max_length=300)
    text: str = Field(min_length=1, max_length=20000)
    keywords: list[str] = Field(default_factory=list, max_length=50)
    topic: str = Field(default="general", pattern=NAME_PATTERN)
    source: str = Field(default="admin", max_length=200)


class DocumentChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=300)
    text: str | None = Field(default=None, min_length=1, max_length=20000)
    keywords: list[str] | None = Field(default=None, max_length=50)
    topic: str | None = Field(default=None, pattern=NAME_PATTERN)
    source: str | None = Field(default=None, max_length=200)


# --------------------------------------------------------------------------- service state


@dataclass
class PreparedQuery:
    """A validated question, ready for the assistant."""

    question: str
    model: str
    kwargs: dict[str, Any]
    history: list[dict[str, str]]


class Service:
    """Everything a request handler needs; one per app, no globals."""

    def __init__(self, assistant: Any, store: Any, settings: ServeSettings) -> None:
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
        self.reloader = Reloader(self)
        self.docs = DocumentCache(Path(settings.kb)) if settings.kb else None
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
        generator = getattr(self.assistant, "generator", None)
        names = list(generator.models()) if generator is not None and hasattr(generator, "models") else []
        return ["base", *dict.fromkeys(n for n in names if n != "base")]

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
        model = await self.check_model(model)
        kwargs = {
            "model": model,
            "use_retrieval": bool(use_retrieval),
            "history": history,
            "top_k": top_k,
            "filter_keyword": filter_keyword or None,
            "max_new_tokens": max_new_tokens or s.default_max_new_tokens,
        }
        if context_only and use_retrieval:
            kwargs["context_only"] = True
        return PreparedQuery(question=question, model=model, kwargs=kwargs, history=history)

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
        return await self.worker.run(partial(self.assistant.answer, query.question, **query.kwargs), ticket=ticket)

    def stream(
        self, query: PreparedQuery, ticket: Ticket, *, report_status: bool = False
    ) -> AsyncIterator[str | Answer | QueueStatus]:
        return self.worker.stream(
            lambda: self.assistant.stream_answer(query.question, **query.kwargs),
            ticket=ticket,
            report_status=report_status,
        )

    async def preview(self, query: PreparedQuery) -> dict[str, Any] | None:
        """The contexts the answer will use, retrieved at once, outside the generation queue.

        Retrieval takes milliseconds, generation tens of seconds on the CPU demo; showing the
        contexts while the question waits lets the user read them instead of a bare cursor.
        The assistant retrieves again when its turn comes (same question, same result), which
        keeps its interface unchanged. None when there is nothing to show or it fails (the
        answer stream then reports any real error).
        """
        search = getattr(self.assistant, "search", None)
        if search is None or not query.kwargs.get("use_retrieval", True):
            return None

        def retrieve() -> Any:
            rewrite = getattr(self.assistant, "rewrite_followup", None)
            question = rewrite(query.question, query.history) if rewrite else query.question
            return search(question, top_k=query.kwargs.get("top_k"), filter_keyword=query.kwargs.get("filter_keyword"))

        try:
            retrieval = await anyio.to_thread.run_sync(retrieve)
        except Exception:  # noqa: BLE001 - a preview is optional
            log.debug("context preview failed", exc_info=True)
            return None
        return {
            "contexts": [context_json(p) for p in retrieval.passages],
            "confidence": round(float(retrieval.confidence), 4),
        }

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
        remote server): OpenAI clients need integers, and cost accounting reads them."""
        tokenizer = getattr(getattr(self.assistant, "generator", None), "_tokenizer", None)
        if tokenizer is not None:
            try:
                return len(tokenizer(text, add_special_tokens=False)["input_ids"])
            except Exception:  # noqa: BLE001 - fall back to a word count
                pass
        return len(text.split())

    def usage(self, query: PreparedQuery, answer: Answer) -> dict[str, int]:
        """OpenAI `usage`; the prompt is counted as question + history + contexts."""
        prompt = query.question + "".join(t["content"] for t in query.history) + "".join(p.text for p in answer.passages)
        prompt_tokens, completion_tokens = self.count_tokens(prompt), self.count_tokens(answer.text)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    def kb_hash(self) -> str:
        kb = getattr(self.assistant, "kb", None)
        if kb is not None and hasattr(kb, "content_hash"):
            return str(kb.content_hash())
        try:
            return self.docs.content_hash() if self.docs else ""
        except UserError:
            return ""

    def answer_payload(self, answer: Answer, ref: LoggedRef) -> dict[str, Any]:
        """What /api/ask returns and what the OpenAI routes put under `aldlab`."""
        label = self.confidence_label(answer)
        by_id = {p.id: p for p in answer.passages}
        basis = {
            c.id: {"how": c.how, "support": round(float(c.support), 3)} for c in getattr(answer, "citation_details", [])
        }
        return {
            "answer_id": ref.answer_id,
            # Proof of having asked: /api/feedback needs it, so only this client can rate.
            "answer_token": ref.token,
            "answer": answer.text,
            "model": answer.model,
            # Everything the model was given, cited or not (shown as "참고 문서 / contexts").
            "contexts": [context_json(p) for p in answer.passages],
            # Only what the answer cites or is supported by; empty means "인용 없음 / no citation".
            "citations": [
                {"id": cid, "title": by_id[cid].title if cid in by_id else "", **basis.get(cid, {"how": "bracket", "support": 0.0})}
                for cid in answer.citations
            ],
            "confidence": round(float(answer.confidence), 4),
            "confidence_label": label,
            "confidence_explanation": self.explain_confidence(answer, label),
            "refused": bool(answer.refused),
            "used_retrieval": bool(answer.used_retrieval),
            "latency_s": round(float(answer.latency_s), 3),
        }

    def confidence_label(self, answer: Answer) -> str:
        if answer.refused:
            return "low"
        if answer.confidence >= self.settings.confidence_high:
            return "high"
        if answer.confidence >= self.settings.confidence_medium:
            return "medium"
        return "low"

    def explain_confidence(self, answer: Answer, label: str) -> dict[str, str]:
        """One sentence per language saying where the confidence comes from."""
        names = {"high": ("높음", "high"), "medium": ("보통", "medium"), "low": ("낮음", "low")}
        ko_label, en_label = names[label]
        if answer.refused:
            return {
                "ko": "KB에서 충분한 근거를 찾지 못해 답변을 보류했습니다.",
                "en": "No sufficient evidence was found in the KB, so the assistant declined to answer.",
            }
        if not answer.used_retrieval or not answer.passages:
            return {
                "ko": f"문서 검색 없이 모델 지식만으로 답했습니다 (신뢰도 {ko_label}). 사실 확인이 필요합니다.",
                "en": f"Answered from model knowledge without retrieval ({en_label}); verify the facts.",
            }
        n, c = len(answer.passages), len(answer.citations)
        # `confidence` is the retriever's calibrated probability that a relevant document
        # was found (aldlab.rag.confidence), not a raw fusion score, so it is what we show.
        return {
            "ko": (
                f"관련 문서 {n}개를 찾았고 검색 신뢰도(보정된 확률)는 {answer.confidence:.2f} ({ko_label})입니다. "
                + (f"답변이 문서 {c}개를 인용했습니다." if c else "답변이 문서를 인용하지 않았습니다.")
            ),
            "en": (
                f"{n} relevant passages found; calibrated retrieval confidence {answer.confidence:.2f} ({en_label}). "
                + (f"The answer cites {c} document(s)." if c else "The answer cites no document.")
            ),
        }

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
            self.docs.invalidate()

    def context_snapshot(self, ids: list[str]) -> list[dict[str, Any]] | None:
        """Texts of the logged context ids, as the KB has them now (None if any is gone)."""
        docs = [self.document(i) for i in ids]
        if any(d is None for d in docs):
            return None
        return [{"id": d.id, "title": d.title, "text": d.text} for d in docs if d is not None]

    def document(self, doc_id: str) -> Document | None:
        self.load_documents()
        assert self.docs is not None
        return self.docs.get(doc_id)

    def reload_function(self) -> Callable[[], Any]:
        """The assistant's KB reload.

        The real Assistant has `reload_if_changed()`: it builds a new retriever and swaps
        it in atomically, so answers keep using the old index meanwhile; fakes (and future
        versions) may offer `reload()`.
        """
        fn = getattr(self.assistant, "reload", None) or getattr(self.assistant, "reload_if_changed", None)
        if fn is None:
            raise ApiError(
                501, "reload_unsupported", "이 어시스턴트는 재적재를 지원하지 않습니다.", "This assistant cannot reload."
            )
        return fn


class Reloader:
    """Rebuilds the index in the background, one rebuild at a time, coalescing requests.

    Rebuilding the shipped KB's index after one edit took ~140 s on the 2-core CPU box
    (dense embeddings + refusal calibration), far too long to hold an admin's request or
    the generation worker. Edits therefore return at once; N edits during a rebuild cause
    one more rebuild, not N. `wait=True` callers (tests, the reload button) await it.
    """

    def __init__(self, service: Service) -> None:
        self.service = service
        self._task: asyncio.Task[None] | None = None
        self._dirty = False
        self.last: dict[str, Any] = {"ok": None, "seconds": None, "error": None, "finished_at": None}

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def request(self) -> asyncio.Task[None]:
        fn = self.service.reload_function()  # fail fast (501) when unsupported
        self._dirty = True
        if not self.running:
            self._task = asyncio.create_task(self._run(fn))
        assert self._task is not None
        return self._task

    async def _run(self, fn: Callable[[], Any]) -> None:
        while self._dirty:
            self._dirty = False
            started = time.perf_counter()
            try:
                await anyio.to_thread.run_sync(fn)
                self.last = {"ok": True, "seconds": round(time.perf_counter() - started, 3), "error": None}
            except Exception as exc:  # noqa: BLE001 - reported via /api/health and the reload route
                log.exception("index reload failed")
                message = exc.render() if isinstance(exc, UserError) else f"{type(exc).__name__}"
                message = redact_paths(message, Path(self.service.settings.kb) if self.service.settings.kb else None)
                self.last = {"ok": False, "seconds": round(time.perf_counter() - started, 3), "error": message}
            self.last["finished_at"] = time.time()
            self.service._models = None

    def status(self) -> dict[str, Any]:
        return {"running": self.running, **self.last}


@dataclass(frozen=True)
class LoggedRef:
    """A logged answer's id and the secret token only its asker receives."""

    answer_id: str
    token: str


#: Retention runs on the first logged answer and then every this many.
RETENTION_EVERY = 200


def redact_paths(text: str, kb: Path | None) -> str:
    """Error text without the server's absolute paths (KB dir -> '<kb>')."""
    if kb is not None:
        for prefix in {str(kb.resolve()), str(kb)}:
            text = text.replace(prefix, "<kb>")
    return re.sub(r"(?<![\w<])/(?:[\w.-]+/)+", "", text)


def kb_unavailable(exc: UserError, kb: Path | None) -> ApiError:
    loc = redact_paths(exc.location(), kb)
    prefix = f"{loc}: " if loc else ""
    return ApiError(
        503,
        "kb_unavailable",
        prefix + redact_paths(exc.ko, kb),
        prefix + redact_paths(exc.en, kb),
        hint="관리자에게 알리세요: KB 파일 검증 실패 / tell the admin: the KB files do not validate",
    )


def finish_reason(usage: dict[str, Any], query: PreparedQuery) -> str:
    """"length" when the reply used its whole max_tokens budget (it was cut), else "stop"."""
    limit = query.kwargs.get("max_new_tokens")
    return "length" if limit and usage["completion_tokens"] >= limit else "stop"


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


def context_json(p: Any) -> dict[str, Any]:
    """A retrieved passage as the API shows it."""
    return {"id": p.id, "title": p.title, "text": p.text, "score": round(float(p.score), 4), "topic": p.topic}


class TicketedStream(StreamingResponse):
    """A streaming response holding a queue ticket until its stream has taken it over."""

    def __init__(self, content: Any, worker: GenerationWorker, ticket: Ticket) -> None:
        super().__init__(content, media_type="text/event-stream", headers=SSE_HEADERS)
        self.worker = worker
        self.ticket = ticket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self.worker.reserved(self.ticket):
            await super().__call__(scope, receive, send)


def client_host(request: Request) -> str:
    return request.client.host if request.client else ""


def sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n".encode()


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def internal_error_body(exc: BaseException) -> dict[str, Any]:
    """Error body for failures after a stream started (status is already 200)."""
    if isinstance(exc, UserError):
        return user_error_body(exc)
    if isinstance(exc, ApiError):
        return error_body(exc.code, exc.ko, exc.en, exc.hint)
    if isinstance(exc, WorkerBusy):
        return error_body("server_busy", "요청이 많아 잠시 후 다시 시도하세요.", "The server is busy; retry shortly.")
    log.error("error while streaming", exc_info=exc)
    return error_body("internal_error", "서버 내부 오류입니다.", "Internal server error.")


# --------------------------------------------------------------------------- app


def create_app(assistant: Any, store: Any, settings: ServeSettings) -> FastAPI:
    """Build the FastAPI app around an assistant, a `aldlab.store.Store` and settings."""
    service = Service(assistant, store, settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        service.worker.shutdown()

    app = FastAPI(
        title="aldlab",
        version=__version__,
        docs_url=None,  # Swagger UI loads scripts from a CDN: offline and CSP say no
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Outermost: a request for another Host or with a non-JSON body does no work at all.
    app.add_middleware(GuardMiddleware, hosts=allowed_hosts(settings.host, settings.allowed_hosts))
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Admin-Token", "X-Aldlab-Actor"],
        )

    add_public_routes(app, service)
    add_openai_routes(app, service)
    add_admin_routes(app, service)
    add_ui_routes(app)
    return app


def api_key_guard(service: Service) -> Callable[[Request], None]:
    """Dependency: with ALDLAB_API_KEY set, the request needs `Authorization: Bearer <key>`."""

    def check(request: Request) -> None:
        expected = service.settings.api_key
        if expected and not token_matches(bearer_token(request.headers), expected):
            raise ApiError(
                401,
                "invalid_api_key",
                "API 키가 없거나 올바르지 않습니다 (Authorization: Bearer <ALDLAB_API_KEY>).",
                "Missing or invalid API key (Authorization: Bearer <ALDLAB_API_KEY>).",
            )

    return check


def add_public_routes(app: FastAPI, service: Service) -> None:
    keyed = [Depends(api_key_guard(service))]
    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        try:
            models, status = await service.model_names(), "ok"
        except ApiError:
            models, status = [], "degraded"  # the remote LLM server is unreachable
        return {
            "status": status,
            "version": __version__,
            "models": models,
            "default_model": await service.default_model() if models else "base",
            # The web UI warns when only the embedded base model (not instruction-tuned) answers.
            "base_model_warning": bool(service.settings.base_model_warning) and models == ["base"],
            "pending": service.worker.pending,
            "reload": service.reloader.status(),
            "admin": bool(service.settings.admin_token),
            "api_key_required": bool(service.settings.api_key),
            "uptime_s": round(time.time() - service.started, 1),
        }

    @app.post("/api/ask", response_model=None, dependencies=keyed)
    async def ask(body: AskRequest, request: Request, stream: bool = Query(default=False)) -> Any:
        query = await service.validate_query(
            body.question,
            model=body.model,
            history=[t.model_dump() for t in body.history],
            top_k=body.top_k,
            max_new_tokens=body.max_new_tokens,
            use_retrieval=body.use_retrieval,
            filter_keyword=body.filter_keyword,
            context_only=body.context_only,
        )
        client = client_host(request)
        ticket = service.admit(client)  # 503/429 now, before any response starts
        if stream or body.stream:
            return TicketedStream(ask_events(service, query, client, ticket), service.worker, ticket)
        with service.worker.reserved(ticket):
            answer = await service.answer(query, ticket)
        ref = await service.log_answer(query, answer, client)
        return service.answer_payload(answer, ref)

    @app.post("/api/feedback", dependencies=keyed)
    async def feedback(body: FeedbackRequest) -> dict[str, Any]:
        """Pending feedback from the client that asked (its answer token proves it)."""

        for name in ("comment", "correction"):
            check_text(name, getattr(body, name))

        def store_feedback() -> int:
            logged = service.store.get_answer(body.answer_id)
            contexts = service.context_snapshot(logged.context_ids) if logged is not None else None
            return service.store.add_feedback(
                body.answer_id, body.rating, body.comment, body.correction, token=body.answer_token, contexts=contexts
            )

        try:
            row_id = await anyio.to_thread.run_sync(store_feedback)
        except FeedbackForbidden as exc:
            raise ApiError(403, "forbidden", exc.ko, exc.en, hint=exc.hint) from exc
        except UserError as exc:
            raise ApiError(404, "unknown_answer", exc.ko, exc.en, hint=exc.hint) from exc
        return {"ok": True, "feedback_id": row_id, "answer_id": body.answer_id, "status": "pending"}

    @app.get("/api/documents/{doc_id}")
    async def document(doc_id: str) -> dict[str, Any]:
        doc = service.document(doc_id)  # from memory: no KB read per call
        if doc is None:
            raise ApiError(404, "document_not_found", "문서를 찾을 수 없습니다.", "Document not found.")
        return doc.to_json()


async def ask_events(service: Service, query: PreparedQuery, client: str, ticket: Ticket) -> AsyncIterator[bytes]:
    """SSE for /api/ask, in order:

    `{"type":"status","state":"queued","position":N,"elapsed_s"}` at once;
    `{"type":"contexts","contexts":[...],"confidence"}` as soon as retrieval is done;
    more `status` events (position every second while queued, then "generating");
    `{"type":"token","text"}`...; finally `{"type":"answer",...}` (or `{"type":"error"}`).
    """
    final: Answer | None = None
    try:
        yield sse({"type": "status", "model": query.model, **service.worker.status(ticket).to_json()})
        preview = await service.preview(query)
        if preview is not None:
            yield sse({"type": "contexts", **preview})
        async for item in service.stream(query, ticket, report_status=True):
            if isinstance(item, QueueStatus):
                yield sse({"type": "status", "model": query.model, **item.to_json()})
            elif isinstance(item, str):
                yield sse({"type": "token", "text": item})
            else:
                final = item
        if final is None:
            raise RuntimeError("stream ended without an Answer")
        ref = await service.log_answer(query, final, client)
        yield sse({"type": "answer", **service.answer_payload(final, ref)})
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported to the client as an SSE error event
        yield sse({"type": "error", **internal_error_body(exc)})


# --------------------------------------------------------------------------- OpenAI-compatible


async def chat_query(service: Service, body: ChatCompletionRequest) -> PreparedQuery:
    """Last user message = question; earlier user/assistant turns = history.

    Client `system` messages are ignored: the system prompt is fixed in aldlab.prompts so
    the service answers exactly as the model was trained and evaluated.
    """
    if body.n not in (None, 1):
        raise ApiError(400, "invalid_request", "n은 1만 지원합니다.", "Only n=1 is supported.")
    messages = [m for m in body.messages if m.role in ("user", "assistant")]
    if not messages or messages[-1].role != "user":
        raise ApiError(
            400, "invalid_request", "마지막 메시지는 user 역할이어야 합니다.", "The last message must have role 'user'."
        )
    history = [{"role": m.role, "content": m.text()} for m in messages[:-1]]
    options = body.aldlab or {}
    top_k = options.get("top_k")
    if top_k is not None and not isinstance(top_k, int):
        raise ApiError(400, "invalid_top_k", "top_k는 정수여야 합니다.", "top_k must be an integer.")
    return await service.validate_query(
        messages[-1].text(),
        model=body.model,
        history=history,
        top_k=top_k,
        max_new_tokens=body.max_completion_tokens or body.max_tokens,
        use_retrieval=bool(options.get("use_retrieval", True)),
        filter_keyword=options.get("filter_keyword") if isinstance(options.get("filter_keyword"), str) else None,
    )


def add_openai_routes(app: FastAPI, service: Service) -> None:
    keyed = [Depends(api_key_guard(service))]

    @app.get("/v1/models", dependencies=keyed)
    async def models() -> dict[str, Any]:
        created = int(service.started)
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": created, "owned_by": "aldlab"} for name in await service.model_names()],
        }

    @app.post("/v1/chat/completions", response_model=None, dependencies=keyed)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        query = await chat_query(service, body)
        client = client_host(request)
        ticket = service.admit(client)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return TicketedStream(
                chat_events(service, query, client, completion_id, created, ticket, include_usage),
                service.worker,
                ticket,
            )
        with service.worker.reserved(ticket):
            answer = await service.answer(query, ticket)
        ref = await service.log_answer(query, answer, client)
        usage = service.usage(query, answer)
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": query.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text},
                    "finish_reason": finish_reason(usage, query),
                }
            ],
            "usage": usage,
            "aldlab": service.answer_payload(answer, ref),
        }


async def chat_events(
    service: Service,
    query: PreparedQuery,
    client: str,
    completion_id: str,
    created: int,
    ticket: Ticket,
    include_usage: bool = False,
) -> AsyncIterator[bytes]:
    """OpenAI streaming: role chunk, content chunks, a final chunk with `aldlab`, then with
    `stream_options.include_usage` a chunk with empty `choices` and `usage`, then [DONE]."""

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        return sse(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": query.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
        )

    final: Answer | None = None
    try:
        yield chunk({"role": "assistant", "content": ""})
        async for item in service.stream(query, ticket):
            if isinstance(item, str):
                if item:
                    yield chunk({"content": item})
            else:
                final = item
        if final is None:
            raise RuntimeError("stream ended without an Answer")
        ref = await service.log_answer(query, final, client)
        usage = service.usage(query, final)
        yield chunk({}, finish_reason(usage, query), aldlab=service.answer_payload(final, ref))
        if include_usage:
            yield sse(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": query.model,
                    "choices": [],
                    "usage": usage,
                }
            )
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the openai client raises on an `error` chunk
        yield sse(internal_error_body(exc))
    yield sse("[DONE]")


# --------------------------------------------------------------------------- admin

_ACTOR = re.compile(r"[^\w .@-]")


def admin_guard(service: Service) -> Callable[[Request], str]:
    """Dependency: the admin token must match; returns the actor name for the audit log."""

    def check(request: Request) -> str:
        expected = service.settings.admin_token
        client = client_host(request)
        wait = service.admin_failures.blocked_for(client)
        if wait:
            raise ApiError(
                429,
                "too_many_failures",
                f"잘못된 관리자 토큰이 너무 많습니다. {wait}초 뒤에 다시 시도하세요.",
                f"Too many wrong admin tokens; retry in {wait} s.",
                retry_after=wait,
            )
        if not expected:
            raise ApiError(
                403,
                "admin_disabled",
                "관리자 기능이 꺼져 있습니다 (ALDLAB_ADMIN_TOKEN 미설정).",
                "Admin routes are disabled (ALDLAB_ADMIN_TOKEN is not set).",
            )
        given = bearer_token(request.headers) or request.headers.get("x-admin-token", "").encode("latin-1", "replace")
        if not token_matches(given, expected):
            service.admin_failures.fail(client)
            raise ApiError(401, "unauthorized", "관리자 토큰이 올바르지 않습니다.", "Invalid admin token.")
        service.admin_failures.succeed(client)
        actor = _ACTOR.sub("", request.headers.get("x-aldlab-actor", ""))[:64].strip()
        return actor or "admin"

    return check


def add_admin_routes(app: FastAPI, service: Service) -> None:
    admin = Depends(admin_guard(service))

    async def audit(actor: str, request: Request, action: str, doc_id: str | None, before: Any, after: Any) -> None:
        await anyio.to_thread.run_sync(
            partial(
                service.store.record_kb_edit,
                actor=actor,
                action=action,
                doc_id=doc_id,
                before=before,
                after=after,
                client=client_host(request),
            )
        )

    async def reload_after_edit(do_reload: bool, wait: bool) -> dict[str, Any]:
        """Start (or join) a background index rebuild; with `wait`, return after it."""
        if not do_reload:
            return {"reload": {"scheduled": False, **service.reloader.status()}}
        task = service.reloader.request()
        if wait:
            await asyncio.shield(task)
        return {"reload": {"scheduled": True, **service.reloader.status()}}

    @app.get("/api/admin/documents")
    async def list_documents(
        actor: str = admin,
        q: str = Query(default="", max_length=200),
        limit: int = Query(default=50, ge=1, le=500),
        offset: int = Query(default=0, ge=0),
    ) -> dict[str, Any]:
        documents = await anyio.to_thread.run_sync(service.load_documents)
        needle = q.casefold().strip()
        if needle:
            documents = [
                d
                for d in documents
                if needle in d.id.casefold()
                or needle in d.title.casefold()
                or needle in d.text.casefold()
                or any(needle in k.casefold() for k in d.keywords)
            ]
        return {"total": len(documents), "documents": [d.to_json() for d in documents[offset : offset + limit]]}

    @app.post("/api/admin/documents", status_code=201)
    async def add_doc(body: DocumentIn, request: Request, actor: str = admin, reload: bool = True, wait: bool = False) -> dict[str, Any]:
        from aldlab.kb import edit

        kb_dir = service.editable_kb_dir()
        service.check_topic_path(kb_dir, body.topic)
        doc = Document(**body.model_dump())
        async with service.edit_lock:  # edit + audit as one step: audit rows chain before -> after
            added = await anyio.to_thread.run_sync(edit.add_document, kb_dir, doc)
            service.edited()
            await audit(actor, request, "add", added.id, None, added.to_json())
        return {"document": added.to_json(), **await reload_after_edit(reload, wait)}

    @app.put("/api/admin/documents/{doc_id}")
    async def update_doc(
        doc_id: DocId,
        body: DocumentChanges,
        request: Request,
        actor: str = admin,
        reload: bool = True,
        wait: bool = False,
    ) -> dict[str, Any]:
        from aldlab.kb import edit

        kb_dir = service.editable_kb_dir()
        changes = body.model_dump(exclude_none=True)
        service.check_topic_path(kb_dir, body.topic)
        if not changes:
            raise ApiError(400, "invalid_request", "바꿀 필드가 없습니다.", "No fields to change.")
        async with service.edit_lock:
            before, after = await anyio.to_thread.run_sync(edit.update_document, kb_dir, doc_id, changes)
            service.edited()
            await audit(actor, request, "update", doc_id, before.to_json(), after.to_json())
        return {"before": before.to_json(), "document": after.to_json(), **await reload_after_edit(reload, wait)}

    @app.delete("/api/admin/documents/{doc_id}")
    async def delete_doc(doc_id: DocId, request: Request, actor: str = admin, reload: bool = True, wait: bool = False) -> dict[str, Any]:
        from aldlab.kb import edit

        kb_dir = service.editable_kb_dir()
        async with service.edit_lock:
            removed = await anyio.to_thread.run_sync(edit.delete_document, kb_dir, doc_id)
            service.edited()
            await audit(actor, request, "delete", doc_id, removed.to_json(), None)
        return {"deleted": removed.to_json(), **await reload_after_edit(reload, wait)}

    @app.post("/api/admin/reload")
    async def reload_index(request: Request, actor: str = admin, wait: bool = True) -> dict[str, Any]:
        await audit(actor, request, "reload", None, None, None)
        return await reload_after_edit(True, wait)

    @app.get("/api/admin/audit")
    async def audit_log(
        actor: str = admin, doc_id: str | None = None, limit: int = Query(default=100, ge=1, le=1000)
    ) -> dict[str, Any]:
        rows = await anyio.to_thread.run_sync(partial(service.store.list_kb_edits, doc_id=doc_id, limit=limit))
        return {"edits": rows}

    @app.get("/api/admin/feedback")
    async def list_feedback(
        actor: str = admin,
        status: Literal["pending", "approved", "rejected", "all"] = "pending",
        limit: int = Query(default=50, ge=1, le=500),
        offset: int = Query(default=0, ge=0),
    ) -> dict[str, Any]:
        """The review queue: each item with question, answer, contexts and history."""

        def page() -> dict[str, Any]:
            wanted = None if status == "all" else status
            rows = list(service.store.iter_feedback_rows(status=wanted, limit=limit, offset=offset))
            return {"total": service.store.count_feedback(wanted), "items": rows}

        return await anyio.to_thread.run_sync(page)

    @app.post("/api/admin/feedback/{feedback_id}/{decision}")
    async def review(
        feedback_id: int, decision: Literal["approve", "reject"], body: ReviewRequest | None = None, actor: str = admin
    ) -> dict[str, Any]:
        status = "approved" if decision == "approve" else "rejected"
        note = body.note if body else None
        row = await anyio.to_thread.run_sync(partial(service.store.review_feedback, feedback_id, status, actor, note))
        return {"item": row}

    @app.get("/api/admin/feedback/export", response_model=None)
    async def export_feedback(actor: str = admin) -> Any:
        """Approved feedback as JSON Lines, streamed (what `aldlab data build --feedback` reads)."""
        rows = service.store.iter_feedback_rows(status="approved")  # reads in batches, in a thread
        return StreamingResponse(
            (json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
            media_type="application/x-ndjson; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="aldlab-feedback.jsonl"'},
        )


# --------------------------------------------------------------------------- web UI


def add_ui_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
