"""Documents carry how people ask for them (`Document.questions`): stored, validated,
matched by retrieval, and trained on as user-style questions."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from rag_testkit import install_fake_embedder, tiny_kb, write_tiny_kb

from aldlab.data.questions import KiwiTagger, asked_facts
from aldlab.data.review import check_rows, is_kb_question
from aldlab.errors import UserError
from aldlab.kb.edit import update_document
from aldlab.kb.io import load_kb, save_kb
from aldlab.kb.schema import Document, document_from_json
from aldlab.rag.config import RagConfig
from aldlab.rag.retriever import HybridRetriever
from aldlab.text import split_sentences

#: Words no passage of the tiny KB uses: only the document's own questions can match them.
SYMPTOM = "펌핑 끝나고 뚜껑 열 때 웨이퍼가 삐뚤어져요"


def test_questions_round_trip_and_stay_out_of_kbs_without_them(tmp_path: Path) -> None:
    doc = document_from_json({"id": "a-1", "text": "본문.", "questions": [" 퍼지 왜 해? ", "", "퍼지 왜 해?"]})
    assert doc.questions == ["퍼지 왜 해?"]  # stripped, blank and repeated ones dropped
    assert list(doc.to_json()) == ["id", "title", "topic", "keywords", "text", "questions", "source"]
    plain = Document(id="b-1", title="t", text="본문.")
    assert "questions" not in plain.to_json()  # old KBs keep their files and content hash

    kb = tiny_kb()
    before = kb.content_hash()
    kb.documents[1] = dataclasses.replace(kb.documents[1], questions=[SYMPTOM])
    assert kb.content_hash() != before  # the index cache is rebuilt when questions change
    save_kb(kb, tmp_path / "kb")
    assert load_kb(tmp_path / "kb").by_id()["tiny-002"].questions == [SYMPTOM]


def test_questions_must_be_strings_with_file_and_line(tmp_path: Path) -> None:
    kb_dir = write_tiny_kb(tmp_path / "kb")
    path = kb_dir / "documents" / "mfc.jsonl"
    row = json.loads(path.read_text(encoding="utf-8"))
    row["questions"] = [{"q": "영점?"}]
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_kb(kb_dir)
    assert "questions" in str(caught.value) and "mfc.jsonl" in str(caught.value.path)


def test_questions_are_editable_and_survive_other_edits(tmp_path: Path) -> None:
    kb_dir = write_tiny_kb(tmp_path / "kb")
    update_document(kb_dir, "tiny-002", {"questions": [SYMPTOM]})
    update_document(kb_dir, "tiny-002", {"title": "로드락 Vent 속도"})
    assert load_kb(kb_dir).by_id()["tiny-002"].questions == [SYMPTOM]


def test_retrieval_finds_a_document_by_how_people_ask(tmp_path: Path) -> None:
    install_fake_embedder()
    kb = tiny_kb()
    kb.documents[1] = dataclasses.replace(kb.documents[1], questions=[SYMPTOM, "벤트 천천히 해야 돼?"])
    config = RagConfig(dense_model="fake", index_dir=tmp_path / "index")
    with_questions = HybridRetriever.from_kb(kb, config, show_progress=False)
    assert with_questions.index.question_vectors is not None
    assert with_questions.retrieve(SYMPTOM, top_k=1)[0].id == "tiny-002"
    # Refusal signals use the passage vectors alone: the questions move ranking only.
    ignored = HybridRetriever.from_kb(kb, dataclasses.replace(config, question_weight=0.0), show_progress=False)
    assert with_questions.search(SYMPTOM).features == ignored.search(SYMPTOM).features
    # The cached index loads the same question vectors.
    again = HybridRetriever.from_kb(kb, config, show_progress=False)
    assert np.array_equal(again.index.question_vectors, with_questions.index.question_vectors)


def test_a_short_document_answers_its_questions_whole() -> None:
    """"서셉터가 뭐야? 재질은?" shares no characters with "Susceptor … AlN": a window chosen by
    overlap answered it with another sentence; the document it was written for answers it."""
    doc = Document(
        id="t-1", title="Susceptor", topic="t",
        text="Susceptor는 웨이퍼를 올려 가열하는 판이다. 보통 AlN 세라믹으로 만든다. 면내 온도 편차는 수 °C 이내로 관리한다.",
        questions=["서셉터가 뭐야? 재질은?", "온도 편차 얼마나 돼?"],
    )
    facts = asked_facts(doc, split_sentences(doc.text), 60, KiwiTagger())
    assert len(facts) == 1 and facts[0].questions == doc.questions and facts[0].plain_answer == doc.text


def test_a_long_documents_questions_are_answered_by_the_sentences_they_ask_about() -> None:
    filler = " ".join(f"참고 문장 {i}번은 이 질문과 관계없는 다른 장비 설정을 길게 설명하는 내용이다." for i in range(12))
    doc = Document(
        id="t-1", title="Pump down 지연", topic="t",
        text="PM 후 Pump down 후반에 압력이 꼬리를 끈다. 벽에 붙은 수분이 천천히 빠지기 때문이다. "
        f"{filler} RGA에서 m/z 18 피크가 크면 수분이고 N2와 O2가 4:1이면 Leak이다.",
        questions=["RGA로 수분이랑 리크 어떻게 구분해?", "PM 끝나고 펌핑 후반에 압력이 꼬리 끌어요"],
    )
    assert len(doc.text) > 450
    facts = {f.questions[0]: f.plain_answer for f in asked_facts(doc, split_sentences(doc.text), 60, KiwiTagger())}
    assert facts["RGA로 수분이랑 리크 어떻게 구분해?"].startswith("RGA에서")
    assert facts["PM 끝나고 펌핑 후반에 압력이 꼬리 끌어요"].startswith("PM 후")


def test_review_checks_written_questions_for_their_answer_only() -> None:
    row = {
        "id": "vacuum-gauge-007#q0-q1-rag", "kind": "kb", "style": "rag", "doc_ids": ["tiny-005"],
        "messages": [{"role": "user", "content": "질문: 피라니는 어느 압력까지 봐?"},
                     {"role": "assistant", "content": "Pirani 게이지는 약 1e-3 Torr까지 잰다. [tiny-005]"}],
    }
    assert is_kb_question(row) and not is_kb_question({"id": "tiny-005#t-q0-rag"})
    assert check_rows([row], tiny_kb()).counts.get("subject_lost", 0) == 0
