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

#: Field metadata (see `dataclass_options`) of a config's base model and output directory:
#: the same `--model` / `--output` wherever a stage's config has them.
MODEL_FLAG = {"help": f"{MODEL_HELP} ({MACHINE_DEFAULT_MODEL})", "flags": ("--model",)}
OUTPUT_FLAG = {"help": "출력 디렉터리 / output directory", "flags": ("--output", "-o")}


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
#
# A config field is a flag when its metadata has a help text (TRL's HfArgumentParser idea):
#
#     batch_size: int = field(default=8, metadata={"help": "배치 / batch", "min": 1})
#
# Optional metadata: "flags" (the spellings, when not `--field-name`: ("--output", "-o")),
# "min" / "max" (a range typer checks), "repeatable" (a list field given as `--x a --x b`
# instead of one comma-separated `--x a,b`).


def dataclass_options(cls: type, *, show_defaults: bool = True) -> list[inspect.Parameter]:
    """One keyword parameter per field with help text, each a typer option defaulting to None.

    None means "not given", so the preset and config file keep their values; a bool field
    becomes `--flag/--no-flag`, so a flag can also turn off a preset's `true`. With
    `show_defaults`, the dataclass default is appended to the help (train's; eval, data and
    serve say a default in words where it matters, e.g. "(default 8000)").
    """
    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        help_text = f.metadata.get("help")
        if not help_text:
            continue
        default = _field_default(f) if show_defaults else None
        if default is not None and default is not False and default not in ("", []):
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            help_text += f" [기본 / default: {shown}]"
        names = f.metadata.get("flags") or (f"--{f.name.replace('_', '-')}",)
        cli_type = _cli_type(hints[f.name], repeatable=f.metadata.get("repeatable", False))
        if cli_type is bool:
            names = (f"{names[0]}/--no-{names[0].removeprefix('--')}", *names[1:])
        limits = {key: f.metadata[key] for key in ("min", "max") if key in f.metadata}
        option = typer.Option(None, *names, help=help_text, **limits)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=cli_type | None))
    return params


def config_options(cls: type, *, show_defaults: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the command also takes `dataclass_options(cls)`, ahead of its own options.

    The decorated function is called as `func(overrides, **its_own_options)`, where
    `overrides` maps each generated field to its value (None = not given; a comma-separated
    list already split), ready for `aldlab.config.resolve_config`.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        generated = dataclass_options(cls, show_defaults=show_defaults)
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
               for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "overrides"]
        lists = list_fields(cls)

        def command(**values: Any) -> Any:
            overrides = {p.name: values.pop(p.name) for p in generated}
            for name in lists & overrides.keys():  # `a,b` -> [a, b]; a repeatable flag given no times -> None
                value = overrides[name]
                overrides[name] = _split_list(value) if isinstance(value, str) else list(value or []) or None
            return func(overrides, **values)

        command.__name__, command.__doc__, command.__module__ = func.__name__, func.__doc__, func.__module__
        return with_parameters(command, [*generated, *own])

    return decorate


def list_fields(cls: type) -> set[str]:
    """Names of the dataclass's list fields."""
    hints = typing.get_type_hints(cls)
    return {f.name for f in dataclasses.fields(cls) if typing.get_origin(hints[f.name]) is list}


def with_parameters(func: Callable[..., Any], params: list[inspect.Parameter]) -> Callable[..., Any]:
    """Give `func(**values)` the signature typer reads its options from."""
    func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    func.__annotations__ = {p.name: p.annotation for p in params}
    return func


def _split_list(value: str | None) -> list[str] | None:
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _cli_type(hint: Any, *, repeatable: bool = False) -> Any:
    """The type typer parses: bool, int, float, str or Path; a list is one comma-separated
    str, or with `repeatable` a list of its item type; other unions are str."""
    if hint in (bool, int, float, str, Path):
        return hint
    if typing.get_origin(hint) is list:
        return list[_cli_type(typing.get_args(hint)[0])] if repeatable else str
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if Path in args and all(a in (str, Path) for a in args):
        return Path
    if len(args) == 1 and args[0] in (bool, int, float, str):
        return args[0]
    return str
