"""Preset and config-file loading shared by every stage.

A preset is `configs/<name>.yaml` with one top-level section per stage (`data`, `train`,
`eval`, `rag`, `serve`, `pipeline`). Each stage owns a typed dataclass of its defaults;
values come from the dataclass, then the preset/--config file, then CLI flags.

One setting has one home. Where two stages must agree (training prompts carry as many
contexts as serving retrieves), the dependent field is declared with `same_as(...)` and
takes the other section's value unless set itself, instead of a YAML comment asking people
to keep two numbers in step. Keys that moved to their one home (`MOVED_KEYS`) still work
in old YAML files, with a warning naming the line to delete.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from rich.console import Console
from rich.markup import escape

from aldlab.errors import UserError
from aldlab.settings import PLAIN_SECRET_KEYS, configs_dir

T = TypeVar("T")


def preset_path(preset: str) -> Path:
    """Resolve a preset name (`cpu-demo`) or a YAML path to a file."""
    candidate = Path(preset)
    if candidate.suffix in {".yaml", ".yml"} and candidate.exists():
        return candidate
    named = configs_dir() / f"{preset}.yaml"
    if named.exists():
        return named
    known = sorted(p.stem for p in configs_dir().glob("*.yaml"))
    raise UserError(
        f"알 수 없는 프리셋입니다: {preset}",
        f"Unknown preset: {preset}",
        hint=f"사용 가능 / available: {', '.join(known) or '(none)'}",
    )


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with a clear error on syntax problems."""
    p = Path(path)
    if not p.exists():
        raise UserError("설정 파일이 없습니다.", "Config file not found.", path=p)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UserError(
            "YAML 형식 오류입니다.",
            f"Invalid YAML: {getattr(exc, 'problem', exc)}",
            path=p,
            line=(mark.line + 1) if mark else None,
        ) from exc
    if not isinstance(data, dict):
        raise UserError("설정 파일은 매핑이어야 합니다.", "Config file must be a mapping.", path=p)
    return data


#: Settings that moved to their one home: (section, old key) -> (section, key). In an old
#: YAML file the old key still counts, for the new key when that file does not set it.
MOVED_KEYS: dict[tuple[str, str], tuple[str, str]] = {
    # EvalConfig duplicated RagConfig's endpoint and was merged into it with dataclasses.replace.
    ("eval", "llm_url"): ("rag", "llm_url"),
    ("eval", "llm_model"): ("rag", "llm_model"),
    # The service's default answer length overrode rag.max_new_tokens; answers now have one.
    ("serve", "default_max_new_tokens"): ("rag", "max_new_tokens"),
}

_warned: set[tuple[str, str, str]] = set()


def same_as(section: str, key: str) -> dict[str, Any]:
    """Field metadata: when this field is not set, it takes `section.key` of the same preset and
    config file (`num_context_docs: int | None = field(default=None, metadata=same_as("rag", "top_k"))`)."""
    return {"same_as": (section, key)}


def _section_of(data: Mapping[str, Any], section: str, source: str | Path) -> dict[str, Any]:
    part = data.get(section) or {}
    if not isinstance(part, dict):
        raise UserError(f"'{section}' 섹션은 매핑이어야 합니다.", f"Section '{section}' must be a mapping.", path=source)
    return dict(part)


def _apply_moved_keys(data: Mapping[str, Any], section: str, part: dict[str, Any], source: str | Path) -> None:
    """Drop this section's moved keys and take over old keys that now live in this section."""
    for (old_section, old_key), (new_section, new_key) in MOVED_KEYS.items():
        if old_section == section and old_key in part:
            del part[old_key]
            _warn_moved(source, f"{old_section}.{old_key}", f"{new_section}.{new_key}")
        if new_section == section and new_key not in part:
            old_part = _section_of(data, old_section, source)
            if old_key in old_part:
                part[new_key] = old_part[old_key]
                _warn_moved(source, f"{old_section}.{old_key}", f"{new_section}.{new_key}")


def _refuse_plain_secrets(section: str, part: Mapping[str, Any], source: str | Path) -> None:
    """A key written into YAML is refused, not used: the file is committed, shared and copied
    into manifests. The config names the environment variable instead (`aldlab.settings.get_secret`)."""
    for key, env_key in PLAIN_SECRET_KEYS.items():
        if key in part:
            raise UserError(
                f"'{section}.{key}'에 API 키를 직접 쓰지 마세요: 키는 환경 변수에 두고 '{section}.{env_key}'에 그 변수 이름을 "
                "적습니다.",
                f"'{section}.{key}' holds a secret in a config file; keep the key in an environment variable and "
                f"name that variable in '{section}.{env_key}'.",
                path=source,
                hint=f"'{key}' 줄을 지우고 export 하세요 / delete the '{key}' line and export the variable",
            )


def _warn_moved(source: str | Path, old: str, new: str) -> None:
    key = (str(source), old, new)
    if key in _warned:
        return
    _warned.add(key)
    Console(stderr=True).print(
        f"[yellow]경고 / warning:[/] {escape(str(source))}: '{old}'는 '{new}'로 옮겨졌습니다 — '{new}'를 쓰고 "
        f"'{old}' 줄을 지우세요 / '{old}' moved to '{new}': set '{new}' and delete the '{old}' line",
        highlight=False,
    )


def _sections(section: str, preset: str | None, config_file: str | Path | None) -> list[dict[str, Any]]:
    """One stage's section from the preset and then the config file, moved keys applied."""
    parts = []
    for source in (preset_path(preset) if preset else None, config_file):
        if source is None:
            continue
        data = load_yaml(source)
        part = _section_of(data, section, source)
        _refuse_plain_secrets(section, part, source)
        _apply_moved_keys(data, section, part, source)
        parts.append(part)
    return parts


def load_section(section: str, preset: str | None = None, config_file: str | Path | None = None) -> dict[str, Any]:
    """Merge one stage's section from a preset and then a config file (file wins)."""
    merged: dict[str, Any] = {}
    for part in _sections(section, preset, config_file):
        merged.update(part)
    return merged


def _linked_value(
    section: str, name: str, link: tuple[str, str], preset: str | None, config_file: str | Path | None
) -> Any:
    """A `same_as` field's value: per source (preset, then config file), its own key if that
    source sets it, else the linked key; the later source wins. So `--config` with
    `rag.top_k: 5` moves a preset's `data.num_context_docs: 3` along with it."""
    own = _sections(section, preset, config_file)
    other = _sections(link[0], preset, config_file)
    value = None
    for mine, theirs in zip(own, other, strict=True):
        if mine.get(name) is not None:
            value = mine[name]
        elif theirs.get(link[1]) is not None:
            value = theirs[link[1]]
    return value


def build_config(cls: type[T], values: dict[str, Any], *, source: str = "config") -> T:
    """Instantiate a config dataclass, rejecting unknown keys with a helpful message."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise UserError(
            f"알 수 없는 설정 항목: {', '.join(unknown)}",
            f"Unknown {source} key(s): {', '.join(unknown)}",
            hint=f"가능한 항목 / valid keys: {', '.join(sorted(names))}",
        )
    return cls(**values)


def resolve_config(
    cls: type[T],
    section: str,
    *,
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> T:
    """Defaults <- preset <- config file <- CLI overrides (None values are 'not given').

    A `same_as` field follows the linked key of the same preset and config file unless the
    same source sets it (see `_linked_value`); with neither, the dataclass fills its default.
    """
    values = load_section(section, preset, config_file)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if "same_as" in f.metadata:
            linked = _linked_value(section, f.name, f.metadata["same_as"], preset, config_file)
            if linked is not None:
                values[f.name] = linked
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return build_config(cls, values, source=section)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as JSON-ready values (paths as strings) for manifests."""
    out = {}
    for key, value in dataclasses.asdict(config).items():
        out[key] = str(value) if isinstance(value, Path) else value
    return out
