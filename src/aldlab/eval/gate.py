"""The promotion gate of `aldlab improve`: is the candidate no worse anywhere and better on the corrections?

Both models answer the same questions in one eval run (`run_eval` with two adapters), so
every question gives a *paired* difference candidate - current, and the paired bootstrap
of the mean difference (`runner.paired_delta`'s estimator) is far tighter than comparing
two separately bootstrapped means: the question's difficulty cancels out.

Per-question score (one number, so one difference per question): key-fact recall for an
answerable question, and 1/0 for refused/not refused on an unanswerable one, so a
candidate that stops refusing off-topic questions loses points too (key-fact recall alone
cannot see that).

A set passes when the lower end of the 95% interval of the mean difference is above
`-tolerance`. The corrected questions pass when the candidate answers more of them
correctly than the current model, "correct" meaning the answer holds at least
`correct_recall` of the correction's key facts (`correction_keyfacts`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aldlab.eval.metrics import bootstrap_mean, format_estimate, normalize
from aldlab.evalset import Question

#: Kiwi tags of the words a correction's key facts are made of: nouns, foreign words,
#: numbers (with their counters: "2초"), Hanja, roots and noun suffixes ("성장" + "률").
_FACT_TAGS = {"NNG", "NNP", "NNB", "NR", "SL", "SN", "SH", "XR", "XSN"}
#: At most this many key-fact groups per correction: a long correction would otherwise ask
#: for every word of it, and no short right answer would count as correct.
MAX_CORRECTION_FACTS = 6


@dataclass(frozen=True)
class GateSettings:
    """The gate's thresholds (`improve:` section: `tolerance`, `correct_recall`)."""

    #: The candidate may be at most this much worse (lower end of the 95% CI of the mean
    #: per-question difference, scores in 0..1) on any set. 0.05 = "no more than one
    #: question in twenty lost", and about the CI half-width of two near-identical models
    #: on the 85 user-dev questions, so noise alone does not block a promotion.
    tolerance: float = 0.05
    #: A corrected question counts as answered correctly at this key-fact recall.
    correct_recall: float = 0.5
    bootstrap_samples: int = 1000
    seed: int = 42


def _squash(text: str) -> str:
    """Case-folded, spaces removed: how `metrics.keyfact_hits` compares a fact with an answer."""
    return normalize(text).replace(" ", "")


@functools.lru_cache(maxsize=1)
def _kiwi() -> Any:
    from kiwipiepy import Kiwi

    return Kiwi()


def fact_units(text: str) -> list[str]:
    """Runs of adjacent noun/foreign/number morphemes as written: 'VG12', '성장률', '2초'."""
    units: list[str] = []
    start = end = -1
    for tok in _kiwi().tokenize(text):
        if tok.tag in _FACT_TAGS and tok.start == end:
            end = tok.start + tok.len
            continue
        if start >= 0:
            units.append(text[start:end])
        start, end = (tok.start, tok.start + tok.len) if tok.tag in _FACT_TAGS else (-1, -1)
    if start >= 0:
        units.append(text[start:end])
    return list(dict.fromkeys(u for u in units if len(_squash(u)) >= 2))


def correction_keyfacts(correction: str, wrong_answer: str = "", question: str = "") -> list[list[str]]:
    """What an answer must say to count as corrected: the correction's words that neither the
    wrong answer nor the question already say (saying the question's subject proves nothing).

    When the correction only rearranges the wrong answer's words, all of its words not in
    the question are the facts; a correction of nothing but such words is one fact, itself.
    """
    said_before, asked = _squash(wrong_answer), _squash(question)
    units = [u for u in fact_units(correction) if _squash(u) not in asked]
    new = [u for u in units if _squash(u) not in said_before]
    chosen = (new or units)[:MAX_CORRECTION_FACTS]
    return [[u] for u in chosen] or [[correction.strip()]]


def correction_questions(rows: Sequence[Mapping[str, Any]]) -> list[Question]:
    """Approved corrections (feedback export rows) as eval questions `fb-<feedback id>`."""
    questions = []
    for row in rows:
        correction = str(row.get("correction") or "").strip()
        if not correction:
            continue
        questions.append(
            Question(
                id=f"fb-{row['feedback_id']}",
                question=str(row["question"]).strip(),
                topic="feedback",
                difficulty="사용자",
                answerable=True,
                expect=correction_keyfacts(correction, str(row.get("answer") or ""), str(row["question"])),
                reference=correction,
            )
        )
    return questions


def question_scores(scored: Sequence[Mapping[str, Any]], system: str) -> dict[str, float]:
    """Question id -> the gate's score for `system` (key-fact recall, or refused for unanswerable)."""
    out: dict[str, float] = {}
    for row in scored:
        if row["system"] != system:
            continue
        if row["answerable"]:
            if row.get("keyfact_recall") is not None:
                out[row["id"]] = float(row["keyfact_recall"])
        else:
            out[row["id"]] = float(bool(row["refused"]))
    return out


@dataclass
class SetResult:
    """One question set: both models' mean scores and the paired difference with its CI."""

    name: str
    n: int
    current: dict[str, Any]
    candidate: dict[str, Any]
    delta: dict[str, Any]
    passed: bool
    #: Corrected questions only: how many each model answers correctly.
    correct: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def compare_set(
    name: str, scored: Sequence[Mapping[str, Any]], current: str, candidate: str, settings: GateSettings
) -> SetResult:
    """Paired comparison of `candidate` against `current` on one set's scored rows."""
    cur, cand = question_scores(scored, current), question_scores(scored, candidate)
    ids = [i for i in cur if i in cand]
    boot = functools.partial(bootstrap_mean, samples=settings.bootstrap_samples, seed=settings.seed)
    delta = boot([cand[i] - cur[i] for i in ids]).to_json()
    low = delta["low"] if delta["low"] is not None else delta["value"]
    passed = low is not None and low > -settings.tolerance
    return SetResult(
        name, len(ids), boot([cur[i] for i in ids]).to_json(), boot([cand[i] for i in ids]).to_json(), delta, passed
    )


def compare_corrections(
    scored: Sequence[Mapping[str, Any]], current: str, candidate: str, settings: GateSettings
) -> SetResult:
    """The corrected questions: the paired comparison plus the count answered correctly."""
    result = compare_set("corrections", scored, current, candidate, settings)
    cur, cand = question_scores(scored, current), question_scores(scored, candidate)
    result.correct = {
        "current": sum(v >= settings.correct_recall for v in cur.values()),
        "candidate": sum(v >= settings.correct_recall for v in cand.values()),
    }
    result.passed = result.correct["candidate"] > result.correct["current"]
    return result


@dataclass
class GateDecision:
    """Promote or not, and why (Korean, then English), with every set's numbers."""

    promote: bool
    sets: list[SetResult]
    reasons: list[str] = field(default_factory=list)
    settings: GateSettings = field(default_factory=GateSettings)
    #: Sets not evaluated because the decision was already made (the corrections failed).
    skipped: list[str] = field(default_factory=list)
    #: Sets where the current model's answers came from `eval.answer_cache`.
    cached: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "reasons": self.reasons,
            "skipped": self.skipped,
            "cached": self.cached,
            "tolerance": self.settings.tolerance,
            "correct_recall": self.settings.correct_recall,
            "sets": {s.name: s.to_json() for s in self.sets},
        }

    def rows(self) -> list[list[str]]:
        """The table: set, n, current, candidate, Δ [95% CI], corrected, verdict."""
        out = []
        for s in self.sets:
            correct = f"{s.correct['current']} → {s.correct['candidate']} / {s.n}" if s.correct else ""
            out.append([
                s.name, str(s.n), format_estimate(s.current, ci=False), format_estimate(s.candidate, ci=False),
                format_estimate(s.delta, signed=True), correct, "통과 / pass" if s.passed else "실패 / FAIL",
            ])
        return out


TABLE_HEADER = ["set", "n", "current", "candidate", "Δ [95% CI]", "correct (current → candidate)", "gate"]


def decide(
    sets: Sequence[SetResult], settings: GateSettings, *, skipped: Sequence[str] = (), cached: Sequence[str] = ()
) -> GateDecision:
    """Promote only when every set passes: no set worse beyond the tolerance, corrections better.

    `skipped` sets were never evaluated (a failed set already decided): never a promotion.
    """
    reasons = []
    for s in sets:
        if s.passed:
            continue
        if s.correct is not None:
            reasons.append(
                f"교정 질문 정답 수가 늘지 않았습니다 ({s.correct['current']} → {s.correct['candidate']} / {s.n}) / "
                f"the candidate does not answer more corrected questions correctly"
            )
        else:
            low = s.delta.get("low")
            reasons.append(
                f"{s.name}: 차이의 95% 하한 {low if low is None else f'{low:+.3f}'} ≤ -{settings.tolerance} (허용치) / "
                f"the lower end of the 95% CI of the difference is below -tolerance"
            )
    if skipped:
        reasons.append(f"평가하지 않은 세트 / not evaluated: {', '.join(skipped)} (이미 실패 / already failed)")
    return GateDecision(
        promote=bool(sets) and not reasons, sets=list(sets), reasons=reasons, settings=settings,
        skipped=list(skipped), cached=list(cached),
    )


def markdown_table(decision: GateDecision) -> str:
    """The gate's table as Markdown (written next to the candidate's eval outputs)."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in decision.rows()]
    return "\n".join(lines) + "\n"
