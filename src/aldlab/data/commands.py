"""`aldlab data build`: KB + feedback -> train/eval JSONL with stats (see `aldlab.data.build`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from aldlab.cli_options import config_option, config_options, kb_option, output_option, preset_option, quiet_option
from aldlab.config import resolve_config
from aldlab.data.config import DataConfig

app = typer.Typer(no_args_is_help=True)


@app.callback()
def data_group() -> None:
    """학습 데이터셋 / dataset commands (a group even with one command: `aldlab data build`)."""


@app.command("build")
@config_options(DataConfig, show_defaults=False)
def build_command(
    overrides: dict[str, Any],
    kb: Path | None = kb_option(),
    preset: str | None = preset_option(),
    config_file: Path | None = config_option(),
    quiet: bool = quiet_option(),
) -> None:
    """KB와 피드백으로 학습/평가 데이터셋을 만듭니다 / Build the train and eval datasets."""
    config = resolve_config(DataConfig, "data", preset=preset, config_file=config_file, overrides=overrides | {"kb": kb})
    from aldlab.data.build import build_dataset  # lazy: keeps `aldlab --help` fast

    report = build_dataset(config, progress=not quiet)
    print_report(report.stats, report.output_dir)


def print_report(stats: dict, output_dir: Path) -> None:
    """Rich summary table on stdout (the files hold the details)."""
    console = Console()
    table = Table(title=f"데이터셋 / dataset → {output_dir}")
    table.add_column("")
    table.add_column("train", justify="right")
    table.add_column("eval", justify="right")
    t, e = stats["train"], stats["eval"]
    rows = [
        ("rows", t["rows"], e["rows"]),
        ("kb / combo", f"{t['kinds'].get('kb', 0)} / {t['kinds'].get('combo', 0)}", f"{e['kinds'].get('kb', 0)} / {e['kinds'].get('combo', 0)}"),
        ("unanswerable", t["kinds"].get("unanswerable", 0), e["kinds"].get("unanswerable", 0)),
        ("feedback", t["kinds"].get("feedback", 0), e["kinds"].get("feedback", 0)),
        ("retrieval-style share", t["rag_share"], e["rag_share"]),
        ("avg answer chars", t["avg_answer_chars"], e["avg_answer_chars"]),
    ]
    for label, a, b in rows:
        table.add_row(label, str(a), str(b))
    console.print(table)
    leak = stats["leakage"]
    leak_total = sum(leak[k] for k in ("exact_dup_questions", "exact_dup_answers", "near_dup_questions", "near_dup_answers", "shared_docs", "shared_groups"))
    color = "green" if leak_total == 0 else "red"
    console.print(f"[{color}]누수 / leakage: {leak_total}[/] (exact/near dup, shared docs; train rows dropped: {leak['dropped_train_exact_dup'] + leak['dropped_train_near_dup']})")
    p = stats["particles"]
    console.print(f"조사 오류 / particle errors: {p['errors']} / {p['checked_questions']} questions")
    fb = stats["feedback"]
    if fb["rows"]:
        console.print(
            f"피드백 / feedback: {fb['liked_used']} liked + {fb['disliked_with_correction_used']} corrected used, "
            f"{fb['excluded_dislike_without_correction']} disliked without correction, "
            f"{fb['excluded_unreviewed']} unreviewed, {fb['excluded_rejected']} rejected, "
            f"{fb['excluded_kb_conflict']} contradicting the KB excluded"
        )
    if stats.get("teacher"):
        tt = stats["teacher"]
        console.print(f"교사 / teacher: {tt['accepted_questions']} questions, {tt['accepted_answers']} answers accepted; {tt['rejected_total']} rejected")
    for warning in stats.get("warnings", []):
        console.print(f"[yellow]⚠ {warning}[/]")


#: Where `aldlab data build` (runs/data) and `aldlab pipeline` (runs/<preset>/data) write.
RUNS_DIR = Path("runs")


def newest_dataset_dir(runs: Path) -> Path | None:
    """The dataset directory under `runs` whose train.jsonl was written last, or None.

    `data build` writes runs/data and `pipeline` writes runs/<preset>/data; a user who ran
    either expects `data review` to find it without being told which.
    """
    found = [d for d in (runs / "data", *sorted(runs.glob("*/data"))) if (d / "train.jsonl").is_file()]
    return max(found, key=lambda d: (d / "train.jsonl").stat().st_mtime, default=None)


@app.command("review")
def review_command(
    data_dir: Path | None = typer.Argument(
        None,
        help="데이터셋 디렉터리 (기본: runs/ 아래 가장 최근 데이터셋, 예: runs/cpu-demo/data) / dataset directory "
        "(train.jsonl, eval.jsonl; default: the newest one under runs/, e.g. runs/cpu-demo/data)",
        show_default=False,
    ),
    kb: Path | None = typer.Option(None, "--kb", help="KB (기본: manifest의 KB) / KB (default: the one in manifest.json)"),
    per_style: int = typer.Option(20, "--per-style", "-n", help="스타일별 표본 행 수 / sampled rows per style"),
    seed: int = typer.Option(7, "--seed", help="표본 시드 / sampling seed"),
    output: Path | None = output_option("검토 시트 경로 / review sheet path (default: <data_dir>/review.md)"),
) -> None:
    """검토 시트를 쓰고 자동 결함 검사를 합니다 / Write a review sheet and run the automatic defect checks."""
    from aldlab.data.review import check_rows, load_rows, render_sheet, row_locations, sample_per_style
    from aldlab.errors import UserError
    from aldlab.files import atomic_write_text, read_json
    from aldlab.kb.io import load_kb

    if data_dir is None:
        data_dir = newest_dataset_dir(RUNS_DIR)
        if data_dir is None:
            raise UserError(
                "runs/ 아래에 데이터셋이 없습니다.",
                "No dataset under runs/ (looked for runs/data and runs/*/data).",
                path=RUNS_DIR,
                hint="먼저 aldlab pipeline 또는 aldlab data build 를 실행하거나 디렉터리를 주세요 / "
                "run `aldlab pipeline` or `aldlab data build` first, or pass the dataset directory",
            )
        Console(stderr=True).print(
            f"데이터셋 / dataset: {data_dir} (runs/ 아래 가장 최근 / the newest under runs/; "
            "다른 것은 인자로 / pass a directory for another)",
            highlight=False,
        )
    rows = load_rows(data_dir)
    if not rows["train"] and not rows["eval"]:
        raise UserError(
            "데이터셋 파일이 없습니다.",
            "No train.jsonl or eval.jsonl in the dataset directory.",
            path=data_dir,
            hint="먼저 aldlab data build 를 실행하세요 / run `aldlab data build` first",
        )
    if kb is None:
        manifest = Path(data_dir) / "manifest.json"
        kb = Path(read_json(manifest)["inputs"]["kb"]["path"]) if manifest.exists() else None
    from aldlab.settings import shipped_kb_dir

    knowledge = load_kb(kb or shipped_kb_dir())
    everything = [*rows["train"], *rows["eval"]]
    report = check_rows(everything, knowledge, row_locations(rows))
    samples = sample_per_style(everything, per_style, seed)
    sheet = output or Path(data_dir) / "review.md"
    atomic_write_text(sheet, render_sheet(samples, knowledge.by_id(), report, str(data_dir)))
    console = Console()
    table = Table(title=f"자동 검사 / automatic checks ({report.rows} rows)")
    table.add_column("check")
    table.add_column("found", justify="right")
    for name, count in report.counts.items():
        table.add_row(name, f"[{'green' if count == 0 else 'red'}]{count}[/]")
    console.print(table)
    for f in report.findings[:10]:
        console.print(f"  [yellow]{f.check}[/] {f.where} {f.row_id}: {f.question} — {f.detail}", highlight=False)
    console.print(f"검토 시트 / review sheet → {sheet}")
