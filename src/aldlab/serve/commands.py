"""`aldlab serve`: the API and web UI on one port (127.0.0.1 by default).

    aldlab serve                                   # embedded model, shipped KB
    aldlab serve --adapter ald=runs/lora/adapter   # base + a fine-tuned adapter
    aldlab serve --llm-url http://gpu-box:8000/v1  # generation by a vLLM server

Heavy imports (torch, the RAG core) happen inside functions so `aldlab --help` stays fast.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from aldlab.cli_options import config_options
from aldlab.errors import UserError
from aldlab.rag.build import (
    BASE_MODEL_WARNING,
    ModelChoice,
    build_assistant,
    choose_model,
    parse_adapter_specs,
    rag_config_from_flags,
)
from aldlab.rag.commands import ADAPTER_OPTION, BASE_OPTION, CONFIG_OPTION, KB_OPTION, MODEL_OPTION, PRESET_OPTION
from aldlab.serve.settings import ADMIN_TOKEN_ENV, API_KEY_ENV, ServeSettings
from aldlab.settings import shipped_kb_dir

err_console = Console(stderr=True)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def secret_from_env(name: str) -> str | None:
    """A token from the environment; a guessable one (README's `change-me`, 16x"a",
    < 24 chars) stops the server instead of protecting nothing (`guards.weak_token_reason`)."""
    from aldlab.serve.guards import TOKEN_RECIPE, weak_token_reason

    value = (os.environ.get(name) or "").strip()
    if not value:
        return None
    reason = weak_token_reason(value)
    if reason is not None:
        raise UserError(
            f"{name} 가 너무 약합니다: {reason[0]}. 이렇게 만드세요: {TOKEN_RECIPE}",
            f"{name} is too weak: {reason[1]}. Make one with: {TOKEN_RECIPE}",
            hint=f'export {name}="$({TOKEN_RECIPE})"',
        )
    return value


def resolve_settings(
    *,
    preset: str | None,
    config_file: Path | None,
    overrides: dict[str, Any],
    llm_url: str | None,
) -> ServeSettings:
    """ServeSettings from defaults <- preset <- --config <- flags, plus the admin token env."""
    from aldlab.config import resolve_config

    settings = resolve_config(ServeSettings, "serve", preset=preset, config_file=config_file, overrides=overrides)
    if settings.kb is None:
        settings.kb = str(shipped_kb_dir())
    if settings.improve_preset is None:
        settings.improve_preset = preset  # the admin tab's improve trains as this server was set up
    settings.admin_token = secret_from_env(ADMIN_TOKEN_ENV)
    settings.api_key = secret_from_env(API_KEY_ENV)
    if llm_url and settings.generation_threads == 1:
        # Remote generation is I/O-bound; vLLM batches concurrent requests itself.
        settings.generation_threads = 8
    return settings


def choose_serve_model(
    settings: ServeSettings, model: str | None, adapters: dict[str, str], *, no_adapter: bool, llm_url: str | None
) -> ModelChoice:
    """The ask/chat resolver (flags, else the pipeline's recorded adapter), said on stderr.

    Fills `settings.default_model` (what requests naming no model get, and what the web UI
    preselects) and `settings.base_model_warning`.
    """
    follow = not adapters and not no_adapter and not llm_url
    if follow:
        from aldlab.store.registry import ModelRegistry

        ModelRegistry().migrate()  # a pre-registry default adapter gets its version id first
    choice = choose_model(model, adapters, base=no_adapter, llm_url=llm_url)
    if follow:
        name_by_version(choice, settings)
    if not llm_url:  # a remote server has its own model list; base/adapters come from it
        settings.default_model = choice.default
    settings.base_model_warning = choice.base_warning
    for note in choice.notes:
        err_console.print(f"[yellow]참고 / note:[/] {note}", highlight=False)
    if not llm_url:
        err_console.print(f"기본 응답 모델 / default model: {choice.describe()}", highlight=False)
    if choice.base_warning:
        err_console.print(f"[yellow]경고 / warning:[/] {BASE_MODEL_WARNING}", highlight=False)
    return choice


def name_by_version(choice: ModelChoice, settings: ServeSettings) -> None:
    """Serve the registry's promoted adapter under its version id ("v0003", not "ft"), and
    follow the registry from now on (`aldlab.serve.swapper`): the model list, every answer
    and the answer log then name the version that answered."""
    from aldlab.rag.build import DEFAULT_ADAPTER_NAME
    from aldlab.settings import default_adapter

    settings.follow_registry = True
    recorded = default_adapter()
    path = choice.adapters.get(DEFAULT_ADAPTER_NAME)
    if recorded is None or not recorded.model_id or path != str(recorded.adapter_dir):
        return
    choice.adapters = {recorded.model_id: path}
    choice.default = recorded.model_id
    settings.model_versions = {recorded.model_id: recorded.model_id}


def uvicorn_options(settings: ServeSettings) -> dict[str, Any]:
    """Where uvicorn listens and whose forwarded headers it believes.

    uvicorn's defaults believe X-Forwarded-For from 127.0.0.1 (or $FORWARDED_ALLOW_IPS),
    so any local process, or a local proxy passing the header through, could give each
    request a new client address and escape the per-client rate limits, queue share and
    admin-token throttle (issue 22). The header is believed only from `trusted_proxies`.
    """
    trusted = [p.strip() for entry in settings.trusted_proxies for p in entry.split(",") if p.strip()]
    return {
        "host": settings.host,
        "port": settings.port,
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": ",".join(trusted),  # never None: the environment does not decide
    }


def build_app(assistant: Any, settings: ServeSettings) -> Any:
    """The FastAPI app with its SQLite store."""
    from aldlab.serve.app import create_app
    from aldlab.store import Store

    return create_app(assistant, Store(settings.db_path()), settings)


@config_options(ServeSettings, show_defaults=False)
def serve_command(
    overrides: dict[str, Any],
    kb: Path | None = KB_OPTION,
    preset: str | None = PRESET_OPTION,
    config_file: Path | None = CONFIG_OPTION,
    model: str | None = MODEL_OPTION,
    adapter: list[str] | None = ADAPTER_OPTION,
    no_adapter: bool = BASE_OPTION,
    llm_url: str | None = typer.Option(
        None, "--llm-url", help="OpenAI 호환 LLM 서버 (예: vLLM) / OpenAI-compatible LLM server URL"
    ),
    llm_model: str | None = typer.Option(None, "--llm-model", help="LLM 서버의 기본 모델 이름 / base model name there"),
) -> None:
    """API와 웹 UI 실행 / Run the OpenAI-compatible API and the web UI."""
    import uvicorn

    overrides["kb"] = str(kb) if kb else None
    settings = resolve_settings(preset=preset, config_file=config_file, overrides=overrides, llm_url=llm_url)
    choice = choose_serve_model(settings, model, parse_adapter_specs(adapter), no_adapter=no_adapter, llm_url=llm_url)
    if not is_loopback(settings.host):
        err_console.print(
            f"[yellow]경고 / warning:[/] {settings.host} 에 바인딩합니다 — 네트워크에 공개됩니다. "
            "TLS 프록시 뒤에서 실행하세요 / exposed to the network: run behind a TLS proxy."
        )
    with err_console.status("모델과 색인을 불러오는 중… / loading model and index…"):
        config = rag_config_from_flags(preset, config_file, llm_url=llm_url, llm_model=llm_model)
        assistant = build_assistant(
            settings.kb, config, model_name=choice.model_name, adapters=choice.adapters, load_model=True
        )
        app = build_app(assistant, settings)
    admin = "켜짐 / on" if settings.admin_token else f"꺼짐 / off (set {ADMIN_TOKEN_ENV})"
    if settings.host in ("0.0.0.0", "::") and not settings.allowed_hosts:
        err_console.print(
            "[yellow]경고 / warning:[/] 모든 주소에 바인딩했지만 --allowed-host 가 없어 localhost 로만 접속됩니다 / "
            "bound to all addresses: add --allowed-host NAME for the name clients use"
        )
    if not is_loopback(settings.host) and not settings.api_key:
        err_console.print(f"[yellow]경고 / warning:[/] {API_KEY_ENV} 미설정: 누구나 질문·피드백 가능 / anyone can ask and send feedback")
    if not config.llm_url:
        from aldlab.llm.llamacpp import speed_hint

        hint = speed_hint(config.engine, choice.model_name)
        if hint:
            err_console.print(hint, highlight=False)
    err_console.print(
        f"aldlab serve: http://{settings.host}:{settings.port}/  "
        f"DB {settings.db_path()}  관리자 / admin: {admin}",
        highlight=False,
    )
    uvicorn.run(app, **uvicorn_options(settings), log_level="info", access_log=False)
