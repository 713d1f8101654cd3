"""SFT data: chat JSONL -> token ids with assistant-only labels, length-grouped batches.

Each row has a `messages` list (system/user/assistant; other keys are ignored). The text is
rendered with the tokenizer's chat template and tokenised by `llm.chat_template.chat_token_ids`
(the tokenisation generation uses too); labels are -100 everywhere except the tokens of
assistant turns, including their end-of-turn token, so the model learns to answer and to stop.
Batches are padded only to their own longest row (dynamic padding), and rows of similar
length are grouped, so almost no compute goes to padding.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from aldlab.errors import UserError
from aldlab.files import iter_jsonl
from aldlab.llm.chat_template import chat_token_ids

if TYPE_CHECKING:
    from aldlab.train.config import TrainConfig

IGNORE_INDEX = -100
ROLES = {"system", "user", "assistant"}


STYLES = ("closed", "rag", "refusal")  # the styles `aldlab data build` writes; "other" for foreign rows
MAX_SKIP_SHARE = 0.02  # more than this share of a style dropped as too long -> stop, unless allowed
SEQ_LEN_ROUNDING = 64  # `max_seq_len: auto` rounds the longest row up to a multiple of this


@dataclass
class Example:
    """One tokenised conversation."""

    input_ids: list[int]
    labels: list[int]
    style: str = "other"
    line: int = 0
    pinned: bool = False  # an approved correction or liked answer: never dropped by the cap

    @property
    def n_supervised(self) -> int:
        return sum(1 for x in self.labels[1:] if x != IGNORE_INDEX)


@dataclass
class StyleCount:
    """Rows of one style: read, fitting max_seq_len, too long, and used after the cap."""

    rows: int = 0
    kept: int = 0
    too_long: int = 0
    selected: int = 0


@dataclass
class DatasetStats:
    rows: int = 0
    kept: int = 0
    too_long: int = 0
    supervised_tokens: int = 0
    total_tokens: int = 0
    max_seq_len: int = 0
    by_style: dict[str, StyleCount] = field(default_factory=dict)

    def summary(self) -> str:
        """One log line: 'closed 96/100, rag 80/97 (17 too long) ...' (selected/rows)."""
        parts = []
        for style, c in sorted(self.by_style.items(), key=lambda kv: _style_rank(kv[0])):
            part = f"{style} {c.selected}/{c.rows}"
            if c.too_long:
                part += f" ({c.too_long} > {self.max_seq_len} tok 제외 / too long, skipped)"
            parts.append(part)
        return ", ".join(parts)


def _style_rank(style: str) -> int:
    return STYLES.index(style) if style in STYLES else len(STYLES)


def row_style(row: dict[str, Any]) -> str:
    """closed / rag / refusal from the row's `kind` and `style` keys (`aldlab data build`).

    A refusal is its own style whatever its prompt shape: it is the rarest skill and the
    one most easily lost when rows are capped or skipped.
    """
    if row.get("kind") == "unanswerable":
        return "refusal"
    style = str(row.get("style") or "").lower()
    if style == "rag":
        return "rag"
    if style in {"closed", "closed_book", "closed-book"}:
        return "closed"
    return "other"


#: Row kinds a person wrote or approved for this model: kept whole when rows are capped
#: (`max_train_examples`). The cpu-demo preset trains on 200 of ~850 rows, so ten approved
#: corrections would otherwise reach training as two or three rows.
PINNED_KINDS = frozenset({"feedback"})


class Conversation(NamedTuple):
    """One chat row of a JSONL file."""

    line: int
    messages: list[dict[str, str]]
    style: str
    pinned: bool = False


def read_conversations(path: str | Path) -> list[Conversation]:
    """The file's conversations; malformed rows are user errors naming file and line."""
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
        rows.append(Conversation(lineno, clean, row_style(obj), obj.get("kind") in PINNED_KINDS))
    if not rows:
        raise UserError("데이터 파일이 비어 있습니다.", "The data file is empty.", path=path)
    return rows


def tokenize_conversation(tokenizer: Any, messages: list[dict[str, str]]) -> Example:
    """Token ids and labels: a token is supervised iff it belongs to an assistant turn.

    `chat_token_ids` is also what generation feeds the model (`render_prompt_ids`), so the
    ids before each answer are exactly the served prompt.
    """
    ids, is_answer = chat_token_ids(tokenizer, messages)
    labels = [token if answer else IGNORE_INDEX for token, answer in zip(ids, is_answer, strict=True)]
    return Example(ids, labels)


def tokenize_file(path: str | Path, tokenizer: Any) -> list[Example]:
    """Every row of a chat JSONL tokenised, with its style and line (nothing dropped yet)."""
    examples = []
    for row in read_conversations(path):
        ex = tokenize_conversation(tokenizer, row.messages)
        ex.style, ex.line, ex.pinned = row.style, row.line, row.pinned
        examples.append(ex)
    return examples


def resolve_max_seq_len(spec: int | str, lengths: list[int]) -> int:
    """`max_seq_len` as a number: an int as is; `auto` = longest row; `pNN` = NNth percentile.

    Both data-derived forms round up to a multiple of 64 so that a few tokens of template
    change do not move the limit under a row.
    """
    if isinstance(spec, int):
        return spec
    text = str(spec).strip().lower()
    if text.isdigit():
        return int(text)
    if not lengths:
        return SEQ_LEN_ROUNDING
    ordered = sorted(lengths)
    if text == "auto":
        value = ordered[-1]
    else:
        q = float(text.removeprefix("auto:").removeprefix("p")) / 100.0
        value = ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
    return int(math.ceil(value / SEQ_LEN_ROUNDING) * SEQ_LEN_ROUNDING)


def stratified_cap(examples: list[Example], n: int | None, seed: int, *, keep_pinned: bool = False) -> list[Example]:
    """At most n examples with the styles in the same proportions as `examples`.

    Quotas by largest remainder; inside a style a seeded shuffle picks the rows, and the
    result keeps file order. The same (examples, n, seed) always gives the same subset.
    With `keep_pinned`, pinned rows (reviewed feedback) are all taken first and the rest
    of the quota is filled by style from the others.
    """
    if n is None or n >= len(examples):
        return list(examples)
    if keep_pinned and any(ex.pinned for ex in examples):
        pinned = [ex for ex in examples if ex.pinned]
        rest = stratified_cap([ex for ex in examples if not ex.pinned], max(0, n - len(pinned)), seed)
        chosen_ids = {id(ex) for ex in pinned + rest}
        return [ex for ex in examples if id(ex) in chosen_ids]
    by_style: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_style.setdefault(ex.style, []).append(i)
    styles = sorted(by_style, key=lambda st: (_style_rank(st), st))
    exact = {st: n * len(by_style[st]) / len(examples) for st in styles}
    quota = {st: int(exact[st]) for st in styles}
    for st in sorted(styles, key=lambda st: (-(exact[st] - quota[st]), _style_rank(st), st))[: n - sum(quota.values())]:
        quota[st] += 1
    rng = random.Random(seed)
    chosen: list[int] = []
    for st in styles:
        idx = list(by_style[st])
        rng.shuffle(idx)
        chosen.extend(idx[: quota[st]])
    return [examples[i] for i in sorted(chosen)]


def select_examples(
    examples: list[Example],
    max_seq_len: int,
    max_examples: int | None = None,
    seed: int = 0,
    allow_skipping_long_rows: bool = False,
    path: str | Path | None = None,
) -> tuple[list[Example], DatasetStats]:
    """Drop rows longer than max_seq_len (never cut them), check the loss, cap stratified.

    Cutting would drop the end-of-turn token and teach the model to run on. Dropping is
    allowed only up to 2% of any style: beyond that a style (in practice the long RAG rows)
    silently vanishes from training, so stop and say how to make them fit.
    """
    stats = DatasetStats(max_seq_len=max_seq_len)
    fitting = []
    for ex in examples:
        count = stats.by_style.setdefault(ex.style, StyleCount())
        count.rows += 1
        stats.rows += 1
        if len(ex.input_ids) > max_seq_len:
            count.too_long += 1
            stats.too_long += 1
            continue
        if ex.n_supervised == 0:
            continue
        count.kept += 1
        fitting.append(ex)
    _check_skip_share(stats, allow_skipping_long_rows, path, examples)
    chosen = stratified_cap(fitting, max_examples, seed, keep_pinned=True)
    for ex in chosen:
        stats.by_style[ex.style].selected += 1
        stats.supervised_tokens += ex.n_supervised
        stats.total_tokens += len(ex.input_ids)
    stats.kept = len(chosen)
    if not chosen:
        raise UserError(
            f"학습 가능한 예제가 없습니다 (max_seq_len={max_seq_len}보다 긴 예제 {stats.too_long}개).",
            f"No usable examples ({stats.too_long} longer than max_seq_len={max_seq_len}).",
            path=path,
            hint="--max_seq_len auto 또는 더 큰 값 / --max_seq_len auto or a larger value",
        )
    return chosen, stats


def _check_skip_share(
    stats: DatasetStats, allowed: bool, path: str | Path | None, examples: list[Example]
) -> None:
    if allowed:
        return
    over = {st: c for st, c in stats.by_style.items() if c.too_long > MAX_SKIP_SHARE * c.rows}
    if not over:
        return
    longest = max(len(e.input_ids) for e in examples)
    detail = ", ".join(f"{st} {c.too_long}/{c.rows}" for st, c in sorted(over.items()))
    raise UserError(
        f"max_seq_len={stats.max_seq_len}보다 긴 행이 너무 많아 학습에서 빠집니다 ({detail}; 허용 {MAX_SKIP_SHARE:.0%}).",
        f"Too many rows are longer than max_seq_len={stats.max_seq_len} and would be dropped "
        f"({detail}; at most {MAX_SKIP_SHARE:.0%} of a style may be). Longest row: {longest} tokens.",
        path=path,
        hint=f"--max_seq_len auto (={resolve_max_seq_len('auto', [longest])}) 또는 --max_seq_len p99, "
        "정말 버리려면 --allow_skipping_long_rows / use --max_seq_len auto or p99, "
        "or --allow_skipping_long_rows to drop them on purpose",
    )


def load_examples(
    path: str | Path,
    tokenizer: Any,
    max_seq_len: int | str,
    max_examples: int | None = None,
    seed: int = 0,
    allow_skipping_long_rows: bool = False,
) -> tuple[list[Example], DatasetStats]:
    """Tokenise a chat JSONL and select rows (see `select_examples`); one call for tools."""
    examples = tokenize_file(path, tokenizer)
    limit = resolve_max_seq_len(max_seq_len, [len(e.input_ids) for e in examples])
    return select_examples(examples, limit, max_examples, seed, allow_skipping_long_rows, path)


def split_eval(examples: list[Example], seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out ~5% (at most 100, at least 1) of training rows when no eval file is given.

    Stratified by style, so the eval loss measures RAG and refusal rows too.
    """
    if len(examples) < 2:
        return examples, examples
    n_eval = max(1, min(100, len(examples) // 20))
    held = {id(e) for e in stratified_cap(examples, n_eval, seed)}
    return [e for e in examples if id(e) not in held], [e for e in examples if id(e) in held]


def load_train_and_eval(config: TrainConfig, tokenizer: Any, train_path: Path, eval_path: Path | None) -> tuple[
    list[Example], list[Example], DatasetStats, DatasetStats | None, int
]:
    """The trainer's data: tokenise both files, fix max_seq_len from both (when `auto`/`pNN`),
    skip and cap per style; without an eval file, hold out a stratified share of train."""
    train_all = tokenize_file(train_path, tokenizer)
    eval_all = tokenize_file(eval_path, tokenizer) if eval_path else []
    seq_len = resolve_max_seq_len(config.max_seq_len, [len(e.input_ids) for e in train_all + eval_all])
    allow = config.allow_skipping_long_rows
    train_examples, train_stats = select_examples(
        train_all, seq_len, config.max_train_examples, config.seed, allow, train_path
    )
    eval_stats = None
    if eval_path is not None:
        eval_examples, eval_stats = select_examples(
            eval_all, seq_len, config.max_eval_examples, config.seed, allow, eval_path
        )
    else:
        train_examples, eval_examples = split_eval(train_examples, config.seed)
        eval_examples = stratified_cap(eval_examples, config.max_eval_examples, config.seed)
    return train_examples, eval_examples, train_stats, eval_stats, seq_len


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Deterministic batches of similar-length rows for one epoch.

    Shuffle with (seed, epoch), sort inside mega-chunks of 50 batches by length, cut into
    batches, then shuffle the batch order: padding stays small while the order still varies
    per epoch; the batch with the longest row comes first. The same (seed, epoch) always
    gives the same batches, which is what makes `--resume` reproduce the uninterrupted order.
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
    # The batch holding the longest row goes first (as HF's length-grouped sampler does), so
    # an out-of-memory error shows in the first step, not hours into a run.
    longest = max(range(len(batches)), key=lambda b: (max(lengths[i] for i in batches[b]), -b))
    batches[0], batches[longest] = batches[longest], batches[0]
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
