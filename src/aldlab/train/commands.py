"""`aldlab train` and `aldlab export`.

`aldlab train` replaces the seed's `finetune_llama.py`. Its options are generated from the
`TrainConfig` fields (TRL's HfArgumentParser idea), so a new setting is written once in
the dataclass and once in `TRAIN_HELP`. Values come from the TrainConfig defaults, then
`--preset`, then `--config FILE.yaml` (its `train:` section), then the flags; a flag left
out keeps the preset's value, and `--no-FLAG` turns a preset's `true` off.

The seed's spellings keep working (`--model_name --train_file --eval_file --output_dir
--num_epochs --batch_size --learning_rate --save_inference_only ...`): every command
accepts `_` for `-`, and `--model_name`/`--output_dir`/`--no_progress` are hidden aliases
of `--model`/`--output`/`--quiet` (`aldlab.cli_options.FLAG_ALIASES`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from aldlab.cli_options import (
    MACHINE_DEFAULT_MODEL,
    MODEL_HELP,
    config_option,
    dataclass_options,
    list_fields,
    model_option,
    output_option,
    preset_option,
    quiet_option,
    with_parameters,
)
from aldlab.train.config import TrainConfig

#: Help of every TrainConfig field (Korean / English); the default is appended from the field.
TRAIN_HELP: dict[str, str] = {
    "model_name": f"{MODEL_HELP} ({MACHINE_DEFAULT_MODEL})",
    "train_file": "학습 JSONL (messages) / training chat JSONL",
    "eval_file": "평가 JSONL; 없으면 학습 데이터의 5% / eval JSONL (default: 5% of the training rows)",
    "output_dir": "출력 디렉터리 / output directory",
    "num_epochs": "에폭 수 / epochs",
    "max_steps": "최대 옵티마이저 스텝 (에폭보다 우선) / cap on optimizer steps (wins over epochs)",
    "batch_size": "장치당 배치 / per-device batch",
    "gradient_accumulation_steps": "그래디언트 누적 / gradient accumulation steps",
    "learning_rate": "학습률 / learning rate",
    "weight_decay": "가중치 감쇠 / weight decay",
    "warmup_ratio": "워밍업 비율 / warmup share of the steps",
    "lr_scheduler": "학습률 스케줄 / schedule: cosine | linear | constant",
    "max_grad_norm": "그래디언트 클리핑 / gradient clipping norm",
    "lora_r": "LoRA r",
    "lora_alpha": "LoRA alpha",
    "lora_dropout": "LoRA dropout",
    "target_modules": "LoRA 대상 모듈 (쉼표) / LoRA target modules, comma-separated",
    "trainable_tokens": "임베딩 행도 학습할 특수 토큰 (쉼표) / special tokens whose embedding row is trained, "
    "comma-separated",
    "max_seq_len": "최대 토큰 길이(정수, auto=가장 긴 행, p99=99% 백분위), 더 긴 행은 제외 / max tokens (int, "
    "auto = longest row, p99 = 99th percentile); longer rows are skipped",
    "allow_skipping_long_rows": "스타일별 2% 넘게 긴 행을 버려도 계속 / continue even when >2% of a style is too long",
    "max_train_examples": "학습 예제 상한 / cap on training rows",
    "max_eval_examples": "평가 예제 상한 / cap on eval rows",
    "eval_steps": "평가 주기 / eval every N steps",
    "logging_steps": "로그 주기 / log every N steps",
    "save_steps": "체크포인트 주기 / checkpoint every N steps",
    "save_total_limit": "남길 체크포인트 수 / checkpoints kept",
    "seed": "시드 / random seed",
    "gradient_checkpointing": "그래디언트 체크포인팅 / gradient checkpointing",
    "load_in_4bit": "4-bit QLoRA (CUDA + bitsandbytes)",
    "dtype": "자료형 / dtype: auto (CUDA bf16, CPU fp32) | bf16 | fp16 | fp32",
    "group_by_length": "비슷한 길이끼리 배치 / batch rows of similar length",
    "save_inference_only": "어댑터·설정·토크나이저만 저장 / keep only adapter, config, tokenizer",
    "resume": "최신 체크포인트에서 이어서 / continue from the newest checkpoint",
    "num_threads": "CPU 스레드 수 (기본: 모든 코어) / CPU threads (default: all cores)",
}

#: Flags whose canonical spelling is not the field name (one spelling across commands).
TRAIN_FLAG_NAMES = {"model_name": ("--model",), "output_dir": ("--output", "-o")}

_LIST_FIELDS = list_fields(TrainConfig)


def _train(**values: Any) -> None:
    """LoRA/QLoRA SFT (finetune_llama.py 대체) / LoRA/QLoRA supervised fine-tuning."""
    from aldlab.config import resolve_config
    from aldlab.train.trainer import train

    preset, config, quiet = values.pop("preset"), values.pop("config"), values.pop("quiet")
    overrides = {name: _split_list(value) if name in _LIST_FIELDS else value for name, value in values.items()}
    cfg = resolve_config(TrainConfig, "train", preset=preset, config_file=config, overrides=overrides)
    result = train(cfg, progress=not quiet)
    typer.echo(json.dumps(result.__dict__, ensure_ascii=False, indent=2))


def _split_list(value: str | None) -> list[str] | None:
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]


def _command_options() -> list[Any]:
    import inspect

    def keyword(name: str, option: Any, annotation: Any) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)

    return [
        *dataclass_options(TrainConfig, help_texts=TRAIN_HELP, flag_names=TRAIN_FLAG_NAMES),
        keyword("preset", preset_option(), str | None),
        keyword("config", config_option(), Path | None),
        keyword("quiet", quiet_option(), bool),
    ]


train_command = with_parameters(_train, _command_options())


def export_command(
    adapter_dir: Path = typer.Argument(..., help="aldlab train 출력 디렉터리 / adapter directory"),
    merge: bool = typer.Option(False, "--merge", help="기반 모델에 병합 (vLLM용) / merge into the base model"),
    gguf: bool = typer.Option(False, "--gguf", help="병합 모델을 GGUF + Ollama Modelfile로 / GGUF for llama.cpp, Ollama"),
    quant: str = typer.Option("f16", "--quant", help="GGUF 형식: f32, f16, q8_0 / GGUF tensor type"),
    output: Path = output_option("출력 디렉터리 / output directory", required=True),
    base_model: str | None = model_option("기본: adapter_config.json의 기반 모델 / default: the adapter's base model"),
) -> None:
    """어댑터를 병합해 vLLM용 모델(--merge) 또는 llama.cpp/Ollama용 GGUF(--gguf)로 저장 / export an adapter."""
    from aldlab.errors import UserError

    if merge == gguf:
        raise UserError(
            "--merge 또는 --gguf 중 하나를 고르세요.",
            "Pick one of --merge or --gguf.",
            hint=f"aldlab export {adapter_dir} --gguf -o gguf/  또는 / or  aldlab export {adapter_dir} --merge -o merged/ "
            "(어댑터 그대로는 vLLM --enable-lora 로 서빙 가능 / the adapter itself can be served with vLLM --enable-lora)",
        )
    if gguf:
        from aldlab.llm.gguf_export import export_gguf

        result = export_gguf(adapter_dir, output, quant=quant, base_model=base_model)
        typer.echo(f"{result.gguf_path}\n{result.modelfile_path}")
        return
    from aldlab.train.export import export_merged

    out = export_merged(adapter_dir, output, base_model=base_model)
    typer.echo(str(out))
