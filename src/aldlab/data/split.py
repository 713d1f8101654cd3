"""Train/eval split with zero leakage.

The legacy data had 94% of its eval rows duplicated in train, so its eval measured recall
of training rows. Here (1) examples are grouped by the documents they come from — union-find
over documents, so a document (and every paraphrase of its facts) lands on exactly one
side; (2) whole groups are assigned to eval until it holds its share; (3) keyword-combination
examples, which would glue most of the KB into one group, go to a side only when all their
documents are there and are dropped otherwise; (4) exact and near-duplicate questions and
answers across the split are found (`dedup.similar_pairs`) and the train copies dropped;
(5) the leakage figures are measured again on the final sets, and must all be 0.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from aldlab.data.dedup import ngrams, normalize, similar_pairs


class Splittable(Protocol):
    question: str
    doc_ids: list[str]
    group: str

    @property
    def is_refusal(self) -> bool: ...


E = TypeVar("E")


@dataclass
class LeakageReport:
    """What the split did and what leaks remain (the `leakage` figures must be 0)."""

    exact_dup_questions: int = 0
    exact_dup_answers: int = 0
    near_dup_questions: int = 0
    near_dup_answers: int = 0
    shared_docs: int = 0
    shared_groups: int = 0
    dropped_straddling: int = 0
    dropped_train_exact_dup: int = 0
    dropped_train_near_dup: int = 0
    #: side of every document that examples refer to ("train"/"eval")
    doc_sides: dict[str, str] = field(default_factory=dict, repr=False)

    def leakage(self) -> dict[str, int]:
        return {
            "exact_dup_questions": self.exact_dup_questions,
            "exact_dup_answers": self.exact_dup_answers,
            "near_dup_questions": self.near_dup_questions,
            "near_dup_answers": self.near_dup_answers,
            "shared_docs": self.shared_docs,
            "shared_groups": self.shared_groups,
        }

    @property
    def total(self) -> int:
        return sum(self.leakage().values())

    def to_json(self) -> dict[str, Any]:
        return {
            **self.leakage(),
            "dropped_straddling": self.dropped_straddling,
            "dropped_train_exact_dup": self.dropped_train_exact_dup,
            "dropped_train_near_dup": self.dropped_train_near_dup,
        }


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # deterministic root


def _answer(e: Any) -> str:
    return str(getattr(e, "plain_answer", None) or getattr(e, "answer", ""))


def _kind(e: Any) -> str:
    return str(getattr(e, "kind", None) or getattr(getattr(e, "fact", None), "kind", ""))


def _node(e: Any) -> str:
    return f"doc:{e.doc_ids[0]}" if e.doc_ids else f"group:{e.group}"


def split_without_leakage(
    examples: Sequence[E],
    eval_fraction: float,
    seed: int,
    *,
    threshold: float = 0.8,
    n: int = 3,
    linked_docs: Sequence[tuple[str, str]] = (),
    unlinked_kinds: tuple[str, ...] = ("combo",),
    verify: bool = True,
) -> tuple[list[E], list[E], LeakageReport]:
    """Split so that no document, group, question or answer is shared by train and eval.

    `linked_docs` are document pairs that must stay together (near-duplicate documents).
    Examples of `unlinked_kinds` do not join their documents into one group. With
    `verify=False` the text leakage is not measured again here (zero by construction:
    every train row of a leaking pair was dropped); callers that re-measure their final
    rows anyway (`build_dataset`) save the second join.
    """
    rng = random.Random(seed)
    uf = _UnionFind()
    for a, b in linked_docs:
        uf.union(f"doc:{a}", f"doc:{b}")
    anchored: list[int] = []
    floating: list[int] = []
    for i, e in enumerate(examples):
        if len(e.doc_ids) > 1 and _kind(e) in unlinked_kinds:
            floating.append(i)
            continue
        anchored.append(i)
        uf.find(_node(e))
        for d in e.doc_ids[1:]:
            uf.union(f"doc:{e.doc_ids[0]}", f"doc:{d}")
        uf.union(_node(e), f"group:{e.group}")

    units: dict[str, list[int]] = {}
    for i in anchored:
        units.setdefault(uf.find(_node(examples[i])), []).append(i)
    eval_units = _pick_eval_units(units, examples, eval_fraction, rng)

    side_of_unit = {u: ("eval" if u in eval_units else "train") for u in units}
    doc_sides: dict[str, str] = {}
    for node in sorted(uf.parent):
        if node.startswith("doc:"):
            root = uf.find(node)
            if root in side_of_unit:
                doc_sides[node[4:]] = side_of_unit[root]
    for i in floating:  # documents seen only in combination examples get a side of their own
        for d in examples[i].doc_ids:
            if d not in doc_sides:
                doc_sides[d] = "eval" if rng.random() < eval_fraction else "train"

    train: list[E] = []
    evals: list[E] = []
    report = LeakageReport(doc_sides=doc_sides)
    floating_set = set(floating)
    for i, e in enumerate(examples):
        if i in floating_set:
            sides = {doc_sides[d] for d in e.doc_ids}
            if len(sides) > 1:
                report.dropped_straddling += 1
                continue
            (train if sides == {"train"} else evals).append(e)
        else:
            (evals if side_of_unit[uf.find(_node(e))] == "eval" else train).append(e)

    train, exact, near = drop_train_duplicates(train, evals, threshold=threshold, n=n)
    report.dropped_train_exact_dup, report.dropped_train_near_dup = exact, near
    final = measure_leakage(train, evals, threshold=threshold, n=n, text=verify)
    for key, value in final.leakage().items():
        setattr(report, key, value)
    return train, evals, report


def _pick_eval_units(units: dict[str, list[int]], examples: Sequence[Any], fraction: float, rng: random.Random) -> set[str]:
    """Whole units to eval until each stratum (off-topic vs KB) holds its share."""
    strata: dict[str, list[str]] = {}
    for unit in sorted(units):
        first = examples[units[unit][0]]
        strata.setdefault("offtopic" if str(first.group).startswith("offtopic") else _kind(first) or "kb", []).append(unit)
    chosen: set[str] = set()
    for name in sorted(strata):
        pool = strata[name]
        rng.shuffle(pool)
        total = sum(len(units[u]) for u in pool)
        target = fraction * total
        taken = 0
        for unit in pool:
            if taken >= target:
                break
            size = len(units[unit])
            if taken + size > target * 1.15 + 1 and taken > 0:
                continue  # a big unit would overshoot: try smaller ones
            chosen.add(unit)
            taken += size
    return chosen


def _question_sets(items: Sequence[Any], n: int) -> list[frozenset[str]]:
    return [ngrams(e.question, n) for e in items]


def _answer_sets(items: Sequence[Any], n: int) -> list[frozenset[str]]:
    # Refusals share one fixed phrase by design; only their questions must not leak.
    return [frozenset() if e.is_refusal else ngrams(_answer(e), n) for e in items]


def _leaking_pairs(train: Sequence[Any], evals: Sequence[Any], threshold: float, n: int) -> dict[str, list[tuple[int, int, float]]]:
    return {
        "questions": similar_pairs(_question_sets(train, n), _question_sets(evals, n), threshold),
        "answers": similar_pairs(_answer_sets(train, n), _answer_sets(evals, n), threshold),
    }


def drop_train_duplicates(train: Sequence[E], evals: Sequence[E], *, threshold: float, n: int) -> tuple[list[E], int, int]:
    """Remove train examples whose question or answer (near-)duplicates an eval one."""
    pairs = _leaking_pairs(train, evals, threshold, n)
    exact: set[int] = set()
    near: set[int] = set()
    for field_name, found in pairs.items():
        for i, j, _ in found:
            a = train[i].question if field_name == "questions" else _answer(train[i])
            b = evals[j].question if field_name == "questions" else _answer(evals[j])
            (exact if normalize(a) == normalize(b) else near).add(i)
    near -= exact
    dropped = exact | near
    return [e for i, e in enumerate(train) if i not in dropped], len(exact), len(near)


def measure_leakage(train: Sequence[Any], evals: Sequence[Any], *, threshold: float = 0.8, n: int = 3, text: bool = True) -> LeakageReport:
    """Leakage between two finished splits: counts of eval rows with a twin in train."""
    report = LeakageReport()
    pairs = _leaking_pairs(train, evals, threshold, n) if text else {}
    for field_name, found in pairs.items():
        exact_rows: set[int] = set()
        near_rows: set[int] = set()
        for i, j, _ in found:
            a = train[i].question if field_name == "questions" else _answer(train[i])
            b = evals[j].question if field_name == "questions" else _answer(evals[j])
            (exact_rows if normalize(a) == normalize(b) else near_rows).add(j)
        near_rows -= exact_rows
        if field_name == "questions":
            report.exact_dup_questions, report.near_dup_questions = len(exact_rows), len(near_rows)
        else:
            report.exact_dup_answers, report.near_dup_answers = len(exact_rows), len(near_rows)
    train_docs = {d for e in train for d in [*e.doc_ids, *getattr(e, "context_ids", [])]}
    eval_docs = {d for e in evals for d in [*e.doc_ids, *getattr(e, "context_ids", [])]}
    report.shared_docs = len(train_docs & eval_docs)
    report.shared_groups = len({e.group for e in train} & {e.group for e in evals})
    return report
