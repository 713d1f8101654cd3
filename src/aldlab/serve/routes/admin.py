"""Admin routes for the KB: list, add, change, delete documents; rebuild the index; audit log.

Every route needs the admin token (`AdminActor`); every edit is written atomically by
`aldlab.kb.edit`, audited with its before/after, and followed by a background reindex.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request

from aldlab.kb.schema import Document
from aldlab.serve.deps import AdminActor, ServiceDep, client_host
from aldlab.serve.errors import ApiError
from aldlab.serve.schemas import (
    AuditPage,
    DocId,
    DocumentAdded,
    DocumentChanges,
    DocumentDeleted,
    DocumentIn,
    DocumentPage,
    DocumentUpdated,
    ReloadInfo,
    ReloadOut,
)
from aldlab.serve.service import Service

router = APIRouter(prefix="/api/admin")


async def audit(
    service: Service, actor: str, request: Request, action: str, doc_id: str | None, before: Any, after: Any
) -> None:
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


async def reload_after_edit(service: Service, do_reload: bool, wait: bool) -> ReloadInfo:
    """Start (or join) a background index rebuild; with `wait`, return after it."""
    if not do_reload:
        return ReloadInfo(scheduled=False, **service.reloader.status().model_dump())
    task = service.reloader.request()
    if wait:
        await asyncio.shield(task)
    return ReloadInfo(scheduled=True, **service.reloader.status().model_dump())


@router.get("/documents")
async def list_documents(
    service: ServiceDep,
    actor: AdminActor,
    q: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DocumentPage:
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
    return DocumentPage(total=len(documents), documents=[d.to_json() for d in documents[offset : offset + limit]])


@router.post("/documents", status_code=201)
async def add_doc(
    body: DocumentIn, request: Request, service: ServiceDep, actor: AdminActor, reload: bool = True, wait: bool = False
) -> DocumentAdded:
    from aldlab.kb import edit

    kb_dir = service.editable_kb_dir()
    service.check_topic_path(kb_dir, body.topic)
    doc = Document(**body.model_dump())
    async with service.edit_lock:  # edit + audit as one step: audit rows chain before -> after
        added = await anyio.to_thread.run_sync(edit.add_document, kb_dir, doc)
        service.edited()
        await audit(service, actor, request, "add", added.id, None, added.to_json())
    return DocumentAdded(document=added.to_json(), reload=await reload_after_edit(service, reload, wait))


@router.put("/documents/{doc_id}")
async def update_doc(
    doc_id: DocId,
    body: DocumentChanges,
    request: Request,
    service: ServiceDep,
    actor: AdminActor,
    reload: bool = True,
    wait: bool = False,
) -> DocumentUpdated:
    from aldlab.kb import edit

    kb_dir = service.editable_kb_dir()
    changes = body.model_dump(exclude_none=True)
    service.check_topic_path(kb_dir, body.topic)
    if not changes:
        raise ApiError(400, "invalid_request", "바꿀 필드가 없습니다.", "No fields to change.")
    async with service.edit_lock:
        before, after = await anyio.to_thread.run_sync(edit.update_document, kb_dir, doc_id, changes)
        service.edited()
        await audit(service, actor, request, "update", doc_id, before.to_json(), after.to_json())
    return DocumentUpdated(
        before=before.to_json(), document=after.to_json(), reload=await reload_after_edit(service, reload, wait)
    )


@router.delete("/documents/{doc_id}")
async def delete_doc(
    doc_id: DocId, request: Request, service: ServiceDep, actor: AdminActor, reload: bool = True, wait: bool = False
) -> DocumentDeleted:
    from aldlab.kb import edit

    kb_dir = service.editable_kb_dir()
    async with service.edit_lock:
        removed = await anyio.to_thread.run_sync(edit.delete_document, kb_dir, doc_id)
        service.edited()
        await audit(service, actor, request, "delete", doc_id, removed.to_json(), None)
    return DocumentDeleted(deleted=removed.to_json(), reload=await reload_after_edit(service, reload, wait))


@router.post("/reload")
async def reload_index(request: Request, service: ServiceDep, actor: AdminActor, wait: bool = True) -> ReloadOut:
    await audit(service, actor, request, "reload", None, None, None)
    return ReloadOut(reload=await reload_after_edit(service, True, wait))


@router.get("/audit")
async def audit_log(
    service: ServiceDep,
    actor: AdminActor,
    doc_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    rows = await anyio.to_thread.run_sync(partial(service.store.list_kb_edits, doc_id=doc_id, limit=limit))
    return AuditPage(edits=rows)
