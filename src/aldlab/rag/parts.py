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
#: keeps the 7 that are among the top 5 (6 answer the later part) and drops the 7 others (2
#: of them useful).
POOL = 5


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
    if mentioned(last):
        return last
    topic = mentioned(earlier)[:CARRIED_TERMS]
    return f"{' '.join(topic)} {last}" if topic else None
