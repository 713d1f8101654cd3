"""Feedback: the asker rates an answer (`/api/feedback`), an admin reviews the queue.

Only approved feedback reaches `aldlab data build --feedback` (via the JSONL export). A
decision names the revision the reviewer read (409 when the item changed or was decided
meanwhile; `aldlab.store.feedback`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import anyio
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from aldlab.errors import UserError
from aldlab.serve.deps import AdminActor, ApiKey, FeedbackRate, KbDep, SettingsDep, StoreDep
from aldlab.serve.errors import ApiError
from aldlab.serve.schemas import FeedbackAck, FeedbackPage, FeedbackRequest, ReviewOut, ReviewRequest
from aldlab.store import (
    FeedbackConflict,
    FeedbackForbidden,
    FeedbackKbChanged,
    FeedbackNotFound,
    FeedbackRevisionLimit,
)

router = APIRouter()

T = TypeVar("T")


async def in_thread(work: Callable[[], T], errors: dict[type[UserError], tuple[int, str]]) -> T:
    """A store call off the event loop; the `UserError`s it names become (status, code)
    `ApiError`s, in the order given (a subclass before its base)."""
    try:
        return await anyio.to_thread.run_sync(work)
    except UserError as exc:
        for kind, (status, code) in errors.items():
            if isinstance(exc, kind):
                raise ApiError.of(exc, status, code) from exc
        raise


@router.post("/api/feedback", dependencies=[ApiKey, FeedbackRate])
async def feedback(body: FeedbackRequest, store: StoreDep, kb: KbDep, settings: SettingsDep) -> FeedbackAck:
    """Pending feedback from the client that asked (its answer token proves it)."""

    def store_feedback() -> int:
        logged = store.get_answer(body.answer_id)
        contexts = kb.context_snapshot(logged.context_ids, logged.kb_hash) if logged is not None else None
        return store.add_feedback(
            body.answer_id, body.rating, body.comment, body.correction,
            token=body.answer_token, contexts=contexts, max_snapshot_chars=settings.snapshot_max_chars,
        )

    row_id = await in_thread(
        store_feedback,
        {FeedbackForbidden: (403, "forbidden"), FeedbackRevisionLimit: (409, "too_many_revisions"),
         UserError: (404, "unknown_answer")},
    )
    return FeedbackAck(feedback_id=row_id, answer_id=body.answer_id)


@router.get("/api/admin/feedback")
async def list_feedback(
    store: StoreDep,
    actor: AdminActor,
    status: Literal["pending", "approved", "rejected", "all"] = "pending",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> FeedbackPage:
    """The review queue: each item with question, answer, contexts and history."""

    def page() -> FeedbackPage:
        wanted = None if status == "all" else status
        rows = list(store.iter_feedback_rows(status=wanted, limit=limit, offset=offset))
        return FeedbackPage(total=store.count_feedback(wanted), items=rows)

    return await anyio.to_thread.run_sync(page)


@router.post("/api/admin/feedback/{feedback_id}/{decision}")
async def review(
    feedback_id: int,
    decision: Literal["approve", "reject"],
    body: ReviewRequest,
    store: StoreDep,
    kb: KbDep,
    actor: AdminActor,
) -> ReviewOut:
    """Decide revision `body.revision` of a pending item (the `revisions` the list showed).

    Approving an answer whose cited documents changed since it was made is a 409
    `kb_changed` naming them, unless `body.accept_kb_change` (the reviewer read the new
    text and approves anyway); the decision and the export keep the KB hash and the ids.
    """
    status = "approved" if decision == "approve" else "rejected"

    def decide() -> dict[str, Any]:
        return store.review_feedback(
            feedback_id, status, actor, body.note,
            revision=body.revision, kb_now=kb.kb_now(), accept_kb_change=body.accept_kb_change,
        )

    row = await in_thread(
        decide,
        {FeedbackNotFound: (404, "feedback_not_found"), FeedbackConflict: (409, "review_conflict"),
         FeedbackKbChanged: (409, "kb_changed")},
    )
    changed = row["review"]["kb_changed"]
    warnings = [
        f"답변 뒤에 바뀐 인용 문서 / cited documents changed since the answer: {', '.join(changed)}"
    ] if changed else []
    return ReviewOut(item=row, warnings=warnings)


@router.get("/api/admin/feedback/export", response_model=None)
async def export_feedback(store: StoreDep, actor: AdminActor) -> StreamingResponse:
    """Approved feedback as JSON Lines, streamed (what `aldlab data build --feedback` reads)."""
    rows = store.iter_feedback_rows(status="approved")  # reads in batches, in a thread
    return StreamingResponse(
        (json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
        media_type="application/x-ndjson; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="aldlab-feedback.jsonl"'},
    )
