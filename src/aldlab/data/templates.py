"""Question wordings: template banks and the picker that spreads facts over them.

Wordings come from template banks (casual and formal registers, "어떻게 돼?", symptom-first
troubleshooting); `TemplatePicker` gives each fact the least-used templates of its bank, so
no template dominates (issue 11: "…에 대해 설명해 주세요." alone was 33% of questions).
Particles come from `josa`.
"""

from __future__ import annotations

import random
import re
from collections import Counter

from aldlab.data.korean import josa

#: Template id of a question a person wrote into the KB (`Document.questions`), not a template.
ASKED = "kb-question"

_SLOT = re.compile(r"\{(\w+)(?:\|([^}]+))?\}")


def fill(template: str, **values: str) -> str:
    """"{x|이/가} 뭐야?" with x="MFC" -> "MFC가 뭐야?" (particles agree via `josa`)."""
    return _SLOT.sub(lambda m: josa(values[m[1]], m[2]) if m[2] else values[m[1]], template)


Bank = list[tuple[str, str]]

DEFINITION: Bank = [
    ("def-mwoya", "{x|이/가} 뭐야?"),
    ("def-mueosingayo", "{x|은/는} 무엇인가요?"),
    ("def-iran", "{x|이란/란} 뭔가요?"),
    ("def-mwonji", "{x|이/가} 뭔지 설명해 줄래?"),
    ("def-malhaneun", "{x|은/는} 어떤 걸 말하는 거예요?"),
    ("def-formal", "{x}의 정의를 알려 주십시오."),
    ("def-jeonghwak", "{x|이/가} 정확히 뭐지?"),
]
ROLE: Bank = [
    ("role-yeokhal", "{x|은/는} 어떤 역할을 하나요?"),
    ("role-museunil", "{x|은/는} 무슨 일을 해?"),
    ("role-gineung", "{x}의 기능이 뭐야?"),
    ("role-damdang", "{x|은/는} 장비에서 뭘 담당해?"),
    ("role-yongdo", "{x|은/는} 어떤 용도로 쓰이나요?"),
    ("role-formal", "{x|이/가} 하는 일을 설명해 주시겠어요?"),
]
MECHANISM: Bank = [
    ("mech-bangsik", "{x|은/는} 어떤 방식으로 이루어지나요?"),
    ("mech-ieojyeo", "{x|은/는} 어떻게 이뤄져?"),
    ("mech-formal", "{x|은/는} 어떤 식으로 진행됩니까?"),
    ("mech-allyeo", "{x|이/가} 어떻게 이루어지는지 알려 줄래?"),
]
DETERMINED_BY: Bank = [
    ("det-gyeoljeong", "{x|은/는} 무엇에 의해 결정되나요?"),
    ("det-jeonghaejyeo", "{x|은/는} 뭘로 정해져?"),
    ("det-joau", "{x|을/를} 좌우하는 요인은 뭐야?"),
    ("det-formal", "{x|은/는} 어떤 요인으로 결정됩니까?"),
]
INFLUENCE: Bank = [
    ("infl-yeonghyang", "{x|은/는} 어떤 영향을 주나요?"),
    ("infl-joau", "{x|은/는} 무엇을 좌우하나요?"),
    ("infl-eodie", "{x|이/가} 어디에 영향을 미쳐?"),
    ("infl-jungyo", "{x|이/가} 중요한 이유는 뭐야?"),
]
INFLUENCED: Bank = [
    ("infd-badna", "{x|은/는} 무엇의 영향을 받나요?"),
    ("infd-yoin", "{x}에 영향을 주는 요인은 뭐야?"),
    ("infd-bakkuneun", "{x|을/를} 바꾸는 요인은 무엇인가요?"),
    ("infd-ttara", "{x|은/는} 뭐에 따라 달라져?"),
]
CONSEQUENCE: Bank = [
    ("cond-eotteoke", "{s|이/가} {c} 어떻게 되나요?"),
    ("cond-eotteokedwae", "{s|이/가} {c} 어떻게 돼?"),
    ("cond-museunil", "{s|이/가} {c} 무슨 일이 생겨?"),
    ("cond-hyeonsang", "{s|이/가} {c} 어떤 현상이 나타나나요?"),
    ("cond-formal", "{s|이/가} {c} 어떤 결과가 나타납니까?"),
]
PROBLEM: Bank = [
    ("prob-munje", "{s|이/가} {c} 어떤 문제가 생기나요?"),
    ("prob-mwoga", "{s|이/가} {c} 뭐가 문제야?"),
    ("prob-formal", "{s|이/가} {c} 어떤 문제가 생길 수 있습니까?"),
]
ACTION: Bank = [
    ("act-jochi", "{s|이/가} {c} 어떻게 조치해야 하나요?"),
    ("act-haeyadwae", "{s|이/가} {c} 어떻게 해야 돼?"),
    ("act-formal", "{s|이/가} {c} 어떤 조치를 해야 합니까?"),
]
DIAGNOSE: Bank = [
    ("diag-uisim", "{s|이/가} {c} 무엇을 의심해야 하나요?"),
    ("diag-uisim-casual", "{s|이/가} {c} 뭘 의심해 봐야 해?"),
    ("diag-jakku", "{s|이/가} 자꾸 {c} 뭐부터 봐야 해?"),
    ("diag-eodibuteo", "{s|이/가} {c} 어디부터 확인하면 될까요?"),
    ("diag-al-su", "{s|이/가} {c} 무엇을 알 수 있나요?"),
]
TITLE_WHAT: Bank = [
    ("tw-mwoya", "{t|은/는} 뭐야?"),
    ("tw-mwongayo", "{t|이/가} 뭔가요?"),
    ("tw-allyeo", "{t|을/를} 알려 주세요."),
    ("tw-gunggeum", "{t|이/가} 궁금해요."),
    ("tw-formal", "{t|은/는} 무엇입니까?"),
]
TITLE_HOW: Bank = [
    ("th-eotteokedwae", "{t|은/는} 어떻게 돼?"),
    ("th-eotteokedoenayo", "{t|이/가} 어떻게 되나요?"),
    ("th-allyeojwo", "{t|을/를} 알려 줘."),
    ("th-jeongri", "{t|을/를} 정리해 주세요."),
    ("th-formal", "{t|은/는} 어떻게 됩니까?"),
]
TITLE_ABOUT: Bank = [
    ("ta-seolmyeong", "{t}에 대해 설명해 주세요."),
    ("ta-allyeojwo", "{t}에 대해 알려 줘."),
    ("ta-gwanhae", "{t}에 관해 설명해 줄래?"),
    ("ta-ganttan", "{t}에 대해 간단히 정리해 줄 수 있어?"),
    ("ta-algosipeo", "{t}에 대해 알고 싶어요."),
    ("ta-formal", "{t}에 대해 설명해 주시겠어요?"),
    ("ta-haeksim", "{t}, 핵심만 알려 줘."),
]
TITLE_PROCEDURE: Bank = [
    ("tp-eotteoke", "{t|은/는} 어떻게 하나요?"),
    ("tp-casual", "{t|은/는} 어떻게 해?"),
    ("tp-formal", "{t|은/는} 어떤 식으로 합니까?"),
]
TITLE_WHEN: Bank = [
    ("when-eotteoke", "{w} 어떻게 되나요?"),
    ("when-eotteokedwae", "{w} 어떻게 돼?"),
    ("when-museunil", "{w} 무슨 일이 생겨?"),
    ("when-hyeonsang", "{w} 어떤 현상이 나타나나요?"),
]
TITLE_WHEN_HEAD: Bank = [
    ("whenh-eotteoke", "{w} {h|은/는} 어떻게 되나요?"),
    ("whenh-mwoya", "{w} {h|이/가} 뭐야?"),
    ("whenh-allyeo", "{w}의 {h|을/를} 알려 주세요."),
]
DIFFERENCE: Bank = [
    ("diff-mwoya", "{a|와/과} {b}의 차이는 뭐야?"),
    ("diff-dareungayo", "{a|와/과} {b|은/는} 어떻게 다른가요?"),
    ("diff-seolmyeong", "{a|와/과} {b}의 차이를 설명해 주세요."),
    ("diff-mwoga", "{a|와/과} {b|은/는} 뭐가 달라?"),
    ("diff-formal", "{a|와/과} {b}의 차이점은 무엇입니까?"),
]
DIFFERENCE_QUALIFIED: Bank = [
    ("diffq-mwoya", "{a|와/과} {b}의 {q} 차이는 뭐야?"),
    ("diffq-dareungayo", "{a|와/과} {b|은/는} {q|이/가} 어떻게 다른가요?"),
    ("diffq-seolmyeong", "{a|와/과} {b}의 {q} 차이를 설명해 주세요."),
    ("diffq-myeon", "{q} 면에서 {a|와/과} {b|은/는} 뭐가 달라?"),
]
DISTINGUISH: Bank = [
    ("dist-eotteoke", "{a|와/과} {b|은/는} 어떻게 구분하나요?"),
    ("dist-casual", "{a|와/과} {b|은/는} 어떻게 구별해?"),
    ("dist-formal", "{a|와/과} {b|을/를} 구분하는 방법은 무엇입니까?"),
]
SYMPTOM: Bank = [
    ("sym-jakku", "{y|이/가} 자꾸 생기는데, {c} 때문일까요?"),
    ("sym-uisim", "{y|이/가} 보이면 {c|을/를} 의심해야 해?"),
    ("sym-formal", "{c|이/가} {y}의 원인이 될 수 있습니까?"),
    ("sym-casual", "{y|이/가} 나오는데 {c} 탓일 수 있어?"),
]
SYMPTOM_CHECK: Bank = [
    ("symc-mwobuteo", "{y|이/가} 자꾸 생겨요, 뭐부터 봐야 해?"),
    ("symc-eodibuteo", "{y|이/가} 보이면 어디부터 점검해야 하나요?"),
    ("symc-formal", "{y|이/가} 발생하면 무엇을 먼저 확인해야 합니까?"),
]
ALARM: Bank = [
    ("alarm-jakku", "{y|이/가} 자꾸 떠요, 뭐부터 봐야 해?"),
    ("alarm-tteumyeon", "{y|이/가} 뜨면 무엇을 점검해야 하나요?"),
    ("alarm-formal", "{y|이/가} 발생하면 어떻게 대응해야 합니까?"),
]
COMBO: Bank = [
    ("combo-gwangye", "{a|와/과} {b|은/는} 어떤 관계가 있나요?"),
    ("combo-casual", "{a|와/과} {b|은/는} 무슨 관계야?"),
    ("combo-seolmyeong", "{a|와/과} {b}의 관계를 설명해 줘."),
    ("combo-formal", "{a|와/과} {b} 사이의 관계를 알려 주십시오."),
]

#: Every bank, for the review command and the template-count statistic.
ALL_BANKS: dict[str, Bank] = {
    name: bank for name, bank in globals().items() if name.isupper() and isinstance(bank, list) and bank and isinstance(bank[0], tuple)
}


class TemplatePicker:
    """Gives each fact the least-used wordings of its bank so far (ties broken at random).

    Facts are enumerated in document order and the dataset keeps most first wordings, so
    balancing at generation time keeps every template well under 10% of the rows.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: Counter[str] = Counter()

    def pick(self, bank: Bank, k: int, **values: str) -> tuple[list[str], list[str]]:
        order = sorted(bank, key=lambda t: (self.used[t[0]], self.rng.random()))
        texts: list[str] = []
        tids: list[str] = []
        for tid, template in order:
            text = fill(template, **values)
            if text in texts:
                continue
            texts.append(text)
            tids.append(tid)
            self.used[tid] += 1
            if len(texts) >= k:
                break
        return texts, tids
