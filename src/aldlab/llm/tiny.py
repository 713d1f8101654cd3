"""A tiny random Gemma-3-style model + tokenizer for fast offline tests.

Real code paths (chat template with turn tokens, PEFT LoRA on q/k/v/o, generation, export)
run on it in well under a second per step, so tests of every stage can exercise them without
the 262k-vocab embedded model. Training data and a tiny trained adapter: `train.tiny`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]

_DEFAULT_CORPUS = [
    "원자층 증착 ALD 공정은 전구체와 반응물을 번갈아 공급합니다.",
    "TMA와 H2O로 Al2O3 박막을 증착합니다. 성장률은 사이클당 약 1 옹스트롬입니다.",
    "퍼지 시간이 부족하면 CVD 성분이 생겨 균일도가 나빠집니다.",
    "The ALD window is the temperature range with a constant growth per cycle.",
    "user model system assistant question answer 질문 답변",
]


def build_tiny_tokenizer(corpus: Iterable[str] = (), vocab_size: int = 600):  # noqa: ANN201
    """A byte-level BPE tokenizer with Gemma's special tokens, trained in milliseconds."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(_DEFAULT_CORPUS) + list(corpus), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
    )


def build_tiny_model_dir(path: str | Path, corpus: Iterable[str] = (), seed: int = 0, **config: Any) -> Path:
    """Write a tiny random Gemma3ForCausalLM + tokenizer (no chat template) to `path`.

    `config` overrides Gemma3TextConfig fields (e.g. final_logit_softcapping). They go to the
    constructor, so derived fields follow them (`num_hidden_layers=6` gets six `layer_types`).
    """
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    out = Path(path)
    tokenizer = build_tiny_tokenizer(corpus)
    fields: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "max_position_embeddings": 512,
        "sliding_window": 64,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "tie_word_embeddings": True,
    }
    text_config = Gemma3TextConfig(**{**fields, **config})
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(text_config)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out
