"""Hangul letter-by-letter spellings of the KB's Latin acronyms ("PEALD" → "피이에이엘디").

Users type an acronym the way they say it when the Korean keyboard is on: "피이에이엘디",
"엠에프씨", "에이피씨". The KB writes PEALD, MFC, APC, and neither BM25 nor the small e5
encoder links the two. Listing every spoken spelling by hand in `kb.json` would be hundreds of
entries that drift from the acronyms; they follow from the letters, so the query side derives
them from the synonym groups (see `SynonymExpander`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

#: Korean names of the Latin letters as engineers say them; a few letters have two common
#: spellings (C: 씨/시, Z: 지/제트).
LETTER_NAMES: dict[str, tuple[str, ...]] = {
    "A": ("에이",), "B": ("비",), "C": ("씨", "시"), "D": ("디",), "E": ("이",), "F": ("에프",),
    "G": ("지",), "H": ("에이치",), "I": ("아이",), "J": ("제이",), "K": ("케이",), "L": ("엘",),
    "M": ("엠",), "N": ("엔",), "O": ("오",), "P": ("피",), "Q": ("큐",), "R": ("알",),
    "S": ("에스",), "T": ("티",), "U": ("유",), "V": ("브이",), "W": ("더블유",), "X": ("엑스",),
    "Y": ("와이",), "Z": ("지", "제트"),
}
#: An acronym: 2-6 capital letters, optionally followed by a number (VG12). Chemical formulas
#: with lower-case letters or inner digits (SiH4, B2H6) are not spelled letter by letter.
_ACRONYM = re.compile(r"([A-Z]{2,6})([0-9]{0,2})")
#: Spellings shorter than this many syllables ("엠이" for ME) hide inside ordinary words.
MIN_SYLLABLES = 3
#: At most this many spellings per acronym (letters with two names multiply).
MAX_VARIANTS = 4


def letter_spellings(term: str) -> list[str]:
    """Hangul spellings of `term` read letter by letter, or [] when it is not an acronym."""
    match = _ACRONYM.fullmatch(term.strip())
    if not match:
        return []
    letters, digits = match.groups()
    options = [LETTER_NAMES[c] for c in letters]
    spellings = ["".join(parts) + digits for parts in itertools.islice(itertools.product(*options), MAX_VARIANTS)]
    return [s for s in spellings if len(s) - len(digits) >= MIN_SYLLABLES]


def with_letter_spellings(groups: Sequence[Sequence[str]]) -> list[list[str]]:
    """`groups` with every acronym's Hangul spellings added to its group.

    A spelling that some group already lists (as itself or another term) is not added, so a
    hand-written glossary entry always wins.
    """
    listed = {t.casefold() for g in groups for t in g}
    out: list[list[str]] = []
    for group in groups:
        extra = [s for t in group for s in letter_spellings(t) if s.casefold() not in listed]
        listed.update(s.casefold() for s in extra)
        out.append([*group, *dict.fromkeys(extra)])
    return out
