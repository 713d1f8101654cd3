"""The KB's example questions as character n-grams: a candidate list that survives how people type.

Users write "펌핑", "퍼지시간", "벤트할때", "헌팅 생기는"; the morphological tokenizer splits or
drops some of these, BM25 then meets the document's own words only, and e5-small knows little
fab Korean. Character bigrams and trigrams of each word still meet the KB's example questions
(`Document.questions`, written the way people ask), whatever the spacing or ending. Every
document scores the best cosine (TF-IDF, sublinear term frequency) between the query and one
of its example questions; the ranking is the fourth list of the retriever's fusion
(`RagConfig.question_ngram_weight`).

Measured as that list (weight 0.3, the learned ordering unchanged) through the real search:
gold hit@1 / hit@3 on the held-out half of `bench/data/paraphrases.jsonl` (892) 0.670 / 0.851
-> 0.683 / 0.865; user-dev (62) 0.806 / 0.919 -> 0.823 / 0.919 and recall@10 0.935 -> 0.952;
dev (99) 0.980 / 1.000 unchanged. Weights 0.1 and 0.2 changed user-dev by nothing, 0.4 and 0.5
gave back part of the held-out gain (0.679, 0.682) and 0.5 lost a user-dev question. On its
own the list is weak (user-dev hit@1 0.48): it helps as a second opinion, not as a retriever.

The retriever adds each question in the KB's spelling and scores the query in both spellings
(best of the two): with the user's spelling only, "MFC Zero drift 원인" (BM25-only search) met
troubleshooting-019's "MFC zero drift 어떻게 확인해?" before mfc-009's "MFC 제로 드리프트가 뭐야?".
With both: held-out 0.676 / 0.861, user-dev 0.823 / 0.919, dev unchanged.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

_NOT_WORD = re.compile(r"[^0-9a-z가-힣]+")
#: Character n-gram lengths, inside each word with its boundaries marked ("<퍼지>").
SIZES = (2, 3)


def char_ngrams(text: str) -> Counter[str]:
    """Counts of the character bigrams and trigrams of `text`'s words (lowercased)."""
    grams: Counter[str] = Counter()
    for word in _NOT_WORD.sub(" ", text.lower()).split():
        marked = f"<{word}>"
        for size in SIZES:
            grams.update(marked[i : i + size] for i in range(len(marked) - size + 1))
    return grams


class QuestionNgramIndex:
    """TF-IDF character n-gram vectors of every document's example questions, as posting arrays."""

    def __init__(self, questions: Sequence[Sequence[str]]) -> None:
        self.n_documents = len(questions)
        owners = [doc for doc, asked in enumerate(questions) for _ in asked]
        counts = [char_ngrams(q) for asked in questions for q in asked]
        self.n_questions = len(counts)
        document_frequency: Counter[str] = Counter(g for c in counts for g in c)
        self._idf = {g: math.log((self.n_questions + 1) / (df + 1)) + 1.0 for g, df in document_frequency.items()}
        postings: dict[str, list[tuple[int, float]]] = {}
        for question, grams in enumerate(counts):
            for gram, weight in self._weigh(grams).items():
                postings.setdefault(gram, []).append((question, weight))
        self._gram_slices: dict[str, tuple[int, int]] = {}
        rows: list[int] = []
        weights: list[float] = []
        for gram, entries in postings.items():
            self._gram_slices[gram] = (len(rows), len(rows) + len(entries))
            rows.extend(q for q, _ in entries)
            weights.extend(w for _, w in entries)
        self._rows = np.asarray(rows, dtype=np.int64)
        self._weights = np.asarray(weights, dtype=np.float64)
        # Questions are numbered document by document, so each asked document's questions form
        # one run: the best of a run is `np.maximum.reduceat` over its start.
        asked = [doc for doc, qs in enumerate(questions) if qs]
        self._asked = np.asarray(asked, dtype=np.int64)
        self._starts = np.searchsorted(np.asarray(owners, dtype=np.int64), self._asked) if asked else self._asked

    def _weigh(self, grams: Counter[str]) -> dict[str, float]:
        """Sublinear tf x idf, L2-normalised (a gram the questions never use gets the largest idf)."""
        unseen = math.log(self.n_questions + 1) + 1.0
        vector = {g: (1.0 + math.log(c)) * self._idf.get(g, unseen) for g, c in grams.items()}
        norm = math.sqrt(sum(v * v for v in vector.values())) or 1.0
        return {g: v / norm for g, v in vector.items()}

    @property
    def empty(self) -> bool:
        """True when no document has example questions (the list would rank nothing)."""
        return self.n_questions == 0

    def scores(self, query: str) -> np.ndarray:
        """Per document, the best cosine between `query` and one of its questions (0 without questions)."""
        out = np.zeros(self.n_documents)
        if self.empty:
            return out
        rows, values = [], []
        for gram, weight in self._weigh(char_ngrams(query)).items():
            span = self._gram_slices.get(gram)
            if span is not None:
                rows.append(self._rows[span[0] : span[1]])
                values.append(self._weights[span[0] : span[1]] * weight)
        if not rows:
            return out
        per_question = np.bincount(np.concatenate(rows), weights=np.concatenate(values), minlength=self.n_questions)
        out[self._asked] = np.maximum.reduceat(per_question, self._starts)
        return out
