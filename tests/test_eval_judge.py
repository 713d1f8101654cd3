"""LLM judge against a fake OpenAI-compatible endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aldlab.errors import UserError
from aldlab.eval.judge import Judge, chat_url, extract_json, parse_rubric, parse_winner, summarize_pairwise

Reply = Callable[[dict], tuple[int, str]]


class FakeEndpoint:
    """A local /v1/chat/completions whose reply is computed by `reply(request_body)`."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, **body})
                status, content = outer.reply(body)
                payload = (
                    json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
                    if status == 200
                    else json.dumps({"error": content})
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Callable[[Reply], FakeEndpoint]]:
    made: list[FakeEndpoint] = []

    def make(reply: Reply) -> FakeEndpoint:
        made.append(FakeEndpoint(reply))
        return made[-1]

    yield make
    for e in made:
        e.close()


RUBRIC_JSON = '{"정확성": 5, "완성도": 4, "전문성": "4/5", "구조화": 3, "한국어": 5, "이유": "정확함"}'


def test_parsers_are_robust() -> None:
    assert chat_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert extract_json('설명입니다.\n```json\n{"a": {"b": 1}}\n```') == {"a": {"b": 1}}
    assert extract_json('평가: {"winner": "B"} 끝') == {"winner": "B"}
    scores, reason = parse_rubric(f"결과는 다음과 같습니다 {RUBRIC_JSON}")
    assert scores == {"정확성": 5, "완성도": 4, "전문성": 4, "구조화": 3, "한국어": 5} and reason == "정확함"
    english = parse_rubric('{"accuracy": 9, "completeness": 2, "expertise": 3, "structure": 0, "korean": 4}')
    assert english is not None and english[0]["정확성"] == 5 and english[0]["구조화"] == 1
    prose = parse_rubric("정확성: 4, 완성도: 3, 전문성: 4, 구조화: 2, 한국어: 5")
    assert prose is not None and prose[0]["구조화"] == 2
    assert parse_rubric("모르겠습니다") is None
    assert parse_winner('{"winner": "tie", "이유": "비슷"}') == ("tie", "비슷")
    assert parse_winner("winner: B") == ("B", "")


def test_rubric_is_reference_guided_and_falls_back_without_json_mode(endpoint) -> None:
    def reply(body: dict) -> tuple[int, str]:
        if "response_format" in body:
            return 400, "response_format not supported"
        return 200, RUBRIC_JSON

    fake = endpoint(reply)
    judge = Judge(fake.url, "judge-model", retries=0)  # the JSON-mode fallback is not a retry
    score = judge.rubric("ALD가 뭐야?", "ALD는 원자층 증착입니다.", reference="ALD는 self-limiting 증착법이다.")
    assert score.overall == pytest.approx(4.2)
    last = fake.requests[-1]
    assert last["path"] == "/v1/chat/completions" and last["model"] == "judge-model"
    user = last["messages"][-1]["content"]
    assert "참고 답안" in user and "self-limiting" in user and "정확성" in user
    assert "response_format" not in last


def test_pairwise_cancels_position_bias(endpoint) -> None:
    always_first = endpoint(lambda body: (200, '{"winner": "A", "이유": "첫 번째"}'))
    result = Judge(always_first.url, "m").pairwise("q", "base answer", "ft answer")
    assert result.winner == "tie" and result.orders == ["a", "b"]
    assert len(always_first.requests) == 2

    def prefers_ft(body: dict) -> tuple[int, str]:
        text = body["messages"][-1]["content"]
        a_part = text.split("[답변 A]")[1].split("[답변 B]")[0]
        return 200, json.dumps({"winner": "A" if "ft answer" in a_part else "B", "이유": "ft가 더 정확"})

    consistent = endpoint(prefers_ft)
    judge = Judge(consistent.url, "m")
    results = [judge.pairwise("q", "base answer", "ft answer") for _ in range(3)]
    assert all(r.winner == "b" for r in results)
    summary = summarize_pairwise(results + [result])
    assert summary["wins_b"] == 3 and summary["ties"] == 1 and summary["b_win_rate"] == pytest.approx(3.5 / 4)
    assert summary["order_consistency"] == pytest.approx(3 / 4)


def test_unreachable_judge_is_a_user_error() -> None:
    judge = Judge("http://127.0.0.1:9", "m", retries=0, timeout=2)
    with pytest.raises(UserError, match="judge"):
        judge.check()
    with pytest.raises(UserError, match="judge-model"):
        Judge.from_env("http://127.0.0.1:9", None)
