"""`aldlab serve` wiring: flags and config, and the vLLM path (--llm-url) end to end
against a fake OpenAI-compatible server (what `vllm serve --enable-lora` exposes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from aldlab.errors import UserError
from aldlab.rag.assistant import Assistant
from aldlab.rag.build import build_assistant, rag_config_from_flags
from aldlab.rag.config import RagConfig
from aldlab.serve.commands import build_app, is_loopback, resolve_settings
from aldlab.serve.testing import serve_in_thread, write_tiny_kb


def fake_vllm(calls: list[dict[str, Any]]) -> FastAPI:
    """Serves 'Qwen/Qwen2.5-7B-Instruct' plus a LoRA module 'ald-ft', like vLLM does."""
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "Qwen/Qwen2.5-7B-Instruct"}, {"id": "ald-ft"}]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Any:
        payload = await request.json()
        calls.append(payload)
        text = f"원격 {payload['model']} 답변. TMA는 Al2O3 ALD에 쓰이는 대표 전구체로 물과 반응한다 [tiny-003]"
        if payload.get("stream"):
            def events() -> Iterator[str]:
                for word in text.split(" "):
                    yield "data: " + json.dumps({"choices": [{"delta": {"content": word + " "}}]}, ensure_ascii=False) + "\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        return {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}

    return app


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")


def test_settings_from_preset_config_and_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("serve:\n  port: 9123\n  max_top_k: 5\n", encoding="utf-8")
    monkeypatch.setenv("ALDLAB_ADMIN_TOKEN", "tok-0123456789abcdefghij")
    settings = resolve_settings(preset="cpu-demo", config_file=config, overrides={"host": "127.0.0.2"}, llm_url=None)
    assert (settings.host, settings.port, settings.max_top_k) == ("127.0.0.2", 9123, 5)
    assert settings.admin_token == "tok-0123456789abcdefghij" and settings.kb  # shipped KB by default
    monkeypatch.delenv("ALDLAB_ADMIN_TOKEN")
    remote = resolve_settings(preset="cpu-demo", config_file=None, overrides={}, llm_url="http://x/v1")
    assert remote.admin_token is None and remote.generation_threads > 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("serve:\n  prot: 1\n", encoding="utf-8")
    with pytest.raises(UserError, match="prot"):
        resolve_settings(preset=None, config_file=bad, overrides={}, llm_url=None)


def test_llm_url_serves_base_and_lora_through_an_openai_compatible_server(tmp_path: Path) -> None:
    kb = write_tiny_kb(tmp_path / "kb")
    config = tmp_path / "vllm.yaml"
    # BM25 only and no refusal threshold: the test is about the generation path.
    config.write_text(
        f"rag:\n  dense_model: none\n  refusal_threshold: 0.0\n  index_dir: {tmp_path / 'index'}\n"
        f"serve:\n  kb: {kb}\n  db: {tmp_path / 'serve.sqlite3'}\n",
        encoding="utf-8",
    )
    calls: list[dict[str, Any]] = []
    with serve_in_thread(fake_vllm(calls)) as vllm_url:
        url = vllm_url + "/v1"
        settings = resolve_settings(preset=None, config_file=config, overrides={}, llm_url=url)
        rag_config = rag_config_from_flags(None, config, llm_url=url, llm_model="Qwen/Qwen2.5-7B-Instruct")
        assistant = build_assistant(settings.kb, rag_config, load_model=True)
        assert isinstance(assistant, Assistant)
        from aldlab.llm.openai_client import OpenAIGenerator

        assert isinstance(assistant.generator, OpenAIGenerator)
        assert assistant.generator.base_url == url
        client = TestClient(build_app(assistant, settings), base_url="http://127.0.0.1")
        models = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert models[-1] == "base" and "ald-ft" in models  # the default (first adapter) first, base last

        body = client.post("/api/ask", json={"question": "TMA 전구체", "model": "ald-ft"}).json()
        assert body["answer"].startswith("원격 ald-ft 답변") and body["citations"][0]["id"] == "tiny-003"
        assert calls[-1]["model"] == "ald-ft"  # the LoRA module name vLLM routes on

        r = client.post("/v1/chat/completions", json={"model": "base", "stream": True, "messages": [{"role": "user", "content": "TMA 전구체"}]})
        assert "원격" in r.text and "Qwen/Qwen2.5-7B-Instruct" in r.text and r.text.rstrip().endswith("data: [DONE]")
        assert calls[-1]["model"] == "Qwen/Qwen2.5-7B-Instruct" and calls[-1]["stream"] is True
        assert "참고 문서" in calls[-1]["messages"][-1]["content"]  # the RAG prompt from aldlab.prompts

        # An admin edit rebuilds the real retriever: the new document becomes retrievable.
        settings.admin_token = "tok"
        new = {"id": "tiny-050", "title": "오존 반응물", "text": "오존(O3)은 저온 ALD 산화막에 쓰이는 강한 반응물이다.", "topic": "precursors"}
        with client:
            r = client.post("/api/admin/documents?wait=true", json=new, headers={"Authorization": "Bearer tok"})
            assert r.status_code == 201 and r.json()["reload"]["ok"] is True, r.text
            body = client.post("/api/ask", json={"question": "오존 반응물 저온 산화막"}).json()
        assert body["contexts"][0]["id"] == "tiny-050"


def test_serve_uses_the_recorded_adapter_unless_told_otherwise(tmp_path: Path) -> None:
    from aldlab.serve.commands import choose_serve_model
    from aldlab.settings import record_default_adapter

    settings = resolve_settings(preset=None, config_file=None, overrides={}, llm_url=None)
    choice = choose_serve_model(settings, None, {}, no_adapter=False, llm_url=None)
    assert choice.adapters == {} and settings.default_model == "base" and settings.base_model_warning
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    record_default_adapter(adapter, "embedded")
    choice = choose_serve_model(settings, None, {}, no_adapter=False, llm_url=None)
    assert choice.adapters == {"ft": str(adapter.resolve())} and settings.default_model == "ft"
    assert not settings.base_model_warning
    choice = choose_serve_model(settings, None, {}, no_adapter=True, llm_url=None)
    assert choice.adapters == {} and settings.default_model == "base"
    named = choose_serve_model(settings, None, {"ald": str(adapter)}, no_adapter=False, llm_url=None)
    assert named.adapters == {"ald": str(adapter)} and settings.default_model == "ald"


@pytest.mark.parametrize("token", ["change-me", "short", "password", "a" * 16, "a" * 40, "ab" * 20, "x7Kq-0123456789abc"])
def test_guessable_tokens_stop_the_server(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    """The README's example token was `change-me`: a server must not start with it."""
    monkeypatch.setenv("ALDLAB_ADMIN_TOKEN", token)
    with pytest.raises(UserError, match="too weak"):
        resolve_settings(preset=None, config_file=None, overrides={}, llm_url=None)
    monkeypatch.setenv("ALDLAB_ADMIN_TOKEN", "Zx1-" * 2 + "0123456789abcdefghij")
    monkeypatch.setenv("ALDLAB_API_KEY", "change-me")
    with pytest.raises(UserError, match="ALDLAB_API_KEY"):
        resolve_settings(preset=None, config_file=None, overrides={}, llm_url=None)
    monkeypatch.setenv("ALDLAB_API_KEY", "k3y-0123456789abcdefghij")
    settings = resolve_settings(preset=None, config_file=None, overrides={"allowed_hosts": ["ald.lan"]}, llm_url=None)
    assert settings.api_key == "k3y-0123456789abcdefghij" and settings.allowed_hosts == ["ald.lan"]


def test_serve_trusts_forwarded_headers_only_from_named_proxies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22: `aldlab serve` ran uvicorn with its defaults, which believe X-Forwarded-For
    from 127.0.0.1 (see test_serve_security for the rotating-header test through uvicorn)."""
    import uvicorn
    from typer.testing import CliRunner

    import aldlab.serve.commands as commands
    from aldlab.cli import app
    from aldlab.serve.fake import FakeAssistant

    kb = write_tiny_kb(tmp_path / "kb")
    runs: list[dict[str, Any]] = []
    monkeypatch.setattr(commands, "rag_config_from_flags", lambda *a, **k: RagConfig())
    monkeypatch.setattr(commands, "build_assistant", lambda kb_path, *a, **k: FakeAssistant(kb_path))
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: runs.append(options))
    monkeypatch.delenv("ALDLAB_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("ALDLAB_API_KEY", raising=False)
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")  # uvicorn's own fallback must not decide either
    base = ["serve", "--kb", str(kb), "--db", str(tmp_path / "s.sqlite3"), "--no-adapter"]
    for extra in ([], ["--trusted-proxy", "10.0.0.5", "--forwarded-allow-ips", "10.0.0.6,fd00::1"]):
        result = CliRunner().invoke(app, base + extra)
        assert result.exit_code == 0, result.output
    assert runs[0]["proxy_headers"] is False and runs[0]["forwarded_allow_ips"] == ""
    assert runs[1]["proxy_headers"] is True and runs[1]["forwarded_allow_ips"] == "10.0.0.5,10.0.0.6,fd00::1"
