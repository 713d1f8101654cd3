"""Chat template, assistant-only labels, batching and input validation of the train stage."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from aldlab.errors import UserError
from aldlab.llm.chat_template import GEMMA_TEMPLATE, GENERIC_TEMPLATE, end_of_turn_token_ids, ensure_chat_template
from aldlab.llm.tiny import build_tiny_tokenizer
from aldlab.prompts import build_messages
from aldlab.train.config import TrainConfig
from aldlab.train.data import (
    IGNORE_INDEX,
    StyleCount,
    collate,
    length_grouped_batches,
    load_examples,
    resolve_max_seq_len,
    row_style,
    stratified_cap,
    tokenize_conversation,
    tokenize_file,
)
from aldlab.train.tiny import write_chat_jsonl


@pytest.fixture(scope="module")
def tok():
    t = build_tiny_tokenizer()
    ensure_chat_template(t)
    return t


def test_gemma_template_folds_system_and_ends_turns(tok) -> None:
    msgs = [
        {"role": "system", "content": "시스템"},
        {"role": "user", "content": "질문"},
        {"role": "assistant", "content": "답변"},
    ]
    assert tok.chat_template == GEMMA_TEMPLATE
    text = tok.apply_chat_template(msgs, tokenize=False)
    assert text == (
        "<bos><start_of_turn>user\n시스템\n\n질문<end_of_turn>\n"
        "<start_of_turn>model\n답변<end_of_turn>\n"
    )
    prompt = tok.apply_chat_template(msgs[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<start_of_turn>model\n")
    assert text.startswith(prompt)


def test_end_of_turn_ids_put_turn_token_first(tok) -> None:
    ids = end_of_turn_token_ids(tok)
    assert ids[0] == tok.convert_tokens_to_ids("<end_of_turn>")
    assert tok.eos_token_id in ids


CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def test_end_of_turn_ids_follow_the_template_not_the_vocabulary() -> None:
    """A ChatML template over a vocabulary that also holds Gemma's <end_of_turn>: stop at <|im_end|>."""
    t = build_tiny_tokenizer()
    t.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    t.chat_template = CHATML
    ids = end_of_turn_token_ids(t)
    assert ids[0] == t.convert_tokens_to_ids("<|im_end|>")
    assert t.convert_tokens_to_ids("<end_of_turn>") not in ids and t.eos_token_id in ids
    # A template that ends turns with EOS (the generic fallback) stops at EOS only.
    generic = build_tiny_tokenizer()
    generic.chat_template = GENERIC_TEMPLATE
    assert end_of_turn_token_ids(generic) == [generic.eos_token_id]


def test_own_template_is_kept() -> None:
    t = build_tiny_tokenizer()
    t.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    ensure_chat_template(t)
    assert t.chat_template.startswith("{% for m")


def test_only_assistant_tokens_are_supervised(tok) -> None:
    """Every system/user/context/template position is -100; every assistant token and
    its <end_of_turn> are labelled with their own id."""
    history = [{"role": "user", "content": "첫 질문"}, {"role": "assistant", "content": "첫 답변입니다."}]
    passages = [type("P", (), {"id": "d1", "title": "퍼지", "text": "퍼지 시간이 부족하면 CVD 성분이 생깁니다."})()]
    msgs = build_messages("두 번째 질문", passages, history=history, answer="두 번째 답변 [d1]")
    ex = tokenize_conversation(tok, msgs)
    eot = tok.convert_tokens_to_ids("<end_of_turn>")

    # Rebuild the expected mask independently, turn by turn, from token counts of prefixes.
    expected = [IGNORE_INDEX] * len(ex.input_ids)
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        start = len(tok(tok.apply_chat_template(msgs[:i], tokenize=False, add_generation_prompt=True),
                        add_special_tokens=False)["input_ids"])
        end = len(tok(tok.apply_chat_template(msgs[: i + 1], tokenize=False), add_special_tokens=False)["input_ids"])
        expected[start:end] = ex.input_ids[start:end]
    assert ex.labels == expected

    supervised = [t for t in ex.labels if t != IGNORE_INDEX]
    assert tok.decode(supervised) == "첫 답변입니다.<end_of_turn>\n두 번째 답변 [d1]<end_of_turn>\n"
    # Both assistant turns end with a supervised <end_of_turn>; user turns' ones are not.
    eot_positions = [i for i, t in enumerate(ex.input_ids) if t == eot]
    assert len(eot_positions) == 4
    assert [ex.labels[i] == eot for i in eot_positions] == [False, True, False, True]
    # The system prompt, the retrieved context and the question are never supervised.
    unsupervised_text = tok.decode([t for t, lab in zip(ex.input_ids, ex.labels, strict=True) if lab == IGNORE_INDEX])
    assert "퍼지 시간이 부족하면" in unsupervised_text and "두 번째 질문" in unsupervised_text


def test_collate_pads_with_ignored_labels(tok) -> None:
    a = tokenize_conversation(tok, build_messages("짧은 질문", answer="답"))
    b = tokenize_conversation(tok, build_messages("조금 더 긴 질문입니다 " * 3, answer="더 긴 답변입니다"))
    batch = collate([a, b], tok.pad_token_id)
    width = max(len(a.input_ids), len(b.input_ids))
    assert batch["input_ids"].shape == (2, width)  # dynamic padding: longest row, not a fixed 1024
    pad_rows, pad_cols = (batch["attention_mask"] == 0).nonzero(as_tuple=True)
    assert len(pad_rows) == width * 2 - len(a.input_ids) - len(b.input_ids)
    assert (batch["labels"][pad_rows, pad_cols] == IGNORE_INDEX).all()
    assert (batch["input_ids"][pad_rows, pad_cols] == tok.pad_token_id).all()


def test_length_grouped_batches_are_deterministic_and_complete() -> None:
    lengths = [(i * 37) % 101 + 5 for i in range(230)]
    b1 = length_grouped_batches(lengths, 4, seed=1, epoch=0)
    assert b1 == length_grouped_batches(lengths, 4, seed=1, epoch=0)
    assert b1 != length_grouped_batches(lengths, 4, seed=1, epoch=1)
    assert sorted(i for b in b1 for i in b) == list(range(230))
    # Grouping keeps padding low: mean in-batch spread far below the global spread.
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in b1) / len(b1)
    assert spread < (max(lengths) - min(lengths)) / 5


@pytest.mark.parametrize("epoch", range(6))
def test_longest_batch_comes_first(epoch: int) -> None:
    """An out-of-memory batch must fail in step 1, not hours later."""
    lengths = [(i * 37) % 101 + 5 for i in range(230)]
    lengths[171] = 999
    batches = length_grouped_batches(lengths, 4, seed=3, epoch=epoch)
    assert 171 in batches[0]
    assert sorted(i for b in batches for i in b) == list(range(230))


def test_bad_rows_name_file_and_line(tok, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"messages": build_messages("q", answer="a")}, ensure_ascii=False)
    path.write_text(good + "\n" + json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n", encoding="utf-8")
    with pytest.raises(UserError) as err:
        load_examples(path, tok, 512)
    assert err.value.line == 2 and "assistant" in err.value.en


def test_too_long_rows_are_skipped_not_cut(tok, tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    rows = [{"messages": build_messages("짧다", answer="네")}, {"messages": build_messages("길다 " * 600, answer="네")}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    examples, stats = load_examples(path, tok, 512, allow_skipping_long_rows=True)
    assert stats.too_long == 1 and len(examples) == 1
    assert examples[0].labels[-2] == tok.convert_tokens_to_ids("<end_of_turn>")


def test_row_style_from_kind_and_style_keys() -> None:
    assert row_style({"style": "rag", "kind": "kb"}) == "rag"
    assert row_style({"style": "closed", "kind": "combo"}) == "closed"
    assert row_style({"style": "rag", "kind": "unanswerable"}) == "refusal"
    assert row_style({"style": "closed", "kind": "unanswerable"}) == "refusal"
    assert row_style({"style": "closed_book"}) == "closed"
    assert row_style({"messages": []}) == "other"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """30 rows cycling closed / rag / refusal; the RAG rows are the long ones (~600 tokens)."""
    return write_chat_jsonl(tmp_path_factory.mktemp("mix") / "mix.jsonl", 30, seed=0, mix=True)


def test_dropping_more_than_two_percent_of_a_style_stops(tok, mixed: Path) -> None:
    lengths = {e.style: len(e.input_ids) for e in tokenize_file(mixed, tok)}
    limit = lengths["closed"] + 100  # closed and refusal rows fit, every RAG row is too long
    assert lengths["rag"] > limit
    with pytest.raises(UserError) as err:
        load_examples(mixed, tok, limit)
    assert "rag 10/10" in err.value.en and "--max_seq_len auto" in err.value.hint
    assert "--allow_skipping_long_rows" in err.value.hint
    # Explicitly allowed: training goes on, and the loss is reported per style.
    examples, stats = load_examples(mixed, tok, limit, allow_skipping_long_rows=True)
    assert {e.style for e in examples} == {"closed", "refusal"}
    assert stats.by_style["rag"] == StyleCount(rows=10, kept=0, too_long=10, selected=0)
    assert stats.by_style["closed"] == StyleCount(rows=10, kept=10, too_long=0, selected=10)
    assert "rag 0/10 (10 > " in stats.summary()


def test_max_seq_len_auto_and_percentile(tok, mixed: Path) -> None:
    lengths = [len(e.input_ids) for e in tokenize_file(mixed, tok)]
    auto = resolve_max_seq_len("auto", lengths)
    assert auto % 64 == 0 and max(lengths) <= auto < max(lengths) + 64
    assert resolve_max_seq_len(300, lengths) == 300
    assert resolve_max_seq_len("p50", [10, 20, 30, 40, 500]) == 64
    assert resolve_max_seq_len("p100", [10, 20, 30, 40, 500]) == 512
    examples, stats = load_examples(mixed, tok, "auto")
    assert len(examples) == 30 and stats.too_long == 0 and stats.max_seq_len == auto
    assert TrainConfig(max_seq_len="auto").max_seq_len == "auto"
    assert TrainConfig(max_seq_len="p99").max_seq_len == "p99"
    assert TrainConfig(max_seq_len="256").max_seq_len == 256
    for bad in ("longest", "p0", "p120", 0):
        with pytest.raises(UserError, match="max_seq_len"):
            TrainConfig(max_seq_len=bad)


def test_capped_examples_keep_style_proportions(tok, tmp_path: Path) -> None:
    path = write_chat_jsonl(tmp_path / "big.jsonl", 90, seed=3, mix=True)
    first, stats = load_examples(path, tok, "auto", max_examples=12, seed=7)
    again, _ = load_examples(path, tok, "auto", max_examples=12, seed=7)
    assert [e.line for e in first] == [e.line for e in again]  # deterministic
    assert Counter(e.style for e in first) == {"closed": 4, "rag": 4, "refusal": 4}
    assert [e.line for e in first] == sorted(e.line for e in first)  # file order kept
    # Not simply the first rows of the file.
    assert max(e.line for e in first) > 12
    assert {st: c.selected for st, c in stats.by_style.items()} == {"closed": 4, "rag": 4, "refusal": 4}
    # Uneven shares are kept by largest remainder: 2:1 styles capped to 5 -> 3 + 2 (not 5 + 0).
    skewed = [e for e in first if e.style != "refusal"] + [e for e in first if e.style == "closed"]
    capped = stratified_cap(skewed, 5, seed=0)
    assert Counter(e.style for e in capped) == {"closed": 3, "rag": 2}


def test_reviewed_feedback_rows_survive_the_cap(tok, tmp_path: Path) -> None:
    path = write_chat_jsonl(tmp_path / "big.jsonl", 60, seed=3, mix=True)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for row in rows[-3:]:  # three approved corrections at the end of the file
        row["kind"] = "feedback"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    chosen, _ = load_examples(path, tok, "auto", max_examples=10, seed=7)
    assert len(chosen) == 10
    assert {58, 59, 60} <= {e.line for e in chosen}  # all three kept, whatever the seed draws
    assert sum(e.pinned for e in chosen) == 3
    # the held-out split of a file without an eval file does not take them preferentially
    examples, _ = load_examples(path, tok, "auto", seed=7)
    assert not any(e.pinned for e in stratified_cap(examples, 3, seed=0))
