"""Trainable special-token rows (train.trainable_tokens) on a tiny random Gemma-3 model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aldlab.errors import UserError
from aldlab.train.tiny import train_tiny_adapter


def test_end_of_turn_row_is_trained_and_only_that_row(tmp_path: Path) -> None:
    from peft import PeftModel

    from aldlab.llm.model import load_model, load_tokenizer

    model_dir, out = train_tiny_adapter(tmp_path, trainable_tokens=["<end_of_turn>"])
    tok = load_tokenizer(str(model_dir))
    eot = tok.convert_tokens_to_ids("<end_of_turn>")
    base = load_model(str(model_dir))
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


def test_unknown_trainable_token_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="trainable_tokens"):
        train_tiny_adapter(tmp_path, trainable_tokens=["<no_such_token>"])
