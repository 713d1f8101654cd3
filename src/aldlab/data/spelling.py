"""Questions spelled the way engineers type them: Hangul for the KB's Latin terms.

The KB writes loanwords in Latin ("Purge", "Full scale", "Seasoning"); people type "퍼지",
"풀스케일", "시즈닝". Template questions copy the KB's spelling, so a model trained only on
them never sees a question in the users' spelling (issue 26: 퍼지/헌팅/리크체크 questions
retrieved and answered worse). The KB glossary (`kb.json` `synonym_groups`, which users
edit) already pairs each Latin term with its Hangul spellings; `respell` swaps one.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from aldlab.data.facts import Fact
from aldlab.data.korean import FORM_TO_PAIR, PARTICLE_AFTER, josa
from aldlab.kb.schema import KnowledgeBase
from aldlab.text import HANGUL

_LATIN = re.compile(r"[A-Za-z]")


def hangul_spellings(kb: KnowledgeBase) -> dict[str, list[str]]:
    """Latin glossary term (casefolded) -> the Hangul-only spellings of its group.

    Acronyms ("ALD", "MFC", "VG12") are typed as they are, not as "원자층 증착": skipped.
    """
    out: dict[str, list[str]] = {}
    for group in kb.synonym_groups:
        hangul = [t for t in group if HANGUL.search(t) and not _LATIN.search(t)]
        for term in group:
            if term.upper() == term:
                continue
            if hangul and _LATIN.search(term) and not HANGUL.search(term):
                out.setdefault(term.casefold(), []).extend(h for h in hangul if h not in out.get(term.casefold(), []))
    return out


def respell(question: str, spellings: dict[str, list[str]], rng: random.Random) -> str:
    """`question` with its longest glossary Latin term written in Hangul (unchanged if none).

    Whole words only ("PM" not inside "PMT"); a particle right after the term is chosen
    again for the new spelling ("Flow가" -> "유량이", "Base pressure와" -> "도달 압력과").
    """
    for term in sorted(spellings, key=len, reverse=True):
        match = re.search(rf"(?<![A-Za-z0-9]){re.escape(term)}(?![A-Za-z0-9])", question, re.IGNORECASE)
        if match:
            choice = rng.choice(spellings[term])
            rest = question[match.end() :]
            particle = PARTICLE_AFTER.match(rest)
            if particle:
                return question[: match.start()] + josa(choice, FORM_TO_PAIR[particle[1]]) + rest[particle.end(1) :]
            return question[: match.start()] + choice + rest
    return question


def respell_facts(facts: Sequence[Fact], kb: KnowledgeBase, ratio: float, rng: random.Random) -> int:
    """Respell the first wording of `ratio` of the KB facts in place; returns how many changed.

    Difference questions ("X와 Y를 구분하는 방법") are left alone: their answer must name both
    sides as the question does (`data review`'s difference check).
    """
    spellings = hangul_spellings(kb)
    changed = 0
    for fact in facts:
        if fact.kind not in ("kb", "combo") or fact.intent == "difference" or not fact.questions or rng.random() >= ratio:
            continue
        new = respell(fact.questions[0], spellings, rng)
        if new != fact.questions[0]:
            fact.questions[0] = new
            changed += 1
    return changed
