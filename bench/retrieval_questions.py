"""How much the documents' own questions (`Document.questions`) help retrieval.

    python bench/retrieval_questions.py            # ~3 min on 2 cores (first run embeds the questions)

Prints gold-document hit@1 / hit@3 / hit@20 per question set for `rag.question_weight` 0 (the
baseline: passage vectors only) and the weights around the default, with the ratio of hit@1 to
the baseline measured in the same run. Question sets:

- `bench/data/paraphrases.jsonl`: 1,736 questions written by a second KB reader (4 per document,
  other angles than the questions in the KB: search-box queries, newcomers' descriptions, line
  situations, confirm-my-understanding). Not in the index, never trained on: a large retrieval dev
  set for tuning. Gold is the one document each was written for (exact-duplicate texts count).
- `evalsets/dev.jsonl` (KB wording) and `evalsets/user-dev.jsonl` (users' words), answerable ones.
user-test is deliberately not here: it is never tuned on.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from aldlab.kb.io import load_kb  # noqa: E402
from aldlab.kb.schema import KnowledgeBase  # noqa: E402
from aldlab.rag.config import RagConfig  # noqa: E402
from aldlab.rag.retriever import HybridRetriever  # noqa: E402

WEIGHTS = (0.0, 0.5, 1.0, 1.5)


def question_sets() -> dict[str, list[tuple[str, set[str]]]]:
    """(question, gold ids) per set."""
    sets: dict[str, list[tuple[str, set[str]]]] = {}
    rows = [json.loads(line) for line in (REPO / "bench" / "data" / "paraphrases.jsonl").read_text(encoding="utf-8").splitlines()]
    sets["paraphrases"] = [(r["question"], {r["doc_id"]}) for r in rows]
    for name in ("dev", "user-dev"):
        path = REPO / "evalsets" / f"{name}.jsonl"
        items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        sets[name] = [(r["question"], set(r["doc_ids"])) for r in items if r.get("answerable") and r.get("doc_ids")]
    return sets


def same_text_ids(kb: KnowledgeBase) -> dict[str, set[str]]:
    """Per document id, every id whose text is the same (a hit on any of them counts)."""
    by_text: dict[str, set[str]] = {}
    for d in kb.documents:
        by_text.setdefault(" ".join(d.text.split()), set()).add(d.id)
    return {i: ids for ids in by_text.values() for i in ids}


def hits(retriever: HybridRetriever, questions: list[tuple[str, set[str]]], same_text: dict[str, set[str]]) -> tuple[float, float, float]:
    found = [0, 0, 0]
    for question, gold in questions:
        wanted = set().union(*(same_text.get(g, {g}) for g in gold))
        ids = [p.id for p in retriever.search(question, top_k=20).passages]
        rank = next((k for k, i in enumerate(ids) if i in wanted), None)
        for j, cut in enumerate((1, 3, 20)):
            found[j] += rank is not None and rank < cut
    return tuple(x / len(questions) for x in found)  # type: ignore[return-value]


def main() -> None:
    kb = load_kb(REPO / "knowledge" / "ald")
    same_text = same_text_ids(kb)
    sets = question_sets()
    config = RagConfig()
    results = {}
    for weight in WEIGHTS:
        retriever = HybridRetriever.from_kb(kb, replace(config, question_weight=weight), show_progress=True)
        results[weight] = {name: hits(retriever, qs, same_text) for name, qs in sets.items()}
    table = Table(title="gold hit@1 / hit@3 / hit@20 (× hit@1 vs question_weight 0)")
    table.add_column("question_weight")
    for name, qs in sets.items():
        table.add_column(f"{name} ({len(qs)})")
    for weight in WEIGHTS:
        cells = []
        for name in sets:
            h1, h3, h20 = results[weight][name]
            base = results[0.0][name][0] or 1.0
            cells.append(f"{h1:.3f} / {h3:.3f} / {h20:.3f} ({h1 / base:.2f}×)")
        label = f"{weight:g}" + (" (기준 / baseline)" if weight == 0 else " (기본 / default)" if weight == config.question_weight else "")
        table.add_row(label, *cells)
    Console().print(table)


if __name__ == "__main__":
    main()
