"""Scored answers a model gave to a question set, kept so `aldlab improve` need not ask again.

Every improve run has the promoted model answer the dev sets beside the candidate, although
that model answered the same sets in the run that promoted it (as the candidate) and nothing
its answers depend on has changed. On this CPU the promoted model's half is ~4 of the gate's
~9 minutes. So the scored rows of each model are kept, keyed by everything an answer depends
on: the adapter's weights (content hash, not the registry id, so a rebuilt registry cannot
hand back another model's answers), the question file's bytes, the KB's content hash, the
retrieval and generation settings, and which engine answered. Change any of them and the key
changes: the model answers again.

Entries live in `registry/answers/<key>.json`. They are written atomically; a run killed
mid-way leaves at most an entry nobody asks for again, never a wrong one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aldlab.config import config_to_dict
from aldlab.files import atomic_write_json, sha256_file

#: Eval settings an answer does not depend on (where it is written, which systems run, the judge).
_IGNORED_EVAL_FIELDS = {"questions", "systems", "adapter", "adapters", "output_dir", "judge_url", "judge_model",
                        "judge_api_key_env", "judge_pairwise", "bootstrap_samples", "seed", "fail_under"}


def answer_key(adapter_dir: str | Path, questions: str | Path, kb_hash: str | None, eval_cfg: Any, rag_cfg: Any) -> str:
    """The cache key of one model's answers to one question file (sha256 hex)."""
    settings = {k: v for k, v in config_to_dict(eval_cfg).items() if k not in _IGNORED_EVAL_FIELDS}
    payload = {
        "adapter": sha256_file(Path(adapter_dir) / "adapter_model.safetensors"),
        "questions": sha256_file(Path(questions)),
        "kb": kb_hash,
        "eval": settings,
        "rag": config_to_dict(rag_cfg),
        # `engine: auto` answers with llama.cpp when it is installed, transformers otherwise.
        "llama_cpp": importlib.util.find_spec("llama_cpp") is not None,
    }
    # default=str: nested paths (rag.dev_set may be a list of them), as the pipeline hashes stage inputs
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def load_answers(root: Path, key: str) -> list[dict[str, Any]] | None:
    """The kept rows for `key`, or None when there are none (or the file is unreadable)."""
    path = root / f"{key}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    rows = data.get("rows") if isinstance(data, dict) else None
    return rows if isinstance(rows, list) else None


def save_answers(root: Path, key: str, rows: Sequence[Mapping[str, Any]], system: str) -> None:
    """Keep `rows` (one system's scored rows) under `key`, the system name normalised away."""
    root.mkdir(parents=True, exist_ok=True)
    kept = [{**row, "system": "cached"} for row in rows if row.get("system") == system]
    atomic_write_json(root / f"{key}.json", {"rows": kept})


def as_system(rows: Sequence[Mapping[str, Any]], system: str) -> list[dict[str, Any]]:
    """Kept rows relabelled as `system`, to sit beside freshly scored rows."""
    return [{**row, "system": system} for row in rows]
