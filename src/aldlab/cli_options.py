"""Options every `aldlab` command shares: one spelling and one help text per concept.

Spelling rule: `--kebab-case` is canonical. `normalize_flag` is the root command's click
`token_normalize_func`, so every sub-command also accepts the `--snake_case` spelling
(the seed's `finetune_llama.py` flags: `--train_file`, `--num_epochs`, ...) and the old
names in `FLAG_ALIASES`, without listing them in `--help`. Click applies it to the
declared names and to what the user typed, so `--model_name`, `--model-name` and
`--model` all reach the same option.

Only typer is imported here: `aldlab --help` stays fast.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import typer

#: Old spellings (after `_` -> `-`) of a canonical flag. Hidden: they keep old commands and
#: scripts working, `--help` shows only the canonical name.
FLAG_ALIASES: dict[str, str] = {
    "model-name": "model",  # finetune_llama.py and the old `aldlab train`
    "base-model": "model",  # the old `aldlab export`
    "output-dir": "output",  # finetune_llama.py and the old `aldlab train`
    "out": "output",  # the old `aldlab kb audit`
    "no-progress": "quiet",  # the old `aldlab train`
    "no-adapter": "base",  # the second name ask, chat and serve used to list
}


def normalize_flag(name: str) -> str:
    """`model_name` -> `model`: the one spelling an option name (without dashes) is matched by."""
    name = name.replace("_", "-")
    return FLAG_ALIASES.get(name, name)


PRESET_HELP = (
    "프리셋: configs/<이름>.yaml 또는 YAML 경로 (cpu-demo, gpu-qwen7b, gpu-qwen7b-qlora); 없으면 내장 기본값 / "
    "preset name or YAML path; none = the built-in defaults"
)
CONFIG_HELP = "추가 설정 YAML (프리셋 다음, 옵션 전에 적용) / extra config YAML, applied after the preset, before flags"
QUIET_HELP = "진행 표시 끄기 / no progress bars"
ADAPTER_HELP = (
    "LoRA 어댑터: DIR 또는 이름=DIR, 반복 가능 (DIR만 주면 이름 ft) / LoRA adapter: DIR or NAME=DIR, "
    "repeatable (a bare DIR is named ft)"
)
KB_HELP = "KB 디렉터리 또는 파일 (docs_ald.json 포함; 기본: 내장 KB) / KB dir or file (legacy docs_ald.json too; default: the shipped KB)"
MODEL_HELP = "기반 모델: embedded | Hub id | 로컬 디렉터리 / base model: embedded, a Hub id or a local directory"
#: What an absent --model means where nothing else decides (aldlab.llm.model.default_model_name).
MACHINE_DEFAULT_MODEL = (
    "기본: CUDA면 Qwen2.5-7B-Instruct, 아니면 embedded gemma-3-270m / "
    "default: Qwen2.5-7B-Instruct on CUDA, the embedded gemma-3-270m otherwise"
)


def kb_option() -> Any:
    return typer.Option(None, "--kb", help=KB_HELP)


def preset_option() -> Any:
    """`--preset`: the same default (none) and help in every command that reads a preset."""
    return typer.Option(None, "--preset", help=PRESET_HELP)


def config_option() -> Any:
    return typer.Option(None, "--config", help=CONFIG_HELP)


def quiet_option() -> Any:
    return typer.Option(False, "--quiet", "-q", help=QUIET_HELP)


def model_option(default: str) -> Any:
    """`--model`; `default` says what an absent flag means for this command."""
    return typer.Option(None, "--model", help=f"{MODEL_HELP} ({default})")


def adapter_option() -> Any:
    """`--adapter`, parsed by `aldlab.rag.build.parse_adapter_specs`."""
    return typer.Option(None, "--adapter", help=ADAPTER_HELP)


def output_option(help_text: str, *, required: bool = False) -> Any:
    return typer.Option(... if required else None, "--output", "-o", help=help_text)


# --------------------------------------------------------------------------- options from a dataclass


def dataclass_options(
    cls: type,
    *,
    help_texts: Mapping[str, str],
    flag_names: Mapping[str, tuple[str, ...]] | None = None,
) -> list[inspect.Parameter]:
    """One keyword parameter per dataclass field, each a typer option defaulting to None.

    None means "not given", so the preset and config file keep their values; a bool field
    becomes `--flag/--no-flag`, so a flag can also turn off a preset's `true`. Help comes
    from the field's `metadata["help"]`, else from `help_texts`; the dataclass default is
    appended to it. A list field is taken as one comma-separated value.
    """
    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        help_text = f.metadata.get("help") or help_texts.get(f.name)
        if not help_text:
            raise TypeError(f"{cls.__name__}.{f.name} has no CLI help text")
        default = _field_default(f)
        if default is not None and default is not False and default not in ("", []):
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            help_text += f" [기본 / default: {shown}]"
        names = (flag_names or {}).get(f.name) or (f"--{f.name.replace('_', '-')}",)
        cli_type = _cli_type(hints[f.name])
        if cli_type is bool:
            names = (f"{names[0]}/--no-{names[0].removeprefix('--')}", *names[1:])
        option = typer.Option(None, *names, help=help_text)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=cli_type | None))
    return params


def list_fields(cls: type) -> set[str]:
    """Names of the dataclass's list fields (given on the command line as `a,b,c`)."""
    hints = typing.get_type_hints(cls)
    return {f.name for f in dataclasses.fields(cls) if typing.get_origin(hints[f.name]) is list}


def with_parameters(func: Callable[..., Any], params: list[inspect.Parameter]) -> Callable[..., Any]:
    """Give `func(**values)` the signature typer reads its options from."""
    func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    func.__annotations__ = {p.name: p.annotation for p in params}
    return func


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _cli_type(hint: Any) -> type:
    """The type typer parses: bool, int, float or str (lists, unions of int and str -> str)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if hint in (bool, int, float, str):
        return hint
    if typing.get_origin(hint) is list:
        return str
    if len(args) == 1 and args[0] in (bool, int, float, str, Path):
        return str if args[0] is Path else args[0]
    return str
