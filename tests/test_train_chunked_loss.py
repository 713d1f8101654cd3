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


@pytest.mark.parametrize("softcap", [0.0, 30.0])
@pytest.mark.parametrize("train_head", [False, True])
@pytest.mark.parametrize("rows", [1, 5, 64])
def test_value_and_gradients_match_cross_entropy(softcap: float, train_head: bool, rows: int) -> None:
    torch.manual_seed(0)
    hidden = torch.randn(37, 16, requires_grad=True)
    weight = (torch.randn(101, 16) * 2).requires_grad_(train_head)
    targets = torch.randint(0, 101, (37,))

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
