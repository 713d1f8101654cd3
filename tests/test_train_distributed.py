"""Multi-GPU configurations built on a CPU: the objects `accelerate launch` would create.

DeepSpeed and FSDP need CUDA here (accelerate turns FSDP into DDP on CPU; DeepSpeed is not
installed), so these tests go as far as a CPU can: they read configs/accelerate/*.yaml the
way `accelerate launch` does, build accelerate's DeepSpeed/FSDP plugins from the resulting
environment, apply the trainer's fills and check every value a launch depends on.
`scripts/gpu_smoke.sh` runs the real thing on GPUs.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from aldlab.errors import UserError
from aldlab.train.distributed import (
    device_map_for,
    eval_batches,
    fill_deepspeed_config,
    precision_plan,
)

REPO = Path(__file__).resolve().parents[1]


def _launch_env(config_file: str, deepspeed: bool) -> dict[str, str]:
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", config_file, "train.py"])
    args, _, _ = _validate_launch_command(args)
    if deepspeed:
        args.deepspeed_fields_from_accelerate_config = []
        return prepare_deepspeed_cmd_env(args)[1]
    return prepare_multi_gpu_env(args)


def _deepspeed_plugin(monkeypatch, name: str):  # noqa: ANN202
    """accelerate's DeepSpeedPlugin as `accelerate launch --config_file configs/accelerate/<name>.yaml` builds it."""
    from accelerate.utils import DeepSpeedPlugin

    monkeypatch.chdir(REPO)  # the YAML names the JSON relative to the repository root
    env = _launch_env(f"configs/accelerate/{name}.yaml", deepspeed=True)
    for key, value in env.items():
        if key.startswith("ACCELERATE"):
            monkeypatch.setenv(key, value)
    return DeepSpeedPlugin()


@pytest.mark.parametrize(("name", "stage"), [("deepspeed-zero2", 2), ("deepspeed-zero3", 3)])
def test_deepspeed_configs_get_every_value_a_launch_needs(monkeypatch, name: str, stage: int) -> None:
    """accelerate raised `ValueError` on prepare(model, optimizer) with micro batch "auto"."""
    plugin = _deepspeed_plugin(monkeypatch, name)
    assert plugin.zero_stage == stage
    assert plugin.zero3_init_flag == (stage == 3)
    plugin.set_mixed_precision("bf16")
    ds = fill_deepspeed_config(plugin.deepspeed_config, micro_batch_size=4, gradient_accumulation_steps=2,
                               world_size=8, max_grad_norm=0.5, mixed_precision="bf16")
    assert ds["train_micro_batch_size_per_gpu"] == 4 and ds["gradient_accumulation_steps"] == 2
    assert ds["train_batch_size"] == 64 and ds["gradient_clipping"] == 0.5
    assert ds["bf16"]["enabled"] is True and ds["fp16"]["enabled"] is False
    # What accelerate checks in _prepare_deepspeed: nothing left that needs a DataLoader.
    assert not plugin.is_auto("train_micro_batch_size_per_gpu")
    assert not plugin.is_auto("gradient_accumulation_steps")
    # A T4/V100 run: fp16 on, bf16 off.
    fp16 = fill_deepspeed_config({"bf16": {"enabled": "auto"}}, micro_batch_size=1, gradient_accumulation_steps=1,
                                 world_size=1, max_grad_norm=1.0, mixed_precision="fp16")
    assert fp16["fp16"]["enabled"] is True and fp16["bf16"]["enabled"] is False


def test_deepspeed_explicit_values_must_agree_with_the_config() -> None:
    with pytest.raises(UserError, match="train_micro_batch_size_per_gpu"):
        fill_deepspeed_config({"train_micro_batch_size_per_gpu": 8}, micro_batch_size=4,
                              gradient_accumulation_steps=1, world_size=2, max_grad_norm=1.0, mixed_precision="bf16")


def test_deepspeed_auto_bucket_sizes_can_be_filled_from_the_wrapped_model(tmp_path: Path) -> None:
    """ZeRO-3's "auto" bucket sizes need model.config.hidden_size on the prepared module."""
    from aldlab.train.loss import SupervisedCausalLM
    from aldlab.llm.model import load_model
    from aldlab.llm.tiny import build_tiny_model_dir

    wrapped = SupervisedCausalLM(load_model(str(build_tiny_model_dir(tmp_path / "m"))))
    assert wrapped.config.hidden_size == 32
    assert "Gemma3DecoderLayer" in wrapped._no_split_modules


def test_fsdp_config_builds_a_sharded_plugin_that_wraps_decoder_layers(monkeypatch, tmp_path: Path) -> None:
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
    from peft import LoraConfig, get_peft_model

    from aldlab.train.loss import SupervisedCausalLM
    from aldlab.llm.model import load_model
    from aldlab.llm.tiny import build_tiny_model_dir

    monkeypatch.chdir(REPO)
    env = _launch_env("configs/accelerate/fsdp.yaml", deepspeed=False)
    assert env["ACCELERATE_USE_FSDP"] == "true"
    for key, value in env.items():
        if key.startswith(("ACCELERATE", "FSDP")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2
    assert "SHARDED" in str(plugin.state_dict_type).upper()
    base = load_model(str(build_tiny_model_dir(tmp_path / "m")))
    model = SupervisedCausalLM(get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])))
    policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
    wrapped = [type(m).__name__ for m in model.modules() if policy(m)]
    assert wrapped.count("Gemma3DecoderLayer") == 2


def test_precision_and_placement_per_gpu_kind() -> None:
    assert precision_plan("auto", cuda=False, bf16_supported=False) == ("float32", "no")
    assert precision_plan("auto", cuda=True, bf16_supported=True) == ("bfloat16", "bf16")
    # T4 / V100: fp16 weights and autocast with a loss scaler, not emulated bf16.
    assert precision_plan("auto", cuda=True, bf16_supported=False) == ("float16", "fp16")
    assert precision_plan("bfloat16", cuda=True, bf16_supported=False) == ("float16", "fp16")
    assert precision_plan("float32", cuda=True, bf16_supported=True) == ("float32", "no")
    # Every rank loads onto its own GPU (no full copy in host RAM per rank), except ZeRO-3.
    assert device_map_for(cuda=True, local_rank=3, zero3=False) == {"": 3}
    assert device_map_for(cuda=True, local_rank=3, zero3=True) is None
    assert device_map_for(cuda=False, local_rank=0, zero3=False) is None


@pytest.mark.parametrize(("n", "world", "bs"), list(itertools.product(range(0, 12), (1, 2, 3, 4), (1, 2, 3))))
def test_eval_batches_are_equal_on_every_rank(n: int, world: int, bs: int) -> None:
    """A ZeRO-3/FSDP forward is collective: every rank must run as many eval batches."""
    order = list(range(n))
    per_rank = [eval_batches(order, r, world, bs) for r in range(world)]
    assert len({len(b) for b in per_rank}) == 1
    counted = sorted(i for batches in per_rank for rows, ok in batches if ok for i in rows)
    assert counted == order
    assert all(rows for batches in per_rank for rows, _ in batches)  # no empty forward


# --------------------------------------------------------------------------- dtype and 4-bit on a GPU


def _pretend_cuda(monkeypatch, bf16: bool) -> None:
    """The CUDA branches of the trainer and the loader, on this CPU machine."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)


@pytest.mark.parametrize(
    ("spelling", "plan", "loaded"),
    [
        ("bf16", ("bfloat16", "bf16"), "bfloat16"),
        ("BF16", ("bfloat16", "bf16"), "bfloat16"),
        ("torch.bfloat16", ("bfloat16", "bf16"), "bfloat16"),
        ("fp16", ("float16", "fp16"), "float16"),
        ("half", ("float16", "fp16"), "float16"),
        ("fp32", ("float32", "no"), "float32"),
        ("float32", ("float32", "no"), "float32"),
    ],
)
def test_documented_dtype_spellings_work_on_a_gpu(monkeypatch, spelling: str, plan: tuple, loaded: str) -> None:
    """`--dtype bf16`, as --help spells it, raised KeyError on CUDA: the plan kept 'bf16'."""
    import torch

    from aldlab.llm.model import torch_dtype
    from aldlab.train.config import TrainConfig

    _pretend_cuda(monkeypatch, bf16=True)
    config = TrainConfig(dtype=spelling)
    got = precision_plan(config.dtype, cuda=True, bf16_supported=True)
    assert got == plan
    assert torch_dtype(got.load_dtype) is getattr(torch, loaded)
    assert torch_dtype(spelling) is getattr(torch, loaded)  # the loader takes every spelling itself


def test_the_loader_takes_the_documented_spelling_on_cuda(monkeypatch, tmp_path: Path) -> None:
    import torch

    from aldlab.llm.model import LoadOptions, load_model
    from aldlab.llm.tiny import build_tiny_model_dir

    model_dir = build_tiny_model_dir(tmp_path / "m")
    _pretend_cuda(monkeypatch, bf16=True)
    model = load_model(str(model_dir), LoadOptions(dtype="bf16"))
    assert next(model.parameters()).dtype is torch.bfloat16


def test_a_bad_dtype_is_one_bilingual_line(captured_train) -> None:
    from typer.testing import CliRunner

    from aldlab.cli import app
    from aldlab.llm.model import torch_dtype
    from aldlab.train.config import TrainConfig

    with pytest.raises(UserError, match="dtype") as err:
        TrainConfig(dtype="fp8")
    assert "bf16" in err.value.hint and "값이 올바르지" in err.value.ko
    with pytest.raises(UserError, match="int8"):
        torch_dtype("int8")
    result = CliRunner().invoke(app, ["train", "--train_file", "t.jsonl", "--dtype", "bfloat32"])
    assert result.exit_code != 0 and isinstance(result.exception, UserError)
    assert not captured_train  # stopped before training
    assert CliRunner().invoke(app, ["train", "--train_file", "t.jsonl", "--dtype", "bf16"]).exit_code == 0
    assert captured_train[-1].dtype == "bfloat16"  # recorded in training_meta.json as torch names it


@pytest.fixture
def captured_train(monkeypatch) -> list:
    import aldlab.train.trainer as trainer_mod
    from aldlab.train.state import TrainResult

    seen: list = []

    def fake_train(config, progress: bool = True):  # noqa: ANN001, ANN202
        seen.append(config)
        return TrainResult(config.output_dir, 1.0, 1.0, 2.0, 3, 1.0, 10.0)

    monkeypatch.setattr(trainer_mod, "train", fake_train)
    return seen


@pytest.mark.parametrize(
    ("bf16_gpu", "dtype", "compute"),
    [(True, "auto", "bfloat16"), (False, "auto", "float16"), (False, "bf16", "float16"),
     (True, "fp16", "float16"), (True, "fp32", "float32")],
)
def test_four_bit_compute_dtype_follows_the_training_dtype(monkeypatch, bf16_gpu: bool, dtype: str, compute: str) -> None:
    """The compute dtype was bf16 everywhere, also on T4/V100 (no bf16) under fp16 autocast."""
    import torch

    from aldlab.llm.model import four_bit_config

    _pretend_cuda(monkeypatch, bf16=bf16_gpu)
    plan = precision_plan(dtype, cuda=True, bf16_supported=bf16_gpu)  # what the trainer loads with
    assert four_bit_config(plan.load_dtype).bnb_4bit_compute_dtype is getattr(torch, compute)


def _accelerator_like(kind: str, plugin=None):  # noqa: ANN001, ANN202
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    return SimpleNamespace(distributed_type=DistributedType[kind], state=SimpleNamespace(deepspeed_plugin=plugin))


@pytest.mark.parametrize(("kind", "config", "refused"), [
    ("DEEPSPEED", "deepspeed-zero3", True), ("DEEPSPEED", "deepspeed-zero2", False),
    ("FSDP", None, True), ("MULTI_GPU", None, False), ("NO", None, False),
])
def test_four_bit_is_refused_where_the_weights_are_sharded(monkeypatch, kind: str, config: str | None,
                                                           refused: bool) -> None:
    from aldlab.train.distributed import refuse_four_bit_with_sharded_weights

    accelerator = _accelerator_like(kind, _deepspeed_plugin(monkeypatch, config) if config else None)
    refuse_four_bit_with_sharded_weights(accelerator, load_in_4bit=False)  # bf16 LoRA runs anywhere
    if not refused:
        refuse_four_bit_with_sharded_weights(accelerator, load_in_4bit=True)
        return
    with pytest.raises(UserError, match="ZeRO-3" if config else "FSDP") as err:
        refuse_four_bit_with_sharded_weights(accelerator, load_in_4bit=True)
    assert "--load_in_4bit" in err.value.ko and "ddp.yaml" in err.value.hint


def test_the_trainer_refuses_four_bit_under_fsdp_before_loading_anything(monkeypatch, tmp_path: Path) -> None:
    import aldlab.llm.model as model_mod
    import aldlab.train.trainer as trainer_mod
    from aldlab.train.config import TrainConfig
    from aldlab.train.tiny import write_chat_jsonl

    def must_not_load(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("loaded before the 4-bit/FSDP check")

    monkeypatch.setattr(trainer_mod, "_accelerator", lambda config, mixed: _accelerator_like("FSDP"))
    monkeypatch.setattr(model_mod, "load_tokenizer", must_not_load)
    monkeypatch.setattr(model_mod, "load_model", must_not_load)
    data = write_chat_jsonl(tmp_path / "train.jsonl", 4)
    with pytest.raises(UserError, match="FSDP"):
        trainer_mod.train(TrainConfig(model_name="m", train_file=str(data), load_in_4bit=True), progress=False)


def test_cpu_says_it_trains_in_fp32_when_asked_for_bf16(monkeypatch, tmp_path: Path, capsys) -> None:
    """On CPU an explicit --dtype was dropped without a word."""
    import aldlab.llm.model as model_mod
    import aldlab.train.trainer as trainer_mod
    from aldlab.train.config import TrainConfig
    from aldlab.train.tiny import write_chat_jsonl

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise Stop

    monkeypatch.setattr(model_mod, "load_tokenizer", stop)
    data = write_chat_jsonl(tmp_path / "train.jsonl", 4)
    with pytest.raises(Stop):
        trainer_mod.train(TrainConfig(model_name="m", train_file=str(data), dtype="bf16"), progress=False)
    said = " ".join(capsys.readouterr().err.split())
    assert "fp32" in said and "--dtype bfloat16 is ignored" in said
    with pytest.raises(Stop):
        trainer_mod.train(TrainConfig(model_name="m", train_file=str(data)), progress=False)
    assert "ignored" not in capsys.readouterr().err


@pytest.mark.parametrize(("capability", "mixed"), [((7, 5), "fp16"), ((7, 0), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_auto_dtype_asks_the_gpu_generation_not_torchs_emulating_bf16_check(monkeypatch, tmp_path: Path,
                                                                          capability: tuple, mixed: str) -> None:
    """torch.cuda.is_bf16_supported() is True on a T4 (7.5) since torch 2.3 (it counts
    emulation): `dtype: auto` trained in emulated bf16 there instead of fp16."""
    import torch

    import aldlab.train.trainer as trainer_mod
    from aldlab.train.config import TrainConfig
    from aldlab.llm.model import native_bf16
    from aldlab.train.tiny import write_chat_jsonl

    class Stop(Exception):
        pass

    def capture(config, mixed):  # noqa: ANN001, ANN202
        seen.append(mixed)
        raise Stop

    seen: list[str] = []
    _pretend_cuda(monkeypatch, bf16=True)  # what torch says on a T4, too
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
    monkeypatch.setattr(trainer_mod, "_accelerator", capture)
    data = write_chat_jsonl(tmp_path / "train.jsonl", 4)
    with pytest.raises(Stop):
        trainer_mod.train(TrainConfig(model_name="m", train_file=str(data)), progress=False)
    assert seen == [mixed]
    assert native_bf16(None, rocm=True) and not native_bf16(None)
