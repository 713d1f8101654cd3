"""Training loop on a tiny random Gemma-3 model: loss slicing, accumulation, resume, outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from aldlab.train.config import TrainConfig
from aldlab.train.data import collate, load_examples
from aldlab.train.loss import SupervisedCausalLM, full_logits_loss
from aldlab.train.tiny import build_tiny_model_dir, write_chat_jsonl
from aldlab.train.trainer import latest_checkpoint, train


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {
        "model": build_tiny_model_dir(root / "model"),
        "train": write_chat_jsonl(root / "train.jsonl", 48, seed=0),
        "eval": write_chat_jsonl(root / "eval.jsonl", 8, seed=1),
    }


def _config(tiny: dict[str, Path], out: Path, **kw) -> TrainConfig:
    base = dict(
        model_name=str(tiny["model"]), train_file=str(tiny["train"]), eval_file=str(tiny["eval"]),
        output_dir=str(out), learning_rate=5e-3, max_seq_len=512, eval_steps=4, logging_steps=1,
        save_steps=100, lora_r=4, lora_alpha=8, num_threads=1,
    )
    base.update(kw)
    return TrainConfig(**base)


def _step_losses(out: Path) -> list[float]:
    meta = json.loads((out / "training_meta.json").read_text(encoding="utf-8"))
    return [h["loss"] for h in meta["history"] if "loss" in h]


def test_sliced_head_loss_equals_full_logits_loss(tiny) -> None:
    from aldlab.train.model import load_model, load_tokenizer

    tok = load_tokenizer(str(tiny["model"]))
    model = load_model(str(tiny["model"]))
    examples, _ = load_examples(tiny["train"], tok, 512)
    batch = collate(examples[:4], tok.pad_token_id)
    sliced, n1 = SupervisedCausalLM(model)(**batch)
    full, n2 = full_logits_loss(model, batch)
    assert int(n1) == int(n2) > 0
    torch.testing.assert_close(sliced, full, rtol=1e-5, atol=1e-4)


def test_gradient_accumulation_keeps_loss_scale(tiny, tmp_path: Path) -> None:
    """batch 4 x accum 1 and batch 1 x accum 4 see the same rows per step -> same losses."""
    common = dict(max_steps=3, lora_dropout=0.0, group_by_length=False, eval_steps=100)
    train(_config(tiny, tmp_path / "a", batch_size=4, gradient_accumulation_steps=1, **common), progress=False)
    train(_config(tiny, tmp_path / "b", batch_size=1, gradient_accumulation_steps=4, **common), progress=False)
    a, b = _step_losses(tmp_path / "a"), _step_losses(tmp_path / "b")
    assert len(a) == len(b) == 3
    # Step 1 compares the loss itself; steps 2-3 also compare the updates (same gradients).
    for x, y in zip(a, b, strict=True):
        assert abs(x - y) < 1e-4 * max(1.0, abs(x))


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, json
    from aldlab.train.config import TrainConfig
    from aldlab.train.trainer import train
    cfg = TrainConfig(**json.loads(sys.argv[1]))
    def on_step(step, log):
        if step == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)
    train(cfg, progress=False, on_step=on_step)
    """
)


def test_resume_after_kill_matches_uninterrupted_run(tiny, tmp_path: Path) -> None:
    kw = dict(max_steps=8, save_steps=2, batch_size=4, gradient_accumulation_steps=1, lora_dropout=0.1,
              num_epochs=3)
    full = train(_config(tiny, tmp_path / "full", **kw), progress=False)

    cfg = _config(tiny, tmp_path / "killed", **kw)
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, json.dumps(cfg.to_dict()), "5"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert latest_checkpoint(tmp_path / "killed").name == "checkpoint-4"

    cfg.resume = True
    resumed = train(cfg, progress=False)
    assert resumed.steps == full.steps == 8
    assert resumed.final_eval_loss == pytest.approx(full.final_eval_loss, rel=1e-4)
    # Steps 5-8 replay the same batches, dropout masks and learning rates.
    assert _step_losses(tmp_path / "killed")[-4:] == pytest.approx(_step_losses(tmp_path / "full")[-4:], rel=1e-4)


def test_outputs_and_fresh_process_peft_load(tiny, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = train(_config(tiny, out, max_steps=6, save_steps=3), progress=False)
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "training_meta.json", "loss.png"):
        assert (out / name).exists(), name
    meta = json.loads((out / "training_meta.json").read_text(encoding="utf-8"))
    assert meta["inputs"]["train_sha256"] and meta["config"]["lora_r"] == 4
    assert meta["final"]["steps"] == 6 and set(meta["versions"]) >= {"torch", "transformers", "peft"}
    assert result.first_eval_loss is not None and result.final_eval_loss is not None
    adapter_cfg = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    assert sorted(adapter_cfg["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert not adapter_cfg.get("modules_to_save")  # no embeddings / lm_head: vLLM-compatible

    code = textwrap.dedent(
        f"""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from peft import PeftModel
        base = AutoModelForCausalLM.from_pretrained({str(tiny["model"])!r})
        model = PeftModel.from_pretrained(base, {str(out)!r})
        tok = AutoTokenizer.from_pretrained({str(out)!r})
        assert "<start_of_turn>" in tok.chat_template
        ids = tok.apply_chat_template([{{"role": "user", "content": "TMA?"}}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        print(model(**ids).logits.shape[-1])
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_save_inference_only_keeps_only_adapter(tiny, tmp_path: Path) -> None:
    out = tmp_path / "inf"
    train(_config(tiny, out, max_steps=4, save_steps=2, save_inference_only=True), progress=False)
    names = {p.name for p in out.iterdir()}
    assert not any(n.startswith("checkpoint-") or n.startswith(".checkpoint-") for n in names)
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json"} <= names
    assert not any(n.endswith((".pt", ".png")) for n in names)


def test_export_merged_matches_adapter(tiny, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aldlab.train.export import export_merged

    out = tmp_path / "run"
    train(_config(tiny, out, max_steps=3, learning_rate=5e-2), progress=False)
    merged_dir = export_merged(out, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir))
    tok = AutoTokenizer.from_pretrained(str(merged_dir))
    eot = tok.convert_tokens_to_ids("<end_of_turn>")
    eos = merged.generation_config.eos_token_id
    assert eot in (eos if isinstance(eos, list) else [eos])
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny["model"])), str(out))
    ids = torch.tensor([[2, 4, 50, 60, 70, 5]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, peft_model(ids).logits, rtol=1e-4, atol=1e-4)
    assert not any("lora" in k for k in merged.state_dict())
