"""The public question API: health, ask (JSON or SSE), and a KB document by id."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query

from aldlab import __version__
from aldlab.rag.types import Answer
from aldlab.serve.deps import ApiKey, ClientDep, ServiceDep
from aldlab.serve.errors import ApiError, internal_error_body
from aldlab.serve.schemas import AnswerOut, AskRequest, HealthOut
from aldlab.serve.service import PreparedQuery, Service
from aldlab.serve.sse import TicketedStream, sse
from aldlab.serve.worker import QueueStatus, Ticket

router = APIRouter()


@router.get("/api/health")
async def health(service: ServiceDep) -> HealthOut:
    try:
        models, status = await service.model_names(), "ok"
    except ApiError:
        models, status = [], "degraded"  # the remote LLM server is unreachable
    return HealthOut(
        status=status,
        version=__version__,
        models=models,
        default_model=await service.default_model() if models else "base",
        base_model_warning=bool(service.settings.base_model_warning) and models == ["base"],
        pending=service.worker.pending,
        reload=service.reloader.status(),
        admin=bool(service.settings.admin_token),
        api_key_required=bool(service.settings.api_key),
        uptime_s=round(time.time() - service.started, 1),
    )


@router.post("/api/ask", response_model=AnswerOut, dependencies=[ApiKey])
async def ask(
    body: AskRequest, service: ServiceDep, client: ClientDep, stream: Annotated[bool, Query()] = False
) -> AnswerOut | TicketedStream:
    """One answer as JSON, or with `stream` as server-sent events (see `ask_events`)."""
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
    ticket = service.admit(client)  # 503/429 now, before any response starts
    if stream or body.stream:
        return TicketedStream(ask_events(service, query, client, ticket), service.worker, ticket)
    with service.worker.reserved(ticket):
        answer = await service.answer(query, ticket)
    ref = await service.log_answer(query, answer, client)
    return service.answer_payload(answer, ref)


@router.get("/api/documents/{doc_id}")
async def document(doc_id: str, service: ServiceDep) -> dict[str, Any]:
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
        plan = await service.plan(query)  # retrieval, once: shown now, generated from later
        preview = service.preview(plan)
        if preview is not None:
            yield sse({"type": "contexts", **preview})
        async for item in service.stream(plan, ticket, report_status=True):
            if isinstance(item, QueueStatus):
                yield sse({"type": "status", "model": query.model, **item.to_json()})
            elif isinstance(item, str):
                yield sse({"type": "token", "text": item})
            else:
                final = item
        if final is None:
            raise RuntimeError("stream ended without an Answer")
        ref = await service.log_answer(query, final, client)
        yield sse({"type": "answer", **service.answer_payload(final, ref).model_dump()})
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported to the client as an SSE error event
        yield sse({"type": "error", **internal_error_body(exc)})
