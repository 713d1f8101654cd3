"""Optional teacher LLM (any OpenAI-compatible /v1/chat/completions) for paraphrases and polish.

A teacher makes questions more varied and answers smoother, but it also invents facts and
slips into Chinese characters. So every output is checked — Korean, no Han characters,
grounded in the source document by character n-gram overlap — and rejected ones are
counted in stats.json instead of being trained on.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from aldlab.data.dedup import ngrams
from aldlab.data.facts import Fact
from aldlab.errors import UserError

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_HANGUL = re.compile(r"[가-힣]")
_LATIN = re.compile(r"[A-Za-z]")

TEACHER_SYSTEM = (
    "당신은 반도체 ALD 장비 교육 자료를 다듬는 한국어 편집자입니다. 주어진 문서에 있는 사실만 사용하고, "
    "한자나 중국어를 쓰지 말고, 반드시 JSON 하나로만 답하세요."
)


@dataclass
class TeacherStats:
    """Calls made and outputs accepted/rejected (by reason)."""

    calls: int = 0
    failed_calls: int = 0
    accepted_questions: int = 0
    accepted_answers: int = 0
    rejected: Counter = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "failed_calls": self.failed_calls,
            "accepted_questions": self.accepted_questions,
            "accepted_answers": self.accepted_answers,
            "rejected": dict(sorted(self.rejected.items())),
            "rejected_total": sum(self.rejected.values()),
        }


def check_korean(text: str) -> str | None:
    """Reason the text is unusable, or None: must be mostly Hangul and free of Han characters."""
    if not text.strip():
        return "empty"
    if _HAN.search(text):
        return "chinese_characters"
    hangul = len(_HANGUL.findall(text))
    latin = len(_LATIN.findall(text))
    if hangul == 0 or hangul < 0.5 * (hangul + latin):
        return "not_korean"
    return None


def grounding(text: str, source: str, n: int = 3) -> float:
    """Share of the text's character n-grams that also occur in the source document."""
    grams = ngrams(text, n)
    if not grams:
        return 0.0
    return len(grams & ngrams(source, n)) / len(grams)


def check_answer(answer: str, source: str, min_grounding: float = 0.6) -> str | None:
    """Reason a polished answer is rejected, or None when it is Korean and grounded."""
    reason = check_korean(answer)
    if reason:
        return reason
    if grounding(answer, source) < min_grounding:
        return "ungrounded_answer"
    return None


def check_question(question: str, original: str, terms: list[str]) -> str | None:
    """Reason a paraphrased question is rejected: it must stay Korean and about the same thing."""
    reason = check_korean(question)
    if reason:
        return reason
    if len(question) > 3 * max(len(original), 20):
        return "question_too_long"
    low = question.casefold()
    if terms and not any(t.casefold() in low for t in terms):
        return "question_lost_subject"
    return None


class TeacherClient:
    """Thin client for an OpenAI-compatible chat endpoint (httpx; `transport` for tests)."""

    def __init__(self, url: str, model: str, *, api_key: str | None = None, timeout_s: float = 60.0, transport: httpx.BaseTransport | None = None) -> None:
        base = url.rstrip("/")
        self.endpoint = base if base.endswith("/chat/completions") else (base + "/chat/completions" if base.endswith("/v1") else base + "/v1/chat/completions")
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers, transport=transport)

    def close(self) -> None:
        self._client.close()

    def complete(self, messages: list[dict[str, str]]) -> str:
        response = self._client.post(self.endpoint, json={"model": self.model, "messages": messages, "temperature": 0.7})
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"])

    def check_reachable(self) -> None:
        """Fail early with a clear message instead of 200 timeouts later."""
        try:
            self.complete([{"role": "user", "content": "ping"}])
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise UserError(
                "교사 LLM 엔드포인트에 연결할 수 없습니다.",
                f"Cannot reach the teacher endpoint {self.endpoint}: {exc}",
                hint="--teacher-url(OpenAI 호환 /v1)과 --teacher-model을 확인하세요 / check --teacher-url and --teacher-model",
            ) from exc


def _teacher_prompt(fact: Fact, source: str, k: int) -> list[dict[str, str]]:
    body = (
        f"문서:\n{source}\n\n질문: {fact.questions[0]}\n답변: {fact.plain_answer}\n\n"
        f"1) 같은 뜻의 자연스러운 한국어 질문 {k}개를 만드세요(구어체와 존댓말 섞기). "
        "2) 답변을 문서 내용만으로 자연스럽게 다듬으세요(새 사실 추가 금지). "
        '형식: {"questions": ["..."], "answer": "..."}'
    )
    return [{"role": "system", "content": TEACHER_SYSTEM}, {"role": "user", "content": body}]


def _parse_json(text: str) -> dict[str, Any] | None:
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if not match:
        return None
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def improve_facts(facts: list[Fact], sources: dict[str, str], client: TeacherClient, *, paraphrases: int, stats: TeacherStats) -> None:
    """Add checked teacher paraphrases and replace single-document answers by checked polish.

    Paraphrases are added to the fact's own question list, so they share its group and can
    never end up on the other side of the split from the original wording.
    """
    for fact in facts:
        if fact.kind not in ("kb", "combo") or not fact.doc_ids:
            continue
        source = " ".join(sources.get(d, "") for d in fact.doc_ids)
        stats.calls += 1
        try:
            reply = client.complete(_teacher_prompt(fact, source, paraphrases))
        except (httpx.HTTPError, KeyError, ValueError, IndexError):
            stats.failed_calls += 1
            continue
        data = _parse_json(reply)
        if data is None:
            stats.rejected["unparsable_reply"] += 1
            continue
        terms = fact.terms or [w for w in fact.subject.split(", ") if w]
        for question in data.get("questions") or []:
            question = str(question).strip()
            reason = check_question(question, fact.questions[0], terms)
            if reason:
                stats.rejected[reason] += 1
            elif question not in fact.questions:
                fact.questions.append(question)
                stats.accepted_questions += 1
        answer = str(data.get("answer") or "").strip()
        if answer and len(fact.answer_parts) == 1:
            reason = check_answer(answer, source)
            if reason:
                stats.rejected[reason] += 1
            else:
                fact.answer_parts = [(answer, fact.answer_parts[0][1])]
                stats.accepted_answers += 1
