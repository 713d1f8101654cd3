"""A synthetic Korean ALD-style KB of any size, for the benchmark and the tests.

Documents look like the shipped KB (title, 2-3 sentences, keywords) but are assembled from
random parts, so thousands of them stay distinct (no near-duplicate documents).
"""

from __future__ import annotations

import random

from aldlab.data.korean import josa
from aldlab.kb.schema import Document, KnowledgeBase

_BASES = [
    ("MFC", "mfc", "가스 유량을 설정값에 맞게 조절하는 장치"),
    ("APC Valve", "valve", "챔버와 pump 사이에서 압력을 조절하는 밸브"),
    ("VG12", "vacuum_gauge", "메인 챔버 압력을 측정하는 진공 게이지"),
    ("VG13", "vacuum_gauge", "로드락 압력을 측정하는 진공 게이지"),
    ("로드락", "loadlock", "대기와 진공 사이에서 웨이퍼를 옮기는 중간 챔버"),
    ("Showerhead", "chamber", "가스를 웨이퍼 전면에 고르게 뿌리는 부품"),
    ("Purge 라인", "purge", "불활성 가스로 잔류 가스를 밀어내는 배관"),
    ("Canister", "precursor", "Precursor를 담아 기화시키는 용기"),
    ("Heater", "chamber", "웨이퍼를 공정 온도로 가열하는 부품"),
    ("Gate Valve", "valve", "챔버 사이를 진공적으로 분리하는 밸브"),
    ("RF 전원", "plasma", "플라즈마를 만드는 고주파 전원"),
    ("Transfer robot", "equipment", "웨이퍼를 챔버 사이로 옮기는 로봇"),
    ("인터락", "interlock", "위험한 조건에서 동작을 막는 안전 장치"),
    ("Throttle valve", "valve", "배기 conductance를 바꾸는 밸브"),
    ("ALD 밸브", "valve", "수십 ms 단위로 가스를 끊어 보내는 고속 밸브"),
]
_PLACES = ["상부", "하부", "좌측", "우측", "중앙", "전단", "후단", "보조", "주", "예비"]
_LINES = "ABCDEFGH"
_MAKERS = ["HX", "KT", "MV", "PL", "QR", "SD", "TW", "VN", "ZE", "JB"]
_HEADS = [
    "교정 주기", "누설 점검 방법", "압력 튐 원인", "온도 관리 기준", "교체 시기", "알람 조치 순서", "초기 점검 항목", "세정 방법",
    "응답 지연 원인", "설정값 선정 기준", "drift 판단 방법", "PM 체크리스트", "이상 증상", "재현성 관리", "파티클 대책", "안정화 시간",
]
_MECHANISMS = [
    "가스 체류 시간이 늘어", "표면 반응이 덜 끝나", "배기 conductance가 줄어", "라디칼 밀도가 떨어져", "열 분포가 흐트러져",
    "잔류 Precursor가 남아", "밸브 응답이 늦어져", "센서 값이 흔들려", "벽면 deposit이 벗겨져", "Carrier gas 공급이 줄어",
    "Purge 효율이 떨어져", "압력 제어 loop가 진동해", "기화량이 불규칙해져", "웨이퍼 온도가 내려가", "배관 온도가 불균일해져",
]
_EFFECTS = [
    "GPC가 흔들리고 막 두께 균일도가 나빠진다", "압력이 목표값을 넘어 overshoot가 생긴다", "파티클이 늘어 수율이 떨어진다",
    "Purge가 길어져 Throughput이 줄어든다", "Precursor가 응축해 배관이 막힌다", "인터락이 걸려 공정이 멈춘다",
    "웨이퍼 가장자리 두께가 얇아진다", "CVD성 성장이 섞여 Step coverage가 나빠진다", "알람이 자주 발생해 장비 가동률이 떨어진다",
]
_CONDITIONS = ["너무 높으면", "너무 낮으면", "불안정하면", "느려지면", "오염되면", "과열되면", "막히면", "흔들리면"]
_CHECKS = ["배관 leak", "센서 offset", "케이블 접촉", "O-ring 상태", "PID 설정", "필터 막힘", "전원 전압", "냉각수 유량"]


def synthetic_kb(n_docs: int, seed: int = 0) -> KnowledgeBase:
    """`n_docs` distinct documents over ~15 topics, deterministic for `seed`."""
    rng = random.Random(seed)
    docs: list[Document] = []
    for i in range(n_docs):
        base, topic, definition = _BASES[i % len(_BASES)]
        rest = i // len(_BASES)
        place = _PLACES[rest % len(_PLACES)]
        line = _LINES[(rest // len(_PLACES)) % len(_LINES)]
        unit = rest // (len(_PLACES) * len(_LINES)) + 1
        model = f"{rng.choice(_MAKERS)}-{rng.randint(100, 999)}"
        subject = f"{place} {line}라인 {unit}호기 {model} {base}"
        value = rng.randint(2, 950)
        cond = rng.choice(_CONDITIONS)
        effect, effect2 = rng.sample(_EFFECTS, 2)
        mech, mech2 = rng.sample(_MECHANISMS, 2)
        check = rng.sample(_CHECKS, 2)
        sentences = [
            f"{josa(subject, '은/는')} {definition}로, 설정값 {value} 기준으로 {rng.randint(1, 9)}% 이내에서 관리한다.",
            f"{josa(subject, '이/가')} {cond} {mech} {effect}.",
            rng.choice([
                f"이때 {josa(check[0], '과/와')} {josa(check[1], '을/를')} 먼저 점검한다.",
                f"증상이 {rng.randint(2, 9)}회 이상 반복되면 {josa(check[1], '을/를')} 확인하고 정비 이력에 남긴다.",
                f"엔지니어는 {rng.randint(2, 48)}시간마다 {josa(check[0], '을/를')} 기록해 추세를 본다.",
            ]),
            rng.choice([f"점검을 미루면 결국 {mech2} {effect2}.", f"{rng.randint(3, 30)}일 이상 방치하면 {effect2}.", ""]),
        ]
        rng.shuffle(sentences[2:])
        text = " ".join(x for x in sentences if x)
        docs.append(
            Document(
                id=f"syn-{i:05d}",
                title=f"{subject}의 {rng.choice(_HEADS)}",
                text=text,
                keywords=[base, "ALD", rng.choice(["압력", "Flow", "온도", "파티클"])],
                topic=topic,
                source="synthetic",
            )
        )
    keywords = sorted({k for d in docs for k in d.keywords})
    return KnowledgeBase(documents=docs, name=f"synthetic-{n_docs}", topics={d.topic: d.topic for d in docs}, keywords=keywords)
