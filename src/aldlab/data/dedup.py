"""Exact and near-duplicate detection for questions and answers.

Near-duplicates are character n-gram Jaccard matches (≥ 0.8 by default): Korean particles
and endings change a few characters between paraphrases, and n-grams see through that
without a tokenizer. Pairs above the threshold are found without comparing all pairs:
- small joins use PPJoin (exact): order each set's n-grams rarest first; two sets with
  Jaccard ≥ t must share one of the first |x| - ceil(t·|x|) + 1 of them;
- large joins (10k-document KBs) use MinHash-LSH to propose candidates, sized so that a
  pair at the threshold is missed with probability ≤ 1e-7, and every candidate is verified
  with the exact Jaccard, so nothing below the threshold is ever reported.
See bench/data_build.py for the measured times.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import TypeVar

from aldlab.kb.similarity import char_ngrams, normalize_text

T = TypeVar("T")

#: NFKC, case-folded, without spaces or punctuation: "MFC가 뭐야?" == "mfc가뭐야" — the same
#: normalisation the KB importer uses for its duplicate check.
normalize = normalize_text


def ngrams(text: str, n: int = 3) -> frozenset[str]:
    """Character n-grams of the normalized text, hashable so identical sets join once."""
    return frozenset(char_ngrams(text, n))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    overlap = len(a & b)  # |a ∪ b| from sizes: building the union set doubled the join time
    return overlap / (len(a) + len(b) - overlap)


def _prefix_length(size: int, threshold: float) -> int:
    return size - math.ceil(threshold * size) + 1 if size else 0


def similar_pairs(
    left: Sequence[frozenset[str]], right: Sequence[frozenset[str]], threshold: float
) -> list[tuple[int, int, float]]:
    """All (i, j, jaccard) with jaccard(left[i], right[j]) ≥ threshold (exact, prefix-filtered).

    Identical sets are joined once and expanded afterwards (paraphrase templates repeat).
    """
    left_unique, left_rows = _unique(left)
    right_unique, right_rows = _unique(right)
    join = _similar_unique if len(left_unique) * len(right_unique) <= EXACT_JOIN_MAX_PAIRS else _similar_minhash
    pairs = []
    for i, j, score in join(left_unique, right_unique, threshold):
        pairs.extend((a, b, score) for a in left_rows[i] for b in right_rows[j])
    return sorted(pairs)


#: Above this many set pairs the join switches from exact PPJoin to MinHash-LSH candidates
#: (then verified exactly). Measured on the 10k-document bench: PPJoin spent 130 s there,
#: because template n-grams give long posting lists; LSH with banding stays near-linear.
EXACT_JOIN_MAX_PAIRS = 20_000_000
#: LSH bands are sized so that a pair at the threshold is missed with probability ≤ this.
LSH_MISS_PROBABILITY = 1e-7
_PRIME = (1 << 31) - 1


def lsh_shape(threshold: float, miss: float = LSH_MISS_PROBABILITY) -> tuple[int, int]:
    """(bands, rows per band) so a pair with Jaccard = threshold shares a band w.p. ≥ 1 - miss."""
    rows = 4 if threshold >= 0.75 else 3 if threshold >= 0.5 else 2
    bands = math.ceil(math.log(miss) / math.log(1 - threshold**rows))
    return bands, rows


def _minhash(sets: Sequence[frozenset[str]], vocab: dict[str, int], a: "np.ndarray", b: "np.ndarray") -> "np.ndarray":
    import numpy as np

    out = np.empty((len(sets), len(a)), dtype=np.uint64)
    for i, s in enumerate(sets):
        ids = np.fromiter((vocab.setdefault(g, len(vocab) + 1) for g in s), dtype=np.uint64, count=len(s))
        out[i] = ((a[:, None] * ids[None, :] + b[:, None]) % _PRIME).min(axis=1) if len(s) else _PRIME
    return out


def _similar_minhash(left: Sequence[frozenset[str]], right: Sequence[frozenset[str]], threshold: float) -> list[tuple[int, int, float]]:
    """MinHash-LSH candidates (deterministic seeds), each verified with the exact Jaccard."""
    import numpy as np

    bands, rows = lsh_shape(threshold)
    rng = np.random.default_rng(20240607)
    a = rng.integers(1, _PRIME, size=bands * rows, dtype=np.uint64)
    b = rng.integers(0, _PRIME, size=bands * rows, dtype=np.uint64)
    vocab: dict[str, int] = {}
    sig_right = _minhash(right, vocab, a, b)
    sig_left = _minhash(left, vocab, a, b)
    weights = rng.integers(1, 1 << 62, size=rows, dtype=np.uint64)
    n_right = len(right)
    candidates: set[int] = set()  # i * n_right + j: ints hash faster than tuples
    for band in range(bands):
        cols = slice(band * rows, (band + 1) * rows)
        with np.errstate(over="ignore"):
            keys_right = (sig_right[:, cols] * weights).sum(axis=1).tolist()
            keys_left = (sig_left[:, cols] * weights).sum(axis=1).tolist()
        buckets: dict[int, list[int]] = {}
        for j, key in enumerate(keys_right):
            buckets.setdefault(key, []).append(j)
        for i, key in enumerate(keys_left):
            hit = buckets.get(key)
            if hit:
                base = i * n_right
                candidates.update(base + j for j in hit)
    if not candidates:
        return []
    # Templated KBs have many pairs at Jaccard 0.5-0.7 that share a band; the signature
    # agreement estimates Jaccard (std ≈ 0.036 at 0.8) and drops those before the exact check.
    margin = 6 * math.sqrt(threshold * (1 - threshold) / (bands * rows))
    flat = np.fromiter(candidates, dtype=np.int64, count=len(candidates))
    flat.sort()
    pairs = []
    for start in range(0, len(flat), 200_000):
        chunk = flat[start : start + 200_000]
        li, rj = chunk // n_right, chunk % n_right
        estimate = (sig_left[li] == sig_right[rj]).mean(axis=1)
        for i, j in zip(li[estimate >= threshold - margin].tolist(), rj[estimate >= threshold - margin].tolist()):
            if left[i] and right[j]:
                score = jaccard(left[i], right[j])
                if score >= threshold:
                    pairs.append((i, j, score))
    return pairs


def _unique(sets: Sequence[frozenset[str]]) -> tuple[list[frozenset[str]], list[list[int]]]:
    position: dict[frozenset[str], int] = {}
    rows: list[list[int]] = []
    for i, s in enumerate(sets):
        k = position.setdefault(s, len(position))
        if k == len(rows):
            rows.append([])
        rows[k].append(i)
    return list(position), rows


def _similar_unique(left: Sequence[frozenset[str]], right: Sequence[frozenset[str]], threshold: float) -> list[tuple[int, int, float]]:
    """PPJoin: prefix filtering plus the positional bound on the remaining overlap.

    A candidate met at prefix positions (p in x, q in y) can still gain at most
    min(|x|-p-1, |y|-q-1) shared n-grams; if that cannot reach the overlap that Jaccard ≥ t
    needs, it is pruned without computing the intersection (most candidates are).
    """
    freq: Counter[str] = Counter()
    for sets in (left, right):
        for s in sets:
            freq.update(s)

    def ordered(s: frozenset[str]) -> list[str]:
        return sorted(s, key=lambda g: (freq[g], g))

    index: dict[str, list[tuple[int, int]]] = defaultdict(list)
    sizes = [len(s) for s in right]
    for j, s in enumerate(right):
        for q, gram in enumerate(ordered(s)[: _prefix_length(len(s), threshold)]):
            index[gram].append((j, q))
    pairs: list[tuple[int, int, float]] = []
    for i, s in enumerate(left):
        if not s:
            continue
        size = len(s)
        lo, hi = threshold * size, size / threshold
        overlap: dict[int, int] = {}
        pruned: set[int] = set()
        for p, gram in enumerate(ordered(s)[: _prefix_length(size, threshold)]):
            for j, q in index.get(gram, ()):
                if j in pruned:
                    continue
                other = sizes[j]
                if not lo <= other <= hi:
                    pruned.add(j)
                    continue
                needed = math.ceil(threshold / (1 + threshold) * (size + other) - 1e-9)
                seen = overlap.get(j, 0) + 1
                if seen + min(size - p - 1, other - q - 1) < needed:
                    pruned.add(j)
                    overlap.pop(j, None)
                    continue
                overlap[j] = seen
        for j in overlap:
            score = jaccard(s, right[j])
            if score >= threshold:
                pairs.append((i, j, score))
    return pairs


def dedup_within(items: Sequence[T], key: Callable[[T], str]) -> tuple[list[T], int]:
    """Keep the first item of each normalized key; return (kept, number dropped)."""
    seen: set[str] = set()
    kept: list[T] = []
    for item in items:
        k = key(item)
        if k in seen:
            continue
        seen.add(k)
        kept.append(item)
    return kept, len(items) - len(kept)
