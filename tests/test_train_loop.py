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

from aldlab.llm.tiny import build_tiny_model_dir
from aldlab.train.checkpoint import latest_checkpoint
from aldlab.train.config import TrainConfig
from aldlab.train.data import collate, load_examples
from aldlab.train.loss import SupervisedCausalLM, full_logits_loss
from aldlab.train.tiny import write_chat_jsonl
from aldlab.train.trainer import train


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
    from aldlab.llm.model import load_model, load_tokenizer

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


def _first_step_grads(cfg: TrainConfig) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(gradients the trainer hands the optimizer in step 1, reference gradients of the mean
    token loss of the same rows from the plain HF forward)."""
    from aldlab.train.trainer import _micro_batches, _setup, _train_step

    run = _setup(cfg)
    named = {n: p for n, p in run.peft_model.named_parameters() if p.requires_grad}
    micro = _micro_batches(cfg, [len(e.input_ids) for e in run.train_examples], 0)[: cfg.gradient_accumulation_steps]
    rows = [run.train_examples[i] for mb in micro for i in mb]
    loss_sum, n = full_logits_loss(run.peft_model, collate(rows, run.tokenizer.pad_token_id))
    (loss_sum / n).backward()
    reference = {k: p.grad.detach().clone() for k, p in named.items()}
    run.optimizer.zero_grad(set_to_none=True)

    seen: dict[str, torch.Tensor] = {}
    real_step = run.optimizer.step

    def capture(*args, **kwargs):
        seen.update({k: p.grad.detach().clone() for k, p in named.items()})
        return real_step(*args, **kwargs)

    run.optimizer.step = capture
    stats = _train_step(run, micro)
    assert stats.tokens == int(n) and stats.padded_tokens >= stats.tokens
    return seen, reference


def test_gradient_accumulation_gives_the_reference_gradients(tiny, tmp_path: Path) -> None:
    """Compare p.grad itself: AdamW ignores a constant gradient scale, so losses alone
    would not catch a step that divides its gradients by the accumulation count."""
    common = dict(max_steps=1, lora_dropout=0.0, group_by_length=False, max_grad_norm=0.0)
    one, ref_one = _first_step_grads(_config(tiny, tmp_path / "a", batch_size=4, gradient_accumulation_steps=1, **common))
    four, ref_four = _first_step_grads(_config(tiny, tmp_path / "b", batch_size=1, gradient_accumulation_steps=4, **common))
    assert any(float(g.abs().sum()) > 0 for g in ref_one.values())
    for name, ref in ref_one.items():
        torch.testing.assert_close(ref_four[name], ref, rtol=1e-5, atol=1e-8)
        torch.testing.assert_close(one[name], ref, rtol=1e-4, atol=1e-7, msg=f"batch 4: {name}")
        torch.testing.assert_close(four[name], ref, rtol=1e-4, atol=1e-7, msg=f"accum 4: {name}")


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
        capture_output=True, text=True, timeout=600,  # the machine is shared: generous
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert latest_checkpoint(tmp_path / "killed").name == "checkpoint-4"

    cfg.resume = True
    resumed = train(cfg, progress=False)
    assert resumed.steps == full.steps == 8
    assert resumed.final_eval_loss == pytest.approx(full.final_eval_loss, rel=1e-4)
    # Steps 5-8 replay the same batches, dropout masks and learning rates.
    assert _step_losses(tmp_path / "killed")[-4:] == pytest.approx(_step_losses(tmp_path / "full")[-4:], rel=1e-4)
    # train_log.jsonl: the killed run's step 5 line is dropped on resume and logged again, once.
    killed, unbroken = _log_lines(tmp_path / "killed"), _log_lines(tmp_path / "full")
    assert [x["step"] for x in killed] == [x["step"] for x in unbroken] == [0, *range(1, 9)]
    assert [x.get("loss", 0.0) for x in killed] == pytest.approx([x.get("loss", 0.0) for x in unbroken], rel=1e-4)


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
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,  # the machine is shared: generous
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
    from aldlab.train.schedule import lr_factor, warmup_steps

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


def test_adapter_names_the_embedded_base_portably(tiny, tmp_path: Path, monkeypatch) -> None:
    """adapter_config.json must not carry ALDLAB_HOME's absolute path: export from a copy works."""
    import shutil

    import aldlab.llm.model as model_mod
    from aldlab.train.export import export_merged

    monkeypatch.setattr(model_mod, "embedded_model_dir", lambda home=None: tiny["model"])
    out = tmp_path / "run"
    train(_config(tiny, out, model_name="embedded", max_steps=1, save_inference_only=True), progress=False)
    adapter_cfg = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    assert adapter_cfg["base_model_name_or_path"] == "google/gemma-3-270m"
    assert model_mod.portable_model_name(str(tiny["model"])) == "google/gemma-3-270m"
    assert model_mod.portable_model_name("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    copied = tmp_path / "elsewhere" / "adapter"
    shutil.copytree(out, copied)
    merged = export_merged(copied, tmp_path / "merged")
    assert (merged / "config.json").exists()


def test_resume_refuses_any_setting_or_data_that_changes_training(tiny, tmp_path: Path) -> None:
    from aldlab.errors import UserError

    data = tmp_path / "train.jsonl"
    data.write_bytes(tiny["train"].read_bytes())
    out = tmp_path / "run"
    kw = dict(train_file=str(data), max_steps=2, save_steps=100, eval_steps=100)
    train(_config(tiny, out, **kw), progress=False)
    assert latest_checkpoint(out).name == "checkpoint-2"

    for key, value in [("learning_rate", 1e-3), ("warmup_ratio", 0.2), ("lr_scheduler", "linear"),
                       ("num_epochs", 5), ("weight_decay", 0.1), ("lora_alpha", 16)]:
        with pytest.raises(UserError) as err:
            train(_config(tiny, out, resume=True, **{**kw, key: value}), progress=False)
        assert key in err.value.en, key
    # Logging, eval cadence and checkpoint cadence may change.
    train(_config(tiny, out, resume=True, **{**kw, "logging_steps": 3, "eval_steps": 7, "save_steps": 9}),
          progress=False)
    # Same path, different content: the data hash is checked too.
    data.write_text(data.read_text(encoding="utf-8").replace("TMA", "DEZ"), encoding="utf-8")
    with pytest.raises(UserError) as err:
        train(_config(tiny, out, resume=True, **kw), progress=False)
    assert "train_sha256" in err.value.en


def test_setup_stops_when_the_sliced_loss_is_not_the_models_loss(tmp_path: Path, tiny, monkeypatch) -> None:
    """A model whose logits are post-processed in a way loss.py ignores must not train."""
    from aldlab.errors import UserError
    from aldlab.train import loss as loss_mod

    capped = build_tiny_model_dir(tmp_path / "capped", final_logit_softcapping=1.0, initializer_range=0.5)
    cfg = _config(tiny, tmp_path / "ok", model_name=str(capped), max_steps=1, save_inference_only=True)
    train(cfg, progress=False)  # loss.py knows Gemma's softcapping: the check passes

    def forward_without_softcap(self, input_ids, attention_mask, labels):
        base = loss_mod._base_causal_lm(self.model)
        hidden = base.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        keep = labels[:, 1:] != -100
        logits = base.get_output_embeddings()(hidden[:, :-1][keep]).float()
        return torch.nn.functional.cross_entropy(logits, labels[:, 1:][keep], reduction="sum"), keep.sum()

    monkeypatch.setattr(loss_mod.SupervisedCausalLM, "forward", forward_without_softcap)
    with pytest.raises(UserError, match="loss"):
        train(_config(tiny, tmp_path / "bad", model_name=str(capped), max_steps=1), progress=False)


def _log_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text(encoding="utf-8").splitlines()]


def test_train_log_jsonl_has_one_line_per_logging_step(tiny, tmp_path: Path) -> None:
    out = tmp_path / "log"
    train(_config(tiny, out, max_steps=6, logging_steps=2, eval_steps=3, generation_check=0), progress=False)
    lines = _log_lines(out)
    # step 0 (eval only), logging steps 2 4 6, eval steps 3 6
    assert [line["step"] for line in lines] == [0, 2, 3, 4, 6]
    assert [line["step"] for line in lines if "eval_loss" in line] == [0, 3, 6]
    assert [line["step"] for line in lines if "loss" in line] == [2, 4, 6]
    for line in lines[1:]:
        assert line["lr"] > 0 and 0 < line["epoch"] <= 1.0
    for line in (x for x in lines if "loss" in x):
        assert line["tokens_per_s"] > 0
    history = json.loads((out / "training_meta.json").read_text(encoding="utf-8"))["history"]
    # "loss" is the mean of the window's step losses, the same number as the history's train_loss
    assert [x["loss"] for x in lines if "loss" in x] == [h["train_loss"] for h in history if "train_loss" in h]
    assert [x["eval_loss"] for x in lines if "eval_loss" in x] == [h["eval_loss"] for h in history if "eval_loss" in h]


def test_best_adapter_is_the_lowest_eval_loss_and_can_be_the_final_one(tiny, tmp_path: Path, monkeypatch) -> None:
    """Evaluations scripted to 3.0 (step 0), 2.0, 1.0 (step 4), 1.5, 1.2 (step 8): best/ is step 4."""
    from safetensors.torch import load_file

    import aldlab.train.trainer as trainer_mod

    def weights(path: Path) -> dict[str, torch.Tensor]:
        return load_file(str(path / "adapter_model.safetensors"))

    def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    for load_best in (False, True):
        scripted = iter([3.0, 2.0, 1.0, 1.5, 1.2])
        monkeypatch.setattr(trainer_mod, "evaluate", lambda run: next(scripted))
        out = tmp_path / f"best-{load_best}"
        result = train(_config(tiny, out, max_steps=8, eval_steps=2, save_steps=2, save_total_limit=10,
                               learning_rate=5e-2, load_best_model_at_end=load_best, generation_check=0), progress=False)
        assert (result.best_step, result.best_eval_loss) == (4, 1.0)
        assert json.loads((out / "best" / "best.json").read_text()) == {"step": 4, "eval_loss": 1.0}
        assert same(weights(out / "best"), weights(out / "checkpoint-4"))
        assert not same(weights(out / "checkpoint-4"), weights(out / "checkpoint-8"))
        final = weights(out)
        assert same(final, weights(out / "best")) if load_best else same(final, weights(out / "checkpoint-8"))
        meta = json.loads((out / "training_meta.json").read_text(encoding="utf-8"))
        assert meta["best"] == {"step": 4, "eval_loss": 1.0, "dir": "best", "loaded_at_end": load_best}

    # A fresh run in the same dir does not keep the older run's best/.
    monkeypatch.setattr(trainer_mod, "evaluate", lambda run: 5.0)
    train(_config(tiny, out, max_steps=1, generation_check=0), progress=False)
    assert json.loads((out / "best" / "best.json").read_text()) == {"step": 1, "eval_loss": 5.0}


def test_generation_check_answers_eval_questions_of_each_style(tiny, tmp_path: Path) -> None:
    from aldlab.train.data import read_conversations

    eval_file = write_chat_jsonl(tmp_path / "eval.jsonl", 9, seed=1, mix=True)
    out = tmp_path / "gen"
    train(_config(tiny, out, eval_file=str(eval_file), max_seq_len="auto", max_steps=1, save_inference_only=True),
          progress=False)
    check = json.loads((out / "training_meta.json").read_text(encoding="utf-8"))["generation_check"]
    rows = {row.line: row.messages for row in read_conversations(eval_file)}
    assert [a["style"] for a in check["answers"]] == ["closed", "rag", "refusal"]
    assert [a["line"] for a in check["answers"]] == [1, 2, 3]  # the first row of each style
    for a in check["answers"]:
        assert a["question"] == rows[a["line"]][-2]["content"] and a["reference"] == rows[a["line"]][-1]["content"]
        assert 32 <= a["max_new_tokens"] <= 256
        assert a["stopped"] == (a["new_tokens"] < a["max_new_tokens"])  # a random model runs to the budget
    assert check["stopped"] == sum(a["stopped"] for a in check["answers"]) and check["questions"] == 3

    train(_config(tiny, out, eval_file=str(eval_file), max_seq_len="auto", max_steps=1, save_inference_only=True,
                  generation_check=0), progress=False)
    assert json.loads((out / "training_meta.json").read_text(encoding="utf-8"))["generation_check"] is None
