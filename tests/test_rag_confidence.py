"""Calibration maths: logistic fit, reliability (ECE), threshold choice, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from aldlab.rag.confidence import (
    Calibration,
    QueryFeatures,
    choose_threshold,
    fit_calibration,
    fit_logistic,
    reliability,
)


def test_logistic_fit_recovers_a_monotone_relation() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 1))
    y = (rng.random(400) < 1 / (1 + np.exp(-3 * x[:, 0]))).astype(float)
    w, b = fit_logistic(x, y, l2=1e-4)
    assert 2.0 < w[0] < 4.5 and abs(b) < 0.5


def test_reliability_of_a_perfectly_calibrated_and_an_overconfident_model() -> None:
    probs = [0.25] * 4 + [0.75] * 4
    labels = [1, 0, 0, 0, 1, 1, 1, 0]
    good = reliability(probs, labels, bins=10)
    assert good["ece"] == pytest.approx(0.0) and good["n"] == 8
    assert [row["count"] for row in good["table"]] == [4, 4]
    bad = reliability([0.95] * 4, [1, 0, 1, 0])
    assert bad["ece"] == pytest.approx(0.45)


def test_threshold_sits_between_the_classes() -> None:
    t = choose_threshold([0.9, 0.8, 0.7, 0.2, 0.1], [True, True, True, False, False])
    assert 0.2 < t < 0.7
    assert choose_threshold([0.9, 0.8], [True, True]) == 0.5  # nothing to separate


def test_threshold_refuses_the_target_share_of_unanswerables_and_answers_the_most() -> None:
    answerable = [True] * 4 + [False] * 10
    probs = [0.9, 0.8, 0.6, 0.35] + [0.05 * i for i in range(1, 10)] + [0.7]  # one unanswerable scores 0.7
    t = choose_threshold(probs, answerable, refuse_share=0.9)
    assert 0.45 < t < 0.6  # nine of ten refused; 0.35 is the only answerable lost
    assert choose_threshold(probs, answerable, refuse_share=1.0) > 0.7  # all refused costs two answerable


def test_fitted_calibration_orders_features_and_round_trips() -> None:
    on = [QueryFeatures(0.9 + 0.01 * i, 5.0 + i, 1.0) for i in range(6)]
    off = [QueryFeatures(0.80 + 0.01 * i, 0.0, 0.0) for i in range(6)]
    calibration = fit_calibration(on + off, [True] * 6 + [False] * 6, [True] * 6 + [False] * 6)
    p_on = calibration.probability(QueryFeatures(0.93, 6.0, 1.0))
    p_off = calibration.probability(QueryFeatures(0.81, 0.0, 0.0))
    assert p_on > calibration.threshold > p_off
    restored = Calibration.from_json(calibration.to_json())
    assert restored.probability(QueryFeatures(0.93, 6.0, 1.0)) == pytest.approx(p_on)


def test_rag_config_rejects_out_of_range_values() -> None:
    from aldlab.errors import UserError
    from aldlab.rag.config import RagConfig

    with pytest.raises(UserError, match="rrf_weight"):
        RagConfig(rrf_weight=1.5)
    with pytest.raises(UserError, match="top_k"):
        RagConfig(top_k=0)


def test_questions_refused_by_a_rule_count_towards_the_share() -> None:
    """The share is of all unanswerable calibration questions: those a rule refused (unknown
    names, one site's records) are refused already, so the threshold refuses only the rest."""
    answerable = [True] * 4 + [False] * 5
    probs = [0.9, 0.8, 0.6, 0.35, 0.1, 0.2, 0.3, 0.4, 0.5]
    alone = choose_threshold(probs, answerable, refuse_share=0.9)
    assert alone > 0.5  # all five must go: 0.35 is lost
    helped = choose_threshold(probs, answerable, refuse_share=0.9, already_refused=5)  # 9 of 10 suffice
    assert 0.35 < helped < 0.5


def test_site_specific_questions_are_found_and_general_ones_are_not() -> None:
    from aldlab.rag.scope import site_specific

    assert site_specific("우리 팹 HfO2 레시피 GPC 스펙 상하한 몇이야?") == ["우리 팹"]
    assert site_specific("2호기 챔버 지난달 가동률은?") == ["2호기"]
    assert site_specific("샤워헤드 교체 비용 견적 얼마 나왔어?") == ["견적"]
    assert site_specific("벤더 담당자 연락처 알려줘") == ["담당자", "연락처"]
    assert site_specific("DRAM 커패시터 ZrO2 조건을 삼성은 어떻게 잡아?") == ["삼성"]
    # Describing one's own tool, or a time, is a question the KB can answer.
    for general in ("우리 장비는 N2가 항상 흐르는데 이 방식 장점이 뭔가요?", "어제 PM 끝나고 두께가 3% 낮게 나와요",
                    "3번 스텝 purge 시간이 짧으면?", "TMA 증기압 얼마야?"):
        assert site_specific(general) == [], general
