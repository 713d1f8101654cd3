"""`aldlab train` and `aldlab export`.

`aldlab train` replaces the seed's `finetune_llama.py`. Its options are generated from the
`TrainConfig` fields and their help metadata (TRL's HfArgumentParser idea), so a new
setting is written once, in the dataclass. Values come from the TrainConfig defaults, then
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
    config_option,
    config_options,
    model_option,
    output_option,
    preset_option,
    quiet_option,
)
from aldlab.train.config import TrainConfig

#: q4_0 is offered but not advised: on the embedded gemma-3-270m its greedy answers left the
#: f16 ones at the first token and degenerated, for 230 MiB against q8_0's 278 MiB
#: (`aldlab.llm.gguf_export`).
QUANT_HELP = (
    "GGUF 형식: f32, f16, q8_0 (4-bit 대신 권장), q4_0 (작지만 내장 모델 답변이 망가짐) "
    "/ GGUF tensor type: f32, f16, q8_0 (advised), q4_0 (smaller, but broke the embedded model's answers)"
)


@config_options(TrainConfig)
def train_command(
    overrides: dict[str, Any],
    preset: str | None = preset_option(),
    config: Path | None = config_option(),
    quiet: bool = quiet_option(),
) -> None:
    """LoRA/QLoRA SFT (finetune_llama.py 대체) / LoRA/QLoRA supervised fine-tuning."""
    from aldlab.config import resolve_config
    from aldlab.train.trainer import train

    cfg = resolve_config(TrainConfig, "train", preset=preset, config_file=config, overrides=overrides)
    result = train(cfg, progress=not quiet)
    typer.echo(json.dumps(result.__dict__, ensure_ascii=False, indent=2))


def export_command(
    adapter_dir: Path = typer.Argument(..., help="aldlab train 출력 디렉터리 / adapter directory"),
    merge: bool = typer.Option(False, "--merge", help="기반 모델에 병합 (vLLM용) / merge into the base model"),
    gguf: bool = typer.Option(False, "--gguf", help="병합 모델을 GGUF + Ollama Modelfile로 / GGUF for llama.cpp, Ollama"),
    quant: str = typer.Option("f16", "--quant", help=QUANT_HELP),
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
        # The README says how to serve the GGUF with retrieval: name it, or nobody finds it.
        paths = [result.gguf_path, result.modelfile_path, result.readme_path]
        typer.echo("\n".join(str(p) for p in paths if p is not None))
        return
    from aldlab.train.export import export_merged

    out = export_merged(adapter_dir, output, base_model=base_model)
    typer.echo(str(out))
