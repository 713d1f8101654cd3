"""`run_eval`: answer every question with every system, score, judge, report.

The base model is loaded once; the Assistant's generator switches LoRA adapters per
request, so comparing base / ft / base+rag / ft+rag costs one model load, not four.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from aldlab.config import config_to_dict
from aldlab.errors import UserError
from aldlab.eval.config import EvalConfig
from aldlab.eval.metrics import answer_metrics, bootstrap_mean, format_estimate, group_keyfact_recall, summarize_rows
from aldlab.evalset import Question, load_questions
from aldlab.files import atomic_write_json, atomic_write_jsonl, sha256_file
from aldlab.llm.adapters import check_adapter_dir
from aldlab.manifest import kb_record, package_versions
from aldlab.progress import progress_bar
from aldlab.prompts import is_refusal
from aldlab.rag.types import Answer, AskOptions

RAG_SUFFIX = "+rag"
#: The honest yardstick: the top-1 retrieved passage shown verbatim, no LLM (a search box).
PASSAGE_SYSTEM = "passage"


class AnswersQuestions(Protocol):
    """What the runner needs: answers to many questions for one setting (`BatchAnswerer`)."""

    def answer_batch(self, questions: Sequence[str], options: AskOptions) -> list[Answer]: ...


AssistantFactory = Callable[[EvalConfig, Any], AnswersQuestions]


@dataclass(frozen=True)
class System:
    """One evaluated system: a model ("base" or an adapter name) with or without retrieval."""

    name: str
    model: str
    use_retrieval: bool
    #: Answer with the top-1 retrieved passage's text (no model), after the same refusal gate.
    passage: bool = False


@dataclass
class EvalResult:
    """Where the outputs went and the metrics that were written to metrics.json."""

    output_dir: Path
    metrics: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)
    passed: bool | None = None  # None when no --fail-under gate was set


def parse_systems(names: Sequence[str] | str, adapters: dict[str, str]) -> list[System]:
    """`base,ft,base+rag,ft+rag` -> Systems; adapter names must have a directory."""
    if isinstance(names, str):
        names = [n for n in names.split(",")]
    systems: list[System] = []
    for raw in names:
        name = str(raw).strip()
        if not name:
            continue
        if any(s.name == name for s in systems):
            continue
        systems.append(_parse_system(name, adapters))
    if not systems:
        raise UserError("평가할 시스템이 없습니다.", "No systems to evaluate.", hint="--systems base,ft,base+rag,ft+rag")
    return systems


def _parse_system(name: str, adapters: dict[str, str]) -> System:
    if name == PASSAGE_SYSTEM:
        return System(name, "base", True, passage=True)
    model, rag = (name[: -len(RAG_SUFFIX)], True) if name.endswith(RAG_SUFFIX) else (name, False)
    if model != "base" and model not in adapters:
        known = ", ".join(["base", *adapters]) or "base"
        raise UserError(
            f"시스템 '{name}'에 필요한 어댑터 '{model}'가 지정되지 않았습니다.",
            f"System '{name}' needs an adapter named '{model}', which was not given.",
            hint=f"--adapter DIR (이름 ft) 또는 설정의 adapters를 지정하세요; 사용 가능: {known} "
            f"/ pass --adapter DIR (named ft) or set eval.adapters; known: {known}",
        )
    return System(name, model, rag)


def check_adapter_dirs(adapters: dict[str, str], systems: Sequence[System]) -> None:
    """Every adapter a system uses must be an existing directory."""
    for system in systems:
        if system.model == "base":
            continue
        check_adapter_dir(Path(adapters[system.model]).expanduser())


def default_assistant_factory(config: EvalConfig, rag_config: Any) -> AnswersQuestions:
    """The real RAG Assistant (base model loaded once, every adapter attached), answering in batches.

    Built by `aldlab.rag.build.build_assistant`, the one builder ask, chat and serve use, so
    the preset's retrieval and decoding settings (and `rag.llm_url` for a served model)
    apply in eval exactly as there.
    """
    from aldlab.eval.batch import BatchAnswerer
    from aldlab.rag.build import build_assistant
    from aldlab.rag.config import RagConfig

    assistant = build_assistant(
        config.kb, rag_config or RagConfig(), model_name=config.model_name, adapters=config.adapter_dirs() or None
    )
    return BatchAnswerer(assistant, batch_size=config.batch_size)


def _contexts(answer: Answer) -> list[dict[str, Any]]:
    return [
        {"id": p.id, "title": p.title, "score": round(float(p.score), 4), "text": p.text}
        for p in answer.passages
    ]


def answer_row(system: System, question: Question, answer: Answer, elapsed: float) -> dict[str, Any]:
    """One answers.jsonl line. `refused` is the Assistant's verdict (a refusal before the
    LLM) or `prompts.is_refusal` on the text, the classifier the service uses."""
    text = answer.text or ""
    return {
        "system": system.name,
        "id": question.id,
        "question": question.question,
        "answer": text,
        "contexts": _contexts(answer) if system.use_retrieval else [],
        "refused": bool(answer.refused) or is_refusal(text),
        "latency_s": round(float(answer.latency_s or 0.0) or elapsed, 3),
        "confidence": round(float(answer.confidence or 0.0), 4),
    }


def _answer_chunk(
    assistant: AnswersQuestions, system: System, questions: Sequence[Question], max_new_tokens: int | None
) -> list[Answer]:
    texts = [q.question for q in questions]
    if system.passage:
        # The same plan (retrieval, refusal gate) with no model: the top passage as the answer.
        answers = list(assistant.answer_batch(texts, AskOptions(context_only=True, top_k=1)))
        for answer in answers:
            if not answer.refused and answer.passages:
                answer.text, answer.model = answer.passages[0].text, PASSAGE_SYSTEM
        return answers
    options = AskOptions(model=system.model, use_retrieval=system.use_retrieval, max_new_tokens=max_new_tokens)
    return list(assistant.answer_batch(texts, options))


def generate_answers(
    assistant: AnswersQuestions,
    systems: Sequence[System],
    questions: Sequence[Question],
    *,
    max_new_tokens: int | None,
    answers_path: Path,
    batch_size: int = 1,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Answer every (system, question), `batch_size` questions per generate call.

    answers.jsonl is rewritten after each batch so an interrupted run keeps what it finished.
    """
    rows: list[dict[str, Any]] = []
    batch_size = max(1, int(batch_size))
    with progress_bar(enabled=progress) as bar:
        task = bar.add_task("답변 생성 / answering", total=len(systems) * len(questions))
        for system in systems:
            bar.update(task, description=f"답변 생성 / answering [{system.name}]")
            for start in range(0, len(questions), batch_size):
                chunk = questions[start : start + batch_size]
                wall, cpu = time.perf_counter(), time.process_time()
                answers = _answer_chunk(assistant, system, chunk, max_new_tokens)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                for question, answer in zip(chunk, answers, strict=True):
                    row = answer_row(system, question, answer, wall / len(chunk))
                    # CPU seconds of this process (the batch's share): unlike wall latency, not
                    # inflated when other jobs share the cores, so busy-machine runs compare.
                    row["cpu_s"] = round(cpu / len(chunk), 3)
                    rows.append(row)
                atomic_write_jsonl(answers_path, rows)  # a few KB: cheap, and a crash keeps every answer
                bar.advance(task, len(chunk))
    return rows


def score_rows(rows: Sequence[dict[str, Any]], questions: Sequence[Question]) -> list[dict[str, Any]]:
    """Per-answer metrics joined with the question's labels."""
    by_id = {q.id: q for q in questions}
    scored = []
    for row in rows:
        q = by_id[row["id"]]
        contexts = [f"[{c['id']}] {c['title']}\n{c['text']}" for c in row["contexts"]]
        metrics = answer_metrics(
            row["answer"],
            expect=q.expect,
            reference=q.reference,
            refused=row["refused"],
            question=q.question,
            contexts=contexts if row["system"].endswith(RAG_SUFFIX) else None,
        )
        scored.append(
            {
                "system": row["system"],
                "id": q.id,
                "topic": q.topic,
                "difficulty": q.difficulty,
                "answerable": q.answerable,
                "latency_s": row["latency_s"],
                **metrics,
            }
        )
    return scored


def primary_system(systems: Sequence[System]) -> System:
    """The system the headline and --fail-under talk about: fine-tuned+RAG if present."""
    for wanted in (lambda s: s.model != "base" and s.use_retrieval, lambda s: s.model != "base", lambda s: s.use_retrieval and not s.passage, lambda s: s.use_retrieval):
        for s in systems:
            if wanted(s):
                return s
    return systems[0]


def comparison_pairs(systems: Sequence[System]) -> list[tuple[str, str]]:
    """(baseline, candidate) pairs: each adapter+rag vs the top passage (the yardstick a
    generated answer must beat), then each adapter vs base with matching retrieval."""
    names = {s.name for s in systems}
    pairs = []
    if PASSAGE_SYSTEM in names:
        pairs += [(PASSAGE_SYSTEM, s.name) for s in systems if s.model != "base" and s.use_retrieval and not s.passage]
    for s in systems:
        if s.model == "base" or s.passage:
            continue
        baseline = "base+rag" if s.use_retrieval else "base"
        if baseline in names:
            pairs.append((baseline, s.name))
    return pairs


def paired_delta(
    scored: Sequence[dict[str, Any]], baseline: str, candidate: str, *, samples: int, seed: int
) -> dict[str, Any]:
    """Key-fact recall difference candidate - baseline, paired by question, with a CI."""
    base = {r["id"]: r["keyfact_recall"] for r in scored if r["system"] == baseline and r["keyfact_recall"] is not None}
    cand = {r["id"]: r["keyfact_recall"] for r in scored if r["system"] == candidate and r["keyfact_recall"] is not None}
    diffs = [cand[i] - base[i] for i in base if i in cand]
    return bootstrap_mean(diffs, samples=samples, seed=seed).to_json()


def build_metrics(
    scored: Sequence[dict[str, Any]],
    systems: Sequence[System],
    questions: Sequence[Question],
    config: EvalConfig,
    answers: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """metrics.json content (judge results are merged in later). `answers` (the answers.jsonl
    rows) give the retrieved contexts for the gold-passage hit rates."""
    per_system: dict[str, Any] = {}
    for system in systems:
        rows = [r for r in scored if r["system"] == system.name]
        summary = summarize_rows(rows, samples=config.bootstrap_samples, seed=config.seed)
        summary["by_topic"] = group_keyfact_recall(rows, "topic")
        summary["by_difficulty"] = group_keyfact_recall(rows, "difficulty")
        summary["model"] = "" if system.passage else system.model
        summary["use_retrieval"] = system.use_retrieval
        summary["answer_chars"] = mean_answer_chars(rows)
        per_system[system.name] = summary
    primary = primary_system(systems)
    deltas = {
        f"{cand} vs {base}": paired_delta(scored, base, cand, samples=config.bootstrap_samples, seed=config.seed)
        for base, cand in comparison_pairs(systems)
    }
    return {
        "questions": {
            "path": str(config.questions),
            "n": len(questions),
            "answerable": sum(q.answerable for q in questions),
            "unanswerable": sum(not q.answerable for q in questions),
            "with_reference": sum(q.reference is not None for q in questions),
        },
        "systems": per_system,
        "retrieval": retrieval_hits(answers, questions),
        "primary_system": primary.name,
        "keyfact_recall_deltas": deltas,
        "headline": headline(per_system, deltas),
        "items": list(scored),
    }


def mean_answer_chars(scored: Sequence[dict[str, Any]]) -> float | None:
    """Mean `length_chars` of one system's answers to answerable questions it did not refuse:
    a recall bought by answering at twice the passage's length is no win for the reader."""
    lengths = [r["length_chars"] for r in scored if r["answerable"] and not r["refused"]]
    return round(sum(lengths) / len(lengths), 1) if lengths else None


def retrieval_hits(answers: Sequence[dict[str, Any]], questions: Sequence[Question]) -> dict[str, Any] | None:
    """Gold-passage hit@1 and hit@3 over answerable questions with `doc_ids`.

    Read from the contexts of a retrieval system that kept at least three passages (every
    +rag system retrieves the same way, so the first one is taken).
    """
    gold = {q.id: set(q.doc_ids) for q in questions if q.answerable and q.doc_ids}
    if not gold:
        return None
    for system in dict.fromkeys(r["system"] for r in answers):
        rows = {r["id"]: r for r in answers if r["system"] == system}
        if not system.endswith(RAG_SUFFIX) or not any(len(r["contexts"]) >= 3 for r in rows.values()):
            continue
        found = {qid: [c["id"] for c in rows[qid]["contexts"]] for qid in gold if qid in rows}
        n = len(found)
        if not n:
            return None
        hit = {k: sum(bool(set(ids[:k]) & gold[qid]) for qid, ids in found.items()) / n for k in (1, 3)}
        return {"system": system, "n": n, "hit@1": round(hit[1], 3), "hit@3": round(hit[3], 3)}
    return None


def headline(per_system: dict[str, Any], deltas: dict[str, Any]) -> str:
    """One line: ft+rag vs the top passage (else vs base+rag, else the best available comparison)."""
    for key in (f"ft+rag vs {PASSAGE_SYSTEM}", "ft+rag vs base+rag", *deltas):
        if key in deltas:
            cand, base = key.split(" vs ")
            d = deltas[key]
            delta = format_estimate(d, signed=True)
            lengths = [per_system[cand].get("answer_chars"), per_system[base].get("answer_chars")]
            length = (
                f"; 답변 길이 / answer length {lengths[0] / lengths[1]:.2f}× {base}"
                if base == PASSAGE_SYSTEM and all(lengths) else ""
            )
            return (
                f"{cand} vs {base}: 핵심 사실 재현율 / key-fact recall "
                f"{format_estimate(per_system[cand]['keyfact_recall'])} vs {format_estimate(per_system[base]['keyfact_recall'])}, "
                f"차이 / Δ {delta}{length}; {salad_summary(cand, per_system[cand])}"
            )
    parts = [f"{name} {format_estimate(s['keyfact_recall'])}" for name, s in per_system.items()]
    best = next((n for n in per_system if n.endswith(RAG_SUFFIX)), next(iter(per_system), None))
    tail = f"; {salad_summary(best, per_system[best])}" if best else ""
    return "핵심 사실 재현율 / key-fact recall: " + "; ".join(parts) + tail


def salad_summary(name: str, summary: dict[str, Any]) -> str:
    """'ft+rag: 반복·에코 답변 / looping or echoing 3% , 근거율 / support 0.91' for the headline:
    a recall that rises while answers loop or echo the prompt is not progress."""
    rate = summary["repetition_or_echo_rate"]["value"]
    support = summary["support"]["value"]
    parts = [f"반복·에코 답변 / looping or echoing answers {rate:.0%}" if rate is not None else ""]
    if support is not None:
        parts.append(f"근거율 / support {support:.2f}")
    return f"{name}: " + ", ".join(p for p in parts if p)


def run_judge(
    config: EvalConfig,
    rows: Sequence[dict[str, Any]],
    questions: Sequence[Question],
    systems: Sequence[System],
    judge: Any,
    *,
    progress: bool = True,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Rubric scores for every answer and both-order pairwise comparisons.

    Returns (judge summary for metrics.json, {f"{system}/{id}": rubric json} for items).
    A failed judge call is counted, not fatal: the endpoint was checked before generation.
    """
    from aldlab.eval.judge import JudgeError, RubricScore, summarize_pairwise, summarize_rubric

    by_id = {q.id: q for q in questions}
    answers = {(r["system"], r["id"]): r["answer"] for r in rows}
    pairs = comparison_pairs(systems) if config.judge_pairwise else []
    per_item: dict[str, dict[str, Any]] = {}
    rubric: dict[str, list[RubricScore]] = {s.name: [] for s in systems}
    failures = 0
    pairwise: dict[str, list[Any]] = {f"{c} vs {b}": [] for b, c in pairs}
    with progress_bar(enabled=progress) as bar:
        task = bar.add_task("LLM 평가 / judging", total=len(rows) + len(pairs) * len(questions))
        for row in rows:
            q = by_id[row["id"]]
            try:
                score = judge.rubric(q.question, row["answer"], q.reference)
                rubric[row["system"]].append(score)
                per_item[f"{row['system']}/{q.id}"] = score.to_json()
            except JudgeError:
                failures += 1
            bar.advance(task)
        for base, cand in pairs:
            for q in questions:
                try:
                    result = judge.pairwise(q.question, answers[(base, q.id)], answers[(cand, q.id)], q.reference)
                    pairwise[f"{cand} vs {base}"].append(result)
                except JudgeError:
                    failures += 1
                bar.advance(task)
    summary = {
        "model": config.judge_model,
        "url": config.judge_url,
        "failures": failures,
        "rubric": {name: summarize_rubric(scores) for name, scores in rubric.items()},
        "pairwise": {
            key: {**summarize_pairwise(results), "a": key.split(" vs ")[1], "b": key.split(" vs ")[0]}
            for key, results in pairwise.items()
        },
    }
    return summary, per_item


def _kb_entry(kb: Path) -> dict[str, Any]:
    """The KB the answers were retrieved from, identified the way data and the index identify it."""
    from aldlab.kb.io import load_kb

    if not kb.exists():
        return {"path": str(kb), "content_hash": None, "documents": None}
    return kb_record(load_kb(kb), kb)


def write_manifest(config: EvalConfig, output_dir: Path, started: datetime, duration_s: float) -> Path:
    adapters = {}
    for name, directory in config.adapter_dirs().items():
        weights = sorted(Path(directory).glob("adapter_model.*"))
        adapters[name] = {"dir": directory, "sha256": sha256_file(weights[0]) if weights else None}
    manifest = {
        "stage": "eval",
        "started_utc": started.isoformat(timespec="seconds"),
        "duration_s": round(duration_s, 1),
        "questions_sha256": sha256_file(config.questions),
        "kb": _kb_entry(Path(config.kb)),
        "adapters": adapters,
        "config": config_to_dict(config),
        "versions": package_versions(),
    }
    path = output_dir / "manifest.json"
    atomic_write_json(path, manifest)
    return path


def run_eval(
    config: EvalConfig,
    progress: bool = True,
    *,
    assistant_factory: AssistantFactory | None = None,
    rag_config: Any = None,
    judge: Any = None,
) -> EvalResult:
    """Answer, score, optionally judge, and write answers.jsonl, metrics.json, report.html,
    report.md and manifest.json into `config.output_dir`."""
    from aldlab.eval.report import write_reports

    started = datetime.now(UTC)
    t0 = time.perf_counter()
    if config.max_new_tokens is not None and config.max_new_tokens < 1:
        raise UserError("max_new_tokens는 1 이상이어야 합니다.", "max_new_tokens must be at least 1.")
    if config.batch_size < 1:
        raise UserError("batch_size는 1 이상이어야 합니다.", "batch_size must be at least 1.", hint="--batch-size 8")
    questions = load_questions(config.questions, limit=config.limit)
    adapters = config.adapter_dirs()
    systems = parse_systems(config.systems, adapters)
    check_adapter_dirs(adapters, systems)
    if judge is None and config.judge_url:
        from aldlab.eval.judge import Judge

        judge = Judge.from_env(config.judge_url, config.judge_model, config.judge_api_key_env)
    if judge is not None:
        judge.check()  # fail before generation, not after

    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: output_dir / name for name in ("answers.jsonl", "metrics.json", "report.html", "report.md")}

    assistant = (assistant_factory or default_assistant_factory)(config, rag_config)
    rows = generate_answers(
        assistant,
        systems,
        questions,
        max_new_tokens=config.max_new_tokens,
        answers_path=paths["answers.jsonl"],
        batch_size=config.batch_size,
        progress=progress,
    )
    scored = score_rows(rows, questions)
    metrics = build_metrics(scored, systems, questions, config, rows)
    if judge is not None:
        summary, per_item = run_judge(config, rows, questions, systems, judge, progress=progress)
        metrics["judge"] = summary
        for item in metrics["items"]:
            item["judge"] = per_item.get(f"{item['system']}/{item['id']}")
    passed = None
    if config.fail_under is not None:
        value = metrics["systems"][metrics["primary_system"]]["keyfact_recall"]["value"] or 0.0
        passed = value >= config.fail_under
        metrics["fail_under"] = {
            "threshold": config.fail_under,
            "system": metrics["primary_system"],
            "metric": "keyfact_recall",
            "value": value,
            "passed": passed,
        }
    metrics["duration_s"] = round(time.perf_counter() - t0, 1)
    metrics["generation_cpu_s"] = {
        s.name: round(sum(r.get("cpu_s", 0.0) for r in rows if r["system"] == s.name), 1) for s in systems
    }
    atomic_write_json(paths["metrics.json"], metrics)
    write_reports(metrics, rows, questions, paths["report.html"], paths["report.md"], adapter_dirs=adapters)
    paths["manifest.json"] = write_manifest(config, output_dir, started, time.perf_counter() - t0)
    return EvalResult(output_dir=output_dir, metrics=metrics, paths=paths, passed=passed)
