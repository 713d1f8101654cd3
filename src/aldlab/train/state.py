"""What a training run holds: the objects setup builds, the loop's resumable state, one
step's numbers and the result.

`LoopState` is exactly what a checkpoint stores next to the weights (`checkpoint.py`);
everything else in `Run` is rebuilt from the config on resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aldlab.train.config import TrainConfig
from aldlab.train.data import Example

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator
    from peft import PeftModel
    from transformers import PreTrainedTokenizerBase


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
    best_step: int | None = None  # the step whose adapter is in best/ (lowest eval loss after step 0)
    best_eval_loss: float | None = None


@dataclass
class LoopState:
    """Everything the loop needs to continue exactly where it stopped."""

    global_step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    supervised_tokens: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    # In the checkpoint, so a resumed run only replaces best/ with a really better adapter.
    best_step: int | None = None
    best_eval_loss: float | None = None


@dataclass(kw_only=True)
class Run:
    """Objects built by `trainer._setup` and shared by the loop, the checkpoints and the report.

    Keyword-only: twelve fields of which several share a type are too easy to swap by position.
    """

    config: TrainConfig
    accelerator: Accelerator
    tokenizer: PreTrainedTokenizerBase
    peft_model: PeftModel
    model: torch.nn.Module  # SupervisedCausalLM, possibly wrapped by DDP/DeepSpeed
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_examples: list[Example]
    eval_examples: list[Example]
    steps_per_epoch: int
    total_steps: int
    meta_inputs: dict[str, Any]


@dataclass
class StepStats:
    """What one optimizer step did, summed over ranks (logged in the history)."""

    loss: float  # mean loss per supervised token
    tokens: int  # supervised (answer) tokens
    padded_tokens: int  # positions the decoder ran over, padding included
    lr: float  # the learning rate this step's update used
