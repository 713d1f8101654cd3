"""`train()`: a compact LoRA/QLoRA SFT recipe that reads top to bottom — setup, step, evaluate, loop.

Why our own loop instead of HF Trainer: the LM head has to run only on supervised
positions (see `loss.py`), the loss must be normalised by the supervised tokens of the
whole optimizer step (so 1x4 and 4x1 batches give the same loss and gradients), and a
resumed run must replay exactly the same batches, RNG stream and LR schedule. Each of
those is a few lines here and a fight with a framework. Accelerate supplies the device
placement, DDP (`accelerate launch`, including `--cpu` multi-process) and DeepSpeed.

Beside the loop: `state.py` (what a run holds), `checkpoint.py` (save, resume, RNG, best/),
`schedule.py` (LR), `report.py` (console, train_log.jsonl, training_meta.json, loss.png; the
output layout), `data.py` (tokenised rows and batches), `distributed.py` (multi-GPU
decisions), `generation_check.py` (a few answers at the end).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aldlab.errors import UserError
from aldlab.files import atomic_write_json
from aldlab.train.checkpoint import (
    BEST_DIR,
    adapter_state_dict,
    latest_checkpoint,
    load_best_adapter,
    load_checkpoint,
    remove_best_adapter,
    remove_checkpoints,
    save_best_adapter,
    save_checkpoint,
)
from aldlab.train.config import TrainConfig
from aldlab.train.data import Example, collate, length_grouped_batches, load_train_and_eval, shuffled_batches
from aldlab.train.distributed import (
    device_map_for,
    engine_name,
    eval_batches,
    fill_deepspeed_config,
    is_deepspeed,
    is_sharded,
    precision_plan,
    refuse_four_bit_with_sharded_weights,
    zero_stage,
)
from aldlab.train.report import (
    TRAIN_LOG,
    TrainLog,
    TrainProgress,
    data_inputs,
    log,
    plot_losses,
    train_result,
    training_meta,
)
from aldlab.train.schedule import build_scheduler, warmup_steps
from aldlab.train.state import LoopState, Run, StepStats, TrainResult

OOM_HINT = (
    "배치 크기를 줄이고(--batch_size 1~2) 그만큼 --gradient_accumulation_steps를 늘리거나, "
    "--lora_r를 낮추거나(8), --max_seq_len을 줄이거나, --gradient_checkpointing을 켜거나(CPU에서도 최대 메모리 약 40% 감소), "
    "GPU에서는 --load_in_4bit을 쓰세요 "
    "/ use a smaller --batch_size with more --gradient_accumulation_steps, a lower --lora_r, a shorter "
    "--max_seq_len, --gradient_checkpointing (about 40% less peak memory, CPU too), or --load_in_4bit on a GPU"
)


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


def _oom_error(exc: BaseException) -> UserError:
    return UserError(
        "메모리가 부족합니다 (out of memory).",
        f"Out of memory during training: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
        hint=OOM_HINT,
    )


# --------------------------------------------------------------------------- setup


def _setup(config: TrainConfig) -> Run:
    """Accelerator, data, base model + LoRA, optimizer and schedule, in that order."""
    import torch

    from aldlab.llm.model import LoadOptions, default_model_name, load_model, load_tokenizer, native_bf16
    from aldlab.train.loss import SupervisedCausalLM

    train_path = _require_file(config.train_file, "--train_file")
    eval_path = _require_file(config.eval_file, "--eval_file") if config.eval_file else None
    if config.model_name is None:
        config.model_name = default_model_name()

    cuda = torch.cuda.is_available()
    bf16 = cuda and native_bf16(torch.cuda.get_device_capability(), rocm=bool(torch.version.hip))
    precision = precision_plan(config.dtype, cuda, bf16)
    mixed = precision.mixed_precision
    accelerator = _accelerator(config, mixed)
    refuse_four_bit_with_sharded_weights(accelerator, config.load_in_4bit)
    if not cuda and config.dtype not in {"auto", "float32"}:
        log(accelerator, f"[yellow]CPU에서는 fp32로 학습합니다 (--dtype {config.dtype} 무시) "
                         f"/ CPU trains in fp32, --dtype {config.dtype} is ignored[/]")
    _configure_threads(config, int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes)))
    _set_seed(config.seed)

    tokenizer = load_tokenizer(config.model_name)
    train_examples, eval_examples, train_stats, eval_stats, seq_len = load_train_and_eval(
        config, tokenizer, train_path, eval_path
    )
    log(accelerator, f"학습 데이터 / train rows (used/read): {train_stats.summary()}; max_seq_len {seq_len}")
    if eval_stats is not None:
        log(accelerator, f"평가 데이터 / eval rows (used/read): {eval_stats.summary()}")

    options = LoadOptions(dtype=precision.load_dtype, load_in_4bit=config.load_in_4bit)
    options.device_map = device_map_for(cuda, accelerator.local_process_index, zero_stage(accelerator) == 3)
    base = load_model(config.model_name, options)
    _configure_threads(config, int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes)))
    peft_model = _lora_model(config, base, tokenizer)

    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    n_micro = len(_micro_batches(config, [len(e.input_ids) for e in train_examples], 0))
    steps_per_epoch = _steps_per_epoch(
        n_micro, config.gradient_accumulation_steps, accelerator.num_processes, is_deepspeed(accelerator)
    )
    total_steps = config.max_steps or max(1, math.ceil(config.num_epochs * steps_per_epoch))
    scheduler = build_scheduler(optimizer, config.lr_scheduler, warmup_steps(config.warmup_ratio, total_steps),
                                total_steps)
    # The scheduler is stepped by us once per optimizer step, so it is not prepared
    # (a prepared scheduler steps num_processes times per call).
    model, optimizer = accelerator.prepare(SupervisedCausalLM(peft_model), optimizer)
    if engine_name(accelerator) != "FSDP":  # FSDP1 unwrapped modules hold flat shards: no plain forward
        _check_loss_against_model(accelerator, accelerator.unwrap_model(model).model, tokenizer, train_examples, mixed)

    meta_inputs = data_inputs(train_path, eval_path, train_stats, eval_stats, train_examples, eval_examples, seq_len)
    meta_inputs |= {
        "trainable_parameters": sum(p.numel() for p in trainable),
        "total_parameters": sum(p.numel() for p in peft_model.parameters()),
        "world_size": accelerator.num_processes,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
    }
    return Run(
        config=config, accelerator=accelerator, tokenizer=tokenizer, peft_model=peft_model, model=model,
        optimizer=optimizer, scheduler=scheduler, train_examples=train_examples, eval_examples=eval_examples,
        steps_per_epoch=steps_per_epoch, total_steps=total_steps, meta_inputs=meta_inputs,
    )


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


def _accelerator(config: TrainConfig, mixed: str) -> Any:
    import torch
    from accelerate import Accelerator, DistributedDataParallelKwargs

    # cpu=True without CUDA: ranks started by torchrun / `accelerate launch` form a gloo group.
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        # Rotary/scale buffers are constants: no per-forward buffer broadcast between ranks.
        kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)],
        mixed_precision=mixed,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
    )
    if is_deepspeed(accelerator):
        fill_deepspeed_config(
            accelerator.state.deepspeed_plugin.deepspeed_config,
            micro_batch_size=config.batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            world_size=accelerator.num_processes,
            max_grad_norm=config.max_grad_norm,
            mixed_precision=mixed,
        )
    return accelerator


def _configure_threads(config: TrainConfig, local_world_size: int) -> None:
    """CPU: one thread per core, split among local processes (2 cores, 2 ranks -> 1 each)."""
    import torch

    if torch.cuda.is_available():
        return
    threads = config.num_threads or max(1, (os.cpu_count() or 1) // max(1, local_world_size))
    torch.set_num_threads(threads)


def _set_seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _lora_model(config: TrainConfig, base: Any, tokenizer: Any) -> Any:
    """The base made trainable (4-bit prep or gradient checkpointing) with LoRA on top."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from aldlab.llm.model import portable_model_name

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
            peft_model = _warm_start(base, config.init_adapter) if config.init_adapter else get_peft_model(base, lora)
        # adapter_config.json names the base portably (not ALDLAB_HOME's absolute path).
        peft_model.peft_config["default"].base_model_name_or_path = portable_model_name(config.model_name)
    except ValueError as exc:
        raise UserError(
            f"LoRA 대상 모듈을 모델에서 찾을 수 없습니다: {', '.join(config.target_modules)}",
            f"LoRA target modules not found in the model: {exc}",
            hint="--target_modules q_proj,k_proj,v_proj,o_proj",
        ) from exc
    return peft_model


def _warm_start(base: Any, adapter_dir: str) -> Any:
    """The base with `adapter_dir`'s LoRA loaded trainable (its own config wins over the flags:
    the weights only fit the r, targets and trainable tokens they were trained with)."""
    from peft import PeftModel

    from aldlab.llm.adapters import check_adapter_dir

    path = check_adapter_dir(Path(adapter_dir).expanduser())
    try:
        return PeftModel.from_pretrained(base, str(path), adapter_name="default", is_trainable=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise UserError(
            "시작 어댑터를 불러올 수 없습니다 (--init_adapter).",
            f"Cannot load the warm-start adapter: {str(exc).splitlines()[0] if str(exc) else exc}",
            path=path,
            hint="같은 베이스 모델로 학습한 어댑터인지 확인하세요 / it must be trained on the same base model",
        ) from exc


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


# --------------------------------------------------------------------------- one step


def _all_reduce_sum(accelerator: Any, values: list[float]) -> list[float]:
    import torch

    if accelerator.num_processes == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=accelerator.device)
    t = accelerator.reduce(t, reduction="sum")
    return t.tolist()


def _to_device(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    return {k: v.to(device) for k, v in batch.items()}


def _train_step(run: Run, micro: list[list[int]]) -> StepStats:
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


def evaluate(run: Run) -> float:
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


# --------------------------------------------------------------------------- the loop


def _resume_or_start(run: Run) -> LoopState:
    """The newest checkpoint's state with --resume; otherwise a fresh state (old checkpoints go)."""
    cfg, acc = run.config, run.accelerator
    out = cfg.output_path
    state = LoopState()
    if cfg.resume:
        ckpt = latest_checkpoint(out)
        if ckpt is None:
            log(acc, f"[yellow]재개할 체크포인트가 없어 처음부터 학습합니다 / no checkpoint in {out}, starting fresh[/]")
        else:
            state = load_checkpoint(run, ckpt)
            log(acc, f"체크포인트에서 재개 / resuming from {ckpt.name} (step {state.global_step})")
    elif acc.is_main_process and latest_checkpoint(out) is not None:
        log(acc, f"[yellow]{out}의 이전 체크포인트를 지웁니다 (--resume 없이 시작) / removing old checkpoints[/]")
        remove_checkpoints(out)
    if not cfg.resume and acc.is_main_process:
        remove_best_adapter(out)
    acc.wait_for_everyone()
    return state


def _keep_if_best(run: Run, state: LoopState, eval_loss: float) -> None:
    """Rewrite best/ when this evaluation beats every earlier one after step 0.

    Step 0 (the base with a zero LoRA update) is not a candidate: best/ is a trained adapter.
    Every rank sees the same all-reduced loss, so all take the same branch (the save is a
    collective under ZeRO/FSDP).
    """
    if state.best_eval_loss is not None and eval_loss >= state.best_eval_loss:
        return
    state.best_eval_loss, state.best_step = eval_loss, state.global_step
    save_best_adapter(run, state)


def _loop(run: Run, progress: bool, on_step: Callable[[int, dict[str, Any]], None] | None) -> TrainResult:
    cfg, acc = run.config, run.accelerator
    state = _resume_or_start(run)

    train_log = TrainLog(cfg.output_path / TRAIN_LOG, enabled=acc.is_main_process,
                         resume_step=state.global_step if cfg.resume else None)
    if state.global_step == 0:
        first_eval = evaluate(run)
        state.history.append({"step": 0, "eval_loss": first_eval})
        train_log.write({"step": 0, "epoch": 0.0, "eval_loss": first_eval})
        log(acc, f"step 0 eval_loss {first_eval:.4f}")

    lengths = [len(e.input_ids) for e in run.train_examples]
    per_step = cfg.gradient_accumulation_steps * acc.num_processes
    bar = TrainProgress(enabled=progress and acc.is_main_process, total=run.total_steps, done=state.global_step,
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
                seconds = time.perf_counter() - t0
                state.train_seconds += seconds
                train_log.add_step(step.tokens, seconds)
                state.supervised_tokens += step.tokens
                state.global_step += 1
                state.step_in_epoch += 1
                recent.append(loss)
                entry: dict[str, Any] = {"step": state.global_step, "epoch": state.epoch, "loss": loss,
                                         "lr": lr,
                                         "tokens": step.tokens, "padded_tokens": step.padded_tokens}
                if state.global_step % cfg.logging_steps == 0 or state.global_step == run.total_steps:
                    entry["train_loss"] = sum(recent) / len(recent)
                    recent = []
                if state.global_step % cfg.eval_steps == 0 or state.global_step == run.total_steps:
                    entry["eval_loss"] = evaluate(run)
                    log(acc, f"step {state.global_step} eval_loss {entry['eval_loss']:.4f}", bar)
                    _keep_if_best(run, state, entry["eval_loss"])
                state.history.append(entry)
                if "train_loss" in entry or "eval_loss" in entry:
                    train_log.write(_log_record(entry, state.global_step / run.steps_per_epoch))
                tps = state.supervised_tokens / max(1e-9, state.train_seconds)
                bar.update(state.global_step, loss, tps, entry.get("eval_loss"), lr)
                if state.global_step % cfg.save_steps == 0 and state.global_step < run.total_steps:
                    save_checkpoint(run, state)
                if on_step is not None:
                    on_step(state.global_step, entry)
            if state.step_in_epoch >= run.steps_per_epoch:
                state.epoch += 1
                state.step_in_epoch = 0
    finally:
        bar.close()
        train_log.close()
    if not cfg.save_inference_only:
        save_checkpoint(run, state)
    return _finish(run, state)


def _log_record(entry: dict[str, Any], epoch: float) -> dict[str, Any]:
    """A train_log.jsonl line from a history entry (TrainLog adds tokens_per_s and GPU memory)."""
    record: dict[str, Any] = {"step": entry["step"], "epoch": round(epoch, 4)}
    if "train_loss" in entry:
        record["loss"] = entry["train_loss"]
    record["lr"] = entry["lr"]
    if "eval_loss" in entry:
        record["eval_loss"] = entry["eval_loss"]
    return record


def _finish(run: Run, state: LoopState) -> TrainResult:
    """Write the adapter, tokenizer, training_meta.json and loss.png (rank 0), after putting
    best/ in place of the last weights (`load_best_model_at_end`) and the generation check."""
    cfg, acc = run.config, run.accelerator
    out = cfg.output_path
    result = train_result(out, state)
    best = _best_record(run, state)
    copy_best = bool(best and best["loaded_at_end"]) and not load_best_adapter(run)
    check = _generation_check(run)
    gathered = adapter_state_dict(run)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        run.peft_model.save_pretrained(str(out), state_dict=gathered)
        if copy_best:  # ZeRO/FSDP: the partitions cannot take best/'s full weights, its file can
            import shutil

            shutil.copy2(out / BEST_DIR / "adapter_model.safetensors", out / "adapter_model.safetensors")
        run.tokenizer.save_pretrained(str(out))
        meta = training_meta(run, state, result, best=best, generation_check=check)
        atomic_write_json(out / "training_meta.json", meta)
        if cfg.save_inference_only:
            remove_checkpoints(out, unfinished=True)
        else:
            plot_losses(state.history, out / "loss.png")
    acc.wait_for_everyone()
    return result


def _best_record(run: Run, state: LoopState) -> dict[str, Any] | None:
    """What training_meta.json says about best/; logs which adapter the output dir holds."""
    if state.best_step is None:
        return None
    loaded = run.config.load_best_model_at_end and state.best_step != state.global_step
    which = (f"최저 평가 손실 step {state.best_step} / the best, step {state.best_step}" if loaded
             else f"마지막 step {state.global_step} / the last, step {state.global_step}")
    log(run.accelerator, f"best/: step {state.best_step} eval_loss {state.best_eval_loss:.4f}; "
                         f"출력 어댑터 / output adapter = {which}")
    return {"step": state.best_step, "eval_loss": state.best_eval_loss, "dir": BEST_DIR, "loaded_at_end": loaded}


def _generation_check(run: Run) -> dict[str, Any] | None:
    """Answers to `generation_check` eval questions by the adapter as saved (rank 0).

    Skipped under ZeRO/FSDP: generating there is a collective on partitioned weights, a cost
    and a hang risk out of proportion to a check.
    """
    cfg, acc = run.config, run.accelerator
    if cfg.generation_check <= 0 or not acc.is_main_process:
        return None
    if is_sharded(acc):
        log(acc, "[yellow]생성 확인은 ZeRO/FSDP에서 생략 / generation check skipped under ZeRO/FSDP[/]")
        return None
    from aldlab.train.generation_check import answer_questions, pick_questions, summary_line

    source = run.meta_inputs.get("eval_file") or run.meta_inputs["train_file"]
    questions = pick_questions(source, run.eval_examples, cfg.generation_check)
    check = answer_questions(run.peft_model, run.tokenizer, questions, acc.device)
    log(acc, summary_line(check))
    from rich.markup import escape

    for a in check["answers"]:  # read the output, not only the score
        ending = "" if a["stopped"] else " … (종료 토큰 없음 / no stop token)"
        question, answer = " ".join(a["question"].split())[-60:], " ".join(a["answer"].split())[:160]
        log(acc, escape(f"  [{a['style']}] {question} → {answer}{ending}"))
    return check
