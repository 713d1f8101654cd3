"""Acronyms typed as spoken Hangul ("피이에이엘디") reach the KB's spelling (PEALD)."""

from __future__ import annotations

from aldlab.rag.acronyms import letter_spellings, with_letter_spellings
from aldlab.rag.retriever import SynonymExpander


def test_acronyms_are_spelled_letter_by_letter() -> None:
    assert letter_spellings("PEALD") == ["피이에이엘디"]
    assert letter_spellings("MFC") == ["엠에프씨", "엠에프시"]
    assert letter_spellings("VG12") == ["브이지12"]
    # formulas, words and two-syllable spellings that hide inside ordinary words are not
    assert letter_spellings("SiH4") == letter_spellings("Purge") == letter_spellings("PM") == []


def test_hand_written_glossary_entries_win() -> None:
    groups = with_letter_spellings([["APC", "에이피씨 밸브"], ["에이피씨", "Other"]])
    assert groups[0] == ["APC", "에이피씨 밸브", "에이피시"]


def test_query_spelling_reaches_the_kb_term_without_matching_inside_a_longer_one() -> None:
    expander = SynonymExpander([["ALD", "원자층 증착"], ["PEALD", "플라즈마 ALD"]])
    spelling = ["ALD", "PEALD"]
    assert expander.normalise("피이에이엘디에서 파워가 너무 세면?", spelling) == "PEALD에서 파워가 너무 세면?"
    assert expander.normalise("에이엘디랑 씨브이디 차이", spelling) == "ALD랑 씨브이디 차이"
    assert "ALD" not in expander.expansions("피이에이엘디 단점")
