"""Locations shared by every stage (no globals: each call reads the environment)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

#: Package root of the repository checkout (src/aldlab -> repo root), used to find the
#: shipped KB and eval sets when running from a clone.
REPO_ROOT = Path(__file__).resolve().parents[2]


def aldlab_home() -> Path:
    """Cache directory for assembled models and indexes (`ALDLAB_HOME`, default ~/.cache/aldlab)."""
    return Path(os.environ.get("ALDLAB_HOME", Path.home() / ".cache" / "aldlab")).expanduser()


def shipped_kb_dir() -> Path:
    """The project's own Korean ALD knowledge base."""
    return REPO_ROOT / "knowledge" / "ald"


def shipped_evalset() -> Path:
    """The seed guide's evaluation questions."""
    return REPO_ROOT / "evalsets" / "seed.jsonl"


def configs_dir() -> Path:
    """Preset YAML files."""
    return REPO_ROOT / "configs"


# --------------------------------------------------------------------------- secrets

#: Config keys that once held a secret in plain text -> the key that now names its variable.
PLAIN_SECRET_KEYS = {"teacher_api_key": "teacher_api_key_env", "llm_api_key": "llm_api_key_env"}


def get_secret(env_name: str | None) -> str | None:
    """The secret held by environment variable `env_name`; None when it is unset or blank.

    The one way every stage gets a key (teacher, judge, a served LLM): a config names the
    variable (`*_api_key_env`), never the key itself, because YAML files are committed,
    shared and copied into every stage's manifest, while the environment is not. There is no
    hidden fallback (an `OPENAI_API_KEY` sent to whatever URL the config names would leak it):
    to use that variable, name it.
    """
    if not env_name:
        return None
    value = os.environ.get(env_name, "").strip()
    return value or None


# --------------------------------------------------------------------------- default adapter

#: File under ALDLAB_HOME naming the adapter `ask`, `chat` and `serve` answer with: the
#: promoted model of the registry (`aldlab.store.registry`), which writes it on every
#: promotion and rollback. Readers that only need the adapter read this one file.
DEFAULT_ADAPTER_FILE = "default_adapter.json"


@dataclass(frozen=True)
class DefaultAdapter:
    """The fine-tuned assistant `ask`, `chat` and `serve` use when not told otherwise."""

    adapter_dir: Path
    base_model: str | None  # what it was trained on; None = the machine's default model
    recorded_at: str
    #: The registry's id of this model (`aldlab models list`); "" in records written before
    #: the registry existed (the registry migrates them on first use).
    model_id: str = ""

    def exists(self) -> bool:
        """False when the run directory was deleted or moved since it was recorded."""
        return self.adapter_dir.is_dir()


def default_adapter_path() -> Path:
    return aldlab_home() / DEFAULT_ADAPTER_FILE


def record_default_adapter(adapter_dir: str | Path, base_model: str | None, model_id: str = "") -> Path:
    """Remember `adapter_dir` (trained on `base_model`) as the default assistant.

    Why a file under ALDLAB_HOME and not a flag: the user runs `aldlab pipeline` once and
    then `aldlab ask` from anywhere; the adapter must follow without being named again.
    Written atomically, so a crash never leaves a half-written record. Returns its path.
    """
    from aldlab.files import atomic_write_json

    record = {
        "adapter_dir": str(Path(adapter_dir).expanduser().resolve()),
        "base_model": base_model,
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if model_id:
        record["model_id"] = model_id
    path = default_adapter_path()
    atomic_write_json(path, record)
    return path


def default_adapter() -> DefaultAdapter | None:
    """The recorded default adapter, or None (never recorded, or the record is unreadable).

    An unreadable record is treated as absent rather than an error: it only picks a
    default, and every command still runs (with the base model and its warning).
    """
    path = default_adapter_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        adapter_dir = Path(str(data["adapter_dir"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    base = data.get("base_model")
    return DefaultAdapter(
        adapter_dir, str(base) if base else None, str(data.get("recorded_at", "")), str(data.get("model_id") or "")
    )
