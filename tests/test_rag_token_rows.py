"""Serving an adapter with trained token rows: merged for speed, the base stays the base."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aldlab.llm.hf_generate import HFGenerator
from aldlab.train.tiny import train_tiny_adapter


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    model, adapter = train_tiny_adapter(tmp_path_factory.mktemp("token-rows"), trainable_tokens=["<end_of_turn>"])
    return {"model": model, "adapter": adapter}


def _last_logits(model, tokenizer) -> torch.Tensor:
    ids = torch.tensor([[tokenizer.bos_token_id or 2, tokenizer.convert_tokens_to_ids("<end_of_turn>"), 7]])
    with torch.no_grad():
        return model(input_ids=ids).logits[0, -1].clone()


def test_merged_rows_give_the_adapter_and_base_stays_base(trained) -> None:
    from peft import PeftModel

    from aldlab.llm.model import load_model, load_tokenizer

    tokenizer = load_tokenizer(str(trained["model"]))
    plain_base = _last_logits(load_model(str(trained["model"])).eval(), tokenizer)
    reference = PeftModel.from_pretrained(load_model(str(trained["model"])), str(trained["adapter"])).eval()
    plain_ft = _last_logits(reference, tokenizer)
    assert not torch.allclose(plain_ft, plain_base)

    generator = HFGenerator(str(trained["model"]), {"ft": str(trained["adapter"])}).load()
    for _ in range(2):  # ft -> base -> ft -> base: merging and unmerging round-trip
        with generator._use("ft") as model:
            torch.testing.assert_close(_last_logits(model, tokenizer), plain_ft, rtol=1e-4, atol=1e-4)
        with generator._use("base") as model:
            torch.testing.assert_close(_last_logits(model, tokenizer), plain_base, rtol=1e-4, atol=1e-4)


def test_the_resolver_names_the_engine_and_falls_back_to_transformers(monkeypatch) -> None:
    """Without llama-cpp-python the one resolver gives transformers, and says so."""
    import aldlab.llm.llamacpp as llamacpp
    from aldlab.rag.build import generator_from_config
    from aldlab.rag.config import RagConfig

    monkeypatch.setattr(llamacpp, "llama_cpp_available", lambda: False)
    generator = generator_from_config(RagConfig(), "embedded")
    assert generator.engine == "transformers"
    monkeypatch.setattr(llamacpp, "llama_cpp_available", lambda: True)
    monkeypatch.setattr(llamacpp, "_has_cuda", lambda: False)
    assert generator_from_config(RagConfig(), "embedded").engine == "llama.cpp"
    assert generator_from_config(RagConfig(engine="transformers"), "embedded").engine == "transformers"
