"""Text normalisation and near-duplicate detection for KB documents.

Import must report duplicates instead of silently adding them. Exact duplicates compare
normalised text (NFKC, case-folded, no spaces/punctuation); near-duplicates compare
character 3-gram sets (Jaccard), which works for Korean without a tokenizer. An inverted
index over 3-grams keeps the check near-linear for large imports.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)

#: Jaccard similarity of character 3-grams at or above which two texts are near-duplicates.
NEAR_DUPLICATE_THRESHOLD = 0.85


def normalize_text(text: str) -> str:
    """NFKC, case-folded, with whitespace and punctuation removed."""
    return _NON_WORD.sub("", unicodedata.normalize("NFKC", text).casefold())


def char_ngrams(text: str, n: int = 3) -> set[str]:
    """Character n-grams of the normalised text (the whole text if shorter than n)."""
    norm = normalize_text(text)
    if len(norm) <= n:
        return {norm} if norm else set()
    return {norm[i : i + n] for i in range(len(norm) - n + 1)}


class NearDuplicateIndex:
    """Incremental index answering 'which stored text is most similar to this one?'."""

    def __init__(self, threshold: float = NEAR_DUPLICATE_THRESHOLD, n: int = 3) -> None:
        self.threshold = threshold
        self.n = n
        self._grams: dict[str, set[str]] = {}
        self._exact: dict[str, str] = {}
        self._postings: dict[str, set[str]] = defaultdict(set)

    def add(self, key: str, text: str) -> None:
        """Store `text` under `key`."""
        grams = char_ngrams(text, self.n)
        self._grams[key] = grams
        self._exact.setdefault(normalize_text(text), key)
        for gram in grams:
            self._postings[gram].add(key)

    def exact_match(self, text: str) -> str | None:
        """Key of a stored text equal to `text` after normalisation."""
        return self._exact.get(normalize_text(text))

    def most_similar(self, text: str) -> tuple[str, float] | None:
        """(key, similarity) of the most similar stored text at or above the threshold."""
        grams = char_ngrams(text, self.n)
        if not grams:
            return None
        overlap: dict[str, int] = defaultdict(int)
        for gram in grams:
            for key in self._postings.get(gram, ()):
                overlap[key] += 1
        best: tuple[str, float] | None = None
        for key, shared in overlap.items():
            other = self._grams[key]
            score = shared / (len(grams) + len(other) - shared)
            if score >= self.threshold and (best is None or score > best[1]):
                best = (key, score)
        return best

    @classmethod
    def from_items(cls, items: Iterable[tuple[str, str]], threshold: float = NEAR_DUPLICATE_THRESHOLD) -> NearDuplicateIndex:
        """Index (key, text) pairs."""
        index = cls(threshold)
        for key, text in items:
            index.add(key, text)
        return index
