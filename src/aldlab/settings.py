"""Locations shared by every stage (no globals: each call reads the environment)."""

from __future__ import annotations

import os
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
