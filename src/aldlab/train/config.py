"""Typed defaults of the fine-tuning stage (`train:` section of a preset).

Defaults follow the seed guide's `finetune_llama.py` (3 epochs, batch 4, lr 2e-4, LoRA
r=16 / alpha=32 / dropout 0.1 on q,k,v,o). Presets and CLI flags override them through
`aldlab.config.resolve_config(TrainConfig, "train", ...)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aldlab.errors import UserError

DEFAULT_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj"]


@dataclass
class TrainConfig:
    """Everything one fine-tuning run needs; recorded verbatim in training_meta.json."""

    model_name: str | None = None  # None -> aldlab.llm.model.default_model_name()
    train_file: str | None = None
    eval_file: str | None = None
    output_dir: str = "runs/adapter"
    num_epochs: float = 3
    max_steps: int | None = None  # optional cap on optimizer steps (wins over num_epochs)
    batch_size: int = 4  # per device
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    lr_scheduler: str = "cosine"  # cosine | linear | constant
    max_grad_norm: float = 1.0
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGET_MODULES))
    # Special tokens whose embedding row is trained too (PEFT trainable tokens). A base model
    # that was never instruction-tuned (gemma-3-270m) has an untrained <end_of_turn> row: with
    # LoRA alone the stop token lost to junk tokens (timevals, eleSp) and answers looped until
    # max_new_tokens; training that one row made 24/24 dev answers stop cleanly (0 loops vs 14).
    # Instruct models (the GPU presets) leave it empty, so their adapters stay vLLM-compatible.
    trainable_tokens: list[str] = field(default_factory=list)
    # int, "auto" (longest train/eval row, rounded up to 64) or "pNN" (NNth percentile of
    # the rows' lengths, rounded up to 64); rows longer than it are skipped, never cut.
    max_seq_len: int | str = 1024
    # Without it, training stops when more than 2% of any style (closed/rag/refusal) is too long.
    allow_skipping_long_rows: bool = False
    max_train_examples: int | None = None  # optional cap (cpu-demo)
    max_eval_examples: int | None = 200  # eval cost cap; eval loss on a fixed subset
    eval_steps: int = 50
    logging_steps: int = 5
    save_steps: int = 100
    save_total_limit: int = 2
    seed: int = 42
    gradient_checkpointing: bool = False
    load_in_4bit: bool = False
    dtype: str = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    group_by_length: bool = True
    save_inference_only: bool = False
    resume: bool = False
    num_threads: int | None = None  # CPU threads; None -> all cores

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str):
            self.target_modules = [m.strip() for m in self.target_modules.split(",") if m.strip()]
        self.max_seq_len = _parse_max_seq_len(self.max_seq_len)
        for name in ("batch_size", "gradient_accumulation_steps", "lora_r", "eval_steps",
                     "logging_steps", "save_steps"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"{name} 값은 1 이상이어야 합니다.", f"{name} must be >= 1.", hint=f"--{name}")
        if self.num_epochs <= 0 and not self.max_steps:
            raise UserError("num_epochs 값은 0보다 커야 합니다.", "num_epochs must be > 0.", hint="--num_epochs 3")
        if self.learning_rate <= 0:
            raise UserError("learning_rate 값은 0보다 커야 합니다.", "learning_rate must be > 0.")
        if not 0 <= self.lora_dropout < 1:
            raise UserError("lora_dropout 값은 0 이상 1 미만이어야 합니다.", "lora_dropout must be in [0, 1).")
        if self.lr_scheduler not in {"cosine", "linear", "constant"}:
            raise UserError(
                f"알 수 없는 lr_scheduler: {self.lr_scheduler}",
                f"Unknown lr_scheduler: {self.lr_scheduler}",
                hint="cosine | linear | constant",
            )
        bad = [m for m in self.target_modules if m in {"lm_head", "embed_tokens", "wte", "embed_out"}]
        if bad:
            # vLLM refuses LoRA adapters that touch embeddings or the LM head.
            raise UserError(
                f"임베딩/lm_head는 학습 대상으로 지정할 수 없습니다: {', '.join(bad)}",
                f"Embeddings / lm_head cannot be LoRA targets (vLLM rejects such adapters): {', '.join(bad)}",
                hint="--target_modules q_proj,k_proj,v_proj,o_proj",
            )

    @property
    def seq_len_is_auto(self) -> bool:
        return isinstance(self.max_seq_len, str)

    @property
    def output_path(self) -> Path:
        return Path(self.output_dir).expanduser()

    def to_dict(self) -> dict[str, Any]:
        from aldlab.config import config_to_dict

        return config_to_dict(self)


def _parse_max_seq_len(value: int | str) -> int | str:
    """A positive int, "auto", or "pNN" (0 < NN <= 100); anything else is a user error."""
    text = str(value).strip().lower()
    if text.isdigit() and int(text) >= 1:
        return int(text)
    if text == "auto":
        return "auto"
    number = text.removeprefix("auto:").removeprefix("p")
    if text.startswith(("p", "auto:")):
        try:
            if 0 < float(number) <= 100:
                return f"p{number}"
        except ValueError:
            pass
    raise UserError(
        f"max_seq_len 값이 올바르지 않습니다: {value}",
        f"Invalid max_seq_len: {value}",
        hint="양의 정수, auto(가장 긴 행), p99(99번째 백분위) / a positive integer, auto (longest row) or p99",
    )
