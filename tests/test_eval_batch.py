"""BatchAnswerer: the Assistant's answers (refusal before the LLM, same prompts), in batches."""

from __future__ import annotations

import dataclasses

from pathlib import Path

import pytest
from rag_testkit import RecordingGenerator, install_fake_embedder, tiny_kb, write_dev_set

from aldlab.rag.types import AskOptions
from aldlab import prompts
from aldlab.eval.batch import BatchAnswerer
from aldlab.rag.assistant import Assistant
from aldlab.rag.build import build_retriever
from aldlab.rag.config import RagConfig

QUESTIONS = ["퍼지 시간이 짧으면?", "오늘 부산 날씨는 맑아?", "VG12는 뭘 재?", "로드락 Vent 절차", "TMA 가열?", "된장찌개 레시피 알려줘"]


class BatchingGenerator(RecordingGenerator):
    """Records the batch sizes; each row is answered exactly like `generate`."""

    def __init__(self, reply: str | None = None) -> None:
        super().__init__(reply)
        self.batches: list[int] = []

    def generate_batch(self, batch, *, max_new_tokens=256, adapter=None):  # noqa: ANN001, ANN201
        self.batches.append(len(batch))
        return [self.generate(m, max_new_tokens=max_new_tokens, adapter=adapter) for m in batch]


@pytest.fixture()
def parts(tmp_path: Path):  # noqa: ANN201
    install_fake_embedder()
    config = RagConfig(dense_model="fake", index_dir=tmp_path / "index", dev_set=write_dev_set(tmp_path / "dev.jsonl"))
    kb = tiny_kb()
    return kb, build_retriever(kb, config, show_progress=False), config


@pytest.mark.parametrize("use_retrieval", [True, False])
def test_batches_give_the_assistants_answers_and_prompts(parts, use_retrieval: bool) -> None:  # noqa: ANN001
    kb, retriever, config = parts
    one = Assistant(kb, retriever, RecordingGenerator(), config)
    expected = [one.answer(q, AskOptions(model="ft", use_retrieval=use_retrieval, max_new_tokens=17)) for q in QUESTIONS]
    generator = BatchingGenerator()
    batched = BatchAnswerer(Assistant(kb, retriever, generator, config), batch_size=2).answer_batch(QUESTIONS, AskOptions(model="ft", use_retrieval=use_retrieval, max_new_tokens=17))
    assert [a.text for a in batched] == [a.text for a in expected]
    assert [a.refused for a in batched] == [a.refused for a in expected]
    assert [a.confidence for a in batched] == [a.confidence for a in expected]
    assert [[p.id for p in a.passages] for a in batched] == [[p.id for p in a.passages] for a in expected]
    assert [a.used_retrieval for a in batched] == [a.used_retrieval for a in expected]
    assert generator.calls == one.generator.calls  # same prompts, token budget and adapter
    generated = len(one.generator.calls)
    assert generator.batches == [2] * (generated // 2) + [1] * (generated % 2)
    if use_retrieval:
        refused = [a for a in batched if a.refused]
        assert len(refused) == 2 and generated == 4  # the off-topic pair never reached the LLM
        assert all(a.text.startswith(prompts.REFUSAL) for a in refused)
    else:
        assert generated == len(QUESTIONS)


def test_model_refusal_uses_the_one_classifier(parts) -> None:  # noqa: ANN001
    kb, retriever, config = parts
    echo = BatchAnswerer(Assistant(kb, retriever, BatchingGenerator(reply=prompts.SYSTEM_PROMPT), config))
    assert not echo.answer("VG12는 뭘 재?", AskOptions(model="ft")).refused  # an echoed prompt is not a refusal
    refusal = BatchingGenerator(reply=prompts.refusal_answer("문서에 없음"))
    # Retrieval passed the gate, so the recognised refusal becomes the best passage (RagConfig.passage_fallback)...
    assert BatchAnswerer(Assistant(kb, retriever, refusal, config)).answer("VG12는 뭘 재?", AskOptions(model="ft")).fallback == "model_refused"
    # ...or stays a refusal with the fallback off.
    strict = dataclasses.replace(config, passage_fallback=False)
    assert BatchAnswerer(Assistant(kb, retriever, refusal, strict)).answer("VG12는 뭘 재?", AskOptions(model="ft")).refused


def test_generator_without_batches_is_called_per_prompt(parts) -> None:  # noqa: ANN001
    kb, retriever, config = parts
    generator = RecordingGenerator()
    answers = BatchAnswerer(Assistant(kb, retriever, generator, config), batch_size=8).answer_batch(["VG12는 뭘 재?", "TMA 가열?"], AskOptions(use_retrieval=False))
    assert len(generator.calls) == 2 and all(a.text.startswith("답변입니다") for a in answers)
