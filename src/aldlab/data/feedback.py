"""Feedback intake: liked answers and corrections become training facts.

Three inputs are accepted: the legacy `feedback_data.json` ({"feedbacks": [...]}), JSON
Lines exported by the service, and the service's SQLite store (.db/.sqlite, read through
`aldlab.store.feedback.export_feedback_rows`). A disliked answer is never trained on: with
a correction the correction is the target, without one the row is excluded and counted.

Only reviewed feedback becomes a training target, from every input: a row is used only
when it carries an approved review with a reviewer's name (`aldlab feedback approve`).
The store yields approved rows only; a JSONL row that is pending, rejected or has no
review, and every legacy `feedback_data.json` row (that format has no review), is
excluded and counted, so neither a correction typed into the web UI nor an old liked
answer ("VG12는 게이트 밸브 개폐 신호다.") becomes a training target unread. Legacy and
JSONL rows reach the review queue through `aldlab feedback import FILE` (`queue_row`
below shapes them). A row whose answer was steered by chat history is excluded too: the
dataset has single-turn examples only, and training the answer without the turns that
shaped it would teach the wrong thing. Who approved each used row, and when, is listed in
the intake's provenance (stats.json).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aldlab.data.facts import ContextPassage, Fact
from aldlab.errors import UserError
from aldlab.files import iter_jsonl, read_json, sha256_text
from aldlab.kb.audit import describe_kind
from aldlab.kb.claims import DefinitionConflict, DefinitionIndex
from aldlab.kb.schema import Document, KnowledgeBase

LIKE = {"like", "liked", "good", "up", "thumbs_up", "positive", "1", "true"}
DISLIKE = {"dislike", "disliked", "bad", "down", "thumbs_down", "negative", "0", "-1", "false"}
STORE_SUFFIXES = {".db", ".sqlite", ".sqlite3"}


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
    excluded_rejected: int = 0
    excluded_with_history: int = 0
    excluded_kb_conflict: int = 0
    pending_in_stores: int = 0  # never read (a store yields approved rows), counted to say so
    sources: list[str] = field(default_factory=list)
    provenance: list[dict[str, Any]] = field(default_factory=list)
    kb_conflicts: list[dict[str, Any]] = field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "liked_used": self.liked,
            "disliked_with_correction_used": self.corrected,
            "excluded_dislike_without_correction": self.excluded_dislike_without_correction,
            "excluded_invalid": self.excluded_invalid,
            "excluded_unreviewed": self.excluded_unreviewed,
            "excluded_rejected": self.excluded_rejected,
            "excluded_with_history": self.excluded_with_history,
            "excluded_kb_conflict": self.excluded_kb_conflict,
            "pending_in_stores": self.pending_in_stores,
            "sources": self.sources,
            "provenance": self.provenance,
            "kb_conflicts": self.kb_conflicts,
        }

    def warnings(self) -> list[str]:
        """What the build output must say about feedback left out, with what to do about it."""
        found = []
        if self.excluded_unreviewed:
            n = self.excluded_unreviewed
            found.append(
                f"검토(승인)되지 않은 피드백 {n}개를 학습에서 제외했습니다. `aldlab feedback import 파일 --db DB`로 검토 대기열에 넣고 "
                f"`aldlab feedback list/approve --db DB`로 승인한 뒤 `--feedback DB`로 다시 만드세요 / "
                f"{n} feedback rows without an approved review were excluded: queue them with "
                f"`aldlab feedback import FILE --db DB`, approve them with `aldlab feedback list/approve --db DB`, "
                f"then rebuild with `--feedback DB`"
            )
        if self.pending_in_stores:
            n = self.pending_in_stores
            found.append(
                f"피드백 DB에 검토 대기 {n}개가 있어 쓰지 않았습니다: `aldlab feedback list --db DB`로 검토하세요 / "
                f"{n} pending items in the feedback database were not used: review them with `aldlab feedback list --db DB`"
            )
        if self.kb_conflicts:
            n = len(self.kb_conflicts)
            found.append(
                f"승인된 피드백 {n}개가 KB 정의와 충돌해 학습에서 제외했습니다 (stats.json feedback.kb_conflicts); KB나 피드백을 "
                f"바로잡으세요 / {n} approved feedback targets contradict a KB definition and were excluded "
                f"(stats.json feedback.kb_conflicts): correct the KB or the feedback"
            )
            found += [
                f"  '{c['term']}': 피드백 / feedback \"{c['target'][:80]}\" = {c['feedback_says']}; "
                f"KB {c['kb_document']} = {c['kb_says']}"
                for c in self.kb_conflicts[:MAX_CONFLICTS_SHOWN]
            ]
        return found


#: Conflicts listed in the build output; stats.json has all of them.
MAX_CONFLICTS_SHOWN = 5


def read_feedback_rows(path: Path) -> list[dict[str, Any]]:
    """Rows in the export format from any accepted input; unreadable input is a UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError("피드백 파일이 없습니다.", "Feedback file not found.", path=path, hint="경로를 확인하세요 / check the path")
    if path.suffix.lower() in STORE_SUFFIXES:
        return _rows_from_store(path)
    return [row for _, row in feedback_file_rows(path)]


def feedback_file_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line, row) of a legacy `feedback_data.json` or an exported .jsonl; other input is a UserError."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return list(iter_jsonl(path))
    if suffix == ".json":
        data = read_json(path)
        rows = data.get("feedbacks") if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise UserError(
                "피드백 JSON 형식이 아닙니다: {\"feedbacks\": [...]} 또는 객체 목록이어야 합니다.",
                'Not a feedback JSON: expected {"feedbacks": [...]} or a list of objects.',
                path=path,
            )
        text = path.read_text(encoding="utf-8")
        return list(zip(_item_lines(text, "feedbacks" if isinstance(data, dict) else None), rows))
    raise UserError(
        f"지원하지 않는 피드백 형식입니다: {suffix or '(확장자 없음)'}",
        f"Unsupported feedback file type: {suffix or '(no extension)'}",
        path=path,
        hint="feedback_data.json, 내보낸 .jsonl, 또는 서비스 DB(.db) / legacy .json, exported .jsonl or the service .db",
    )


_SPACE = re.compile(r"[ \t\n\r]*")


def _item_lines(text: str, key: str | None) -> list[int]:
    """Line on which each item of the top-level array (or of the top-level object's `key`,
    its last occurrence as in `json.loads`) starts, so an error in row 40 of
    feedback_data.json names its line. `text` is valid JSON."""
    decoder = json.JSONDecoder()

    def after(i: int) -> int:  # the next token, past spaces and one ',' or ':'
        i = _SPACE.match(text, i).end()
        return _SPACE.match(text, i + 1).end() if i < len(text) and text[i] in ",:" else i

    i = _SPACE.match(text, _SPACE.match(text).end() + 1).end()  # first token inside '{' or '['
    if key is not None:
        start = i
        while text[i] != "}":
            name, i = decoder.raw_decode(text, i)
            i = after(i)
            if name == key:
                start = i
            i = after(decoder.raw_decode(text, i)[1])
        i = _SPACE.match(text, start + 1).end()  # first token inside the array
    lines, line, seen = [], 1, 0
    while text[i] != "]":
        line, seen = line + text.count("\n", seen, i), i
        lines.append(line)
        i = after(decoder.raw_decode(text, i)[1])
    return lines


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
    """Turn every approved feedback row into a fact; every other row is counted by why it was left out."""
    intake = FeedbackIntake()
    if not paths:
        return intake
    definitions = DefinitionIndex(kb)  # ~0.1 s on the shipped KB, so only with feedback
    for path in paths:
        rows = read_feedback_rows(path)
        intake.sources.append(str(path))
        if Path(path).suffix.lower() in STORE_SUFFIXES:
            from aldlab.store.feedback import count_feedback

            intake.pending_in_stores += count_feedback(path, "pending")
        for row in rows:
            intake.rows += 1
            target = _training_target(row, intake)
            if target is None or not _counted_approved(row, intake):
                continue
            question, verdict = str(row["question"]).strip(), _verdict(row)
            key = sha256_text(json.dumps([question, target], ensure_ascii=False))[:12]
            clash = _kb_conflict(definitions, f"fb:{key}", target)
            if clash is not None:
                intake.excluded_kb_conflict += 1
                intake.kb_conflicts.append(_conflict_record(clash, row, question, target, path))
                continue
            passages, doc_ids = _passages(row, kb)
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
            review = row["review"]
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


def _kb_conflict(definitions: DefinitionIndex, fact_id: str, target: str) -> DefinitionConflict | None:
    """The first KB definition the target contradicts, by the check `aldlab kb import` runs.

    It catches what a term *is* ("VG12는 게이트 밸브 개폐 신호다" against the KB's "VG12는 …
    진공 게이지다"), not numbers or orderings: those are candidates for a person to read
    (`aldlab kb audit`; all 9 numeric candidates in the shipped KB were different facts), so
    excluding on them would drop good feedback unseen.
    """
    claims = definitions.claims_of(Document(id=fact_id, title="", text=target))
    return definitions.first_conflict(fact_id, claims)


def _conflict_record(clash: DefinitionConflict, row: dict[str, Any], question: str, target: str, path: Path) -> dict[str, Any]:
    return {
        "fact_id": clash.incoming_id,
        "question": question,
        "target": target,
        "term": clash.term,
        "feedback_says": describe_kind(clash.incoming),
        "kb_document": clash.existing_id,
        "kb_says": describe_kind(clash.existing),
        "kb_sentence": clash.existing.sentence,
        "answer_id": row.get("answer_id"),
        "source": str(path),
    }


def _training_target(row: dict[str, Any], intake: FeedbackIntake) -> str | None:
    """What the row would teach (the liked answer or the correction), or None, counted.

    Rows that could never be a target are counted by that reason first, so the
    "unreviewed" count is what a review could still add to the dataset.
    """
    if row.get("history"):
        intake.excluded_with_history += 1
        return None
    question = str(row.get("question") or "").strip()
    verdict = _verdict(row)
    if not question or verdict is None:
        intake.excluded_invalid += 1
        return None
    target = str(row.get("answer" if verdict == "like" else "correction") or "").strip()
    if not target:
        if verdict == "dislike":
            intake.excluded_dislike_without_correction += 1
        else:
            intake.excluded_invalid += 1
        return None
    return target


def _counted_approved(row: dict[str, Any], intake: FeedbackIntake) -> bool:
    """True for a row approved by a named reviewer; otherwise counts it as rejected or unreviewed."""
    review = row.get("review")
    status = review.get("status") if isinstance(review, dict) else None
    if status == "approved" and str(review.get("reviewer") or "").strip():
        return True
    if status == "rejected":
        intake.excluded_rejected += 1
    else:
        intake.excluded_unreviewed += 1
    return False


def queue_row(row: dict[str, Any]) -> dict[str, Any]:
    """A legacy or exported row in the shape `aldlab.store.feedback.queue_imported_feedback`
    takes; a row that could not be reviewed sensibly is a UserError naming the field (the
    caller adds file and line). Review fields are dropped: the queue's reviewer decides."""
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise UserError("question 이 비어 있습니다.", "Field 'question' is missing or empty.")
    rating = _verdict(row)
    if rating is None:
        value = row.get("feedback", row.get("rating"))
        raise UserError(
            f"feedback 값이 like/dislike가 아닙니다: {value!r}",
            f"Field 'feedback' must be like or dislike, got {value!r}.",
        )
    fields = {name: _optional_text(row, name) for name in ("answer", "comment", "correction", "model", "kb_hash", "timestamp", "answer_id")}
    if rating == "like" and not (fields["answer"] or "").strip():
        raise UserError("좋아요 피드백인데 answer 가 비어 있습니다.", "A liked row needs a non-empty 'answer'.")
    return {
        **fields,
        "question": question.strip(),
        "answer": (fields["answer"] or "").strip(),
        "feedback": rating,
        "contexts": _object_list(row, "contexts"),
        "history": _object_list(row, "history"),
    }


def _optional_text(row: dict[str, Any], name: str) -> str | None:
    value = row.get(name)
    if value is None or isinstance(value, str):
        return value
    raise UserError(f"{name} 는 문자열이어야 합니다.", f"Field '{name}' must be a string, got {type(value).__name__}.")


def _object_list(row: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = row.get(name) or []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise UserError(f"{name} 는 객체 목록이어야 합니다.", f"Field '{name}' must be a list of objects.")
    return value
