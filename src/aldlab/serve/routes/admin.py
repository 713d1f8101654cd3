"""Admin routes for the KB: list, add, change, delete documents; rebuild the index; audit log;
and "지금 개선 / Improve now": start `aldlab improve` and poll its status (`improve_runs`).

Every route needs the admin token (`AdminActor`, or `AuditDep`, which records the actor);
every edit is written atomically by `aldlab.kb.edit` with its audit row as one recoverable
unit (pending row before the files, done after: `aldlab.serve.kb_admin.AuditJournal`), and
followed by a background reindex. A KB whose files do not load answers 503, not 400.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import anyio
from fastapi import APIRouter, Query

from aldlab.kb.schema import Document
from aldlab.serve.settings import ServeSettings
from aldlab.store import Store
from aldlab.store.registry import ModelRegistry
from aldlab.serve.deps import AdminActor, AuditDep, ImproveDep, KbDep, SettingsDep, StoreDep
from aldlab.serve.errors import ApiError
from aldlab.serve.improve_runs import ImproveAlreadyRunning, ImproveRequest, ImproveRuns, ImproveStatus, feedback_waiting
from aldlab.serve.kb_admin import KbAdmin
from aldlab.serve.schemas import (
    AuditPage,
    DocId,
    DocumentAdded,
    DocumentChanges,
    DocumentDeleted,
    DocumentIn,
    DocumentPage,
    DocumentsImported,
    DocumentUpdated,
    DocumentUpload,
    ImproveOut,
    ImproveRunOut,
    ReloadInfo,
    ReloadOut,
)

if TYPE_CHECKING:
    from aldlab.kb.edit import EditJournal, ImportReport

router = APIRouter(prefix="/api/admin")


async def reload_after_edit(kb: KbAdmin, do_reload: bool, wait: bool) -> ReloadInfo:
    """Start (or join) a background index rebuild; with `wait`, return after it."""
    if not do_reload:
        return ReloadInfo(scheduled=False, **kb.reloader.status().model_dump())
    task = kb.reloader.request()
    if wait:
        await asyncio.shield(task)
    return ReloadInfo(scheduled=True, **kb.reloader.status().model_dump())


@router.get("/documents")
async def list_documents(
    kb: KbDep,
    actor: AdminActor,
    q: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DocumentPage:
    documents = await anyio.to_thread.run_sync(kb.documents)
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
    body: DocumentIn, kb: KbDep, audit: AuditDep, reload: bool = True, wait: bool = False
) -> DocumentAdded:
    from aldlab.kb import edit

    kb_dir = kb.editable_dir()
    kb.check_topic_path(kb_dir, body.topic)
    doc = Document(**body.model_dump())
    added = await kb.edit(partial(edit.add_document, kb_dir, doc, journal=audit.journal(kb_dir)))
    return DocumentAdded(document=added.to_json(), reload=await reload_after_edit(kb, reload, wait))


@router.post("/documents/import", status_code=201)
async def import_upload(
    body: DocumentUpload, kb: KbDep, audit: AuditDep, reload: bool = True, wait: bool = False
) -> DocumentsImported:
    """A .md/.txt/.json file from the admin tab, imported as `aldlab kb import` would.

    The CLI's loaders and merge do the work, so an upload gets the same passages,
    content-derived ids, duplicate and definition-conflict checks as the command line.
    """
    kb_dir = kb.editable_dir()
    report, added = await kb.edit(partial(import_file, kb_dir, body, audit.journal(kb_dir)))
    return DocumentsImported(
        added=[d.to_json() for d in added],
        unchanged=report.unchanged,
        id_conflicts=report.id_conflicts,
        duplicates=[incoming for incoming, _ in report.duplicates],
        near_duplicates=[incoming for incoming, _, _ in report.near_duplicates],
        conflicts=[c.incoming_id for c in report.conflicts],
        reload=await reload_after_edit(kb, reload and bool(added), wait),
    )


def import_file(kb_dir: Path, upload: DocumentUpload, journal: EditJournal) -> tuple[ImportReport, list[Document]]:
    """Parse the upload with `load_any` (it dispatches on the file name) and merge it in."""
    from aldlab.kb.edit import import_into
    from aldlab.kb.io import load_kb
    from aldlab.kb.loaders import load_any

    with tempfile.TemporaryDirectory(prefix="aldlab-upload-") as tmp:
        path = Path(tmp) / upload.filename  # the pattern allows no directory part
        path.write_text(upload.content, encoding="utf-8")
        incoming = load_any(path)
    report = import_into(kb_dir, incoming, allow_near_duplicates=upload.allow_near_duplicates, journal=journal)
    saved = load_kb(kb_dir).by_id()  # as stored: the merge may have tagged keywords
    return report, [saved[i] for i in report.added]


@router.put("/documents/{doc_id}")
async def update_doc(
    doc_id: DocId, body: DocumentChanges, kb: KbDep, audit: AuditDep, reload: bool = True, wait: bool = False
) -> DocumentUpdated:
    from aldlab.kb import edit

    kb_dir = kb.editable_dir()
    changes = body.model_dump(exclude_none=True)
    kb.check_topic_path(kb_dir, body.topic)
    if not changes:
        raise ApiError(400, "invalid_request", "바꿀 필드가 없습니다.", "No fields to change.")
    before, after = await kb.edit(partial(edit.update_document, kb_dir, doc_id, changes, journal=audit.journal(kb_dir)))
    return DocumentUpdated(
        before=before.to_json(), document=after.to_json(), reload=await reload_after_edit(kb, reload, wait)
    )


@router.delete("/documents/{doc_id}")
async def delete_doc(
    doc_id: DocId, kb: KbDep, audit: AuditDep, reload: bool = True, wait: bool = False
) -> DocumentDeleted:
    from aldlab.kb import edit

    kb_dir = kb.editable_dir()
    removed = await kb.edit(partial(edit.delete_document, kb_dir, doc_id, journal=audit.journal(kb_dir)))
    return DocumentDeleted(deleted=removed.to_json(), reload=await reload_after_edit(kb, reload, wait))


@router.post("/reload")
async def reload_index(kb: KbDep, audit: AuditDep, wait: bool = True) -> ReloadOut:
    await audit.record("reload", None, None, None)
    return ReloadOut(reload=await reload_after_edit(kb, True, wait))


@router.get("/audit")
async def audit_log(
    store: StoreDep,
    actor: AdminActor,
    doc_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    rows = await anyio.to_thread.run_sync(partial(store.list_kb_edits, doc_id=doc_id, limit=limit))
    return AuditPage(edits=rows)


# --------------------------------------------------------------------------- improve now


def improve_overview(store: Store, settings: ServeSettings, runs: ImproveRuns) -> ImproveOut:
    """Waiting feedback, the threshold and the last run: what the tab's button is drawn from."""
    run = runs.status()
    waiting = len(feedback_waiting(store))
    return ImproveOut(
        waiting=waiting,
        threshold=settings.improve_min_items,
        ready=waiting >= settings.improve_min_items and run.state != "running",
        promoted=ModelRegistry().promoted_id(),
        run=ImproveRunOut(**vars(run)),
    )


def already_running(run: ImproveStatus) -> ApiError:
    started = time.strftime("%H:%M:%S", time.localtime(run.started_at or time.time()))
    return ApiError(
        409,
        "improve_running",
        f"개선 작업이 이미 실행 중입니다 ({run.started_by}, {started} 시작). 끝난 뒤 다시 누르세요.",
        f"An improve run is already running (started by {run.started_by} at {started}); try again when it has finished.",
    )


@router.get("/improve")
async def improve_status(store: StoreDep, settings: SettingsDep, runs: ImproveDep, actor: AdminActor) -> ImproveOut:
    return await anyio.to_thread.run_sync(partial(improve_overview, store, settings, runs))


@router.post("/improve", status_code=202)
async def improve_now(store: StoreDep, settings: SettingsDep, runs: ImproveDep, actor: AdminActor) -> ImproveOut:
    """Start `aldlab improve` on the server's DB, KB and preset; 409 below the threshold or while one runs.

    A run started elsewhere (`aldlab improve` in a terminal) is refused by improve's own lock:
    this run then ends "failed" with improve's message naming the PID.
    """
    overview = await anyio.to_thread.run_sync(partial(improve_overview, store, settings, runs))
    if overview.run.state == "running":
        raise already_running(runs.status())
    if overview.waiting < overview.threshold:
        raise ApiError(
            409,
            "not_enough_feedback",
            f"학습에 아직 쓰이지 않은 승인 피드백이 {overview.waiting}개뿐입니다 (필요: {overview.threshold}개).",
            f"Only {overview.waiting} approved feedback items wait to be trained on (need {overview.threshold}).",
            hint="피드백을 더 검토·승인하세요 / review and approve more feedback",
        )
    request = ImproveRequest(
        db=store.path, min_items=settings.improve_min_items, preset=settings.improve_preset, kb=settings.kb,
        actor=actor,
    )
    try:
        runs.start(request)
    except ImproveAlreadyRunning as exc:  # two clicks between the check above and here
        raise already_running(exc.status) from exc
    return await anyio.to_thread.run_sync(partial(improve_overview, store, settings, runs))
