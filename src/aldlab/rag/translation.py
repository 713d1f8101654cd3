"""Which words users ask with, given the words a document is written in: a translation model.

BM25 needs the question's own words in the passage and e5-small knows little of fab Korean,
so a symptom question ("퍼지 시간 줄였더니 두꺼워지고 균일도 깨짐") ranks a neighbouring
document first. The KB's example questions (`Document.questions`, ~4 per document) pair
users' wording with the document that answers it. From those pairs this module learns
P(question morpheme | document morpheme) by EM (IBM Model 1, the "translation language
model" of retrieval: Berger & Lafferty 1999), so "줄이" learns to go with "짧", a symptom
with its cause, across every document that shares the terms, not only the one a question
was written for.

The learned ranker (`rank.py`) uses the per-term log-likelihood of the query under each
candidate document as one feature. Measured on the held-out half of
`bench/data/paraphrases.jsonl` (892 questions, documents the ranker was not fitted on):
gold hit@1/@3 0.639/0.828 → 0.670/0.855 with this feature; user-dev 0.790/0.887 → 0.806/0.903.

Fitted from the KB alone, in ~2 s for 2,400 questions, and cached next to the index.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

#: Bump when the fitting changes: a cached model of another version is refitted.
VERSION = 2
#: EM iterations. The first fits from co-occurrence with a preference for the same term;
#: the second sharpens (held-out hit@1, measured before the cue terms: 1 → 0.667, 2 → 0.680,
#: 5 → 0.678).
ITERATIONS = 2
#: Initial weight of a different document term relative to the same term (EM starting point).
OTHER_TERM_PRIOR = 0.1
#: Translation probabilities below this are dropped (keeps the table small; ~3 MB JSON).
MIN_PROBABILITY = 1e-3
#: Smoothing weight of the collection model for question terms no candidate explains.
COLLECTION_WEIGHT = 0.2

#: Question words the BM25 tokenizer drops (`tokenize.STOPWORDS`), kept here as pseudo-terms:
#: what a question asks is part of its wording, and the KB's questions teach which documents
#: answer "왜" (purpose, cause) or "얼마" (values, ranges).
CUES = {
    "?why": re.compile(r"왜|why", re.IGNORECASE),
    "?what": re.compile(r"뭐|뭔|무엇|무슨|what", re.IGNORECASE),
    "?how": re.compile(r"어떻게|어케|how", re.IGNORECASE),
    "?amount": re.compile(r"얼마|몇|how much|how many", re.IGNORECASE),
    "?when": re.compile(r"언제|when", re.IGNORECASE),
    "?where": re.compile(r"어디|where", re.IGNORECASE),
}


def cue_terms(text: str) -> set[str]:
    """The question-word pseudo-terms (`CUES`) that occur in `text`."""
    return {name for name, pattern in CUES.items() if pattern.search(text)}


@dataclass
class TranslationModel:
    """P(query term | document term), learned from (question terms, document) pairs."""

    table: dict[str, dict[str, float]]
    #: Term counts of the whole collection and their total (smoothing).
    collection: dict[str, int]
    total: int

    @classmethod
    def fit(
        cls, pairs: Sequence[tuple[Iterable[str], int]], documents: Sequence[Sequence[str]], iterations: int = ITERATIONS
    ) -> TranslationModel:
        """EM over (question terms, document index) pairs; `documents` are term lists."""
        counts = [Counter(terms) for terms in documents]
        collection = Counter(t for terms in documents for t in terms)
        table: dict[str, dict[str, float]] = {}
        for step in range(iterations):
            expected: defaultdict[str, defaultdict[str, float]] = defaultdict(lambda: defaultdict(float))
            for question, doc in pairs:
                doc_counts = counts[doc]
                size = sum(doc_counts.values()) or 1
                for word in set(question):
                    weights = {}
                    for term, n in doc_counts.items():
                        p = table.get(term, {}).get(word, 0.0) if step else (1.0 if term == word else OTHER_TERM_PRIOR)
                        if p > 0:
                            weights[term] = p * n / size
                    z = sum(weights.values())
                    for term, w in weights.items():
                        expected[term][word] += w / z
            table = {}
            for term, row in expected.items():
                s = sum(row.values())
                table[term] = {w: v / s for w, v in row.items() if v / s > MIN_PROBABILITY}
        return cls(table, dict(collection), sum(collection.values()))

    def scores(self, query: Iterable[str], documents: Sequence[Sequence[str]]) -> np.ndarray:
        """Mean log P(query term | document) for each document (term lists).

        A term the model never saw translating translates only to itself, so a KB without
        example questions still gets a smoothed query likelihood.
        """
        words = sorted(set(query))
        out = np.zeros(len(documents), dtype=np.float64)
        if not words:
            return out
        background = {w: COLLECTION_WEIGHT * (self.collection.get(w, 0) + 0.5) / max(self.total, 1) for w in words}
        for k, terms in enumerate(documents):
            doc_counts = Counter(terms)
            size = sum(doc_counts.values()) or 1
            total = 0.0
            for w in words:
                p = 0.0
                for term, n in doc_counts.items():
                    row = self.table.get(term)
                    p += (row.get(w, 0.0) if row is not None else float(term == w)) * n
                total += math.log(p / size + background[w])
            out[k] = total / len(words)
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "version": VERSION,
            "total": self.total,
            "collection": self.collection,
            "table": {t: {w: round(p, 5) for w, p in row.items()} for t, row in self.table.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> TranslationModel | None:
        """The stored model, or None when it was fitted by another version."""
        if data.get("version") != VERSION:
            return None
        return cls(dict(data["table"]), dict(data["collection"]), int(data["total"]))  # type: ignore[arg-type,call-overload]
