"""`aldlab serve` as an Open WebUI backend: the requests Open WebUI sends, replayed.

Open WebUI (backend/open_webui/routers/openai.py, routers/tasks.py, utils/middleware.py)
lists `/v1/models` with the connection's key and shows `name` (else `id`); sends chats
with its system prompt, sampling parameters and `stream_options`, and reads `data:` lines
for `choices[0].delta.content` and `usage`; sends each chore (title, tags, follow-ups,
search queries) as one user message built from a template, non-streaming, with
`max_completion_tokens` up to 1000, then cuts the reply from the first "{" to the last
"}" and reads one key. The task prompts below are shortened, but keep what identifies
them: the "### Task:" opening, the JSON line of "### Output:" and the
`<chat_history>` block of `ROLE: text` lines (utils/misc.py `get_messages_content`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aldlab.prompts import REFUSAL
from aldlab.serve.app import create_app
from aldlab.serve.fake import FakeAssistant
from aldlab.serve.settings import ServeSettings
from aldlab.serve.testing import write_tiny_kb
from aldlab.serve.webui_tasks import detect_task, make_tags, make_title, parse_history
from aldlab.store import Store

KEY = "test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUESTION = "TMA 전구체는 물과 반응하나요?"
ANSWER = "TMA(트라이메틸알루미늄)는 Al2O3 ALD에 쓰이는 대표 전구체로 물과 반응한다. [tiny-003]"
HISTORY = f"<chat_history>\nUSER: {QUESTION}\nASSISTANT: {ANSWER}\n</chat_history>"
TITLE_PROMPT = (
    "### Task:\nGenerate a concise title summarizing the chat history.\n### Guidelines:\n- Keep it short.\n"
    '### Output:\nJSON format: { "title": "your concise title here" }\n### Chat History:\n' + HISTORY
)
TAGS_PROMPT = (
    "### Task:\nGenerate 1-3 broad tags categorizing the main themes of the chat history.\n"
    '### Output:\nJSON format: { "tags": ["tag1", "tag2", "tag3"] }\n### Chat History:\n' + HISTORY
)
FOLLOW_UPS_PROMPT = (
    "### Task:\nSuggest 3-5 relevant follow-up questions.\n"
    '### Output:\nJSON format: { "follow_ups": ["Question 1?", "Question 2?"] }\n### Chat History:\n' + HISTORY
)
QUERIES_PROMPT = (
    "### Task:\nAnalyze the chat history to determine the necessity of generating search queries.\n"
    '### Output:\nStrictly return in JSON format: \n{\n  "queries": ["query1", "query2"]\n}\n\n'
    "### Chat History:\n" + HISTORY + "\n"
)
#: Releases before 0.5 wanted the bare title ("RESPOND ONLY WITH THE TITLE TEXT").
LEGACY_TITLE_PROMPT = "Create a concise, 3-5 word title for the chat history. RESPOND ONLY WITH THE TITLE TEXT.\n\n" + HISTORY


@pytest.fixture()
def webui(tmp_path: Path) -> Iterator[tuple[TestClient, Store]]:
    kb = write_tiny_kb(tmp_path / "kb")
    store = Store(tmp_path / "serve.sqlite3")
    settings = ServeSettings(kb=str(kb), api_key=KEY, default_model="ald-ft")
    app = create_app(FakeAssistant(kb), store, settings)
    with TestClient(app, raise_server_exceptions=False, base_url="http://127.0.0.1") as client:
        yield client, store


def task_json(response: Any, key: str) -> Any:
    """What Open WebUI keeps of a task reply (utils/middleware.py `background_tasks_handler`)."""
    assert response.status_code == 200, response.text
    choices = response.json().get("choices", [])
    assert len(choices) == 1
    text = choices[0]["message"]["content"]
    return json.loads(text[text.find("{") : text.rfind("}") + 1]).get(key)


def task_request(prompt: str) -> dict[str, Any]:
    """routers/tasks.py: one user message, no stream, `max_completion_tokens` (1000 in current releases)."""
    return {"model": "ald-ft", "messages": [{"role": "user", "content": prompt}], "stream": False, "max_completion_tokens": 1000}


def read_stream(text: str) -> tuple[str, dict[str, Any] | None, list[dict[str, Any]]]:
    """(content, usage, events) as Open WebUI's stream reader sees them."""
    content, usage, events = "", None, []
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            break
        event = json.loads(data)
        assert "error" not in event, event
        events.append(event)
        usage = event.get("usage") or usage
        for choice in event.get("choices", []):
            content += choice.get("delta", {}).get("content") or ""
    return content, usage, events


def test_models_list_preselects_the_fine_tuned_model_by_name(webui: tuple[TestClient, Store]) -> None:
    client, _ = webui
    assert client.get("/v1/models").status_code == 401  # the connection's key is required
    models = client.get("/v1/models", headers=AUTH).json()["data"]
    shown = [m.get("name", m["id"]) for m in models]  # routers/openai.py merge_models_lists
    assert models[0]["id"] == "ald-ft" and models[-1]["id"] == "base"
    assert "fine-tuned" in shown[0] and "no adapter" in shown[-1]


def test_streamed_chat_with_system_prompt_and_sampling(webui: tuple[TestClient, Store]) -> None:
    client, store = webui
    body = {
        "model": "ald-ft",
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.8,
        "top_p": 0.9,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": QUESTION},
        ],
    }
    response = client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    content, usage, events = read_stream(response.text)
    assert "[tiny-003]" in content
    # the cited document, readable where Open WebUI shows the answer
    assert content.endswith("**출처 / Sources**\n- tiny-003 — TMA 전구체")
    assert usage and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    extension = next(e["aldlab"] for e in events if "aldlab" in e)
    assert extension["system_message"] == "not_used"
    assert extension["ignored_parameters"] == ["temperature", "top_p"]
    assert extension["sources_in_text"] is True
    logged = store.get_answer(extension["answer_id"])
    assert logged is not None and logged.question == QUESTION and "출처" not in logged.answer


def test_chat_without_sources_and_without_system_message(webui: tuple[TestClient, Store]) -> None:
    client, _ = webui
    body = {"model": "ald-ft", "messages": [{"role": "user", "content": QUESTION}], "aldlab": {"sources_in_text": False}}
    reply = client.post("/v1/chat/completions", json=body, headers=AUTH).json()
    assert "출처" not in reply["choices"][0]["message"]["content"]
    assert reply["aldlab"]["kind"] == "answer" and reply["aldlab"]["system_message"] == "none"
    assert reply["aldlab"]["ignored_parameters"] == [] and reply["aldlab"]["sources_in_text"] is False
    body["aldlab"] = {"sources_in_text": "no"}
    error = client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert error.status_code == 400 and "sources_in_text" in error.json()["error"]["message"]


def test_refusal_lists_no_sources(webui: tuple[TestClient, Store]) -> None:
    client, _ = webui
    body = {"messages": [{"role": "user", "content": "오늘 점심 메뉴 추천"}]}
    content = client.post("/v1/chat/completions", json=body, headers=AUTH).json()["choices"][0]["message"]["content"]
    assert content.startswith(REFUSAL) and "출처" not in content


def test_title_tags_follow_ups_and_queries_get_the_json_open_webui_parses(webui: tuple[TestClient, Store]) -> None:
    client, _ = webui
    title = task_json(client.post("/v1/chat/completions", json=task_request(TITLE_PROMPT), headers=AUTH), "title")
    assert title == "TMA 전구체는 물과 반응하나요"
    tags = task_json(client.post("/v1/chat/completions", json=task_request(TAGS_PROMPT), headers=AUTH), "tags")
    assert tags == ["ALD", "TMA", "전구체"]
    follow = task_json(client.post("/v1/chat/completions", json=task_request(FOLLOW_UPS_PROMPT), headers=AUTH), "follow_ups")
    assert follow == []
    queries = task_json(client.post("/v1/chat/completions", json=task_request(QUERIES_PROMPT), headers=AUTH), "queries")
    assert queries == [QUESTION]
    reply = client.post("/v1/chat/completions", json=task_request(TITLE_PROMPT), headers=AUTH).json()
    assert reply["aldlab"] == reply["aldlab"] | {"kind": "client_task", "task": "title", "system_message": "none"}
    assert REFUSAL not in reply["choices"][0]["message"]["content"]


def test_task_prompts_skip_the_queue_and_the_answer_log(tmp_path: Path) -> None:
    kb = write_tiny_kb(tmp_path / "kb")
    assistant = FakeAssistant(kb)
    store = Store(tmp_path / "serve.sqlite3")
    app = create_app(assistant, store, ServeSettings(kb=str(kb), rate_limit_burst=1, rate_limit_per_minute=1))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for _ in range(3):  # over the one-question burst, yet answered: no model, no rate token
            assert client.post("/v1/chat/completions", json=task_request(TITLE_PROMPT)).status_code == 200
    assert assistant.calls == 0
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT COUNT(*) FROM answers").fetchone() == (0,)


def test_legacy_title_prompt_gets_a_bare_title(webui: tuple[TestClient, Store]) -> None:
    client, _ = webui
    reply = client.post("/v1/chat/completions", json=task_request(LEGACY_TITLE_PROMPT), headers=AUTH).json()
    assert reply["choices"][0]["message"]["content"] == "TMA 전구체는 물과 반응하나요"


def test_streamed_task_reply(webui: tuple[TestClient, Store]) -> None:
    client, _ = webui
    body = task_request(TITLE_PROMPT) | {"stream": True, "stream_options": {"include_usage": True}}
    content, usage, events = read_stream(client.post("/v1/chat/completions", json=body, headers=AUTH).text)
    assert json.loads(content) == {"title": "TMA 전구체는 물과 반응하나요"}
    assert usage is not None and events[-2]["aldlab"]["task"] == "title"


def test_task_prompt_for_an_unknown_model_is_a_json_error(webui: tuple[TestClient, Store]) -> None:
    client, _ = webui
    response = client.post("/v1/chat/completions", json=task_request(TITLE_PROMPT) | {"model": "nope"}, headers=AUTH)
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"


# --------------------------------------------------------------------------- the rules themselves


def test_ordinary_questions_are_not_tasks() -> None:
    assert detect_task(QUESTION) is None
    assert detect_task("### Task: ALD 공정의 퍼지 단계 설명") is None  # no chat history block
    # a question that says "tags" inside the history does not turn a title prompt into tags
    prompt = TITLE_PROMPT.replace(QUESTION, 'JSON "tags" 필드는?')
    task = detect_task(prompt)
    assert task is not None and task.kind == "title" and task.user_turns == ('JSON "tags" 필드는?',)


def test_history_turns_may_span_lines() -> None:
    block = "USER: 첫 줄\n둘째 줄\nASSISTANT: 답\nUSER: 다음"
    assert parse_history(block) == [("USER", "첫 줄\n둘째 줄"), ("ASSISTANT", "답"), ("USER", "다음")]


def test_title_and_tags_rules() -> None:
    assert make_title("ALD에서 퍼지 시간이 너무 짧으면 어떤 문제가 생기나요?") == "ALD에서 퍼지 시간이 너무 짧으면"
    assert make_title("   ") == "ALD 질문"
    assert len(make_title("가" * 100)) == 40
    assert make_tags(["퍼지랑 tma 차이"], ["TMA", "퍼지", "ALD", "오존"]) == ["ALD", "퍼지", "TMA"]
