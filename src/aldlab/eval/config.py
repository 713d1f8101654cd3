"""Typed defaults of the evaluation stage (`eval:` section of a preset)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aldlab.cli_options import MODEL_FLAG, OUTPUT_FLAG
from aldlab.settings import shipped_evalset, shipped_kb_dir

#: Systems compared by default: the four cells of {base, fine-tuned} x {closed-book, RAG}.
DEFAULT_SYSTEMS = ["base", "ft", "base+rag", "ft+rag", "passage"]


@dataclass
class EvalConfig:
    """Everything one `aldlab eval` run needs.

    `adapter` is a shortcut for `adapters={"ft": adapter}`; with several adapters, each
    name becomes a system (`name`, `name+rag`). `model_name=None` means the embedded /
    default base model. `fail_under` is an optional CI gate on the primary system's
    key-fact recall; low scores alone never make the run fail. Retrieval, decoding and a
    served model (`llm_url`, `llm_model`) are the `rag:` section's (`RagConfig`), the same
    settings `aldlab ask` uses; they are not repeated here. A field with help metadata is
    an `aldlab eval` flag (`aldlab.cli_options.dataclass_options`).
    """

    questions: str | Path = field(default_factory=shipped_evalset, metadata={
        "help": "질문 JSONL / question set (기본: evalsets/seed.jsonl)"})
    systems: list[str] = field(default_factory=lambda: list(DEFAULT_SYSTEMS), metadata={
        "help": "비교할 시스템 / systems: base,ft,base+rag,ft+rag,passage (passage = 검색 1위 문서 그대로 / the top retrieved passage verbatim)"})
    model_name: str | None = field(default=None, metadata=MODEL_FLAG)
    adapter: str | Path | None = None
    adapters: dict[str, str] = field(default_factory=dict)
    kb: str | Path = field(default_factory=shipped_kb_dir)
    output_dir: str | Path = field(default="runs/eval", metadata=OUTPUT_FLAG)
    judge_url: str | None = field(default=None, metadata={"help": "LLM 평가자 서버 / OpenAI-compatible judge endpoint"})
    judge_model: str | None = field(default=None, metadata={"help": "평가자 모델 이름 / judge model name"})
    #: Environment variable holding the judge endpoint's API key (never the key itself).
    judge_api_key_env: str = "ALDLAB_JUDGE_API_KEY"
    judge_pairwise: bool = True
    #: None: the answer length of `rag.max_new_tokens`, the one default ask, chat and serve use.
    #: cpu-demo sets 128 here (longer than a typical reference answer) to keep eval short.
    max_new_tokens: int | None = field(
        default=None, metadata={"help": "답변 최대 토큰 (기본: rag.max_new_tokens) / max new tokens (default: rag.max_new_tokens)", "min": 1}
    )
    #: Questions generated together (left-padded batch). 8 measured best on the 2-core
    #: CPU with the embedded model (bench/eval_generate.py); answers are identical to 1.
    batch_size: int = field(default=8, metadata={
        "help": "한 번에 생성할 질문 수 / questions per generation batch", "min": 1})
    bootstrap_samples: int = 1000
    seed: int = 42
    fail_under: float | None = field(default=None, metadata={
        "help": "주 시스템 핵심 사실 재현율 기준 (CI용) / CI gate"})
    limit: int | None = field(default=None, metadata={"help": "앞의 N개 질문만 / first N questions only", "min": 1})

    def adapter_dirs(self) -> dict[str, str]:
        """Adapter name -> directory, merging the single `adapter` shortcut in as "ft"."""
        merged = {str(k): str(v) for k, v in (self.adapters or {}).items()}
        if self.adapter:
            merged.setdefault("ft", str(self.adapter))
        return merged
