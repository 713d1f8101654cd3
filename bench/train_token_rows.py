"""LM-head loss with PEFT trainable tokens (cpu-demo's `<end_of_turn>` row): chunked vs the head's own forward.

    nice -n 19 python bench/train_token_rows.py [--warmup 1] [--steps 3] \\
        [--data runs/cpu-demo/data/train.jsonl]

Issue 24: PEFT wraps Gemma's tied LM head to train the `<end_of_turn>` row, and the loss used
the chunked head only for a plain Linear, so the shipped recipe fell back to the wrapper's
forward: a copy of the whole 262k x 640 weight with the row swapped in (PEFT's
`get_merged_weights`), then the [supervised x 262k] logits and the cross-entropy's copies.

Both sides run aldlab's trainer on the embedded gemma-3-270m with the cpu-demo preset's
`train:` section (LoRA r=16 on every linear layer, trainable_tokens, gradient checkpointing,
batch 4), same rows, same seed, each in its own subprocess:

  full-logits  the pre-fix path: PEFT's wrappers run their own forward (baseline)
  chunked      train/loss.py: base weight in chunks, the trained rows swapped into each chunk;
               the input embedding looked up in the base table, trained rows put in place
  head-only    (not run by default) chunked head, PEFT's own input embedding

Printed per side: supervised tokens/s over steps warmup+1 .. warmup+steps (the run has one
more step, whose end-of-run eval stays out of the window), the peak RSS of the training steps
alone (VmHWM reset before each step through /proc/self/clear_refs) and of the whole command,
and the first and last step losses (the same arithmetic: they should agree to ~1e-5).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIDES = ("full-logits", "chunked", "head-only")


def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux >= 4.0: resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _use_peft_forward(head: bool) -> None:
    """The loss as before issue 24: PEFT's wrapper embeds; with `head`, only a plain Linear head is chunked."""
    from aldlab.train import loss

    loss.embed_with_trained_rows = lambda base, input_ids: None
    if head:
        loss.chunkable_head = lambda head, hidden_size: (
            (head.weight, None, None) if loss._plain_head(head, hidden_size) else None
        )


def child(args: argparse.Namespace) -> dict:
    from aldlab.config import resolve_config
    from aldlab.train import trainer
    from aldlab.train.config import TrainConfig

    if args.child != "chunked":
        _use_peft_forward(head=args.child == "full-logits")
    step_peaks: list[float] = []
    between: list[float] = []  # peaks outside the steps (load, setup, evals): resetting VmHWM loses them otherwise
    real_step = trainer._train_step

    def measured_step(run, micro):  # noqa: ANN001, ANN202
        between.append(_vm_hwm_mb())
        reset = _reset_hwm()
        stats = real_step(run, micro)
        step_peaks.append(_vm_hwm_mb() if reset else float("nan"))
        return stats

    trainer._train_step = measured_step
    cfg = resolve_config(TrainConfig, "train", preset="cpu-demo", overrides={
        "train_file": args.data, "output_dir": str(Path(args.workdir) / args.child), "model_name": args.model,
        "max_steps": args.warmup + args.steps + 1, "max_eval_examples": 8, "eval_steps": 10**6,
        "save_steps": 10**6, "save_inference_only": True, "generation_check": 0,
    })
    ends: list[float] = []
    tokens: list[int] = []
    losses: list[float] = []

    def on_step(step: int, log: dict) -> None:
        ends.append(time.perf_counter())
        tokens.append(log["tokens"])
        losses.append(log["loss"])

    trainer.train(cfg, progress=False, on_step=on_step)
    w, n = args.warmup, args.steps
    return {
        "window_seconds": ends[w + n - 1] - ends[w - 1] if w else ends[n - 1],
        "supervised_tokens": sum(tokens[w : w + n]),
        "step_tokens": tokens, "losses": losses, "step_peak_rss_mb": step_peaks,
        # not ru_maxrss: after a VmHWM reset it only reports the peak since the reset
        "peak_rss_mb": max([*between, *step_peaks, _vm_hwm_mb()]),
        "trainable_tokens": cfg.trainable_tokens, "batch_size": cfg.batch_size,
    }


def _generated_rows(path: Path, n: int) -> None:
    """bench/train_throughput.py's KB chat rows (closed-book, RAG, refusals)."""
    spec = importlib.util.spec_from_file_location("train_throughput", REPO / "bench" / "train_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in module.build_rows(n)), encoding="utf-8")


def _tps(r: dict) -> float:
    return r["supervised_tokens"] / r["window_seconds"]


def run_child(side: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", side, "--data", args.data, "--workdir", args.workdir,
           "--warmup", str(args.warmup), "--steps", str(args.steps), "--model", args.model]
    print(f"running {side} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        why = "killed (out of memory?)" if proc.returncode in (-9, 137) else f"exit code {proc.returncode}"
        raise SystemExit(f"{side} failed: {why}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warmup", type=int, default=1, help="optimizer steps before the measurement window")
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps measured per side")
    ap.add_argument("--data", default=None, help="chat JSONL (default: 200 rows generated from the shipped KB)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--sides", default="full-logits,chunked",
                    help=f"comma-separated, in run order, of {', '.join(SIDES)}")
    ap.add_argument("--child", choices=SIDES, default=None)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="aldlab-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    args.workdir = str(workdir)
    if args.data is None:
        args.data = str(workdir / "bench_train.jsonl")
        _generated_rows(Path(args.data), 200)
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    results = {side: run_child(side, args) for side in sides}

    first = next(iter(results.values()))
    print(f"\ntrainable-token head loss, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at the end; cpu-demo train preset (batch {first['batch_size']}, "
          f"trainable_tokens {first['trainable_tokens']}), "
          f"window: steps {args.warmup + 1}-{args.warmup + args.steps}\n")
    cols = ("supervised tokens/s", "step peak RSS (MB)", "command peak RSS (MB)", "first loss", "last loss")
    print(f"{'side':<12}" + "".join(f"{c:>23}" for c in cols))
    for side, r in results.items():
        values = (_tps(r), max(r["step_peak_rss_mb"]), r["peak_rss_mb"], r["losses"][0], r["losses"][-1])
        print(f"{side:<12}" + "".join(f"{v:>23.1f}" if i < 3 else f"{v:>23.5f}" for i, v in enumerate(values)))
    base = results.get("full-logits")
    for side, r in results.items():
        if base is None or side == "full-logits":
            continue
        print(f"{side} / full-logits: tokens/s {_tps(r) / _tps(base):.2f}x, "
              f"step peak RSS {max(r['step_peak_rss_mb']) / max(base['step_peak_rss_mb']):.2f}x, "
              f"command peak RSS {r['peak_rss_mb'] / base['peak_rss_mb']:.2f}x; same rows per step: "
              f"{'yes' if r['step_tokens'] == base['step_tokens'] else 'NO'}; largest step-loss difference "
              f"{max(abs(x - y) for x, y in zip(r['losses'], base['losses'], strict=True)):.2e}")
    print(json.dumps(results), file=sys.stderr)


if __name__ == "__main__":
    main()
