"""Fine-tuning throughput: aldlab's trainer vs the legacy recipe, same model, same data, one run.

    python bench/train_throughput.py [--steps 4] [--batch-size 2] [--max-length 1024]

(a) aldlab: `aldlab.train.trainer.train` — LM head on supervised positions only, dynamic
    padding, length-grouped batches.
(b) legacy (the seed's finetune_llama.py): HF Trainer + PEFT LoRA, every row padded to
    max_length, logits and loss over every position.

Each side runs in its own subprocess (so peak RSS is its own) on the embedded
gemma-3-270m, LoRA r=16 on q/k/v/o, fp32 on CPU, for the same number of optimizer steps of
the same batch size over rows built from the shipped KB with aldlab.prompts. Printed:
supervised (assistant) tokens/s, estimated wall time per epoch of the data set, peak RSS,
achieved matmul FLOP/s against a plain 2048^3 fp32 matmul measured in this run (MFU), and
the aldlab/legacy ratios. Attention score FLOPs are not counted (small at these lengths).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- data


def build_rows(n: int, seed: int = 0) -> list[dict]:
    """Korean Q&A chat rows from the shipped KB: closed-book, RAG-style and refusals."""
    from aldlab.prompts import build_messages, refusal_answer

    docs = []
    for f in sorted((REPO / "knowledge" / "ald" / "documents").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                docs.append(SimpleNamespace(id=d["id"], title=d["title"], text=d["text"]))
    if len(docs) < 5:
        raise SystemExit("knowledge/ald/documents has too few documents for the benchmark")
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        d = rng.choice(docs)
        question = rng.choice(["{t}에 대해 설명해 주세요.", "{t}란 무엇인가요?", "{t}의 핵심은?"]).format(t=d.title)
        r = rng.random()
        if r < 0.5:
            msgs = build_messages(question, answer=d.text)
        elif r < 0.9:
            passages = rng.sample(docs, 2) + [d]
            rng.shuffle(passages)
            msgs = build_messages(question, passages, answer=f"{d.text} [{d.id}]")
        else:
            msgs = build_messages("오늘 날씨 어때?", rng.sample(docs, 2), answer=refusal_answer("문서에 없는 내용입니다."))
        rows.append({"messages": msgs})
    return rows


# --------------------------------------------------------------------------- children


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _lm_flops(n_params_nonembed: int, hidden: int, vocab: int, tokens: int, head_rows: int) -> float:
    """Matmul FLOPs of a LoRA step: forward 2*P*T + head 2*d*V*rows; backward ~same again
    (activation gradients only: the base weights are frozen)."""
    forward = 2 * n_params_nonembed * tokens + 2 * hidden * vocab * head_rows
    return 2 * forward


def _meta_model():
    """The embedded model's architecture on the meta device (no weights in memory)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from aldlab.train.model import resolve_model_path

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(resolve_model_path("embedded")))


def _nonembed_params(model) -> int:
    emb = model.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.parameters()) - emb


def child_aldlab(args: argparse.Namespace) -> dict:
    from aldlab.train.config import TrainConfig
    from aldlab.train.data import load_examples
    from aldlab.train.model import load_tokenizer
    from aldlab.train.trainer import _micro_batches, train

    out = Path(args.workdir) / "aldlab_out"
    cfg = TrainConfig(
        model_name="embedded", train_file=args.data, output_dir=str(out), max_steps=args.steps,
        batch_size=args.batch_size, max_seq_len=args.max_length, eval_steps=10**6, max_eval_examples=1,
        logging_steps=1, save_steps=10**6, save_inference_only=True, learning_rate=2e-4,
    )
    t0 = time.perf_counter()
    result = train(cfg, progress=False)
    wall = time.perf_counter() - t0
    # Recompute what the trainer processed (same seed -> same batches) for token/FLOP counts.
    tok = load_tokenizer("embedded")
    examples, stats = load_examples(args.data, tok, args.max_length)
    from aldlab.train.trainer import _split_eval

    train_ex, _ = _split_eval(examples, cfg.seed)
    batches = _micro_batches(cfg, [len(e.input_ids) for e in train_ex], 0)[: args.steps]
    padded = sum(len(b) * max(len(train_ex[i].input_ids) for i in b) for b in batches)
    supervised = sum(train_ex[i].n_supervised for b in batches for i in b)
    model = _meta_model()  # counts parameters without a second copy in RAM (peak RSS)
    flops = _lm_flops(_nonembed_params(model), model.config.hidden_size, model.config.vocab_size, padded, supervised)
    return {
        "train_seconds": result.seconds,
        "wall_seconds": wall,
        "supervised_tokens": supervised,
        "rows": sum(len(b) for b in batches),
        "flops": flops,
        "peak_rss_mb": _peak_rss_mb(),
        "dataset_rows": stats.rows,  # epoch estimate over the same file for both sides
    }


def child_legacy(args: argparse.Namespace) -> dict:
    """The seed's recipe: HF Trainer + PEFT, pad to max_length, loss on every position."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments

    from aldlab.files import read_jsonl
    from aldlab.train.data import tokenize_conversation
    from aldlab.train.model import load_model, load_tokenizer

    torch.set_num_threads(os.cpu_count() or 1)
    tok = load_tokenizer("embedded")
    rows = read_jsonl(args.data)
    texts, supervised = [], []
    for r in rows:
        texts.append(tok.apply_chat_template(r["messages"], tokenize=False))
        supervised.append(tokenize_conversation(tok, r["messages"]).n_supervised)
    enc = tok(texts, padding="max_length", truncation=True, max_length=args.max_length, add_special_tokens=False)
    labels = [[t if m else -100 for t, m in zip(ids, mask, strict=True)]
              for ids, mask in zip(enc["input_ids"], enc["attention_mask"], strict=True)]
    ds = Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels})

    model = load_model("embedded")
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.1,
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                             task_type="CAUSAL_LM"))
    targs = TrainingArguments(
        output_dir=str(Path(args.workdir) / "legacy_out"), per_device_train_batch_size=args.batch_size,
        max_steps=args.steps, learning_rate=2e-4, logging_steps=1, save_strategy="no", report_to=[],
        use_cpu=True, seed=42, disable_tqdm=True, dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=ds)
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    # The Trainer's sampler order is seeded; rows per step are batch_size, all padded to max_length.
    n_rows = args.steps * args.batch_size
    sup = sum(supervised) / len(supervised) * n_rows  # expected assistant tokens in those rows
    base = model.get_base_model()
    tokens = n_rows * args.max_length
    flops = _lm_flops(_nonembed_params(base), base.config.hidden_size, base.config.vocab_size, tokens, tokens)
    return {
        "train_seconds": wall,
        "wall_seconds": wall,
        "supervised_tokens": sup,
        "rows": n_rows,
        "flops": flops,
        "peak_rss_mb": _peak_rss_mb(),
        "dataset_rows": len(rows),
    }


def peak_matmul_flops(n: int = 2048, reps: int = 5) -> float:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0)


# --------------------------------------------------------------------------- driver


def run_child(kind: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--data", args.data, "--workdir", args.workdir,
           "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]
    print(f"running {kind} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        why = "killed (out of memory?)" if proc.returncode in (-9, 137) else f"exit code {proc.returncode}"
        raise SystemExit(f"{kind} failed: {why}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps per side")
    # Batch 2: the legacy recipe at batch 4 x 1024 was OOM-killed at 16.7 GB RSS on this
    # 24 GB machine ([4, 1024, 262144] fp32 logits are 4.3 GB, and the loss keeps copies).
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=1024, help="legacy pad length / aldlab max_seq_len")
    ap.add_argument("--rows", type=int, default=200, help="rows in the generated data set")
    ap.add_argument("--data", default=None, help="chat JSONL (default: generated from the shipped KB)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--child", choices=["aldlab", "legacy"], default=None)
    args = ap.parse_args()

    if args.child:
        result = child_aldlab(args) if args.child == "aldlab" else child_legacy(args)
        print(json.dumps(result))
        return

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="aldlab-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    args.workdir = str(workdir)
    if args.data is None:
        data = workdir / "bench_train.jsonl"
        data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in build_rows(args.rows)),
                        encoding="utf-8")
        args.data = str(data)

    peak = peak_matmul_flops()
    a = run_child("aldlab", args)
    b = run_child("legacy", args)
    peak_after = peak_matmul_flops()
    peak = max(peak, peak_after)

    def derived(r: dict) -> dict:
        tps = r["supervised_tokens"] / r["train_seconds"]
        epoch = r["train_seconds"] / r["rows"] * r["dataset_rows"]
        achieved = r["flops"] / r["train_seconds"]
        return {"tps": tps, "epoch": epoch, "rss": r["peak_rss_mb"], "flops": achieved, "mfu": achieved / peak}

    da, db = derived(a), derived(b)
    print(f"\nfine-tuning throughput: gemma-3-270m fp32 CPU ({os.cpu_count()} cores), LoRA r=16 q/k/v/o, "
          f"{args.steps} steps x batch {args.batch_size}, legacy padded to {args.max_length}")
    print(f"plain fp32 matmul (2048^3) in this run: {peak / 1e9:.1f} GFLOP/s\n")
    print(f"{'metric':<34}{'aldlab':>14}{'legacy':>14}{'ratio':>10}")
    rows = [
        ("supervised tokens/s", da["tps"], db["tps"], "{:.1f}", da["tps"] / db["tps"]),
        ("wall time per epoch (s, est.)", da["epoch"], db["epoch"], "{:.0f}", da["epoch"] / db["epoch"]),
        ("peak RSS (MB)", da["rss"], db["rss"], "{:.0f}", da["rss"] / db["rss"]),
        ("achieved matmul GFLOP/s", da["flops"] / 1e9, db["flops"] / 1e9, "{:.1f}", da["flops"] / db["flops"]),
        ("MFU vs plain matmul", da["mfu"] * 100, db["mfu"] * 100, "{:.1f}%", da["mfu"] / db["mfu"]),
    ]
    for name, x, y, fmt, ratio in rows:
        print(f"{name:<34}{fmt.format(x):>14}{fmt.format(y):>14}{ratio:>9.2f}x")
    print(f"\ntargets: tokens/s ratio >= 3x -> {'OK' if da['tps'] / db['tps'] >= 3 else 'MISS'}; "
          f"peak memory ratio <= 0.6x -> {'OK' if da['rss'] / db['rss'] <= 0.6 else 'MISS'}")
    print(json.dumps({"aldlab": a, "legacy": b, "peak_matmul_flops": peak}), file=sys.stderr)


if __name__ == "__main__":
    main()
