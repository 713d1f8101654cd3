"""`merge_adapter`: fold a LoRA adapter into its base model, in memory.

Both exports start here: `train.export.export_merged` writes the result as a plain HF model
directory (vLLM), `llm.gguf_export.export_gguf` as GGUF (llama.cpp, Ollama). It lives in the
LLM layer, not in `train`, because serving (the llama.cpp engine exports an adapter on first
use) must not depend on the training stage.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aldlab.errors import UserError
from aldlab.files import read_json
from aldlab.llm.adapters import check_adapter_dir


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


def merge_adapter(adapter_dir: str | Path, base_model: str | None = None) -> MergedModel:
    """Load the base, fold the LoRA adapter into it and set the end-of-turn stop ids."""
    import torch
    from peft import PeftModel

    from aldlab.llm.chat_template import end_of_turn_token_ids
    from aldlab.llm.model import LoadOptions, load_model, load_tokenizer

    adapter = check_adapter_dir(adapter_dir, require=["adapter_config.json"])
    base_name = base_model or adapter_base_model(adapter)
    dtype = merge_dtype(torch.cuda.is_available(), _cuda_capability())
    base = load_model(base_name, LoadOptions(dtype=dtype))
    with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
        warnings.simplefilter("ignore", FutureWarning)
        merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    tokenizer_src = adapter if (adapter / "tokenizer_config.json").exists() else base_name
    tokenizer = load_tokenizer(str(tokenizer_src))

    eot = end_of_turn_token_ids(tokenizer)
    stops = stop_ids(eot, merged.generation_config.eos_token_id)
    merged.generation_config.eos_token_id = stops if len(stops) > 1 else stops[0]
    merged.generation_config.pad_token_id = tokenizer.pad_token_id
    return MergedModel(merged, tokenizer, base_name, eot, adapter)


def merge_dtype(cuda: bool, capability: tuple[int, int] | None) -> str:
    """fp32 on a CPU-only machine (exact); on a GPU machine half precision halves a 7B merge's
    memory: bf16 from Ampere (compute capability 8) on, fp16 before (T4, V100).

    A bf16 export on a T4 would be a model its own GPU cannot serve: vLLM refuses bf16 below
    capability 8.0, and `torch.cuda.is_bf16_supported()` says True there (it counts emulation),
    so the capability is asked, not that.
    """
    from aldlab.llm.model import native_bf16

    if not cuda:
        return "float32"
    return "bfloat16" if native_bf16(capability) else "float16"


def _cuda_capability() -> tuple[int, int] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return tuple(torch.cuda.get_device_capability())  # type: ignore[return-value]


def stop_ids(end_of_turn: list[int], base_eos: int | list[int] | None) -> list[int]:
    """The end-of-turn ids first, then every other EOS id of the base's generation_config.

    Qwen2.5-Instruct stops on <|im_end|> and <|endoftext|>: writing only the end-of-turn id
    dropped the second one, so a merged model that emitted <|endoftext|> kept generating.
    """
    base = [base_eos] if isinstance(base_eos, int) else list(base_eos or [])
    return list(dict.fromkeys([*end_of_turn, *base]))
