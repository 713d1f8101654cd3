"""Feedback intake: liked answers and corrections become training facts.

Three inputs are accepted: the legacy `feedback_data.json` ({"feedbacks": [...]}), JSON
Lines exported by the service, and the service's SQLite store (.db/.sqlite, read through
`aldlab.store.feedback.export_feedback_rows`). A disliked answer is never trained on: with
a correction the correction is the target, without one the row is excluded and counted.

Rows from the service are reviewed first (`aldlab feedback approve`): only approved rows
are read from the store, and an exported row that carries a review status other than
"approved" is excluded, so a correction typed into the web UI never becomes a training
target unread. A row whose answer was steered by chat history is excluded too: the
dataset has single-turn examples only, and training the answer without the turns that
shaped it would teach the wrong thing. Who approved each used row, and when, is listed in
the intake's provenance (stats.json).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aldlab.data.facts import ContextPassage, Fact
from aldlab.errors import UserError
from aldlab.files import iter_jsonl, read_json, sha256_text
from aldlab.kb.schema import KnowledgeBase

LIKE = {"like", "liked", "good", "up", "thumbs_up", "positive", "1", "true"}
DISLIKE = {"dislike", "disliked", "bad", "down", "thumbs_down", "negative", "0", "-1", "false"}


@dataclass
class FeedbackIntake:
    """Facts from feedback plus the counts stats.json reports."""

    facts: list[Fact] = field(default_factory=list)
    rows: int = 0
    liked: int = 0
    corrected: int = 0
    excluded_dislike_without_correction: int = 0
    excluded_invalid: int = 0
    excluded_unreviewed: int = 0
    excluded_with_history: int = 0
    sources: list[str] = field(default_factory=list)
    provenance: list[dict[str, Any]] = field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "liked_used": self.liked,
            "disliked_with_correction_used": self.corrected,
            "excluded_dislike_without_correction": self.excluded_dislike_without_correction,
            "excluded_invalid": self.excluded_invalid,
            "excluded_unreviewed": self.excluded_unreviewed,
            "excluded_with_history": self.excluded_with_history,
            "sources": self.sources,
            "provenance": self.provenance,
        }


def read_feedback_rows(path: Path) -> list[dict[str, Any]]:
    """Rows in the export format from any accepted input; unreadable input is a UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError("피드백 파일이 없습니다.", "Feedback file not found.", path=path, hint="경로를 확인하세요 / check the path")
    suffix = path.suffix.lower()
    if suffix in {".db", ".sqlite", ".sqlite3"}:
        return _rows_from_store(path)
    if suffix == ".jsonl":
        return [row for _, row in iter_jsonl(path)]
    if suffix == ".json":
        data = read_json(path)
        rows = data.get("feedbacks") if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise UserError(
                "피드백 JSON 형식이 아닙니다: {\"feedbacks\": [...]} 또는 객체 목록이어야 합니다.",
                'Not a feedback JSON: expected {"feedbacks": [...]} or a list of objects.',
                path=path,
            )
        return rows
    raise UserError(
        f"지원하지 않는 피드백 형식입니다: {suffix or '(확장자 없음)'}",
        f"Unsupported feedback file type: {suffix or '(no extension)'}",
        path=path,
        hint="feedback_data.json, 내보낸 .jsonl, 또는 서비스 DB(.db) / legacy .json, exported .jsonl or the service .db",
    )


def _rows_from_store(path: Path) -> list[dict[str, Any]]:
    try:
        from aldlab.store.feedback import export_feedback_rows  # the service owns the schema
    except ImportError as exc:
        raise UserError(
            "이 설치에서는 피드백 DB를 읽을 수 없습니다 (aldlab.store.feedback 없음).",
            "Cannot read the feedback database in this install (aldlab.store.feedback missing).",
            path=path,
            hint="서비스에서 JSONL로 내보낸 뒤 --feedback 으로 주세요 / export feedback to JSONL and pass that",
        ) from exc
    try:
        return list(export_feedback_rows(path))  # approved rows only (its default)
    except UserError:
        raise
    except Exception as exc:  # sqlite3.DatabaseError and friends: a file that is not our store
        raise UserError(
            "피드백 DB를 읽을 수 없습니다.", f"Cannot read the feedback database: {exc}", path=path
        ) from exc


def _verdict(row: dict[str, Any]) -> str | None:
    value = row.get("feedback", row.get("rating"))
    text = str(value).strip().lower() if value is not None else ""
    if text in LIKE:
        return "like"
    if text in DISLIKE:
        return "dislike"
    return None


def _passages(row: dict[str, Any], kb: KnowledgeBase) -> tuple[list[ContextPassage] | None, list[str]]:
    """Contexts with ids as passages; legacy contexts (text only) are matched to KB documents."""
    contexts = row.get("contexts") or []
    if not isinstance(contexts, list) or not contexts:
        return None, []
    by_text = {d.text.strip(): d for d in kb.documents}
    by_id = kb.by_id()
    passages: list[ContextPassage] = []
    for ctx in contexts:
        if isinstance(ctx, dict) and not str(ctx.get("text", "")).strip() and str(ctx.get("id", "")) in by_id:
            # the service logs context ids only (no snapshot): take the text from the KB
            doc = by_id[str(ctx["id"])]
            ctx = {"id": doc.id, "title": doc.title, "text": doc.text}
        if not isinstance(ctx, dict) or not str(ctx.get("text", "")).strip():
            continue
        cid = ctx.get("id") or ctx.get("doc_id")
        text = str(ctx["text"]).strip()
        if cid is None:
            doc = by_text.get(text)
            if doc is None:
                return None, []  # cannot cite what we cannot identify: use the closed-book style
            cid = doc.id
        title = str(ctx.get("title") or (by_id[str(cid)].title if str(cid) in by_id else text[:30]))
        if all(p.id != str(cid) for p in passages):
            passages.append(ContextPassage(str(cid), title, text))
    return (passages or None), [p.id for p in passages]


def load_feedback(paths: list[Path], kb: KnowledgeBase) -> FeedbackIntake:
    """Turn every feedback file into facts; disliked answers without a correction are dropped."""
    intake = FeedbackIntake()
    for path in paths:
        rows = read_feedback_rows(path)
        intake.sources.append(str(path))
        for index, row in enumerate(rows):
            intake.rows += 1
            review = row.get("review")
            if isinstance(review, dict) and review.get("status") != "approved":
                intake.excluded_unreviewed += 1
                continue
            if row.get("history"):
                intake.excluded_with_history += 1
                continue
            question = str(row.get("question") or "").strip()
            verdict = _verdict(row)
            if not question or verdict is None:
                intake.excluded_invalid += 1
                continue
            if verdict == "like":
                target = str(row.get("answer") or "").strip()
            else:
                target = str(row.get("correction") or "").strip()
                if not target:
                    intake.excluded_dislike_without_correction += 1
                    continue
            if not target:
                intake.excluded_invalid += 1
                continue
            passages, doc_ids = _passages(row, kb)
            key = sha256_text(json.dumps([question, target], ensure_ascii=False))[:12]
            intake.facts.append(
                Fact(
                    f"fb:{key}",
                    "feedback",
                    "feedback",
                    [question],
                    [(target, None)],
                    doc_ids,
                    group=f"feedback:{sha256_text(question)[:12]}",
                    passages=passages,
                    verbatim=True,
                )
            )
            if verdict == "like":
                intake.liked += 1
            else:
                intake.corrected += 1
            if isinstance(review, dict):
                intake.provenance.append(
                    {
                        "fact_id": f"fb:{key}",
                        "answer_id": row.get("answer_id"),
                        "reviewer": review.get("reviewer"),
                        "reviewed_at": review.get("reviewed_at"),
                        "source": str(path),
                    }
                )
    return intake
