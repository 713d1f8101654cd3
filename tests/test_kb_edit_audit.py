"""A KB edit and its audit row survive a crash as one unit (issue 22: kill -9 during admin
edits left 7 of 12 edits without a row, a topic move once left a duplicate id, and `.tmp`
files stayed behind).

Each test crashes an edit at one step (a `BaseException` nothing in the edit path catches,
standing in for kill -9; one test uses a real SIGKILL), then "restarts" the server by
building the app again, whose start-up repair must settle the half-recorded edit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aldlab.kb import edit
from aldlab.kb import io as kb_io
from aldlab.kb.io import load_kb
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.kb.validate import validate_kb
from aldlab.serve.app import create_app
from aldlab.serve.fake import FakeAssistant
from aldlab.serve.kb_admin import AuditJournal
from aldlab.serve.settings import ServeSettings
from aldlab.serve.testing import write_tiny_kb
from aldlab.store import Store

TOKEN = "admin-token-for-audit-crash-tests"


class Crash(BaseException):
    """kill -9 stand-in: not an Exception, so no handler on the way settles anything."""


def restart(kb: Path, db: Path) -> TestClient:
    """A new server on the same KB and database (its start-up repair runs in create_app)."""
    app = create_app(FakeAssistant(kb), Store(db), ServeSettings(kb=str(kb), admin_token=TOKEN))
    return TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)


def journal(store: Store, kb: Path) -> AuditJournal:
    return AuditJournal(store, "kim", "test", kb)


def rows(store: Store) -> list[dict[str, Any]]:
    return list(reversed(store.list_kb_edits()))


def crash_on(monkeypatch: pytest.MonkeyPatch, owner: Any, attr: str, *, after_calls: int = 0) -> None:
    """Make `owner.attr` raise Crash on call number `after_calls` + 1."""
    real = getattr(owner, attr)
    calls = {"n": 0}

    def crashing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > after_calls:
            raise Crash()
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, attr, crashing)


def test_crash_before_the_kb_write_leaves_a_row_settled_as_aborted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kb, db = write_tiny_kb(tmp_path / "kb"), tmp_path / "s.sqlite3"
    store = Store(db)
    crash_on(monkeypatch, edit, "save_kb")
    with pytest.raises(Crash):
        edit.update_document(kb, "tiny-001", {"text": "바뀐 본문"}, journal=journal(store, kb))
    monkeypatch.undo()
    assert [r["state"] for r in rows(store)] == ["pending"]
    assert load_kb(kb).by_id()["tiny-001"].text != "바뀐 본문"

    restart(kb, db)
    assert [(r["action"], r["state"]) for r in rows(store)] == [("update", "aborted")]


def test_crash_after_the_kb_write_leaves_a_row_settled_as_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kb, db = write_tiny_kb(tmp_path / "kb"), tmp_path / "s.sqlite3"
    store = Store(db)
    crash_on(monkeypatch, AuditJournal, "commit")
    with pytest.raises(Crash):
        edit.add_document(kb, Document(id="new-001", title="새 문서", text="새 본문", topic="basics"), journal=journal(store, kb))
    with pytest.raises(Crash):
        edit.delete_document(kb, "tiny-002", journal=journal(store, kb))
    monkeypatch.undo()
    assert [r["state"] for r in rows(store)] == ["pending", "pending"]

    client = restart(kb, db)
    assert [(r["action"], r["doc_id"], r["state"]) for r in rows(store)] == [
        ("add", "new-001", "done"),
        ("delete", "tiny-002", "done"),
    ]
    listed = client.get("/api/admin/audit", headers={"Authorization": f"Bearer {TOKEN}"}).json()["edits"]
    assert {e["state"] for e in listed} == {"done"}


def test_a_topic_move_cut_in_half_is_finished_without_a_duplicate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gaining topic file is written, the kill comes before the losing one."""
    kb, db = write_tiny_kb(tmp_path / "kb"), tmp_path / "s.sqlite3"
    store = Store(db)
    crash_on(monkeypatch, kb_io, "atomic_write_jsonl", after_calls=1)
    with pytest.raises(Crash):
        edit.update_document(kb, "tiny-001", {"topic": "precursors"}, journal=journal(store, kb))
    monkeypatch.undo()
    assert [d.id for d in load_kb(kb).documents].count("tiny-001") == 2

    restart(kb, db)
    documents = load_kb(kb).documents
    assert [d.id for d in documents].count("tiny-001") == 1
    assert next(d for d in documents if d.id == "tiny-001").topic == "precursors"
    assert [r["state"] for r in rows(store)] == ["done"]


def test_an_import_cut_after_its_documents_leaves_no_undeclared_keyword_or_topic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import declares its new keyword and topic in kb.json; with kb.json written after
    the documents, a kill between them left a document that `aldlab kb validate` rejects
    and the admin API refuses to edit."""
    kb, db = write_tiny_kb(tmp_path / "kb"), tmp_path / "s.sqlite3"
    store = Store(db)
    incoming = KnowledgeBase(documents=[
        Document(id="imp-001", title="가져온 문서", text="시험어가 나오는 가져온 문서의 본문", keywords=["시험어"], topic="imported")
    ])
    crash_on(monkeypatch, kb_io, "atomic_write_jsonl", after_calls=1)  # after the gaining topic file
    with pytest.raises(Crash):
        edit.import_into(kb, incoming, journal=journal(store, kb))
    monkeypatch.undo()

    client = restart(kb, db)
    assert [i.en for i in validate_kb(load_kb(kb), check_near_duplicates=False).errors] == []
    assert [(r["action"], r["doc_id"], r["state"]) for r in rows(store)] == [("add", "imp-001", "done")]
    r = client.put("/api/admin/documents/imp-001?reload=false", json={"text": "고친 본문"},
                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text


def test_kb_json_gives_up_a_declaration_only_after_the_documents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other half of the rule: a topic the KB drops stays declared until no document uses it."""
    kb_dir = write_tiny_kb(tmp_path / "kb")
    kb = load_kb(kb_dir)
    kb.documents = [d for d in kb.documents if d.topic != "precursors"]
    del kb.topics["precursors"]
    crash_on(monkeypatch, kb_io, "atomic_write_json")
    with pytest.raises(Crash):
        kb_io.save_kb(kb, kb_dir)
    monkeypatch.undo()
    assert "tiny-003" not in load_kb(kb_dir).by_id()
    assert "precursors" in load_kb(kb_dir).topics

    kb_io.save_kb(kb, kb_dir)
    assert "precursors" not in load_kb(kb_dir).topics


def test_a_pending_row_followed_by_later_edits_is_judged_by_what_came_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The KB now shows the later edit; the next row's `before` shows what the crashed one left."""
    kb, db = write_tiny_kb(tmp_path / "kb"), tmp_path / "s.sqlite3"
    store = Store(db)
    crash_on(monkeypatch, AuditJournal, "commit")
    with pytest.raises(Crash):
        edit.update_document(kb, "tiny-001", {"text": "첫 수정"}, journal=journal(store, kb))
    monkeypatch.undo()
    crash_on(monkeypatch, edit, "save_kb")
    with pytest.raises(Crash):
        edit.update_document(kb, "tiny-002", {"text": "쓰이지 않은 수정"}, journal=journal(store, kb))
    monkeypatch.undo()
    # A process that did not repair (e.g. the KB did not load then) edits both documents again.
    edit.update_document(kb, "tiny-001", {"text": "둘째 수정"}, journal=journal(store, kb))
    edit.update_document(kb, "tiny-002", {"text": "다른 수정"}, journal=journal(store, kb))

    restart(kb, db)
    assert [(r["doc_id"], r["state"]) for r in rows(store)] == [
        ("tiny-001", "done"), ("tiny-002", "aborted"), ("tiny-001", "done"), ("tiny-002", "done")
    ]


def test_a_write_that_fails_is_settled_at_once_and_answered_as_a_server_fault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kb, db = write_tiny_kb(tmp_path / "kb"), tmp_path / "s.sqlite3"
    client = restart(kb, db)

    def disk_full(*_: Any, **__: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("aldlab.kb.edit.save_kb", disk_full)
    r = client.put("/api/admin/documents/tiny-001?reload=false", json={"text": "못 쓴 수정"},
                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert [r["state"] for r in rows(Store(db))] == ["aborted"]


def test_a_kb_that_does_not_load_is_a_503_not_a_400(tmp_path: Path) -> None:
    kb, db = write_tiny_kb(tmp_path / "kb"), tmp_path / "s.sqlite3"
    client = restart(kb, db)
    (kb / "documents" / "basics.jsonl").write_text('{"id": "broken"\n', encoding="utf-8")
    r = client.put("/api/admin/documents/tiny-001?reload=false", json={"text": "수정"},
                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "kb_unavailable", r.text
    assert str(tmp_path) not in r.text
    assert rows(Store(db)) == []


def test_sigkill_between_the_write_and_the_done_mark(tmp_path: Path) -> None:
    """A real kill -9 of a process in the middle of an admin edit; its temp file stays behind."""
    kb, db = write_tiny_kb(tmp_path / "kb"), tmp_path / "s.sqlite3"
    Store(db)
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from aldlab.kb import edit
        from aldlab.serve.kb_admin import AuditJournal
        from aldlab.store import Store

        kb = Path({str(kb)!r})
        (kb / "documents" / ".basics.jsonl.x1y2.tmp").write_text("half", encoding="utf-8")
        AuditJournal.commit = lambda self, entry: os.kill(os.getpid(), signal.SIGKILL)
        edit.update_document(kb, "tiny-003", {{"text": "kill 직전의 수정"}},
                             journal=AuditJournal(Store({str(db)!r}), "kim", "cli", kb))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert [r["state"] for r in rows(Store(db))] == ["pending"]

    restart(kb, db)
    assert [r["state"] for r in rows(Store(db))] == ["done"]
    assert load_kb(kb).by_id()["tiny-003"].text == "kill 직전의 수정"
    assert not list(kb.rglob("*.tmp"))
