"""The service API against a fake assistant: answers, feedback integrity, limits, admin."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aldlab.kb.io import load_kb
from aldlab.serve.app import create_app
from aldlab.serve.fake import FakeAssistant
from aldlab.serve.settings import ServeSettings
from aldlab.store import Store
from serve_kit import assistant, kb_dir, store  # noqa: F401  (fixtures)

TOKEN = "s3cret-token"


def make_client(assistant: FakeAssistant, store: Store, kb_dir: Path, **overrides: Any) -> TestClient:
    settings = ServeSettings(kb=str(kb_dir), admin_token=TOKEN, **overrides)
    return TestClient(create_app(assistant, store, settings), raise_server_exceptions=False, base_url="http://127.0.0.1")


@pytest.fixture()
def client(assistant: FakeAssistant, store: Store, kb_dir: Path) -> Iterator[TestClient]:
    # As a context manager the app keeps one event loop, so background reloads live on.
    with make_client(assistant, store, kb_dir) as test_client:
        yield test_client


def sse_events(text: str) -> list[Any]:
    out = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            data = block[len("data: ") :]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_ask_returns_cited_answer_and_logs_it(client: TestClient, store: Store) -> None:
    r = client.post("/api/ask", json={"question": "TMA 전구체는 무엇인가요?"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["citations"] == [{"id": "tiny-003", "title": "TMA 전구체", "how": "bracket", "support": 0.0}]
    assert body["contexts"][0]["id"] == "tiny-003" and body["contexts"][0]["score"] > 0
    # The fake's confidence is 0.3 + the share of question words the document has (1 of
    # "TMA", "전구체는", "무엇인가요" -> 0.63): between confidence_medium 0.4 and confidence_high 0.7.
    assert body["confidence"] == pytest.approx(0.6333) and body["confidence_label"] == "medium"
    assert body["confidence_explanation"]["ko"] and body["confidence_explanation"]["en"]
    logged = store.get_answer(body["answer_id"])
    assert logged is not None and logged.question == "TMA 전구체는 무엇인가요?" and logged.answer == body["answer"]


@pytest.mark.parametrize(
    ("high", "medium", "label"), [(0.6, 0.4, "high"), (0.7, 0.4, "medium"), (0.9, 0.7, "low")]
)
def test_confidence_label_follows_the_configured_thresholds(
    assistant: FakeAssistant, store: Store, kb_dir: Path, high: float, medium: float, label: str
) -> None:
    client = make_client(assistant, store, kb_dir, confidence_high=high, confidence_medium=medium)
    body = client.post("/api/ask", json={"question": "TMA 전구체는 무엇인가요?"}).json()  # confidence 0.63
    assert body["refused"] is False and body["confidence_label"] == label
    explanation = body["confidence_explanation"]
    assert {"high": "높음", "medium": "보통", "low": "낮음"}[label] in explanation["ko"] and label in explanation["en"]


def test_out_of_kb_question_is_refused_with_low_confidence(client: TestClient) -> None:
    body = client.post("/api/ask", json={"question": "오늘 점심 메뉴 추천"}).json()
    assert body["refused"] is True and body["confidence_label"] == "low" and body["citations"] == []


def test_ask_streaming_sends_tokens_then_answer(client: TestClient) -> None:
    r = client.post("/api/ask?stream=true", json={"question": "퍼지 단계 역할", "model": "ald-ft"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    tokens = [e["text"] for e in events if e["type"] == "token"]
    final = events[-1]
    assert final["type"] == "answer" and "".join(tokens) == final["answer"]
    assert final["model"] == "ald-ft" and final["citations"][0]["id"] == "tiny-002"


def test_feedback_references_a_logged_answer(client: TestClient, store: Store) -> None:
    asked = client.post("/api/ask", json={"question": "ALD 자기제한"}).json()
    answer_id, token = asked["answer_id"], asked["answer_token"]
    r = client.post(
        "/api/feedback",
        json={"answer_id": answer_id, "answer_token": token, "rating": "dislike", "comment": "부족", "correction": "고친 답"},
    )
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["status"] == "pending"
    rows = store.export_feedback_rows(status="pending")
    assert rows[0]["question"] == "ALD 자기제한" and rows[0]["correction"] == "고친 답"
    assert rows[0]["contexts"][0]["text"].startswith("ALD는")  # snapshot from the KB at feedback time
    # A client cannot invent an answer: unknown ids are refused and nothing is stored.
    forged = client.post(
        "/api/feedback", json={"answer_id": "a" * 32, "answer_token": "x" * 32, "rating": "like", "question": "가짜"}
    )
    assert forged.status_code == 404 and forged.json()["error"]["code"] == "unknown_answer"
    bad = client.post("/api/feedback", json={"answer_id": "not-hex", "rating": "like"})
    assert bad.status_code == 422 and "error" in bad.json()
    assert store.count_feedback() == 1


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"question": "가" * 2001}, 400, "question_too_long"),
        ({"question": "ALD", "top_k": 11}, 400, "invalid_top_k"),
        ({"question": "ALD", "max_new_tokens": 100000}, 400, "invalid_max_tokens"),
        ({"question": "   "}, 400, "invalid_request"),
        ({"question": "ALD", "model": "gpt-99"}, 404, "model_not_found"),
        ({"nothing": 1}, 422, "invalid_request"),
    ],
)
def test_limits_are_json_errors(client: TestClient, payload: dict[str, Any], status: int, code: str) -> None:
    r = client.post("/api/ask", json=payload)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["code"] == code and error["message_ko"] and error["message_en"]
    assert "Traceback" not in r.text


def test_body_size_limit(client: TestClient) -> None:
    r = client.post("/api/ask", content=b'{"question": "' + b"a" * 70000 + b'"}', headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted while reading
        yield b'{"question": "'
        for _ in range(70):
            yield b"a" * 1000
        yield b'"}'

    r = client.post("/api/ask", content=chunked(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_internal_errors_hide_the_traceback(client: TestClient, assistant: FakeAssistant) -> None:
    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret internals")

    assistant.answer = boom  # type: ignore[method-assign]
    r = client.post("/api/ask", json={"question": "ALD"})
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert "secret internals" not in r.text and "Traceback" not in r.text


def test_security_headers_and_no_cors_by_default(client: TestClient) -> None:
    r = client.get("/api/health", headers={"Origin": "http://evil.example"})
    assert r.json()["status"] == "ok"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "access-control-allow-origin" not in r.headers


def test_cors_when_configured(assistant: FakeAssistant, store: Store, kb_dir: Path) -> None:
    client = make_client(assistant, store, kb_dir, cors_origins=["http://intranet.example"])
    r = client.get("/api/health", headers={"Origin": "http://intranet.example"})
    assert r.headers["access-control-allow-origin"] == "http://intranet.example"


def test_ui_is_served(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and "aldlab" in r.text
    assert client.get("/static/app.js").status_code == 200
    # The UI never turns data into markup (the browser test checks the rendering too).
    script = client.get("/static/app.js").text
    assert not re.search(r"\.(innerHTML|outerHTML)\s*[+]?=|insertAdjacentHTML|document\.write", script)


def test_public_document_lookup(client: TestClient) -> None:
    assert client.get("/api/documents/tiny-001").json()["title"] == "ALD 자기제한 반응"
    assert client.get("/api/documents/missing").status_code == 404


# --------------------------------------------------------------------------- admin


def admin(actor: str = "kim") -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", "X-Aldlab-Actor": actor}


def test_admin_is_off_without_a_token(assistant: FakeAssistant, store: Store, kb_dir: Path) -> None:
    settings = ServeSettings(kb=str(kb_dir), admin_token=None)
    client = TestClient(create_app(assistant, store, settings), base_url="http://127.0.0.1")
    r = client.get("/api/admin/documents", headers=admin())
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_disabled"


def test_admin_needs_the_right_token(client: TestClient) -> None:
    assert client.get("/api/admin/documents").status_code == 401
    assert client.get("/api/admin/documents", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/admin/documents", headers=admin()).json()["total"] == 3


def test_admin_edits_are_atomic_audited_and_reindexed(
    client: TestClient, kb_dir: Path, store: Store, assistant: FakeAssistant
) -> None:
    new = {"id": "tiny-100", "title": "플라즈마 ALD", "text": "PEALD는 플라즈마 라디칼로 저온 증착을 가능하게 한다.", "topic": "basics"}
    r = client.post("/api/admin/documents?wait=true", json=new, headers=admin("kim"))
    assert r.status_code == 201, r.text
    assert r.json()["reload"]["ok"] is True and assistant.reloads == 1
    assert client.post("/api/ask", json={"question": "PEALD 저온"}).json()["citations"][0]["id"] == "tiny-100"

    r = client.put("/api/admin/documents/tiny-100", json={"text": "PEALD 수정본 본문"}, headers=admin("lee"))
    assert r.status_code == 200 and r.json()["before"]["text"].startswith("PEALD는")
    assert client.post("/api/admin/documents", json=new, headers=admin()).status_code == 400  # duplicate id
    r = client.delete("/api/admin/documents/tiny-100", headers=admin("park"))
    assert r.status_code == 200
    assert client.delete("/api/admin/documents/tiny-100", headers=admin()).status_code == 400

    assert "tiny-100" not in load_kb(kb_dir).by_id()
    assert not list(kb_dir.rglob("*.tmp"))
    edits = store.list_kb_edits(doc_id="tiny-100")
    assert [(e["action"], e["actor"]) for e in edits] == [("delete", "park"), ("update", "lee"), ("add", "kim")]
    assert edits[1]["before"]["text"].startswith("PEALD는") and edits[1]["after"]["text"] == "PEALD 수정본 본문"
    audit = client.get("/api/admin/audit", headers=admin()).json()["edits"]
    assert len(audit) == 3
    r = client.post("/api/admin/reload", headers=admin())  # waits by default
    assert r.json()["reload"]["running"] is False and r.json()["reload"]["ok"] is True
    assert client.get("/api/health").json()["reload"]["ok"] is True


def test_edits_return_before_a_slow_reindex_finishes(
    client: TestClient, assistant: FakeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    release = threading.Event()
    calls: list[int] = []

    def slow_reload() -> None:
        calls.append(1)
        release.wait(10)

    monkeypatch.setattr(assistant, "reload_if_changed", slow_reload)
    doc = {"id": "tiny-300", "text": "ALD 문서 하나 더", "topic": "basics"}
    r = client.post("/api/admin/documents", json=doc, headers=admin())
    assert r.status_code == 201 and r.json()["reload"]["scheduled"] is True
    for i in range(3):  # edits during the rebuild are coalesced into one more rebuild
        client.put("/api/admin/documents/tiny-300", json={"text": f"수정 {i}"}, headers=admin())
    assert client.get("/api/health").json()["reload"]["running"] is True
    release.set()
    r = client.post("/api/admin/reload", headers=admin())
    assert r.json()["reload"]["running"] is False
    assert 2 <= len(calls) <= 3


def test_admin_feedback_export_is_jsonl_for_the_dataset_builder(client: TestClient) -> None:
    asked = client.post("/api/ask", json={"question": "TMA"}).json()
    fb = client.post("/api/feedback", json={"answer_id": asked["answer_id"], "answer_token": asked["answer_token"], "rating": "like"})
    assert client.get("/api/admin/feedback/export", headers=admin()).text == ""  # pending is not exported
    r = client.post(f"/api/admin/feedback/{fb.json()['feedback_id']}/approve", json={"revision": 1},
                    headers={**admin(), "X-Aldlab-Actor": "kim"})
    assert r.status_code == 200 and r.json()["item"]["review"]["reviewer"] == "kim"
    r = client.get("/api/admin/feedback/export", headers=admin())
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert len(rows) == 1 and rows[0]["feedback"] == "like" and rows[0]["question"] == "TMA"
    assert rows[0]["review"]["status"] == "approved" and rows[0]["review"]["reviewed_at"]


def test_legacy_kb_file_cannot_be_edited(assistant: FakeAssistant, store: Store, tmp_path: Path) -> None:
    legacy = tmp_path / "docs.txt"
    legacy.write_text("ALD 문서", encoding="utf-8")
    client = make_client(assistant, store, legacy)
    r = client.post("/api/admin/documents", json={"id": "x", "text": "y"}, headers=admin())
    assert r.status_code == 409 and r.json()["error"]["code"] == "kb_not_editable"


def test_queue_limit_returns_503(assistant: FakeAssistant, store: Store, kb_dir: Path) -> None:
    client = make_client(assistant, store, kb_dir, max_pending=0)
    r = client.post("/api/ask", json={"question": "ALD"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "server_busy"


def test_stream_shows_status_and_contexts_before_the_first_token(client: TestClient) -> None:
    r = client.post("/api/ask?stream=true", json={"question": "퍼지 단계 역할"})
    events = sse_events(r.text)
    kinds = [e["type"] for e in events]
    first_token = kinds.index("token")
    assert kinds[0] == "status" and events[0]["state"] == "queued" and events[0]["position"] == 1
    assert "contexts" in kinds[:first_token] and events[kinds.index("contexts")]["contexts"][0]["id"] == "tiny-002"
    generating = [e for e in events[:first_token] if e["type"] == "status" and e["state"] == "generating"]
    assert generating and generating[0]["position"] == 0 and generating[0]["elapsed_s"] >= 0


class SilentAssistant(FakeAssistant):
    """Answers without citing anything (like the base model in issue 16)."""

    def run(self, plan: Any, **kwargs: Any) -> Iterator[Any]:
        for item in super().run(plan, **kwargs):
            if isinstance(item, str):
                continue
            item.text, item.citations, item.citation_details = "길게는 100 ms, 짧게는 10 ms", [], []
            yield item.text
            yield item


def test_uncited_answer_has_no_citations_but_keeps_its_contexts(store: Store, kb_dir: Path) -> None:
    client = make_client(SilentAssistant(kb_dir), store, kb_dir)
    body = client.post("/api/ask", json={"question": "TMA 전구체"}).json()
    assert body["citations"] == [] and body["contexts"][0]["id"] == "tiny-003"
    assert "인용하지 않았습니다" in body["confidence_explanation"]["ko"]
    openai = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "TMA 전구체"}]}).json()
    assert openai["aldlab"]["citations"] == [] and openai["aldlab"]["contexts"]


def test_the_fine_tuned_model_is_the_default(client: TestClient, store: Store, kb_dir: Path) -> None:
    health = client.get("/api/health").json()
    assert health["default_model"] == "ald-ft" and health["base_model_warning"] is False
    assert client.post("/api/ask", json={"question": "TMA 전구체"}).json()["model"] == "ald-ft"
    assert client.post("/api/ask", json={"question": "TMA 전구체", "model": "base"}).json()["model"] == "base"
    chat = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "TMA"}]}).json()
    assert chat["model"] == "ald-ft"
    base_only = make_client(FakeAssistant(kb_dir, models=("base",)), store, kb_dir, base_model_warning=True)
    health = base_only.get("/api/health").json()
    assert health["default_model"] == "base" and health["base_model_warning"] is True


def test_context_only_request_cites_nothing(client: TestClient) -> None:
    body = client.post("/api/ask", json={"question": "TMA 전구체", "context_only": True}).json()
    assert body["citations"] == [] and "[tiny-003]" in body["answer"]


def test_only_the_asker_can_rate_an_answer(client: TestClient, store: Store) -> None:
    """Issue 12: client B re-rated client A's answer (revisions=2) knowing only its id."""
    a = client.post("/api/ask", json={"question": "TMA 전구체"}).json()
    mine = {"answer_id": a["answer_id"], "answer_token": a["answer_token"], "rating": "like"}
    assert client.post("/api/feedback", json=mine).status_code == 200
    hijack = {"answer_id": a["answer_id"], "answer_token": "b" * 32, "rating": "dislike", "correction": "독"}
    r = client.post("/api/feedback", json=hijack)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    no_token = client.post("/api/feedback", json={"answer_id": a["answer_id"], "rating": "dislike"})
    assert no_token.status_code == 422
    row = store.export_feedback_rows(status=None)[0]
    assert row["feedback"] == "like" and row["revisions"] == 1 and row["correction"] is None


def test_review_queue_lists_pending_with_question_answer_contexts_and_history(client: TestClient) -> None:
    history = [{"role": "user", "content": "TMA란?"}, {"role": "assistant", "content": "전구체입니다"}]
    a = client.post("/api/ask", json={"question": "그거 어디에 써?", "history": history}).json()
    client.post("/api/feedback", json={"answer_id": a["answer_id"], "answer_token": a["answer_token"],
                                       "rating": "dislike", "correction": "Al2O3 ALD에 씁니다."})
    r = client.get("/api/admin/feedback?status=pending", headers=admin())
    item = r.json()["items"][0]
    assert r.json()["total"] == 1 and item["question"] == "그거 어디에 써?" and item["answer"] == a["answer"]
    assert item["history"] == history and item["correction"] == "Al2O3 ALD에 씁니다." and "contexts" in item
    r = client.post(f"/api/admin/feedback/{item['feedback_id']}/reject", json={"note": "문맥 의존", "revision": item["revisions"]},
                    headers=admin())
    assert r.json()["item"]["review"] == {**r.json()["item"]["review"], "status": "rejected", "note": "문맥 의존"}
    assert client.get("/api/admin/feedback?status=pending", headers=admin()).json()["total"] == 0
    assert client.get("/api/admin/feedback").status_code == 401


def test_answer_log_keeps_ids_and_kb_hash_not_texts_or_ip(client: TestClient, store: Store) -> None:
    a = client.post("/api/ask", json={"question": "TMA 전구체"}).json()
    logged = store.get_answer(a["answer_id"])
    assert logged is not None and logged.contexts == [] and logged.context_ids == ["tiny-003"]
    assert len(logged.kb_hash) == 16
    import sqlite3

    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT client FROM answers").fetchone()[0] == ""


def test_documents_are_served_from_memory(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: every /api/documents call re-read the whole KB."""
    import aldlab.kb.edit  # noqa: F401 - bound before the patch: the edit's own read is not counted
    import aldlab.kb.io as kb_io

    assert client.get("/api/documents/tiny-001").status_code == 200
    reads: list[Path] = []
    real = kb_io.load_kb
    monkeypatch.setattr(kb_io, "load_kb", lambda path: reads.append(path) or real(path))
    for _ in range(50):
        assert client.get("/api/documents/tiny-002").json()["id"] == "tiny-002"
    assert reads == []
    # an admin edit is visible at once
    client.put("/api/admin/documents/tiny-002?reload=false", json={"title": "바뀐 제목"}, headers=admin())
    assert client.get("/api/documents/tiny-002").json()["title"] == "바뀐 제목" and len(reads) == 1


def test_documents_are_the_assistants_kb_until_the_files_change(kb_dir: Path, assistant: FakeAssistant) -> None:
    """One copy of the KB: the server shows the assistant's, a newer copy only while they differ."""
    from aldlab.errors import UserError
    from aldlab.kb import edit
    from aldlab.serve.documents import KbDocuments

    docs = KbDocuments(assistant, kb_dir)
    assert docs.current() is assistant.kb  # first use reads the files once and finds them the same
    edit.update_document(kb_dir, "tiny-002", {"title": "바뀐 제목"})
    docs.edited()
    assert docs.get("tiny-002").title == "바뀐 제목" and docs.current() is not assistant.kb
    assert assistant.kb.by_id()["tiny-002"].title != "바뀐 제목"  # the index is rebuilt later
    assert assistant.reload_if_changed() is True
    assert docs.current() is assistant.kb and docs.get("tiny-002").title == "바뀐 제목"

    path = next((kb_dir / "documents").glob("*.jsonl"))
    path.write_text(path.read_text(encoding="utf-8") + "{broken\n", encoding="utf-8")
    docs.edited()
    with pytest.raises(UserError):
        docs.current()
    assert assistant.kb.by_id()["tiny-002"].title == "바뀐 제목"  # the assistant keeps its copy


def test_corrupt_kb_errors_do_not_show_server_paths(client: TestClient, kb_dir: Path) -> None:
    """Issue 12: a corrupt KB line showed absolute server paths in /api/health and a 400."""
    path = next((kb_dir / "documents").glob("*.jsonl"))
    path.write_text(path.read_text(encoding="utf-8") + "{broken\n", encoding="utf-8")
    r = client.get("/api/documents/x")
    assert r.status_code == 503 and str(kb_dir) not in r.text and "/" + path.parent.name not in r.text
    assert path.name in r.text  # the file name is still there to act on
    r = client.post("/api/admin/reload", headers=admin())
    assert str(kb_dir) not in r.text and str(kb_dir) not in client.get("/api/health").text


def test_an_answer_shown_as_the_best_passage_says_so_in_the_payload() -> None:
    """One wording (aldlab.rag.types.FALLBACK_NOTES) for CLI, API and web UI."""
    from aldlab.rag.types import FALLBACK_NOTES, Answer, Citation, Passage
    from aldlab.serve.payload import LoggedRef, answer_payload

    best = Passage(id="purge-001", title="Purge", text="Purge는 …")
    shown = Answer(question="퍼지 왜 해?", text=f"{best.text} [{best.id}]", passages=[best], citations=[best.id],
                   citation_details=[Citation(best.id, "passage", 1.0)], fallback="model_refused")
    out = answer_payload(shown, LoggedRef("a1", "t"), ServeSettings())
    assert out.fallback == "model_refused"
    assert out.fallback_note is not None and (out.fallback_note.ko, out.fallback_note.en) == FALLBACK_NOTES["model_refused"]
    shown.fallback = ""
    assert answer_payload(shown, LoggedRef("a1", "t"), ServeSettings()).fallback_note is None
