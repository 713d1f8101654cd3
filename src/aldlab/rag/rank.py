"""Learned ordering of the fused candidates: a linear model over the scores retrieval already has.

Reciprocal rank fusion only sees ranks. Where the answering document is second or third (on
the 1,736-question retrieval dev set hit@3 is 0.79 but hit@1 0.59), the scores themselves
tell more: how close its BM25 score is to the best, how far its dense cosine lags, whether the
question's words are in its title ("ALD window가 뭐예요?" → "ALD window의 정의" rather than "완전히
평탄하지 않은 ALD window"), how likely the question's words are given the document's, as
learned from the KB's own question-document pairs (`translation.py`). Eleven such features,
all relative to the other candidates so they mean the same on any KB, are weighted by a linear
model fitted with a listwise softmax loss on half of `bench/data/paraphrases.jsonl`
(`scripts/fit_ranker.py`). Only the top `RERANK_DEPTH`
fused candidates are reordered; they keep the fused scores' scale (see `reorder`), so MMR and
everything after it behave as before.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

#: Fused candidates the learned model reorders (the rest keep their fused order).
RERANK_DEPTH = 10
#: Feature names, in the order `candidate_features` computes them.
FEATURES = (
    "log_fused_rank",
    "fused_score",
    "bm25_share",
    "dense_gap",
    "ranking_gap",
    "query_in_title",
    "title_in_query",
    "bm25_reciprocal_rank",
    "dense_reciprocal_rank",
    "keyword_share",
    "translation_gap",
)
#: Shipped coefficients (written by `scripts/fit_ranker.py`).
DEFAULT_RANKER = "ranker.json"


@dataclass(frozen=True)
class RankInputs:
    """What the retriever knows about one query's candidates, by document index."""

    order: Sequence[int]
    fused: dict[int, float]
    bm25: np.ndarray
    dense: np.ndarray
    ranking: np.ndarray
    bm25_rank: Sequence[int]
    dense_rank: Sequence[int]
    #: The query's terms, in the user's spelling and in the KB's.
    query_terms: set[str]
    #: The query's log-likelihood under every document (`translation.py`), or None.
    translation: np.ndarray | None = None


def candidate_features(
    inputs: RankInputs, title_terms: Sequence[set[str]], keyword_terms: Sequence[set[str]]
) -> np.ndarray:
    """One row of `FEATURES` per candidate in `inputs.order` (relative to the other candidates).

    Without `inputs.translation` the translation feature is 0 for every candidate (it then
    ranks nothing).
    """
    order = list(inputs.order)
    if not order:
        return np.zeros((0, len(FEATURES)), dtype=np.float32)
    if inputs.translation is None:
        gaps = np.zeros(len(order))
    else:
        translation = inputs.translation[order]
        gaps = translation - float(np.max(translation))
    bm25_best = max(float(inputs.bm25[order].max()), 1e-6)
    dense_best = float(inputs.dense[order].max())
    ranking_best = float(inputs.ranking[order].max())
    bm25_pos = {doc: pos for pos, doc in enumerate(inputs.bm25_rank)}
    dense_pos = {doc: pos for pos, doc in enumerate(inputs.dense_rank)}
    query = inputs.query_terms
    rows = []
    for rank, i in enumerate(order):
        title = title_terms[i]
        shared = len(query & title)
        rows.append([
            np.log1p(rank),
            inputs.fused[i] * 60.0,
            float(inputs.bm25[i]) / bm25_best,
            float(inputs.dense[i]) - dense_best,
            float(inputs.ranking[i]) - ranking_best,
            shared / max(len(query), 1),
            shared / max(len(title), 1),
            1.0 / (1 + bm25_pos.get(i, 60)),
            1.0 / (1 + dense_pos.get(i, 60)),
            len(query & keyword_terms[i]) / max(len(keyword_terms[i]), 1),
            float(gaps[rank]),
        ])
    return np.asarray(rows, dtype=np.float32)


@dataclass(frozen=True)
class LinearRanker:
    """score = ((features - mean) / scale) @ weights."""

    weights: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    note: str = ""

    def score(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.scale) @ self.weights

    def to_json(self) -> str:
        return json.dumps(
            {
                "features": list(FEATURES),
                "weights": [round(float(x), 6) for x in self.weights],
                "mean": [round(float(x), 6) for x in self.mean],
                "scale": [round(float(x), 6) for x in self.scale],
                "note": self.note,
            },
            ensure_ascii=False,
            indent=1,
        ) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LinearRanker | None:
        """The ranker in `text`, or None when it was fitted on other features (stale file)."""
        data = json.loads(text)
        if tuple(data.get("features", ())) != FEATURES:
            return None
        return cls(
            np.asarray(data["weights"], dtype=np.float32),
            np.asarray(data["mean"], dtype=np.float32),
            np.asarray(data["scale"], dtype=np.float32),
            data.get("note", ""),
        )


def load_default_ranker() -> LinearRanker | None:
    """The shipped coefficients, or None when the file is missing or out of date."""
    try:
        text = resources.files("aldlab.rag").joinpath(DEFAULT_RANKER).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return None
    return LinearRanker.from_json(text)


def reorder(order: list[int], fused: dict[int, float], ranker: LinearRanker, features: np.ndarray) -> tuple[list[int], dict[int, float]]:
    """The first len(features) candidates sorted by the ranker, and relevance for all of them.

    The reordered candidates take over the fused scores of the positions they move into, so
    the relevance MMR sees keeps the fused scale (MMR min-max scales it against similarity).
    """
    depth = len(features)
    head, tail = order[:depth], order[depth:]
    scores = ranker.score(features)
    new_head = [head[j] for j in np.argsort(-scores, kind="stable")]
    slots = sorted((fused[i] for i in head), reverse=True)
    relevance = {i: fused[i] for i in tail}
    relevance.update(zip(new_head, slots, strict=True))
    return new_head + tail, relevance


def fit_ranker(
    samples: Sequence[tuple[np.ndarray, np.ndarray]], *, l2: float = 0.01, steps: int = 300, lr: float = 0.05, note: str = ""
) -> LinearRanker:
    """Fit weights with a listwise softmax loss (Adam, full batch).

    `samples` are (features, labels) per query; labels mark the answering candidates and at
    least one must be positive. Starts from the fused score alone, so zero steps reproduce RRF.
    """
    stacked = np.concatenate([f for f, _ in samples])
    mean = stacked.mean(axis=0)
    scale = stacked.std(axis=0) + 1e-6
    xs = [(f - mean) / scale for f, _ in samples]
    ys = [y / y.sum() for _, y in samples]
    w = np.zeros(len(FEATURES))
    w[FEATURES.index("fused_score")] = scale[FEATURES.index("fused_score")]
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for step in range(1, steps + 1):
        grad = 2 * l2 * w
        for x, y in zip(xs, ys, strict=True):
            s = x @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            grad += x.T @ (p - y) / len(xs)
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        w -= lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return LinearRanker(w.astype(np.float32), mean.astype(np.float32), scale.astype(np.float32), note)


def write_ranker(ranker: LinearRanker, path: Path) -> None:
    from aldlab.files import atomic_write_bytes

    atomic_write_bytes(path, ranker.to_json().encode("utf-8"))
