"""Rendering: question candidates of one split side -> chat rows (`TrainingRow`).

A side's rows are chosen to the requested size and ratios (`assemble_side`), then each
candidate becomes messages through `aldlab.prompts.build_messages`: closed-book, with
retrieval contexts (answering documents plus the BM25 neighbours the serving retriever would
show), or a refusal. Contexts are drawn only from documents of the same side (`SideDocs`),
so no eval document ever appears in a training prompt.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aldlab.data.config import DataConfig
from aldlab.data.dedup import dedup_within, normalize
from aldlab.data.facts import Candidate, Fact, TrainingRow
from aldlab.data.offtopic import RAG_OFFTOPIC_REASONS, missing_context_reason
from aldlab.data.refusals import rag_reason
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.prompts import build_messages, refusal_answer


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


def render_row(cand: Candidate, kind: str, style: str, answer: str, plain: str, passages: list[Any] | None, suffix: str) -> TrainingRow:
    """One candidate as a chat row; `passages=None` renders it closed-book (no context block)."""
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
            return render_row(cand, "feedback", "rag", fact.plain_answer, fact.plain_answer, list(fact.passages), "")
        return render_row(cand, "feedback", "closed", fact.plain_answer, fact.plain_answer, None, "")
    if style == "closed":
        return render_row(cand, fact.kind, "closed", fact.plain_answer, fact.plain_answer, None, "")
    answering = [kb_by_id[d] for d in fact.doc_ids if d in kb_by_id]
    extra = side.retrieve(cand.question, max(0, k - len(answering)), exclude=fact.doc_ids)
    passages = [*answering, *extra]
    rng.shuffle(passages)
    return render_row(cand, fact.kind, "rag", cited_answer(fact), fact.plain_answer, passages, "")


def render_unanswerable(cand: Candidate, style: str, side: SideDocs, kb_by_id: dict[str, Document], k: int, rng: random.Random, variant: int, *, same_fact: dict[str, set[str]] | None = None) -> TrainingRow:
    """A refusal row: off-topic, in-domain but not in the KB, or an ALD question whose
    documents (and every document stating the same fact) are withheld from the context."""
    fact = cand.fact
    if fact.kind == "unanswerable" and style == "closed":
        return _refusal(render_row(cand, "unanswerable", "closed", fact.plain_answer, fact.plain_answer, None, ""), fact.intent)
    if fact.intent == "in_domain":
        answer = refusal_answer(rag_reason(fact, variant))
        return _refusal(render_row(cand, "unanswerable", "rag", answer, answer, side.retrieve(cand.question, k), ""), "in_domain")
    if fact.kind == "unanswerable":
        answer = refusal_answer(RAG_OFFTOPIC_REASONS[variant % len(RAG_OFFTOPIC_REASONS)])
        return _refusal(render_row(cand, "unanswerable", "rag", answer, answer, side.retrieve(cand.question, k), ""), "offtopic")
    avoid = sorted({*side.terms_in(cand.question), *fact.terms})
    withheld = set(fact.doc_ids)
    for d in fact.doc_ids:
        withheld |= (same_fact or {}).get(d, set())
    passages = side.retrieve(cand.question, k, exclude=sorted(withheld), avoid_terms=avoid)
    answer = refusal_answer(missing_context_reason(fact.subject or cand.question.rstrip("?"), variant))
    return _refusal(render_row(cand, "unanswerable", "rag", answer, answer, passages, "-missing"), "missing_context")


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
    n_missing = n_other_rag - n_off_rag if side.docs else 0
    if config.refusal_twins:
        # Twins: questions this side answers with their documents, asked again without them.
        withheld = [c for c in chosen[:n_rag] if c.fact.kind == "kb"]
        rng.shuffle(withheld)
    else:
        withheld = [c for c in answerable if c.id not in chosen_ids and c.fact.kind == "kb"] or [c for c in answerable if c.fact.kind == "kb"]
        withheld, _ = dedup_within(withheld, key)
        rng.shuffle(withheld)
        asked = {normalize(e.question) for e in examples if e.style == "rag"}
        withheld = [c for c in withheld if normalize(c.question) not in asked]
    for i, c in enumerate(withheld[:n_missing]):
        examples.append(render_unanswerable(c, "rag", side, kb_by_id, k, rng, i, same_fact=same_fact))

    examples, d4 = dedup_within(examples, lambda e: f"{e.style}|{e.kind == 'unanswerable'}|{normalize(e.question)}")
    seen: Counter = Counter()
    for e in examples:  # ids unique even when a question is reused in both styles
        seen[e.id] += 1
        if seen[e.id] > 1:
            e.id = f"{e.id}-{seen[e.id]}"
    rng.shuffle(examples)
    return SideResult(examples, size, d1 + d2 + d3 + d4 + d5, pool)
