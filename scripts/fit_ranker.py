"""Fit the learned candidate ordering (`aldlab/rag/rank.py`) and show what it changes.

    .venv/bin/python scripts/fit_ranker.py            # ~2 min on 2 cores; writes src/aldlab/rag/ranker.json
    .venv/bin/python scripts/fit_ranker.py --dry-run  # measure only

Fits on the documents of one half of `bench/data/paraphrases.jsonl` (split by a hash of the
gold document id, so no document is on both sides) and prints gold hit@1 / hit@3 through the
real `search` path, with and without the learned ordering, on the other half, on
`evalsets/dev.jsonl` and on `evalsets/user-dev.jsonl`. user-test is never used here.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from retrieval_questions import hits, question_sets, same_text_ids  # noqa: E402

from aldlab.kb.io import load_kb  # noqa: E402
from aldlab.rag.config import RagConfig  # noqa: E402
from aldlab.rag.rank import FEATURES, fit_ranker, write_ranker  # noqa: E402
from aldlab.rag.retriever import HybridRetriever  # noqa: E402

OUT = REPO / "src" / "aldlab" / "rag" / "ranker.json"


def half(doc_id: str) -> int:
    return int(hashlib.md5(doc_id.encode()).hexdigest(), 16) % 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="measure, do not write ranker.json")
    parser.add_argument("--l2", type=float, default=0.01)
    args = parser.parse_args()

    kb = load_kb(REPO / "knowledge" / "ald")
    same_text = same_text_ids(kb)
    plain = HybridRetriever.from_kb(kb, replace(RagConfig(), learned_rank=False), show_progress=True)
    ids = [d.id for d in plain.documents]

    sets = question_sets()
    paraphrases = sets.pop("paraphrases")
    fit_on = [(q, g) for q, g in paraphrases if half(sorted(g)[0]) == 0]
    sets = {"paraphrases (held-out half)": [(q, g) for q, g in paraphrases if half(sorted(g)[0]) == 1], **sets}

    samples = []
    for question, gold in fit_on:
        wanted = set().union(*(same_text.get(g, {g}) for g in gold))
        order, features = plain.rank_sample(question)
        labels = np.array([ids[i] in wanted for i in order], dtype=np.float64)
        if labels.any():
            samples.append((features.astype(np.float64), labels))
    note = (
        f"fitted by scripts/fit_ranker.py on {len(samples)} questions of bench/data/paraphrases.jsonl "
        f"(documents with md5(id) % 2 == 0; KB {kb.content_hash()[:12]}), l2={args.l2}"
    )
    ranker = fit_ranker(samples, l2=args.l2, note=note)
    learned = HybridRetriever.from_kb(kb, replace(RagConfig(), learned_rank=False), show_progress=False)
    learned.ranker = ranker

    table = Table(title=f"gold hit@1 / hit@3 (fitted on {len(samples)} questions)")
    table.add_column("set")
    table.add_column("RRF (기준 / baseline)")
    table.add_column("learned ordering")
    table.add_column("hit@1 ×")
    for name, questions in sets.items():
        before = hits(plain, questions, same_text)
        after = hits(learned, questions, same_text)
        table.add_row(f"{name} ({len(questions)})", f"{before[0]:.3f} / {before[1]:.3f}", f"{after[0]:.3f} / {after[1]:.3f}", f"{after[0] / max(before[0], 1e-9):.2f}")
    Console().print(table)
    print("weights:", {name: round(float(w), 2) for name, w in zip(FEATURES, ranker.weights, strict=True)})
    if not args.dry_run:
        write_ranker(ranker, OUT)
        print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
