"""Two questions in one message: find the later one, so its own passage can answer it.

Users ask two things at once ("퍼지 시간 보통 몇 초 줌? 짧게 하면 어떻게 되는지도", "PEALD 장점이
저온 공정 가능한 거 맞죠? 단점은 뭐예요?"). Retrieval ranks the passage for the whole message,
which usually answers the first part, and the 270M model copies one passage, so the second part
went unanswered. The last clause, searched on its own with the topic terms of the clauses
before it when it names none itself, finds the passage for that part; when that passage is
also a candidate for the whole question (`POOL`), the assistant adds it to the answer unless
the model's text already cites it (`Assistant.settle`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: Clause ends: question and exclamation marks, a full stop after Hangul, and "..".
CLAUSE_END = re.compile(r"[?？!]+\s*|(?<=[가-힣])\.\s+|\.\.+\s*")
#: Shorter pieces ("네.", "ㅠ") are not questions.
MIN_CLAUSE_CHARS = 4
#: Topic terms of the earlier clauses carried into a later clause that names none.
CARRIED_TERMS = 2
#: The later part's passage must also be among this many passages retrieved for the whole
#: question: a clause alone is short and generic ("몇 사이클 정도 해?", "쓰루풋 말고도 있나요"), and
#: its best passage then answers another subject (cycle counts for film thickness, not
#: seasoning). On user-dev, holdout and seed, 14 later parts found another passage; this check
#: keeps the 6 that are among the top 5 (each answers the later part) and drops the 8 others
#: (two of them would have helped: PEALD's downsides, preventing a first-wafer effect).
POOL = 5


#: A clause that asks something: a question word, an indirect question ("…되는지도", "…적당한지"),
#: a request ("알려주세요") or a question ending ("없나", "돼냐", "할까"). A closing statement
#: ("레시피는 안바꿨어요") is context for the question, not a second question: searched on its
#: own it found a passage on the recipe-change procedure.
ASKING = re.compile(
    r"왜|뭐|뭔|무엇|무슨|어떻게|어케|어떤|어느|얼마|몇|언제|어디|누가|"
    r"[는은인을를]지|지도|알려|설명|"
    r"(?:나|냐|니|까|죠|지|가|래|대|야|요)\s*$"
)


def asks(clause: str, question: str) -> bool:
    """Whether `clause` (a piece of `question`) is itself a question: it is followed by a
    question mark in `question`, or reads as one (`ASKING`; "…요" only with a question mark)."""
    at = question.rfind(clause)
    follows = question[at + len(clause) : at + len(clause) + 3] if at >= 0 else ""
    if "?" in follows or "？" in follows:
        return True
    return bool(ASKING.search(re.sub(r"요\s*$", "", clause)))


def later_part(question: str, mentioned: Callable[[str], list[str]]) -> str | None:
    """The last clause of a multi-clause question as a query of its own, or None.

    `mentioned` lists the KB's domain terms in a text (longest first). A later clause without
    any ("짧게 하면 어떻게 되는지도") gets the earlier clauses' first terms in front ("퍼지 …");
    when neither has a term, there is no separate topic to search for.
    """
    clauses = [c.strip() for c in CLAUSE_END.split(question) if c and len(c.strip()) >= MIN_CLAUSE_CHARS]
    if len(clauses) < 2:
        return None
    earlier, last = " ".join(clauses[:-1]), clauses[-1]
    if not asks(last, question):
        return None
    if mentioned(last):
        return last
    topic = mentioned(earlier)[:CARRIED_TERMS]
    return f"{' '.join(topic)} {last}" if topic else None
