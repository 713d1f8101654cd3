"""Issue 11's defect classes: each test feeds a row (or its source) that the old builder turned
into a defective row and checks that it is no longer produced, or that the review check finds it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from aldlab.data.build import build_dataset
from aldlab.data.config import DataConfig
from aldlab.data.facts import Candidate, Fact
from aldlab.data.korean import josa
from aldlab.data.questions import (
    KiwiTagger,
    SentenceParse,
    combo_facts,
    document_facts,
    sentence_questions,
    specific_subject,
    title_questions,
)
from aldlab.data.refusals import AREAS, in_domain_refusal_facts
from aldlab.data.review import check_rows
from aldlab.data.semantic import HashingVectors, SemanticIndex
from aldlab.data.sentences import answer_window
from aldlab.data.templates import TemplatePicker
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.prompts import REFUSAL, build_messages


def kb_of(*docs: Document) -> KnowledgeBase:
    return KnowledgeBase(documents=list(docs), keywords=sorted({k for d in docs for k in d.keywords}))


def questions_of(facts: list[Fact]) -> list[str]:
    return [q for f in facts for q in f.questions]


@pytest.fixture(scope="module")
def tagger() -> KiwiTagger:
    return KiwiTagger()


def picker() -> TemplatePicker:
    return TemplatePicker(random.Random(0))


# ------------------------------------------------------------- subjects

@pytest.mark.parametrize("subject", ["주요 원인", "대표 조건", "대신 pump 상태", "반면 ±1% of reading 사양", "증상"])
def test_subjects_that_need_context_are_rejected(subject: str) -> None:
    doc = Document("d", "t", "x", ["APC Valve", "pump"], "valve")
    assert not specific_subject(subject, doc, ["apc valve", "pump", "압력"])


def test_a_qualified_generic_head_is_kept() -> None:
    doc = Document("d", "t", "x", ["Overshoot"], "pressure")
    assert specific_subject("압력 overshoot의 주요 원인", doc, ["overshoot"])


def test_no_question_without_a_subject(tagger: KiwiTagger) -> None:
    # plasma-009#s2-q0-closed asked "주요 원인은 무엇인가요?"
    doc = Document("plasma-x", "Reflected power 관리", "Reflected power는 발생기로 되돌아오는 RF 전력이다. 주요 원인은 매칭 네트워크의 설정 오차이다.", ["Reflected power", "RF"], "plasma")
    qs = questions_of(document_facts(kb_of(doc), tagger, random.Random(0), paraphrases=3))
    assert qs and not any(q.startswith("주요 원인") for q in qs)


def test_because_sentence_is_no_definition(tagger: KiwiTagger) -> None:
    # vacuum-gauge-018#s1: "Ar의 열전도율은 무엇인가요?" -> "…달라지기 때문이다."
    doc = Document("vg-x", "Pirani 게이지의 가스 의존성", "Pirani 게이지는 가스 종류에 따라 지시값이 다르다. Ar의 열전도율은 N2보다 낮아 필라멘트의 열 손실이 달라지기 때문이다.", ["Pirani", "Ar"], "vacuum_gauge")
    qs = questions_of(document_facts(kb_of(doc), tagger, random.Random(0), paraphrases=3))
    assert not any(q.startswith("Ar의 열전도율") for q in qs)


# ------------------------------------------------------------ intent match

def test_cause_question_only_when_the_sentence_states_a_cause() -> None:
    # valve-002#s1: "밸브 온도가 라인보다 낮으면 어떤 원인을 의심해야 하나요?" -> consequences
    parse = SentenceParse("밸브 온도", "가", "라인보다 낮으면", "라인보다 낮으면 밸브 안에서 Precursor가 응축해 막힘과 파티클의 원인이 된다.")
    [(intent, qs, _)] = sentence_questions(parse, picker(), 9)
    assert intent == "condition"
    assert not any("의심" in q or "원인" in q for q in qs)
    assert any("문제" in q for q in qs)  # it does state a problem


def test_diagnostic_wording_when_the_sentence_says_what_to_suspect() -> None:
    parse = SentenceParse("VG12 값", "이", "계속 흔들리면", "계속 흔들리면 게이지 오염이나 케이블 접촉 불량을 의심할 수 있다.")
    [(intent, qs, _)] = sentence_questions(parse, picker(), 9)
    assert intent == "troubleshooting" and any("뭐부터 봐야 해" in q for q in qs)


def test_title_keeps_its_qualifier() -> None:
    # ald-vs-cvd-002: "ALD와 CVD의 차이는 뭐야?" -> an answer about deposition rate only
    _, qs, _, _ = title_questions("ALD와 CVD의 증착 속도 차이", (), picker(), 4)
    assert qs and all("증착 속도" in q for q in qs)
    # ald-basics-012: "ALD에 대해 설명해 주세요." -> conformality only
    made = title_questions("ALD가 3D 구조에 균일하게 덮이는 원리", (), picker(), 4)
    assert made is not None and all("3D 구조" in q for q in made[1])


def test_distinguish_title_is_not_garbled() -> None:
    # chamber-015#t-q0-rag: "Leak와 outgassing은 ROR 곡선 모양으로를 어떻게 구분하나요?"
    _, qs, _, _ = title_questions("Leak와 outgassing은 ROR 곡선 모양으로 구분", (), picker(), 3)
    assert qs and not any("으로를" in q or "로를" in q for q in qs)
    assert any(q.startswith("Leak와 outgassing은 어떻게 구") for q in qs)


def test_readback_particle() -> None:
    # "게이지와 MFC readback는 어떻게 다른가요?"
    assert josa("MFC readback", "은/는") == "MFC readback은"


# ----------------------------------------------------------------- combos

def test_combos_only_for_keywords_one_sentence_relates() -> None:
    docs = [
        # "온도에서 인터락을 함께 봐야 하는 이유는?": umbrella keyword, no question
        Document("i-1", "Heater 과열 인터락", "Heater 온도가 상한을 넘으면 인터락이 출력을 끊는다.", ["온도", "인터락", "Heater"], "interlock"),
        # both keywords in different sentences only: no combo
        Document("p-1", "TMA 공급", "TMA Canister는 상온으로 둔다. H2O pulse는 짧게 준다.", ["TMA", "H2O"], "precursor"),
        # one sentence relates them: a combo
        Document("v-1", "APC와 PID", "APC Valve는 보통 PID 제어로 움직인다.", ["APC Valve", "PID"], "valve"),
    ]
    facts = combo_facts(kb_of(*docs), random.Random(0), paraphrases=3, max_facts=50)
    assert {f.fact_id for f in facts} == {"combo:APC Valve+PID", "combo:Heater+인터락"}  # no 온도, no TMA+H2O
    assert not any("함께 봐야 하는 이유" in q for q in questions_of(facts))


# ----------------------------------------------------------------- answers

def test_answer_never_opens_with_a_connective() -> None:
    ss = ["TiN 막은 NH3 플라즈마로 질화한다.", "예를 들어 300°C에서도 비저항이 낮은 막을 얻는다.", "따라서 저온 공정에 쓴다."]
    assert answer_window(ss, 1).startswith("TiN 막은")
    ss = ["VG12가 낮게 읽으면 APC Valve가 닫힌다.", "그러나 실제 압력은 높아진다."]
    assert answer_window(ss, 1).startswith("VG12가")


def test_answer_is_whole_sentences_near_the_key_sentence() -> None:
    ss = ["짧은 첫 문장이다.", "두 번째 문장은 조금 더 길어서 답의 길이를 채우는 데 도움이 되는 설명을 담고 있다.", "세 번째 문장은 " + "아주 " * 60 + "길다."]
    answer = answer_window(ss, 0)
    assert answer == " ".join(ss[:2])  # grew to ≥ 90 chars, stopped before an over-long sentence
    assert answer.endswith(".")


# --------------------------------------------------------------- refusals

def test_in_domain_refusals_cover_four_kinds_with_one_sentence_reasons() -> None:
    facts = in_domain_refusal_facts()
    assert {f.fact_id.split(":")[1] for f in facts} == {a.name for a in AREAS}
    assert len(facts) >= 100 and len({f.questions[0] for f in facts}) == len(facts)
    for f in facts:
        answer = f.plain_answer
        assert answer.startswith(REFUSAL) and answer.count(".") == 2  # phrase + one sentence


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    from test_data_build import make_kb, read_rows

    root = tmp_path_factory.mktemp("q")
    kb_dir = make_kb(root / "kb")
    out = root / "data"
    report = build_dataset(DataConfig(kb=kb_dir, output_dir=out, train_size=160, eval_size=40, seed=3, semantic_model="hash"), progress=False)
    return report, read_rows(report.train_path) + read_rows(report.eval_path)


def test_build_has_in_domain_refusals_in_both_styles(built) -> None:
    report, rows = built
    ids = [r for r in rows if r["id"].startswith("indomain:")]
    assert len(ids) >= 0.05 * len(rows)
    assert {r["style"] for r in ids} == {"closed", "rag"}
    rag = [r for r in ids if r["style"] == "rag"]
    assert all(len(r["context_ids"]) == 3 for r in rag)  # retrieved passages, like serving
    assert report.stats["train"]["in_domain_refusal_share"] >= 0.05


def test_build_reports_templates_semantic_leakage_and_checks(built) -> None:
    report, _ = built
    stats = report.stats
    assert stats["semantic"]["leaking_eval_answers"] == 0
    assert stats["templates"]["templates_in_use"] >= 20
    # The synthetic KB titles a document with a random head ("…의 응답 지연 원인") its text does
    # not answer, so issue 21's intent check finds real mismatches there; everything else is clean.
    assert {k: v for k, v in stats["checks"]["counts"].items() if v and k != "intent_mismatch"} == {}


# ---------------------------------------------------------------- semantic

def test_train_rows_restating_an_eval_answer_are_dropped() -> None:
    docs = [Document("a", "A", "로드락 Vent에는 수분이 거의 없는 건조 N2를 사용한다.", ["Vent"], "loadlock"),
            Document("b", "B", "MFC는 질량 유량을 조절하는 장치이다.", ["MFC"], "mfc")]
    index = SemanticIndex(kb_of(*docs), HashingVectors())
    restating = Candidate(Fact("a#s0", "kb", "definition", ["Vent 가스는?"], [("로드락 Vent에는 수분이 거의 없는 건조 N2를 사용한다.", "a")], ["a"]), "Vent 가스는?", 0)
    other = Candidate(Fact("b#s0", "kb", "definition", ["MFC는?"], [("MFC는 질량 유량을 조절하는 장치이다.", "b")], ["b"]), "MFC는?", 0)

    class Row:
        is_refusal = False
        plain_answer = "로드락 Vent에는 수분이 거의 없는 건조 N2를 사용한다."

    kept, dropped = index.drop_restating([restating, other], [Row()], 0.93)
    assert kept == [other] and dropped == 1


# ------------------------------------------------------------------ review

def row(rid: str, question: str, answer: str, kind: str = "kb", style: str = "closed", doc_ids=("d",), context_ids=()) -> dict:
    return {"messages": build_messages(question, None, answer=answer), "id": rid, "kind": kind, "style": style, "doc_ids": list(doc_ids), "context_ids": list(context_ids), "group": "g"}


def test_review_checks_find_each_defect_class_from_the_issue() -> None:
    kb = kb_of(
        Document("d", "t", "x", ["ALD", "CVD", "TiN", "플라즈마", "H2O", "TMA", "Ar", "밸브 온도"], "basics"),
    )
    rows = [
        row("combo", "H2O에서 TMA를 함께 봐야 하는 이유는?", "TMA는 H2O와 반응한다."),
        row("connective", "TiN에서 플라즈마를 함께 봐야 하는 이유는?", "예를 들어 TiN은 플라즈마로 질화한다."),
        row("clipped", "ALD는 무엇인가요?", "ALD는 표면 반응을 번갈아 일으켜 한 층씩 쌓는"),
        row("generic", "주요 원인은 무엇인가요?", "느린 응답이 원인이다."),
        row("unpaired", "ALD와 CVD의 차이는 뭐야?", "ALD는 사이클당 약 1 Å씩 쌓여 느리다."),
        row("cause", "밸브 온도가 라인보다 낮으면 어떤 원인을 의심해야 하나요?", "밸브 온도가 낮은 상태가 이어진다."),
        row("subject", "Ar의 열전도율은 무엇인가요?", "필라멘트의 열 손실이 달라진다."),
        row("particle", "TMA을 쓰는 이유는?", "TMA는 반응성이 좋다."),
        row("refusal", "TiN 공정은?", f"{REFUSAL}. 참고 문서에 없습니다.", kind="unanswerable", style="rag", context_ids=("d",)),
        row("ok", "ALD는 무엇인가요?", "ALD는 표면 반응을 번갈아 일으켜 한 층씩 쌓는 증착법이다."),
    ]
    report = check_rows(rows, kb)
    flagged: dict[str, set[str]] = {}
    for f in report.findings:
        flagged.setdefault(f.row_id, set()).add(f.check)
    assert "combo_template" in flagged["combo"]
    assert "connective_opening" in flagged["connective"]
    assert "clipped_answer" in flagged["clipped"]
    assert "generic_subject" in flagged["generic"]
    assert "difference_unpaired" in flagged["unpaired"]
    assert "cause_without_cause" in flagged["cause"]
    assert "answer_misses_subject" in flagged["subject"]
    assert "particle_error" in flagged["particle"]
    assert "refusal_context_has_answer" in flagged["refusal"]
    assert "ok" not in flagged


def test_review_command_writes_a_sheet_with_sources(built, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from aldlab.data.commands import app

    report, _ = built
    sheet = tmp_path / "review.md"
    result = CliRunner().invoke(app, ["review", str(report.output_dir), "-n", "3", "-o", str(sheet)])
    assert result.exit_code == 0, result.output
    text = sheet.read_text(encoding="utf-8")
    assert "## closed (3 rows)" in text and "## rag (3 rows)" in text and "## refusal (3 rows)" in text
    assert text.count("source `") >= 6  # answerable rows carry their source document
    assert "connective_opening" in result.output
