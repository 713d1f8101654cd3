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
