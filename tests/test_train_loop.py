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


def test_first_step_trains_and_log_shows_the_lr_used(tiny, tmp_path: Path) -> None:
    """48 steps at 3% warm-up made HF's schedule give step 1 a learning rate of 0: wasted."""
    from aldlab.train.trainer import lr_factor, warmup_steps

    assert warmup_steps(0.03, 48) == 2
    factors = [lr_factor(s, "cosine", 2, 48) for s in range(48)]
    assert all(f > 0 for f in factors) and factors[0] < factors[1] < factors[2] == 1.0
    assert factors[-1] < 0.01

    out = tmp_path / "lr"
    cfg = _config(tiny, out, max_steps=4, warmup_ratio=0.5, eval_steps=100, lr_scheduler="linear")
    seen: list[float] = []
    train(cfg, progress=False, on_step=lambda step, log: seen.append(log["lr"]))
    history = json.loads((out / "training_meta.json").read_text(encoding="utf-8"))["history"]
    lrs = [h["lr"] for h in history if "lr" in h]
    # The LR logged for step k is the one step k used: warm-up 1/3, 2/3, then full, then decay.
    expected = [cfg.learning_rate * f for f in (1 / 3, 2 / 3, 1.0, 0.5)]
    assert lrs == pytest.approx(expected) and seen == pytest.approx(expected)


def test_first_step_moves_the_adapter(tiny, tmp_path: Path) -> None:
    """Step 1 of 2 with one warm-up step must change LoRA B (zero at init); LR 0 would not."""
    from safetensors.torch import load_file

    out = tmp_path / "one"
    train(_config(tiny, out, max_steps=2, warmup_ratio=0.5, eval_steps=100, save_steps=1, save_total_limit=5),
          progress=False)
    weights = load_file(str(out / "checkpoint-1" / "adapter_model.safetensors"))
    assert any(float(v.abs().sum()) > 0 for k, v in weights.items() if "lora_B" in k)


def test_training_stops_before_dropping_rag_rows(tmp_path: Path, tiny) -> None:
    from aldlab.errors import UserError

    data = write_chat_jsonl(tmp_path / "mix.jsonl", 30, seed=0, mix=True)
    cfg = _config(tiny, tmp_path / "x", train_file=str(data), eval_file=None, max_seq_len=512)
    with pytest.raises(UserError) as err:
        train(cfg, progress=False)
    assert "rag 10/10" in err.value.en
    assert not (tmp_path / "x" / "training_meta.json").exists()


def test_meta_reports_rows_per_style(tmp_path: Path, tiny) -> None:
    data = write_chat_jsonl(tmp_path / "mix.jsonl", 30, seed=0, mix=True)
    out = tmp_path / "styles"
    cfg = _config(tiny, out, train_file=str(data), eval_file=None, max_seq_len=512, max_steps=1,
                  allow_skipping_long_rows=True, max_train_examples=12, save_inference_only=True)
    train(cfg, progress=False)
    inputs = json.loads((out / "training_meta.json").read_text(encoding="utf-8"))["inputs"]
    assert inputs["train_styles"]["rag"] == {"rows": 10, "kept": 0, "too_long": 10, "selected": 0}
    assert inputs["train_styles"]["closed"]["selected"] == inputs["train_styles"]["refusal"]["selected"] == 6
    assert inputs["max_seq_len"] == 512 and inputs["train_skipped_too_long"] == 10
    assert sum(v["selected"] for v in inputs["eval_styles"].values()) == inputs["eval_examples"] >= 1
