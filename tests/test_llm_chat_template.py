"""Train/serve prompt-token parity: the ids the trainer puts before an answer are the ids
every local generator feeds the model for that chat (`llm.chat_template`)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from aldlab.llm import llamacpp
from aldlab.llm.chat_template import (
    TemplateNotPrefixConsistent,
    chat_token_ids,
    ensure_chat_template,
    render_chat,
    render_prompt_ids,
)
from aldlab.llm.tiny import build_tiny_tokenizer
from aldlab.prompts import build_messages
from aldlab.train.data import IGNORE_INDEX, Example, tokenize_conversation, tokenize_file
from aldlab.train.tiny import write_chat_jsonl

PASSAGES = [
    type("P", (), {"id": "d1", "title": "퍼지", "text": "퍼지 시간이 부족하면 CVD 성분이 생겨 균일도가 나빠집니다."})(),
    type("P", (), {"id": "d2", "title": "TMA", "text": "TMA와 H2O로 Al2O3 박막을 증착합니다."})(),
]


@pytest.fixture(scope="module")
def tok() -> Any:
    return ensure_chat_template(build_tiny_tokenizer())


def _prompt_before_answer(example: Example) -> list[int]:
    """The trainer's ids up to the first supervised token (the prompt the answer follows)."""
    first = next(i for i, label in enumerate(example.labels) if label != IGNORE_INDEX)
    return example.input_ids[:first]


def _without_answer(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    return messages[:-1] if messages[-1]["role"] == "assistant" else messages


class RecordingModel:
    """Stands in for a causal LM: records the input ids `generate` is fed, then stops."""

    def __init__(self, stop_id: int) -> None:
        self.stop_id = stop_id
        self.fed: list[list[int]] = []

    def eval(self) -> RecordingModel:
        return self

    def generate(self, input_ids: Any, **kwargs: Any) -> Any:
        import torch

        self.fed.extend(input_ids.tolist())
        return torch.cat([input_ids, torch.full((input_ids.shape[0], 1), self.stop_id)], dim=1)


def _hf_fed_ids(tok: Any, messages: list[dict[str, str]]) -> list[int]:
    from aldlab.llm.chat_template import end_of_turn_token_ids
    from aldlab.llm.hf_generate import HFGenerator

    model = RecordingModel(end_of_turn_token_ids(tok)[0])
    HFGenerator("unused", model=model, tokenizer=tok).generate(messages, max_new_tokens=4)
    (fed,) = model.fed
    return fed


def _fake_llamacpp(tok: Any, monkeypatch: pytest.MonkeyPatch, fed: list[list[int]]) -> llamacpp.LlamaCppGenerator:
    """A LlamaCppGenerator over a stand-in `llama_cpp` that records each prompt and stops at once."""
    from aldlab.llm.chat_template import end_of_turn_token_ids

    stop = end_of_turn_token_ids(tok)[0]

    class FakeLlama:
        def __init__(self, model_path: str, **kwargs: object) -> None:
            pass

        def generate(self, tokens: list[int], **kwargs: object):  # noqa: ANN202
            fed.append(list(tokens))
            yield stop

    module = types.ModuleType("llama_cpp")
    module.Llama = FakeLlama  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_cpp", module)
    monkeypatch.setattr(llamacpp, "llama_cpp_available", lambda: True)
    return llamacpp.LlamaCppGenerator("unused", gguf_paths={"base": "unused.gguf"}, tokenizer=tok)


def _llamacpp_fed_ids(tok: Any, messages: list[dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> list[int]:
    fed: list[list[int]] = []
    _fake_llamacpp(tok, monkeypatch, fed).generate(messages, max_new_tokens=4)
    (ids,) = fed
    return ids


def test_trainer_prompt_of_a_rag_row_is_what_both_generators_feed(
    tok: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A RAG row as `aldlab data build` writes it, through the trainer's file path."""
    path = write_chat_jsonl(tmp_path / "mix.jsonl", 6, seed=0, mix=True)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    examples = tokenize_file(path, tok)
    rag = [(row, ex) for row, ex in zip(rows, examples, strict=True) if ex.style == "rag"]
    assert rag, "the mixed file has RAG rows"
    for row, example in rag:
        prompt = _without_answer(row["messages"])
        trained = _prompt_before_answer(example)
        assert trained == render_prompt_ids(tok, prompt)
        assert trained == _hf_fed_ids(tok, prompt)
        assert trained == _llamacpp_fed_ids(tok, prompt, monkeypatch)


def test_every_turn_of_a_multi_turn_chat_is_a_prefix(tok: Any) -> None:
    """With history, the prompt of each answer is exactly the trainer's ids before it."""
    history = [{"role": "user", "content": "첫 질문"}, {"role": "assistant", "content": "첫 답변입니다."}]
    messages = build_messages("두 번째 질문", PASSAGES, history=history, answer="두 번째 답변 [d1]")
    example = tokenize_conversation(tok, messages)
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            prompt = render_prompt_ids(tok, messages[:i])
            assert example.input_ids[: len(prompt)] == prompt
            assert example.labels[len(prompt) - 1] == IGNORE_INDEX and example.labels[len(prompt)] != IGNORE_INDEX
    assert _hf_fed_ids(tok, messages[:-1]) == render_prompt_ids(tok, messages[:-1])


def test_answer_mask_covers_the_answer_and_its_end_of_turn(tok: Any) -> None:
    messages = build_messages("질문", PASSAGES, answer="답변 [d2]")
    ids, is_answer = chat_token_ids(tok, messages)
    assert tok.decode([t for t, a in zip(ids, is_answer, strict=True) if a]) == "답변 [d2]<end_of_turn>\n"
    assert tok.decode(ids) == render_chat(tok, messages, add_generation_prompt=False)


def test_a_template_that_is_not_prefix_consistent_is_refused_for_training_only() -> None:
    """A template that renders the last user turn differently cannot mark where answers start:
    training stops with a user error, generation still gets the prompt tokenised whole."""
    t = build_tiny_tokenizer()
    t.chat_template = (
        "{% for m in messages %}{{ m['role'] + ('!' if loop.last else '') + ': ' + m['content'] + '\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
    )
    messages = [{"role": "user", "content": "TMA?"}, {"role": "assistant", "content": "전구체"}]
    with pytest.raises(TemplateNotPrefixConsistent, match="prefix-consistent"):
        tokenize_conversation(t, messages)
    chat = [*messages, {"role": "user", "content": "퍼지?"}]  # history: an answer to locate
    text = render_chat(t, chat, add_generation_prompt=True)
    assert render_prompt_ids(t, chat) == t(text, add_special_tokens=False)["input_ids"]


@pytest.mark.slow
def test_real_gemma_tokenizer_trains_and_serves_the_same_prompt_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the embedded gemma-3-270m tokenizer: parity, and cutting at the answer changes no id
    (the cut tokenisation equals tokenising the whole text, as training did before)."""
    from aldlab.llm.model import load_tokenizer

    gemma = load_tokenizer("embedded")
    path = write_chat_jsonl(tmp_path / "mix.jsonl", 9, seed=1, mix=True)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for row, example in zip(rows, tokenize_file(path, gemma), strict=True):
        prompt = _without_answer(row["messages"])
        trained = _prompt_before_answer(example)
        assert trained == render_prompt_ids(gemma, prompt) == _hf_fed_ids(gemma, prompt)
        whole = gemma(render_chat(gemma, row["messages"], False), add_special_tokens=False)["input_ids"]
        assert example.input_ids == whole
    messages = build_messages("ALD 윈도우는 무엇인가요?", PASSAGES)
    assert _llamacpp_fed_ids(gemma, messages, monkeypatch) == _hf_fed_ids(gemma, messages)


def test_llamacpp_finds_the_stop_token_once_not_per_request(tok: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding the stop token renders the chat template: it belongs to loading, not to every
    request's time to first token."""
    from aldlab.llm.chat_template import end_of_turn_token_ids

    calls: list[int] = []

    def counting(tokenizer: Any) -> list[int]:
        calls.append(1)
        return end_of_turn_token_ids(tokenizer)

    gen = _fake_llamacpp(tok, monkeypatch, [])
    monkeypatch.setattr(llamacpp, "end_of_turn_token_ids", counting)
    for _ in range(3):
        gen.generate([{"role": "user", "content": "ALD?"}], max_new_tokens=4)
        list(gen.stream([{"role": "user", "content": "ALD?"}], max_new_tokens=4))
    assert len(calls) == 1
