"""Issue 21: the refusal training questions must not carry the held-out sets' own unanswerables.

`data/refusals.py` and `data/offtopic.py` teach refusal by example. An example that names the
entity a holdout or seed unanswerable asks about ("TMA 캐니스터 가격", "Lam 알람 코드",
"김치찌개 끓이는 법") lets the model pass that eval question by memory, not by judgement. The
refusal *kinds* (site records, prices, vendor alarm codes, uncovered processes, chit-chat) are
shared on purpose; the entities are not.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aldlab.data.offtopic import offtopic_facts
from aldlab.data.questions import KiwiTagger
from aldlab.data.refusals import in_domain_refusal_facts

EVALSETS = Path(__file__).resolve().parents[1] / "evalsets"
#: Never tuned on: their unanswerables must not share an entity with a training refusal.
HELD_OUT = ("holdout.jsonl", "seed.jsonl")

#: Words naming a refusal *kind* or a question's frame, not an entity: a training refusal may
#: share these with an eval question ("가격이 얼마야?", "알람 코드", "지난주 PM 이력").
KIND_WORDS = {
    "장비", "챔버", "공정", "라인", "ald", "우리", "가격", "공급사", "업체", "제품", "비용", "견적", "납기", "알람", "코드", "에러", "뜻",
    "의미", "해제", "절차", "이력", "기록", "로그", "교정", "날짜", "일정", "가동률", "분기", "지난주", "지난달", "이번", "요즘",
    "오늘", "내일", "정확", "정확히", "최신", "레시피", "조건", "기준", "온도", "시간", "압력", "방법", "순서", "주기", "추천", "하루",
    "주말", "부품", "교체", "상태", "설정값", "값", "도", "번", "몇", "얼마", "정도", "사용", "필요", "처음", "보통", "다음", "때",
    "pm", "가동", "코스",
}
#: Character 3-gram Jaccard at or above which two questions are near-duplicates (the dataset's
#: own near-dup threshold is 0.8 for answers; a question this close is a paraphrase).
NEAR_DUP = 0.3


def _unanswerables(names: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for name in names:
        for line in (EVALSETS / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                if row.get("answerable") is False:
                    out.append((f"{name}:{row['id']}", row["question"]))
    return out


def _training_refusals() -> list[str]:
    return [q for f in [*in_domain_refusal_facts(), *offtopic_facts()] for q in f.questions]


@pytest.fixture(scope="module")
def tagger() -> KiwiTagger:
    return KiwiTagger()


def entities(question: str, tagger: KiwiTagger) -> set[str]:
    """Nouns, Latin words and numbered names ("3번", "7호기", "E-4127") of a question, minus kind words."""
    out: set[str] = set()
    tokens = tagger.tag([question])[0]
    for i, tok in enumerate(tokens):
        form = tok.form.casefold()
        if tok.tag == "SN" and i + 1 < len(tokens) and tokens[i + 1].tag in ("NNB", "NNG"):
            out.add(form + tokens[i + 1].form)  # "3번", "2호기"
        elif tok.tag in ("NNG", "NNP", "SL") and len(form) >= 2:
            out.add(form)
    out.update(m.casefold() for m in re.findall(r"[A-Za-z]+-?\d+", question))  # codes, E-4127
    return out - KIND_WORDS


def _jaccard(a: str, b: str) -> float:
    def grams(s: str) -> set[str]:
        s = re.sub(r"\s+", "", s.casefold())
        return {s[i : i + 3] for i in range(len(s) - 2)}

    ga, gb = grams(a), grams(b)
    return len(ga & gb) / len(ga | gb) if ga | gb else 0.0


def twins(held_out: list[tuple[str, str]], training: list[str], tagger: KiwiTagger) -> list[str]:
    """Every (held-out question, training refusal) pair sharing an entity or near-duplicated."""
    train_entities = [(q, entities(q, tagger)) for q in training]
    found = []
    for where, question in held_out:
        mine = entities(question, tagger)
        for other, theirs in train_entities:
            shared = mine & theirs
            if shared or _jaccard(question, other) >= NEAR_DUP:
                found.append(f"{where} {question!r} ~ {other!r} ({', '.join(sorted(shared)) or 'near-duplicate'})")
    return found


def test_entity_rule_finds_the_twins_it_was_written_for(tagger: KiwiTagger) -> None:
    """The rule itself: the pairs found in issue 21 (before the fix) are twins, a same-kind pair is not."""
    held_out = [("holdout", "TMA 캐니스터 한 통 가격이 요즘 얼마고, 어느 공급사가 제일 싸?"),
                ("holdout", "Lam 장비에서 알람 코드 E-4127이 떴는데 이 코드가 정확히 무슨 뜻이에요?"),
                ("seed", "김치찌개 맛있게 끓이는 법 알려줘.")]
    assert len(twins(held_out, ["TMA Canister 가격이 보통 얼마야?"], tagger)) == 1
    assert len(twins(held_out, ["Lam 장비 알람 코드 Error 7031은 무슨 뜻이야?"], tagger)) == 1
    assert len(twins(held_out, ["김치찌개 맛있게 끓이는 법 알려줘."], tagger)) == 1
    assert twins(held_out, ["Heater jacket 가격이 보통 얼마야?", "Norvane 장비 알람 코드 W-220은 무슨 뜻이야?"], tagger) == []


def test_no_training_refusal_shares_an_entity_with_a_held_out_unanswerable(tagger: KiwiTagger) -> None:
    found = twins(_unanswerables(HELD_OUT), _training_refusals(), tagger)
    assert found == [], "\n".join(found)


def test_the_refusal_builders_keep_their_size() -> None:
    """Twins were replaced, not dropped: the refusal share of a build stays where it was."""
    assert len(in_domain_refusal_facts()) == 146
    assert len(offtopic_facts()) == 80
