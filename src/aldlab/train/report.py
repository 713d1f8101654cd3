"""What a run reports beside the loop: the console (log lines, progress bar), the inputs
record, `train_log.jsonl`, `training_meta.json` and `loss.png`.

Layout of `output_dir` after a run:
  adapter_model.safetensors, adapter_config.json, tokenizer files   (the adapter)
  training_meta.json   config, data hashes, versions, history, final metrics, best step,
                       generation check (answers to a few eval questions, stop rate)
  train_log.jsonl      one line per logging or eval step, written as the run goes
  loss.png             train/eval loss curves
  best/                the adapter of the lowest eval loss (see `checkpoint.py`)
  checkpoint-N/        see `checkpoint.py`
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aldlab.files import sha256_file
from aldlab.train.data import DatasetStats, Example
from aldlab.train.state import LoopState, Run, TrainResult

# --------------------------------------------------------------------------- console


def log(acc: Any, message: str, bar: TrainProgress | None = None) -> None:
    """A line on stderr from rank 0 only (above the live bar when there is one)."""
    if not acc.is_main_process:
        return
    if bar is not None and bar.console is not None:
        bar.console.print(message)
        return
    from rich.console import Console

    Console(stderr=True).print(message)


class TrainProgress:
    """The shared progress bar (`aldlab.progress`) with loss, eval loss, LR and supervised tokens/s."""

    def __init__(self, enabled: bool, total: int, done: int, log_every: int = 5) -> None:
        self.console = None
        self._progress = None
        self._total, self._start, self._start_step, self._log_every = total, time.perf_counter(), done, log_every
        if not enabled:
            return
        from rich.console import Console

        from aldlab.progress import progress_bar

        self.console = Console(stderr=True)
        self._progress = progress_bar(
            "loss {task.fields[loss]}", "eval {task.fields[eval]}", "lr {task.fields[lr]}", "{task.fields[tps]} tok/s",
            console=self.console,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            "[bold]학습 / train", total=total, completed=done, loss="-", eval="-", tps="-", lr="-"
        )

    def update(self, step: int, loss: float, tps: float, eval_loss: float | None, lr: float = 0.0) -> None:
        if self._progress is None:
            return
        fields = {"loss": f"{loss:.3f}", "tps": f"{tps:.0f}", "lr": f"{lr:.2e}"}
        if eval_loss is not None:
            fields["eval"] = f"{eval_loss:.3f}"
        self._progress.update(self._task, completed=step, **fields)
        if self.console is not None and not self.console.is_terminal and step % self._log_every == 0:
            # No live bar in logs/pipes: print a plain line instead.
            rate = (time.perf_counter() - self._start) / max(1, step - self._start_step)
            eta = rate * (self._total - step)
            self.console.print(
                f"step {step}/{self._total} loss {loss:.4f} lr {lr:.2e} {tps:.0f} tok/s ETA {eta / 60:.1f} min"
            )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


# --------------------------------------------------------------------------- train_log.jsonl

TRAIN_LOG = "train_log.jsonl"


class TrainLog:
    """`train_log.jsonl`: one JSON line per logging step (and per evaluation), flushed at once.

    What TRL/HF users read with `tail -f` or pandas: step, epoch (fractional), loss (mean over
    the logging window), lr, tokens_per_s (supervised tokens over the window's step time),
    eval_loss when evaluated, cuda_peak_memory_gb on a GPU. training_meta.json's history has
    every step too, but only once the run ends.

    A resumed run drops the lines after its checkpoint's step (the killed run logged them,
    the resumed one logs them again), so each step appears once.
    """

    def __init__(self, path: Path, enabled: bool, resume_step: int | None) -> None:
        self.path = path
        self._fh = None
        self._tokens, self._seconds = 0, 0.0
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = _lines_up_to(path, resume_step) if resume_step is not None else []
        from aldlab.files import atomic_write_text

        atomic_write_text(path, "".join(kept))
        self._fh = path.open("a", encoding="utf-8")

    def add_step(self, tokens: int, seconds: float) -> None:
        """Count one optimizer step into the current logging window."""
        self._tokens += tokens
        self._seconds += seconds

    def write(self, record: dict[str, Any]) -> None:
        """Append one line; a line with a train loss closes the tokens/s window."""
        if "loss" in record:
            record["tokens_per_s"] = round(self._tokens / max(1e-9, self._seconds), 2)
            self._tokens, self._seconds = 0, 0.0
        if self._fh is None:
            return
        import json

        peak = _cuda_peak_memory_gb()
        if peak is not None:
            record["cuda_peak_memory_gb"] = peak
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _lines_up_to(path: Path, step: int) -> list[str]:
    """The lines of an earlier run's log whose step is at most `step` (unreadable lines go)."""
    import json

    if not path.exists():
        return []
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if int(json.loads(line)["step"]) <= step:
                kept.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by the kill
    return kept


def _cuda_peak_memory_gb() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 3)


# --------------------------------------------------------------------------- metadata


def _style_table(stats: DatasetStats) -> dict[str, dict[str, int]]:
    """Per style: rows read, rows that fit, rows too long, rows used (after the cap)."""
    return {st: asdict(c) for st, c in sorted(stats.by_style.items())}


def _style_counts(examples: list[Example]) -> dict[str, dict[str, int]]:
    counts: dict[str, int] = {}
    for e in examples:
        counts[e.style] = counts.get(e.style, 0) + 1
    return {st: {"selected": n} for st, n in sorted(counts.items())}


def data_inputs(
    train_path: Path,
    eval_path: Path | None,
    train_stats: DatasetStats,
    eval_stats: DatasetStats | None,
    train_examples: list[Example],
    eval_examples: list[Example],
    max_seq_len: int,
) -> dict[str, Any]:
    """The data a run trained on: files and hashes, rows per style, the sequence limit."""
    return {
        "train_file": str(train_path),
        "train_sha256": sha256_file(train_path),
        "eval_file": str(eval_path) if eval_path else None,
        "eval_sha256": sha256_file(eval_path) if eval_path else None,
        "eval_source": "eval_file" if eval_path else "held-out 5% of train_file",
        "train_rows": train_stats.rows,
        "train_examples": len(train_examples),
        "train_skipped_too_long": train_stats.too_long,
        "train_styles": _style_table(train_stats),
        "eval_examples": len(eval_examples),
        "eval_skipped_too_long": eval_stats.too_long if eval_stats else 0,
        "eval_styles": _style_table(eval_stats) if eval_stats else _style_counts(eval_examples),
        "max_seq_len": max_seq_len,
    }


def train_result(output_dir: Path, state: LoopState) -> TrainResult:
    """First/final losses, steps and supervised tokens/s from the loop's history."""
    evals = [h["eval_loss"] for h in state.history if "eval_loss" in h]
    trains = [h["train_loss"] for h in state.history if "train_loss" in h]
    return TrainResult(
        output_dir=str(output_dir),
        final_train_loss=trains[-1] if trains else None,
        final_eval_loss=evals[-1] if evals else None,
        first_eval_loss=evals[0] if evals else None,
        steps=state.global_step,
        seconds=round(state.train_seconds, 2),
        supervised_tokens_per_s=round(state.supervised_tokens / max(1e-9, state.train_seconds), 2),
        best_step=state.best_step,
        best_eval_loss=state.best_eval_loss,
    )


def training_meta(
    run: Run, state: LoopState, result: TrainResult, *, best: dict[str, Any] | None = None,
    generation_check: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """training_meta.json: config, inputs, versions, stop ids, final metrics, best adapter,
    generation check, full history."""
    from aldlab.llm.chat_template import end_of_turn_token_ids
    from aldlab.manifest import package_versions

    return {
        "kind": "aldlab.train",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": run.config.to_dict(),
        "inputs": run.meta_inputs,
        "versions": package_versions(),
        "device": str(run.accelerator.device),
        "end_of_turn_token_ids": end_of_turn_token_ids(run.tokenizer),
        "final": asdict(result),
        "best": best,
        "generation_check": generation_check,
        "history": state.history,
    }


def plot_losses(history: list[dict[str, Any]], path: Path) -> None:
    """Train and eval loss curves as a PNG (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train_pts = [(h["step"], h["train_loss"]) for h in history if "train_loss" in h]
    eval_pts = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train_pts:
        ax.plot(*zip(*train_pts, strict=True), label="train loss", color="tab:blue")
    if eval_pts:
        ax.plot(*zip(*eval_pts, strict=True), label="eval loss", color="tab:orange", marker="o")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per supervised token")
    ax.set_title("aldlab train: loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
