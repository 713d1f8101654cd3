"""Causal-LM loss computed only where it counts.

`SupervisedCausalLM` runs the decoder, keeps the hidden states of positions whose next
token is supervised (assistant tokens), and only then applies the LM head. On
gemma-3-270m the 262k-vocab LM head took 39-53% of a training step when applied to every
position; SFT rows are mostly prompt, so slicing first removes most of that work and the
[tokens x 262k] logits tensor that dominated peak memory.

The head and the cross-entropy then run in chunks of rows (`chunked_head_loss`): each
chunk's [rows x vocab] logits give its loss and, at once, the gradient for the hidden
states, and are freed before the next chunk. The whole [supervised x 262k] logits tensor
and the copies autograd would keep of it (softcap, log-softmax, their gradients: 3-4 GB
on a 2 x 1024 batch) never exist; the arithmetic is the same, so the speed is too.

A head wrapped by PEFT's trainable tokens (the cpu-demo recipe trains `<end_of_turn>`, and
Gemma ties the head to the embedding, so PEFT wraps the head too) is chunked the same way:
the base weight gives each chunk's logits and the adapter's few trained rows replace their
token ids' columns. PEFT's own forward would first copy the whole 262k x 640 matrix with
those rows swapped in (`get_merged_weights`) and then need the full logits. The input
embedding (the same matrix, wrapped the same way) is looked up in the base table with the
trained rows put at their tokens' positions, for the same reason.

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
        embeds = embed_with_trained_rows(base, input_ids)
        inputs = {"input_ids": input_ids} if embeds is None else {"inputs_embeds": embeds}
        hidden = base.get_decoder()(**inputs, attention_mask=attention_mask, use_cache=False).last_hidden_state
        targets = labels[:, 1:]
        keep = targets != IGNORE_INDEX
        selected = hidden[:, :-1][keep]  # [n_supervised, hidden]: the only rows the head sees
        head = base.get_output_embeddings()
        softcap = getattr(base.config, "final_logit_softcapping", None) or 0.0
        parts = chunkable_head(head, selected.size(-1))
        if parts is not None:
            weight, token_ids, token_rows = parts
            loss_sum = chunked_head_loss(selected, weight, targets[keep], float(softcap),
                                         token_ids=token_ids, token_rows=token_rows)
        else:  # a head with a bias or sharded weights (ZeRO-3): let the module run itself
            logits = head(selected).float()
            if softcap:
                logits = torch.tanh(logits / softcap) * softcap
            loss_sum = F.cross_entropy(logits, targets[keep], reduction="sum")
        return loss_sum, keep.sum()


#: Rows per chunk: at most this many logits (fp32) exist at once, 256 MB (256 rows of Gemma's 262k vocab).
CHUNK_LOGITS = 64 * 1024 * 1024


def _plain_head(head: Any, hidden_size: int) -> bool:
    """A bias-free Linear whose full weight is here (not a ZeRO-3 shard, which only its forward gathers)."""
    if not isinstance(head, nn.Linear):  # before `.weight`: PEFT's wrapper builds a merged copy to answer it
        return False
    weight = head.weight
    return head.bias is None and weight is not None and weight.dim() == 2 and weight.size(1) == hidden_size \
        and weight.size(0) > 0


def chunkable_head(head: Any, hidden_size: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None] | None:
    """(weight, token ids, their rows) that give `head`'s logits, or None when only its forward can.

    A plain Linear gives (weight, None, None). A PEFT trainable-tokens head (the wrapper or its
    layer) around a plain Linear gives its base weight and the active adapters' trained rows,
    which replace the base rows of those ids, as PEFT's forward does. Anything else (a bias,
    a ZeRO-3 shard, a merged adapter that PEFT would unmerge, overlapping ids) is None.
    """
    if _plain_head(head, hidden_size):
        return head.weight, None, None
    layer = _trainable_tokens_layer(head)
    if layer is None or not _plain_head(layer.get_base_layer(), hidden_size):
        return None
    weight = layer.get_base_layer().weight
    swapped = _swapped_rows(layer, weight)
    return None if swapped is None else (weight, *swapped)


def embed_with_trained_rows(base: Any, input_ids: torch.Tensor) -> torch.Tensor | None:
    """Input embeddings of a PEFT trainable-tokens embedding, without PEFT's merged copy of the table.

    PEFT's forward copies the whole table (262k x 640, 671 MB in fp32) with the trained rows
    swapped in, and its backward makes a dense gradient of that size for a few rows. Here the
    base table embeds and the trained rows replace the positions of their tokens. None: let
    the decoder embed `input_ids` itself (no such wrapper, or a state only PEFT handles).
    """
    layer = _trainable_tokens_layer(base.get_input_embeddings())
    if layer is None:
        return None
    table = layer.get_base_layer()
    if not isinstance(table, nn.Embedding) or table.max_norm is not None or table.scale_grad_by_freq or table.sparse:
        return None
    swapped = _swapped_rows(layer, table.weight)
    if swapped is None:
        return None
    ids, rows = swapped
    if ids is not None and table.padding_idx is not None and bool((ids == table.padding_idx).any()):
        return None  # PEFT's lookup would give that row no gradient
    embeds = table(input_ids)  # the table's own forward (Gemma scales rows by sqrt(hidden_size))
    if ids is None:
        return embeds
    slot = torch.full_like(input_ids, -1)
    for j, token in enumerate(ids.tolist()):
        slot[input_ids == token] = j
    hit = slot >= 0
    values = rows[slot[hit]]
    scale = getattr(table, "embed_scale", None)  # the same attribute PEFT's own forward scales by
    if scale is not None:
        values = values * torch.as_tensor(scale).to(values)
    return embeds.index_put((hit,), values.to(embeds.dtype))


def _swapped_rows(layer: Any, weight: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None] | None:
    """(token ids, trained rows) PEFT's forward swaps into `weight`; (None, None) when it uses the
    weight as it is; None when only its forward knows (it would unmerge first, ids overlap)."""
    if weight.dim() != 2:  # a ZeRO-3 shard
        return None
    active = [] if layer.disable_adapters else list(layer.active_adapters)
    if layer.merged:  # the trained rows are already in the base weight, unless PEFT is about to unmerge
        return (None, None) if active else None
    if not active:
        return None, None
    if any(name not in layer.trainable_tokens_delta for name in active):
        return None
    ids = [int(i) for name in active for i in layer.token_indices[name]]
    rows = torch.cat([layer.trainable_tokens_delta[name] for name in active]).to(weight)
    if len(set(ids)) != len(ids) or rows.shape != (len(ids), weight.size(1)):
        return None  # PEFT refuses overlapping adapters; a repeated id would train two rows for one column
    return torch.tensor(ids, dtype=torch.long, device=weight.device), rows


def _trainable_tokens_layer(head: Any) -> Any:
    """PEFT's TrainableTokensLayer of `head` (its TrainableTokensWrapper or itself), else None."""
    try:
        from peft.tuners.trainable_tokens.layer import TrainableTokensLayer
    except ImportError:  # peft missing or reorganised: the module's own forward still works
        return None
    layer = getattr(head, "token_adapter", head)
    return layer if isinstance(layer, TrainableTokensLayer) else None


class _ChunkedHeadLoss(torch.autograd.Function):
    """Sum of token cross-entropies of `softcap(hidden @ weight.T)`, gradients made chunk by chunk.

    d loss / d logits = softmax - onehot is known in the forward pass, so each chunk turns
    its logits straight into the gradient of its hidden rows (and of the weight, if it
    trains) and drops them; backward only scales what forward saved.

    With `token_ids`, the logits of those columns come from `token_rows` instead of the
    weight's rows (PEFT trainable tokens): their gradient columns go to `token_rows`, and the
    weight's replaced rows get none, as with a weight that had the rows copied in.
    """

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, softcap: float,
                rows: int, token_ids: torch.Tensor | None, token_rows: torch.Tensor | None) -> torch.Tensor:
        swap = token_ids is not None
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        want_r = swap and ctx.needs_input_grad[6]
        grad_hidden = torch.empty_like(hidden) if want_h else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_w else None
        grad_rows = torch.zeros(token_rows.shape, dtype=torch.float32, device=weight.device) if want_r else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.size(0), rows):
            h, t = hidden[start : start + rows], targets[start : start + rows]
            logits = (h @ weight.t()).float()
            if swap:
                logits.index_copy_(1, token_ids, (h @ token_rows.t()).float())
            if softcap:
                capped = torch.tanh(logits.div_(softcap))
                slope = 1.0 - capped * capped  # d capped/d logits, before capped is reused in place
                logits = capped.mul_(softcap)
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            if not (want_h or want_w or want_r):
                continue
            grad = logits.sub_(lse[:, None]).exp_()  # softmax, in place
            grad[torch.arange(t.numel(), device=t.device), t] -= 1.0
            if softcap:
                grad.mul_(slope)
                del slope
            if swap:  # the swapped columns belong to token_rows: zeroed, the weight's rows get nothing
                grad_swapped = grad[:, token_ids]
                grad.index_fill_(1, token_ids, 0.0)
            if want_h:
                grad_h = grad.to(weight.dtype) @ weight
                if swap:
                    grad_h.addmm_(grad_swapped.to(weight.dtype), token_rows)
                grad_hidden[start : start + rows] = grad_h.to(hidden.dtype)
            if want_w:
                grad_weight.addmm_(grad.t(), h.float())
            if want_r:
                grad_rows.addmm_(grad_swapped.t(), h.float())
        grads = (grad_hidden, grad_weight, grad_rows)
        ctx.save_for_backward(*(g for g in grads if g is not None))
        ctx.has = tuple(g is not None for g in grads)
        ctx.dtypes = (hidden.dtype, weight.dtype, token_rows.dtype if swap else None)
        return total

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        saved = iter(ctx.saved_tensors)
        made = [next(saved) if has else None for has in ctx.has]
        grad_h, grad_w, grad_r = (
            None if g is None else (g * grad_out.to(g.dtype)).to(dtype) for g, dtype in zip(made, ctx.dtypes)
        )
        return grad_h, grad_w, None, None, None, None, grad_r


def chunked_head_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, softcap: float = 0.0,
                      rows: int | None = None, *, token_ids: torch.Tensor | None = None,
                      token_rows: torch.Tensor | None = None) -> torch.Tensor:
    """Summed cross-entropy of the LM head on `hidden` rows, never holding all their logits.

    `token_rows[i]` (trained, e.g. PEFT trainable tokens) replaces `weight[token_ids[i]]`;
    the merged weight is never built.
    """
    if (token_ids is None) != (token_rows is None):
        raise ValueError("token_ids and token_rows come together")
    if token_ids is not None and token_ids.numel() == 0:
        token_ids = token_rows = None
    if hidden.size(0) == 0:  # keeps the graph (DDP expects every step to backward)
        anchor = hidden.sum() + weight.sum() + (token_rows.sum() if token_rows is not None else 0.0)
        return anchor * 0.0
    rows = rows or max(1, CHUNK_LOGITS // max(1, weight.size(0)))
    return _ChunkedHeadLoss.apply(hidden, weight, targets, softcap, rows, token_ids, token_rows)


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
