"""Issue 21's review checks: a question that does not ask what its answer says.

Every flagged example below is a row the cpu-demo build produced (or its shape); every
unflagged one is a row an earlier draft of the rules flagged wrongly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aldlab.data.answer_fit import Spellings, dangling_reference, intent_mismatch, question_subject, subject_lost
from aldlab.data.questions import KiwiTagger
from aldlab.data.review import check_rows, load_rows, row_locations
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.prompts import build_messages

PULSE_ANSWER = "ALD Pulse는 이보다 훨씬 짧으므로 MFC는 Flow를 계속 일정하게 유지하고, 가스의 빠른 on/off는 ALD 밸브가 담당한다."


@pytest.fixture(scope="module")
def tagger() -> KiwiTagger:
    return KiwiTagger()


@pytest.fixture(scope="module")
def spellings() -> Spellings:
    return Spellings([["Wet clean", "웨트 클린"], ["Flow", "유량", "가스 흐름"], ["Pulse", "펄스"]])


# ------------------------------------------------------------------ dangling reference

@pytest.mark.parametrize(
    ("answer", "cue"),
    [
        (PULSE_ANSWER, "이보다"),  # 이 + 보다: than what?
        ("교체 직후 GPC가 원래 값으로 돌아오면 고갈이 원인이었던 것이다.", "었던 것이다"),
        ("이때 압력이 잠깐 오른다.", "이때"),
        ("따라서 Purge 시간을 늘린다.", "따라서"),
        ("Pirani gauge는 그것보다 넓은 범위를 읽는다.", "그것보다"),
    ],
)
def test_answers_leaning_on_a_missing_sentence_are_dangling(answer: str, cue: str, tagger: KiwiTagger) -> None:
    assert dangling_reference(answer, tagger) == cue


@pytest.mark.parametrize(
    "answer",
    [
        # the reference points inside the same sentence, after a clause or a comma
        "Susceptor 아래나 lift pin 구멍 쪽으로 공정 가스가 들어가면 그 공간에 막과 파티클이 쌓인다.",
        "로드락은 EFEM과 Transfer chamber 사이에 놓인 완충 챔버로, 웨이퍼가 드나들 때 이 공간만 대기와 진공을 반복한다.",
        "MFC는 유량 센서, bypass, 제어 Valve, 그리고 제어 회로로 구성된다.",  # a list, not a connective
        "RF generator는 반사 전력(reflected power)이 설정 한계를 넘으면 출력을 줄인다.",  # ")이" is a particle
        "한 로드락이 웨이퍼를 주고받는 동안 다른 로드락은 Vent를 진행한다.",  # Kiwi: 로드 + 락 + 이/MM
        # a later sentence may lean on the first
        "TMA는 증기압이 높은 액체 Precursor이다. 그래서 TMA Canister는 가열하지 않는다.",
        "Overshoot를 줄이는 기본 방법은 설정을 ramp로 바꾸는 것이다.",
    ],
)
def test_self_contained_answers_are_not_dangling(answer: str, tagger: KiwiTagger) -> None:
    assert dangling_reference(answer, tagger) is None


# ------------------------------------------------------------------ subject lost

def test_question_subject_and_whether_it_asks_about_it(tagger: KiwiTagger) -> None:
    pulse = question_subject("ALD Pulse는 무슨 일을 해?", tagger)
    drift = question_subject("VG12가 drift하면 어떻게 되나요?", tagger)
    assert pulse is not None and (pulse.text, pulse.about) == ("ALD Pulse", True)
    assert drift is not None and (drift.text, drift.about) == ("VG12", False)
    assert question_subject("운전 온도를 window 중앙에 두는 이유는?", tagger) is None  # no plain noun subject


def test_subject_only_in_a_because_clause_is_lost(tagger: KiwiTagger, spellings: Spellings) -> None:
    reason = subject_lost("ALD 펄스는 무슨 일을 해?", PULSE_ANSWER, spellings, tagger)
    assert reason is not None and "MFC" in reason and "because-clause" in reason


def test_answer_starting_from_another_sentence_loses_the_subject(tagger: KiwiTagger, spellings: Spellings) -> None:
    answer = "RF 발생기는 50 Ω 부하에 맞게 설계된다. 플라즈마 임피던스는 계속 달라진다. 그래서 Matching network를 쓴다."
    reason = subject_lost("Matching network는 무슨 일을 해?", answer, spellings, tagger)
    assert reason is not None and "Matching network" in reason
    # one sentence of scene-setting, then the subject as the topic: still an answer
    answer = "RF 발생기는 50 Ω 부하에 맞게 설계된다. Matching network는 임피던스를 50 Ω으로 변환한다."
    assert subject_lost("Matching network는 무슨 일을 해?", answer, spellings, tagger) is None


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        # a condition's consequence may have its own topic
        ("VG12가 drift하면 어떻게 되나요?", "VG12가 drift하면 압력 제어는 틀린 값을 기준으로 맞추므로 화면의 압력은 설정값 그대로다."),
        # another spelling of the same KB term
        ("웨트 클린은 무엇인가요?", "Wet clean은 챔버를 대기 개방하고 부품을 떼어내 deposit을 제거하는 세정 방식이다."),
        ("가스 흐름이 흔들리면 어떤 문제가 생길 수 있습니까?", "Flow가 흔들리면 precursor dose와 챔버 압력이 함께 흔들린다."),
        ("Software 인터락은 무엇의 영향을 받나요?", "Software 인터락은 PLC 프로그램이 판단하므로 설정이 유연하지만 프로그램 오류의 영향을 받는다."),
    ],
)
def test_answers_about_the_subject_keep_it(question: str, answer: str, tagger: KiwiTagger, spellings: Spellings) -> None:
    assert subject_lost(question, answer, spellings, tagger) is None


# ------------------------------------------------------------------ intent mismatch

@pytest.mark.parametrize(
    ("question", "answer", "intent"),
    [
        ("Outgassing이 의심되면 어떤 결과가 나타납니까?", "Outgassing이 의심되면 Pump down을 더 오래 한 뒤 다시 측정해 상승률이 줄어드는지 비교한다.", "effect"),
        ("ALD는 어떤 방식으로 이루어지나요?", "ALD는 Purge로 Precursor와 Co-reactant가 만나지 않게 하므로 기상 반응이 억제되어 파티클 발생이 적다.", "mechanism"),
        ("ALD의 단점은 뭐야?", "ALD는 균일도가 좋고 Step coverage가 우수하다.", "downside"),
        ("Purge 시간은 보통 몇 초야?", "Purge 시간은 챔버 체적과 Precursor에 따라 다르다.", "value"),
        ("로드락 Vent에 건조 N2를 쓰는 이유는 뭐야?", "로드락 Vent에는 공기 대신 건조 N2를 사용한다.", "cause"),
        ("최소 carrier flow로 back-diffusion 방지는 어떻게 해?", "Precursor 라인의 Flow가 끊겨 있으면 co-reactant가 라인 쪽으로 확산해 deposit을 만든다.", "procedure"),
        ("Aligner는 어떤 역할을 하나요?", "Aligner는 EFEM 안에 있다.", "role"),
    ],
)
def test_answers_to_another_intent_are_flagged(question: str, answer: str, intent: str) -> None:
    reason = intent_mismatch(question, answer)
    assert reason is not None and reason.startswith(intent + ":")


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Purge 시간이 너무 짧으면 어떻게 돼?", "Purge 시간이 너무 짧으면 남은 Precursor가 Co-reactant와 기상에서 만나 CVD 반응이 섞인다."),
        ("인터락이 걸리면 어떻게 조치해야 하나요?", "인터락이 걸리면 해제 전에 pump와 배기 상태를 먼저 확인한다."),
        ("ALD의 단점은 뭐야?", "ALD는 사이클마다 Purge가 필요해 증착 속도가 느리다."),
        ("Purge 시간은 보통 몇 초야?", "Purge 시간은 보통 0.5-10 s 범위에서 정한다."),
        # the reason is in the second sentence
        ("RF 전원에 13.56 MHz를 쓰는 이유가 뭔가요?", "RF 전원은 대부분 13.56 MHz를 사용한다. 이 주파수는 ISM 용도로 할당되어 간섭 걱정 없이 쓸 수 있다."),
        ("Aligner는 어떤 역할을 하나요?", "Aligner는 웨이퍼를 회전시키며 notch 위치를 찾는 장치이다."),
    ],
)
def test_answers_to_the_asked_intent_pass(question: str, answer: str) -> None:
    assert intent_mismatch(question, answer) is None


# ------------------------------------------------------------------ in the review

def _row(rid: str, question: str, answer: str) -> dict:
    return {"messages": build_messages(question, None, answer=answer), "id": rid, "kind": "kb", "style": "closed",
            "doc_ids": ["d"], "context_ids": [], "group": "g"}


def test_review_names_file_line_check_and_reason(tmp_path: Path) -> None:
    kb = KnowledgeBase(documents=[Document("d", "t", "x", ["ALD Pulse", "MFC"], "basics")], keywords=["ALD Pulse", "MFC"],
                       synonym_groups=[["ALD Pulse", "ALD 펄스"]])
    train = [_row("ok", "MFC는 무슨 일을 해?", "MFC는 가스 유량을 설정값으로 제어한다."), _row("pulse", "ALD 펄스는 무슨 일을 해?", PULSE_ANSWER)]
    evals = [_row("outgas", "Outgassing이 의심되면 어떤 결과가 나타납니까?", "Outgassing이 의심되면 Pump down을 더 오래 한 뒤 상승률을 비교한다.")]
    for name, rows in (("train", train), ("eval", evals)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    loaded = load_rows(tmp_path)
    report = check_rows([*loaded["train"], *loaded["eval"]], kb, row_locations(loaded))
    found = {(f.where, f.check) for f in report.findings}
    assert found == {
        ("train.jsonl:2", "dangling_reference"),
        ("train.jsonl:2", "subject_lost"),
        ("eval.jsonl:1", "intent_mismatch"),
    }
    assert all(" / " in f.detail for f in report.findings)  # Korean, then English
    assert report.to_json()["examples"][0]["where"] == "train.jsonl:2"


# ------------------------------------------------------------------ the build's filter

def test_build_filter_drops_dangling_train_answers_but_keeps_refusals(tagger: KiwiTagger) -> None:
    from aldlab.data.answer_fit import drop_dangling
    from aldlab.data.facts import Candidate, Fact

    def fact(fid: str, kind: str, answer: str) -> Fact:
        return Fact(fid, kind, "role", ["q1", "q2"], [(answer, "d")], ["d"])

    pulse = fact("pulse", "kb", PULSE_ANSWER)
    mfc = fact("mfc", "kb", "MFC는 가스 유량을 설정값으로 제어한다.")
    refusal = fact("no", "unanswerable", "이때는 답할 수 없습니다.")  # refusals are never judged
    cands = [Candidate(f, q, i) for f in (pulse, mfc, refusal) for i, q in enumerate(f.questions)]
    kept, dropped = drop_dangling(cands, tagger)
    assert dropped == 2 and {c.fact.fact_id for c in kept} == {"mfc", "no"}


def test_drop_dangling_is_a_data_build_flag() -> None:
    from aldlab.data.config import DataConfig

    assert DataConfig().drop_dangling is True
    assert DataConfig(drop_dangling=False).drop_dangling is False
