"""Fine-tuning throughput: aldlab vs TRL SFTTrainer vs the legacy recipe, same rows, one run.

    pip install -e ".[bench]"   # TRL and datasets: the baselines
    nice -n 19 python bench/train_throughput.py [--warmup 2] [--steps 8] [--batch-size 2]

(a) aldlab: `aldlab.train.trainer.train` — LM head on supervised positions only, dynamic
    padding, length-grouped batches (longest first).
(b) TRL SFTTrainer: the baseline a user would pick — same model object, same LoRA, the same
    token ids and answer masks (pre-tokenised by aldlab, `completion_mask` +
    `completion_only_loss=True`), dynamic padding (TRL's collator), TRL's LM head, its default
    gradient checkpointing; `trl-nogc`, TRL without gradient checkpointing. Both train the
    *same rows in every step* as aldlab: the data set is laid out in aldlab's batch order
    (`aldlab_batches`) and read with a sequential sampler, so step k of every side sees the
    same rows (an earlier version let TRL draw its own random batches, a different workload per
    step). The table says whether the per-step supervised token counts really matched.
    `trl-grouped` (HF's own length-grouped sampler, its own rows) is still available by name.
    `aldlab-gc` is aldlab with gradient checkpointing, so each trade has a matched pair:
    aldlab-gc vs trl / trl-grouped (both recompute activations), aldlab vs trl-nogc (neither).
(c) legacy (the seed's finetune_llama.py): HF Trainer + PEFT, every row padded to
    max_length, logits and loss over every position.

Every side runs in its own subprocess (so peak RSS is its own) on the embedded
gemma-3-270m, LoRA r=16 / alpha 32 / dropout 0.1 on q/k/v/o, fp32 on CPU, batch B, for
warmup + steps + 1 optimizer steps. The measurement window is the same for every side: from
the end of optimizer step `warmup` to the end of step `warmup + steps` (the extra last step
keeps end-of-run work such as a final eval out of it). Tokens are counted the same way for
every side from the batches those steps trained on: supervised tokens = labels[:, 1:] !=
-100, with the answer tokens of each row for legacy (its loss also covers the prompt).
Printed: supervised tokens/s, peak RSS, achieved matmul FLOP/s against a plain 2048^3 fp32
matmul measured in this run (MFU), and the aldlab / TRL and aldlab / legacy ratios, all
labelled with the device they ran on.

What this race does not show (issue 24): on CPU, TRL 1.16 sends every position through the
LM head, on a GPU only the supervised ones. Measured with TRL patched to its GPU behaviour
(kernels unchanged) and identical batches, aldlab was 0.96x (neither checkpointing) and 0.86x
(both checkpointing) of TRL's tokens/s: the CPU ratios below are mostly that one difference,
not a faster loop. That patched side is not part of this script (TRL is an optional extra,
and the patch follows TRL's private code).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

    from aldlab.llm.model import resolve_model_path

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(resolve_model_path("embedded")))


def _nonembed_params(model) -> int:
    emb = model.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.parameters()) - emb


def _window(ends: list[float], tokens: list[int], padded: list[int], warmup: int, steps: int) -> dict:
    """Seconds, supervised and padded tokens of steps warmup+1 .. warmup+steps (1-based)."""
    if len(ends) < warmup + steps or len(tokens) < warmup + steps:
        raise SystemExit(f"only {len(ends)} steps timed, {len(tokens)} batches counted")
    return {
        "window_seconds": ends[warmup + steps - 1] - ends[warmup - 1] if warmup else ends[steps - 1],
        "supervised_tokens": sum(tokens[warmup : warmup + steps]),
        "padded_tokens": sum(padded[warmup : warmup + steps]),
    }


def _count(batch: dict) -> tuple[int, int]:
    return int((batch["labels"][:, 1:] != -100).sum()), int(batch["input_ids"].numel())


def child_aldlab_gc(args: argparse.Namespace) -> dict:
    """aldlab with gradient checkpointing: the memory/compute trade TRL makes by default."""
    return child_aldlab(args, gradient_checkpointing=True)


def child_aldlab(args: argparse.Namespace, *, gradient_checkpointing: bool = False) -> dict:
    from aldlab.train.config import TrainConfig
    from aldlab.train.trainer import train

    total = args.warmup + args.steps + 1
    cfg = TrainConfig(
        # eval_file = the training file (1 row): without it aldlab holds out 5% of the rows and
        # would train on other rows than TRL.
        model_name=args.model, train_file=args.data, eval_file=args.data, generation_check=0,
        output_dir=str(Path(args.workdir) / "aldlab_out"),
        max_steps=total, batch_size=args.batch_size, max_seq_len=args.max_length, eval_steps=10**6,
        max_eval_examples=1, logging_steps=10**6, save_steps=10**6, save_inference_only=True, learning_rate=2e-4,
        lora_r=16, lora_alpha=32, lora_dropout=0.1, allow_skipping_long_rows=True,
        gradient_checkpointing=gradient_checkpointing,
    )
    ends: list[float] = []
    tokens: list[int] = []
    padded: list[int] = []

    def on_step(step: int, log: dict) -> None:
        ends.append(time.perf_counter())
        tokens.append(log["tokens"])
        padded.append(log["padded_tokens"])

    train(cfg, progress=False, on_step=on_step)
    return {**_window(ends, tokens, padded, args.warmup, args.steps), "head_rows": "supervised",
            "peak_rss_mb": _peak_rss_mb(), "step_tokens": tokens[: args.warmup + args.steps], "device": _device()}


def _tokenised_rows(path: str, max_length: int, model: str) -> list[dict]:
    """aldlab's token ids and answer masks of the rows aldlab trains on, in its order."""
    from aldlab.llm.model import load_tokenizer
    from aldlab.train.data import select_examples, tokenize_file

    tok = load_tokenizer(model)
    examples, _ = select_examples(tokenize_file(path, tok), max_length, allow_skipping_long_rows=True)
    return [{"input_ids": ex.input_ids, "completion_mask": [int(x != -100) for x in ex.labels]} for ex in examples]


def aldlab_batches(rows: list[dict], batch_size: int, seed: int = 42) -> list[list[int]]:
    """The row indices of aldlab's optimizer steps in epoch 0 (TrainConfig's seed, length-grouped),
    computed by the trainer's own batching function."""
    from aldlab.train.data import length_grouped_batches

    return length_grouped_batches([len(r["input_ids"]) for r in rows], batch_size, seed, 0)


def in_aldlab_order(rows: list[dict], batch_size: int) -> list[dict]:
    """The rows laid out so that a sequential sampler gives TRL aldlab's batches, step by step."""
    return [rows[i] for batch in aldlab_batches(rows, batch_size) for i in batch]


def _device() -> str:
    import torch

    return f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else f"cpu ({platform.machine()})"


def _timing_callback(ends: list[float]):
    from transformers import TrainerCallback

    class StepEnds(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            ends.append(time.perf_counter())

    return StepEnds()


def _counting(collator, tokens: list[int], padded: list[int], supervised_of=None):  # noqa: ANN001, ANN202
    """Wrap a data collator: the i-th batch it builds is optimizer step i (accumulation 1)."""

    def collate(features):  # noqa: ANN001, ANN202
        batch = collator(features)
        sup, pad = _count(batch)
        tokens.append(supervised_of(features) if supervised_of else sup)
        padded.append(pad)
        return batch

    return collate


def _lora():  # noqa: ANN202
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.1, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                      task_type="CAUSAL_LM")


def child_trl_grouped(args: argparse.Namespace) -> dict:
    """TRL as `child_trl`, with HF's length-grouped sampler (`group_by_length=True`).

    HF puts the longest batch first, as aldlab does, so both sides meet the same longest
    batch in step 1 and their peak RSS is measured over comparable batches; the default
    random sampler may never draw the longest rows in a short run, which flatters its peak.
    """
    return child_trl(args, group_by_length=True)


def child_trl_nogc(args: argparse.Namespace) -> dict:
    """TRL without its default gradient checkpointing: the same trade as aldlab's default."""
    return child_trl(args, gradient_checkpointing=False)


def child_trl(args: argparse.Namespace, *, group_by_length: bool = False, gradient_checkpointing: bool = True) -> dict:
    """TRL SFTTrainer with completion-only loss on the same pre-tokenised rows.

    TRL's SFTConfig turns gradient checkpointing on by default (it recomputes activations
    in the backward pass: less memory, more time); `trl` keeps that default.
    """
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from aldlab.llm.model import load_model, load_tokenizer

    torch.set_num_threads(os.cpu_count() or 1)
    tok = load_tokenizer(args.model)
    rows = _tokenised_rows(args.data, args.max_length, args.model)
    ds = Dataset.from_list(rows if group_by_length else in_aldlab_order(rows, args.batch_size))
    model = load_model(args.model)
    model.config.use_cache = False
    sft = SFTConfig(
        output_dir=str(Path(args.workdir) / "trl_out"), per_device_train_batch_size=args.batch_size,
        max_steps=args.warmup + args.steps + 1, learning_rate=2e-4, logging_steps=10**6, save_strategy="no",
        report_to=[], use_cpu=True, seed=42, disable_tqdm=True, dataloader_num_workers=0,
        completion_only_loss=True, max_length=args.max_length, padding_free=False,
        train_sampling_strategy="group_by_length" if group_by_length else "sequential",
        gradient_checkpointing=gradient_checkpointing,
    )
    ends: list[float] = []
    tokens: list[int] = []
    padded: list[int] = []
    trainer = SFTTrainer(model=model, args=sft, train_dataset=ds, processing_class=tok, peft_config=_lora(),
                         callbacks=[_timing_callback(ends)])
    trainer.data_collator = _counting(trainer.data_collator, tokens, padded)
    trainer.train()
    return {**_window(ends, tokens, padded, args.warmup, args.steps), "head_rows": "supervised",
            "peak_rss_mb": _peak_rss_mb(), "step_tokens": tokens[: args.warmup + args.steps], "device": _device()}


def child_legacy(args: argparse.Namespace) -> dict:
    """The seed's recipe: HF Trainer + PEFT, pad to max_length, loss on every position."""
    import torch
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import Trainer, TrainingArguments, default_data_collator

    from aldlab.llm.model import load_model

    torch.set_num_threads(os.cpu_count() or 1)
    rows = _tokenised_rows(args.data, args.max_length, args.model)
    pad = args.max_length
    ds = Dataset.from_dict({
        "input_ids": [r["input_ids"] + [0] * (pad - len(r["input_ids"])) for r in rows],
        "attention_mask": [[1] * len(r["input_ids"]) + [0] * (pad - len(r["input_ids"])) for r in rows],
        "labels": [r["input_ids"] + [-100] * (pad - len(r["input_ids"])) for r in rows],
        "answer_tokens": [sum(r["completion_mask"][1:]) for r in rows],
    })
    model = load_model(args.model)
    model.config.use_cache = False
    model = get_peft_model(model, _lora())
    targs = TrainingArguments(
        output_dir=str(Path(args.workdir) / "legacy_out"), per_device_train_batch_size=args.batch_size,
        max_steps=args.warmup + args.steps + 1, learning_rate=2e-4, logging_steps=10**6, save_strategy="no",
        report_to=[], use_cpu=True, seed=42, disable_tqdm=True, dataloader_num_workers=0,
        remove_unused_columns=False,
    )
    ends: list[float] = []
    tokens: list[int] = []
    padded: list[int] = []

    def collate(features):  # noqa: ANN001, ANN202
        return default_data_collator([{k: v for k, v in f.items() if k != "answer_tokens"} for f in features])

    answer_tokens = lambda features: sum(f["answer_tokens"] for f in features)  # noqa: E731
    trainer = Trainer(model=model, args=targs, train_dataset=ds, callbacks=[_timing_callback(ends)],
                      data_collator=_counting(collate, tokens, padded, answer_tokens))
    trainer.train()
    return {**_window(ends, tokens, padded, args.warmup, args.steps), "head_rows": "padded",
            "peak_rss_mb": _peak_rss_mb()}


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
           "--warmup", str(args.warmup), "--steps", str(args.steps), "--batch-size", str(args.batch_size),
           "--max-length", str(args.max_length), "--model", args.model]
    print(f"running {kind} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        why = "killed (out of memory?)" if proc.returncode in (-9, 137) else f"exit code {proc.returncode}"
        raise SystemExit(f"{kind} failed: {why}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {kind}: {time.perf_counter() - t0:.0f} s in all", file=sys.stderr, flush=True)
    return result


def _flops(r: dict) -> float:
    model = _meta_model()
    head_rows = r["supervised_tokens"] if r["head_rows"] == "supervised" else r["padded_tokens"]
    return _lm_flops(_nonembed_params(model), model.config.hidden_size, model.config.vocab_size,
                     r["padded_tokens"], head_rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warmup", type=int, default=2, help="optimizer steps before the measurement window")
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps measured per side")
    # Batch 2: the legacy recipe at batch 4 x 1024 was OOM-killed at 16.7 GB RSS on this
    # 24 GB machine ([4, 1024, 262144] fp32 logits are 4.3 GB, and the loss keeps copies).
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=1024, help="legacy pad length / longest row kept")
    ap.add_argument("--rows", type=int, default=200, help="rows in the generated data set")
    ap.add_argument("--data", default=None, help="chat JSONL (default: generated from the shipped KB)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--model", default="embedded", help="model for every side (a tiny dir for a quick check)")
    ap.add_argument("--sides", default="aldlab,aldlab-gc,trl,trl-nogc,legacy",
                    help="comma-separated subset, in run order (also: trl-grouped)")
    ap.add_argument("--child", choices=list(CHILDREN), default=None)
    args = ap.parse_args()

    if args.child:
        print(json.dumps(CHILDREN[args.child](args)))
        return

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="aldlab-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    args.workdir = str(workdir)
    if args.data is None:
        data = workdir / "bench_train.jsonl"
        data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in build_rows(args.rows)),
                        encoding="utf-8")
        args.data = str(data)

    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    peak = peak_matmul_flops()
    results = {side: run_child(side, args) for side in sides}
    peak = max(peak, peak_matmul_flops())

    derived = {}
    for side, r in results.items():
        tps = r["supervised_tokens"] / r["window_seconds"]
        achieved = _flops(r) / r["window_seconds"]
        derived[side] = {"tps": tps, "rss": r["peak_rss_mb"], "flops": achieved / 1e9, "mfu": achieved / peak * 100,
                         "sec": r["window_seconds"], "sup": r["supervised_tokens"], "pad": r["padded_tokens"]}

    devices = sorted({r.get("device", "cpu") for r in results.values()})
    print(f"\nfine-tuning throughput, {time.strftime('%Y-%m-%d')}, device: {', '.join(devices)}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"gemma-3-270m fp32, LoRA r=16 q/k/v/o, batch {args.batch_size}, window: steps {args.warmup + 1}-"
          f"{args.warmup + args.steps}; plain fp32 matmul (2048^3) in this run: {peak / 1e9:.1f} GFLOP/s\n")
    cols = [("supervised tokens/s", "tps", "{:.1f}"), ("peak RSS (MB)", "rss", "{:.0f}"),
            ("matmul GFLOP/s", "flops", "{:.1f}"), ("MFU %", "mfu", "{:.1f}"), ("window s", "sec", "{:.1f}"),
            ("supervised tok", "sup", "{:d}"), ("decoder positions", "pad", "{:d}")]
    print(f"{'side':<12}" + "".join(f"{name:>21}" for name, _, _ in cols))
    for side, d in derived.items():
        print(f"{side:<12}" + "".join(f"{fmt.format(d[key]):>21}" for _, key, fmt in cols))
    if "aldlab" in results:
        for other, r in results.items():
            if other != "aldlab" and "step_tokens" in r:
                same = r["step_tokens"] == results["aldlab"]["step_tokens"]
                print(f"same rows per step, aldlab vs {other}: {'yes' if same else 'NO (per-step supervised tokens differ)'}")
    if "aldlab" in derived:
        for other in [s for s in derived if s != "aldlab"]:
            a, b = derived["aldlab"], derived[other]
            print(f"aldlab / {other}: tokens/s {a['tps'] / b['tps']:.2f}x, peak RSS {a['rss'] / b['rss']:.2f}x")
    print(f"\ntarget: >= 1.5x TRL's supervised tokens/s at <= 1.0x its peak RSS (measured on {', '.join(devices)}; "
          "on CPU TRL runs its head over every position, on a GPU not: see the module docstring)")
    pairs = (("aldlab", "trl", "each side's default"), ("aldlab-gc", "trl", "both recompute activations"),
             ("aldlab", "trl-nogc", "neither recomputes"))
    for mine, theirs, why in pairs:
        if mine in derived and theirs in derived:
            a, b = derived[mine], derived[theirs]
            speed, memory = a["tps"] / b["tps"], a["rss"] / b["rss"]
            verdict = "OK" if speed >= 1.5 and memory <= 1.0 else "MISS"
            print(f"  {mine} / {theirs} ({why}): tokens/s {speed:.2f}x, peak RSS {memory:.2f}x  {verdict}")
    print(json.dumps({"results": results, "peak_matmul_flops": peak}), file=sys.stderr)


CHILDREN = {"aldlab": child_aldlab, "aldlab-gc": child_aldlab_gc, "trl": child_trl, "trl-grouped": child_trl_grouped,
            "trl-nogc": child_trl_nogc, "legacy": child_legacy}


if __name__ == "__main__":
    main()
