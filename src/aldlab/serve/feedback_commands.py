"""`aldlab feedback import|list|approve|reject|export`: the review queue from the terminal.

    aldlab feedback import feedback_data.json              # legacy/JSONL rows -> pending items
    aldlab feedback list                                   # pending items, oldest first
    aldlab feedback approve 12 --revision 1 --reviewer kim # reaches `aldlab data build --feedback`
    aldlab feedback reject 13 --revision 2 --reviewer kim --note "틀린 정정"
    aldlab feedback export approved.jsonl                  # approved rows as JSON Lines

Same store and rules as the web UI's review tab (`aldlab.store.feedback`): feedback is
pending until a named reviewer approves it; only approved rows are exported. A decision
names the revision `list` showed (`#12 r1`): if the asker changed the feedback since, or
someone decided it meanwhile, nothing changes and the command says so. Approving an
answer whose cited documents changed since it was made (edited through the admin API, or,
with `--kb`, different in that KB now) stops with the changed ids unless
`--accept-kb-change`; the export keeps the KB hash and those ids. `import` is how
feedback collected outside the service (the legacy `feedback_data.json`, a JSONL export)
gets reviewed: `aldlab data build` trains on approved rows only.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from aldlab.errors import UserError

feedback_app = typer.Typer(
    no_args_is_help=True, help="피드백 검토 / feedback review queue: import, list, approve, reject, export"
)
out = Console(soft_wrap=True)  # long Korean lines wrap in the terminal, not mid-word here
err = Console(stderr=True)

DB_OPTION = typer.Option(None, "--db", help="서비스 SQLite (기본: aldlab serve 기본 경로) / service DB")
REVIEWER_OPTION = typer.Option(..., "--reviewer", help="검토자 이름 (기록됨) / reviewer name, recorded")
REVISION_OPTION = typer.Option(
    ..., "--revision", min=1, help="읽은 수정본 (list의 r 번호) / the revision you read (list's rN)"
)


def _db(db: Path | None, *, create: bool = False) -> Path:
    from aldlab.serve.settings import default_db_path

    path = Path(db) if db else default_db_path()
    if not path.exists() and not create:
        raise UserError(
            "피드백 데이터베이스가 없습니다.",
            "Feedback database not found.",
            path=path,
            hint="`aldlab serve --db` 에 준 경로를 --db 로 주세요 / pass the --db given to aldlab serve",
        )
    return path


def _store(db: Path | None, *, create: bool = False):  # noqa: ANN202 - Store, imported lazily
    from aldlab.store import Store

    return Store(_db(db, create=create))


def _short(text: str | None, n: int = 160) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


@feedback_app.command("import")
def import_command(
    source: Path = typer.Argument(..., help="feedback_data.json 또는 내보낸 .jsonl / legacy .json or exported .jsonl"),
    db: Path | None = typer.Option(
        None, "--db", help="서비스 SQLite (없으면 만듦; 기본: aldlab serve 기본 경로) / service DB, created if missing"
    ),
) -> None:
    """피드백 파일을 검토 대기열에 넣기 (같은 파일을 다시 넣어도 중복 없음) / queue file feedback for review."""
    from aldlab.data.feedback import feedback_file_rows, queue_row
    from aldlab.errors import UserError

    rows = []
    for line, row in feedback_file_rows(source):
        try:
            rows.append(queue_row(row))
        except UserError as exc:  # the row's problem, here with its file and line
            raise UserError(exc.ko, exc.en, path=source, line=line, hint="그 줄을 고친 뒤 다시 가져오세요 / fix that row and import again") from exc
    store = _store(db, create=True)
    queued, known = store.queue_imported_feedback(rows)
    out.print(
        f"검토 대기 {queued}개 추가, 이미 있음 {known}개 / {queued} queued as pending, {known} already in {store.path}",
        highlight=False,
    )
    if queued:
        err.print(
            f"다음 / next: aldlab feedback list --db {store.path} → approve/reject → "
            f"aldlab data build --feedback {store.path}",
            highlight=False,
        )


@feedback_app.command("list")
def list_command(
    status: str = typer.Option("pending", "--status", help="pending | approved | rejected | all"),
    limit: int = typer.Option(20, "--limit", min=1, max=1000),
    offset: int = typer.Option(0, "--offset", min=0),
    db: Path | None = DB_OPTION,
    as_json: bool = typer.Option(False, "--json", help="JSON Lines 출력 / JSON Lines output"),
) -> None:
    """검토 대기열 보기 (질문·답변·문서·대화 기록) / show feedback with question, answer, contexts, history."""
    store = _store(db)
    wanted = None if status == "all" else status
    rows = list(store.iter_feedback_rows(status=wanted, limit=limit, offset=offset))
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    total = store.count_feedback(wanted)
    out.print(f"{status}: {total}개 중 {len(rows)}개 / {len(rows)} of {total}", highlight=False)
    for r in rows:
        review = r["review"]
        head = (
            f"#{r['feedback_id']} r{r['revisions']} [{review['status']}] {r['feedback']} · {r['model']}"
            f" · {r['timestamp'][:19]}"
        )
        if review["reviewer"]:
            head += f" · 검토 / reviewed by {review['reviewer']}"
        out.print(f"\n[bold]{escape(head)}[/]", highlight=False)
        for turn in r["history"]:
            out.print(f"  (기록 / history) {turn.get('role')}: {escape(_short(turn.get('content')))}", highlight=False)
        out.print(f"  질문 / question: {escape(r['question'])}", highlight=False)
        out.print(f"  답변 / answer:   {escape(_short(r['answer'], 400))}", highlight=False)
        if r["comment"]:
            out.print(f"  의견 / comment:  {escape(r['comment'])}", highlight=False)
        if r["correction"]:
            out.print(f"  [yellow]정정 / correction (학습 목표가 됨 / becomes the training target):[/] {escape(r['correction'])}")
        # imported legacy contexts carry text without an id: show the start of the text instead
        ids = ", ".join(c["id"] or f"«{_short(c['text'], 40)}»" for c in r["contexts"]) or "-"
        out.print(f"  참고 문서 / contexts: {escape(ids)}", highlight=False)


KB_OPTION = typer.Option(
    None, "--kb", help="지금의 KB (서버의 --kb): 인용 문서가 바뀌었는지 비교 / the KB now, to compare cited documents"
)
ACCEPT_OPTION = typer.Option(
    False, "--accept-kb-change", help="인용 문서가 답변 뒤에 바뀌었어도 승인 / approve although cited documents changed"
)


def _kb_now(kb: Path | None):  # noqa: ANN202 - KbNow, imported lazily
    """The KB to compare with, or None (then only the KB audit log in the database tells)."""
    if kb is None:
        return None
    from aldlab.kb.io import load_kb
    from aldlab.store import KbNow

    knowledge = load_kb(kb)
    return KbNow(knowledge.content_hash(), {d.id: d.text for d in knowledge.documents})


def _review(
    feedback_id: int,
    revision: int,
    status: str,
    reviewer: str,
    note: str | None,
    db: Path | None,
    *,
    kb: Path | None = None,
    accept_kb_change: bool = False,
) -> dict:  # type: ignore[type-arg]
    row = _store(db).review_feedback(
        feedback_id, status, reviewer, note, revision=revision, kb_now=_kb_now(kb), accept_kb_change=accept_kb_change
    )
    word = "승인 / approved" if status == "approved" else "거절 / rejected"
    out.print(f"#{row['feedback_id']} {word} ({escape(row['review']['reviewer'])}, {row['review']['reviewed_at'][:19]})")
    changed = row["review"]["kb_changed"]
    if changed:
        err.print(
            f"[yellow]주의 / warning[/]: 답변 뒤에 바뀐 인용 문서 / cited documents changed since the answer: "
            f"{escape(', '.join(changed))}",
            highlight=False,
        )
    return row


@feedback_app.command("approve")
def approve_command(
    feedback_id: int = typer.Argument(..., help="피드백 번호 (list의 #) / feedback id"),
    revision: int = REVISION_OPTION,
    reviewer: str = REVIEWER_OPTION,
    note: str | None = typer.Option(None, "--note", help="메모 / note"),
    db: Path | None = DB_OPTION,
    kb: Path | None = KB_OPTION,
    accept_kb_change: bool = ACCEPT_OPTION,
    teach_retrieval: bool = typer.Option(
        False, "--teach-retrieval",
        help="교정의 질문을 그 교정을 뒷받침하는 KB 문서의 questions에 더함(검색이 이 질문을 그 문서로 보냄) / add the "
        "question to the questions of the KB document the correction comes from, so retrieval finds it",
    ),
) -> None:
    """승인: 학습 데이터에 쓰임 / approve: it reaches `aldlab data build --feedback`."""
    if teach_retrieval:  # checked before approving: a refused flag must not leave a half-done review
        pending = next(_store(db).iter_feedback_rows(status=None, feedback_id=feedback_id), None)
        if pending is not None:
            _correction(pending)
    row = _review(feedback_id, revision, "approved", reviewer, note, db, kb=kb, accept_kb_change=accept_kb_change)
    if teach_retrieval:
        _teach(row, kb)


def _correction(row: dict) -> str:  # type: ignore[type-arg]
    """The row's correction; an error (before anything is written) when there is none."""
    correction = str(row.get("correction") or "").strip()
    if not correction:
        raise UserError(
            f"피드백 #{row.get('feedback_id')}에는 교정 문장이 없어 검색에 가르칠 수 없습니다 (승인하지 않았습니다).",
            f"Feedback #{row.get('feedback_id')} has no correction, so it cannot teach retrieval (not approved).",
            hint="--teach-retrieval 없이 승인하거나, 교정(correction)이 있는 👎 피드백에만 쓰세요 / approve without "
            "--teach-retrieval, or use it on corrections only",
        )
    return correction


def _teach(row: dict, kb: Path | None) -> None:  # type: ignore[type-arg]
    """The reviewed correction's question joins its source document's example questions."""
    from aldlab.kb.edit import SUPPORT_SHARE, teach_question
    from aldlab.settings import shipped_kb_dir

    correction = _correction(row)
    taught = teach_question(kb or shipped_kb_dir(), str(row["question"]), correction)
    if taught is None:
        err.print(
            f"[yellow]검색에 가르치지 않음 / not taught[/]: 교정 문장의 {SUPPORT_SHARE:.0%} 이상을 담은 KB 문서가 없습니다 "
            "(먼저 문서를 고치거나 더하세요) / no KB document holds the correction's wording",
            highlight=False,
        )
        return
    doc, share, added = taught
    word = "더함 / added" if added else "이미 있음 / already there"
    out.print(f"검색 / retrieval: '{escape(str(row['question']))}' → {doc.id} questions ({word}, 교정 일치 / match {share:.0%})")


@feedback_app.command("reject")
def reject_command(
    feedback_id: int = typer.Argument(..., help="피드백 번호 / feedback id"),
    revision: int = REVISION_OPTION,
    reviewer: str = REVIEWER_OPTION,
    note: str | None = typer.Option(None, "--note", help="거절 이유 / reason"),
    db: Path | None = DB_OPTION,
) -> None:
    """거절: 학습에 쓰이지 않음 / reject: never used for training."""
    _review(feedback_id, revision, "rejected", reviewer, note, db)


@feedback_app.command("export")
def export_command(
    output: Path = typer.Argument(..., help="출력 .jsonl / output .jsonl"),
    db: Path | None = DB_OPTION,
) -> None:
    """승인된 피드백을 JSONL로 (aldlab data build --feedback 입력) / approved feedback as JSON Lines."""
    from aldlab.files import atomic_write_text

    rows = list(_store(db).iter_feedback_rows(status="approved"))
    atomic_write_text(output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    err.print(f"{len(rows)}개 승인 피드백 → {output} / {len(rows)} approved rows written", highlight=False)
