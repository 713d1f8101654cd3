"""Checkpoints: `checkpoint-N/` holds what a resumed run needs to continue bit for bit.

    adapter_model.safetensors, adapter_config.json   the LoRA weights
    optimizer.pt, scheduler.pt                       AdamW moments, LR schedule position
    rng_state_<rank>.pt                              Python, NumPy, torch (and CUDA) RNG
    trainer_state.json                               LoopState + the config and data it ran on
    sharded_state/                                   DeepSpeed/FSDP: one shard per rank instead

A checkpoint is built in a temp directory and renamed, so a killed run never leaves a half
one; a resume with other settings or other data is refused (`check_resume_config`).

`best/` beside them holds the adapter of the lowest eval loss so far (adapter, tokenizer,
best.json with its step and loss): an inference directory like the final output, never
pruned by `save_total_limit`, written the same atomic way.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aldlab.errors import UserError
from aldlab.files import atomic_write_json
from aldlab.train.distributed import is_deepspeed, is_sharded
from aldlab.train.state import LoopState, Run

CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"
BEST_DIR = "best"
BEST_FILE = "best.json"
SHARDED_DIR = "sharded_state"  # accelerate save_state of DeepSpeed/FSDP runs, one shard per rank

#: Config keys that may change between a run and its resume: where and how often to write
#: and log, the eval cadence and size, CPU threads. Every other key changes the trajectory.
RESUME_MAY_CHANGE = frozenset({
    "output_dir", "resume", "save_steps", "save_total_limit", "logging_steps", "eval_steps",
    "max_eval_examples", "num_threads", "save_inference_only", "allow_skipping_long_rows",
    "load_best_model_at_end", "generation_check",
})
#: Inputs recorded in a checkpoint that must be the same on resume (the data and its shape).
RESUME_INPUTS = ("train_sha256", "eval_sha256", "max_seq_len", "train_examples", "world_size")


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint-N directory (one with a trainer state), or None."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = []
    for p in root.glob(f"{CHECKPOINT_PREFIX}*"):
        suffix = p.name[len(CHECKPOINT_PREFIX) :]
        if p.is_dir() and suffix.isdigit() and (p / STATE_FILE).exists():
            found.append((int(suffix), p))
    return max(found)[1] if found else None


def remove_checkpoints(out: Path, *, unfinished: bool = False) -> None:
    """Delete every checkpoint-N (and with `unfinished`, the temp dirs of interrupted saves)."""
    for p in out.glob(f"{CHECKPOINT_PREFIX}*"):
        shutil.rmtree(p, ignore_errors=True)
    if unfinished:
        for p in out.glob(f".{CHECKPOINT_PREFIX}*"):
            shutil.rmtree(p, ignore_errors=True)


def adapter_state_dict(run: Run) -> dict[str, Any] | None:
    """Under ZeRO/FSDP the parameters may be sharded: gather them (collective) before saving."""
    if not is_sharded(run.accelerator):
        return None
    full = run.accelerator.get_state_dict(run.model)
    return {k.removeprefix("model."): v for k, v in full.items()}


def save_best_adapter(run: Run, state: LoopState) -> Path:
    """Write best/ (adapter, tokenizer, best.json) atomically; collective under ZeRO/FSDP."""
    acc, out = run.accelerator, run.config.output_path
    final = out / BEST_DIR
    gathered = adapter_state_dict(run)
    if acc.is_main_process:
        tmp, old = out / f".{BEST_DIR}.tmp", out / f".{BEST_DIR}.old"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        run.peft_model.save_pretrained(str(tmp), state_dict=gathered)
        run.tokenizer.save_pretrained(str(tmp))
        atomic_write_json(tmp / BEST_FILE, {"step": state.best_step, "eval_loss": state.best_eval_loss})
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
    return final


def load_best_adapter(run: Run) -> bool:
    """Put best/'s LoRA weights into the model (`load_best_model_at_end`); False when sharded.

    Under ZeRO-3/FSDP the parameters are partitions: the caller copies best/'s files instead.
    """
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    if is_sharded(run.accelerator):
        return False
    weights = run.config.output_path / BEST_DIR / "adapter_model.safetensors"
    set_peft_model_state_dict(run.peft_model, load_file(str(weights), device=str(run.accelerator.device)))
    return True


def remove_best_adapter(out: Path) -> None:
    """A fresh run must not leave an older run's best/ next to its own adapter."""
    for name in (BEST_DIR, f".{BEST_DIR}.tmp", f".{BEST_DIR}.old"):
        shutil.rmtree(out / name, ignore_errors=True)


def _rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run: Run, state: LoopState) -> Path:
    """Write checkpoint-N atomically: built in a temp dir by all ranks, renamed by rank 0."""
    import torch

    acc, out = run.accelerator, run.config.output_path
    final = out / f"{CHECKPOINT_PREFIX}{state.global_step}"
    tmp = out / f".{final.name}.tmp"
    gathered = adapter_state_dict(run)
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        run.peft_model.save_pretrained(str(tmp), state_dict=gathered)
        if not is_sharded(acc):
            torch.save(run.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(run.scheduler.state_dict(), tmp / "scheduler.pt")
        atomic_write_json(
            tmp / STATE_FILE, asdict(state) | {"config": run.config.to_dict(), "inputs": resume_inputs(run)}
        )
    acc.wait_for_everyone()
    if is_sharded(acc):
        # Each rank writes its own optimizer (and ZeRO-3/FSDP parameter) shard; rank 0's
        # optimizer.state_dict() would hold only its part.
        acc.save_state(str(tmp / SHARDED_DIR), **_sharded_kwargs(acc, saving=True))
    torch.save(_rng_state(), tmp / f"rng_state_{acc.process_index}.pt")
    acc.wait_for_everyone()
    if acc.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _prune_checkpoints(out, run.config.save_total_limit)
    acc.wait_for_everyone()
    return final


def _sharded_kwargs(acc: Any, saving: bool) -> dict[str, Any]:
    """DeepSpeed: keep the frozen base weights out of every checkpoint (LoRA only)."""
    if not is_deepspeed(acc):
        return {}
    return {"exclude_frozen_parameters": True} if saving else {"load_module_strict": False}


def _prune_checkpoints(out: Path, keep: int) -> None:
    ckpts = sorted(
        (int(p.name[len(CHECKPOINT_PREFIX) :]), p)
        for p in out.glob(f"{CHECKPOINT_PREFIX}*")
        if p.name[len(CHECKPOINT_PREFIX) :].isdigit()
    )
    for _, p in ckpts[: max(0, len(ckpts) - max(1, keep))]:
        shutil.rmtree(p, ignore_errors=True)


def resume_inputs(run: Run) -> dict[str, Any]:
    return {k: run.meta_inputs.get(k) for k in RESUME_INPUTS}


def check_resume_config(run: Run, saved_cfg: dict[str, Any], saved_inputs: dict[str, Any], ckpt: Path) -> None:
    """Refuse a resume whose settings or data differ from the checkpoint's, listing all of them.

    A different learning rate, schedule, epoch count or training file would be silently
    mixed into one run otherwise.
    """
    now_cfg = json.loads(json.dumps(run.config.to_dict()))
    diffs = [
        f"{key}: {saved_cfg[key]!r} → {now_cfg.get(key)!r}"
        for key in sorted(saved_cfg)
        if key not in RESUME_MAY_CHANGE and saved_cfg[key] != now_cfg.get(key)
    ]
    now_inputs = resume_inputs(run)
    diffs += [
        f"{key}: {saved_inputs[key]!r} → {now_inputs[key]!r}"
        for key in RESUME_INPUTS
        if key in saved_inputs and saved_inputs[key] != now_inputs[key]
    ]
    if diffs:
        raise UserError(
            f"체크포인트와 설정/데이터가 다릅니다: {'; '.join(diffs)}",
            f"The checkpoint was made with other settings or data: {'; '.join(diffs)}",
            path=ckpt,
            hint="같은 설정으로 --resume 하거나 새 --output_dir을 쓰세요 / resume with the same settings or use a new --output_dir",
        )


def load_checkpoint(run: Run, ckpt: Path) -> LoopState:
    """Restore weights, optimizer, schedule and this rank's RNG; return the loop state."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    saved = json.loads((ckpt / STATE_FILE).read_text(encoding="utf-8"))
    check_resume_config(run, saved.pop("config", {}), saved.pop("inputs", {}), ckpt)
    if is_sharded(run.accelerator):
        # Loads each rank's shard into the sharded parameters and optimizer (loading the
        # full adapter into ZeRO-3 partitions would write into placeholders).
        run.accelerator.load_state(str(ckpt / SHARDED_DIR), **_sharded_kwargs(run.accelerator, saving=False))
    else:
        adapter = ckpt / "adapter_model.safetensors"
        set_peft_model_state_dict(run.peft_model, load_file(str(adapter), device=str(run.accelerator.device)))
        run.optimizer.load_state_dict(
            torch.load(ckpt / "optimizer.pt", map_location=run.accelerator.device, weights_only=False)
        )
    run.scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=False))
    rng_file = ckpt / f"rng_state_{run.accelerator.process_index}.pt"
    if rng_file.exists():
        _restore_rng(torch.load(rng_file, weights_only=False))
    return LoopState(**saved)
