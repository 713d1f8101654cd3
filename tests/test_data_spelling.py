"""Questions in the users' spelling: the glossary's Hangul for the KB's Latin terms."""

from __future__ import annotations

import random

from aldlab.data.facts import Fact
from aldlab.data.spelling import hangul_spellings, respell, respell_facts
from aldlab.kb.schema import KnowledgeBase


def _kb() -> KnowledgeBase:
    return KnowledgeBase(
        documents=[],
        synonym_groups=[["Purge", "퍼지"], ["Full scale", "풀스케일", "풀 스케일"], ["MFC", "유량 제어기"], ["PM", "예방 정비"]],
    )


def test_latin_terms_map_to_hangul_spellings_but_acronyms_stay() -> None:
    spellings = hangul_spellings(_kb())
    assert spellings["purge"] == ["퍼지"] and set(spellings["full scale"]) == {"풀스케일", "풀 스케일"}
    assert "mfc" not in spellings and "pm" not in spellings  # typed as they are


def test_respell_swaps_the_longest_whole_word_term() -> None:
    spellings, rng = hangul_spellings(_kb()), random.Random(0)
    assert respell("Purge 시간이 너무 짧으면 어떻게 돼?", spellings, rng) == "퍼지 시간이 너무 짧으면 어떻게 돼?"
    assert respell("MFC Full scale은 어떻게 정해?", spellings, rng).startswith("MFC 풀")
    assert respell("Purged line?", spellings, rng) == "Purged line?"  # not inside a longer word


def test_respell_facts_changes_only_kb_facts_first_wording() -> None:
    facts = [
        Fact("f1", "kb", "definition", ["Purge가 뭐야?", "Purge는 무엇인가요?"], [("…", "d1")], ["d1"]),
        Fact("f2", "unanswerable", "offtopic", ["Purge 회사 주가는?"], [("…", None)], []),
    ]
    assert respell_facts(facts, _kb(), 1.0, random.Random(0)) == 1
    assert facts[0].questions == ["퍼지가 뭐야?", "Purge는 무엇인가요?"] and facts[1].questions == ["Purge 회사 주가는?"]
    assert respell_facts(facts, _kb(), 0.0, random.Random(0)) == 0


def test_the_particle_agrees_with_the_new_spelling() -> None:
    kb = KnowledgeBase(documents=[], synonym_groups=[["Flow", "유량"], ["Base pressure", "도달 압력"]])
    spellings, rng = hangul_spellings(kb), random.Random(0)
    assert respell("Flow가 높으면?", spellings, rng) == "유량이 높으면?"
    assert respell("Base pressure와 leak의 관계", spellings, rng) == "도달 압력과 leak의 관계"
