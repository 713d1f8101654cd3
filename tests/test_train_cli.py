"""`aldlab train` flags: legacy underscore and dash spellings, presets, config files, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import aldlab.train.trainer as trainer_mod
from aldlab.cli import app
from aldlab.train.config import TrainConfig
from aldlab.train.trainer import TrainResult


@pytest.fixture
def captured(monkeypatch) -> list[TrainConfig]:
    seen: list[TrainConfig] = []

    def fake_train(config: TrainConfig, progress: bool = True) -> TrainResult:
        seen.append(config)
        return TrainResult(config.output_dir, 1.0, 1.0, 2.0, 3, 1.0, 10.0)

    monkeypatch.setattr(trainer_mod, "train", fake_train)
    return seen


LEGACY_FLAGS = [
    "--model_name", "m", "--train_file", "t.jsonl", "--eval_file", "e.jsonl", "--output_dir", "out",
    "--num_epochs", "2", "--batch_size", "8", "--learning_rate", "1e-4", "--save_inference_only",
    "--gradient_accumulation_steps", "2", "--lora_r", "8", "--lora_alpha", "16", "--lora_dropout", "0.05",
    "--target_modules", "q_proj,v_proj", "--max_seq_len", "256", "--resume",
]


@pytest.mark.parametrize("dash", [False, True])
def test_legacy_flags_in_both_spellings(captured, dash: bool) -> None:
    flags = [f.replace("_", "-") if f.startswith("--") and dash else f for f in LEGACY_FLAGS]
    result = CliRunner().invoke(app, ["train", *flags])
    assert result.exit_code == 0, result.output
    cfg = captured[-1]
    assert (cfg.model_name, cfg.train_file, cfg.eval_file, cfg.output_dir) == ("m", "t.jsonl", "e.jsonl", "out")
    assert (cfg.num_epochs, cfg.batch_size, cfg.learning_rate, cfg.gradient_accumulation_steps) == (2, 8, 1e-4, 2)
    assert (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.max_seq_len) == (8, 16, 0.05, 256)
    assert cfg.target_modules == ["q_proj", "v_proj"] and cfg.save_inference_only and cfg.resume
    assert '"steps": 3' in result.output


def test_defaults_follow_the_seed_script(captured) -> None:
    result = CliRunner().invoke(app, ["train", "--train_file", "t.jsonl"])
    assert result.exit_code == 0, result.output
    cfg = captured[-1]
    assert cfg.model_name is None  # resolved by default_model_name(): Qwen on CUDA, gemma otherwise
    assert (cfg.num_epochs, cfg.batch_size, cfg.learning_rate) == (3, 4, 2e-4)
    assert (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout) == (16, 32, 0.1)
    assert cfg.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]


def test_preset_then_config_file_then_flags(captured, tmp_path: Path) -> None:
    extra = tmp_path / "my.yaml"
    extra.write_text("train:\n  lora_r: 4\n  max_steps: 7\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["train", "--preset", "cpu-demo", "--config", str(extra), "--max-steps", "9", "--train_file", "t.jsonl"]
    )
    assert result.exit_code == 0, result.output
    cfg = captured[-1]
    from aldlab.config import load_section

    preset = load_section("train", preset="cpu-demo")
    assert cfg.model_name == "embedded" and cfg.max_seq_len == preset["max_seq_len"]  # from the preset
    assert cfg.lora_r == 4 and cfg.max_steps == 9  # file, then flag


def test_user_errors_are_bilingual_not_tracebacks() -> None:
    from aldlab.errors import UserError

    with pytest.raises(UserError, match="lm_head"):
        TrainConfig(target_modules="q_proj,lm_head")
    with pytest.raises(UserError, match="batch_size"):
        TrainConfig(batch_size=0)
    result = CliRunner().invoke(app, ["train", "--train_file", "/nonexistent/train.jsonl"])
    assert result.exit_code != 0
    assert isinstance(result.exception, UserError) and "데이터 파일" in result.exception.ko


def test_oom_becomes_advice(monkeypatch, tmp_path: Path) -> None:
    import torch

    from aldlab.errors import UserError

    def boom(config):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer_mod, "_setup", boom)
    with pytest.raises(UserError) as err:
        trainer_mod.train(TrainConfig(train_file="x"), progress=False)
    assert "--batch_size" in err.value.hint and "--gradient_accumulation_steps" in err.value.hint
    assert "--lora_r" in err.value.hint


def test_max_seq_len_from_data_and_skip_flag(captured) -> None:
    result = CliRunner().invoke(app, ["train", "--train_file", "t.jsonl", "--max-seq-len", "auto"])
    assert result.exit_code == 0, result.output
    assert captured[-1].max_seq_len == "auto" and captured[-1].allow_skipping_long_rows is False
    result = CliRunner().invoke(
        app, ["train", "--train_file", "t.jsonl", "--max_seq_len", "p99", "--allow_skipping_long_rows"]
    )
    assert result.exit_code == 0, result.output
    assert captured[-1].max_seq_len == "p99" and captured[-1].allow_skipping_long_rows is True
