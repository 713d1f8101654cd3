"""ALD-sounding questions the KB cannot answer: the in-domain refusal examples.

Issue 11: every refusal row used to be off-topic (weather, cooking) or a retrieval row with
its document withheld, so nothing taught the model to refuse a question that *sounds* like
the KB — one site's or tool's records, prices and vendors, another maker's alarm codes,
fab processes the KB does not cover. A 270M model invents answers to exactly those.

Questions are assembled from templates × entities (deterministic), grouped by template so
near-identical wordings stay on one side of the split. Each area has its own one-sentence
reasons, for closed-book and for retrieval-style rows (where the retrieved passages are
real KB documents that do not contain the answer).

Issue 21: no entity here may be one a held-out unanswerable asks about (evalsets/holdout.jsonl,
seed.jsonl): "TMA Canister 가격", "Lam 알람 코드", "3번 챔버 PM", "원자층 식각(ALE)", "CMP 슬러리",
"EUV 노광", "포토레지스트", "ASM HfO2 레시피 pulse" were replaced by made-up entities of the same
kind (tests/test_data_refusal_twins.py); Picosun went too (user-test u-117 asks its alarm code).
"""

from __future__ import annotations

from dataclasses import dataclass

from aldlab.data.facts import Fact
from aldlab.data.korean import josa
from aldlab.prompts import refusal_answer


@dataclass(frozen=True)
class RefusalArea:
    """One kind of question the KB cannot answer, with its reasons."""

    name: str
    templates: tuple[str, ...]
    slots: dict[str, tuple[str, ...]]
    closed_reasons: tuple[str, ...]
    rag_reasons: tuple[str, ...]


_TOOLS = ("11번 챔버", "2호기", "PM2 챔버", "7호기 ALD 장비", "B라인 5호기", "우리 라인 ZrO2 장비")
_SITES = ("화성 사업장", "A라인", "2공장", "우리 라인", "청주 공장", "C동 클린룸")
_PARTS = ("Heater jacket", "ALD 밸브", "MFC", "APC Valve", "VG12 게이지", "Showerhead", "dry pump", "Gate Valve O-ring", "TDMAH 한 병", "RF 발생기")
_MAKERS = ("Norvane", "TEL", "세림ENG", "Applied Materials", "Kokusai", "주성", "원익IPS", "Kestrel")
_CODES = ("E-1023", "ALM 4107", "Error 7031", "W-220", "코드 5512", "P-0815", "E-3390", "ALM 0412")
_PROCESSES = (
    ("다이싱", "블레이드 회전 속도"),
    ("패키지 몰딩", "몰딩 온도 조건"),
    ("Cu 전해도금", "첨가제 관리 방법"),
    ("이온 주입 후 어닐", "온도 조건"),
    ("MOCVD GaN 성장", "온도와 V/III 비"),
    ("백그라인딩", "연마 속도 조건"),
    ("스퍼터링", "타깃 교체 주기"),
    ("솔더 리플로우", "온도 프로파일"),
    ("Si 에피 성장", "HCl 첨가량"),
    ("웨이퍼 본딩", "정렬 오차 기준"),
)

AREAS: tuple[RefusalArea, ...] = (
    RefusalArea(
        "site_records",
        (
            "{tool}의 지난주 PM 이력 알려 줘.",
            "{tool}에서 어제 뜬 알람 로그를 보여 줄 수 있어?",
            "{tool} VG12 마지막 교정 날짜가 언제야?",
            "{tool}의 TiN 레시피 NH3 유량이 정확히 몇 sccm이에요?",
            "{site}에서 이번 달 파티클 불량이 몇 건 났어?",
            "{site} ALD 장비들의 지난 분기 가동률은 얼마였나요?",
            "{tool} 지금 챔버 압력이 몇 Torr야?",
            "{site}의 다음 PM 일정은 언제로 잡혀 있나요?",
        ),
        {"tool": _TOOLS, "site": _SITES},
        (
            "특정 사이트나 장비의 운영 기록은 지식 베이스에 없어 확인할 수 없습니다.",
            "개별 장비의 이력과 현재 상태는 제가 가진 ALD 지식으로는 알 수 없습니다.",
        ),
        (
            "참고 문서는 일반적인 ALD 장비 지식만 다루고 특정 장비의 기록은 담고 있지 않습니다.",
            "참고 문서에는 해당 장비의 이력이나 현재 값이 없습니다.",
        ),
    ),
    RefusalArea(
        "commercial",
        (
            "{part} 가격이 보통 얼마야?",
            "{part}는 어느 업체 제품이 제일 좋아?",
            "{part} 교체 비용은 대략 얼마나 드나요?",
            "{part} 구매하려면 어디에 견적을 받아야 해?",
            "{part} 납기는 보통 몇 주 걸려요?",
        ),
        {"part": _PARTS},
        (
            "가격, 공급 업체, 납기 같은 상업 정보는 지식 베이스에서 다루지 않습니다.",
            "구매나 비용에 관한 정보는 제가 근거로 삼는 ALD 지식 범위 밖입니다.",
        ),
        (
            "참고 문서에는 가격이나 공급 업체에 관한 내용이 없습니다.",
            "참고 문서는 장비 원리와 운용만 설명하고 상업 정보는 담고 있지 않습니다.",
        ),
    ),
    RefusalArea(
        "vendor_alarms",
        (
            "{maker} 장비 알람 코드 {code}는 무슨 뜻이야?",
            "{maker} ALD 장비에서 {code} 에러가 뜨면 어떻게 해야 하나요?",
            "{maker} 장비의 {code} 알람 해제 절차 알려 줘.",
            "{maker} 장비 {code} 알람이 자꾸 떠요, 뭐부터 봐야 해?",
        ),
        {"maker": _MAKERS, "code": _CODES},
        (
            "특정 제조사 장비의 알람 코드 정의는 지식 베이스에 없습니다.",
            "장비 제조사별 알람 코드는 제가 가진 자료에 없어 뜻을 확인할 수 없습니다.",
        ),
        (
            "참고 문서에는 해당 제조사의 알람 코드 정의가 없습니다.",
            "참고 문서는 이 알람 코드를 다루지 않아 의미와 조치를 확인할 수 없습니다.",
        ),
    ),
    RefusalArea(
        "uncovered_process",
        (
            "{process} 공정의 {detail}은 어떻게 돼?",
            "{process}에서 {detail}을 알려 주세요.",
            "{process} 할 때 {detail}은 뭘로 정하나요?",
        ),
        {"process": tuple(p for p, _ in _PROCESSES)},
        (
            "이 공정은 ALD 지식 베이스가 다루는 범위가 아니어서 근거가 없습니다.",
            "제 자료는 ALD 공정과 장비만 다루므로 다른 공정의 조건은 답할 수 없습니다.",
        ),
        (
            "참고 문서는 ALD 공정만 다루고 이 공정에 관한 내용은 없습니다.",
            "참고 문서에서 이 공정의 조건을 찾을 수 없습니다.",
        ),
    ),
)


def _fill(template: str, values: dict[str, str]) -> str:
    """Fill slots; "{detail}은/을" particles are fixed to agree with the filled value."""
    text = template
    for key, value in values.items():
        for particle in ("은", "을", "는", "를", "이", "가"):
            slot = "{" + key + "}" + particle
            if slot in text:
                pair = {"은": "은/는", "는": "은/는", "을": "을/를", "를": "을/를", "이": "이/가", "가": "이/가"}[particle]
                text = text.replace(slot, josa(value, pair))
        text = text.replace("{" + key + "}", value)
    return text


def _questions(area: RefusalArea) -> list[tuple[int, str]]:
    """(template index, question) for every template × a rotation of slot values."""
    out: list[tuple[int, str]] = []
    for ti, template in enumerate(area.templates):
        if area.name == "uncovered_process":
            for pi, (process, detail) in enumerate(_PROCESSES):
                if (pi + ti) % 3 == 0 or ti == 0:
                    out.append((ti, _fill(template, {"process": process, "detail": detail})))
            continue
        keys = [k for k in area.slots if "{" + k + "}" in template]
        width = max(len(area.slots[k]) for k in keys)
        for i in range(width):
            values = {k: area.slots[k][(i + ti) % len(area.slots[k])] for k in keys}
            out.append((ti, _fill(template, values)))
    return list(dict.fromkeys(out))


def in_domain_refusal_facts() -> list[Fact]:
    """One fact per question; its group is (area, template) so near-identical wordings stay together."""
    facts: list[Fact] = []
    for area in AREAS:
        for i, (ti, question) in enumerate(_questions(area)):
            reason = area.closed_reasons[i % len(area.closed_reasons)]
            facts.append(
                Fact(
                    f"indomain:{area.name}:{ti}:{i}",
                    "unanswerable",
                    "in_domain",
                    [question],
                    [(refusal_answer(reason), None)],
                    [],
                    group=f"indomain:{area.name}:{ti}",
                    templates=[f"refuse-{area.name}-{ti}"],
                )
            )
    return facts


def rag_reason(fact: Fact, variant: int) -> str:
    """The retrieval-style reason for an in-domain refusal fact."""
    name = fact.fact_id.split(":")[1]
    area = next(a for a in AREAS if a.name == name)
    return area.rag_reasons[variant % len(area.rag_reasons)]
