"""`export_merged`: fold a LoRA adapter into its base model -> a plain HF model directory.

The result loads with `AutoModelForCausalLM.from_pretrained` and is servable by vLLM
(`vllm serve DIR`): weights as safetensors, the tokenizer with the chat template the
adapter was trained with, and a generation config whose `eos_token_id` includes the
end-of-turn token, so generation stops where the fine-tune taught it to.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aldlab.errors import UserError
from aldlab.files import atomic_write_json, read_json, sha256_file


def adapter_base_model(adapter_dir: str | Path) -> str:
    """The base model an adapter was trained on (from adapter_config.json)."""
    cfg = read_json(Path(adapter_dir) / "adapter_config.json")
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise UserError(
            "adapter_config.json에 base_model_name_or_path가 없습니다.",
            "adapter_config.json has no base_model_name_or_path.",
            path=Path(adapter_dir) / "adapter_config.json",
            hint="--base_model 로 기반 모델을 지정하세요 / pass --base_model",
        )
    return str(base)


@dataclass
class MergedModel:
    """A base model with an adapter folded in, still in memory (for export_merged / export_gguf)."""

    model: Any
    tokenizer: Any
    base_name: str
    end_of_turn_ids: list[int]
    adapter_dir: Path


def _check_adapter_dir(adapter: Path) -> None:
    if not (adapter / "adapter_config.json").exists():
        raise UserError(
            "어댑터 디렉터리가 아닙니다 (adapter_config.json 없음).",
            "Not an adapter directory (no adapter_config.json).",
            path=adapter,
            hint="aldlab train 의 --output_dir 을 지정하세요 / pass the --output_dir of `aldlab train`",
        )


def merge_adapter(adapter_dir: str | Path, base_model: str | None = None) -> MergedModel:
    """Load the base, fold the LoRA adapter into it and set the end-of-turn stop ids."""
    import torch
    from peft import PeftModel

    from aldlab.train.chat_template import end_of_turn_token_ids
    from aldlab.train.model import LoadOptions, load_model, load_tokenizer

    adapter = Path(adapter_dir).expanduser()
    _check_adapter_dir(adapter)
    base_name = base_model or adapter_base_model(adapter)
    # Merge in fp32 on CPU (exact); on a GPU machine bf16 halves the memory of a 7B merge.
    dtype = "bfloat16" if torch.cuda.is_available() else "float32"
    base = load_model(base_name, LoadOptions(dtype=dtype))
    with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
        warnings.simplefilter("ignore", FutureWarning)
        merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    tokenizer_src = adapter if (adapter / "tokenizer_config.json").exists() else base_name
    tokenizer = load_tokenizer(str(tokenizer_src))

    eot = end_of_turn_token_ids(tokenizer)
    merged.generation_config.eos_token_id = eot if len(eot) > 1 else eot[0]
    merged.generation_config.pad_token_id = tokenizer.pad_token_id
    return MergedModel(merged, tokenizer, base_name, eot, adapter)


def export_merged(adapter_dir: str | Path, output_dir: str | Path, base_model: str | None = None) -> Path:
    """Merge `adapter_dir` into its base model and write a standalone model to `output_dir`."""
    merged = merge_adapter(adapter_dir, base_model)
    out = Path(output_dir).expanduser()
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.model.save_pretrained(str(tmp), safe_serialization=True)
    merged.tokenizer.save_pretrained(str(tmp))
    atomic_write_json(tmp / "aldlab_export.json", _manifest(merged.adapter_dir, merged.base_name, merged.end_of_turn_ids))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def _manifest(adapter: Path, base_name: str, eot: list[int]) -> dict[str, Any]:
    import peft
    import torch
    import transformers

    return {
        "kind": "aldlab.export",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "adapter_dir": str(adapter),
        "adapter_sha256": sha256_file(adapter / "adapter_model.safetensors"),
        "base_model": base_name,
        "end_of_turn_token_ids": eot,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
    }
