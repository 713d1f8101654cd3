"""Typed defaults of the evaluation stage (`eval:` section of a preset)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aldlab.settings import shipped_evalset, shipped_kb_dir

#: Systems compared by default: the four cells of {base, fine-tuned} x {closed-book, RAG}.
DEFAULT_SYSTEMS = ["base", "ft", "base+rag", "ft+rag"]


@dataclass
class EvalConfig:
    """Everything one `aldlab eval` run needs.

    `adapter` is a shortcut for `adapters={"ft": adapter}`; with several adapters, each
    name becomes a system (`name`, `name+rag`). `model_name=None` means the embedded /
    default base model. `fail_under` is an optional CI gate on the primary system's
    key-fact recall; low scores alone never make the run fail. Retrieval, decoding and a
    served model (`llm_url`, `llm_model`) are the `rag:` section's (`RagConfig`), the same
    settings `aldlab ask` uses; they are not repeated here.
    """

    questions: str | Path = field(default_factory=shipped_evalset)
    systems: list[str] = field(default_factory=lambda: list(DEFAULT_SYSTEMS))
    model_name: str | None = None
    adapter: str | Path | None = None
    adapters: dict[str, str] = field(default_factory=dict)
    kb: str | Path = field(default_factory=shipped_kb_dir)
    output_dir: str | Path = "runs/eval"
    judge_url: str | None = None
    judge_model: str | None = None
    #: Environment variable holding the judge endpoint's API key (never the key itself).
    judge_api_key_env: str = "ALDLAB_JUDGE_API_KEY"
    judge_pairwise: bool = True
    max_new_tokens: int = 128
    #: Questions generated together (left-padded batch). 8 measured best on the 2-core
    #: CPU with the embedded model (bench/eval_generate.py); answers are identical to 1.
    batch_size: int = 8
    bootstrap_samples: int = 1000
    seed: int = 42
    fail_under: float | None = None
    limit: int | None = None

    def adapter_dirs(self) -> dict[str, str]:
        """Adapter name -> directory, merging the single `adapter` shortcut in as "ft"."""
        merged = {str(k): str(v) for k, v in (self.adapters or {}).items()}
        if self.adapter:
            merged.setdefault("ft", str(self.adapter))
        return merged
