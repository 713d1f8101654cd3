"""Trainable special-token rows (train.trainable_tokens) on a tiny random Gemma-3 model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aldlab.errors import UserError
from aldlab.train.config import TrainConfig
from aldlab.train.tiny import build_tiny_model_dir, write_chat_jsonl
from aldlab.train.trainer import train


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-tokens")
    return {
        "model": build_tiny_model_dir(root / "model"),
        "train": write_chat_jsonl(root / "train.jsonl", 16, seed=0),
    }


def _config(tiny: dict[str, Path], out: Path, **kw) -> TrainConfig:
    base = dict(
        model_name=str(tiny["model"]), train_file=str(tiny["train"]), output_dir=str(out),
        learning_rate=5e-2, max_seq_len=512, max_steps=3, eval_steps=100, logging_steps=1,
        save_steps=100, lora_r=4, lora_alpha=8, num_threads=1, max_eval_examples=4,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_end_of_turn_row_is_trained_and_only_that_row(tiny, tmp_path: Path) -> None:
    from peft import PeftModel

    from aldlab.train.model import load_model, load_tokenizer

    out = tmp_path / "adapter"
    train(_config(tiny, out, trainable_tokens=["<end_of_turn>"]), progress=False)
    tok = load_tokenizer(str(tiny["model"]))
    eot = tok.convert_tokens_to_ids("<end_of_turn>")
    base = load_model(str(tiny["model"]))
    other = 7 if eot != 7 else 8
    ids = torch.tensor([[eot, other]])
    with torch.no_grad():
        before = base.get_input_embeddings()(ids)[0].clone()  # Gemma scales rows: compare outputs
    model = PeftModel.from_pretrained(base, str(out)).eval()
    with torch.no_grad():
        tuned = model.get_input_embeddings()(ids)[0]
        with model.disable_adapter():
            plain = model.get_input_embeddings()(ids)[0]
    assert not torch.allclose(tuned[0], before[0]), "the <end_of_turn> row did not move"
    torch.testing.assert_close(tuned[1], before[1])  # every other row is the base's
    torch.testing.assert_close(plain[0], before[0])  # base answers stay the base model's


def test_unknown_trainable_token_is_a_user_error(tiny, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="trainable_tokens"):
        train(_config(tiny, tmp_path / "x", trainable_tokens=["<no_such_token>"]), progress=False)
