"""The official `openai` client talks to `aldlab serve` (uvicorn on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from aldlab.serve.app import create_app
from aldlab.serve.fake import FakeAssistant
from aldlab.serve.settings import ServeSettings
from aldlab.serve.testing import serve_in_thread, write_tiny_kb
from aldlab.store import Store


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Store]]:
    root = tmp_path_factory.mktemp("openai")
    kb = write_tiny_kb(root / "kb")
    store = Store(root / "serve.sqlite3")
    app = create_app(FakeAssistant(kb), store, ServeSettings(kb=str(kb)))
    with serve_in_thread(app) as url:
        yield url, store


@pytest.fixture()
def client(server: tuple[str, Store]) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key="unused", max_retries=0, timeout=20)


def test_models_list_the_default_adapter_first_and_base_last(client: openai.OpenAI) -> None:
    """Open WebUI preselects the first model; the bare base model echoes and loops."""
    cards = list(client.models.list())
    assert [m.id for m in cards] == ["ald-ft", "base"]
    names = [m.model_extra["name"] for m in cards]
    assert "fine-tuned" in names[0] and "default" in names[0] and "no adapter" in names[1]


def test_chat_completion_with_history_and_extras(client: openai.OpenAI, server: tuple[str, Store]) -> None:
    completion = client.chat.completions.create(
        model="ald-ft",
        messages=[
            {"role": "system", "content": "ignored: the system prompt is fixed"},
            {"role": "user", "content": "ALD가 뭐야?"},
            {"role": "assistant", "content": "원자층 증착입니다."},
            {"role": "user", "content": "TMA 전구체는?"},
        ],
        max_tokens=64,
        extra_body={"aldlab": {"top_k": 2}},
    )
    text = completion.choices[0].message.content
    assert "[tiny-003]" in text and completion.model == "ald-ft"
    extra = completion.model_extra["aldlab"]
    assert extra["citations"][0]["id"] == "tiny-003" and len(extra["contexts"]) <= 2
    logged = server[1].get_answer(extra["answer_id"])
    assert logged is not None and logged.question == "TMA 전구체는?" and logged.model == "ald-ft"


def test_streaming_chat_completion(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="base", messages=[{"role": "user", "content": "퍼지 단계"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "[tiny-002]" in text
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["aldlab"]["answer_id"]


def test_errors_reach_the_client_as_api_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="Unknown model"):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "ALD"}])
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(model="base", messages=[{"role": "user", "content": "ALD"}], max_tokens=10**6)
