"""`aldlab eval`: base vs fine-tuned, with and without retrieval, with an HTML report.

Exit codes: 0 = finished (whatever the scores), 2 = user error (bad flag/file),
1 = the optional `--fail-under` gate was not met. Low scores alone never fail the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from aldlab.cli_options import adapter_option, config_option, config_options, kb_option, preset_option, quiet_option
from aldlab.errors import UserError
from aldlab.eval.config import EvalConfig

console = Console()
err_console = Console(stderr=True)


@config_options(EvalConfig, show_defaults=False)
def eval_command(
    overrides: dict[str, Any],
    adapter: list[str] | None = adapter_option(),
    kb: Path | None = kb_option(),
    llm_url: str | None = typer.Option(None, "--llm-url", help="OpenAI 호환 생성 서버 / OpenAI-compatible LLM endpoint"),
    llm_model: str | None = typer.Option(None, "--llm-model", help="--llm-url의 모델 이름 / model name at --llm-url"),
    preset: str | None = preset_option(),
    config: Path | None = config_option(),
    quiet: bool = quiet_option(),
) -> None:
    """기본 모델과 파인튜닝 모델을 검색 유무별로 평가하고 보고서를 씁니다 / evaluate systems and write a report."""
    from aldlab.config import resolve_config
    from aldlab.eval.report import retrieval_summary
    from aldlab.eval.runner import run_eval
    from aldlab.rag.build import parse_adapter_specs, rag_config_from_flags

    if overrides["systems"] == []:
        raise UserError("--systems가 비어 있습니다.", "--systems is empty.", hint="예 / e.g. base,ft,base+rag,ft+rag")
    overrides |= {"adapters": parse_adapter_specs(adapter) or None, "kb": kb}
    eval_config = resolve_config(EvalConfig, "eval", preset=preset, config_file=config, overrides=overrides)
    rag_config = rag_config_from_flags(preset, config, llm_url=llm_url, llm_model=llm_model)
    result = run_eval(eval_config, progress=not quiet, rag_config=rag_config)
    console.print(result.metrics["headline"], highlight=False, soft_wrap=True)
    if retrieval_summary(result.metrics):
        console.print(retrieval_summary(result.metrics), highlight=False, soft_wrap=True)
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
