"""`aldlab data review`: a sheet for a person to read, and automatic checks for known defects.

Issue 11 found its defects by reading rows beside their source documents; this makes that
cheap to repeat: N random rows per style, each with the document it was built from, in one
Markdown file. The automatic checks look for the defect classes the reviewer found, over
every row (not a sample), so a regression shows up as a non-zero count:

- generic_subject: the question names no KB term ("주요 원인은 무엇인가요?")
- connective_opening: the answer opens with a sentence that needs the one before it
  ("예를 들어…", "그러나…", a bare "…때문이다.")
- clipped_answer: the answer stops mid-sentence
- combo_template: the dropped "X에서 Y를 함께 봐야 하는 이유는?" wording
- difference_unpaired: a difference question whose answer does not name both sides
- cause_without_cause: a 원인/의심 question whose answer states no cause or condition
- answer_misses_subject: none of the question's KB terms occurs in the answer
- particle_error: a particle that does not agree with the KB term before it
- refusal_context_has_answer: a withheld-document refusal whose context holds that document

Issue 21 found rows none of those catch, where the question does not ask what the answer says:

- dangling_reference: the answer's first clause points at text that is not in the answer
  ("ALD Pulse는 이보다 훨씬 짧으므로…", "…고갈이 원인이었던 것이다.")
- subject_lost: the question names a subject the answer's first sentence is not about
  (the subject only appears in a because-clause, or not at the start at all)
- intent_mismatch: the question asks a role, cause, effect, downside, procedure or value and
  the answer's first sentence gives something else (a symptom question answered with an action)

The three are cue rules (`aldlab.data.answer_fit`), each finding says which cue fired.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aldlab.data.answer_fit import Spellings, dangling_reference, intent_mismatch, subject_lost
from aldlab.data.korean import find_particle_errors
from aldlab.data.questions import KiwiTagger
from aldlab.data.sentences import BARE_BECAUSE, CONNECTIVE
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.prompts import is_refusal
from aldlab.text import split_sentences

CHECKS = (
    "generic_subject",
    "connective_opening",
    "clipped_answer",
    "combo_template",
    "difference_unpaired",
    "cause_without_cause",
    "answer_misses_subject",
    "particle_error",
    "refusal_context_has_answer",
    "dangling_reference",
    "subject_lost",
    "intent_mismatch",
)

_CITATION = re.compile(r"\s*\[[A-Za-z0-9_.:-]+\]")
_DIFF_Q = re.compile(r"^(?:.+ 면에서 )?(?P<a>.+?)(?:와|과) (?P<b>.+?)(?:의 |은 |는 |을 |를 |, )(?:.*)(?:차이|다른|달라|구분|구별)")
_CAUSE_Q = re.compile(r"원인|의심|뭐부터|어디부터|무엇을 점검")
_CAUSE_A = re.compile(r"원인|때문|의심|가능성|탓|면 |면,|므로|어서|아서|여서|해서|되어|져 |로 인해|에 의해|으로 |확인|점검")


@dataclass
class Finding:
    check: str
    row_id: str
    question: str
    detail: str
    #: "train.jsonl:83" when the caller said where the rows came from (`row_locations`)
    where: str = ""


@dataclass
class CheckReport:
    """Counts per check over all rows, with the first findings of each."""

    rows: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHECKS, 0))
    findings: list[Finding] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_json(self, examples: int = 3) -> dict[str, Any]:
        shown: Counter[str] = Counter()
        listed = []
        for f in self.findings:
            if shown[f.check] < examples:
                shown[f.check] += 1
                listed.append({"check": f.check, "id": f.row_id, "where": f.where, "question": f.question, "detail": f.detail})
        return {"rows": self.rows, "total": self.total, "counts": self.counts, "examples": listed}


def question_of(row: dict) -> str:
    user = row["messages"][-2]["content"] if row["messages"][-1]["role"] == "assistant" else row["messages"][-1]["content"]
    return user.split("질문: ")[-1].strip() if row.get("style") == "rag" else user.strip()


def answer_of(row: dict) -> str:
    return row["messages"][-1]["content"].strip()


def _plain(answer: str) -> str:
    return _CITATION.sub("", answer).strip()


def _terms_in(text: str, terms: Sequence[str]) -> list[str]:
    low = text.casefold()
    return [t for t in terms if t.casefold() in low]


def _template_words() -> set[str]:
    from aldlab.data.templates import ALL_BANKS

    words: set[str] = set()
    for bank in ALL_BANKS.values():
        for _, template in bank:
            words.update(re.sub(r"\{[^}]*\}", " ", template).replace("?", " ").replace(".", " ").replace(",", " ").split())
    return words


def _content_words(question: str) -> list[str]:
    """Question words that are not template words (the question's own subject matter),
    stemmed to their first two syllables so "치우침이" matches "치우친"."""
    skip = _template_words()
    out = []
    for w in re.sub(r"[?.,!]", " ", question).split():
        if w in skip or len(w) < 2:
            continue
        out.append(re.sub(r"(은|는|이|가|을|를|의|와|과|에|에서|로|으로)$", "", w)[:2])
    return [w for w in out if len(w) >= 2]


def row_locations(rows_by_split: dict[str, list[dict]]) -> list[str]:
    """"train.jsonl:1", "train.jsonl:2", … in the order `load_rows`'s splits are concatenated,
    so a finding can be opened in an editor (blank lines are skipped by `load_rows` too)."""
    return [f"{split}.jsonl:{n}" for split, rows in rows_by_split.items() for n in range(1, len(rows) + 1)]


def check_rows(rows: Sequence[dict], kb: KnowledgeBase, where: Sequence[str] | None = None) -> CheckReport:
    """Run every check over every row (refusal rows only get the checks that apply).

    `where` names each row's file and line (`row_locations`); without it findings carry the id only.
    """
    report = CheckReport(rows=len(rows))
    terms = sorted({t for t in kb.domain_terms() if len(t.strip()) >= 2}, key=len, reverse=True)
    domain = set(kb.domain_terms())
    spellings = Spellings(kb.synonym_groups)
    tagger = KiwiTagger()
    location = ""

    def flag(check: str, row: dict, question: str, detail: str) -> None:
        report.counts[check] += 1
        report.findings.append(Finding(check, str(row.get("id", "")), question, detail[:160], location))

    for n, row in enumerate(rows):
        location = where[n] if where is not None else ""
        q, a = question_of(row), answer_of(row)
        # A question a person wrote into the KB (`Document.questions`) is checked for its
        # answer window only: the wording checks judge the template generator, and on
        # these rows they mostly flag users' own spellings ("피라니" where the answer says Pirani).
        written = is_kb_question(row)
        for err in () if written else find_particle_errors(q, domain):
            flag("particle_error", row, q, f"{err.term}{err.found} -> {err.term}{err.expected}")
        if "함께 봐야 하는 이유" in q:
            flag("combo_template", row, q, "dropped template")
        if is_refusal(a):
            if row.get("doc_ids") and set(row["doc_ids"]) & set(row.get("context_ids", [])):
                flag("refusal_context_has_answer", row, q, f"{row['doc_ids']} in {row['context_ids']}")
            continue
        if row.get("kind") == "feedback":
            continue
        plain = _plain(a)
        sentences = split_sentences(plain)
        connective = bool(sentences and (CONNECTIVE.match(sentences[0]) or BARE_BECAUSE.search(sentences[0]) and len(sentences) == 1))
        if connective:
            flag("connective_opening", row, q, plain[:60])
        back = None if connective else dangling_reference(plain, tagger)
        if back:
            flag("dangling_reference", row, q, f"'{back}': 답에 없는 앞 문장을 가리킴 / points at text the answer leaves out")
        if plain and plain[-1] not in ".!?)”\"":
            flag("clipped_answer", row, q, plain[-40:])
        if written:
            continue
        named = _terms_in(q, terms) or re.findall(r"[A-Za-z][A-Za-z0-9/+-]+", q)
        words = _content_words(q)
        if not named and len(words) < 3:
            flag("generic_subject", row, q, "no KB term and under 3 content words")
        elif not any(t.casefold() in plain.casefold() or any(s.casefold() in plain.casefold() for s in kb.synonyms_of(t)) for t in named) and not any(w in plain for w in words):
            flag("answer_misses_subject", row, q, f"{(named or words)[:3]} not in answer")
        else:  # the subject is somewhere in the answer: is the answer about it?
            lost = subject_lost(q, plain, spellings, tagger)
            if lost:
                flag("subject_lost", row, q, lost)
        mismatch = intent_mismatch(q, plain)
        if mismatch:
            flag("intent_mismatch", row, q, mismatch)
        diff = _DIFF_Q.match(q)
        if diff:
            sides = [diff.group("a"), diff.group("b")]
            missing = [s for s in sides if s.split()[0].casefold() not in plain.casefold()]
            if missing:
                flag("difference_unpaired", row, q, f"answer does not name {missing}")
        if _CAUSE_Q.search(q) and not _CAUSE_A.search(plain):
            flag("cause_without_cause", row, q, plain[:60])
    return report


def is_kb_question(row: dict) -> bool:
    """Whether a dataset row asks one of its document's own questions (fact id `<doc>#q<n>`)."""
    return re.search(r"#q\d+-q\d+-", str(row.get("id", ""))) is not None


# ------------------------------------------------------------------ review sheet

def load_rows(data_dir: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for split in ("train", "eval"):
        path = Path(data_dir) / f"{split}.jsonl"
        out[split] = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] if path.exists() else []
    return out


def sample_per_style(rows: Sequence[dict], per_style: int, seed: int) -> dict[str, list[dict]]:
    """N rows of each style: closed-book, retrieval, and refusals (either style)."""
    buckets: dict[str, list[dict]] = {"closed": [], "rag": [], "refusal": []}
    for row in rows:
        key = "refusal" if is_refusal(answer_of(row)) else row.get("style", "closed")
        buckets.setdefault(key, []).append(row)
    rng = random.Random(seed)
    return {k: rng.sample(v, min(per_style, len(v))) for k, v in buckets.items()}


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line.strip() else ">" for line in text.splitlines())


def render_sheet(samples: dict[str, list[dict]], by_id: dict[str, Document], report: CheckReport, source: str) -> str:
    """Markdown: each sampled row (question, answer, context ids) beside its source document."""
    lines = [
        "# 데이터셋 검토 시트 / Dataset review sheet",
        "",
        f"- source: `{source}`",
        f"- automatic checks over {report.rows} rows: **{report.total}** findings "
        + ", ".join(f"{k} {v}" for k, v in report.counts.items()),
        "- 각 행을 읽고 질문과 답이 맞는지, 답이 원문과 맞는지 표시하세요 / mark each row: question matches answer? answer matches source?",
        "",
    ]
    for style, rows in samples.items():
        lines += [f"## {style} ({len(rows)} rows)", ""]
        for n, row in enumerate(rows, 1):
            lines += [
                f"### {style}-{n}. `{row.get('id', '')}` ({row.get('kind', '')})",
                "",
                f"**Q:** {question_of(row)}",
                "",
                f"**A:** {answer_of(row)}",
                "",
            ]
            if row.get("context_ids"):
                lines += [f"context: {', '.join(row['context_ids'])}", ""]
            for doc_id in row.get("doc_ids", []):
                doc = by_id.get(doc_id)
                if doc is not None:
                    lines += [f"source `{doc.id}` — {doc.title}", "", _quote(doc.text), ""]
            lines += ["- [ ] OK  - [ ] 질문-답 불일치 / mismatch  - [ ] 어색함 / stiff", ""]
    if report.findings:
        lines += ["## 자동 검사 결과 / Automatic findings", "", "| check | where | id | question | detail |", "|---|---|---|---|---|"]
        for f in report.findings[:200]:
            cells = [f.check, f.where, f.row_id, f.question, f.detail]
            lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"
