"""`aldlab train` and `aldlab export`.

`aldlab train` replaces the seed's `finetune_llama.py` and accepts its flags in both
spellings (`--model_name` and `--model-name`). Values come from the TrainConfig defaults,
then `--preset`, then `--config FILE.yaml` (its `train:` section), then the flags.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def _opt(default: Any, name: str, help_text: str) -> Any:
    """An option spelled both `--snake_case` (legacy script) and `--kebab-case`."""
    names = [f"--{name}"]
    if "_" in name:
        names.append(f"--{name.replace('_', '-')}")
    return typer.Option(default, *names, help=help_text)


def train_command(
    model_name: str = _opt(None, "model_name", "기반 모델 (Hub id, 로컬 경로, embedded) / base model; default: Qwen2.5-7B-Instruct on CUDA, embedded gemma-3-270m otherwise"),
    train_file: str = _opt(None, "train_file", "학습 JSONL (messages) / training chat JSONL"),
    eval_file: str = _opt(None, "eval_file", "평가 JSONL; 없으면 학습 데이터의 5% / eval JSONL (default: 5% held out)"),
    output_dir: str = _opt(None, "output_dir", "출력 디렉터리 / output directory"),
    num_epochs: float = _opt(None, "num_epochs", "에폭 수 (기본 3) / epochs (3)"),
    batch_size: int = _opt(None, "batch_size", "장치당 배치 (기본 4) / per-device batch (4)"),
    learning_rate: float = _opt(None, "learning_rate", "학습률 (기본 2e-4) / learning rate (2e-4)"),
    gradient_accumulation_steps: int = _opt(None, "gradient_accumulation_steps", "그래디언트 누적 / gradient accumulation"),
    lora_r: int = _opt(None, "lora_r", "LoRA r (16)"),
    lora_alpha: int = _opt(None, "lora_alpha", "LoRA alpha (32)"),
    lora_dropout: float = _opt(None, "lora_dropout", "LoRA dropout (0.1)"),
    target_modules: str = _opt(None, "target_modules", "LoRA 대상 (쉼표) / comma-separated (q_proj,k_proj,v_proj,o_proj)"),
    max_seq_len: str = _opt(None, "max_seq_len", "최대 토큰 길이(정수, auto=가장 긴 행, p99=99% 백분위), 더 긴 행은 제외 / max tokens (int, auto = longest row, p99 = 99th percentile); longer rows are skipped"),
    allow_skipping_long_rows: bool = _opt(False, "allow_skipping_long_rows", "스타일별 2% 넘게 긴 행을 버려도 계속 / continue even when >2% of a style is too long"),
    max_steps: int = _opt(None, "max_steps", "최대 스텝 (에폭보다 우선) / cap on optimizer steps"),
    max_train_examples: int = _opt(None, "max_train_examples", "학습 예제 상한 / cap on training rows"),
    eval_steps: int = _opt(None, "eval_steps", "평가 주기 / eval every N steps"),
    logging_steps: int = _opt(None, "logging_steps", "로그 주기 / log every N steps"),
    save_steps: int = _opt(None, "save_steps", "체크포인트 주기 / checkpoint every N steps"),
    seed: int = _opt(None, "seed", "시드 / random seed"),
    load_in_4bit: bool = _opt(False, "load_in_4bit", "4-bit QLoRA (CUDA + bitsandbytes)"),
    gradient_checkpointing: bool = _opt(False, "gradient_checkpointing", "그래디언트 체크포인팅 / gradient checkpointing"),
    save_inference_only: bool = _opt(False, "save_inference_only", "어댑터·설정·토크나이저만 저장 / keep only adapter, config, tokenizer"),
    resume: bool = _opt(False, "resume", "최신 체크포인트에서 이어서 / continue from the newest checkpoint"),
    preset: str = _opt(None, "preset", "프리셋 (cpu-demo, gpu-qwen7b, gpu-qwen7b-qlora)"),
    config: Path = _opt(None, "config", "설정 YAML (train: 섹션) / config YAML with a train: section"),
    no_progress: bool = _opt(False, "no_progress", "진행 막대 끄기 / no progress bar"),
) -> None:
    """LoRA/QLoRA SFT (finetune_llama.py 대체) / LoRA/QLoRA supervised fine-tuning."""
    from aldlab.config import resolve_config
    from aldlab.train.config import TrainConfig
    from aldlab.train.trainer import train

    overrides: dict[str, Any] = {
        "model_name": model_name,
        "train_file": train_file,
        "eval_file": eval_file,
        "output_dir": output_dir,
        "num_epochs": num_epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "gradient_accumulation_steps": gradient_accumulation_steps,
        "lora_r": lora_r,
        "lora_alpha": lora_alpha,
        "lora_dropout": lora_dropout,
        "target_modules": target_modules,
        "max_seq_len": max_seq_len,
        "max_steps": max_steps,
        "max_train_examples": max_train_examples,
        "eval_steps": eval_steps,
        "logging_steps": logging_steps,
        "save_steps": save_steps,
        "seed": seed,
        # Flags only switch things on; a preset's `true` is not undone by an absent flag.
        "load_in_4bit": True if load_in_4bit else None,
        "gradient_checkpointing": True if gradient_checkpointing else None,
        "save_inference_only": True if save_inference_only else None,
        "resume": True if resume else None,
        "allow_skipping_long_rows": True if allow_skipping_long_rows else None,
    }
    cfg = resolve_config(TrainConfig, "train", preset=preset, config_file=config, overrides=overrides)
    result = train(cfg, progress=not no_progress)
    typer.echo(json.dumps(result.__dict__, ensure_ascii=False, indent=2))


def export_command(
    adapter_dir: Path = typer.Argument(..., help="aldlab train 출력 디렉터리 / adapter directory"),
    merge: bool = typer.Option(False, "--merge", help="기반 모델에 병합 (vLLM용) / merge into the base model"),
    gguf: bool = typer.Option(False, "--gguf", help="병합 모델을 GGUF + Ollama Modelfile로 / GGUF for llama.cpp, Ollama"),
    quant: str = typer.Option("f16", "--quant", help="GGUF 형식: f32, f16, q8_0 / GGUF tensor type"),
    output: Path = typer.Option(..., "--output", "-o", help="출력 디렉터리 / output directory"),
    base_model: str = _opt(None, "base_model", "기반 모델 (기본: adapter_config.json) / base model override"),
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
