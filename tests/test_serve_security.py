"""Issue 12's findings, each reproduced: names, host, key, JSON-only, throttles, limits,
surrogates, audit chaining and the OpenAI usage fields."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aldlab.kb.io import save_kb
from aldlab.kb.schema import KnowledgeBase
from aldlab.serve.app import create_app
from aldlab.serve.fake import FakeAssistant
from aldlab.serve.settings import ServeSettings
from aldlab.serve.testing import TINY_DOCUMENTS, write_tiny_kb
from aldlab.serve.worker import ClientBusy, GenerationWorker
from aldlab.store import Store

TOKEN = "admin-token-for-security-tests"


def client_for(tmp_path: Path, kb: Path | None = None, **overrides: Any) -> tuple[TestClient, FakeAssistant, Store]:
    kb = kb or write_tiny_kb(tmp_path / "kb")
    assistant = FakeAssistant(kb)
    store = Store(tmp_path / "s.sqlite3")
    settings = ServeSettings(kb=str(kb), admin_token=TOKEN, **overrides)
    client = TestClient(create_app(assistant, store, settings), base_url="http://127.0.0.1", raise_server_exceptions=False)
    return client, assistant, store


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


# ---------------------------------------------------------------- strict names


@pytest.mark.parametrize("topic", ["../../victim/data", "a/b", "..", "Topic", "-x", "a" * 65])
def test_topic_that_would_become_a_path_is_refused(tmp_path: Path, topic: str) -> None:
    """A KB from `aldlab kb import` has "topics": {} -- the topic used to become a file path."""
    kb = tmp_path / "kb"
    save_kb(KnowledgeBase(documents=list(TINY_DOCUMENTS), name="imported", topics={}, keywords=[]), kb)
    client, _, _ = client_for(tmp_path, kb)
    r = client.post("/api/admin/documents", json={"id": "new-001", "text": "본문", "topic": topic}, headers=admin())
    assert r.status_code == 422, r.text
    assert not (tmp_path / "victim").exists() and not (kb / "documents" / "a").exists()
    assert sorted(p.name for p in (kb / "documents").iterdir()) == sorted(
        f"{t}.jsonl" for t in {d.topic for d in TINY_DOCUMENTS}
    )


@pytest.mark.parametrize("doc_id", ["a/b", "../x", "UPPER", "한글"])
def test_document_ids_that_could_never_be_read_are_refused(tmp_path: Path, doc_id: str) -> None:
    client, _, _ = client_for(tmp_path)
    r = client.post("/api/admin/documents", json={"id": doc_id, "text": "본문", "topic": "basics"}, headers=admin())
    assert r.status_code == 422


def test_valid_new_topic_is_created_inside_the_kb(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    save_kb(KnowledgeBase(documents=list(TINY_DOCUMENTS), name="imported", topics={}, keywords=[]), kb)
    client, _, _ = client_for(tmp_path, kb)
    r = client.post("/api/admin/documents?reload=false", json={"id": "new-001", "text": "본문", "topic": "new_topic"}, headers=admin())
    assert r.status_code == 201, r.text
    assert client.get("/api/documents/new-001").json()["topic"] == "new_topic"
    assert (kb / "documents" / "new_topic.jsonl").exists()


# ---------------------------------------------------------------- host, JSON, key


def test_dns_rebinding_host_is_refused(tmp_path: Path) -> None:
    client, assistant, _ = client_for(tmp_path)
    r = client.post("/api/ask", json={"question": "TMA"}, headers={"Host": "rebind.evil.com"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_host" and assistant.calls == 0
    assert client.get("/api/health", headers={"Host": "rebind.evil.com:8000"}).status_code == 400
    for host in ("127.0.0.1:8000", "localhost", "[::1]:8000"):
        assert client.get("/api/health", headers={"Host": host}).status_code == 200
    extra, _, _ = client_for(tmp_path / "x", allowed_hosts=["ald.example.org"])
    assert extra.get("/api/health", headers={"Host": "ald.example.org"}).status_code == 200


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""]
)
def test_cross_site_form_bodies_are_refused(tmp_path: Path, content_type: str) -> None:
    client, assistant, store = client_for(tmp_path)
    headers = {"Content-Type": content_type} if content_type else {}
    r = client.post("/api/ask", content=b'{"question": "TMA"}', headers=headers)
    assert r.status_code == 415 and assistant.calls == 0
    r = client.post("/api/admin/documents", content=b'{"id": "x-1", "text": "t"}', headers={**headers, **admin()})
    assert r.status_code == 415


def test_api_key_guards_model_and_feedback_routes(tmp_path: Path) -> None:
    key = "키-가-있는-api-key-0123456789"  # non-ASCII on purpose
    client, _, _ = client_for(tmp_path, api_key=key)
    good = {"Authorization": b"Bearer " + key.encode("utf-8")}
    assert client.post("/api/ask", json={"question": "TMA"}).status_code == 401
    assert client.get("/v1/models").status_code == 401
    assert client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "TMA"}]}).status_code == 401
    assert client.post("/api/feedback", json={"answer_id": "a" * 32, "answer_token": "b" * 32, "rating": "like"}).status_code == 401
    assert client.get("/api/health").json()["api_key_required"] is True  # health stays open
    answer = client.post("/api/ask", json={"question": "TMA"}, headers=good)
    assert answer.status_code == 200
    assert client.get("/v1/models", headers=good).status_code == 200


def test_non_ascii_admin_token_matches(tmp_path: Path) -> None:
    """The header arrives latin-1 decoded; the token was compared as UTF-8 and never matched."""
    token = "관리자-토큰-한글-0123456789"
    client, _, _ = client_for(tmp_path)
    client.app.state.settings.admin_token = token  # type: ignore[attr-defined]
    r = client.get("/api/admin/documents", headers={"Authorization": b"Bearer " + token.encode("utf-8")})
    assert r.status_code == 200, r.text


def test_wrong_admin_tokens_are_throttled(tmp_path: Path) -> None:
    client, _, _ = client_for(tmp_path)
    codes = [client.get("/api/admin/documents", headers={"Authorization": f"Bearer guess{i}"}).status_code for i in range(7)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
    r = client.get("/api/admin/documents", headers={"Authorization": "Bearer guess7"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_others_wrong_tokens_never_lock_the_admin_out(tmp_path: Path) -> None:
    """Issue 22: five wrong tokens from a shared address (NAT, proxy) locked the admin out for 60 s."""
    client, _, _ = client_for(tmp_path)
    for i in range(8):
        client.get("/api/admin/documents", headers={"Authorization": f"Bearer guess{i}"})
    assert client.get("/api/admin/documents", headers=admin()).status_code == 200
    assert client.get("/api/admin/documents", headers={"Authorization": "Bearer guess9"}).status_code == 429
    assert client.get("/api/admin/feedback", headers=admin()).status_code == 200


# ---------------------------------------------------------------- fair load


def test_per_client_rate_limit_is_429_with_retry_after(tmp_path: Path) -> None:
    client, assistant, _ = client_for(tmp_path, rate_limit_per_minute=6, rate_limit_burst=2)
    codes = [client.post("/api/ask", json={"question": "TMA"}).status_code for _ in range(3)]
    assert codes == [200, 200, 429] and assistant.calls == 2
    r = client.post("/api/ask", json={"question": "TMA"})
    assert r.json()["error"]["code"] == "rate_limited" and 1 <= int(r.headers["Retry-After"]) <= 10


def test_one_client_cannot_fill_the_shared_queue() -> None:
    worker = GenerationWorker(threads=1, max_pending=256, max_pending_per_client=2)
    worker.admit("greedy")
    worker.admit("greedy")
    with pytest.raises(ClientBusy):
        worker.admit("greedy")
    other = worker.admit("someone-else")  # still served
    assert worker.status(other).position == 3
    worker.shutdown()


def test_queue_cap_per_client_is_a_429_over_http(tmp_path: Path) -> None:
    client, _, _ = client_for(tmp_path, max_pending_per_client=1)
    answers = client.app.state.answers  # type: ignore[attr-defined]
    held = answers.worker.admit("testclient")  # this client already has a question waiting
    r = client.post("/api/ask", json={"question": "TMA"})
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_requests" and r.headers["Retry-After"]
    answers.worker.release(held)
    assert client.post("/api/ask", json={"question": "TMA"}).status_code == 200


# ---------------------------------------------------------------- smaller items


def test_lone_surrogate_is_a_400_before_generation(tmp_path: Path) -> None:
    client, assistant, _ = client_for(tmp_path)
    body = b'{"question": "\\ud800 ALD"}'
    r = client.post("/api/ask", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_text" and assistant.calls == 0
    r = client.post("/api/ask?stream=true", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_audit_rows_chain_before_to_after_under_concurrent_edits(tmp_path: Path) -> None:
    """9 of 80 audit rows had a `before` that did not match the previous `after`."""
    from aldlab.serve.testing import serve_in_thread
    import httpx

    kb = write_tiny_kb(tmp_path / "kb")
    app = create_app(FakeAssistant(kb), Store(tmp_path / "s.sqlite3"), ServeSettings(kb=str(kb), admin_token=TOKEN))

    async def edits(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60, headers=admin()) as c:
            await asyncio.gather(
                *(c.put("/api/admin/documents/tiny-001?reload=false", json={"text": f"수정 {i}"}) for i in range(24))
            )

    with serve_in_thread(app) as url:
        asyncio.run(edits(url))
    rows = list(reversed(app.state.store.list_kb_edits(doc_id="tiny-001")))
    assert len(rows) == 24
    for previous, row in zip(rows, rows[1:]):
        assert row["before"]["text"] == previous["after"]["text"]


def test_openai_usage_finish_reason_and_include_usage(tmp_path: Path) -> None:
    client, _, _ = client_for(tmp_path)
    messages = [{"role": "user", "content": "TMA 전구체"}]
    body = client.post("/v1/chat/completions", json={"messages": messages}).json()
    usage = body["usage"]
    assert usage["completion_tokens"] > 0 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert body["choices"][0]["finish_reason"] == "stop"
    cut = client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 2}).json()
    assert cut["choices"][0]["finish_reason"] == "length" and cut["usage"]["completion_tokens"] == 2
    r = client.post("/v1/chat/completions", json={"messages": messages, "stream": True, "stream_options": {"include_usage": True}})
    chunks = [json.loads(b[6:]) for b in r.text.split("\n\n") if b.startswith("data: ") and b[6:] != "[DONE]"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    plain = client.post("/v1/chat/completions", json={"messages": messages, "stream": True})
    assert '"usage"' not in plain.text


def sse_chunks(text: str) -> list[dict[str, Any]]:
    return [json.loads(b[6:]) for b in text.split("\n\n") if b.startswith("data: ") and b[6:] != "[DONE]"]


@pytest.mark.parametrize("stream", [False, True])
def test_finish_reason_is_the_generations_stop_reason_not_a_token_count(tmp_path: Path, stream: bool) -> None:
    """A reply that ends by itself on exactly `max_tokens` tokens was not cut: "stop".
    (finish_reason used to be "length" whenever the count reached the limit; issue 22.)"""
    client, _, _ = client_for(tmp_path)
    body = {"messages": [{"role": "user", "content": "TMA 전구체"}], "aldlab": {"sources_in_text": False}}
    whole = client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]
    words = len(whole.split(" "))  # the stand-in's token is a word
    assert words > 2

    def finish(max_tokens: int) -> str:
        r = client.post("/v1/chat/completions", json={**body, "max_tokens": max_tokens, "stream": stream})
        assert r.status_code == 200, r.text
        return sse_chunks(r.text)[-1]["choices"][0]["finish_reason"] if stream else r.json()["choices"][0]["finish_reason"]

    assert finish(words) == "stop"
    assert finish(words - 1) == "length"
    assert finish(2) == "length"


# ---------------------------------------------------------------- issue 22: review decisions


def rated(client: TestClient, correction: str = "TMA는 물과 반응해 Al2O3를 만든다.") -> dict[str, Any]:
    """Ask, then send a correction; the feedback body to resend is returned with its id."""
    asked = client.post("/api/ask", json={"question": "TMA 취급"}).json()
    body = {"answer_id": asked["answer_id"], "answer_token": asked["answer_token"], "rating": "dislike", "correction": correction}
    r = client.post("/api/feedback", json=body)
    assert r.status_code == 200, r.text
    return {**body, "feedback_id": r.json()["feedback_id"]}


def listed(client: TestClient, status: str = "pending") -> list[dict[str, Any]]:
    return client.get(f"/api/admin/feedback?status={status}", headers=admin()).json()["items"]


def test_approval_applies_only_to_the_revision_the_reviewer_read(tmp_path: Path) -> None:
    """The reviewer read a harmless correction; the asker resent a dangerous one; approve."""
    client, _, store = client_for(tmp_path)
    fb = rated(client)
    [item] = listed(client)
    resent = client.post("/api/feedback", json={**fb, "feedback_id": None, "correction": "TMA는 맨손으로 다뤄도 안전하다"})
    assert resent.json()["feedback_id"] == fb["feedback_id"]
    r = client.post(f"/api/admin/feedback/{item['feedback_id']}/approve", json={"revision": item["revisions"]}, headers=admin())
    assert r.status_code == 409 and r.json()["error"]["code"] == "review_conflict"
    assert "revision 1" in r.json()["error"]["message_en"] and r.json()["error"]["message_ko"]
    assert store.export_feedback_rows() == [] and client.get("/api/admin/feedback/export", headers=admin()).text == ""
    r = client.post(f"/api/admin/feedback/{item['feedback_id']}/approve", json={}, headers=admin())
    assert r.status_code == 422  # a decision must name the revision it read
    [now] = listed(client)
    assert now["revisions"] == 2 and now["correction"] == "TMA는 맨손으로 다뤄도 안전하다"
    r = client.post(f"/api/admin/feedback/{now['feedback_id']}/reject", json={"revision": 2}, headers=admin())
    assert r.status_code == 200 and r.json()["item"]["review"]["status"] == "rejected"


def test_a_decision_stands_and_feedback_sent_later_is_a_new_item(tmp_path: Path) -> None:
    client, _, store = client_for(tmp_path)
    fb = rated(client)
    r = client.post(f"/api/admin/feedback/{fb['feedback_id']}/approve", json={"revision": 1}, headers=admin())
    assert r.status_code == 200
    again = client.post("/api/feedback", json={**fb, "feedback_id": None, "correction": "TMA는 맨손으로 다뤄도 안전하다"})
    assert again.status_code == 200 and again.json()["feedback_id"] != fb["feedback_id"]
    [approved] = store.export_feedback_rows()
    assert approved["feedback_id"] == fb["feedback_id"] and approved["correction"] == fb["correction"]
    r = client.post(f"/api/admin/feedback/{fb['feedback_id']}/reject", json={"revision": 1}, headers=admin())
    assert r.status_code == 409 and "already reviewed" in r.json()["error"]["message_en"]
    assert [i["feedback_id"] for i in listed(client)] == [again.json()["feedback_id"]]


def test_server_retention_purges_old_rejections_and_caps_snapshots(tmp_path: Path) -> None:
    """`rated_retention_days` and `snapshot_max_chars` reach the store through the service."""
    client, _, store = client_for(tmp_path, rated_retention_days=7, snapshot_max_chars=1)
    fb = rated(client)
    r = client.post(f"/api/admin/feedback/{fb['feedback_id']}/reject", json={"revision": 1}, headers=admin())
    assert r.status_code == 200
    [row] = store.export_feedback_rows(status="rejected")
    assert row["contexts"] and all(c["text"] == "" for c in row["contexts"])  # past the cap: ids only
    answers = client.app.state.answers
    assert asyncio.run(answers.apply_retention()) == 0  # decided just now
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE feedback SET reviewed_at = '2000-01-01T00:00:00+00:00'")
    assert asyncio.run(answers.apply_retention()) == 1  # the rejected item's answer
    assert store.count_feedback() == 0 and store.get_answer(fb["answer_id"]) is None


def test_reviewing_an_unknown_item_is_404(tmp_path: Path) -> None:
    client, _, _ = client_for(tmp_path)
    r = client.post("/api/admin/feedback/999/approve", json={"revision": 1}, headers=admin())
    assert r.status_code == 404 and r.json()["error"]["code"] == "feedback_not_found"


def test_concurrent_decisions_on_one_item_have_one_winner(tmp_path: Path) -> None:
    """Eight approve/reject requests at once all answered 200 and the last write won."""
    from aldlab.serve.testing import serve_in_thread
    import httpx

    kb = write_tiny_kb(tmp_path / "kb")
    store = Store(tmp_path / "s.sqlite3")
    app = create_app(FakeAssistant(kb), store, ServeSettings(kb=str(kb), admin_token=TOKEN))
    fb = rated(TestClient(app, base_url="http://127.0.0.1"))

    async def decide(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60, headers=admin()) as c:
            return await asyncio.gather(*(
                c.post(f"/api/admin/feedback/{fb['feedback_id']}/{'approve' if i % 2 else 'reject'}",
                       json={"revision": 1}, headers={"X-Aldlab-Actor": f"reviewer-{i}"})
                for i in range(8)
            ))

    with serve_in_thread(app) as url:
        responses = asyncio.run(decide(url))
    assert sorted(r.status_code for r in responses) == [200] + [409] * 7
    [won] = [r.json()["item"]["review"] for r in responses if r.status_code == 200]
    final = next(store.iter_feedback_rows(status=None, feedback_id=fb["feedback_id"]))["review"]
    assert (final["status"], final["reviewer"]) == (won["status"], won["reviewer"])


def test_feedback_is_rate_limited_per_client(tmp_path: Path) -> None:
    client, _, _ = client_for(tmp_path, rate_limit_per_minute=6, rate_limit_burst=3)
    fb = rated(client)  # one question, one feedback
    resend = {**fb, "feedback_id": None}
    codes = [client.post("/api/feedback", json=resend).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = client.post("/api/feedback", json=resend)
    assert r.json()["error"]["code"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
    assert client.post("/api/ask", json={"question": "TMA"}).status_code == 200  # questions are counted apart


def test_revisions_of_one_item_are_capped(tmp_path: Path) -> None:
    from aldlab.store import MAX_REVISIONS

    client, _, store = client_for(tmp_path, rate_limit_per_minute=0)
    fb = rated(client)
    codes = [client.post("/api/feedback", json={**fb, "feedback_id": None, "comment": f"{i}"}).status_code
             for i in range(MAX_REVISIONS)]
    assert codes == [200] * (MAX_REVISIONS - 1) + [409]
    r = client.post("/api/feedback", json={**fb, "feedback_id": None})
    assert r.json()["error"]["code"] == "too_many_revisions" and r.json()["error"]["message_ko"]
    assert next(store.iter_feedback_rows(status=None))["revisions"] == MAX_REVISIONS


# ---------------------------------------------------------------- issue 22: smaller items


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/ask", b'{"question": "TMA", "model": "\\ud800"}', "model"),
        ("/v1/chat/completions", b'{"model": "\\ud800", "messages": [{"role": "user", "content": "TMA"}]}', "model"),
        ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "TMA"}], "aldlab": {"filter_keyword": "\\ud800"}}',
         "aldlab.filter_keyword"),
        ("/api/admin/documents", b'{"id": "x-1", "text": "t", "keywords": ["\\ud800"]}', "keywords.0"),
        ("/api/admin/documents", b'{"id": "x-1", "text": "t", "title": "\\ud800"}', "title"),
        ("/api/admin/feedback/1/approve", b'{"revision": 1, "note": "\\ud800"}', "note"),
        ("/api/feedback",
         b'{"answer_id": "' + b"a" * 32 + b'", "answer_token": "' + b"b" * 32 + b'", "rating": "like", "comment": "\\ud800"}',
         "comment"),
    ],
)
def test_lone_surrogates_anywhere_are_a_400(tmp_path: Path, path: str, body: bytes, field: str) -> None:
    """`model` and an admin keyword "\\ud800" were 500s (the error echoing them, the KB write)."""
    client, assistant, store = client_for(tmp_path)
    r = client.post(path, content=body, headers={"Content-Type": "application/json", **admin()})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_text" and r.json()["error"]["message_en"].startswith(field)
    assert assistant.calls == 0 and store.count_feedback() == 0
    r = client.put("/api/admin/documents/tiny-001", content=b'{"keywords": ["\\ud800"]}',
                   headers={"Content-Type": "application/json", **admin()})
    assert r.status_code == 400 and client.get("/api/documents/tiny-001").json()["keywords"] == ["ALD", "자기제한"]


@pytest.mark.parametrize(
    "content",
    [
        '{"documents": [{"id": "up-001", "keywords": ["\\ud800"], "text": "업로드한 문서의 본문이다."}]}',
        '[{"keyword": "TMA", "text": "업로드한 \\ud800 본문이다."}]',
    ],
)
def test_an_uploaded_keyword_that_is_a_lone_surrogate_is_a_400(tmp_path: Path, content: str) -> None:
    """The upload's text is valid; the JSON file *in* it escapes "\\ud800" (was a 500 on the KB write)."""
    client, _, store = client_for(tmp_path)
    before = client.get("/api/admin/documents?limit=500", headers=admin()).json()["total"]
    r = client.post("/api/admin/documents/import", json={"filename": "docs.json", "content": content}, headers=admin())
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert "docs.json" in error["message_en"] and "lone surrogate" in error["message_en"] and error["message_ko"]
    assert client.get("/api/admin/documents?limit=500", headers=admin()).json()["total"] == before
    assert store.list_kb_edits() == []


def test_api_key_guards_documents_and_the_openapi_schema(tmp_path: Path) -> None:
    key = "api-key-for-documents-0123456789"
    client, _, _ = client_for(tmp_path, api_key=key)
    for path in ("/api/documents/tiny-001", "/openapi.json"):
        r = client.get(path)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", path
        assert client.get(path, headers={"Authorization": f"Bearer {key}"}).status_code == 200, path
    assert client.get("/", headers={}).status_code == 200  # the page that asks for the key stays open
    open_client, _, _ = client_for(tmp_path / "open")
    assert "/api/ask" in open_client.get("/openapi.json").json()["paths"]  # no key configured: open as before


# ---------------------------------------------------------------- issue 22: who the client is


def distinct_clients_seen(tmp_path: Path, **settings: Any) -> list[int]:
    """Four questions, each with a new X-Forwarded-For, through uvicorn as `aldlab serve` runs it."""
    from aldlab.serve.commands import uvicorn_options
    from aldlab.serve.testing import free_port, serve_in_thread
    import httpx

    kb = write_tiny_kb(tmp_path / "kb")
    config = ServeSettings(kb=str(kb), port=free_port(), rate_limit_per_minute=6, rate_limit_burst=2, **settings)
    app = create_app(FakeAssistant(kb), Store(tmp_path / "s.sqlite3"), config)
    with serve_in_thread(app, **uvicorn_options(config)) as url:
        asks = (httpx.post(url + "/api/ask", json={"question": "TMA"}, headers={"X-Forwarded-For": f"203.0.113.{i}"}, timeout=30)
                for i in range(4))
        return [r.status_code for r in asks]


def test_forwarded_for_cannot_mint_client_identities_by_default(tmp_path: Path) -> None:
    """uvicorn's defaults believed X-Forwarded-For from 127.0.0.1: a new address per request
    escaped the rate limit, the queue share and the admin-token throttle."""
    assert distinct_clients_seen(tmp_path) == [200, 200, 429, 429]
    assert distinct_clients_seen(tmp_path / "proxied", trusted_proxies=["127.0.0.1"]) == [200] * 4  # a named proxy


# ---------------------------------------------------------------- issue 22: feedback vs KB edits


def test_approving_an_answer_whose_cited_document_changed_needs_a_confirmation(tmp_path: Path) -> None:
    """The answer read the old TMA passage; the admin changed it; the reviewer approves."""
    client, _, store = client_for(tmp_path)
    asked = client.post("/api/ask", json={"question": "TMA 전구체"}).json()
    cited = [c["id"] for c in asked["contexts"]]
    assert "tiny-003" in cited
    r = client.put("/api/admin/documents/tiny-003?reload=false", json={"text": "TMA는 새로 고친 설명이다."}, headers=admin())
    assert r.status_code == 200
    body = {"answer_id": asked["answer_id"], "answer_token": asked["answer_token"], "rating": "like"}
    fb = client.post("/api/feedback", json=body).json()
    # The snapshot is the text the answer was made with, not the edited one.
    [item] = listed(client)
    assert "물과 반응한다" in next(c["text"] for c in item["contexts"] if c["id"] == "tiny-003")

    url = f"/api/admin/feedback/{fb['feedback_id']}/approve"
    r = client.post(url, json={"revision": 1}, headers=admin())
    assert r.status_code == 409 and r.json()["error"]["code"] == "kb_changed"
    assert "tiny-003" in r.json()["error"]["message_ko"] and "accept_kb_change" in r.json()["error"]["hint"]
    assert store.export_feedback_rows() == []

    r = client.post(url, json={"revision": 1, "accept_kb_change": True}, headers=admin())
    assert r.status_code == 200 and "tiny-003" in r.json()["warnings"][0]
    [row] = store.export_feedback_rows()
    assert row["review"]["kb_changed"] == ["tiny-003"] and row["review"]["kb_hash"]
    assert row["kb_hash"] and row["kb_hash"] != row["review"]["kb_hash"]


def test_an_edit_of_a_document_the_answer_did_not_cite_needs_no_confirmation(tmp_path: Path) -> None:
    client, _, store = client_for(tmp_path)
    asked = client.post("/api/ask", json={"question": "TMA 전구체"}).json()
    uncited = next(d for d in ("tiny-001", "tiny-002", "tiny-003") if d not in {c["id"] for c in asked["contexts"]})
    client.put(f"/api/admin/documents/{uncited}?reload=false", json={"text": "다른 문서의 새 본문"}, headers=admin())
    body = {"answer_id": asked["answer_id"], "answer_token": asked["answer_token"], "rating": "like"}
    fb = client.post("/api/feedback", json=body).json()
    r = client.post(f"/api/admin/feedback/{fb['feedback_id']}/approve", json={"revision": 1}, headers=admin())
    assert r.status_code == 200 and r.json()["warnings"] == []
    assert store.export_feedback_rows()[0]["review"]["kb_changed"] == []


@pytest.mark.parametrize("token", ["a" * 16, "a" * 48, "abcabcabcabcabcabcabcabc", "Short-but-mixed-17"])
def test_weak_admin_tokens_stop_the_server_with_a_recipe(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    from aldlab.errors import UserError
    from aldlab.serve.commands import secret_from_env

    monkeypatch.setenv("ALDLAB_ADMIN_TOKEN", token)
    with pytest.raises(UserError) as refused:
        secret_from_env("ALDLAB_ADMIN_TOKEN")
    assert refused.value.ko.startswith("ALDLAB_ADMIN_TOKEN 가 너무 약합니다")
    assert "secrets.token_urlsafe(32)" in refused.value.ko and "secrets.token_urlsafe(32)" in refused.value.en
    import secrets

    monkeypatch.setenv("ALDLAB_ADMIN_TOKEN", secrets.token_urlsafe(32))
    assert secret_from_env("ALDLAB_ADMIN_TOKEN")


@pytest.mark.parametrize("folder", ["my kb", "c++ kb", "a+b"])
def test_server_paths_with_spaces_or_plus_are_redacted(tmp_path: Path, folder: str) -> None:
    kb = write_tiny_kb(tmp_path / folder / "kb")
    client, _, _ = client_for(tmp_path, kb)
    (kb / "documents" / "basics.jsonl").write_text('{"id": "broken"\n', encoding="utf-8")
    for r in (
        client.get("/api/documents/tiny-001"),
        client.put("/api/admin/documents/tiny-001?reload=false", json={"text": "수정"}, headers=admin()),
    ):
        assert r.status_code == 503 and r.json()["error"]["code"] == "kb_unavailable", r.text
        assert "basics.jsonl" in r.text
        assert str(tmp_path) not in r.text and folder not in r.text


def test_redaction_keeps_the_bilingual_separator() -> None:
    from aldlab.serve.errors import redact_paths

    assert redact_paths("경로가 없습니다 / not found: /srv/ald lab/kb/a b.jsonl", None) == "경로가 없습니다 / not found: a b.jsonl"
    assert redact_paths("/home/kim/c++ work/kb+old/kb.json:3: 오류", None) == "kb.json:3: 오류"


def test_document_size_is_counted_in_characters_not_escaped_bytes(tmp_path: Path) -> None:
    """20,000 Korean characters as `\\uXXXX` escapes are ~120 KB: that used to be a 413."""
    client, _, _ = client_for(tmp_path)
    headers = {**admin(), "Content-Type": "application/json"}
    body = json.dumps({"id": "long-001", "text": "가" * 20_000, "topic": "basics"})  # ensure_ascii: all escaped
    assert len(body.encode()) > 120_000
    r = client.post("/api/admin/documents?reload=false", content=body, headers=headers)
    assert r.status_code == 201, r.text
    r = client.put("/api/admin/documents/long-001?reload=false", content=json.dumps({"text": "나" * 20_001}), headers=headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "text_too_long"
    assert "20000자" in r.json()["error"]["message_ko"] and "20001" in r.json()["error"]["message_en"]
    # Elsewhere the general cap stands.
    r = client.post("/api/ask", content=json.dumps({"question": "가" * 20_000}), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_answers_do_not_rehash_the_kb_each_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every answer hashed the whole KB on the event loop (12 ms for the shipped KB)."""
    client, assistant, store = client_for(tmp_path)
    calls: list[int] = []
    real = KnowledgeBase.content_hash
    monkeypatch.setattr(KnowledgeBase, "content_hash", lambda self: calls.append(1) or real(self))
    logged = [client.post("/api/ask", json={"question": f"TMA 전구체 {i}"}).json()["answer_id"] for i in range(5)]
    assert len(calls) <= 1
    assert {store.get_answer(a).kb_hash for a in logged} == {real(assistant.kb)}
    # A KB change is a new KB object: the next answer logs the new hash.
    client.put("/api/admin/documents/tiny-001?reload=true&wait=true", json={"text": "새 본문"}, headers=admin())
    answer_id = client.post("/api/ask", json={"question": "TMA 전구체"}).json()["answer_id"]
    assert store.get_answer(answer_id).kb_hash == real(assistant.kb) != store.get_answer(logged[0]).kb_hash
