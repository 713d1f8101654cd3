"""Chat template, assistant-only labels, batching and input validation of the train stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aldlab.errors import UserError
from aldlab.prompts import build_messages
from aldlab.train.chat_template import GEMMA_TEMPLATE, end_of_turn_token_ids, ensure_chat_template
from aldlab.train.data import (
    IGNORE_INDEX,
    collate,
    length_grouped_batches,
    load_examples,
    tokenize_conversation,
)
from aldlab.train.tiny import build_tiny_tokenizer


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
    examples, stats = load_examples(path, tok, 512)
    assert stats.too_long == 1 and len(examples) == 1
    assert examples[0].labels[-2] == tok.convert_tokens_to_ids("<end_of_turn>")
