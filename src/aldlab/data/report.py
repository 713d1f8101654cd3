"""What a built dataset contains: stats.json figures and the summary.md written beside it.

Every number a reviewer checks before training lives here: rows per kind and style, refusal
shares, answer lengths, template spread, particle errors, leakage (must be 0), feedback used.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aldlab.config import config_to_dict
from aldlab.data.config import DataConfig
from aldlab.data.facts import TrainingRow
from aldlab.data.feedback import FeedbackIntake
from aldlab.data.templates import ASKED
from aldlab.data.korean import find_particle_errors
from aldlab.data.split import LeakageReport
from aldlab.kb.schema import KnowledgeBase

if TYPE_CHECKING:
    from aldlab.data.render import SideResult
    from aldlab.data.teacher import TeacherStats


def template_stats(examples: Sequence[TrainingRow]) -> dict[str, Any]:
    """How varied the questions are: templates in use, the largest one's share of rows, and
    rows asked with a question written into the KB (`Document.questions`, no template)."""
    counts = Counter(e.template for e in examples if e.template and e.template != ASKED)
    total = sum(counts.values())
    top = counts.most_common(5)
    return {
        "templates_in_use": len(counts),
        "templated_rows": total,
        "top_share": round(top[0][1] / max(1, len(examples)), 3) if top else 0.0,
        "top": [{"template": t, "rows": n} for t, n in top],
        "kb_question_rows": sum(e.template == ASKED for e in examples),
    }


def particle_check(examples: Sequence[TrainingRow], kb: KnowledgeBase, sample_size: int, rng: random.Random) -> dict[str, Any]:
    """Particle agreement on a random sample of generated questions (must be 0 errors)."""
    generated = [e for e in examples if e.kind in ("kb", "combo") and e.template != ASKED]  # people wrote ASKED ones
    sample = rng.sample(generated, min(sample_size, len(generated)))
    domain = set(kb.domain_terms())
    found = []
    for e in sample:
        for err in find_particle_errors(e.question, domain | set(e.terms)):
            found.append({"id": e.id, "question": e.question, "term": err.term, "found": err.found, "expected": err.expected})
    return {"checked_questions": len(sample), "errors": len(found), "examples": found[:20]}


def _mean_len(texts: Sequence[str]) -> float:
    return round(statistics.fmean(len(t) for t in texts), 1) if texts else 0.0


def side_stats(examples: Sequence[TrainingRow]) -> dict[str, Any]:
    answered = [e for e in examples if not e.is_refusal]
    by_kind: dict[str, list[str]] = {}
    for e in answered:
        by_kind.setdefault(e.kind, []).append(e.plain_answer)
    return {
        "rows": len(examples),
        "kinds": dict(sorted(Counter(e.kind for e in examples).items())),
        "styles": dict(sorted(Counter(e.style for e in examples).items())),
        "rag_share": round(sum(e.style == "rag" for e in examples) / max(1, len(examples)), 3),
        "unanswerable_share": round(sum(e.is_refusal for e in examples) / max(1, len(examples)), 3),
        "refusal_types": dict(sorted(Counter(e.refusal_type for e in examples if e.is_refusal).items())),
        "in_domain_refusal_share": round(sum(e.refusal_type == "in_domain" for e in examples) / max(1, len(examples)), 3),
        "avg_question_chars": _mean_len([e.question for e in examples]),
        "avg_answer_chars": _mean_len([e.plain_answer for e in answered]),
        "avg_answer_chars_by_kind": {k: _mean_len(v) for k, v in sorted(by_kind.items())},
        "documents_answered": len({d for e in answered for d in e.doc_ids}),
    }


def render_summary(stats: dict[str, Any]) -> str:
    """The short Markdown summary written next to the data."""
    t, e, leak = stats["train"], stats["eval"], stats["leakage"]
    lines = [
        "# 데이터셋 요약 / Dataset summary",
        "",
        f"- KB: `{stats['inputs']['kb']}` ({stats['inputs']['documents']} documents), seed {stats['config']['seed']}",
        f"- train {t['rows']} rows, eval {e['rows']} rows (requested {stats['config']['train_size']}/{stats['config']['eval_size']})",
        "",
        "| | train | eval |",
        "|---|---:|---:|",
    ]
    for label, key in [("rows", "rows"), ("avg question chars", "avg_question_chars"), ("avg answer chars", "avg_answer_chars"), ("retrieval-style share", "rag_share"), ("unanswerable share", "unanswerable_share")]:
        lines.append(f"| {label} | {t[key]} | {e[key]} |")
    for kind in ("kb", "combo", "unanswerable", "feedback"):
        lines.append(f"| kind: {kind} | {t['kinds'].get(kind, 0)} | {e['kinds'].get(kind, 0)} |")
    lines += [
        "",
        f"**Leakage** (must be 0): exact dup questions {leak['exact_dup_questions']}, answers {leak['exact_dup_answers']}; "
        f"near dup questions {leak['near_dup_questions']}, answers {leak['near_dup_answers']}; shared documents {leak['shared_docs']}; "
        f"shared groups {leak['shared_groups']}. Train rows dropped as duplicates of eval: "
        f"{leak['dropped_train_exact_dup']} exact, {leak['dropped_train_near_dup']} near; combination rows dropped for straddling: {leak['dropped_straddling']}.",
        "",
        f"**Particles**: {stats['particles']['errors']} errors in {stats['particles']['checked_questions']} checked questions.",
        "",
        f"**Semantic leakage** (eval answers restated by a train answer, sentence cosine ≥ {stats.get('semantic', {}).get('threshold', '-')}): "
        f"{stats.get('semantic', {}).get('leaking_eval_answers')}; train candidates dropped for restating eval: {stats.get('semantic', {}).get('train_candidates_dropped', 0)}.",
        "",
        f"**Questions**: {stats.get('templates', {}).get('kb_question_rows', 0)} rows ask with the KB's own example questions; "
        f"{stats.get('templates', {}).get('templates_in_use', 0)} templates in use, the largest covers {stats.get('templates', {}).get('top_share', 0):.1%} of rows; "
        f"in-domain refusals {t.get('in_domain_refusal_share', 0):.1%} (train) / {e.get('in_domain_refusal_share', 0):.1%} (eval).",
        "",
        f"**Automatic checks** (`aldlab data review`): {stats.get('checks', {}).get('total', 0)} findings — "
        + ", ".join(f"{k} {v}" for k, v in stats.get('checks', {}).get('counts', {}).items())
        + _replaced(stats.get("checks", {}).get("dropped_flagged_facts")),
        "",
        f"**Feedback**: {stats['feedback']['liked_used']} liked and {stats['feedback']['disliked_with_correction_used']} corrected answers used; "
        f"{stats['feedback']['excluded_dislike_without_correction']} disliked answers without a correction, "
        f"{stats['feedback'].get('excluded_unreviewed', 0)} unreviewed, {stats['feedback'].get('excluded_rejected', 0)} rejected "
        f"and {stats['feedback'].get('excluded_kb_conflict', 0)} KB-contradicting rows excluded.",
    ]
    if stats.get("teacher"):
        tt = stats["teacher"]
        lines.append(f"\n**Teacher**: {tt['calls']} calls, {tt['accepted_questions']} questions and {tt['accepted_answers']} answers accepted, {tt['rejected_total']} outputs rejected.")
    for warning in stats.get("warnings", []):
        lines.append(f"\n> ⚠ {warning}")
    return "\n".join(lines) + "\n"


def dataset_stats(
    config: DataConfig,
    kb: KnowledgeBase,
    intake: FeedbackIntake,
    intents: Counter,
    split_report: LeakageReport,
    final: LeakageReport,
    train: SideResult,
    evals: SideResult,
    particles: dict[str, Any],
    teacher_stats: TeacherStats | None,
    linked: list[tuple[str, str]],
    timings: dict[str, float],
) -> dict[str, Any]:
    """stats.json: inputs, config (no secrets), per-side figures, leakage, checks, timings."""
    warnings = []
    for name, side in (("train", train), ("eval", evals)):
        if len(side.examples) < side.requested:
            warnings.append(f"{name}: {len(side.examples)} rows < requested {side.requested} (KB too small for this size)")
    warnings += intake.warnings()
    return {
        "inputs": {"kb": str(config.kb), "documents": len(kb.documents), "feedback_files": [str(p) for p in config.feedback]},
        "config": config_to_dict(config) | {"feedback": [str(p) for p in config.feedback]},
        "train": side_stats(train.examples),
        "eval": side_stats(evals.examples),
        "avg_answer_chars": _mean_len([e.plain_answer for e in [*train.examples, *evals.examples] if not e.is_refusal]),
        "leakage": {**final.leakage(), **{k: v for k, v in split_report.to_json().items() if k.startswith("dropped")}},
        "near_duplicate_document_pairs": len(linked),
        "dedup_within_split_dropped": {"train": train.dedup_dropped, "eval": evals.dedup_dropped},
        "candidate_pool": {"train": train.pool, "eval": evals.pool},
        "fact_intents": dict(sorted(intents.items())),
        "particles": particles,
        "feedback": intake.stats(),
        "teacher": teacher_stats.to_json() if teacher_stats else None,
        "warnings": warnings,
        "timings_s": timings,
    }


def _replaced(dropped: dict[str, int] | None) -> str:
    """The summary's note on generated facts replaced because a check flagged them (`--drop-flagged`)."""
    if not dropped:
        return ""
    return f"; facts replaced because a check flagged them: train {dropped.get('train', 0)}, eval {dropped.get('eval', 0)}"
