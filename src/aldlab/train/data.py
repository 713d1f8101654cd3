"""SFT data: chat JSONL -> token ids with assistant-only labels, length-grouped batches.

Each row has a `messages` list (system/user/assistant; other keys are ignored). The text is
rendered with the tokenizer's chat template and tokenised once; labels are -100 everywhere
except the tokens of assistant turns, including their end-of-turn token, so the model learns
to answer and to stop. Batches are padded only to their own longest row (dynamic padding),
and rows of similar length are grouped, so almost no compute goes to padding.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aldlab.errors import UserError
from aldlab.files import iter_jsonl

IGNORE_INDEX = -100
ROLES = {"system", "user", "assistant"}


@dataclass
class Example:
    """One tokenised conversation."""

    input_ids: list[int]
    labels: list[int]

    @property
    def n_supervised(self) -> int:
        return sum(1 for x in self.labels[1:] if x != IGNORE_INDEX)


@dataclass
class DatasetStats:
    rows: int = 0
    kept: int = 0
    too_long: int = 0
    supervised_tokens: int = 0
    total_tokens: int = 0


def read_conversations(path: str | Path) -> list[tuple[int, list[dict[str, str]]]]:
    """(line, messages) pairs; malformed rows are user errors naming file and line."""
    rows = []
    for lineno, obj in iter_jsonl(path):
        messages = obj.get("messages")
        if not isinstance(messages, list) or not messages:
            raise UserError(
                "각 줄에는 'messages' 목록이 있어야 합니다.",
                "Each row needs a non-empty 'messages' list.",
                path=path,
                line=lineno,
                hint='{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}',
            )
        clean = []
        for m in messages:
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise UserError(
                    "메시지는 role(system/user/assistant)과 content(문자열)가 있어야 합니다.",
                    "Each message needs role (system/user/assistant) and string content.",
                    path=path,
                    line=lineno,
                )
            clean.append({"role": m["role"], "content": m["content"]})
        if not any(m["role"] == "assistant" for m in clean):
            raise UserError(
                "assistant 답변이 없는 행입니다 (학습할 토큰이 없음).",
                "Row has no assistant message (nothing to learn).",
                path=path,
                line=lineno,
            )
        rows.append((lineno, clean))
    if not rows:
        raise UserError("데이터 파일이 비어 있습니다.", "The data file is empty.", path=path)
    return rows


def _render(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def assistant_char_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """Full rendered text and the character spans of each assistant turn.

    Works with any template: the prompt rendered up to turn i with a generation prompt is a
    prefix of the rendering through turn i; the difference is the assistant's text plus its
    end-of-turn marker.
    """
    full = _render(tokenizer, messages, add_generation_prompt=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], add_generation_prompt=True)
        through = _render(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if not full.startswith(through) or not through.startswith(before):
            raise UserError(
                "채팅 템플릿이 접두사 규칙을 따르지 않아 답변 위치를 찾을 수 없습니다.",
                "The chat template is not prefix-consistent; cannot locate assistant turns.",
                hint="다른 모델/템플릿을 쓰세요 / use a model with a standard chat template",
            )
        spans.append((len(before), len(through)))
    return full, spans


def tokenize_conversation(tokenizer: Any, messages: list[dict[str, str]]) -> Example:
    """Token ids and labels: a token is supervised iff it starts inside an assistant span."""
    text, spans = assistant_char_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = [IGNORE_INDEX] * len(ids)
    span_i = 0
    for t, (start, end) in enumerate(enc["offset_mapping"]):
        if end <= start:
            continue
        while span_i < len(spans) and start >= spans[span_i][1]:
            span_i += 1
        if span_i < len(spans) and spans[span_i][0] <= start < spans[span_i][1]:
            labels[t] = ids[t]
    return Example(ids, labels)


def load_examples(
    path: str | Path,
    tokenizer: Any,
    max_seq_len: int,
    max_examples: int | None = None,
) -> tuple[list[Example], DatasetStats]:
    """Tokenise a chat JSONL; conversations longer than max_seq_len are skipped, not cut.

    Cutting would drop the end-of-turn token and teach the model to run on.
    """
    stats = DatasetStats()
    examples = []
    for _lineno, messages in read_conversations(path):
        stats.rows += 1
        ex = tokenize_conversation(tokenizer, messages)
        if len(ex.input_ids) > max_seq_len:
            stats.too_long += 1
            continue
        if ex.n_supervised == 0:
            continue
        examples.append(ex)
        stats.kept += 1
        stats.supervised_tokens += ex.n_supervised
        stats.total_tokens += len(ex.input_ids)
        if max_examples is not None and stats.kept >= max_examples:
            break
    if not examples:
        raise UserError(
            f"학습 가능한 예제가 없습니다 (max_seq_len={max_seq_len}보다 긴 예제 {stats.too_long}개).",
            f"No usable examples ({stats.too_long} longer than max_seq_len={max_seq_len}).",
            path=path,
            hint="--max_seq_len 값을 늘리세요 / raise --max_seq_len",
        )
    return examples, stats


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Deterministic batches of similar-length rows for one epoch.

    Shuffle with (seed, epoch), sort inside mega-chunks of 50 batches by length, cut into
    batches, then shuffle the batch order: padding stays small while the order still varies
    per epoch. The same (seed, epoch) always gives the same batches, which is what makes
    `--resume` reproduce the uninterrupted data order.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    mega = batch_size * 50
    grouped: list[int] = []
    for i in range(0, len(order), mega):
        chunk = sorted(order[i : i + mega], key=lambda j: -lengths[j])
        grouped.extend(chunk)
    batches = [grouped[i : i + batch_size] for i in range(0, len(grouped), batch_size)]
    rng.shuffle(batches)
    return batches


def shuffled_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Plain shuffled batches (group_by_length off)."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(n))
    rng.shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def collate(examples: list[Example], pad_id: int) -> dict[str, Any]:
    """Right-pad to the longest row of this batch; pads get label -100 and mask 0."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
