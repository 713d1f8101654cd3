"""Questions no ALD knowledge base can answer: the closed-book refusal examples.

Grouped by area, so the split keeps each area on one side ("오늘 서울 날씨" and
"내일 부산 날씨" are near-duplicates and must not straddle train and eval).

Issue 21: none may be a held-out unanswerable or share its entity (seed.jsonl asked
"김치찌개 맛있게 끓이는 법 알려줘." word for word); tests/test_data_refusal_twins.py checks.
"""

from __future__ import annotations

from aldlab.data.facts import Fact
from aldlab.prompts import refusal_answer

OFF_TOPIC: dict[str, list[str]] = {
    "weather": ["대구에 우산 챙겨야 해?", "이번 주말에 비 온대?", "내일 아침 기온이 몇 도야?", "장마는 언제 시작하나요?", "미세먼지 농도 알려줘."],
    "cooking": ["잡채 당면 불리는 시간 알려줘.", "파스타 면은 몇 분 삶아야 해?", "된장국에 어떤 재료를 넣으면 좋아?", "계란말이 예쁘게 마는 방법은?", "떡볶이 소스 비율 알려줘."],
    "stocks": ["금 시세는 앞으로 오를까?", "지금 비트코인 사도 될까?", "ETF와 펀드 중 뭐가 나아?", "배당주 추천해 줘.", "환율이 오르면 주식은 어떻게 돼?"],
    "travel": ["제주도 여행 코스 추천해 줘.", "일본 여행 갈 때 환전은 얼마나 해?", "부산에서 가볼 만한 곳은?", "유럽 여행 적기는 언제야?", "비행기 수하물 무게 제한이 얼마야?"],
    "sports": ["어제 야구 경기 누가 이겼어?", "손흥민 이번 시즌 골 몇 개야?", "마라톤 처음 준비하는 방법은?", "테니스 서브 잘 넣는 법 알려줘.", "월드컵 다음 개최지는 어디야?"],
    "movies": ["요즘 볼 만한 영화 추천해 줘.", "넷플릭스 인기 드라마 뭐 있어?", "이 영화 결말 설명해 줄래?", "아카데미 작품상 받은 한국 영화는?", "주말에 볼 애니메이션 추천해 줘."],
    "history": ["임진왜란은 언제 일어났어?", "이순신 장군의 업적을 알려줘.", "로마 제국은 왜 멸망했어?", "고려와 조선의 차이는?", "산업혁명은 어디서 시작됐어?"],
    "health": ["감기에 빨리 낫는 방법은?", "하루에 물을 얼마나 마셔야 해?", "허리 통증에 좋은 운동 알려줘.", "잠이 안 올 때 어떻게 해?", "비타민 D는 언제 먹는 게 좋아?"],
    "programming": ["러스트 소유권 개념 설명해 줘.", "자바스크립트 클로저가 뭐야?", "Git에서 브랜치 합치는 방법은?", "SQL JOIN 종류를 설명해 줘.", "리액트 훅은 어떻게 써?"],
    "music": ["기타 코드 잡는 법 알려줘.", "요즘 인기 있는 K-pop 노래는?", "피아노 독학 순서 추천해 줘.", "노래 고음 잘 내는 방법은?", "클래식 입문곡 추천해 줘."],
    "daily": ["주말에 뭐 하고 놀까?", "친구 생일 선물 뭐가 좋을까?", "이사할 때 체크리스트 알려줘.", "자취 요리 간단한 거 추천해 줘.", "면접에서 긴장 안 하는 법은?"],
    "math": ["미분과 적분의 차이가 뭐야?", "피타고라스 정리를 설명해 줘.", "확률과 통계 공부 순서는?", "소수가 무한히 많은 이유는?", "행렬 곱셈은 어떻게 해?"],
    "shopping": ["가성비 좋은 노트북 추천해 줘.", "겨울 패딩 고르는 법 알려줘.", "무선 이어폰 뭐 살까?", "냉장고 용량은 얼마가 적당해?", "온라인 쇼핑 환불 절차 알려줘."],
    "cars": ["자동차 엔진오일은 언제 갈아?", "전기차와 하이브리드 차 중 뭐가 나아?", "타이어 공기압은 얼마가 적당해?", "운전면허 필기 공부 방법은?", "겨울철 차량 관리 팁 알려줘."],
    "pets": ["앵무새 말 가르치는 법 알려줘.", "고양이가 밥을 안 먹어요.", "햄스터 키울 때 주의할 점은?", "거북이 수조 물 갈이 주기 알려줘.", "반려견 훈련 잘 시키는 법은?"],
    "language": ["영어 회화 독학 방법 알려줘.", "일본어 히라가나 외우는 법은?", "토익 점수 빨리 올리는 법은?", "중국어 성조 연습 방법은?", "맞춤법 '되'와 '돼' 구분법 알려줘."],
}

CLOSED_REASONS = [
    "이 질문은 ALD 공정·장비 지식 범위를 벗어나 답할 근거가 없습니다.",
    "ALD 공정과 장비에 관한 질문에만 근거를 가지고 답할 수 있습니다.",
    "반도체 ALD 분야와 관련 없는 질문이라 확인된 정보가 없습니다.",
]
RAG_OFFTOPIC_REASONS = [
    "참고 문서는 ALD 공정·장비에 관한 내용이라 이 질문에 답할 근거가 없습니다.",
    "제공된 참고 문서에는 이 질문과 관련된 내용이 없습니다.",
]


def offtopic_facts() -> list[Fact]:
    """One fact per off-topic question; its group is the area, so an area stays on one side."""
    facts = []
    for area in sorted(OFF_TOPIC):
        for i, question in enumerate(OFF_TOPIC[area]):
            reason = CLOSED_REASONS[(i + len(area)) % len(CLOSED_REASONS)]
            facts.append(
                Fact(f"off:{area}:{i}", "unanswerable", "offtopic", [question], [(refusal_answer(reason), None)], [], group=f"offtopic:{area}")
            )
    return facts


def missing_context_reason(subject: str, variant: int) -> str:
    """Why a retrieval-style question has no answer: its documents are not in the context."""
    subject = subject.strip() or "이 질문"
    options = [
        f"참고 문서에 {subject}에 대한 내용이 없습니다.",
        f"주어진 참고 문서에서는 {subject}에 관한 근거를 찾을 수 없습니다.",
    ]
    return options[variant % len(options)]
