"""`build_dataset`: KB + feedback -> train.jsonl, eval.jsonl, stats.json, summary.md, manifest.json.

The build reads top to bottom in `build_dataset`: load inputs -> facts (document titles and
sentences, keyword combinations, differences, off-topic refusals, feedback) -> optional
teacher -> split without leakage (on question candidates, before any rendering) -> per side:
pick rows to the requested size and render them into chat messages (`data/render.py`;
retrieval contexts come only from documents of the same side) -> measure leakage and
particle errors on the final rows (`data/report.py`) -> write everything into a staged
directory that replaces the output in one rename (`aldlab.files.staged_directory`), so a
failed build leaves nothing partial behind.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aldlab.data.answer_fit import drop_dangling
from aldlab.data.build_progress import STEP_LABELS, BuildProgress
from aldlab.data.config import DataConfig
from aldlab.data.dedup import ngrams, similar_pairs
from aldlab.data.facts import Candidate, Fact, TrainingRow
from aldlab.data.spelling import respell_facts
from aldlab.data.feedback import FeedbackIntake, load_feedback
from aldlab.data.offtopic import offtopic_facts
from aldlab.data.questions import KiwiTagger, combo_facts, difference_facts, document_facts
from aldlab.data.refusals import in_domain_refusal_facts
from aldlab.data.render import SideDocs, SideResult, assemble_side
from aldlab.data.report import dataset_stats, particle_check, render_summary, template_stats
from aldlab.data.review import check_rows
from aldlab.data.semantic import SemanticIndex
from aldlab.data.split import LeakageReport, measure_leakage, split_without_leakage
from aldlab.errors import UserError
from aldlab.files import atomic_write_json, atomic_write_jsonl, atomic_write_text, sha256_file, staged_directory
from aldlab.kb.io import load_kb
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.manifest import kb_record, package_versions
from aldlab.settings import get_secret

if TYPE_CHECKING:
    from aldlab.data.teacher import TeacherStats

OUTPUT_FILES = ("train.jsonl", "eval.jsonl", "stats.json", "summary.md", "manifest.json")


@dataclass
class DatasetReport:
    """Where the dataset was written and what it contains."""

    output_dir: Path
    train_path: Path
    eval_path: Path
    stats_path: Path
    summary_path: Path
    manifest_path: Path
    stats: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------ inputs

def load_inputs(config: DataConfig) -> KnowledgeBase:
    """The KB, with a clear error when it is unreadable or has no usable documents."""
    try:
        kb = load_kb(config.kb)
    except UserError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError("KB를 읽을 수 없습니다.", f"Cannot read the knowledge base: {exc}", path=config.kb) from exc
    usable = [d for d in kb.documents if d.text.strip()]
    if not usable:
        raise UserError(
            "KB에 문서가 없습니다.",
            "The knowledge base has no documents.",
            path=config.kb,
            hint="aldlab kb import 로 문서를 추가하세요 / add documents with `aldlab kb import`",
        )
    ids = Counter(d.id for d in usable)
    duplicated = sorted(i for i, c in ids.items() if c > 1)
    if duplicated:
        raise UserError(
            f"KB에 중복된 문서 id가 있습니다: {', '.join(duplicated[:5])}",
            f"Duplicate document ids in the KB: {', '.join(duplicated[:5])}",
            path=config.kb,
            hint="aldlab kb validate 로 확인하세요 / run `aldlab kb validate`",
        )
    kb.documents = usable
    return kb


# ------------------------------------------------------------------------- facts

def build_facts(kb: KnowledgeBase, config: DataConfig, rng: random.Random) -> tuple[list[Fact], Counter]:
    """All candidate facts in a fixed order (documents, combinations, differences, off-topic)."""
    tagger = KiwiTagger()
    # Two spare wordings per fact: the row picker takes every fact's first wording before any
    # second one, so spares only fill in when the KB is small for the requested size.
    wordings = config.paraphrases + 2
    doc_facts = document_facts(kb, tagger, rng, paraphrases=wordings, max_answer_chars=config.max_answer_chars)
    combos = combo_facts(kb, rng, paraphrases=config.paraphrases, max_facts=config.max_combo_facts, max_answer_chars=config.max_answer_chars)
    diffs = difference_facts(kb, doc_facts, rng, paraphrases=config.paraphrases, max_facts=config.max_difference_facts)
    facts = [*doc_facts, *combos, *diffs, *offtopic_facts(), *in_domain_refusal_facts()]
    # Its own random stream: the rest of the build draws exactly as without respelling.
    respell_facts(facts, kb, config.user_spelling_ratio, random.Random(f"{config.seed}:spelling"))
    return facts, Counter(f.intent for f in facts)


def near_duplicate_documents(docs: Sequence[Document], config: DataConfig) -> list[tuple[str, str]]:
    """Pairs of (near-)identical documents: they must land on the same side of the split."""
    sets = [ngrams(d.text, config.ngram) for d in docs]
    return [(docs[i].id, docs[j].id) for i, j, _ in similar_pairs(sets, sets, config.near_dup_threshold) if i < j]


# ------------------------------------------------------------------------ output

def _input_hashes(config: DataConfig, kb: KnowledgeBase) -> dict[str, Any]:
    return {
        "kb": kb_record(kb, config.kb),
        "feedback": [{"path": str(p), "sha256": sha256_file(p)} for p in config.feedback],
    }


# ------------------------------------------------------------------------- main

def build_dataset(config: DataConfig, progress: bool = True) -> DatasetReport:
    """Build train/eval JSONL (chat messages) plus stats, summary and manifest into `config.output_dir`.

    With `progress`, each step is named on stderr while it runs (`BuildProgress`).
    """
    rng = random.Random(config.seed)
    shown = [step for step in STEP_LABELS if step != "teacher" or config.teacher_url]
    with BuildProgress(shown, enabled=progress) as steps:
        steps.start("inputs")
        kb = load_inputs(config)
        intake: FeedbackIntake = load_feedback(config.feedback, kb)
        steps.start("facts")
        facts, intents = build_facts(kb, config, rng)
        facts += intake.facts
        if config.teacher_url:
            steps.start("teacher")
            teacher_stats = _run_teacher(facts, kb, config)
        else:
            steps.skip("teacher")
            teacher_stats = None
        steps.start("split")
        candidates = [Candidate(f, q, i) for f in facts for i, q in enumerate(f.questions)]
        linked = near_duplicate_documents(kb.documents, config)
        semantic = SemanticIndex.for_config(kb, config, on_embed=steps.embedded)
        restated = semantic.document_pairs(config.semantic_link_threshold)
        train_c, eval_c, split_report = split_without_leakage(
            candidates, config.eval_fraction, config.seed, threshold=config.near_dup_threshold, n=config.ngram,
            linked_docs=[*linked, *((a, b) for a, b, _ in restated)], verify=False,
        )
        steps.start("render")
        sides = _side_documents(kb, split_report, config, rng)
        same_fact = semantic.same_fact_map(config.semantic_threshold)
        evals, eval_flagged = _assemble_checked(eval_c, config.eval_size, sides["eval"], kb, config, "eval", same_fact)
        train_c, semantic_dropped = semantic.drop_restating(train_c, evals.examples, config.semantic_threshold)
        train_c, dangling_dropped = drop_dangling(train_c, KiwiTagger()) if config.drop_dangling else (train_c, 0)
        train, train_flagged = _assemble_checked(train_c, config.train_size, sides["train"], kb, config, "train", same_fact)
        steps.start("checks")
        final = measure_leakage(train.examples, evals.examples, threshold=config.near_dup_threshold, n=config.ngram)
        if final.total:  # cannot happen by construction; refuse to write leaking data if it does
            raise RuntimeError(f"leakage after split: {final.leakage()}")
        particles = particle_check([*train.examples, *evals.examples], kb, config.particle_check_sample, random.Random(config.seed))
        semantic_stats = semantic.report(train.examples, evals.examples, config, restated, semantic_dropped)
        steps.start("write")
        stats = dataset_stats(config, kb, intake, intents, split_report, final, train, evals, particles, teacher_stats, linked, steps.timings)
        stats["semantic"] = semantic_stats
        stats["templates"] = template_stats([*train.examples, *evals.examples])
        stats["checks"] = check_rows([e.to_row() for e in [*train.examples, *evals.examples]], kb).to_json()
        stats["checks"]["dropped_train_dangling"] = dangling_dropped  # candidates (wordings), before picking rows
        stats["checks"]["dropped_flagged_facts"] = {"train": train_flagged, "eval": eval_flagged}
        report = _write_outputs(config, kb, train.examples, evals.examples, stats)
    return report


#: Rounds of "assemble, review, drop what review flagged": replacement rows come from the same
#: pool and a few are flagged in turn; the shipped KB settles in two to four rounds.
CHECK_PASSES = 6


def _assemble_checked(
    cands: list[Candidate], size: int, side: SideDocs, kb: KnowledgeBase, config: DataConfig, label: str,
    same_fact: dict[str, set[str]],
) -> tuple[SideResult, int]:
    """`assemble_side`, then again without every generated fact a `data review` check flags.

    Issue 21: a person reading 100 rows found 13 serious defects, and `data review` flagged
    the template rows among them (an "어디부터 점검" question answered with the Antoine
    equation, a "…었던 것이다" conclusion with its observation left out). What review can
    see never reaches a built file, on either side; feedback rows (a reviewer approved them)
    are kept. Returns the side and how many facts were dropped.
    """
    kb_by_id = kb.by_id()
    dropped: set[str] = set()
    for _ in range(CHECK_PASSES):
        pool = [c for c in cands if c.fact.fact_id not in dropped]
        result = assemble_side(pool, size, side, kb_by_id, config, random.Random(f"{config.seed}:{label}"), same_fact)
        if not config.drop_flagged:
            break
        flagged = {f.row_id for f in check_rows([e.to_row() for e in result.examples], kb).findings}
        bad = {e.fact_id for e in result.examples if e.id in flagged and e.kind != "feedback" and e.fact_id}
        if not bad:
            break
        dropped |= bad
    return result, len(dropped)


def _run_teacher(facts: list[Fact], kb: KnowledgeBase, config: DataConfig) -> "TeacherStats":
    from aldlab.data.teacher import TeacherClient, TeacherStats, improve_facts  # httpx: only when used

    api_key = get_secret(config.teacher_api_key_env)
    client = TeacherClient(str(config.teacher_url), str(config.teacher_model), api_key=api_key, timeout_s=config.teacher_timeout_s)
    stats = TeacherStats()
    try:
        client.check_reachable()
        eligible = [f for f in facts if f.kind in ("kb", "combo")]
        chosen = eligible if config.teacher_max_facts is None else random.Random(config.seed).sample(eligible, min(config.teacher_max_facts, len(eligible)))
        improve_facts(chosen, {d.id: d.text for d in kb.documents}, client, paraphrases=config.paraphrases, stats=stats)
    finally:
        client.close()
    return stats


def _side_documents(kb: KnowledgeBase, split_report: LeakageReport, config: DataConfig, rng: random.Random) -> dict[str, SideDocs]:
    """Every KB document on one side: those the split placed, the rest at random."""
    docs: dict[str, list[Document]] = {"train": [], "eval": []}
    for doc in kb.documents:
        side = split_report.doc_sides.get(doc.id)
        if side is None:
            side = "eval" if rng.random() < config.eval_fraction else "train"
        docs[side].append(doc)
    return {name: SideDocs(ds, kb) for name, ds in docs.items()}


def _write_outputs(config: DataConfig, kb: KnowledgeBase, train: list[TrainingRow], evals: list[TrainingRow], stats: dict[str, Any]) -> DatasetReport:
    with staged_directory(config.output_dir, owned=OUTPUT_FILES) as tmp:
        atomic_write_jsonl(tmp / "train.jsonl", (e.to_row() for e in train))
        atomic_write_jsonl(tmp / "eval.jsonl", (e.to_row() for e in evals))
        atomic_write_json(tmp / "stats.json", stats)
        atomic_write_text(tmp / "summary.md", render_summary(stats))
        manifest = {
            "stage": "data",
            "inputs": _input_hashes(config, kb),
            "config": stats["config"],
            "versions": package_versions(),
            "outputs": {name: sha256_file(tmp / name) for name in ("train.jsonl", "eval.jsonl", "stats.json", "summary.md")},
        }
        atomic_write_json(tmp / "manifest.json", manifest)
    out = config.output_dir
    return DatasetReport(out, out / "train.jsonl", out / "eval.jsonl", out / "stats.json", out / "summary.md", out / "manifest.json", stats)
