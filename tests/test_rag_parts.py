"""Two questions in one message (rag/parts.py): the later part gets its own passage."""

from __future__ import annotations

from pathlib import Path

from rag_testkit import RecordingGenerator, install_fake_embedder, tiny_kb

from aldlab.rag.assistant import Assistant
from aldlab.rag.build import build_retriever
from aldlab.rag.config import RagConfig
from aldlab.rag.parts import later_part

TERMS = ["퍼지", "MFC", "PEALD"]


def mentioned(text: str) -> list[str]:
    return [t for t in TERMS if t in text]


def test_the_later_clause_is_searched_with_the_topic_it_leaves_out() -> None:
    assert later_part("퍼지 시간 보통 몇 초 줌? 짧게 하면 어떻게 되는지도", mentioned) == "퍼지 짧게 하면 어떻게 되는지도"
    assert later_part("PEALD 장점이 저온 공정 맞죠? MFC는 뭐예요?", mentioned) == "MFC는 뭐예요"
    assert later_part("막이 얇아요. 왜 그럴까요?", mentioned) is None  # no topic to carry
    assert later_part("퍼지는 왜 해?", mentioned) is None  # one question
    assert later_part("퍼지 시간 알려줘 ㅠ", mentioned) is None
    # a closing statement is context, not a second question
    assert later_part("MFC 유량이 왜 튀어? PEALD 레시피는 안바꿨어요", mentioned) is None
    assert later_part("MFC 유량이 왜 튀어? PEALD 레시피도 봐야 해요?", mentioned) == "PEALD 레시피도 봐야 해요"
    assert later_part("MFC 유량이 왜 튀어? PEALD 데미지 걱정은 없나", mentioned) == "PEALD 데미지 걱정은 없나"


def _assistant(tmp_path: Path, **overrides: object) -> Assistant:
    install_fake_embedder()
    config = RagConfig(dense_model="fake", index_dir=tmp_path / "index", refusal_threshold=0.0, **overrides)  # type: ignore[arg-type]
    kb = tiny_kb()
    return Assistant(kb, build_retriever(kb, config, show_progress=False), RecordingGenerator(), config)


def test_a_second_question_gets_its_passage_unless_the_answer_cites_it(tmp_path: Path) -> None:
    assistant = _assistant(tmp_path)
    plan = assistant.plan("로드락 Vent를 급하게 하면 무슨 문제가 있어? MFC는 뭐야?")
    best, later = plan.passages[0], plan.later_part
    assert best.id == "tiny-002" and later is not None and later.id == "tiny-004"
    answer = assistant.settle(plan, f"{best.text} [{best.id}]")
    assert answer.text == f"{best.text} [{best.id}]\n\n{later.text} [{later.id}]"
    assert answer.citations == [best.id, later.id] and answer.later_part == later.id
    assert answer.citation_details[-1].how == "later_part"
    assert later.id in {p.id for p in answer.passages}
    both = assistant.settle(plan, f"{best.text} [{best.id}] {later.text} [{later.id}]")
    assert both.later_part == "" and both.text.count(later.text) == 1
    # the passage fallback keeps the addition; a refusal gets none
    declined = assistant.settle(plan, "관련 정보가 부족합니다. 참고 문서에 없습니다.")
    assert declined.fallback == "model_refused" and declined.later_part == later.id
    off = _assistant(tmp_path, answer_parts=False)
    assert off.plan("로드락 Vent를 급하게 하면 무슨 문제가 있어? MFC는 뭐야?").later_part is None


def test_one_question_or_the_same_passage_adds_nothing(tmp_path: Path) -> None:
    assistant = _assistant(tmp_path)
    assert assistant.plan("로드락 Vent를 급하게 하면 무슨 문제가 있어?").later_part is None
    assert assistant.plan("로드락 Vent는 어떻게 해? 로드락 Vent 가스는 뭐야?").later_part is None
