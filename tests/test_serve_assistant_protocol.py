"""The service's seam: the real Assistant and the FakeAssistant both implement AssistantProtocol.

The service calls the protocol's methods directly, so a method renamed on either side must
fail here, not in the first request that needs it (the old `getattr(..., "reload", None)`
probing hid exactly that).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rag_testkit import RecordingGenerator, install_fake_embedder, tiny_kb, write_tiny_kb

from aldlab.rag.assistant import Assistant
from aldlab.rag.build import build_retriever
from aldlab.rag.config import RagConfig
from aldlab.rag.types import AssistantProtocol
from aldlab.serve.app import create_app
from aldlab.serve.fake import FakeAssistant
from aldlab.serve.settings import ServeSettings
from aldlab.store import Store

ADMIN = {"Authorization": "Bearer tok-0123456789abcdef"}

#: The protocol's methods (its one data member, `kb`, is checked by isinstance).
METHODS = [
    name
    for name, member in vars(AssistantProtocol).items()
    if not name.startswith("_") and inspect.isfunction(member)
]


def real_assistant(tmp_path: Path, generator: RecordingGenerator | None = None) -> Assistant:
    """The real Assistant on the tiny KB: fake embedder, recording generator, no model."""
    install_fake_embedder()
    kb_dir = write_tiny_kb(tmp_path / "kb")
    # No refusal threshold: the test is about the seam, not calibration.
    config = RagConfig(dense_model="fake", index_dir=tmp_path / "index", refusal_threshold=0.0)
    kb = tiny_kb()  # what write_tiny_kb wrote
    retriever = build_retriever(kb, config, show_progress=False)
    return Assistant(kb, retriever, generator or RecordingGenerator(), config, kb_path=kb_dir)


def test_protocol_lists_what_the_service_calls() -> None:
    assert sorted(METHODS) == sorted(
        ["models", "plan", "run", "answer", "stream_answer", "reload_if_changed", "add_adapter"]
    )


@pytest.mark.parametrize("kind", ["real", "fake"])
def test_assistants_implement_the_protocol(tmp_path: Path, kind: str) -> None:
    assistant: Any = real_assistant(tmp_path) if kind == "real" else FakeAssistant(write_tiny_kb(tmp_path / "kb"))
    assert isinstance(assistant, AssistantProtocol)
    for name in METHODS:
        # Every keyword the protocol promises binds on the implementation.
        wanted = inspect.signature(getattr(AssistantProtocol, name))
        have = inspect.signature(getattr(assistant, name))
        args = [p.name for p in wanted.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD and p.name != "self"]
        kwargs = {p.name: p.default for p in wanted.parameters.values() if p.kind is p.KEYWORD_ONLY}
        have.bind(*args, **kwargs)  # raises TypeError when a name or a keyword is missing
    assert assistant.models()[0] == "base"
    assert isinstance(assistant.kb.content_hash(), str)


def test_service_runs_on_the_real_assistant(tmp_path: Path) -> None:
    """The routes the fake-based tests cover, once through the real Assistant."""
    assistant = real_assistant(tmp_path)
    kb_dir = tmp_path / "kb"
    store = Store(tmp_path / "serve.sqlite3")
    settings = ServeSettings(kb=str(kb_dir), admin_token=ADMIN["Authorization"].split()[1])
    with TestClient(create_app(assistant, store, settings), base_url="http://127.0.0.1") as client:
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["ft", "base"]

        body = client.post("/api/ask", json={"question": "TMA Canister 가열이 필요해?", "model": "ft"}).json()
        assert body["citations"][0]["id"] == "tiny-003" and body["contexts"][0]["id"] == "tiny-003"
        logged = store.get_answer(body["answer_id"])
        assert logged is not None and logged.kb_hash == assistant.kb.content_hash()

        # The SSE route plans once (retrieval) and shows the plan's contexts before generating from it.
        r = client.post("/api/ask?stream=true", json={"question": "로드락 Vent는 어떻게 해?"})
        events = [json.loads(b[6:]) for b in r.text.split("\n\n") if b.startswith("data: ")]
        kinds = [e["type"] for e in events]
        assert kinds.index("contexts") < kinds.index("answer")
        assert events[kinds.index("contexts")]["contexts"][0]["id"] == "tiny-002"

        # An admin edit reaches the real reload_if_changed: the new document is retrievable.
        new = {"id": "tiny-050", "title": "오존 반응물", "text": "오존은 저온 ALD 산화막에 쓰이는 강한 반응물이다.", "topic": "purge"}
        r = client.post("/api/admin/documents?wait=true", json=new, headers=ADMIN)
        assert r.status_code == 201 and r.json()["reload"]["ok"] is True, r.text
        assert "tiny-050" in assistant.kb.by_id()
        body = client.post("/api/ask", json={"question": "오존 반응물 저온 산화막", "context_only": True}).json()
        assert body["contexts"][0]["id"] == "tiny-050"
        assert store.get_answer(body["answer_id"]).kb_hash == assistant.kb.content_hash() != logged.kb_hash


@pytest.mark.parametrize("stream", [False, True])
def test_openai_finish_reason_comes_from_the_generator(tmp_path: Path, stream: bool) -> None:
    """The generator's stop reason reaches `finish_reason` through the worker and the Answer."""
    assistant = real_assistant(tmp_path, RecordingGenerator(stop_reason="length"))
    app = create_app(assistant, Store(tmp_path / "serve.sqlite3"), ServeSettings(kb=str(tmp_path / "kb")))

    def finish(question: str) -> str:
        body = {"model": "ft", "messages": [{"role": "user", "content": question}], "stream": stream, "max_tokens": 32}
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        if not stream:
            return r.json()["choices"][0]["finish_reason"]
        chunks = [json.loads(b[6:]) for b in r.text.split("\n\n") if b.startswith("data: ") and b[6:] != "[DONE]"]
        return chunks[-1]["choices"][0]["finish_reason"]

    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert finish("TMA Canister 가열이 필요해?") == "length"
        assistant._generator = RecordingGenerator()  # the same question, a reply that ended
        assert finish("TMA Canister 가열이 필요해?") == "stop"
        assistant._generator = RecordingGenerator(reply="관련 정보가 부족합니다.", stop_reason="length")
        assert finish("TMA Canister 가열이 필요해?") == "stop"  # the best passage is shown whole instead
