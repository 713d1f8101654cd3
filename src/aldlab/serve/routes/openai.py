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
from aldlab.serve.deps import ApiKey, ClientDep, ServiceDep
from aldlab.serve.errors import ApiError, internal_error_body
from aldlab.serve.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    ModelCard,
    ModelList,
    Usage,
)
from aldlab.serve.service import PreparedQuery, Service
from aldlab.serve.sse import TicketedStream, sse
from aldlab.serve.worker import Ticket

router = APIRouter(dependencies=[ApiKey])


@router.get("/v1/models")
async def models(service: ServiceDep) -> ModelList:
    created = int(service.started)
    return ModelList(data=[ModelCard(id=name, created=created) for name in await service.model_names()])


@router.post("/v1/chat/completions", response_model=ChatCompletion)
async def chat_completions(
    body: ChatCompletionRequest, service: ServiceDep, client: ClientDep
) -> ChatCompletion | TicketedStream:
    query = await chat_query(service, body)
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
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=query.model,
        choices=[ChatChoice(message=AssistantMessage(content=answer.text), finish_reason=finish_reason(usage, query))],
        usage=usage,
        aldlab=service.answer_payload(answer, ref),
    )


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


def finish_reason(usage: Usage, query: PreparedQuery) -> Literal["stop", "length"]:
    """"length" when the reply used its whole max_tokens budget (it was cut), else "stop"."""
    limit = query.options.max_new_tokens
    return "length" if limit and usage.completion_tokens >= limit else "stop"


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
        async for item in service.stream(await service.plan(query), ticket):
            if isinstance(item, str):
                if item:
                    yield chunk({"content": item})
            else:
                final = item
        if final is None:
            raise RuntimeError("stream ended without an Answer")
        ref = await service.log_answer(query, final, client)
        usage = service.usage(query, final)
        yield chunk({}, finish_reason(usage, query), aldlab=service.answer_payload(final, ref).model_dump())
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
