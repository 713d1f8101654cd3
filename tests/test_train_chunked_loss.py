"""The chunked LM-head loss equals plain cross-entropy, in value and in gradients."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from aldlab.train.loss import chunked_head_loss


def _reference(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, softcap: float) -> torch.Tensor:
    logits = hidden @ weight.t()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, targets, reduction="sum")


def _case(train_head: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """37 rows of 16-dim hidden states, a 101-token head (scaled so the softcap matters), targets."""
    torch.manual_seed(0)
    hidden = torch.randn(37, 16, requires_grad=True)
    weight = (torch.randn(101, 16) * 2).requires_grad_(train_head)
    return hidden, weight, torch.randint(0, 101, (37,))


@pytest.mark.parametrize("softcap", [0.0, 30.0])
@pytest.mark.parametrize("train_head", [False, True])
@pytest.mark.parametrize("rows", [1, 5, 64])
def test_value_and_gradients_match_cross_entropy(softcap: float, train_head: bool, rows: int) -> None:
    hidden, weight, targets = _case(train_head)

    ref = _reference(hidden, weight, targets, softcap)
    (ref * 1.7).backward()  # an outer scale (1 / step tokens in the trainer) must reach the gradients
    ref_h = hidden.grad.clone()
    ref_w = weight.grad.clone() if train_head else None
    hidden.grad = None
    weight.grad = None

    ours = chunked_head_loss(hidden, weight, targets, softcap, rows=rows)
    (ours * 1.7).backward()
    assert torch.allclose(ours.detach(), ref.detach(), rtol=1e-5)
    assert torch.allclose(hidden.grad, ref_h, atol=1e-4)
    if train_head:
        assert torch.allclose(weight.grad, ref_w, atol=1e-4)
    else:
        assert weight.grad is None


def test_no_grad_and_empty_rows() -> None:
    weight = torch.randn(50, 8)
    with torch.no_grad():
        hidden = torch.randn(9, 8)
        targets = torch.randint(0, 50, (9,))
        assert torch.allclose(chunked_head_loss(hidden, weight, targets, rows=2), _reference(hidden, weight, targets, 0.0))
    empty = torch.randn(0, 8, requires_grad=True)
    loss = chunked_head_loss(empty, weight, torch.zeros(0, dtype=torch.long))
    loss.backward()  # no supervised row in a micro-batch: still a graph to backward through
    assert float(loss) == 0.0


@pytest.mark.parametrize("softcap", [0.0, 30.0])
@pytest.mark.parametrize("train_head", [False, True])
@pytest.mark.parametrize("rows", [1, 7, 64])
def test_swapped_token_rows_match_the_merged_weight(softcap: float, train_head: bool, rows: int) -> None:
    """PEFT trainable tokens: rows replacing some of the weight's, without building the merged weight."""
    hidden, weight, targets = _case(train_head)
    token_ids = torch.tensor([3, 50, 100])
    token_rows = (torch.randn(3, 16) * 2).requires_grad_(True)
    targets[::3] = token_ids.repeat(13)[: targets[::3].numel()]  # the swapped columns are often the answer

    ref = _reference(hidden, weight.index_copy(0, token_ids, token_rows), targets, softcap)
    (ref * 1.7).backward()
    want = {"hidden": hidden.grad.clone(), "rows": token_rows.grad.clone(),
            "weight": weight.grad.clone() if train_head else None}
    hidden.grad = token_rows.grad = weight.grad = None

    ours = chunked_head_loss(hidden, weight, targets, softcap, rows=rows, token_ids=token_ids, token_rows=token_rows)
    (ours * 1.7).backward()
    assert torch.allclose(ours.detach(), ref.detach(), rtol=1e-5)
    # the swap matters: the plain weight gives another loss
    assert not torch.allclose(chunked_head_loss(hidden, weight, targets, softcap).detach(), ref.detach(), rtol=1e-3)
    assert torch.allclose(hidden.grad, want["hidden"], atol=1e-4)
    assert torch.allclose(token_rows.grad, want["rows"], atol=1e-4)
    assert float(token_rows.grad.abs().sum()) > 0
    if train_head:
        assert torch.allclose(weight.grad, want["weight"], atol=1e-4)
        assert float(weight.grad[token_ids].abs().sum()) == 0.0  # replaced rows are not the weight's to learn
    else:
        assert weight.grad is None


def test_swapped_token_rows_with_no_supervised_row() -> None:
    token_rows = torch.randn(2, 8, requires_grad=True)
    no_rows = torch.randn(0, 8, requires_grad=True)
    loss = chunked_head_loss(no_rows, torch.randn(50, 8), torch.zeros(0, dtype=torch.long),
                             token_ids=torch.tensor([1, 2]), token_rows=token_rows)
    loss.backward()
    assert float(loss) == 0.0 and token_rows.grad is not None


# --------------------------------------------------------------------------- PEFT trainable tokens on a model

_TRAINED_TOKENS = [5, 11]


def _tiny_gemma_with_trainable_tokens(tied: bool, softcap: float | None):
    """A tiny random Gemma-3 with LoRA and PEFT trainable token rows, the cpu-demo recipe's shape."""
    from peft import LoraConfig, get_peft_model
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, max_position_embeddings=128, sliding_window=64,
        pad_token_id=0, eos_token_id=1, bos_token_id=2, tie_word_embeddings=tied, final_logit_softcapping=softcap,
    )
    base = Gemma3ForCausalLM(config)
    # untied: the head gets its own rows only when named (the default wraps the input embedding)
    indices = _TRAINED_TOKENS if tied else {"embed_tokens": _TRAINED_TOKENS, "lm_head": _TRAINED_TOKENS}
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "down_proj"],
                      init_lora_weights=False, trainable_token_indices=indices)
    model = get_peft_model(base, lora)
    with torch.no_grad():  # trained rows that differ from the base's, as after some steps
        for name, p in model.named_parameters():
            if "trainable_tokens_delta" in name:
                p.add_(torch.randn_like(p))
    return model


def _batch() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    input_ids = torch.randint(3, 97, (2, 12))
    input_ids[:, 5::3] = _TRAINED_TOKENS[0]  # the trained rows are read (embedding) and predicted (head)
    input_ids[1, 7] = _TRAINED_TOKENS[1]
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, -3:] = 0
    labels = input_ids.clone()
    labels[:, :4] = -100  # the prompt
    labels[1, -3:] = -100  # padding
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("softcap", [None, 30.0])
def test_trainable_token_head_is_chunked_and_matches_full_logits(tied: bool, softcap: float | None) -> None:
    from aldlab.train.loss import SupervisedCausalLM, full_logits_loss

    model = _tiny_gemma_with_trainable_tokens(tied, softcap)
    model.train()
    batch = _batch()
    head = model.get_base_model().get_output_embeddings()
    assert hasattr(head, "token_adapter"), "PEFT did not wrap the head: the test would not test the new path"
    assert hasattr(model.get_base_model().get_input_embeddings(), "token_adapter")
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert any("trainable_tokens_delta" in n for n in trained) and any("lora_" in n for n in trained)

    ref_sum, ref_n = full_logits_loss(model, batch)
    (ref_sum / ref_n).backward()
    want = {n: p.grad.detach().clone() for n, p in trained.items()}
    model.zero_grad(set_to_none=True)

    wrapper_calls = []
    for wrapper in (head, model.get_base_model().get_input_embeddings()):
        wrapper.register_forward_hook(lambda module, *_: wrapper_calls.append(type(module).__name__))

        def merged_weight_is_built(*_args, **_kwargs):
            raise AssertionError("PEFT built a merged copy of the whole weight (get_merged_weights)")

        wrapper.token_adapter.get_merged_weights = merged_weight_is_built
    ours_sum, ours_n = SupervisedCausalLM(model)(**batch)
    (ours_sum / ours_n).backward()
    assert wrapper_calls == [], "the loss fell back to PEFT's forward (full logits or a merged table)"
    assert int(ours_n) == int(ref_n) > 0
    torch.testing.assert_close(ours_sum.detach(), ref_sum.detach(), rtol=1e-5, atol=1e-4)
    for name, p in trained.items():
        torch.testing.assert_close(p.grad, want[name], rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
    head_rows = [n for n in trained if "trainable_tokens_delta" in n and ("lm_head" in n or tied)]
    assert head_rows and all(float(trained[n].grad.abs().sum()) > 0 for n in head_rows)


def test_other_heads_keep_the_module_forward() -> None:
    from torch import nn

    from aldlab.train.loss import chunkable_head

    assert chunkable_head(nn.Linear(8, 20, bias=True), 8) is None  # a bias: the module runs itself
    plain = nn.Linear(8, 20, bias=False)
    weight, ids, rows = chunkable_head(plain, 8)
    assert weight is plain.weight and ids is None and rows is None
