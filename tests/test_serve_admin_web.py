"""The admin tab's server side (issue 25): a Korean admin name, uploading a file, and the
`generates` flag that lets the page label passages of a refusal made before the model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aldlab.kb.io import load_kb
from aldlab.rag.types import Answer, AskOptions, Plan
from aldlab.serve.app import create_app
from aldlab.serve.deps import actor_name
from aldlab.serve.fake import FakeAssistant
from aldlab.serve.settings import ServeSettings
from aldlab.store import Store
from serve_kit import assistant, kb_dir, store  # noqa: F401  (fixtures)

TOKEN = "s3cret-token-for-admin-web"
UPLOAD = "/api/admin/documents/import"


@pytest.fixture()
def client(assistant: FakeAssistant, store: Store, kb_dir: Path) -> Iterator[TestClient]:
    app = create_app(assistant, store, ServeSettings(kb=str(kb_dir), admin_token=TOKEN))
    with TestClient(app, raise_server_exceptions=False, base_url="http://127.0.0.1") as test_client:
        yield test_client


def admin(actor: str | bytes = "kim") -> dict[str, Any]:
    return {"Authorization": f"Bearer {TOKEN}", "X-Aldlab-Actor": actor}


# --------------------------------------------------------------------------- the actor's name


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("kim", "kim"),
        ("%EA%B9%80%EA%B3%B5%EC%A0%95", "김공정"),  # the web UI: encodeURIComponent
        ("김공정".encode().decode("latin-1"), "김공정"),  # curl: raw UTF-8 bytes, read as Latin-1
        ("reviewer park", "reviewer park"),
        ("caf\xe9", "caf\xe9"),  # Latin-1 that is not UTF-8 stays as sent
    ],
)
def test_actor_name_decodes_what_clients_send(header: str, name: str) -> None:
    assert actor_name(header) == name


def test_a_korean_admin_name_reaches_the_audit_log(client: TestClient, store: Store) -> None:
    new = {"id": "tiny-300", "title": "김공정의 문서", "text": "한국어 이름으로 추가한 문서 본문.", "topic": "basics"}
    encoded = client.post("/api/admin/documents", json=new, headers=admin("%EA%B9%80%EA%B3%B5%EC%A0%95"))
    assert encoded.status_code == 201, encoded.text
    raw = client.put("/api/admin/documents/tiny-300", json={"title": "바뀐 제목"}, headers=admin("김공정".encode()))
    assert raw.status_code == 200, raw.text
    assert [e["actor"] for e in store.list_kb_edits(doc_id="tiny-300")] == ["김공정", "김공정"]


# --------------------------------------------------------------------------- upload


NOTE = "# 드라이 펌프 점검\n\nZX900 드라이 펌프의 배기 압력은 매주 점검표에 기록한다.\n\n# 누설 점검\n\n헬륨 누설 시험은 분기마다 한다.\n"


def upload(client: TestClient, filename: str, content: str, **query: Any) -> Any:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    return client.post(f"{UPLOAD}?{params}", json={"filename": filename, "content": content}, headers=admin("김공정".encode()))


def test_upload_imports_like_the_cli_audits_and_reindexes(
    client: TestClient, kb_dir: Path, store: Store, assistant: FakeAssistant
) -> None:
    r = upload(client, "펌프 점검.md", NOTE, wait="true")
    assert r.status_code == 201, r.text
    body = r.json()
    titles = [d["title"] for d in body["added"]]
    assert titles == ["드라이 펌프 점검", "누설 점검"]  # Markdown headings become titles
    assert body["reload"]["scheduled"] and body["reload"]["ok"] is True and assistant.reloads == 1
    ids = [d["id"] for d in body["added"]]
    assert set(ids) <= set(load_kb(kb_dir).by_id())
    assert all(store.list_kb_edits(doc_id=i)[0]["actor"] == "김공정" for i in ids)
    found = client.post("/api/ask", json={"question": "ZX900 드라이 펌프 배기 압력"}).json()
    assert found["contexts"][0]["id"] == ids[0]
    # Again: nothing added, nothing reindexed, and the ids are the same (content-derived).
    again = upload(client, "펌프 점검.md", NOTE).json()
    assert again["added"] == [] and sorted(again["unchanged"]) == sorted(ids)
    assert again["reload"]["scheduled"] is False


def test_upload_of_a_legacy_json_file(client: TestClient) -> None:
    rows = [{"keyword": "펌프", "text": "로터리 펌프 오일은 6개월마다 교체한다."}]
    r = upload(client, "legacy.json", json.dumps(rows, ensure_ascii=False))
    assert r.status_code == 201, r.text
    assert r.json()["added"][0]["text"] == "로터리 펌프 오일은 6개월마다 교체한다."


@pytest.mark.parametrize("filename", ["../escape.md", "a/b.md", "notes.pdf", "script.js", ""])
def test_upload_refuses_other_names(client: TestClient, kb_dir: Path, filename: str) -> None:
    before = load_kb(kb_dir).by_id()
    r = upload(client, filename, NOTE)
    assert r.status_code in (400, 422) and r.json()["error"]["message"]
    assert load_kb(kb_dir).by_id() == before


def test_upload_that_is_not_a_kb_is_a_bilingual_error_without_server_paths(client: TestClient) -> None:
    r = upload(client, "feedback.json", json.dumps({"feedbacks": [{"q": 1}]}))
    assert r.status_code == 400
    error = r.json()["error"]
    assert "KB 파일이 아닙니다" in error["message_ko"] and "not a KB" in error["message_en"]
    assert "aldlab-upload-" not in r.text and "/tmp" not in r.text


def test_upload_needs_the_admin_token(client: TestClient) -> None:
    r = client.post(UPLOAD, json={"filename": "a.md", "content": NOTE})
    assert r.status_code == 401


# --------------------------------------------------------------------------- refusals before the model


class SettlingAssistant(FakeAssistant):
    """Settles questions with "거절" in `plan`, as the real refusal gate does before the model."""

    def plan(self, question: str, options: AskOptions = AskOptions()) -> Plan:
        plan = super().plan(question, options)
        if "거절" in question:
            plan.final = Answer(question=question, text="거절", passages=plan.passages, refused=True, model=options.model)
        return plan


def test_contexts_event_says_whether_the_model_will_run(kb_dir: Path, store: Store) -> None:
    app = create_app(SettlingAssistant(kb_dir), store, ServeSettings(kb=str(kb_dir)))
    client = TestClient(app, base_url="http://127.0.0.1")

    def contexts_event(question: str) -> dict[str, Any]:
        r = client.post("/api/ask?stream=true", json={"question": question})
        events = [json.loads(b[len("data: ") :]) for b in r.text.split("\n\n") if b.startswith("data: ")]
        return next(e for e in events if e["type"] == "contexts")

    assert contexts_event("퍼지 단계의 역할")["generates"] is True
    settled = contexts_event("퍼지 단계의 역할 거절")
    assert settled["generates"] is False and settled["contexts"][0]["id"] == "tiny-002"
