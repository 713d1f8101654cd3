"""`aldlab pipeline`: KB validate -> data build -> train -> eval (+ report), resumable.

Every artefact lands under one run directory:

    runs/<preset>/
      manifest.json     inputs' hashes, config, versions, timings per stage
      data/             train.jsonl, eval.jsonl, stats.json, summary.md
      adapter/          LoRA adapter, training_meta.json, loss.png
      eval/             answers.jsonl, metrics.json, report.html, report.md

A stage is skipped when its recorded input hash (its config plus the hashes of the files
it reads) matches and its outputs exist; `--force` redoes every stage. Stages talk only
through these files, so any stage can be re-run alone with its own command.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from aldlab.cli_options import config_option, kb_option, preset_option
from aldlab.errors import UserError
from aldlab.files import atomic_write_json, sha256_text, sha256_tree
from aldlab.manifest import package_versions

console = Console(stderr=True)

STAGES = ("kb", "data", "train", "eval")


@dataclass
class StagePlan:
    """One stage: what it reads, what it must leave behind, and how to run it."""

    name: str
    inputs: dict[str, Any]
    outputs: list[Path]
    run: Callable[[], dict[str, Any]]


def _hash_inputs(inputs: dict[str, Any]) -> str:
    """Hash config values and the content of input files and directories (by content, not path)."""
    material: dict[str, Any] = {}
    for key, value in sorted(inputs.items()):
        path = Path(value) if isinstance(value, (str, Path)) else None
        material[key] = sha256_tree(path) if path is not None and path.exists() else value
    return sha256_text(json.dumps(material, sort_keys=True, default=str))


class RunManifest:
    """manifest.json of a run directory, rewritten atomically after every stage."""

    def __init__(self, run_dir: Path, preset: str | None) -> None:
        self.path = run_dir / "manifest.json"
        self.data: dict[str, Any] = {"preset": preset, "stages": {}}
        if self.path.exists():
            self.data = json.loads(self.path.read_text(encoding="utf-8"))
        self.data["versions"] = package_versions()

    def is_fresh(self, plan: StagePlan, input_hash: str) -> bool:
        record = self.data["stages"].get(plan.name, {})
        return (
            record.get("status") == "done"
            and record.get("input_hash") == input_hash
            and all(p.exists() for p in plan.outputs)
        )

    def record(self, name: str, input_hash: str, seconds: float, result: dict[str, Any]) -> None:
        self.data["stages"][name] = {
            "status": "done",
            "input_hash": input_hash,
            "seconds": round(seconds, 1),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "result": json.loads(json.dumps(result, default=str)),
        }
        atomic_write_json(self.path, self.data)


def run_pipeline(
    preset: str | None,
    run_dir: Path,
    *,
    kb_path: Path | None = None,
    config_file: Path | None = None,
    force: bool = False,
    stages: tuple[str, ...] = STAGES,
    model: str | None = None,
) -> RunManifest:
    """Run the stages in order, skipping the ones whose inputs did not change."""
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = RunManifest(run_dir, preset)
    plans = build_plans(preset, run_dir, kb_path=kb_path, config_file=config_file, model=model)
    for index, plan in enumerate(p for p in plans if p.name in stages):
        input_hash = _hash_inputs(plan.inputs)
        header = f"[{index + 1}/{len(stages)}] {plan.name}"
        if not force and manifest.is_fresh(plan, input_hash):
            console.print(f"[green]✓[/] {header}: 입력이 같아 건너뜀 / unchanged, skipped")
            continue
        console.rule(f"{header}")
        started = time.perf_counter()
        result = plan.run()
        seconds = time.perf_counter() - started
        manifest.record(plan.name, input_hash, seconds, result)
        console.print(f"[green]✓[/] {header}: {seconds:.0f}s")
    return manifest


@dataclass
class StageConfigs:
    """Every stage's typed config for one run directory, wired file to file."""

    kb: Path
    data: Any  # DataConfig
    train: Any  # TrainConfig
    eval: Any  # EvalConfig
    rag: Any  # RagConfig


def stage_configs(
    preset: str | None, run_dir: Path, *, kb_path: Path | None, config_file: Path | None, model: str | None = None
) -> StageConfigs:
    """Resolve every stage's typed config from the preset and wire files between stages.

    One resolver for `aldlab pipeline` and `aldlab improve`, so both train and evaluate the
    way the preset says. `model` (pipeline --model) replaces the preset's train.model_name;
    eval follows the trained model.
    """
    from aldlab.config import resolve_config
    from aldlab.data.config import DataConfig
    from aldlab.eval.config import EvalConfig
    from aldlab.rag.config import RagConfig
    from aldlab.settings import shipped_kb_dir
    from aldlab.train.config import TrainConfig

    kb = kb_path or shipped_kb_dir()
    data_dir, adapter_dir, eval_dir = run_dir / "data", run_dir / "adapter", run_dir / "eval"
    data_cfg = resolve_config(
        DataConfig, "data", preset=preset, config_file=config_file, overrides={"kb": kb, "output_dir": data_dir}
    )
    train_cfg = resolve_config(
        TrainConfig,
        "train",
        preset=preset,
        config_file=config_file,
        overrides={
            "train_file": data_dir / "train.jsonl",
            "eval_file": data_dir / "eval.jsonl",
            "output_dir": adapter_dir,
            # Both callers evaluate every answer of the adapter next (the eval stage, the gate):
            # the trainer's three-question generation check would only repeat that, at 2-2.5 min
            # with the 270M model on this CPU.
            "generation_check": 0,
            **({"model_name": model} if model else {}),
        },
    )
    eval_cfg = resolve_config(
        EvalConfig,
        "eval",
        preset=preset,
        config_file=config_file,
        overrides={"kb": kb, "adapter": adapter_dir, "output_dir": eval_dir, "model_name": train_cfg.model_name},
    )
    # Eval answers through the same retrieval and decoding settings `aldlab ask` would use.
    rag_cfg = resolve_config(RagConfig, "rag", preset=preset, config_file=config_file)
    return StageConfigs(kb, data_cfg, train_cfg, eval_cfg, rag_cfg)


def build_plans(
    preset: str | None, run_dir: Path, *, kb_path: Path | None, config_file: Path | None, model: str | None = None
) -> list[StagePlan]:
    """The four stages of `run_dir`, each with its inputs (for the skip check) and outputs."""
    from aldlab.config import config_to_dict

    cfg = stage_configs(preset, run_dir, kb_path=kb_path, config_file=config_file, model=model)
    kb, data_cfg, train_cfg, eval_cfg, rag_cfg = cfg.kb, cfg.data, cfg.train, cfg.eval, cfg.rag
    data_dir, adapter_dir, eval_dir = run_dir / "data", run_dir / "adapter", run_dir / "eval"
    return [
        StagePlan("kb", {"kb": kb}, [], lambda: _run_kb(kb)),
        StagePlan(
            "data",
            {"kb": kb, "config": config_to_dict(data_cfg)},
            [data_dir / "train.jsonl", data_dir / "eval.jsonl"],
            lambda: _run_data(data_cfg),
        ),
        StagePlan(
            "train",
            {"train": data_dir / "train.jsonl", "eval": data_dir / "eval.jsonl", "config": config_to_dict(train_cfg)},
            [adapter_dir / "adapter_model.safetensors"],
            lambda: _run_train(train_cfg),
        ),
        StagePlan(
            "eval",
            {
                "adapter": adapter_dir / "adapter_model.safetensors",
                "kb": kb,
                "config": config_to_dict(eval_cfg),
                "rag": config_to_dict(rag_cfg),
            },
            [eval_dir / "report.html", eval_dir / "metrics.json"],
            lambda: _run_eval(eval_cfg, rag_cfg),
        ),
    ]


def _run_kb(kb: Path) -> dict[str, Any]:
    from aldlab.kb.validate import validate_path

    report = validate_path(kb)
    if not report.ok:
        first = report.errors[0]
        raise UserError(
            f"KB 검사 실패: 오류 {len(report.errors)}개 (첫 오류: {first.where}: {first.ko})",
            f"KB validation failed: {len(report.errors)} errors (first: {first.where}: {first.en})",
            hint="`aldlab kb validate --kb ...`로 전체 목록을 보세요 / run `aldlab kb validate` for the full list",
        )
    return {"documents": report.documents, "warnings": len(report.warnings)}


def _run_data(config: Any) -> dict[str, Any]:
    from aldlab.data.build import build_dataset

    report = build_dataset(config)  # names each step on stderr while it runs
    rows = {side: report.stats[side]["rows"] for side in ("train", "eval")}
    console.print(f"데이터셋 / dataset: train {rows['train']} · eval {rows['eval']} → {report.output_dir}", highlight=False)
    return _summary(report)


def _run_train(config: Any) -> dict[str, Any]:
    from aldlab.store.registry import ModelRegistry
    from aldlab.train.trainer import train

    summary = _summary(train(config))
    # `aldlab ask/chat/serve` answer with the adapter this run trained, without being told:
    # it is registered and promoted (`aldlab models rollback` returns to the one before).
    registry = ModelRegistry()
    record = registry.register(
        config.output_dir, base_model=config.model_name, created_by=_actor(), dataset_hash=_file_hash(config.train_file),
        note="aldlab pipeline",
    )
    registry.promote(record.id, _actor(), note="aldlab pipeline")
    summary["model_id"] = record.id
    return summary


def _actor() -> str:
    """Who made or promoted a model, for the registry: the login name."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _file_hash(path: str | Path | None) -> str | None:
    from aldlab.files import sha256_file

    return sha256_file(path) if path and Path(path).is_file() else None


def _run_eval(config: Any, rag_config: Any) -> dict[str, Any]:
    from aldlab.eval.runner import run_eval

    return _summary(run_eval(config, rag_config=rag_config))


def _summary(result: Any) -> dict[str, Any]:
    """A JSON-safe dict of a stage result's scalar fields for the manifest."""
    from dataclasses import asdict, is_dataclass

    raw = asdict(result) if is_dataclass(result) else dict(getattr(result, "__dict__", {}))
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, (int, float, str, bool)) or value is None:
            out[key] = value
        elif isinstance(value, Path):
            out[key] = str(value)
    return out


def print_outcome(run_dir: Path) -> None:
    """Headline: the system comparison table from metrics.json and where the report is."""
    from aldlab.eval.metrics import MISSING_VALUE, format_estimate
    from aldlab.eval.report import retrieval_summary

    metrics_path = run_dir / "eval" / "metrics.json"
    if not metrics_path.exists():
        return
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    table = Table(title="시스템 비교 / system comparison (evalsets/seed.jsonl)")
    columns = ("system", "key-fact recall [95% CI]", "loops/echo", "support", "refusal F1", "latency (s)")
    for column in columns:
        table.add_column(column, justify="left" if column == "system" else "right")
    for name, values in metrics.get("systems", {}).items():
        loops = (values.get("repetition_or_echo_rate") or {}).get("value")
        table.add_row(
            name,
            format_estimate(values.get("keyfact_recall")),
            MISSING_VALUE if loops is None else f"{loops:.0%}",  # word salad that key-fact recall cannot see
            format_estimate(values.get("support"), 2, ci=False),
            format_estimate(values.get("refusal_f1"), ci=False),
            format_estimate(values.get("latency_s"), 1, ci=False),
        )
    out = Console()
    out.print(table)
    if metrics.get("headline"):
        out.print(str(metrics["headline"]))
    if retrieval_summary(metrics):
        out.print(retrieval_summary(metrics))
    out.print(Panel(f"보고서 / report: {run_dir / 'eval' / 'report.html'}"))
    out.print(
        "다음 / next: [bold]aldlab serve[/] → http://127.0.0.1:8000 (방금 학습한 어댑터로 답하는 웹 UI·API / the web UI and "
        "API answer with this adapter) · [bold]aldlab ask \"질문\"[/]",
        highlight=False,
    )


def pipeline_command(
    preset: str | None = preset_option(),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="실행 디렉터리 (기본 runs/<preset>, 프리셋 없으면 runs/default) / run directory"),
    kb: Path | None = kb_option(),
    config: Path | None = config_option(),
    force: bool = typer.Option(False, "--force", help="모든 단계를 다시 실행 / redo every stage"),
    only: str | None = typer.Option(None, "--only", help="일부 단계만, 예: data,train / run only these stages"),
    model: str | None = typer.Option(
        None, "--model", metavar="<id|dir>",
        help="학습할 기본 모델: Hub id, 로컬 디렉터리 또는 embedded (프리셋의 train.model_name 대신) / base model to tune: "
        "a Hub id, a local directory or 'embedded' (instead of the preset's train.model_name)",
    ),
) -> None:
    """KB 검사 → 데이터 → 학습 → 평가를 한 번에 / run stages end to end (resumable)."""
    selected = tuple(s.strip() for s in only.split(",")) if only else STAGES
    unknown = [s for s in selected if s not in STAGES]
    if unknown:
        raise UserError(
            f"알 수 없는 단계: {', '.join(unknown)}",
            f"Unknown stage(s): {', '.join(unknown)}",
            hint=f"가능 / valid: {', '.join(STAGES)}",
        )
    target = run_dir or Path("runs") / Path(preset or "default").stem
    started = time.perf_counter()
    run_pipeline(preset, target, kb_path=kb, config_file=config, force=force, stages=selected, model=model)
    console.print(f"전체 / total: {time.perf_counter() - started:.0f}s · 산출물 / artefacts: {target}")
    print_outcome(target)
