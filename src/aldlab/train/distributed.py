"""Multi-GPU plumbing of the trainer: precision and placement, DeepSpeed values, eval sharding.

Kept apart from `trainer.py` so that each decision is a small pure function a CPU test can
check without CUDA or DeepSpeed installed:

- `precision_plan`: bf16 where the GPU has it (`aldlab.llm.model.native_bf16`), fp16 weights + fp16 autocast (with a grad
  scaler) on GPUs without bf16 (T4, V100), fp32 on CPU.
- `device_map_for`: each rank loads the model straight onto its own GPU, so a 7B model does
  not first pass through host RAM once per rank (~15 GB each). Not under ZeRO-3, whose
  `zero3_init_flag` partitions the weights while they load.
- `fill_deepspeed_config`: the values the ZeRO JSON files leave as "auto" and that accelerate
  can only derive from a DataLoader (which this trainer does not use) — micro-batch size,
  accumulation, clipping and precision come from the TrainConfig instead.
- `refuse_four_bit_with_sharded_weights`: QLoRA is refused under ZeRO-3/FSDP before loading.
- `eval_batches`: every rank runs the same number of eval forwards (a ZeRO-3 or FSDP forward
  is a collective: a rank with one batch fewer would leave the others waiting forever).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from aldlab.llm.model import dtype_name

SHARDED_ENGINES = {"DEEPSPEED", "FSDP"}


class PrecisionPlan(NamedTuple):
    """How weights are loaded and which autocast accelerate runs."""

    load_dtype: str  # float32 | bfloat16 | float16 (aldlab.llm.model.torch_dtype names)
    mixed_precision: str  # no | bf16 | fp16 (accelerate's names)


def precision_plan(dtype: str, cuda: bool, bf16_supported: bool) -> PrecisionPlan:
    """`dtype: auto` -> bf16 on bf16 GPUs, fp16 on older GPUs, fp32 on CPU; explicit values win on a GPU.

    LoRA weights stay fp32 either way (PEFT upcasts adapters), so fp16 only needs the
    loss scaler accelerate adds for `mixed_precision="fp16"`.
    """
    if not cuda:
        return PrecisionPlan("float32", "no")
    dtype = dtype_name(dtype)  # the documented bf16/fp16/fp32 spellings, too
    if dtype == "auto":
        dtype = "bfloat16" if bf16_supported else "float16"
    if dtype == "bfloat16" and not bf16_supported:
        dtype = "float16"  # asking for bf16 on a T4/V100 would emulate it, many times slower
    mixed = {"bfloat16": "bf16", "float16": "fp16"}.get(dtype, "no")
    return PrecisionPlan(dtype, mixed)


def device_map_for(cuda: bool, local_rank: int, zero3: bool) -> dict[str, int] | None:
    """Load every weight onto this rank's GPU directly (None on CPU and under ZeRO-3)."""
    if not cuda or zero3:
        return None
    return {"": local_rank}


def engine_name(accelerator: Any) -> str:
    """DEEPSPEED / FSDP / MULTI_GPU / MULTI_CPU / NO, from accelerate's distributed type."""
    return str(getattr(accelerator.distributed_type, "value", accelerator.distributed_type)).upper()


def is_deepspeed(accelerator: Any) -> bool:
    return engine_name(accelerator) == "DEEPSPEED"


def is_sharded(accelerator: Any) -> bool:
    """Optimizer (and under ZeRO-3/FSDP parameter) state is split over ranks."""
    return engine_name(accelerator) in SHARDED_ENGINES


def zero_stage(accelerator: Any) -> int:
    plugin = getattr(getattr(accelerator, "state", None), "deepspeed_plugin", None)
    return int(getattr(plugin, "zero_stage", 0) or 0) if plugin is not None else 0


def refuse_four_bit_with_sharded_weights(accelerator: Any, load_in_4bit: bool) -> None:
    """4-bit QLoRA runs on one GPU, DDP or ZeRO-2; stop under ZeRO-3/FSDP before any loading.

    Both shard the parameters themselves, which bitsandbytes' packed 4-bit weights (loaded
    with a per-rank device map) do not survive; the error would come after minutes of
    loading a 7B model, or as a hang in the first collective.
    """
    engine = engine_name(accelerator)
    if not load_in_4bit or not (engine == "FSDP" or zero_stage(accelerator) == 3):
        return
    from aldlab.errors import UserError

    name = "FSDP" if engine == "FSDP" else "DeepSpeed ZeRO-3"
    raise UserError(
        f"--load_in_4bit(QLoRA)은 {name}와 함께 쓸 수 없습니다.",
        f"--load_in_4bit (QLoRA) cannot run under {name}: it shards the weights that 4-bit loading packs per GPU.",
        hint="4-bit은 단일 GPU, configs/accelerate/ddp.yaml 또는 deepspeed-zero2.yaml로; ZeRO-3/FSDP는 4-bit 없이 "
        "/ use 4-bit on one GPU, ddp.yaml or deepspeed-zero2.yaml; ZeRO-3/FSDP without --load_in_4bit",
    )


def fill_deepspeed_config(
    ds_config: dict[str, Any],
    *,
    micro_batch_size: int,
    gradient_accumulation_steps: int,
    world_size: int,
    max_grad_norm: float,
    mixed_precision: str,
) -> dict[str, Any]:
    """Replace the batch/clipping/precision "auto" values of a DeepSpeed config in place.

    accelerate fills `train_micro_batch_size_per_gpu: auto` only from a prepared DataLoader
    and raises otherwise; our loop batches by itself, so the values come from the config.
    Explicit numbers in the JSON must agree with the config (a silent mismatch would make
    DeepSpeed step at a different boundary than the loop).
    """
    wanted = {
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": gradient_accumulation_steps,
        "train_batch_size": micro_batch_size * gradient_accumulation_steps * world_size,
        "gradient_clipping": float(max_grad_norm or 0.0),
    }
    for key, value in wanted.items():
        current = ds_config.get(key, "auto")
        if current == "auto":
            ds_config[key] = value
        elif float(current) != float(value):
            from aldlab.errors import UserError

            raise UserError(
                f"DeepSpeed 설정의 {key}={current} 값이 학습 설정({value})과 다릅니다.",
                f"DeepSpeed config sets {key}={current}, the training config implies {value}.",
                hint=f'JSON에서 "{key}": "auto" 로 두세요 / set "{key}": "auto" in the JSON',
            )
    for section, mode in (("bf16", "bf16"), ("fp16", "fp16")):
        block = ds_config.setdefault(section, {})
        if block.get("enabled", "auto") == "auto":
            block["enabled"] = mixed_precision == mode
    return ds_config


def eval_batches(order: list[int], rank: int, world: int, batch_size: int) -> list[tuple[list[int], bool]]:
    """This rank's eval batches as (row indices, counted); the same count on every rank.

    Rows are dealt round-robin; a rank whose share needs fewer batches repeats its first
    row in uncounted filler batches, so every rank calls the model equally often.
    """
    mine = order[rank::world]
    per_rank = math.ceil(len(order) / world) if order else 0
    n_batches = math.ceil(per_rank / batch_size) if per_rank else 0
    batches = [(mine[i : i + batch_size], True) for i in range(0, len(mine), batch_size)]
    filler = [mine[0] if mine else order[0]] if order else []
    while len(batches) < n_batches:
        batches.append((filler, False))
    return batches
