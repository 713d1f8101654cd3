"""The learning-rate schedule: warm-up, then constant, linear or cosine decay.

Our own rather than HF's `get_scheduler`, because HF's schedules give step 0 a factor 0
whenever there is warm-up, which wastes the first batch.
"""

from __future__ import annotations

import math
from typing import Any


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
