"""Optional LLM judge through any OpenAI-compatible `/v1/chat/completions` endpoint.

Two kinds of judgement:
- rubric: 1-5 on the seed guide's five criteria (정확성, 완성도, 전문성, 구조화, 한국어) with a
  reason, reference-guided when the question has a reference answer;
- pairwise: which of two answers is better. Judges prefer whichever answer comes first
  (position bias), so every pair is asked in both orders; a win counts only when both
  orders agree, anything else is a tie.

The judge asks for JSON (`response_format` json_object, dropped when the server rejects
it) and parses defensively: code fences, prose around the object, "4/5", Korean keys or
English keys all work. A reply that still cannot be parsed is recorded as a failure and
never aborts the run.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from aldlab.errors import UserError
from aldlab.settings import get_secret

RUBRIC = {
    "정확성": ("accuracy", "기술적 사실이 정확한가"),
    "완성도": ("completeness", "질문에 필요한 내용을 빠짐없이 답했는가"),
    "전문성": ("expertise", "ALD 공정/장비 전문가다운 용어와 깊이가 있는가"),
    "구조화": ("structure", "논리적으로 정리되어 읽기 쉬운가"),
    "한국어": ("korean", "자연스럽고 올바른 한국어인가"),
}
CRITERIA = tuple(RUBRIC)

JUDGE_SYSTEM = (
    "당신은 반도체 ALD(원자층 증착) 공정 전문가이자 엄격한 평가자입니다. "
    "주어진 답변을 기준에 따라 객관적으로 평가하고, 반드시 JSON 객체 하나로만 응답하세요."
)


def chat_url(url: str) -> str:
    """Accept a server root, a `/v1` base or the full endpoint."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return f"{url}/chat/completions"
    return f"{url}/v1/chat/completions"


def rubric_prompt(question: str, answer: str, reference: str | None) -> str:
    """User message for a 1-5 rubric score."""
    criteria = "\n".join(f"- {ko} ({en}): {desc}" for ko, (en, desc) in RUBRIC.items())
    ref = f"\n[참고 답안 — 사실 판단의 기준]\n{reference}\n" if reference else ""
    keys = ", ".join(f'"{k}": 1-5' for k in CRITERIA)
    return (
        "다음 질문에 대한 답변을 아래 5가지 기준으로 각각 1점(매우 나쁨)~5점(매우 좋음)으로 평가하세요.\n"
        f"{criteria}\n"
        "답변이 질문에 답하지 않고 \"관련 정보가 부족합니다\"라고 거절했다면, 질문이 ALD 범위 밖일 때만 "
        "정확성을 높게 주세요.\n"
        f"\n[질문]\n{question}\n{ref}\n[평가할 답변]\n{answer}\n\n"
        f"JSON으로만 답하세요: {{{keys}, \"이유\": \"한두 문장\"}}"
    )


def pairwise_prompt(question: str, first: str, second: str, reference: str | None) -> str:
    """User message comparing answer A (shown first) and answer B."""
    ref = f"\n[참고 답안]\n{reference}\n" if reference else ""
    return (
        "다음 질문에 대한 두 답변 중 정확성, 완성도, 전문성, 구조화, 한국어를 종합해 더 나은 답변을 고르세요. "
        "답변의 순서나 길이에 영향받지 마세요.\n"
        f"\n[질문]\n{question}\n{ref}\n[답변 A]\n{first}\n\n[답변 B]\n{second}\n\n"
        'JSON으로만 답하세요: {"winner": "A" 또는 "B" 또는 "tie", "이유": "한두 문장"}'
    )


_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def extract_json(text: str) -> dict[str, Any] | None:
    """The first JSON object in a reply (fenced, bare, or surrounded by prose)."""
    candidates = [m.group(1) for m in _FENCE_RE.finditer(text)] + [text]
    for cand in candidates:
        cand = cand.strip()
        try:
            obj = json.loads(cand)
            if isinstance(obj, dict):
                return obj
        except json.JSONDecodeError:
            pass
        start = cand.find("{")
        while start != -1:
            depth = 0
            for i in range(start, len(cand)):
                if cand[i] == "{":
                    depth += 1
                elif cand[i] == "}":
                    depth -= 1
                    if depth == 0:
                        try:
                            obj = json.loads(cand[start : i + 1])
                        except json.JSONDecodeError:
                            break
                        if isinstance(obj, dict):
                            return obj
                        break
            start = cand.find("{", start + 1)
    return None


def _score_value(value: Any) -> int | None:
    """4, "4", "4/5", "4점", 4.0 -> 4, clamped to 1..5."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        match = re.search(r"\d+(?:\.\d+)?", str(value))
        if not match:
            return None
        number = float(match.group(0))
    return int(min(5, max(1, round(number))))


def parse_rubric(text: str) -> tuple[dict[str, int], str] | None:
    """Scores per criterion and the reason, from JSON or, failing that, 'key: n' prose."""
    obj = extract_json(text)
    scores: dict[str, int] = {}
    reason = ""
    if obj is not None:
        lowered = {str(k).strip().casefold(): v for k, v in obj.items()}
        if isinstance(obj.get("scores"), dict):
            lowered.update({str(k).strip().casefold(): v for k, v in obj["scores"].items()})
        for ko, (en, _) in RUBRIC.items():
            value = lowered.get(ko.casefold(), lowered.get(en))
            score = _score_value(value) if value is not None else None
            if score is not None:
                scores[ko] = score
        reason = str(lowered.get("이유", lowered.get("reason", lowered.get("reasoning", ""))))
    if len(scores) < len(RUBRIC):
        for ko, (en, _) in RUBRIC.items():
            if ko in scores:
                continue
            match = re.search(rf"(?:{ko}|{en})\W{{0,4}}(\d)", text, re.I)
            if match:
                scores[ko] = _score_value(match.group(1)) or 1
    if len(scores) < len(RUBRIC):
        return None
    return scores, reason.strip()


def parse_winner(text: str) -> tuple[str, str] | None:
    """'A' | 'B' | 'tie' and the reason."""
    obj = extract_json(text)
    raw = ""
    reason = ""
    if obj is not None:
        lowered = {str(k).strip().casefold(): v for k, v in obj.items()}
        raw = str(lowered.get("winner", lowered.get("승자", lowered.get("better", ""))))
        reason = str(lowered.get("이유", lowered.get("reason", "")))
    else:
        match = re.search(r"winner\W{0,4}(A|B|tie)", text, re.I)
        raw = match.group(1) if match else ""
    token = raw.strip().strip('"').casefold()
    if token in {"a", "답변 a", "answer a"}:
        return "A", reason
    if token in {"b", "답변 b", "answer b"}:
        return "B", reason
    if token in {"tie", "draw", "동점", "무승부", "equal"}:
        return "tie", reason
    return None


@dataclass
class RubricScore:
    scores: dict[str, int]
    reason: str

    @property
    def overall(self) -> float:
        return sum(self.scores.values()) / len(self.scores)

    def to_json(self) -> dict[str, Any]:
        return {"scores": self.scores, "overall": self.overall, "reason": self.reason}


@dataclass
class PairwiseResult:
    """Outcome for system `a` vs `b` after both orders: "a", "b" or "tie"."""

    winner: str
    orders: list[str] = field(default_factory=list)  # raw verdicts: [a-first, b-first]
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"winner": self.winner, "orders": self.orders, "reasons": self.reasons}


class JudgeError(RuntimeError):
    """A judge call failed (network, HTTP status, unparseable reply)."""


class Judge:
    """Client for one judge model. `transport` lets tests inject an httpx transport."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = chat_url(url)
        self.model = model
        self.retries = retries
        self._json_mode = True
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers, transport=transport)

    @classmethod
    def from_env(cls, url: str, model: str | None, api_key_env: str = "ALDLAB_JUDGE_API_KEY") -> Judge:
        if not model:
            raise UserError(
                "--judge-url을 쓰려면 --judge-model도 필요합니다.",
                "--judge-url needs --judge-model too.",
                hint="예 / e.g. --judge-model gpt-4o-mini",
            )
        return cls(url, model, api_key=get_secret(api_key_env))

    def close(self) -> None:
        self._client.close()

    def chat(self, user: str, *, max_tokens: int = 400) -> str:
        """One completion; retries transient failures, drops JSON mode if it is rejected."""
        last: Exception | None = None
        attempt = -1
        while attempt < self.retries:
            attempt += 1
            body: dict[str, Any] = {
                "model": self.model,
                "messages": [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}],
                "temperature": 0.0,
                "max_tokens": max_tokens,
            }
            if self._json_mode:
                body["response_format"] = {"type": "json_object"}
            try:
                response = self._client.post(self.url, json=body)
            except httpx.HTTPError as exc:
                last = exc
                time.sleep(min(2.0, 0.2 * (attempt + 1)))
                continue
            if response.status_code in (400, 422) and self._json_mode:
                # Many local servers do not implement response_format; ask plainly instead
                # (this retry does not count as an attempt).
                self._json_mode = False
                attempt -= 1
                continue
            if response.status_code >= 400:
                last = JudgeError(f"HTTP {response.status_code}: {response.text[:200]}")
                if response.status_code < 500 and response.status_code != 429:
                    break
                time.sleep(min(2.0, 0.2 * (attempt + 1)))
                continue
            try:
                return str(response.json()["choices"][0]["message"]["content"] or "")
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                last = JudgeError(f"unexpected response shape: {response.text[:200]}")
                last.__cause__ = exc
                break
        raise JudgeError(str(last))

    def check(self) -> None:
        """Fail fast (before minutes of generation) when the endpoint is unreachable."""
        try:
            self.chat('{"ok": true} 를 그대로 JSON으로 출력하세요.', max_tokens=16)
        except JudgeError as exc:
            raise UserError(
                f"평가 모델(judge)에 연결할 수 없습니다: {self.url}",
                f"Cannot reach the judge endpoint {self.url}: {exc}",
                hint="--judge-url/--judge-model과 API 키(ALDLAB_JUDGE_API_KEY)를 확인하세요 "
                "/ check --judge-url, --judge-model and the API key",
            ) from exc

    def rubric(self, question: str, answer: str, reference: str | None = None) -> RubricScore:
        for _ in range(2):
            parsed = parse_rubric(self.chat(rubric_prompt(question, answer, reference)))
            if parsed is not None:
                return RubricScore(*parsed)
        raise JudgeError("unparseable rubric reply")

    def _verdict(self, question: str, first: str, second: str, reference: str | None) -> tuple[str, str]:
        for _ in range(2):
            parsed = parse_winner(self.chat(pairwise_prompt(question, first, second, reference), max_tokens=200))
            if parsed is not None:
                return parsed
        raise JudgeError("unparseable pairwise reply")

    def pairwise(self, question: str, answer_a: str, answer_b: str, reference: str | None = None) -> PairwiseResult:
        """Compare a vs b in both orders; a side wins only if both orders pick it."""
        v1, r1 = self._verdict(question, answer_a, answer_b, reference)  # a shown first
        v2, r2 = self._verdict(question, answer_b, answer_a, reference)  # b shown first
        first = {"A": "a", "B": "b", "tie": "tie"}[v1]
        second = {"A": "b", "B": "a", "tie": "tie"}[v2]
        winner = first if first == second else "tie"
        return PairwiseResult(winner, [first, second], [r1, r2])


def summarize_rubric(scores: list[RubricScore]) -> dict[str, Any]:
    """Mean per criterion and overall."""
    if not scores:
        return {"n": 0}
    out: dict[str, Any] = {"n": len(scores)}
    for ko in CRITERIA:
        out[ko] = sum(s.scores[ko] for s in scores) / len(scores)
    out["overall"] = sum(s.overall for s in scores) / len(scores)
    return out


def summarize_pairwise(results: list[PairwiseResult]) -> dict[str, Any]:
    """Wins of a, wins of b, ties, and b's win rate counting ties as half."""
    n = len(results)
    wins_a = sum(r.winner == "a" for r in results)
    wins_b = sum(r.winner == "b" for r in results)
    ties = n - wins_a - wins_b
    consistent = sum(r.orders[0] == r.orders[1] for r in results)
    return {
        "n": n,
        "wins_a": wins_a,
        "wins_b": wins_b,
        "ties": ties,
        "b_win_rate": (wins_b + 0.5 * ties) / n if n else None,
        "order_consistency": consistent / n if n else None,
    }
