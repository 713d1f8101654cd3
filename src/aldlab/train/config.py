"""Typed defaults of the fine-tuning stage (`train:` section of a preset).

Defaults follow the seed guide's `finetune_llama.py` (3 epochs, batch 4, lr 2e-4, LoRA
r=16 / alpha=32 / dropout 0.1 on q,k,v,o). Presets and CLI flags override them through
`aldlab.config.resolve_config(TrainConfig, "train", ...)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aldlab.cli_options import MODEL_FLAG, OUTPUT_FLAG
from aldlab.errors import UserError
from aldlab.llm.model import dtype_name

DEFAULT_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj"]


@dataclass
class TrainConfig:
    """Everything one fine-tuning run needs; recorded verbatim in training_meta.json.

    Every field is an `aldlab train` flag (`aldlab.cli_options.dataclass_options`); its help
    is the field's metadata, the default is appended to it.
    """

    model_name: str | None = field(default=None, metadata=MODEL_FLAG)  # None -> aldlab.llm.model.default_model_name()
    train_file: str | None = field(default=None, metadata={"help": "학습 JSONL (messages) / training chat JSONL"})
    eval_file: str | None = field(default=None, metadata={
        "help": "평가 JSONL; 없으면 학습 데이터의 5% / eval JSONL (default: 5% of the training rows)"})
    output_dir: str = field(default="runs/adapter", metadata=OUTPUT_FLAG)
    num_epochs: float = field(default=3, metadata={"help": "에폭 수 / epochs"})
    max_steps: int | None = field(default=None, metadata={
        "help": "최대 옵티마이저 스텝 (에폭보다 우선) / cap on optimizer steps (wins over epochs)"})
    batch_size: int = field(default=4, metadata={"help": "장치당 배치 / per-device batch"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "그래디언트 누적 / gradient accumulation steps"})
    learning_rate: float = field(default=2e-4, metadata={"help": "학습률 / learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "가중치 감쇠 / weight decay"})
    warmup_ratio: float = field(default=0.03, metadata={"help": "워밍업 비율 / warmup share of the steps"})
    lr_scheduler: str = field(default="cosine", metadata={"help": "학습률 스케줄 / schedule: cosine | linear | constant"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "그래디언트 클리핑 / gradient clipping norm"})
    lora_r: int = field(default=16, metadata={"help": "LoRA r"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout"})
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGET_MODULES), metadata={
        "help": "LoRA 대상 모듈 (쉼표) / LoRA target modules, comma-separated"})
    # Special tokens whose embedding row is trained too (PEFT trainable tokens). A base model
    # that was never instruction-tuned (gemma-3-270m) has an untrained <end_of_turn> row: with
    # LoRA alone the stop token lost to junk tokens (timevals, eleSp) and answers looped until
    # max_new_tokens; training that one row made 24/24 dev answers stop cleanly (0 loops vs 14).
    # Instruct models (the GPU presets) leave it empty, so their adapters stay vLLM-compatible.
    trainable_tokens: list[str] = field(default_factory=list, metadata={
        "help": "임베딩 행도 학습할 특수 토큰 (쉼표) / special tokens whose embedding row is trained, comma-separated"})
    # int, "auto" (longest train/eval row, rounded up to 64) or "pNN" (NNth percentile of
    # the rows' lengths, rounded up to 64); rows longer than it are skipped, never cut.
    # "auto" by default: RAG rows carry up to 5 passages (817 tokens median, 1050 max with
    # Gemma's tokenizer), so the seed's fixed 1024 stopped its own flags before training.
    # Batches are padded only to their own longest row, so the limit costs no memory.
    max_seq_len: int | str = field(default="auto", metadata={
        "help": "최대 토큰 길이(정수, auto=가장 긴 행, p99=99% 백분위), 더 긴 행은 제외 / max tokens (int, "
        "auto = longest row, p99 = 99th percentile); longer rows are skipped"})
    # Without it, training stops when more than 2% of any style (closed/rag/refusal) is too long.
    allow_skipping_long_rows: bool = field(default=False, metadata={
        "help": "스타일별 2% 넘게 긴 행을 버려도 계속 / continue even when >2% of a style is too long"})
    # Optional caps: cpu-demo trains on a subset; eval loss is taken on a fixed subset (its cost).
    max_train_examples: int | None = field(default=None, metadata={"help": "학습 예제 상한 / cap on training rows"})
    max_eval_examples: int | None = field(default=200, metadata={"help": "평가 예제 상한 / cap on eval rows"})
    eval_steps: int = field(default=50, metadata={"help": "평가 주기 / eval every N steps"})
    logging_steps: int = field(default=5, metadata={"help": "로그 주기 / log every N steps"})
    save_steps: int = field(default=100, metadata={"help": "체크포인트 주기 / checkpoint every N steps"})
    save_total_limit: int = field(default=2, metadata={"help": "남길 체크포인트 수 / checkpoints kept"})
    # `best/` (adapter + tokenizer + best.json) is rewritten whenever the eval loss improves on
    # every earlier evaluation after step 0, so the best adapter exists whether or not this
    # flag is set; the flag only decides which one the output dir itself holds at the end.
    load_best_model_at_end: bool = field(default=False, metadata={
        "help": "끝에 출력 디렉터리의 어댑터를 평가 손실이 가장 낮았던 것으로 (best/는 항상 저장) "
        "/ leave the lowest-eval-loss adapter in the output dir instead of the last (best/ is kept either way)"})
    # Greedy answers to a few eval questions with the trained adapter, in training_meta.json:
    # a falling loss with answers that never stop (the untrained <end_of_turn> of gemma-3-270m)
    # shows up here and not in the loss curve.
    generation_check: int = field(default=3, metadata={
        "help": "학습 끝에 평가 질문 N개에 답해 training_meta.json에 기록 (0=끄기) "
        "/ answer N eval questions at the end, recorded with their stop rate in training_meta.json (0 = off)",
        "min": 0})
    seed: int = field(default=42, metadata={"help": "시드 / random seed"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "그래디언트 체크포인팅 / gradient checkpointing"})
    load_in_4bit: bool = field(default=False, metadata={"help": "4-bit QLoRA (CUDA + bitsandbytes)"})
    # CPU always trains in fp32 (bf16 matmul is ~280x slower on this CPU); the trainer says so
    # when another dtype was asked for.
    dtype: str = field(default="auto", metadata={
        "help": "자료형 / dtype: auto (CUDA bf16, bf16 없는 GPU fp16) | bf16 | fp16 | fp32; CPU는 항상 fp32 "
        "/ CPU always fp32"})
    group_by_length: bool = field(default=True, metadata={"help": "비슷한 길이끼리 배치 / batch rows of similar length"})
    save_inference_only: bool = field(default=False, metadata={
        "help": "어댑터·설정·토크나이저만 저장 / keep only adapter, config, tokenizer"})
    resume: bool = field(default=False, metadata={"help": "최신 체크포인트에서 이어서 / continue from the newest checkpoint"})
    # Warm start (`aldlab improve`): the LoRA weights (and its r, alpha, targets, trainable
    # tokens) start from this adapter instead of zero, so a few steps on new corrections
    # add to what the promoted model knows rather than relearning the KB from the base.
    init_adapter: str | None = field(default=None, metadata={
        "help": "이 어댑터에서 이어 학습 (warm start; LoRA 설정은 어댑터의 것) / start from this adapter's weights"})
    num_threads: int | None = field(default=None, metadata={
        "help": "CPU 스레드 수 (기본: 모든 코어) / CPU threads (default: all cores)"})

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str):
            self.target_modules = [m.strip() for m in self.target_modules.split(",") if m.strip()]
        self.max_seq_len = _parse_max_seq_len(self.max_seq_len)
        self.dtype = dtype_name(self.dtype)
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
