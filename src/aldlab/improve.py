"""`aldlab improve` and `aldlab models`: approved feedback -> a candidate -> the gate -> promoted.

    aldlab improve --preset cpu-demo          # train a candidate on new approved feedback, gate, promote
    aldlab models list                        # every model, which one serves
    aldlab models rollback                    # serve the model the current one replaced

One run reads top to bottom in `run_improve`:

1. lock (`improve.lock` with the PID; a lock whose process is gone is taken over),
2. the approved feedback the promoted model was not trained on (at least `min_new_feedback`),
3. the dataset from the KB plus *all* approved feedback (so training from the base keeps
   the earlier corrections too) -> `pipeline._run_data`,
4. a candidate adapter, warm-started from the promoted one unless `--from-base` -> `train`,
5. a load check of the candidate, then one eval run per question set with both models
   answering the same questions -> `run_eval`; the sets are `dev_sets` (user-dev, holdout)
   and the corrected questions themselves,
6. the gate (`aldlab.eval.gate`): promote only when no set is worse beyond the tolerance
   and more corrected questions are answered correctly,
7. the candidate registered (with its scores; rejected or promoted).

Everything before 7 happens in `registry/staging/<run>`: a run killed at any point leaves
the registry and the promoted pointer as they were, and the server keeps serving.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from aldlab.cli_options import config_option, config_options, kb_option, preset_option
from aldlab.errors import UserError
from aldlab.files import atomic_write_json, atomic_write_jsonl, atomic_write_text, sha256_file
from aldlab.settings import REPO_ROOT

console = Console(stderr=True)
out = Console(soft_wrap=True)


@dataclass
class ImproveConfig:
    """The `improve:` section: where feedback comes from, how the candidate trains, the gate.

    A field with help metadata is an `aldlab improve` flag.
    """

    db: str | None = field(default=None, metadata={"help": "피드백 DB (기본: aldlab serve 기본 경로) / feedback DB"})
    #: Sets both models answer, besides the corrected questions. user-dev is the user-style
    #: dev set the recipe is tuned on, holdout the set nothing was tuned on.
    dev_sets: list[str] = field(default_factory=lambda: ["evalsets/user-dev.jsonl", "evalsets/holdout.jsonl"],
                                metadata={"help": "비교할 질문 세트 (쉼표) / question sets to compare on, comma-separated"})
    #: Warm start from the promoted adapter (default) or train from the base. Measured on the
    #: 270M model with ten approved corrections: 15 warm-start steps answered 1 more corrected
    #: question (10:22 in all); 50 steps from the base (the main command's training) answered
    #: none more and were rejected at the corrections (11:29).
    from_base: bool = field(default=False, metadata={
        "help": "승격 모델이 아니라 베이스에서 학습 / train from the base model instead of the promoted adapter"})
    tolerance: float = field(default=0.05, metadata={
        "help": "세트별 허용 하락 (차이 95% CI 하한 > -값) / allowed drop per set (CI lower bound > -tolerance)"})
    correct_recall: float = field(default=0.5, metadata={
        "help": "교정 질문 정답 기준 (교정 핵심 사실 재현율) / key-fact recall of a correction that counts as correct"})
    min_new_feedback: int = field(default=1, metadata={
        "help": "새 승인 피드백이 이만큼 있어야 실행 / run only with at least this many new approved items", "min": 1})
    limit: int | None = field(default=None, metadata={
        "help": "세트별 앞의 N개 질문만 (빠른 점검) / first N questions of each set (quick check)", "min": 1})
    promote: bool = field(default=True, metadata={
        "help": "게이트 통과 시 승격 (--no-promote: 평가만) / promote when the gate passes"})
    #: The promoted model's answers from an earlier run when nothing they depend on changed
    #: (`eval.answer_cache`): about half the gate's time on a CPU.
    reuse_answers: bool = field(default=True, metadata={
        "help": "현재 모델의 이전 답 재사용 (--no-reuse-answers: 다시 답하게) / reuse the current model's earlier answers"})


@dataclass
class ImproveOutcome:
    """What one run did: the candidate's id, the decision, where its outputs are."""

    model_id: str | None
    promoted: bool
    decision: Any  # aldlab.eval.gate.GateDecision, None when the candidate never got that far
    run_dir: Path
    reasons: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the lock

@contextlib.contextmanager
def improve_lock(path: Path) -> Iterator[None]:
    """One improve run at a time: `path` holds the running PID; a dead PID's lock is stale.

    Not `flock`: the lock must also say *who* holds it, and a run killed with SIGKILL leaves
    the file behind, which the next run recognises by its PID no longer running.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(path)
            if holder is not None and _alive(holder):
                raise UserError(
                    f"다른 aldlab improve 가 실행 중입니다 (PID {holder}).",
                    f"Another aldlab improve is running (PID {holder}).",
                    path=path,
                    hint="끝날 때까지 기다리세요 / wait for it to finish",
                ) from None
            console.print(f"[yellow]오래된 잠금 파일을 지웁니다 / removing a stale lock[/] (PID {holder})")
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return
    raise UserError("잠금을 얻지 못했습니다.", "Could not take the improve lock.", path=path)


def _lock_holder(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM  # exists, owned by someone else
    return True


# --------------------------------------------------------------------------- the run

def new_feedback(rows: Sequence[dict[str, Any]], used: set[int]) -> list[dict[str, Any]]:
    """Approved rows the promoted model was not trained on."""
    return [r for r in rows if int(r["feedback_id"]) not in used]


def resolve_set(path: str | Path) -> Path:
    """A question set path as given, else relative to the checkout (evalsets/...)."""
    p = Path(path)
    return p if p.exists() or p.is_absolute() else REPO_ROOT / p


def run_improve(
    preset: str | None,
    config: ImproveConfig,
    *,
    kb_path: Path | None = None,
    config_file: Path | None = None,
    actor: str | None = None,
    assistant_factory: Callable[[Any, Any], Any] | None = None,
    load_check: Callable[[str | None, Path], None] | None = None,
) -> ImproveOutcome:
    """One improvement run (see the module docstring). `assistant_factory` and `load_check`
    replace the real model in tests; everything else is the stages' own functions."""
    from aldlab.pipeline import _actor
    from aldlab.store.registry import ModelRegistry

    registry = ModelRegistry()
    actor = actor or _actor()
    with improve_lock(registry.root / "improve.lock"):
        _clear_stale_staging(registry.staging_dir)
        current = registry.promoted()
        rows = _approved_rows(config.db)
        used = set(current.feedback_ids) if current else set()
        fresh = new_feedback(rows, used)
        if len(fresh) < config.min_new_feedback:
            raise UserError(
                f"새로 승인된 피드백이 {len(fresh)}개뿐입니다 (필요: {config.min_new_feedback}개).",
                f"Only {len(fresh)} new approved feedback items (need {config.min_new_feedback}).",
                hint="`aldlab feedback list` 로 검토·승인하세요 / review and approve with `aldlab feedback list`",
            )
        run_dir = registry.staging_dir / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        outcome = _train_and_gate(
            preset, config, run_dir, rows, fresh, current, kb_path=kb_path, config_file=config_file,
            assistant_factory=assistant_factory, load_check=load_check or check_candidate_loads,
            answers_dir=registry.root / "answers",
        )
        return _register(registry, outcome, config, current, rows, actor)


def _approved_rows(db: str | None) -> list[dict[str, Any]]:
    from aldlab.serve.settings import default_db_path
    from aldlab.store.feedback import export_feedback_rows

    return export_feedback_rows(Path(db) if db else default_db_path(), "approved")


def _clear_stale_staging(staging: Path) -> None:
    """Remove what killed runs left (we hold the lock: no other run is writing here)."""
    if staging.is_dir():
        for leftover in staging.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)


def _train_and_gate(
    preset: str | None,
    config: ImproveConfig,
    run_dir: Path,
    rows: list[dict[str, Any]],
    fresh: list[dict[str, Any]],
    current: Any,
    *,
    kb_path: Path | None,
    config_file: Path | None,
    assistant_factory: Callable[[Any, Any], Any] | None,
    load_check: Callable[[str | None, Path], None],
    answers_dir: Path | None = None,
) -> ImproveOutcome:
    """Stages 3-6 in `run_dir`; outside it only the answer cache is written (`eval.answer_cache`)."""
    from aldlab.eval.gate import correction_questions
    from aldlab.pipeline import _run_data, stage_configs
    from aldlab.train.trainer import train

    cfg = stage_configs(preset, run_dir, kb_path=kb_path, config_file=config_file)
    feedback_file = run_dir / "feedback.jsonl"
    atomic_write_jsonl(feedback_file, rows)
    cfg.data.feedback = [feedback_file]
    console.rule("[1/3] 데이터 / dataset: KB + 승인 피드백 / approved feedback")
    _run_data(cfg.data)

    console.rule("[2/3] 후보 학습 / training the candidate")
    if current is not None and not config.from_base:
        cfg.train.init_adapter = current.adapter_dir
    train(cfg.train)
    candidate_dir = Path(cfg.train.output_dir)

    console.rule("[3/3] 평가와 게이트 / evaluation and the gate")
    try:
        load_check(cfg.train.model_name, candidate_dir)
    except Exception as exc:  # noqa: BLE001 - any failure to load means: never promoted
        reason = f"후보 어댑터를 불러올 수 없습니다 / the candidate does not load: {_short(exc)}"
        return ImproveOutcome(None, False, None, run_dir, [reason])
    corrections = correction_questions([r for r in fresh if r.get("correction")])
    sets = {Path(s).stem: resolve_set(s) for s in config.dev_sets}
    if corrections:
        sets["corrections"] = run_dir / "corrections.jsonl"
        atomic_write_jsonl(sets["corrections"], (q.to_json() for q in corrections))
    decision = evaluate_and_decide(
        cfg, sets, current, candidate_dir, config, run_dir, assistant_factory, answers_dir=answers_dir
    )
    atomic_write_json(run_dir / "gate.json", decision.to_json())
    from aldlab.eval.gate import markdown_table

    atomic_write_text(run_dir / "gate.md", markdown_table(decision))
    return ImproveOutcome(None, decision.promote, decision, run_dir, list(decision.reasons))


def evaluate_and_decide(
    cfg: Any,
    sets: dict[str, Path],
    current: Any,
    candidate_dir: Path,
    config: ImproveConfig,
    run_dir: Path,
    assistant_factory: Callable[[Any, Any], Any] | None,
    *,
    answers_dir: Path | None = None,
) -> Any:
    """Both models answer every set (one shared assistant); the gate decides.

    The corrected questions go first: a candidate that does not answer more of them
    correctly is rejected whatever the other sets say, so they are then not evaluated.
    The current model's answers come from `answers_dir` (`eval.answer_cache`) when it answered
    the same set under the same settings before; the candidate's are kept there for the day it
    is the current model.
    """
    from aldlab.eval.gate import GateSettings, compare_corrections, compare_set, decide

    settings = GateSettings(config.tolerance, config.correct_recall, cfg.eval.bootstrap_samples, cfg.eval.seed)
    current_system = "current+rag" if current is not None else "base+rag"
    shared: dict[str, Any] = {}
    kb_hash = _dataset_kb_hash(run_dir / "data" / "manifest.json")
    results, cached = [], []
    order = sorted(sets, key=lambda name: name != "corrections")
    for k, name in enumerate(order):
        items, from_cache = _answer_set(
            cfg, sets[name], run_dir / "eval" / name, current, current_system, candidate_dir, config,
            assistant_factory, shared, answers_dir, kb_hash,
        )
        if from_cache:
            cached.append(name)
        if name == "corrections":
            results.append(compare_corrections(items, current_system, "candidate+rag", settings))
            if not results[-1].passed:
                return decide(results, settings, skipped=order[k + 1:], cached=cached)
        else:
            results.append(compare_set(name, items, current_system, "candidate+rag", settings))
    return decide(results, settings, cached=cached)


def _answer_set(
    cfg: Any,
    path: Path,
    output_dir: Path,
    current: Any,
    current_system: str,
    candidate_dir: Path,
    config: ImproveConfig,
    assistant_factory: Callable[[Any, Any], Any] | None,
    shared: dict[str, Any],
    answers_dir: Path | None,
    kb_hash: str | None,
) -> tuple[list[dict[str, Any]], bool]:
    """One set's scored rows for both systems, and whether the current model's came from the cache."""
    from aldlab.eval import answer_cache
    from aldlab.eval.runner import default_assistant_factory, run_eval

    def factory(eval_cfg: Any, rag_cfg: Any) -> Any:
        # One model load for every set: the assistant is built once and asked again.
        if "assistant" not in shared:
            shared["assistant"] = (assistant_factory or default_assistant_factory)(eval_cfg, rag_cfg)
        return shared["assistant"]

    eval_cfg = cfg.eval
    eval_cfg.questions, eval_cfg.output_dir = path, output_dir
    eval_cfg.limit, eval_cfg.judge_url, eval_cfg.adapter = config.limit, None, None
    reuse = answers_dir is not None and config.reuse_answers
    keys = {"candidate+rag": answer_cache.answer_key(candidate_dir, path, kb_hash, eval_cfg, cfg.rag)} if reuse else {}
    kept = None
    if reuse and current is not None:
        keys[current_system] = answer_cache.answer_key(current.adapter_dir, path, kb_hash, eval_cfg, cfg.rag)
        kept = answer_cache.load_answers(answers_dir, keys[current_system])
    adapters = {"candidate": str(candidate_dir)}
    if current is not None and kept is None:
        adapters["current"] = current.adapter_dir
    eval_cfg.adapters = adapters
    eval_cfg.systems = ["candidate+rag"] if kept is not None else [current_system, "candidate+rag"]
    note = " (현재 모델 답은 캐시에서 / the current model's answers from the cache)" if kept is not None else ""
    console.print(f"평가 / eval: {path.stem} ({path}){note}")
    items = list(run_eval(eval_cfg, rag_config=cfg.rag, assistant_factory=factory).metrics["items"])
    if kept is not None:
        items += answer_cache.as_system(kept, current_system)
    for system, key in keys.items():
        if system != current_system or kept is None:
            answer_cache.save_answers(answers_dir, key, items, system)  # type: ignore[arg-type]
    return items, kept is not None


def _dataset_kb_hash(manifest: Path) -> str | None:
    """The KB content hash `data build` recorded (None when the run has no manifest)."""
    if not manifest.is_file():
        return None
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return json.loads(manifest.read_text(encoding="utf-8"))["inputs"]["kb"].get("content_hash")
    return None


def check_candidate_loads(model_name: str | None, adapter_dir: Path) -> None:
    """Load the base with the candidate attached and generate a few tokens: an adapter that
    does not load (or crashes on first use) must fail here, not in the server after promotion."""
    from aldlab.llm.adapters import check_adapter_dir
    from aldlab.llm.hf_generate import HFGenerator

    check_adapter_dir(adapter_dir)
    generator = HFGenerator(model_name, {"candidate": str(adapter_dir)})
    generator.generate([{"role": "user", "content": "ALD"}], max_new_tokens=2, adapter="candidate")


def _register(
    registry: Any, outcome: ImproveOutcome, config: ImproveConfig, current: Any, rows: list[dict[str, Any]], actor: str
) -> ImproveOutcome:
    """Stage 7: the candidate becomes a record (last: a killed run registers nothing)."""
    adapter_dir = outcome.run_dir / "adapter"
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        return outcome
    scores = outcome.decision.to_json() if outcome.decision is not None else {"reasons": outcome.reasons}
    data_manifest = outcome.run_dir / "data" / "manifest.json"
    kb_hash = _dataset_kb_hash(data_manifest)
    record = registry.register(
        adapter_dir,
        base_model=_base_model(adapter_dir, current),
        created_by=actor,
        parent=current.id if current else None,
        kb_hash=kb_hash,
        dataset_hash=sha256_file(outcome.run_dir / "data" / "train.jsonl"),
        feedback_ids=sorted(int(r["feedback_id"]) for r in rows),
        scores=scores,
        note="warm start" if current is not None and not config.from_base else "from base",
    )
    outcome.model_id = record.id
    if outcome.promoted and config.promote:
        registry.promote(record.id, actor, note="aldlab improve: 게이트 통과 / gate passed")
    else:
        outcome.promoted = False
        note = "; ".join(outcome.reasons) or "--no-promote"
        registry.set_status(record.id, "rejected" if outcome.reasons else "candidate", note=note, by=actor)
    kept = registry.root / "runs" / record.id
    kept.parent.mkdir(parents=True, exist_ok=True)
    os.replace(outcome.run_dir, kept)  # eval outputs and the gate table stay with the record
    outcome.run_dir = kept
    return outcome


def _base_model(adapter_dir: Path, current: Any) -> str | None:
    meta = adapter_dir / "training_meta.json"
    if meta.is_file():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return json.loads(meta.read_text(encoding="utf-8"))["config"]["model_name"]
    return current.base_model if current else None


def _short(exc: BaseException) -> str:
    text = exc.render() if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0][:300] if text else type(exc).__name__


# --------------------------------------------------------------------------- commands

def print_decision(outcome: ImproveOutcome) -> None:
    """The gate's table, then what happened and why."""
    from aldlab.eval.gate import TABLE_HEADER

    if outcome.decision is not None:
        table = Table(title=f"후보 / candidate {outcome.model_id or ''} vs 현재 / current")
        for column in TABLE_HEADER:
            table.add_column(column, justify="left" if column in ("set", "gate") else "right")
        for row in outcome.decision.rows():
            table.add_row(*row)
        out.print(table)
    if outcome.promoted:
        out.print(f"[green]승격 / promoted:[/] {outcome.model_id} — 서버는 재시작 없이 새 모델로 답합니다 / "
                  "running servers switch to it without a restart")
    else:
        out.print(f"[yellow]현재 모델 유지 / kept the current model[/] (후보 / candidate: {outcome.model_id or '-'})")
        for reason in outcome.reasons:
            out.print(f"  - {reason}", highlight=False)
    out.print(f"산출물 / outputs: {outcome.run_dir}")


@config_options(ImproveConfig, show_defaults=True)
def improve_command(
    overrides: dict[str, Any],
    preset: str | None = preset_option(),
    kb: Path | None = kb_option(),
    config: Path | None = config_option(),
) -> None:
    """승인된 피드백으로 후보 모델 학습 → 게이트 → 승격 / approved feedback -> candidate -> gate -> promote."""
    from aldlab.config import resolve_config

    settings = resolve_config(ImproveConfig, "improve", preset=preset, config_file=config, overrides=overrides)
    started = time.perf_counter()
    outcome = run_improve(preset, settings, kb_path=kb, config_file=config)
    print_decision(outcome)
    console.print(f"전체 / total: {time.perf_counter() - started:.0f}s")


models_app = typer.Typer(no_args_is_help=True, help="모델 레지스트리 / model registry: list, show, promote, rollback")


@models_app.command("list")
def models_list() -> None:
    """등록된 모델 목록 / every registered model, the promoted one marked."""
    from aldlab.store.registry import ModelRegistry

    records = ModelRegistry().records()
    if not records:
        out.print("등록된 모델이 없습니다 / no models: `aldlab pipeline` 또는 `aldlab improve` 로 만드세요")
        return
    table = Table(title="모델 / models")
    for column in ("id", "status", "parent", "feedback", "created", "promoted", "note"):
        table.add_column(column)
    for r in records:
        mark = "[green]● promoted[/]" if r.status == "promoted" else r.status
        promoted = f"{r.promoted_at or ''} {r.promoted_by or ''}".strip()
        table.add_row(r.id, mark, r.parent or "", str(len(r.feedback_ids)), f"{r.created_at} {r.created_by}",
                      promoted, r.note[:60])
    out.print(table)


@models_app.command("show")
def models_show(model_id: str = typer.Argument(..., help="모델 id (예: v0002) / model id")) -> None:
    """한 모델의 전체 기록 (JSON) / one model's full record as JSON."""
    from aldlab.store.registry import ModelRegistry

    out.print_json(json.dumps(ModelRegistry().get(model_id).to_json(), ensure_ascii=False))


@models_app.command("promote")
def models_promote(
    model_id: str = typer.Argument(..., help="승격할 모델 id / model id to promote"),
    by: str | None = typer.Option(None, "--by", help="기록할 이름 (기본: 로그인 이름) / name recorded"),
) -> None:
    """모델을 수동 승격 (불러오기 점검 후) / promote a model by hand, after a load check."""
    from aldlab.pipeline import _actor
    from aldlab.store.registry import ModelRegistry

    registry = ModelRegistry()
    record = registry.get(model_id)
    try:
        check_candidate_loads(record.base_model, Path(record.adapter_dir))
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"모델 {model_id} 를 불러올 수 없어 승격하지 않습니다.", f"Model {model_id} does not load: "
                        f"{_short(exc)}; not promoted.") from exc
    registry.promote(model_id, by or _actor(), note="aldlab models promote")
    out.print(f"승격 / promoted: {model_id}")


@models_app.command("rollback")
def models_rollback(by: str | None = typer.Option(None, "--by", help="기록할 이름 / name recorded")) -> None:
    """현재 모델이 대체한 이전 모델로 되돌림 / serve again the model the current one replaced."""
    from aldlab.pipeline import _actor
    from aldlab.store.registry import ModelRegistry

    record = ModelRegistry().rollback(by or _actor())
    out.print(f"되돌림 / rolled back to: {record.id}")
