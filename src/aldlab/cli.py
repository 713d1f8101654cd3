"""The `aldlab` command: one sub-command group per stage.

Each stage owns its commands in `aldlab/<stage>/commands.py`; this file only wires them
together and turns `UserError` into a clear bilingual message and exit code 2 (a
traceback only with `--debug`); typer's own usage errors get the same treatment in
`aldlab.cli_usage`. Command modules import heavy libraries (torch,
transformers) inside functions, so `aldlab --help` and `aldlab kb ...` start fast.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

from aldlab import __version__
from aldlab.cli_options import normalize_flag
from aldlab.cli_usage import BilingualGroup, use_bilingual_help_text
from aldlab.data.commands import app as data_app
from aldlab.eval.commands import eval_command
from aldlab.improve import improve_command, models_app
from aldlab.kb.commands import app as kb_app
from aldlab.pipeline import pipeline_command
from aldlab.rag.commands import ask_command, chat_command
from aldlab.serve.commands import serve_command
from aldlab.serve.feedback_commands import feedback_app
from aldlab.train.commands import export_command, train_command

err_console = Console(stderr=True)
use_bilingual_help_text()

app = typer.Typer(
    name="aldlab",
    cls=BilingualGroup,  # typer's usage errors in Korean, then English
    help="ALD 지식 베이스 → 데이터셋 → LoRA 파인튜닝 → 평가 → RAG 서비스 / ALD KB to Korean expert assistant.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # One spelling per flag; `--snake_case` and old names (FLAG_ALIASES) still match.
    context_settings={"token_normalize_func": normalize_flag},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aldlab {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: bool = typer.Option(False, "--debug", help="오류 시 traceback 출력 / show tracebacks"),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="버전 / version"),
) -> None:
    """aldlab: 반도체 ALD 공정 한국어 전문가 어시스턴트 툴킷."""
    if debug:
        os.environ["ALDLAB_DEBUG"] = "1"
    from aldlab.llm.model import quiet_model_libraries  # light: imports no model library

    quiet_model_libraries()  # before any command imports transformers


app.add_typer(kb_app, name="kb", help="지식 베이스 / knowledge base: validate, stats, import, add, search")
app.add_typer(data_app, name="data", help="학습 데이터셋 / dataset: build, review")
app.add_typer(feedback_app, name="feedback", help="피드백 검토 / feedback review: import, list, approve, reject, export")
app.command("train", context_settings={"allow_interspersed_args": True})(train_command)
app.command("export")(export_command)
app.command("ask")(ask_command)
app.command("chat")(chat_command)
app.command("eval")(eval_command)
app.command("serve")(serve_command)
app.command("pipeline")(pipeline_command)
app.command("improve")(improve_command)
app.add_typer(models_app, name="models", help="모델 레지스트리 / model registry: list, show, promote, rollback")


def main() -> None:
    """Console-script entry point."""
    from aldlab.errors import UserError

    debug = "--debug" in sys.argv or os.environ.get("ALDLAB_DEBUG") == "1"
    try:
        app()
    except UserError as exc:
        if debug:
            raise
        err_console.print(f"[bold red]오류 / error:[/] {exc.render()}", highlight=False, markup=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("중단됨 / interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
