"""Causal-LM loss computed only where it counts.

`SupervisedCausalLM` runs the decoder, keeps the hidden states of positions whose next
token is supervised (assistant tokens), and only then applies the LM head. On
gemma-3-270m the 262k-vocab LM head took 39-53% of a training step when applied to every
position; SFT rows are mostly prompt, so slicing first removes most of that work and the
[tokens x 262k] logits tensor that dominated peak memory.

The module returns the *summed* token loss and the token count, so the caller can divide
by the number of supervised tokens of the whole optimizer step (all micro-batches and
ranks): gradient accumulation then never changes the loss scale.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from aldlab.train.data import IGNORE_INDEX


def _base_causal_lm(model: Any) -> Any:
    """The transformers CausalLM under an optional PEFT wrapper."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class SupervisedCausalLM(nn.Module):
    """Wrap a (PEFT) causal LM: forward returns (sum of token losses, supervised tokens)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    @property
    def config(self) -> Any:
        """The model's config: DeepSpeed fills its "auto" bucket sizes from `hidden_size`."""
        return _base_causal_lm(self.model).config

    @property
    def _no_split_modules(self) -> Any:
        """FSDP auto-wrap finds the decoder layer class here."""
        return getattr(_base_causal_lm(self.model), "_no_split_modules", None)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        base = _base_causal_lm(self.model)
        hidden = base.get_decoder()(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state
        targets = labels[:, 1:]
        keep = targets != IGNORE_INDEX
        selected = hidden[:, :-1][keep]  # [n_supervised, hidden]: the only rows the head sees
        logits = base.get_output_embeddings()(selected).float()
        softcap = getattr(base.config, "final_logit_softcapping", None)
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        loss_sum = F.cross_entropy(logits, targets[keep], reduction="sum")
        return loss_sum, keep.sum()


def full_logits_loss(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: the plain HF forward over every position (used by tests and the benchmark)."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    logits = out.logits[:, :-1].float()
    targets = batch["labels"][:, 1:]
    loss_sum = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return loss_sum, (targets != IGNORE_INDEX).sum()


def loss_mismatch(model: Any, batch: dict[str, torch.Tensor], rtol: float) -> tuple[float, float] | None:
    """(ours, model's) mean token loss when the sliced loss disagrees with the model's own.

    `SupervisedCausalLM` re-implements the model's head and its logit post-processing
    (it knows Gemma's softcapping); an architecture that does something else to its logits
    would silently train on a different loss. One batch through both at setup catches it.
    Runs in eval mode without gradients; call it on every rank (ZeRO-3 forwards gather).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ours_sum, n = SupervisedCausalLM(model)(**batch)
            theirs = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"],
                use_cache=False,
            ).loss
    finally:
        model.train(was_training)
    ours, ref = float(ours_sum) / max(1, int(n)), float(theirs)
    return None if abs(ours - ref) <= rtol * max(1.0, abs(ref)) else (ours, ref)
