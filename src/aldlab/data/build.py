"""`build_dataset`: KB + feedback -> train.jsonl, eval.jsonl, stats.json, summary.md, manifest.json.

Steps, each a function below: load inputs -> facts (document titles and sentences, keyword
combinations, differences, off-topic refusals, feedback) -> optional teacher -> split
without leakage (on question candidates, before any rendering) -> per side: pick rows to
the requested size and render them into chat messages with `aldlab.prompts.build_messages`
(retrieval contexts come only from documents of the same side) -> measure leakage and
particle errors on the final rows -> write everything into a temp directory and move it
into place, so a failed build leaves nothing partial behind.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aldlab.config import config_to_dict
from aldlab.data.config import DataConfig
from aldlab.data.dedup import dedup_within, ngrams, normalize, similar_pairs
from aldlab.data.facts import Candidate, TrainingRow, Fact
from aldlab.data.feedback import FeedbackIntake, load_feedback
from aldlab.data.korean import find_particle_errors
from aldlab.data.offtopic import RAG_OFFTOPIC_REASONS, missing_context_reason, offtopic_facts
from aldlab.data.questions import KiwiTagger, combo_facts, difference_facts, document_facts, split_sentences
from aldlab.data.refusals import in_domain_refusal_facts, rag_reason
from aldlab.data.review import check_rows
from aldlab.data.semantic import HashingVectors, SentenceVectors, leaking_rows, sentence_vectors, similar_document_pairs
from aldlab.data.split import LeakageReport, measure_leakage, split_without_leakage
from aldlab.errors import UserError
from aldlab.files import atomic_write_json, atomic_write_jsonl, atomic_write_text, sha256_file
from aldlab.kb.io import load_kb
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.manifest import kb_record, package_versions
from aldlab.progress import progress_bar
from aldlab.prompts import build_messages, refusal_answer

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
    return facts, Counter(f.intent for f in facts)


def near_duplicate_documents(docs: Sequence[Document], config: DataConfig) -> list[tuple[str, str]]:
    """Pairs of (near-)identical documents: they must land on the same side of the split."""
    sets = [ngrams(d.text, config.ngram) for d in docs]
    return [(docs[i].id, docs[j].id) for i, j, _ in similar_pairs(sets, sets, config.near_dup_threshold) if i < j]


# ----------------------------------------------------------------------- render

class SideDocs:
    """Documents of one split side, for drawing retrieval contexts that never cross sides."""

    def __init__(self, docs: list[Document], kb: KnowledgeBase) -> None:
        self.docs = sorted(docs, key=lambda d: d.id)
        self.ids = [d.id for d in self.docs]
        self.by_id = {d.id: d for d in self.docs}
        self.by_keyword: dict[str, list[str]] = {}
        self.by_topic: dict[str, list[str]] = {}
        for d in self.docs:
            for k in d.keywords:
                self.by_keyword.setdefault(k.casefold(), []).append(d.id)
            self.by_topic.setdefault(d.topic, []).append(d.id)
        self.lower = {d.id: d.text.casefold() for d in self.docs}
        self.domain_terms = sorted({t.casefold() for t in kb.domain_terms() if len(t) >= 2})
        self._bm25 = None
        self._kb = kb

    def _index(self):  # noqa: ANN202 - bm25s is imported lazily
        """BM25 over this side's documents with the serving tokenizer (built on first use)."""
        if self._bm25 is None:
            import bm25s

            from aldlab.rag.index import bm25_text
            from aldlab.rag.tokenize import get_tokenizer

            self._tokenizer = get_tokenizer(self._kb.domain_terms())
            tokens = self._tokenizer.tokenize_many([bm25_text(d) for d in self.docs]) if self.docs else []
            self._bm25 = bm25s.BM25()
            self._bm25.index([t or ["\u0000"] for t in tokens] or [["\u0000"]], show_progress=False)
            self._vocab = set(self._bm25.vocab_dict)
        return self._bm25

    def retrieve(self, query: str, k: int, *, exclude: Sequence[str] = (), avoid_terms: Sequence[str] = ()) -> list[Document]:
        """The `k` side documents BM25 ranks highest for `query` — what the serving retriever
        would put in the prompt — minus `exclude` and documents mentioning `avoid_terms`.

        Training contexts drawn this way look like serving contexts (issue 11: the model must
        learn to pick the passage that answers among plausible neighbours, not among random
        documents)."""
        if not self.docs or k <= 0:
            return []
        bm25 = self._index()
        terms = list(dict.fromkeys(t for t in self._tokenizer.tokenize(query) if t in self._vocab))
        import numpy as np

        scores = np.asarray(bm25.get_scores(terms), dtype=np.float32) if terms else np.zeros(len(self.docs), dtype=np.float32)
        excluded = set(exclude)
        avoid = [t.casefold() for t in avoid_terms if t.strip()]
        out: list[Document] = []
        for i in np.argsort(-scores, kind="stable").tolist():
            doc = self.docs[i]
            if doc.id in excluded or (avoid and any(t in self.lower[doc.id] for t in avoid)):
                continue
            out.append(doc)
            if len(out) >= k:
                break
        return out

    def related(self, doc_ids: Sequence[str], kb_by_id: dict[str, Document]) -> list[str]:
        """Side documents sharing the most specific keyword of the answering documents.

        The smallest keyword list is taken (no merging): "ALD" tags every document, and
        building a merged list per example made 10k-document builds quadratic.
        """
        lists = [self.by_keyword[k.casefold()] for d in doc_ids if d in kb_by_id for k in kb_by_id[d].keywords if k.casefold() in self.by_keyword]
        lists = [ids for ids in lists if len(ids) > 1]
        return min(lists, key=len) if lists else []

    def in_topics(self, topics: set[str]) -> list[str]:
        return [i for t in sorted(topics) for i in self.by_topic.get(t, [])]

    def distractors(self, exclude: Sequence[str], k: int, rng: random.Random, *, prefer: Sequence[str] = (), avoid_terms: Sequence[str] = ()) -> list[Document]:
        """`k` side documents not in `exclude`, similar ones first, none mentioning `avoid_terms`.

        Random draws with a bounded number of attempts: no per-example copy of the pools.
        """
        avoid = [t.casefold() for t in avoid_terms if t.strip()]
        excluded = set(exclude)
        chosen: list[str] = []
        for pool in (prefer, self.ids):
            attempts = 0
            while pool and len(chosen) < k and attempts < 10 * k + 20:
                attempts += 1
                pick = pool[rng.randrange(len(pool))]
                if pick in excluded or pick in chosen or pick not in self.lower:
                    continue
                if avoid and any(t in self.lower[pick] for t in avoid):
                    continue
                chosen.append(pick)
        return [self.by_id[i] for i in chosen]

    def terms_in(self, text: str) -> list[str]:
        low = text.casefold()
        return [t for t in self.domain_terms if t in low]


def cited_answer(fact: Fact) -> str:
    """Answer with "[doc-id]" after each part, the way the RAG instruction asks."""
    if fact.verbatim:
        return fact.plain_answer
    return " ".join(f"{text} [{doc_id}]" if doc_id else text for text, doc_id in fact.answer_parts).strip()


def _example(cand: Candidate, kind: str, style: str, answer: str, plain: str, passages: list[Any] | None, suffix: str) -> TrainingRow:
    return TrainingRow(
        id=f"{cand.id}-{style}{suffix}",
        kind=kind,
        style=style,
        question=cand.question,
        answer=answer,
        plain_answer=plain,
        doc_ids=list(cand.fact.doc_ids),
        context_ids=[p.id for p in passages] if passages is not None else [],
        group=cand.group,
        messages=build_messages(cand.question, passages, answer=answer),
        fact_id=cand.fact.fact_id,
        terms=list(cand.fact.terms),
        template=cand.template,
    )


def render_answerable(cand: Candidate, style: str, side: SideDocs, kb_by_id: dict[str, Document], k: int, rng: random.Random) -> TrainingRow:
    fact = cand.fact
    if fact.kind == "feedback":
        if fact.passages:
            return _example(cand, "feedback", "rag", fact.plain_answer, fact.plain_answer, list(fact.passages), "")
        return _example(cand, "feedback", "closed", fact.plain_answer, fact.plain_answer, None, "")
    if style == "closed":
        return _example(cand, fact.kind, "closed", fact.plain_answer, fact.plain_answer, None, "")
    answering = [kb_by_id[d] for d in fact.doc_ids if d in kb_by_id]
    extra = side.retrieve(cand.question, max(0, k - len(answering)), exclude=fact.doc_ids)
    passages = [*answering, *extra]
    rng.shuffle(passages)
    return _example(cand, fact.kind, "rag", cited_answer(fact), fact.plain_answer, passages, "")


def render_unanswerable(cand: Candidate, style: str, side: SideDocs, kb_by_id: dict[str, Document], k: int, rng: random.Random, variant: int, *, same_fact: dict[str, set[str]] | None = None) -> TrainingRow:
    """A refusal row: off-topic, in-domain but not in the KB, or an ALD question whose
    documents (and every document stating the same fact) are withheld from the context."""
    fact = cand.fact
    if fact.kind == "unanswerable" and style == "closed":
        return _refusal(_example(cand, "unanswerable", "closed", fact.plain_answer, fact.plain_answer, None, ""), fact.intent)
    if fact.intent == "in_domain":
        answer = refusal_answer(rag_reason(fact, variant))
        return _refusal(_example(cand, "unanswerable", "rag", answer, answer, side.retrieve(cand.question, k), ""), "in_domain")
    if fact.kind == "unanswerable":
        answer = refusal_answer(RAG_OFFTOPIC_REASONS[variant % len(RAG_OFFTOPIC_REASONS)])
        return _refusal(_example(cand, "unanswerable", "rag", answer, answer, side.retrieve(cand.question, k), ""), "offtopic")
    avoid = sorted({*side.terms_in(cand.question), *fact.terms})
    withheld = set(fact.doc_ids)
    for d in fact.doc_ids:
        withheld |= (same_fact or {}).get(d, set())
    passages = side.retrieve(cand.question, k, exclude=sorted(withheld), avoid_terms=avoid)
    answer = refusal_answer(missing_context_reason(fact.subject or cand.question.rstrip("?"), variant))
    return _refusal(_example(cand, "unanswerable", "rag", answer, answer, passages, "-missing"), "missing_context")


def _refusal(example: TrainingRow, refusal_type: str) -> TrainingRow:
    example.refusal_type = refusal_type
    return example


def round_robin(cands: Sequence[Candidate], k: int, rng: random.Random) -> list[Candidate]:
    """`k` candidates covering as many facts as possible: first wording of every fact first."""
    by_fact: dict[str, list[Candidate]] = {}
    for c in cands:
        by_fact.setdefault(c.fact.fact_id, []).append(c)
    order = sorted(by_fact)
    rng.shuffle(order)
    picked: list[Candidate] = []
    depth = 0
    while len(picked) < k and any(len(by_fact[f]) > depth for f in order):
        for f in order:
            if len(by_fact[f]) > depth:
                picked.append(by_fact[f][depth])
                if len(picked) >= k:
                    break
        depth += 1
    return picked


@dataclass
class SideResult:
    examples: list[TrainingRow]
    requested: int
    dedup_dropped: int
    pool: dict[str, int]


def assemble_side(cands: list[Candidate], size: int, side: SideDocs, kb_by_id: dict[str, Document], config: DataConfig, rng: random.Random, same_fact: dict[str, set[str]] | None = None) -> SideResult:
    """Choose rows for one side (sizes and ratios from the config) and render them.

    Refusals: `in_domain_refusal_ratio` of the rows are ALD-sounding questions the KB cannot
    answer (half closed-book, half with retrieved passages); the rest of `unanswerable_ratio`
    is split between off-topic questions and answerable questions asked with their
    documents withheld from the context.
    """
    key = lambda c: normalize(c.question)  # noqa: E731
    answerable, d1 = dedup_within([c for c in cands if c.fact.kind in ("kb", "combo")], key)
    feedback, d2 = dedup_within([c for c in cands if c.fact.kind == "feedback"], key)
    offtopic, d3 = dedup_within([c for c in cands if c.fact.kind == "unanswerable" and c.fact.intent != "in_domain"], key)
    in_domain, d5 = dedup_within([c for c in cands if c.fact.intent == "in_domain"], key)
    pool = {"answerable": len(answerable), "feedback": len(feedback), "offtopic": len(offtopic), "in_domain": len(in_domain)}

    n_un = round(size * config.unanswerable_ratio)
    n_in = min(len(in_domain), round(size * min(config.in_domain_refusal_ratio, config.unanswerable_ratio)))
    n_fb = min(len(feedback), size - n_un)
    n_ans = min(size - n_un - n_fb, len(answerable))
    if n_ans + n_fb + n_un < size and config.unanswerable_ratio < 1:  # short pool: keep the ratio
        n_un = round((n_ans + n_fb) * config.unanswerable_ratio / (1 - config.unanswerable_ratio))
        n_in = min(n_in, n_un)
    chosen = round_robin(answerable, n_ans, rng)
    rng.shuffle(chosen)
    n_rag = round(len(chosen) * config.rag_ratio)
    k = config.num_context_docs
    examples = [render_answerable(c, "rag" if i < n_rag else "closed", side, kb_by_id, k, rng) for i, c in enumerate(chosen)]
    examples += [render_answerable(c, "", side, kb_by_id, k, rng) for c in feedback[:n_fb]]

    inside = list(in_domain)
    rng.shuffle(inside)
    n_in_rag = round(n_in * config.rag_ratio) if side.docs else 0
    for i, c in enumerate(inside[:n_in]):
        examples.append(render_unanswerable(c, "rag" if i < n_in_rag else "closed", side, kb_by_id, k, rng, i))

    n_other = n_un - n_in
    n_other_rag = round(n_other * config.rag_ratio)
    n_un_closed = n_other - n_other_rag
    off = list(offtopic)
    rng.shuffle(off)
    for i, c in enumerate(off[:n_un_closed]):
        examples.append(render_unanswerable(c, "closed", side, kb_by_id, k, rng, i))
    n_off_rag = min(n_other_rag // 2, len(off)) if side.docs else 0
    rotated = off[n_un_closed:] + off[:n_un_closed]
    for i, c in enumerate(rotated[:n_off_rag]):
        examples.append(render_unanswerable(c, "rag", side, kb_by_id, k, rng, i))
    chosen_ids = {c.id for c in chosen}
    withheld = [c for c in answerable if c.id not in chosen_ids and c.fact.kind == "kb"] or [c for c in answerable if c.fact.kind == "kb"]
    withheld, _ = dedup_within(withheld, key)
    rng.shuffle(withheld)
    asked = {normalize(e.question) for e in examples if e.style == "rag"}
    n_missing = n_other_rag - n_off_rag if side.docs else 0
    for i, c in enumerate([c for c in withheld if normalize(c.question) not in asked][:n_missing]):
        examples.append(render_unanswerable(c, "rag", side, kb_by_id, k, rng, i, same_fact=same_fact))

    examples, d4 = dedup_within(examples, lambda e: f"{e.style}|{e.kind == 'unanswerable'}|{normalize(e.question)}")
    seen: Counter = Counter()
    for e in examples:  # ids unique even when a question is reused in both styles
        seen[e.id] += 1
        if seen[e.id] > 1:
            e.id = f"{e.id}-{seen[e.id]}"
    rng.shuffle(examples)
    return SideResult(examples, size, d1 + d2 + d3 + d4 + d5, pool)


# -------------------------------------------------------------------- semantic

class SemanticIndex:
    """Sentence vectors of the KB for the semantic split and the semantic leakage figure.

    With `semantic_model: none` (tests, huge synthetic KBs) every method is a no-op and the
    report says so; the lexical split and checks still apply.
    """

    def __init__(self, kb: KnowledgeBase, vectors: SentenceVectors | HashingVectors | None) -> None:
        self.vectors = vectors
        self.doc_sentences = {d.id: split_sentences(d.text) for d in kb.documents}
        self._pairs: dict[float, list[tuple[str, str, float]]] = {}

    @classmethod
    def for_config(cls, kb: KnowledgeBase, config: DataConfig) -> SemanticIndex:
        return cls(kb, sentence_vectors(config.semantic_model))

    def document_pairs(self, threshold: float) -> list[tuple[str, str, float]]:
        if self.vectors is None:
            return []
        if threshold not in self._pairs:
            self._pairs[threshold] = similar_document_pairs(self.doc_sentences, self.vectors, threshold)
        return self._pairs[threshold]

    def same_fact_map(self, threshold: float) -> dict[str, set[str]]:
        """doc -> documents with a sentence stating the same thing (withheld together)."""
        out: dict[str, set[str]] = {}
        for a, b, _ in self.document_pairs(threshold):
            out.setdefault(a, set()).add(b)
            out.setdefault(b, set()).add(a)
        return out

    def drop_restating(self, train: list[Candidate], evals: Sequence[TrainingRow], threshold: float) -> tuple[list[Candidate], int]:
        """Train candidates whose answer restates an eval answer (a sentence ≥ threshold) are
        dropped: the eval row would otherwise be answered from memory of a train row."""
        if self.vectors is None:
            return train, 0
        eval_sents = [s for e in evals if not e.is_refusal for s in answer_sentences(e.plain_answer)]
        if not eval_sents:
            return train, 0
        answers = sorted({c.answer for c in train if not c.is_refusal})
        leaking, _ = leaking_rows([[s] for s in eval_sents], [answer_sentences(a) for a in answers], self.vectors, threshold)
        bad = {answers[j] for j in leaking}
        kept = [c for c in train if c.is_refusal or c.answer not in bad]
        return kept, len(train) - len(kept)

    def report(self, train: Sequence[TrainingRow], evals: Sequence[TrainingRow], config: DataConfig, restated: list, dropped: int) -> dict[str, Any]:
        """stats.json `semantic`: eval answers with a train answer ≥ threshold (target 0)."""
        if self.vectors is None:
            return {"model": "none", "leaking_eval_answers": None}
        t = [e for e in train if not e.is_refusal]
        v = [e for e in evals if not e.is_refusal]
        leaking, pairs = leaking_rows([answer_sentences(e.plain_answer) for e in t], [answer_sentences(e.plain_answer) for e in v], self.vectors, config.semantic_threshold)
        return {
            "model": config.semantic_model,
            "threshold": config.semantic_threshold,
            "link_threshold": config.semantic_link_threshold,
            "linked_document_pairs": len(restated),
            "train_candidates_dropped": dropped,
            "eval_answers_checked": len(v),
            "leaking_eval_answers": len(leaking),
            "examples": [{"eval": v[j].id, "train": t[i].id, "cosine": c} for j, i, c in pairs[:10]],
        }


def answer_sentences(answer: str) -> list[str]:
    """KB sentences of an answer (the "반면 " a difference answer adds is not in the KB)."""
    return [re.sub(r"^반면 ", "", s) for s in split_sentences(answer)]


def template_stats(examples: Sequence[TrainingRow]) -> dict[str, Any]:
    """How varied the questions are: templates in use and the largest one's share of rows."""
    counts = Counter(e.template for e in examples if e.template)
    total = sum(counts.values())
    top = counts.most_common(5)
    return {
        "templates_in_use": len(counts),
        "templated_rows": total,
        "top_share": round(top[0][1] / max(1, len(examples)), 3) if top else 0.0,
        "top": [{"template": t, "rows": n} for t, n in top],
    }


# ------------------------------------------------------------------------ checks

def particle_check(examples: Sequence[TrainingRow], kb: KnowledgeBase, sample_size: int, rng: random.Random) -> dict[str, Any]:
    """Particle agreement on a random sample of generated questions (must be 0 errors)."""
    generated = [e for e in examples if e.kind in ("kb", "combo")]
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


# ------------------------------------------------------------------------ output

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
        f"**Questions**: {stats.get('templates', {}).get('templates_in_use', 0)} templates in use, the largest covers {stats.get('templates', {}).get('top_share', 0):.1%} of rows; "
        f"in-domain refusals {t.get('in_domain_refusal_share', 0):.1%} (train) / {e.get('in_domain_refusal_share', 0):.1%} (eval).",
        "",
        f"**Automatic checks** (`aldlab data review`): {stats.get('checks', {}).get('total', 0)} findings — "
        + ", ".join(f"{k} {v}" for k, v in stats.get('checks', {}).get('counts', {}).items()),
        "",
        f"**Feedback**: {stats['feedback']['liked_used']} liked and {stats['feedback']['disliked_with_correction_used']} corrected answers used; "
        f"{stats['feedback']['excluded_dislike_without_correction']} disliked answers without a correction excluded.",
    ]
    if stats.get("teacher"):
        tt = stats["teacher"]
        lines.append(f"\n**Teacher**: {tt['calls']} calls, {tt['accepted_questions']} questions and {tt['accepted_answers']} answers accepted, {tt['rejected_total']} outputs rejected.")
    for warning in stats.get("warnings", []):
        lines.append(f"\n> ⚠ {warning}")
    return "\n".join(lines) + "\n"


def _input_hashes(config: DataConfig, kb: KnowledgeBase) -> dict[str, Any]:
    return {
        "kb": kb_record(kb, config.kb),
        "feedback": [{"path": str(p), "sha256": sha256_file(p)} for p in config.feedback],
    }


@contextlib.contextmanager
def staged_directory(output_dir: Path) -> Iterator[Path]:
    """Yield a temp dir next to `output_dir`; on success it replaces `output_dir` in one rename."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError("출력 경로가 파일입니다.", "Output path is a file, not a directory.", path=output_dir)
    if output_dir.is_dir() and any(output_dir.iterdir()) and not (output_dir / "manifest.json").exists():
        foreign = sorted(p.name for p in output_dir.iterdir() if p.name not in OUTPUT_FILES)
        if foreign:
            raise UserError(
                "출력 디렉터리에 데이터셋이 아닌 파일이 있어 덮어쓰지 않습니다.",
                f"Output directory holds other files ({', '.join(foreign[:3])}); not overwriting.",
                path=output_dir,
                hint="빈 디렉터리나 새 경로를 --output 으로 주세요 / pass an empty or new --output",
            )
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    try:
        yield tmp
        backup = None
        if output_dir.exists():
            backup = output_dir.parent / f".{output_dir.name}.old-{os.getpid()}"
            os.replace(output_dir, backup)
        os.replace(tmp, output_dir)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _make_readable(directory: Path) -> None:
    """mkdtemp/mkstemp create 0700/0600; a dataset is meant to be read by others (umask applies)."""
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for path in directory.iterdir():
        path.chmod(0o666 & ~umask)


# ------------------------------------------------------------------------- main

def build_dataset(config: DataConfig, progress: bool = True) -> DatasetReport:
    """Build train/eval JSONL (chat messages) plus stats, summary and manifest into `config.output_dir`."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    rng = random.Random(config.seed)
    with progress_bar(enabled=progress, transient=True) as bar:
        task = bar.add_task("데이터셋 / dataset: KB", total=7)

        mark = [started]

        def step(name: str) -> None:
            now = time.perf_counter()
            timings[name], mark[0] = round(now - mark[0], 2), now
            bar.update(task, advance=1, description=f"데이터셋 / dataset: {name}")

        kb = load_inputs(config)
        intake: FeedbackIntake = load_feedback(config.feedback, kb)
        step("inputs")
        facts, intents = build_facts(kb, config, rng)
        facts += intake.facts
        step("facts")
        teacher_stats = _run_teacher(facts, kb, config) if config.teacher_url else None
        step("teacher")
        candidates = [Candidate(f, q, i) for f in facts for i, q in enumerate(f.questions)]
        linked = near_duplicate_documents(kb.documents, config)
        semantic = SemanticIndex.for_config(kb, config)
        restated = semantic.document_pairs(config.semantic_link_threshold)
        train_c, eval_c, split_report = split_without_leakage(
            candidates, config.eval_fraction, config.seed, threshold=config.near_dup_threshold, n=config.ngram,
            linked_docs=[*linked, *((a, b) for a, b, _ in restated)], verify=False,
        )
        step("split")
        sides = _side_documents(kb, split_report, config, rng)
        kb_by_id = kb.by_id()
        same_fact = semantic.same_fact_map(config.semantic_threshold)
        evals = assemble_side(eval_c, config.eval_size, sides["eval"], kb_by_id, config, random.Random(f"{config.seed}:eval"), same_fact)
        train_c, semantic_dropped = semantic.drop_restating(train_c, evals.examples, config.semantic_threshold)
        train = assemble_side(train_c, config.train_size, sides["train"], kb_by_id, config, random.Random(f"{config.seed}:train"), same_fact)
        step("render")
        final = measure_leakage(train.examples, evals.examples, threshold=config.near_dup_threshold, n=config.ngram)
        if final.total:  # cannot happen by construction; refuse to write leaking data if it does
            raise RuntimeError(f"leakage after split: {final.leakage()}")
        particles = particle_check([*train.examples, *evals.examples], kb, config.particle_check_sample, random.Random(config.seed))
        semantic_stats = semantic.report(train.examples, evals.examples, config, restated, semantic_dropped)
        step("checks")
        stats = _stats(config, kb, intake, intents, split_report, final, train, evals, particles, teacher_stats, linked, timings)
        stats["semantic"] = semantic_stats
        stats["templates"] = template_stats([*train.examples, *evals.examples])
        stats["checks"] = check_rows([e.to_row() for e in [*train.examples, *evals.examples]], kb).to_json()
        report = _write_outputs(config, kb, train.examples, evals.examples, stats)
        step("write")
    return report


def _run_teacher(facts: list[Fact], kb: KnowledgeBase, config: DataConfig) -> "TeacherStats":
    from aldlab.data.teacher import TeacherClient, TeacherStats, improve_facts  # httpx: only when used

    client = TeacherClient(str(config.teacher_url), str(config.teacher_model), api_key=config.teacher_api_key or os.environ.get("ALDLAB_TEACHER_API_KEY"), timeout_s=config.teacher_timeout_s)
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


def _stats(config, kb, intake, intents, split_report, final, train, evals, particles, teacher_stats, linked, timings) -> dict[str, Any]:
    warnings = []
    for name, side in (("train", train), ("eval", evals)):
        if len(side.examples) < side.requested:
            warnings.append(f"{name}: {len(side.examples)} rows < requested {side.requested} (KB too small for this size)")
    return {
        "inputs": {"kb": str(config.kb), "documents": len(kb.documents), "feedback_files": [str(p) for p in config.feedback]},
        "config": config_to_dict(config) | {"feedback": [str(p) for p in config.feedback], "teacher_api_key": None},
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


def _write_outputs(config: DataConfig, kb: KnowledgeBase, train: list[TrainingRow], evals: list[TrainingRow], stats: dict[str, Any]) -> DatasetReport:
    with staged_directory(config.output_dir) as tmp:
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
        _make_readable(tmp)
    out = config.output_dir
    return DatasetReport(out, out / "train.jsonl", out / "eval.jsonl", out / "stats.json", out / "summary.md", out / "manifest.json", stats)
