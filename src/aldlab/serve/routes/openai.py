"""OpenAI-compatible routes: `/v1/models` and `/v1/chat/completions` (JSON or SSE).

Every route here needs the API key when one is configured (`ApiKey` on the router).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter

from aldlab.rag.types import Answer
from aldlab.serve.answers import Answers, PreparedQuery
from aldlab.serve.deps import AnswersDep, ApiKey, ClientDep, ModelsDep, SettingsDep, StartedAt
from aldlab.serve.errors import ApiError, internal_error_body
from aldlab.serve.payload import answer_payload
from aldlab.serve.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    ModelCard,
    ModelList,
    Usage,
)
from aldlab.serve.settings import ServeSettings
from aldlab.serve.sse import TicketedStream, sse
from aldlab.serve.worker import Ticket

router = APIRouter(dependencies=[ApiKey])


@router.get("/v1/models")
async def models(available: ModelsDep, started: StartedAt) -> ModelList:
    created = int(started)
    return ModelList(data=[ModelCard(id=name, created=created) for name in await available.names()])


@router.post("/v1/chat/completions", response_model=ChatCompletion)
async def chat_completions(
    body: ChatCompletionRequest, answers: AnswersDep, settings: SettingsDep, client: ClientDep
) -> ChatCompletion | TicketedStream:
    query = await chat_query(answers, body)
    ticket = answers.admit(client)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return TicketedStream(
            chat_events(answers, settings, query, client, completion_id, created, ticket, include_usage),
            answers.worker,
            ticket,
        )
    with answers.worker.reserved(ticket):
        answer = await answers.answer(query, ticket)
    ref = await answers.log_answer(query, answer, client)
    usage = answers.usage(query, answer)
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=query.model,
        choices=[ChatChoice(message=AssistantMessage(content=answer.text), finish_reason=finish_reason(usage, query))],
        usage=usage,
        aldlab=answer_payload(answer, ref, settings),
    )


async def chat_query(answers: Answers, body: ChatCompletionRequest) -> PreparedQuery:
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
    return await answers.validate_query(
        messages[-1].text(),
        model=body.model,
        history=history,
        top_k=top_k,
        max_new_tokens=body.max_completion_tokens or body.max_tokens,
        use_retrieval=bool(options.get("use_retrieval", True)),
        filter_keyword=options.get("filter_keyword") if isinstance(options.get("filter_keyword"), str) else None,
    )


def finish_reason(usage: Usage, query: PreparedQuery) -> Literal["stop", "length"]:
    """"length" when the reply used its whole max_tokens budget (it was cut), else "stop"."""
    limit = query.options.max_new_tokens
    return "length" if limit and usage.completion_tokens >= limit else "stop"


async def chat_events(
    answers: Answers,
    settings: ServeSettings,
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
        yield chunk({}, finish_reason(usage, query), aldlab=answer_payload(final, ref, settings).model_dump())
        if include_usage:
            yield sse(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": query.model,
                    "choices": [],
                    "usage": usage.model_dump(),
                }
            )
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the openai client raises on an `error` chunk
        yield sse(internal_error_body(exc))
    yield sse("[DONE]")
