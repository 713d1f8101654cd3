"""`aldlab eval`: base vs fine-tuned, with and without retrieval, with an HTML report.

Exit codes: 0 = finished (whatever the scores), 2 = user error (bad flag/file),
1 = the optional `--fail-under` gate was not met. Low scores alone never fail the run.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from aldlab.cli_options import (
    MACHINE_DEFAULT_MODEL,
    adapter_option,
    config_option,
    kb_option,
    model_option,
    output_option,
    preset_option,
    quiet_option,
)
from aldlab.errors import UserError

console = Console()
err_console = Console(stderr=True)


def _systems(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise UserError("--systems가 비어 있습니다.", "--systems is empty.", hint="예 / e.g. base,ft,base+rag,ft+rag")
    return names


def eval_command(
    questions: Path | None = typer.Option(None, "--questions", help="질문 JSONL / question set (기본: evalsets/seed.jsonl)"),
    systems: str | None = typer.Option(None, "--systems", help="비교할 시스템 / systems: base,ft,base+rag,ft+rag"),
    model: str | None = model_option(MACHINE_DEFAULT_MODEL),
    adapter: list[str] | None = adapter_option(),
    kb: Path | None = kb_option(),
    output: Path | None = output_option("출력 디렉터리 / output directory"),
    llm_url: str | None = typer.Option(None, "--llm-url", help="OpenAI 호환 생성 서버 / OpenAI-compatible LLM endpoint"),
    llm_model: str | None = typer.Option(None, "--llm-model", help="--llm-url의 모델 이름 / model name at --llm-url"),
    judge_url: str | None = typer.Option(None, "--judge-url", help="LLM 평가자 서버 / OpenAI-compatible judge endpoint"),
    judge_model: str | None = typer.Option(None, "--judge-model", help="평가자 모델 이름 / judge model name"),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", min=1, help="답변 최대 토큰 / max new tokens"),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="한 번에 생성할 질문 수 / questions per generation batch"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="앞의 N개 질문만 / first N questions only"),
    fail_under: float | None = typer.Option(None, "--fail-under", help="주 시스템 핵심 사실 재현율 기준 (CI용) / CI gate"),
    preset: str | None = preset_option(),
    config: Path | None = config_option(),
    quiet: bool = quiet_option(),
) -> None:
    """기본 모델과 파인튜닝 모델을 검색 유무별로 평가하고 보고서를 씁니다 / evaluate systems and write a report."""
    from aldlab.config import resolve_config
    from aldlab.eval.config import EvalConfig
    from aldlab.eval.runner import run_eval
    from aldlab.rag.build import parse_adapter_specs, rag_config_from_flags

    eval_config = resolve_config(
        EvalConfig,
        "eval",
        preset=preset,
        config_file=config,
        overrides={
            "questions": questions,
            "systems": _systems(systems),
            "model_name": model,
            "adapters": parse_adapter_specs(adapter) or None,
            "kb": kb,
            "output_dir": output,
            "judge_url": judge_url,
            "judge_model": judge_model,
            "max_new_tokens": max_new_tokens,
            "batch_size": batch_size,
            "limit": limit,
            "fail_under": fail_under,
        },
    )
    rag_config = rag_config_from_flags(preset, config, llm_url=llm_url, llm_model=llm_model)
    result = run_eval(eval_config, progress=not quiet, rag_config=rag_config)
    console.print(result.metrics["headline"], highlight=False, soft_wrap=True)
    for name in ("answers.jsonl", "metrics.json", "report.html", "report.md"):
        console.print(f"  {result.paths[name]}", highlight=False)
    if result.passed is False:
        gate = result.metrics["fail_under"]
        err_console.print(
            f"[bold red]기준 미달 / below threshold:[/] {gate['system']} key-fact recall "
            f"{gate['value']:.3f} < {gate['threshold']:.3f}",
            highlight=False,
        )
        raise typer.Exit(1)
