"""OpenAI-compatible routes: `/v1/models` and `/v1/chat/completions` (JSON or SSE).

Every route here needs the API key when one is configured (`ApiKey` on the router).
Written to be a good backend for Open WebUI (issue 25): the default model is listed first
and named, its task prompts (title, tags, ...) get the JSON it parses (`serve.webui_tasks`),
the cited documents are listed at the end of `content` (a client that shows only `content`
cannot read the `aldlab` extension), and request fields that are not applied (`system`
messages, temperature, ...) are said so in `aldlab`, never dropped silently.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from aldlab.rag.types import Answer
from aldlab.serve.answers import Answers, PreparedQuery
from aldlab.serve.deps import AnswersDep, ApiKey, ClientDep, KbDep, ModelsDep, SettingsDep, StartedAt
from aldlab.serve.errors import ApiError, internal_error_body
from aldlab.serve.kb_admin import KbAdmin
from aldlab.serve.models import Models
from aldlab.serve.payload import answer_payload
from aldlab.serve.schemas import (
    AssistantMessage,
    Bilingual,
    ChatAnswerOut,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    ModelCard,
    ModelList,
    RequestReading,
    TaskReplyOut,
    Usage,
)
from aldlab.serve.settings import ServeSettings
from aldlab.serve.sse import SSE_HEADERS, TicketedStream, sse
from aldlab.serve.webui_tasks import ClientTask, detect_task, task_reply
from aldlab.serve.worker import Ticket

router = APIRouter(dependencies=[ApiKey])

#: What `aldlab` says about a task prompt's reply.
TASK_NOTE = Bilingual(
    ko="Open WebUI 작업 프롬프트(제목·태그 등)로 인식해 검색·모델 없이 규칙으로 답했습니다.",
    en="Recognised as an Open WebUI task prompt (title, tags, ...) and answered by rules, without retrieval or the model.",
)


@router.get("/v1/models")
async def models(available: ModelsDep, started: StartedAt) -> ModelList:
    """The default model first (Open WebUI preselects the first), each with a display name."""
    created = int(started)
    names = await available.names()
    default = await available.default()
    return ModelList(data=[ModelCard(id=n, created=created, name=display_name(n, default)) for n in names])


def display_name(model: str, default: str) -> str:
    """The `name` Open WebUI shows: says which model is the default, which has no adapter.

    'base' is the embedded base model (not instruction-tuned), or with `--llm-url` the
    server's own model: "no adapter" is true of both.
    """
    if model == "base":
        return "aldlab base · 어댑터 없는 기반 모델 / base model, no adapter"
    suffix = " · 기본 / default" if model == default else ""
    return f"aldlab {model} · ALD 미세조정 / fine-tuned{suffix}"


@router.post("/v1/chat/completions", response_model=ChatCompletion)
async def chat_completions(
    body: ChatCompletionRequest,
    answers: AnswersDep,
    settings: SettingsDep,
    client: ClientDep,
    available: ModelsDep,
    kb: KbDep,
) -> ChatCompletion | StreamingResponse:
    reading = read_request(body)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    task = detect_task(last_user_text(body))
    if task is not None:
        return await task_completion(body, task, reading, answers, available, kb, completion_id, created)
    query = await chat_query(answers, body)
    sources = sources_option(body)
    ticket = answers.admit(client)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return TicketedStream(
            chat_events(
                answers, settings, query, client, completion_id, created, ticket, include_usage,
                reading=reading, sources_in_text=sources,
            ),
            answers.worker,
            ticket,
        )
    with answers.worker.reserved(ticket):
        answer = await answers.answer(query, ticket)
    ref = await answers.log_answer(query, answer, client)
    usage = answers.usage(query, answer)
    content = answer.text + (sources_text(answer) if sources else "")
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=query.model,
        choices=[ChatChoice(message=AssistantMessage(content=content), finish_reason=answer.stop_reason)],
        usage=usage,
        aldlab=chat_extension(answer_payload(answer, ref, settings).model_dump(), reading, sources),
    )


def last_user_text(body: ChatCompletionRequest) -> str:
    """The text of the last message when it is the user's ("" otherwise: chat_query says why)."""
    last = body.messages[-1]
    return last.text() if last.role == "user" else ""


def read_request(body: ChatCompletionRequest) -> RequestReading:
    """What of the request is not applied: a system message, sampling parameters.

    A client `system` message is not given to the model: the system prompt is fixed in
    aldlab.prompts, the prompt the adapter was trained and evaluated with, and another one
    would change the answers in ways no evaluation measured. Sampling is the server's
    setting (`rag.temperature`): the generators take it when they are built.
    """
    has_system = any(m.role in ("system", "developer") and m.text().strip() for m in body.messages)
    return RequestReading(
        system_message="not_used" if has_system else "none", ignored_parameters=body.unapplied_parameters()
    )


def sources_option(body: ChatCompletionRequest) -> bool:
    """`aldlab.sources_in_text` (default on): end `content` with the cited documents."""
    value = (body.aldlab or {}).get("sources_in_text", True)
    if not isinstance(value, bool):
        raise ApiError(
            400, "invalid_request", "sources_in_text는 true/false여야 합니다.", "sources_in_text must be true or false."
        )
    return value


def sources_text(answer: Answer) -> str:
    """'출처 / Sources' as Markdown lines `- id — title` of the documents the answer cites.

    Open WebUI shows only `content`, where a bare `[purge-004]` tells the reader nothing;
    "" when the answer cites nothing (a refusal lists no sources).
    """
    if not answer.citations:
        return ""
    titles = {p.id: p.title for p in answer.passages}
    lines = [f"- {cid} — {titles[cid]}" if titles.get(cid) else f"- {cid}" for cid in answer.citations]
    return "\n\n**출처 / Sources**\n" + "\n".join(lines)


def chat_extension(payload: dict[str, Any], reading: RequestReading, sources_in_text: bool) -> ChatAnswerOut:
    return ChatAnswerOut(**payload, **reading.model_dump(), sources_in_text=sources_in_text)


async def chat_query(answers: Answers, body: ChatCompletionRequest) -> PreparedQuery:
    """Last user message = question; earlier user/assistant turns = history.

    Client `system` messages are not used (`read_request` says why; `aldlab.system_message`
    tells the client).
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
    return await answers.validate_query(
        messages[-1].text(),
        model=body.model,
        history=history,
        top_k=top_k,
        max_new_tokens=body.max_completion_tokens or body.max_tokens,
        use_retrieval=bool(options.get("use_retrieval", True)),
        filter_keyword=options.get("filter_keyword") if isinstance(options.get("filter_keyword"), str) else None,
    )


# --------------------------------------------------------------------------- Open WebUI tasks


async def task_completion(
    body: ChatCompletionRequest,
    task: ClientTask,
    reading: RequestReading,
    answers: Answers,
    available: Models,
    kb: KbAdmin,
    completion_id: str,
    created: int,
) -> ChatCompletion | StreamingResponse:
    """A task prompt's reply: no retrieval, no queue, no rate-limit token, no answer log.

    Its `max_tokens` is not range-checked: Open WebUI asks for up to 1000 and the rules
    write a few dozen characters.
    """
    model = await available.check(body.model)
    reply = task_reply(task, kb_keywords(kb) if task.kind == "tags" else ())
    asked, replied = answers.count_tokens(last_user_text(body)), answers.count_tokens(reply)
    usage = Usage(prompt_tokens=asked, completion_tokens=replied, total_tokens=asked + replied)
    extension = TaskReplyOut(task=task.kind, note=TASK_NOTE, **reading.model_dump())
    if not body.stream:
        return ChatCompletion(
            id=completion_id,
            created=created,
            model=model,
            choices=[ChatChoice(message=AssistantMessage(content=reply), finish_reason="stop")],
            usage=usage,
            aldlab=extension,
        )
    chunk = chunk_maker(completion_id, created, model)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    async def events() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": ""})
        yield chunk({"content": reply})
        yield chunk({}, "stop", aldlab=extension.model_dump())
        if include_usage:
            yield usage_chunk(completion_id, created, model, usage)
        yield sse("[DONE]")

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


def kb_keywords(kb: KbAdmin) -> list[str]:
    """Every keyword of the KB's documents (specific tags); none when the KB does not load."""
    try:
        documents = kb.documents()
    except ApiError:
        return []
    return list(dict.fromkeys(k for d in documents for k in d.keywords))


# --------------------------------------------------------------------------- streaming


def chunk_maker(completion_id: str, created: int, model: str) -> Callable[..., bytes]:
    """`chunk(delta, finish=None, **extra)`: one `chat.completion.chunk` event of this completion."""

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        return sse(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
        )

    return chunk


def usage_chunk(completion_id: str, created: int, model: str, usage: Usage) -> bytes:
    """`stream_options.include_usage`: a last chunk with empty `choices` and the `usage`."""
    return sse(
        {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage.model_dump(),
        }
    )


async def chat_events(
    answers: Answers,
    settings: ServeSettings,
    query: PreparedQuery,
    client: str,
    completion_id: str,
    created: int,
    ticket: Ticket,
    include_usage: bool = False,
    *,
    reading: RequestReading | None = None,
    sources_in_text: bool = True,
) -> AsyncIterator[bytes]:
    """OpenAI streaming: role chunk, content chunks, the sources list as one more content
    chunk, a final chunk with `aldlab`, then with `stream_options.include_usage` a chunk
    with empty `choices` and `usage`, then [DONE]."""
    chunk = chunk_maker(completion_id, created, query.model)
    reading = reading or RequestReading()
    final: Answer | None = None
    try:
        yield chunk({"role": "assistant", "content": ""})
        async for item in answers.stream(await answers.plan(query), ticket):
            if isinstance(item, str):
                if item:
                    yield chunk({"content": item})
            else:
                final = item
        if final is None:
            raise RuntimeError("stream ended without an Answer")
        ref = await answers.log_answer(query, final, client)
        usage = answers.usage(query, final)
        if sources_in_text and (sources := sources_text(final)):
            yield chunk({"content": sources})
        extension = chat_extension(answer_payload(final, ref, settings).model_dump(), reading, sources_in_text)
        yield chunk({}, final.stop_reason, aldlab=extension.model_dump())
        if include_usage:
            yield usage_chunk(completion_id, created, query.model, usage)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the openai client raises on an `error` chunk
        yield sse(internal_error_body(exc))
    yield sse("[DONE]")
