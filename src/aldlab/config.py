"""Preset and config-file loading shared by every stage.

A preset is `configs/<name>.yaml` with one top-level section per stage (`data`, `train`,
`eval`, `rag`, `serve`, `pipeline`). Each stage owns a typed dataclass of its defaults;
values come from the dataclass, then the preset/--config file, then CLI flags.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

from aldlab.errors import UserError
from aldlab.settings import configs_dir

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


def load_section(section: str, preset: str | None = None, config_file: str | Path | None = None) -> dict[str, Any]:
    """Merge one stage's section from a preset and then a config file (file wins)."""
    merged: dict[str, Any] = {}
    for source in (preset_path(preset) if preset else None, config_file):
        if source is None:
            continue
        data = load_yaml(source)
        part = data.get(section) or {}
        if not isinstance(part, dict):
            raise UserError(
                f"'{section}' 섹션은 매핑이어야 합니다.", f"Section '{section}' must be a mapping.", path=source
            )
        merged.update(part)
    return merged


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
    """Defaults <- preset <- config file <- CLI overrides (None values are 'not given')."""
    values = load_section(section, preset, config_file)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return build_config(cls, values, source=section)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as JSON-ready values (paths as strings) for manifests."""
    out = {}
    for key, value in dataclasses.asdict(config).items():
        out[key] = str(value) if isinstance(value, Path) else value
    return out
