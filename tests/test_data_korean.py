"""Particle agreement (josa) and the particle-error checker."""

from __future__ import annotations

import pytest

from aldlab.data.korean import find_particle_errors, josa, pick_particle


@pytest.mark.parametrize(
    ("word", "subject"),
    [
        ("ALD", "ALD가"),  # 에이엘디
        ("MFC", "MFC가"),  # 엠에프씨
        ("VG12", "VG12가"),  # 브이지십이
        ("VG13", "VG13이"),  # 브이지십삼
        ("sccm", "sccm이"),  # 에스씨씨엠
        ("CVD", "CVD가"),
        ("Purge", "Purge가"),
        ("퍼지", "퍼지가"),
        ("Flow", "Flow가"),
        ("Valve", "Valve가"),
        ("밸브", "밸브가"),
        ("Precursor", "Precursor가"),
        ("APC", "APC가"),
        ("RF", "RF가"),
        ("TMA", "TMA가"),
        ("Al2O3", "Al2O3가"),  # 에이엘투오쓰리
        ("TiN", "TiN이"),
        ("로드락", "로드락이"),
        ("압력", "압력이"),
        ("Interlock", "Interlock이"),
        ("Seasoning", "Seasoning이"),
        ("MFC(Mass Flow Controller)", "MFC(Mass Flow Controller)가"),
    ],
)
def test_subject_particle_follows_pronunciation(word: str, subject: str) -> None:
    assert josa(word, "이/가") == subject


def test_each_pair_and_the_rieul_rule_for_euro() -> None:
    assert josa("챔버", "은/는") == "챔버는" and josa("압력", "은/는") == "압력은"
    assert josa("챔버", "을/를") == "챔버를" and josa("압력", "을/를") == "압력을"
    assert josa("ALD", "와/과") == "ALD와" and josa("로드락", "와/과") == "로드락과"
    assert josa("레일", "으로/로") == "레일로"  # ㄹ final takes 로
    assert josa("압력", "으로/로") == "압력으로"
    assert josa("sccm", "으로/로") == "sccm으로"
    assert josa("RF", "으로/로") == "RF로"
    assert pick_particle("PEALD", "이란/란") == "란"
    assert josa("10", "이/가") == "10이" and josa("1.5", "이/가") == "1.5가"


def test_unknown_pair_is_rejected() -> None:
    with pytest.raises(ValueError):
        josa("MFC", "에/에서")


def test_checker_finds_the_legacy_generator_errors() -> None:
    text = "MFC이 뭐야? 로드락가 높으면? VG12가 뭐야? ALD과 CVD의 차이는? 압력으로 맞추고 레일으로 간다."
    errors = find_particle_errors(text, ["MFC", "로드락", "VG12", "ALD", "CVD", "압력", "레일"])
    assert [(e.term, e.found, e.expected) for e in errors] == [
        ("MFC", "이", "가"),
        ("로드락", "가", "이"),
        ("ALD", "과", "와"),
        ("레일", "으로", "로"),
    ]


def test_checker_accepts_correct_text_and_ignores_words_inside_words() -> None:
    text = "PEALD는 ALD와 다르고, 사이클이 짧다. 챔버를 열면 압력이 변한다."
    assert find_particle_errors(text, ["ALD", "사이클", "챔버", "압력", "사이"]) == []
