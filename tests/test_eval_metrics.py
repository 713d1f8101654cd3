"""Answer metrics: key facts, Korean ROUGE-L / chrF, Korean-ness, refusal P/R, bootstrap."""

from __future__ import annotations

import pytest

from aldlab.eval import metrics as m
from aldlab.prompts import RAG_INSTRUCTION, SYSTEM_PROMPT, is_refusal, refusal_answer


def test_keyfact_recall_ignores_case_and_spacing() -> None:
    expect = [["self-limiting", "자기 제한"], ["사이클", "cycle"], ["GPC"]]
    assert m.keyfact_recall("ALD는 자기제한적 반응을 CYCLE마다 반복한다", expect) == pytest.approx(2 / 3)
    assert m.keyfact_hits("Self-Limiting, gpc", expect) == [True, False, True]
    assert m.keyfact_recall("아무 말", []) is None


def test_lcs_and_rouge_l_on_korean_morphemes() -> None:
    assert m.lcs_length(list("abcde"), list("ace")) == 3
    ref = "퍼지 시간이 짧으면 잔류 전구체가 남아 CVD 반응이 일어난다."
    # Particles differ ("이"/"가") but the content morphemes match: high but not perfect.
    close = m.rouge_l("퍼지 시간이 짧으면 잔류 전구체가 남아서 CVD 반응이 생긴다.", ref)
    assert 0.6 < close < 1.0
    assert m.rouge_l(ref, ref) == pytest.approx(1.0)
    assert m.rouge_l("날씨가 맑다", ref) < 0.2
    assert m.rouge_l("", ref) == 0.0
    assert "퍼지" in m.morphemes("퍼지가")


def test_chrf_scale() -> None:
    ref = "VG12는 메인 챔버 압력을 측정하는 진공 게이지이다."
    assert m.chrf(ref, ref) == pytest.approx(1.0)
    assert 0.0 <= m.chrf("VG12는 챔버 압력 게이지", ref) < 1.0


def test_korean_check_flags_hanja_and_control_tokens() -> None:
    good = m.korean_check("ALD는 원자층 증착입니다.")
    assert good.ok and good.hangul_share > 0.5
    assert m.korean_check("ALD는 原子層 증착").has_han
    leaked = m.korean_check("답변입니다<end_of_turn>")
    assert leaked.has_control and not leaked.ok
    assert not m.korean_check("This is English only.").ok
    assert m.korean_check("").hangul_share == 0.0


def test_answer_metrics_detects_refusal_phrase() -> None:
    row = m.answer_metrics(refusal_answer("KB 범위 밖"), expect=[], reference=None)
    assert row["refused"] and row["keyfact_recall"] is None and row["rouge_l"] is None


@pytest.mark.parametrize(
    "text",
    [
        refusal_answer("KB 범위 밖"),
        '"관련 정보가 부족합니다." 참고 문서에 날씨 정보가 없습니다.',
        "  「관련 정보가 부족합니다」",
        "죄송하지만 관련 정보가 부족합니다.",
    ],
)
def test_is_refusal_accepts_refusals(text: str) -> None:
    assert is_refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        SYSTEM_PROMPT,  # base+rag echoes the system prompt, which contains the phrase
        RAG_INSTRUCTION,
        '"관련 정보가 부족합니다"라고 답하고 이유를 한 문장으로 덧붙이세요.',
        "ALD는 자기 제한 반응을 반복합니다. 다만 온도 조건은 참고 문서에 없어 관련 정보가 부족합니다.",
        "ALD는 자기 제한 반응을 반복합니다.",
        "",
    ],
)
def test_is_refusal_rejects_echoes_and_answers(text: str) -> None:
    assert not is_refusal(text)


def test_refusal_precision_recall() -> None:
    # (refused, should_refuse)
    pairs = [(True, True), (True, False), (False, True), (False, False), (True, True)]
    assert m.refusal_precision(pairs) == pytest.approx(2 / 3)
    assert m.refusal_recall(pairs) == pytest.approx(2 / 3)
    assert m.false_refusal_rate(pairs) == pytest.approx(1 / 2)
    assert m.refusal_precision([(False, True)]) is None


def test_bootstrap_mean_interval_is_deterministic_and_brackets_mean() -> None:
    values = [0.0, 1.0] * 20
    a = m.bootstrap_mean(values, samples=500, seed=1)
    b = m.bootstrap_mean(values, samples=500, seed=1)
    assert a == b
    assert a.value == pytest.approx(0.5)
    assert a.low < a.value < a.high
    assert 0.25 < a.low and a.high < 0.75
    single = m.bootstrap_mean([0.7])
    assert single.value == single.low == single.high == 0.7
    ratio = m.bootstrap([(True, True), (False, True)] * 10, m.refusal_recall, samples=200)
    assert ratio.low <= 0.5 <= ratio.high


def test_summarize_rows_scopes_recall_to_answerable() -> None:
    rows = [
        {**m.answer_metrics("퍼지 purge", expect=[["퍼지"]], reference="퍼지"), "answerable": True, "latency_s": 1.0},
        {**m.answer_metrics(refusal_answer(), expect=[], reference=None), "answerable": False, "latency_s": 0.5},
    ]
    summary = m.summarize_rows(rows, samples=100)
    assert summary["keyfact_recall"]["value"] == 1.0 and summary["keyfact_recall"]["n"] == 1
    assert summary["refusal_precision"]["value"] == 1.0 and summary["refusal_recall"]["value"] == 1.0
    assert summary["latency_s"]["value"] == pytest.approx(0.75)
