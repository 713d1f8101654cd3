"""The public question API: health, ask (JSON or SSE), and a KB document by id.

With an API key set, only the health check is open (the web UI reads it to ask for a key).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query

from aldlab import __version__
from aldlab.rag.types import Answer
from aldlab.serve.answers import Answers, PreparedQuery
from aldlab.serve.deps import AnswersDep, ApiKey, ClientDep, KbDep, ModelsDep, SettingsDep, StartedAt, SwapperDep
from aldlab.serve.errors import ApiError, internal_error_body
from aldlab.serve.payload import answer_payload
from aldlab.serve.schemas import AnswerOut, AskRequest, HealthOut
from aldlab.serve.settings import ServeSettings
from aldlab.serve.sse import TicketedStream, sse
from aldlab.serve.worker import QueueStatus, Ticket

router = APIRouter()


@router.get("/api/health")
async def health(
    models: ModelsDep, answers: AnswersDep, kb: KbDep, settings: SettingsDep, started: StartedAt, swapper: SwapperDep
) -> HealthOut:
    try:
        names, status = await models.names(), "ok"
    except ApiError:
        names, status = [], "degraded"  # the remote LLM server is unreachable
    default = await models.default() if names else "base"
    return HealthOut(
        status=status,
        version=__version__,
        models=names,
        default_model=default,
        model_version=models.version_of(default),
        model_swap_error=swapper.last["error"] if swapper is not None else None,
        base_model_warning=bool(settings.base_model_warning) and names == ["base"],
        pending=answers.worker.pending,
        reload=kb.reloader.status(),
        admin=bool(settings.admin_token),
        api_key_required=bool(settings.api_key),
        uptime_s=round(time.time() - started, 1),
    )


@router.post("/api/ask", response_model=AnswerOut, dependencies=[ApiKey])
async def ask(
    body: AskRequest,
    answers: AnswersDep,
    settings: SettingsDep,
    client: ClientDep,
    stream: Annotated[bool, Query()] = False,
) -> AnswerOut | TicketedStream:
    """One answer as JSON, or with `stream` as server-sent events (see `ask_events`)."""
    query = await answers.validate_query(
        body.question,
        model=body.model,
        history=[t.model_dump() for t in body.history],
        top_k=body.top_k,
        max_new_tokens=body.max_new_tokens,
        use_retrieval=body.use_retrieval,
        filter_keyword=body.filter_keyword,
        context_only=body.context_only,
    )
    ticket = answers.admit(client)  # 503/429 now, before any response starts
    if stream or body.stream:
        return TicketedStream(ask_events(answers, settings, query, client, ticket), answers.worker, ticket)
    with answers.worker.reserved(ticket):
        answer = await answers.answer(query, ticket)
    ref = await answers.log_answer(query, answer, client)
    return answer_payload(answer, ref, settings)


@router.get("/api/documents/{doc_id}", dependencies=[ApiKey])
async def document(doc_id: str, kb: KbDep) -> dict[str, Any]:
    doc = kb.document(doc_id)  # from memory: no KB read per call
    if doc is None:
        raise ApiError(404, "document_not_found", "문서를 찾을 수 없습니다.", "Document not found.")
    return doc.to_json()


async def ask_events(
    answers: Answers, settings: ServeSettings, query: PreparedQuery, client: str, ticket: Ticket
) -> AsyncIterator[bytes]:
    """SSE for /api/ask, in order:

    `{"type":"status","state":"queued","position":N,"elapsed_s"}` at once;
    `{"type":"contexts","contexts":[...],"confidence"}` as soon as retrieval is done;
    more `status` events (position every second while queued, then "generating");
    `{"type":"token","text"}`...; finally `{"type":"answer",...}` (or `{"type":"error"}`).
    """
    final: Answer | None = None
    try:
        yield sse({"type": "status", "model": query.model, **answers.worker.status(ticket).to_json()})
        plan = await answers.plan(query)  # retrieval, once: shown now, generated from later
        preview = answers.preview(plan)
        if preview is not None:
            yield sse({"type": "contexts", **preview})
        async for item in answers.stream(plan, ticket, report_status=True):
            if isinstance(item, QueueStatus):
                yield sse({"type": "status", "model": query.model, **item.to_json()})
            elif isinstance(item, str):
                yield sse({"type": "token", "text": item})
            else:
                final = item
        if final is None:
            raise RuntimeError("stream ended without an Answer")
        ref = await answers.log_answer(query, final, client)
        yield sse({"type": "answer", **answer_payload(final, ref, settings).model_dump()})
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported to the client as an SSE error event
        yield sse({"type": "error", **internal_error_body(exc)})
