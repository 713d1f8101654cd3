"""Eval generation throughput: one question at a time vs batched, same prompts, one run.

    nice -n 19 python bench/eval_generate.py [--prompts 8] [--max-new-tokens 128] [--batch-sizes 4,8]
                                             [--adapter DIR]

The prompts are what `aldlab eval` sends for its RAG systems: the first answerable
questions of evalsets/seed.jsonl with their top-3 passages from the shipped KB (hybrid
retrieval, default RagConfig), rendered by aldlab.prompts. The embedded gemma-3-270m
(fp32, CPU) decodes them greedily (a) one by one with `HFGenerator.generate_ids` — the
baseline, as eval did before — and (b) with `generate_batch_ids` for each batch size.
Printed: generated tokens (up to each row's end of turn), wall and CPU seconds, tokens/s,
the ratio to the baseline, and whether every batched row equals its one-by-one tokens.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rag_prompts(n: int, contexts: int | None = None) -> list[list[dict[str, str]]]:
    """Chat messages of the first `n` answerable seed questions with retrieved contexts
    (`contexts` passages each; default: rag.top_k, 3)."""
    from aldlab.kb.io import load_kb
    from aldlab.prompts import build_messages
    from aldlab.rag.build import build_retriever
    from aldlab.rag.config import RagConfig
    from aldlab.settings import shipped_evalset, shipped_kb_dir

    kb_dir = shipped_kb_dir()
    retriever = build_retriever(load_kb(kb_dir), RagConfig(), kb_source=kb_dir, show_progress=False)
    rows = [json.loads(line) for line in Path(shipped_evalset()).read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = [r["question"] for r in rows if r.get("answerable", True)][:n]
    return [build_messages(q, retriever.search(q, top_k=contexts).passages) for q in questions]


def timed(fn):  # noqa: ANN001, ANN201
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-sizes", default="8", help="comma-separated, e.g. 4,8")
    parser.add_argument("--adapter", default=None, help="LoRA adapter dir (named ft); default: the base model")
    args = parser.parse_args()

    from aldlab.llm.hf_generate import HFGenerator

    prompts = rag_prompts(args.prompts)
    gen = HFGenerator(None, {"ft": args.adapter} if args.adapter else None).load()
    adapter = "ft" if args.adapter else None
    lengths = [len(gen._inputs(m)["input_ids"][0]) for m in prompts]
    print(f"{len(prompts)} RAG prompts, prompt tokens {min(lengths)}-{max(lengths)} (mean {sum(lengths) / len(lengths):.0f}), "
          f"max_new_tokens {args.max_new_tokens}, model {'base+' + args.adapter if args.adapter else 'base'}")
    gen.generate_ids(prompts[0], max_new_tokens=2, adapter=adapter)  # warm-up (lazy init, allocator)

    alone, wall, cpu = timed(lambda: [gen.generate_ids(m, max_new_tokens=args.max_new_tokens, adapter=adapter) for m in prompts])
    tokens = sum(len(r) for r in alone)
    base_rate = tokens / wall
    print(f"\n{'mode':<14}{'tokens':>8}{'wall s':>9}{'CPU s':>9}{'tok/s':>8}{'CPU tok/s':>11}{'ratio':>7}  identical")
    print(f"{'one-by-one':<14}{tokens:>8}{wall:>9.1f}{cpu:>9.1f}{tokens / wall:>8.2f}{tokens / cpu:>11.2f}{1.0:>7.2f}  -")
    for size in [int(s) for s in args.batch_sizes.split(",") if s.strip()]:
        def run(size: int = size) -> list[list[int]]:
            out: list[list[int]] = []
            for i in range(0, len(prompts), size):
                out.extend(gen.generate_batch_ids(prompts[i : i + size], max_new_tokens=args.max_new_tokens, adapter=adapter))
            return out

        batched, wall, cpu = timed(run)
        tokens = sum(len(r) for r in batched)
        same = sum(a == b for a, b in zip(alone, batched, strict=True))
        print(f"{f'batch {size}':<14}{tokens:>8}{wall:>9.1f}{cpu:>9.1f}{tokens / wall:>8.2f}{tokens / cpu:>11.2f}"
              f"{tokens / wall / base_rate:>7.2f}  {same}/{len(prompts)}")


if __name__ == "__main__":
    main()
