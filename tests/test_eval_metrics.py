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


# --- word salad: examples quoted in issue 16 vs clean answers ---------------------------

SALAD_LOOPS = [
    "APC Valve는 챔버와 pump 사이 압력 조절로 챔버 압력을 설정한다. " * 3,
    "…길게는 100 ms, 짧게는 10 ms, 20 ms, 30 ms, 40 ms, 50 ms, 60 ms, 70 ms, 80 ms, 90 ms, 100 ms, 110 ms, 380 ms, 39",
    "Purge가 짧으면 CVD 반응이 생깁니다 [purge-003] [purge-003] [purge-003] [purge-003] [purge-003]",
    # a fine-tuned ft+rag answer at 128 tokens (trial of 2026-11-29): the ids are shuffled
    "Saturation curve는 Precursor 또는 Co-reactant의 Pulse 시간을 늘려가며 GPC를 측정한 그래프이다. "
    "[ald-basics-006] [ald-basics-003] [flow-025] [ald-basics-003] [ald-basics-006] [flow-025] [ald-basics-003] "
    "[ald-basics-006] [saturation-curve] [precursor] [pulse] [self-limiting] [self-limiting] [flow] [saturation] [",
    "관련 정보가 부족합니다. [precursor-011] TEMAZ/O3 ZrO2와 DRAM ZAZ 유전막\n" * 4,
]
CLEAN = [
    "ALD(Atomic Layer Deposition, 원자층 증착)는 Precursor와 Co-reactant를 Purge로 분리해 번갈아 공급하여, "
    "self-limiting(자기 제한) 표면 반응으로 한 사이클마다 일정한 두께만 성장시키는 박막 증착법입니다.",
    "Purge 시간이 너무 짧으면 남은 Precursor가 Co-reactant와 기상에서 만나 CVD 반응이 섞이고 파티클이 생깁니다 "
    "[purge-003]. 그래서 Purge 시간은 챔버 부피와 유량에 맞춰 충분히 잡습니다.",
    "1 sccm은 약 0.0127 Torr·L/s이므로 500 sccm은 약 6.35 Torr·L/s입니다. 정상 상태 압력은 P ≈ Q/S이므로 "
    "6.35 ÷ 100 ≈ 0.06 Torr 정도가 됩니다.",  # the most repetitive reference answer (0.105)
    # coherent fine-tuned answers from the same trial, with their citations
    "ALD window를 찾으려면 여러 온도에서 GPC를 측정하되, 각 온도마다 Pulse 시간과 Purge 시간이 충분해 "
    "포화 조건인지 먼저 확인해야 한다. [ald-basics-005]",
    "CVD는 공정에 따라 분당 수십에서 수백 nm까지 증착할 수 있다. ALD는 GPC가 약 1 Å/cycle 수준이고 사이클에 "
    "수 초가 걸려 분당 수 nm 정도에 그친다. 따라서 두꺼운 막은 CVD가 Throughput 면에서 유리하다. [equipment-025]",
]


@pytest.mark.parametrize("text", SALAD_LOOPS)
def test_loops_from_the_issue_have_repetition(text: str) -> None:
    row = m.answer_metrics(text, expect=[], reference=None, question="ALD 공정에서 purge 시간이 너무 짧으면 어떻게 되나요?")
    assert row["has_repetition"] and row["repetition"] >= m.REPETITION_THRESHOLD
    assert not row["has_echo"]


@pytest.mark.parametrize("text", CLEAN)
def test_clean_answers_have_neither_repetition_nor_echo(text: str) -> None:
    row = m.answer_metrics(text, expect=[], reference=None, question="ALD 공정에서 purge 시간이 너무 짧으면 어떻게 되나요?")
    assert not row["has_repetition"] and not row["has_echo"]
    assert row["repetition"] < m.REPETITION_THRESHOLD / 1.4 and row["echo"] < m.ECHO_THRESHOLD


def test_echoed_system_prompt_or_question_is_echo_not_refusal() -> None:
    base_rag = SYSTEM_PROMPT[:60] + " ALD는 증착입니다."  # issue 16: base+rag opens with the system prompt
    row = m.answer_metrics(base_rag, expect=[], reference=None, question="ALD가 뭐야?")
    assert row["has_echo"] and not row["refused"]
    assert m.echo(RAG_INSTRUCTION) == 1.0
    question = "ALD 공정에서 purge 시간이 너무 짧으면 어떻게 되나요?"
    assert m.echo(question, question) == 1.0
    assert m.echo(f"{question} {question}", question) >= m.ECHO_THRESHOLD
    assert m.echo("purge 시간이 너무 짧으면 CVD 반응과 파티클이 생기고 막 두께 균일도가 나빠집니다.", question) < m.ECHO_THRESHOLD
    assert m.echo(refusal_answer("지식 베이스에서 이 질문과 관련된 문서를 찾지 못했습니다."), question) == 0.0


def test_repetition_counts_repeated_word_trigrams_with_numbers_folded() -> None:
    assert m.repetition("a b c a b c") == pytest.approx(1 / 4)  # grams abc bca cab abc
    assert m.repetition("짧은 답") == 0.0
    assert m.repetition("10 ms, 20 ms, 30 ms") == pytest.approx(2 / 4)  # "0 ms 0", "ms 0 ms", each twice
    assert m.words("Purge는, [purge-003] 12.5초!") == ["purge는", "[cite]", "0.0초"]
    assert m.repetition("A입니다 [a-1] [b-2] [a-1] [c-3] [b-2] [a-1]") > 0.5  # shuffled ids still loop


def test_support_is_the_share_of_content_morphemes_found_in_the_contexts() -> None:
    contexts = ["[purge-003] Purge 시간\nPurge 시간이 너무 짧으면 남은 Precursor가 기상에서 만나 CVD 반응이 섞이고 파티클이 생긴다."]
    grounded = m.support("Purge 시간이 짧으면 CVD 반응이 섞이고 파티클이 생깁니다.", contexts)
    salad = m.support("ALD 막은 앞면에서 반짝이로 막이 자라면서 앞면에서 반짝이로 막이 찢어질 때까지", contexts)
    assert grounded == 1.0 and salad is not None and salad < 0.2
    assert m.support("아무 말", []) is None
    row = m.answer_metrics("Purge가 짧으면 파티클이 생깁니다.", expect=[], reference=None, contexts=contexts)
    assert row["support"] == 1.0
    refused = m.answer_metrics(refusal_answer(), expect=[], reference=None, contexts=contexts)
    assert refused["support"] is None and refused["refused"]
    closed = m.answer_metrics("Purge가 짧으면 파티클이 생깁니다.", expect=[], reference=None)
    assert closed["support"] is None


def test_summary_reports_share_of_looping_or_echoing_answers() -> None:
    rows = []
    for text in [*SALAD_LOOPS[:1], SYSTEM_PROMPT, *CLEAN[:3]]:
        row = m.answer_metrics(text, expect=[], reference=None, contexts=[CLEAN[0]])
        rows.append({**row, "answerable": True, "latency_s": 1.0})
    summary = m.summarize_rows(rows, samples=50)
    assert summary["repetition_or_echo_rate"]["value"] == pytest.approx(2 / 5)
    assert summary["repetition_rate"] == pytest.approx(1 / 5) and summary["echo_rate"] == pytest.approx(1 / 5)
    assert summary["support"]["n"] == 5 and 0 < summary["support"]["value"] < 1
    assert summary["repetition"]["value"] > 0 and summary["echo"]["value"] > 0


def test_format_estimate_is_the_one_ci_format() -> None:
    from aldlab.eval.metrics import MISSING_VALUE, format_estimate

    est = {"value": 0.677, "low": 0.534, "high": 0.812, "n": 28}
    assert format_estimate(est) == "0.677 [0.534, 0.812]"  # the README's "[95% CI]" columns
    assert format_estimate(est, 2, ci=False) == "0.68"
    assert format_estimate({"value": 0.427, "low": 0.271, "high": 0.586}, signed=True) == "+0.427 [+0.271, +0.586]"
    assert format_estimate({"value": 1.0, "low": 1.0, "high": 1.0}) == "1.000"  # no interval to show
    assert format_estimate({"value": None}) == format_estimate(None) == MISSING_VALUE
