"""`export_merged`: fold a LoRA adapter into its base model -> a plain HF model directory.

The result loads with `AutoModelForCausalLM.from_pretrained` and is servable by vLLM
(`vllm serve DIR`): weights as safetensors, the tokenizer with the chat template the
adapter was trained with, and a generation config whose `eos_token_id` includes the
end-of-turn token, so generation stops where the fine-tune taught it to. The merge itself
is `llm.merge.merge_adapter` (shared with the GGUF export).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from aldlab.files import atomic_write_json, sha256_file
from aldlab.llm.merge import merge_adapter


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
