"""The learned ordering of fused candidates (rag/rank.py) and its place in HybridRetriever."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from rag_testkit import install_fake_embedder, tiny_kb

from aldlab.rag.config import RagConfig
from aldlab.rag.rank import FEATURES, LinearRanker, fit_ranker, load_default_ranker, reorder
from aldlab.rag.retriever import HybridRetriever

BM25 = FEATURES.index("bm25_share")
FUSED = FEATURES.index("fused_score")


def _samples(n: int = 40, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Queries whose answering candidate has the best BM25 share but not the best fused score."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.normal(size=(6, len(FEATURES)))
        x[:, FUSED] = np.linspace(1.0, 0.5, 6)
        gold = int(rng.integers(1, 6))
        x[gold, BM25] = x[:, BM25].max() + 1.0
        y = np.zeros(6)
        y[gold] = 1.0
        out.append((x, y))
    return out


def test_zero_steps_reproduce_the_fused_order_and_fitting_learns_the_signal() -> None:
    samples = _samples()
    plain = fit_ranker(samples, steps=0)
    assert all(int(np.argmax(plain.score(x))) == 0 for x, _ in samples)
    fitted = fit_ranker(samples, steps=200)
    held_out = _samples(seed=1)
    assert sum(int(np.argmax(fitted.score(x))) == int(np.argmax(y)) for x, y in held_out) >= 0.9 * len(held_out)


def test_reorder_moves_only_the_head_and_keeps_the_fused_scale() -> None:
    ranker = LinearRanker(np.eye(len(FEATURES))[BM25], np.zeros(len(FEATURES)), np.ones(len(FEATURES)))
    features = np.zeros((3, len(FEATURES)))
    features[:, BM25] = [0.1, 0.9, 0.5]
    fused = {7: 0.03, 8: 0.02, 9: 0.01, 4: 0.005}
    order, relevance = reorder([7, 8, 9, 4], fused, ranker, features)
    assert order == [8, 9, 7, 4]
    assert [relevance[i] for i in order] == [0.03, 0.02, 0.01, 0.005]


def test_shipped_ranker_matches_the_features_and_a_stale_file_is_ignored() -> None:
    assert load_default_ranker() is not None
    stale = json.loads(load_default_ranker().to_json())  # type: ignore[union-attr]
    stale["features"] = stale["features"][:-1]
    assert LinearRanker.from_json(json.dumps(stale)) is None


def test_retriever_uses_the_learned_order_unless_turned_off(tmp_path: Path) -> None:
    install_fake_embedder()
    config = RagConfig(dense_model="fake", index_dir=tmp_path)
    on = HybridRetriever.from_kb(tiny_kb(), config, show_progress=False)
    off = HybridRetriever.from_kb(tiny_kb(), replace(config, learned_rank=False), show_progress=False)
    assert on.ranker is not None and off.ranker is None
    # a ranker that only trusts titles puts the document titled with the query's words first
    on.ranker = LinearRanker(np.eye(len(FEATURES))[FEATURES.index("query_in_title")], np.zeros(len(FEATURES)), np.ones(len(FEATURES)))
    order, features = off.rank_sample("ALD window 온도")
    assert features.shape == (len(order), len(FEATURES))
    assert on.search("ALD window 온도", top_k=1).passages[0].id == "tiny-006"
