"""`train()`: a compact LoRA/QLoRA SFT recipe — setup, loop, checkpoint, resume.

Why our own loop instead of HF Trainer: the LM head has to run only on supervised
positions (see `loss.py`), the loss must be normalised by the supervised tokens of the
whole optimizer step (so 1x4 and 4x1 batches give the same loss and gradients), and a
resumed run must replay exactly the same batches, RNG stream and LR schedule. Each of
those is a few lines here and a fight with a framework. Accelerate supplies the device
placement, DDP (`accelerate launch`, including `--cpu` multi-process) and DeepSpeed.

Layout of `output_dir`:
  adapter_model.safetensors, adapter_config.json, tokenizer files   (the adapter)
  training_meta.json   config, data hashes, versions, history, final metrics
  loss.png             train/eval loss curves
  checkpoint-N/        adapter + optimizer + scheduler + RNG + sampler state (resume)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aldlab.errors import UserError
from aldlab.files import atomic_write_json, sha256_file
from aldlab.train.config import TrainConfig
from aldlab.train.distributed import (
    device_map_for,
    engine_name,
    eval_batches,
    fill_deepspeed_config,
    is_sharded,
    precision_plan,
    zero_stage,
)
from aldlab.train.data import (
    DatasetStats,
    Example,
    collate,
    length_grouped_batches,
    resolve_max_seq_len,
    select_examples,
    shuffled_batches,
    stratified_cap,
    tokenize_file,
)

CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"
SHARDED_DIR = "sharded_state"  # accelerate save_state of DeepSpeed/FSDP runs, one shard per rank
OOM_HINT = (
    "배치 크기를 줄이고(--batch_size 1~2) 그만큼 --gradient_accumulation_steps를 늘리거나, "
    "--lora_r를 낮추거나(8), --max_seq_len을 줄이거나, GPU에서는 --load_in_4bit / --gradient_checkpointing을 켜세요 "
    "/ use a smaller --batch_size with more --gradient_accumulation_steps, a lower --lora_r, a shorter "
    "--max_seq_len, or --load_in_4bit / --gradient_checkpointing on a GPU"
)


@dataclass
class TrainResult:
    """What the pipeline and the CLI report after a run."""

    output_dir: str
    final_train_loss: float | None
    final_eval_loss: float | None
    first_eval_loss: float | None
    steps: int
    seconds: float
    supervised_tokens_per_s: float


@dataclass
class LoopState:
    """Everything the loop needs to continue exactly where it stopped."""

    global_step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    supervised_tokens: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Run:
    """Objects built by `_setup` and shared by the loop."""

    config: TrainConfig
    accelerator: Any
    tokenizer: Any
    peft_model: Any
    model: Any  # SupervisedCausalLM, possibly wrapped by DDP
    optimizer: Any
    scheduler: Any
    train_examples: list[Example]
    eval_examples: list[Example]
    steps_per_epoch: int
    total_steps: int
    meta_inputs: dict[str, Any]


# --------------------------------------------------------------------------- public API


def train(
    config: TrainConfig,
    progress: bool = True,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Fine-tune a LoRA adapter on `config.train_file` and write it to `config.output_dir`.

    `on_step(global_step, log)` is called after each optimizer step (after any checkpoint
    of that step was written); tests use it to kill a run at a known step.
    """
    import torch

    try:
        run = _setup(config)
        return _loop(run, progress=progress, on_step=on_step)
    except torch.OutOfMemoryError as exc:
        raise _oom_error(exc) from exc
    except MemoryError as exc:
        raise _oom_error(exc) from exc
    except RuntimeError as exc:
        if "out of memory" in str(exc).lower() or "can't allocate memory" in str(exc).lower():
            raise _oom_error(exc) from exc
        raise


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


# --------------------------------------------------------------------------- setup


def _oom_error(exc: BaseException) -> UserError:
    return UserError(
        "메모리가 부족합니다 (out of memory).",
        f"Out of memory during training: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
        hint=OOM_HINT,
    )


def _set_seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _configure_threads(config: TrainConfig, local_world_size: int) -> None:
    """CPU: one thread per core, split among local processes (2 cores, 2 ranks -> 1 each)."""
    import torch

    if torch.cuda.is_available():
        return
    threads = config.num_threads or max(1, (os.cpu_count() or 1) // max(1, local_world_size))
    torch.set_num_threads(threads)


def _require_file(path: str | None, flag: str) -> Path:
    if not path:
        raise UserError(
            f"{flag} 가 필요합니다.",
            f"{flag} is required.",
            hint=f"{flag} data/train.jsonl  (aldlab data build 로 생성 / made by `aldlab data build`)",
        )
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError("데이터 파일이 없습니다.", "Data file not found.", path=p, hint="경로를 확인하세요 / check the path")
    return p


def _split_eval(examples: list[Example], seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out ~5% (at most 100, at least 1) of training rows when no eval file is given.

    Stratified by style, so the eval loss measures RAG and refusal rows too.
    """
    if len(examples) < 2:
        return examples, examples
    n_eval = max(1, min(100, len(examples) // 20))
    held = {id(e) for e in stratified_cap(examples, n_eval, seed)}
    return [e for e in examples if id(e) not in held], [e for e in examples if id(e) in held]


def _load_data(config: TrainConfig, tokenizer: Any, train_path: Path, eval_path: Path | None) -> tuple[
    list[Example], list[Example], DatasetStats, DatasetStats | None, int
]:
    """Tokenise, fix max_seq_len (from the data when `auto`/`pNN`), skip and cap per style."""
    train_all = tokenize_file(train_path, tokenizer)
    eval_all = tokenize_file(eval_path, tokenizer) if eval_path else []
    seq_len = resolve_max_seq_len(config.max_seq_len, [len(e.input_ids) for e in train_all + eval_all])
    allow = config.allow_skipping_long_rows
    train_examples, train_stats = select_examples(
        train_all, seq_len, config.max_train_examples, config.seed, allow, train_path
    )
    eval_stats = None
    if eval_path is not None:
        eval_examples, eval_stats = select_examples(
            eval_all, seq_len, config.max_eval_examples, config.seed, allow, eval_path
        )
    else:
        train_examples, eval_examples = _split_eval(train_examples, config.seed)
        eval_examples = stratified_cap(eval_examples, config.max_eval_examples, config.seed)
    return train_examples, eval_examples, train_stats, eval_stats, seq_len


def _micro_batches(run_config: TrainConfig, lengths: list[int], epoch: int) -> list[list[int]]:
    if run_config.group_by_length:
        return length_grouped_batches(lengths, run_config.batch_size, run_config.seed, epoch)
    return shuffled_batches(len(lengths), run_config.batch_size, run_config.seed, epoch)


def _steps_per_epoch(n_micro: int, accum: int, world: int, deepspeed: bool = False) -> int:
    """Full optimizer steps per epoch; a short tail step is kept if every rank gets a batch.

    DeepSpeed counts micro-steps itself and must see exactly `accum` per step: no tail there.
    """
    per_step = accum * world
    full, rest = divmod(n_micro, per_step)
    return max(1, full + (1 if rest >= world and not deepspeed else 0))


def _is_deepspeed(accelerator: Any) -> bool:
    return engine_name(accelerator) == "DEEPSPEED"


def _adapter_state_dict(run: _Run) -> dict[str, Any] | None:
    """Under ZeRO/FSDP the parameters may be sharded: gather them (collective) before saving."""
    if not is_sharded(run.accelerator):
        return None
    full = run.accelerator.get_state_dict(run.model)
    return {k.removeprefix("model."): v for k, v in full.items()}


def _style_table(stats: DatasetStats) -> dict[str, dict[str, int]]:
    """Per style: rows read, rows that fit, rows too long, rows used (after the cap)."""
    return {st: asdict(c) for st, c in sorted(stats.by_style.items())}


def _style_counts(examples: list[Example]) -> dict[str, dict[str, int]]:
    counts: dict[str, int] = {}
    for e in examples:
        counts[e.style] = counts.get(e.style, 0) + 1
    return {st: {"selected": n} for st, n in sorted(counts.items())}


def warmup_steps(ratio: float, total_steps: int) -> int:
    """Warm-up length in optimizer steps: rounded up (as HF TrainingArguments does)."""
    return min(total_steps, math.ceil(ratio * total_steps)) if ratio > 0 else 0


def lr_factor(step: int, kind: str, warmup: int, total: int) -> float:
    """LR multiplier for optimizer step `step` (0-based): never 0 on a step that trains.

    HF's schedules give step 0 a factor 0 whenever there is warm-up, so the first batch
    is wasted (with 48 steps and 3% warm-up: 1 of 48). Here warm-up climbs
    1/(w+1) .. w/(w+1), then the decay runs from 1 down to just above 0 on the last step.
    """
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if kind == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if kind == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: Any, kind: str, warmup: int, total: int) -> Any:
    """A LambdaLR over `lr_factor`; stepped once per optimizer step, after the step."""
    from functools import partial

    from torch.optim.lr_scheduler import LambdaLR

    return LambdaLR(optimizer, partial(lr_factor, kind=kind, warmup=warmup, total=total))


def _check_loss_against_model(acc: Any, model: Any, tokenizer: Any, examples: list[Example], mixed: str) -> None:
    """Stop before training when our sliced loss is not the model's own loss (one short row)."""
    from aldlab.train.loss import loss_mismatch

    row = min(examples, key=lambda e: len(e.input_ids))
    batch = _to_device(collate([row], tokenizer.pad_token_id), acc.device)
    with acc.autocast():
        bad = loss_mismatch(model, batch, rtol=1e-3 if mixed == "no" else 2e-2)
    if bad is not None:
        raise UserError(
            f"이 모델에서는 aldlab의 손실 계산이 모델 자체 손실과 다릅니다 ({bad[0]:.5f} ≠ {bad[1]:.5f}).",
            f"aldlab's sliced loss differs from the model's own loss on this architecture ({bad[0]:.5f} vs {bad[1]:.5f}); "
            "it post-processes logits in a way train/loss.py does not know.",
            hint="train/loss.py 의 SupervisedCausalLM 에 해당 처리를 추가하거나 이슈로 알려 주세요 "
            "/ teach SupervisedCausalLM in train/loss.py that step, or report the model",
        )


def _setup(config: TrainConfig) -> _Run:
    import torch
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from aldlab.train.loss import SupervisedCausalLM
    from aldlab.llm.model import LoadOptions, default_model_name, load_model, load_tokenizer, portable_model_name

    train_path = _require_file(config.train_file, "--train_file")
    eval_path = _require_file(config.eval_file, "--eval_file") if config.eval_file else None
    if config.model_name is None:
        config.model_name = default_model_name()

    cuda = torch.cuda.is_available()
    precision = precision_plan(config.dtype, cuda, cuda and torch.cuda.is_bf16_supported())
    mixed = precision.mixed_precision
    # cpu=True without CUDA: ranks started by torchrun / `accelerate launch` form a gloo group.
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        # Rotary/scale buffers are constants: no per-forward buffer broadcast between ranks.
        kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)],
        mixed_precision=mixed,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
    )
    if _is_deepspeed(accelerator):
        fill_deepspeed_config(
            accelerator.state.deepspeed_plugin.deepspeed_config,
            micro_batch_size=config.batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            world_size=accelerator.num_processes,
            max_grad_norm=config.max_grad_norm,
            mixed_precision=mixed,
        )
    _configure_threads(config, int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes)))
    _set_seed(config.seed)

    tokenizer = load_tokenizer(config.model_name)
    train_examples, eval_examples, train_stats, eval_stats, seq_len = _load_data(
        config, tokenizer, train_path, eval_path
    )
    _log(accelerator, f"학습 데이터 / train rows (used/read): {train_stats.summary()}; max_seq_len {seq_len}")
    if eval_stats is not None:
        _log(accelerator, f"평가 데이터 / eval rows (used/read): {eval_stats.summary()}")

    options = LoadOptions(dtype=precision.load_dtype, load_in_4bit=config.load_in_4bit)
    options.device_map = device_map_for(cuda, accelerator.local_process_index, zero_stage(accelerator) == 3)
    base = load_model(config.model_name, options)
    _configure_threads(config, int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes)))
    base.config.use_cache = False
    if config.load_in_4bit:
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=config.gradient_checkpointing)
    elif config.gradient_checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        base.enable_input_require_grads()
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
        trainable_token_indices=_trainable_token_ids(tokenizer, config.trainable_tokens) or None,
    )
    try:
        with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
            warnings.simplefilter("ignore", FutureWarning)
            peft_model = get_peft_model(base, lora)
        # adapter_config.json names the base portably (not ALDLAB_HOME's absolute path).
        peft_model.peft_config["default"].base_model_name_or_path = portable_model_name(config.model_name)
    except ValueError as exc:
        raise UserError(
            f"LoRA 대상 모듈을 모델에서 찾을 수 없습니다: {', '.join(config.target_modules)}",
            f"LoRA target modules not found in the model: {exc}",
            hint="--target_modules q_proj,k_proj,v_proj,o_proj",
        ) from exc

    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    n_micro = len(_micro_batches(config, [len(e.input_ids) for e in train_examples], 0))
    steps_per_epoch = _steps_per_epoch(
        n_micro, config.gradient_accumulation_steps, accelerator.num_processes, _is_deepspeed(accelerator)
    )
    total_steps = config.max_steps or max(1, math.ceil(config.num_epochs * steps_per_epoch))
    scheduler = build_scheduler(optimizer, config.lr_scheduler, warmup_steps(config.warmup_ratio, total_steps),
                                total_steps)
    # The scheduler is stepped by us once per optimizer step, so it is not prepared
    # (a prepared scheduler steps num_processes times per call).
    model, optimizer = accelerator.prepare(SupervisedCausalLM(peft_model), optimizer)
    if engine_name(accelerator) != "FSDP":  # FSDP1 unwrapped modules hold flat shards: no plain forward
        _check_loss_against_model(accelerator, accelerator.unwrap_model(model).model, tokenizer, train_examples, mixed)

    meta_inputs = {
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
        "max_seq_len": seq_len,
        "trainable_parameters": sum(p.numel() for p in trainable),
        "total_parameters": sum(p.numel() for p in peft_model.parameters()),
        "world_size": accelerator.num_processes,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
    }
    return _Run(
        config, accelerator, tokenizer, peft_model, model, optimizer, scheduler,
        train_examples, eval_examples, steps_per_epoch, total_steps, meta_inputs,
    )


# --------------------------------------------------------------------------- the loop


def _all_reduce_sum(accelerator: Any, values: list[float]) -> list[float]:
    import torch

    if accelerator.num_processes == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=accelerator.device)
    t = accelerator.reduce(t, reduction="sum")
    return t.tolist()


def _to_device(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    return {k: v.to(device) for k, v in batch.items()}


@dataclass
class StepStats:
    """What one optimizer step did, summed over ranks (logged in the history)."""

    loss: float  # mean loss per supervised token
    tokens: int  # supervised (answer) tokens
    padded_tokens: int  # positions the decoder ran over, padding included
    lr: float  # the learning rate this step's update used


def _train_step(run: _Run, micro: list[list[int]]) -> StepStats:
    """One optimizer step over this rank's micro-batches."""
    acc, cfg = run.accelerator, run.config
    pad_id = run.tokenizer.pad_token_id
    batches = [collate([run.train_examples[i] for i in mb], pad_id) for mb in micro]
    local_tokens = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches)
    local_padded = sum(int(b["input_ids"].numel()) for b in batches)
    # Normalise by the supervised tokens of the whole step, over every micro-batch and rank.
    # DDP averages gradients over ranks, hence the world-size factor.
    total_tokens, total_padded = _all_reduce_sum(acc, [float(local_tokens), float(local_padded)])
    total_tokens = max(1.0, total_tokens)
    scale = acc.num_processes / total_tokens
    loss_sum_local = 0.0
    run.model.train()
    for i, batch in enumerate(batches):
        last = i == len(batches) - 1
        # Sync gradients (DDP all-reduce, DeepSpeed step) only on the step's last micro-batch.
        acc.gradient_state._set_sync_gradients(last)
        ctx = acc.no_sync(run.model) if not last else contextlib.nullcontext()
        with ctx:
            with acc.autocast():
                loss_sum, _ = run.model(**_to_device(batch, acc.device))
            # accelerate (and DeepSpeed) divide by gradient_accumulation_steps; our scale is
            # already per step, so undo their division.
            acc.backward(loss_sum * scale * acc.gradient_accumulation_steps)
        loss_sum_local += float(loss_sum.detach())
    if cfg.max_grad_norm and cfg.max_grad_norm > 0:
        acc.clip_grad_norm_([p for p in run.model.parameters() if p.requires_grad], cfg.max_grad_norm)
    lr = float(run.optimizer.param_groups[0]["lr"])  # the LR this update uses, logged as such
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    loss_total = _all_reduce_sum(acc, [loss_sum_local])[0]
    return StepStats(loss_total / total_tokens, int(total_tokens), int(total_padded), lr)


def evaluate(run: _Run) -> float:
    """Mean loss per supervised token over the eval set (sharded over ranks).

    Every rank runs the same number of forwards (`eval_batches`): under ZeRO-3/FSDP a
    forward gathers parameters from all ranks, so an extra batch on one rank would hang.
    """
    import torch

    acc = run.accelerator
    order = sorted(range(len(run.eval_examples)), key=lambda i: len(run.eval_examples[i].input_ids))
    bs = max(1, run.config.batch_size * 2)
    loss_sum, tokens = 0.0, 0.0
    # DDP: the unwrapped module (a DDP forward is not needed without gradients). Sharded
    # engines: the prepared one, whose forward gathers the parameters.
    model = run.model if is_sharded(acc) else acc.unwrap_model(run.model)
    run.model.eval()
    with torch.no_grad():
        for rows, counted in eval_batches(order, acc.process_index, acc.num_processes, bs):
            batch = collate([run.eval_examples[j] for j in rows], run.tokenizer.pad_token_id)
            with acc.autocast():
                s, n = model(**_to_device(batch, acc.device))
            if counted:
                loss_sum += float(s)
                tokens += float(n)
    loss_sum, tokens = _all_reduce_sum(acc, [loss_sum, tokens])
    run.model.train()
    return loss_sum / max(1.0, tokens)


def _loop(run: _Run, progress: bool, on_step: Callable[[int, dict[str, Any]], None] | None) -> TrainResult:
    cfg, acc = run.config, run.accelerator
    out = cfg.output_path
    state = LoopState()
    if cfg.resume:
        ckpt = latest_checkpoint(out)
        if ckpt is None:
            _log(acc, f"[yellow]재개할 체크포인트가 없어 처음부터 학습합니다 / no checkpoint in {out}, starting fresh[/]")
        else:
            state = _load_checkpoint(run, ckpt)
            _log(acc, f"체크포인트에서 재개 / resuming from {ckpt.name} (step {state.global_step})")
    elif acc.is_main_process and latest_checkpoint(out) is not None:
        _log(acc, f"[yellow]{out}의 이전 체크포인트를 지웁니다 (--resume 없이 시작) / removing old checkpoints[/]")
        for old in out.glob(f"{CHECKPOINT_PREFIX}*"):
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()

    if state.global_step == 0:
        first_eval = evaluate(run)
        state.history.append({"step": 0, "eval_loss": first_eval})
        _log(acc, f"step 0 eval_loss {first_eval:.4f}")

    lengths = [len(e.input_ids) for e in run.train_examples]
    per_step = cfg.gradient_accumulation_steps * acc.num_processes
    bar = _Progress(enabled=progress and acc.is_main_process, total=run.total_steps, done=state.global_step,
                    log_every=cfg.logging_steps)
    recent: list[float] = []
    try:
        while state.global_step < run.total_steps:
            micro_all = _micro_batches(cfg, lengths, state.epoch)
            while state.step_in_epoch < run.steps_per_epoch and state.global_step < run.total_steps:
                k = state.step_in_epoch
                step_micro = micro_all[k * per_step : (k + 1) * per_step]
                # Every rank must run the same number of forward/backward passes (DDP).
                step_micro = step_micro[: len(step_micro) - len(step_micro) % acc.num_processes]
                mine = step_micro[acc.process_index :: acc.num_processes]
                t0 = time.perf_counter()
                step = _train_step(run, mine)
                loss, lr = step.loss, step.lr
                state.train_seconds += time.perf_counter() - t0
                state.supervised_tokens += step.tokens
                state.global_step += 1
                state.step_in_epoch += 1
                recent.append(loss)
                log: dict[str, Any] = {"step": state.global_step, "epoch": state.epoch, "loss": loss,
                                       "lr": lr,
                                       "tokens": step.tokens, "padded_tokens": step.padded_tokens}
                if state.global_step % cfg.logging_steps == 0 or state.global_step == run.total_steps:
                    log["train_loss"] = sum(recent) / len(recent)
                    recent = []
                if state.global_step % cfg.eval_steps == 0 or state.global_step == run.total_steps:
                    log["eval_loss"] = evaluate(run)
                    _log(acc, f"step {state.global_step} eval_loss {log['eval_loss']:.4f}", bar)
                state.history.append(log)
                tps = state.supervised_tokens / max(1e-9, state.train_seconds)
                bar.update(state.global_step, loss, tps, log.get("eval_loss"), lr)
                if state.global_step % cfg.save_steps == 0 and state.global_step < run.total_steps:
                    _save_checkpoint(run, state)
                if on_step is not None:
                    on_step(state.global_step, log)
            if state.step_in_epoch >= run.steps_per_epoch:
                state.epoch += 1
                state.step_in_epoch = 0
    finally:
        bar.close()
    if not cfg.save_inference_only:
        _save_checkpoint(run, state)
    return _finish(run, state)


# --------------------------------------------------------------------------- checkpoints


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


def _save_checkpoint(run: _Run, state: LoopState) -> Path:
    """Write checkpoint-N atomically: built in a temp dir by all ranks, renamed by rank 0."""
    import torch

    acc, out = run.accelerator, run.config.output_path
    final = out / f"{CHECKPOINT_PREFIX}{state.global_step}"
    tmp = out / f".{final.name}.tmp"
    gathered = _adapter_state_dict(run)
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        run.peft_model.save_pretrained(str(tmp), state_dict=gathered)
        if not is_sharded(acc):
            torch.save(run.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(run.scheduler.state_dict(), tmp / "scheduler.pt")
        atomic_write_json(
            tmp / STATE_FILE, asdict(state) | {"config": run.config.to_dict(), "inputs": _resume_inputs(run)}
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
    if not _is_deepspeed(acc):
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


#: Config keys that may change between a run and its resume: where and how often to write
#: and log, the eval cadence and size, CPU threads. Every other key changes the trajectory.
RESUME_MAY_CHANGE = frozenset({
    "output_dir", "resume", "save_steps", "save_total_limit", "logging_steps", "eval_steps",
    "max_eval_examples", "num_threads", "save_inference_only", "allow_skipping_long_rows",
})
#: Inputs recorded in a checkpoint that must be the same on resume (the data and its shape).
RESUME_INPUTS = ("train_sha256", "eval_sha256", "max_seq_len", "train_examples", "world_size")


def _resume_inputs(run: _Run) -> dict[str, Any]:
    return {k: run.meta_inputs.get(k) for k in RESUME_INPUTS}


def _check_resume_config(run: _Run, saved_cfg: dict[str, Any], saved_inputs: dict[str, Any], ckpt: Path) -> None:
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
    now_inputs = _resume_inputs(run)
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


def _load_checkpoint(run: _Run, ckpt: Path) -> LoopState:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    saved = json.loads((ckpt / STATE_FILE).read_text(encoding="utf-8"))
    _check_resume_config(run, saved.pop("config", {}), saved.pop("inputs", {}), ckpt)
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


# --------------------------------------------------------------------------- outputs


def _finish(run: _Run, state: LoopState) -> TrainResult:
    cfg, acc = run.config, run.accelerator
    out = cfg.output_path
    evals = [h["eval_loss"] for h in state.history if "eval_loss" in h]
    trains = [h["train_loss"] for h in state.history if "train_loss" in h]
    result = TrainResult(
        output_dir=str(out),
        final_train_loss=trains[-1] if trains else None,
        final_eval_loss=evals[-1] if evals else None,
        first_eval_loss=evals[0] if evals else None,
        steps=state.global_step,
        seconds=round(state.train_seconds, 2),
        supervised_tokens_per_s=round(state.supervised_tokens / max(1e-9, state.train_seconds), 2),
    )
    gathered = _adapter_state_dict(run)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        run.peft_model.save_pretrained(str(out), state_dict=gathered)
        run.tokenizer.save_pretrained(str(out))
        atomic_write_json(out / "training_meta.json", _meta(run, state, result))
        if cfg.save_inference_only:
            for p in out.glob(f"{CHECKPOINT_PREFIX}*"):
                shutil.rmtree(p, ignore_errors=True)
            for p in out.glob(f".{CHECKPOINT_PREFIX}*"):
                shutil.rmtree(p, ignore_errors=True)
        else:
            plot_losses(state.history, out / "loss.png")
    acc.wait_for_everyone()
    return result


def _meta(run: _Run, state: LoopState, result: TrainResult) -> dict[str, Any]:
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


# --------------------------------------------------------------------------- console


def _log(acc: Any, message: str, bar: _Progress | None = None) -> None:
    if not acc.is_main_process:
        return
    if bar is not None and bar.console is not None:
        bar.console.print(message)
        return
    from rich.console import Console

    Console(stderr=True).print(message)


class _Progress:
    """A rich progress bar showing loss, supervised tokens/s and ETA (stderr)."""

    def __init__(self, enabled: bool, total: int, done: int, log_every: int = 5) -> None:
        self.console = None
        self._progress = None
        self._total, self._start, self._start_step, self._log_every = total, time.perf_counter(), done, log_every
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]학습 / train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("eval {task.fields[eval]}"),
            TextColumn("lr {task.fields[lr]}"),
            TextColumn("{task.fields[tps]} tok/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=total, completed=done, loss="-", eval="-", tps="-", lr="-")

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


def _trainable_token_ids(tokenizer: Any, tokens: list[str]) -> list[int]:
    """Vocabulary ids of `train.trainable_tokens`; an unknown token is a user error, not a no-op."""
    ids = []
    for token in tokens:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise UserError(
                f"trainable_tokens의 토큰이 어휘에 없습니다: {token}",
                f"trainable_tokens: {token!r} is not in the model's vocabulary.",
                hint="예 / e.g. trainable_tokens: ['<end_of_turn>'] (Gemma)",
            )
        ids.append(int(token_id))
    return ids
