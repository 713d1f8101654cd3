"""Questions about one site, tool, bill or person: what a general ALD KB can never answer.

"우리 팹 HfO2 레시피 GPC 스펙 상하한 몇이야?" or "다음 분기 샤워헤드 교체 비용 견적" retrieve
on-topic passages with high confidence (the KB explains GPC specs and showerheads), so the
calibrated confidence cannot refuse them without also refusing answerable questions: after the
KB grew to 599 documents, fitting the threshold to refuse 90% of dev's and user-dev's
unanswerable questions raised it from 0.42 to 0.61 and refused 5 of 62 answerable user-dev
questions. Like `Retrieval.unknown_names`, these are refused before the model by what the
question asks about, and left out of the threshold fit.

The patterns are deliberately narrow (written on dev and user-dev, checked against the KB's
4,132 example and paraphrase questions, all answerable): a possessive naming the asker's own
organisation ("우리 팹", "저희 회사"; not "우리 장비는 …", which describes a tool the KB can
explain, as 7 of those questions do), a numbered tool ("2호기", "3번 챔버"), money and
people ("견적", "연봉", "담당자 연락처") and fabs or makers named in Hangul ("삼성", "하이닉스";
Latin names are caught as unknown names). Time words alone are not enough: "어제 PM 끝나고
두께가 낮게 나와요" is an answerable troubleshooting question.
"""

from __future__ import annotations

import re

_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?:우리|저희)\s*(?:팹|fab|회사|공장|사이트|팀|부서)", re.IGNORECASE),
    re.compile(r"\d+\s*호기|\d+\s*번\s*(?:챔버|장비|설비|라인)"),
    re.compile(r"견적|단가|연봉|월급|수당|연락처|전화번호|이메일 주소|담당자"),
    re.compile(r"삼성|하이닉스|마이크론|인텔|주성|원익|세메스|램리서치|도쿄일렉트론|어플라이드"),
)


def site_specific(question: str) -> list[str]:
    """The phrases that tie `question` to one site, tool, bill or person (empty: a general question)."""
    found: list[str] = []
    for pattern in _PATTERNS:
        for match in pattern.finditer(question):
            phrase = match.group(0).strip()
            if phrase not in found:
                found.append(phrase)
    return found
