"""scripts/gpu_smoke.sh on a CPU: the syntax, the early stop without CUDA, and --dry-run.

The dry run prints every command the GPU run would execute; the `aldlab train` lines are
fed back through the real CLI (training itself replaced), so a misspelled flag or a preset
that does not turn on 4-bit or gradient checkpointing fails here, not on the first GPU.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_smoke.sh"
MODEL = "Qwen/Qwen2.5-0.5B-Instruct"


def _run(*args: str, work: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--work", str(work)] if work else []
    return subprocess.run(["bash", str(SCRIPT), *args, *extra], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": "/tmp"})


def test_the_script_parses_and_passes_shellcheck() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    checked = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout


def test_without_cuda_it_stops_at_once_with_one_clear_message(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA machine would run the real smoke test")
    result = _run(work=tmp_path / "work")
    assert result.returncode == 2
    assert "CUDA GPU가 없습니다" in result.stderr and "No CUDA GPU" in result.stderr and "--dry-run" in result.stderr
    assert not (tmp_path / "work").exists()  # nothing started


def test_kill_step_must_come_before_the_last_step() -> None:
    result = _run("--dry-run", "--steps", "10", "--kill-after", "10")
    assert result.returncode == 2 and "--kill-after" in result.stderr


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    work = tmp_path_factory.mktemp("smoke")
    result = _run("--dry-run", "--vllm", "--model", MODEL, "--steps", "8", "--kill-after", "4", work=work)
    assert result.returncode == 0, result.stderr
    return result.stdout, json.loads((work / "results.json").read_text(encoding="utf-8"))


def _commands(stdout: str, word: str) -> list[list[str]]:
    """The printed command lines whose aldlab sub-command (or program) is `word`."""
    lines = [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]
    return [argv for argv in lines if word in argv]


def test_dry_run_lists_every_stage_in_the_table_and_results_json(dry_run) -> None:
    stdout, results = dry_run
    stages = [row["stage"] for row in results["stages"]]
    assert stages[:10] == ["cuda", "data", "qlora", "resume", "lora-bf16", "ask", "eval", "export", "reload", "vllm"]
    assert {row["status"] for row in results["stages"]} == {"DRY"}
    assert results["model"] == MODEL and (results["steps"], results["kill_after"]) == (8, 4)
    for stage in stages:
        assert stage in stdout  # the PASS/FAIL table


def test_dry_run_trains_with_the_seed_flags_through_the_presets(dry_run, monkeypatch) -> None:
    """Every printed `aldlab train` line parses with the real CLI into the intended config."""
    from typer.testing import CliRunner

    import aldlab.train.trainer as trainer_mod
    from aldlab.cli import app
    from aldlab.train.state import TrainResult

    stdout, _ = dry_run
    seen: list[Any] = []
    monkeypatch.setattr(trainer_mod, "train", lambda config, progress=True: (
        seen.append(config), TrainResult(config.output_dir, 1.0, 1.0, 2.0, 8, 1.0, 10.0))[1])
    lines = _commands(stdout, "train")
    single = [argv for argv in lines if "accelerate.commands.launch" not in argv]
    assert len(single) == 4  # qlora, resume (killed + resumed), lora-bf16
    for argv in lines:
        cli = argv[argv.index("train"):]
        for seed_flag in ("--model_name", "--train_file", "--eval_file", "--output_dir", "--num_epochs",
                          "--batch_size", "--learning_rate", "--save_inference_only"):
            assert seed_flag in cli
        result = CliRunner().invoke(app, cli)
        assert result.exit_code == 0, (cli, result.output)
    qlora, killed, resumed, bf16 = seen[:4]
    assert qlora.load_in_4bit and qlora.gradient_checkpointing and qlora.model_name == MODEL
    assert (qlora.max_steps, qlora.save_steps, qlora.save_inference_only, qlora.batch_size) == (8, 4, True, 4)
    assert killed.to_dict() | {"resume": True} == resumed.to_dict() and resumed.resume
    assert not bf16.load_in_4bit and bf16.dtype == "auto"
    # Multi-GPU configs: bf16 LoRA (4-bit is refused under ZeRO-3/FSDP), every accelerate config.
    launched = {argv[argv.index("--config_file") + 1] for argv in lines if "--config_file" in argv}
    assert launched == {f"configs/accelerate/{c}.yaml" for c in ("ddp", "deepspeed-zero2", "deepspeed-zero3", "fsdp")}
    assert all(not config.load_in_4bit for config in seen[4:])


def test_dry_run_reloads_exports_evaluates_and_serves_the_adapter(dry_run) -> None:
    stdout, _ = dry_run
    adapter = next(argv[argv.index("--output_dir") + 1] for argv in _commands(stdout, "train")
                   if "--resume" not in argv)
    export = _commands(stdout, "export")[0]
    assert export[export.index("export") + 1] == adapter and "--merge" in export
    asks = _commands(stdout, "ask")
    assert any(f"ft={adapter}" in argv for argv in asks) and any("--base" in argv and "--json" in argv for argv in asks)
    evaluate = _commands(stdout, "eval")[0]
    assert f"ft={adapter}" in evaluate and "ft,ft+rag" in evaluate
    vllm = _commands(stdout, "vllm")[0]
    assert "--enable-lora" in vllm and f"ald-ft={adapter}" in vllm
    serve = _commands(stdout, "serve")[-1]
    assert serve[serve.index("--llm-url") + 1] == "http://127.0.0.1:8011/v1"
