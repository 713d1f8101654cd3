"""The admin tab's "지금 개선 / Improve now" (issue 23): offered only when enough approved,
not-yet-trained feedback waits; starts one run at a time; its status is polled.

The runner is a stand-in (`GatedRunner`) that never trains; `run_improve_cli`'s reading of
an outcome is checked against a real registry, and the child `aldlab improve` once, where
improve's own lock refuses it before any training.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aldlab.serve.app import create_app
from aldlab.serve.fake import FakeAssistant
from aldlab.serve.improve_runs import (
    ImproveRequest,
    ImproveResult,
    improve_command_line,
    result_of_run,
    run_improve_cli,
)
from aldlab.serve.settings import ServeSettings
from aldlab.store import Store
from aldlab.store.registry import ModelRegistry
from serve_kit import assistant, kb_dir, store  # noqa: F401  (fixtures)

TOKEN = "s3cret-token-for-improve-tests"
ADMIN = {"Authorization": f"Bearer {TOKEN}", "X-Aldlab-Actor": "kim"}


class GatedRunner:
    """Stands in for `aldlab improve`: records the request, "runs" until `release()`."""

    def __init__(self, result: ImproveResult) -> None:
        self.result = result
        self.requests: list[ImproveRequest] = []
        self.gate = threading.Event()

    def __call__(self, request: ImproveRequest) -> ImproveResult:
        self.requests.append(request)
        assert self.gate.wait(10), "the test never released the run"
        return self.result


@pytest.fixture()
def runner() -> GatedRunner:
    return GatedRunner(ImproveResult("promoted", "v0002", log="/tmp/improve.log"))


@pytest.fixture()
def client(assistant: FakeAssistant, store: Store, kb_dir: Path, runner: GatedRunner) -> Iterator[TestClient]:
    settings = ServeSettings(kb=str(kb_dir), admin_token=TOKEN, improve_min_items=2, improve_preset="cpu-demo")
    app = create_app(assistant, store, settings, improve_runner=runner)
    with TestClient(app, raise_server_exceptions=False, base_url="http://127.0.0.1") as test_client:
        yield test_client
    runner.gate.set()


def approve(store: Store, n: int, *, model_version: str = "v0001") -> list[int]:
    """`n` answered, rated and approved feedback items; their ids."""
    ids = []
    for i in range(n):
        answer_id = store.log_answer(question=f"질문 {i}", answer="답", model="ald-ft", model_version=model_version)
        feedback_id = store.add_feedback(answer_id, "dislike", correction=f"정정 {i}")
        store.review_feedback(feedback_id, "approved", "kim", revision=1)
        ids.append(feedback_id)
    return ids


def fake_adapter(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "adapter_model.safetensors").write_bytes(b"not really weights")
    return root


def promote_trained_on(feedback_ids: list[int], tmp_path: Path) -> str:
    """A promoted model in this test's registry that was trained on `feedback_ids`."""
    registry = ModelRegistry()
    record = registry.register(fake_adapter(tmp_path / "adapter"), base_model="tiny", created_by="test",
                               feedback_ids=feedback_ids)
    registry.promote(record.id, "test")
    return record.id


def test_below_the_threshold_the_button_is_not_offered_and_start_is_409(
    client: TestClient, store: Store, runner: GatedRunner
) -> None:
    approve(store, 1)
    status = client.get("/api/admin/improve", headers=ADMIN).json()
    assert (status["waiting"], status["threshold"], status["ready"]) == (1, 2, False)
    assert status["run"]["state"] == "idle"
    r = client.post("/api/admin/improve", headers=ADMIN)
    assert r.status_code == 409
    error = r.json()["error"]
    assert error["code"] == "not_enough_feedback"
    assert "1개뿐" in error["message_ko"] and "need 2" in error["message_en"]
    assert runner.requests == []


def test_items_the_promoted_model_was_trained_on_do_not_count(client: TestClient, store: Store, tmp_path: Path) -> None:
    used = approve(store, 2)
    promoted = promote_trained_on(used, tmp_path)
    status = client.get("/api/admin/improve", headers=ADMIN).json()
    assert (status["waiting"], status["ready"], status["promoted"]) == (0, False, promoted)
    approve(store, 2)
    assert client.get("/api/admin/improve", headers=ADMIN).json()["waiting"] == 2


def test_start_runs_the_job_once_and_reports_how_it_ended(
    client: TestClient, store: Store, kb_dir: Path, runner: GatedRunner
) -> None:
    approve(store, 2)
    assert client.get("/api/admin/improve", headers=ADMIN).json()["ready"] is True
    started = client.post("/api/admin/improve", headers=ADMIN)
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["run"]["state"] == "running" and body["run"]["started_by"] == "kim" and body["ready"] is False
    # A second click while it runs: refused in both languages, nothing started twice.
    again = client.post("/api/admin/improve", headers=ADMIN)
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "improve_running"
    assert "이미 실행 중" in error["message_ko"] and "already running" in error["message_en"]
    assert len(runner.requests) == 1
    request = runner.requests[0]
    assert (request.db, request.min_items, request.preset, request.kb) == (store.path, 2, "cpu-demo", str(kb_dir))
    runner.gate.set()
    client.app.state.improve.wait(5)
    run = client.get("/api/admin/improve", headers=ADMIN).json()["run"]
    assert (run["state"], run["model_id"]) == ("promoted", "v0002")
    assert run["finished_at"] >= run["started_at"]


def test_a_crashing_runner_is_a_failed_status(assistant: FakeAssistant, store: Store, kb_dir: Path) -> None:
    def crash(request: ImproveRequest) -> ImproveResult:
        raise RuntimeError("디스크 가득 참")

    settings = ServeSettings(kb=str(kb_dir), admin_token=TOKEN, improve_min_items=1)
    client = TestClient(create_app(assistant, store, settings, improve_runner=crash), base_url="http://127.0.0.1")
    approve(store, 1)
    assert client.post("/api/admin/improve", headers=ADMIN).status_code == 202
    client.app.state.improve.wait(5)
    run = client.get("/api/admin/improve", headers=ADMIN).json()["run"]
    assert run["state"] == "failed" and "디스크 가득 참" in run["reasons"][0]


@pytest.mark.parametrize("method", ["get", "post"])
def test_improve_is_admin_only(client: TestClient, store: Store, runner: GatedRunner, method: str) -> None:
    approve(store, 3)
    r = getattr(client, method)("/api/admin/improve", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert runner.requests == []


def test_the_review_list_says_which_model_version_answered(client: TestClient, store: Store) -> None:
    approve(store, 1, model_version="v0007")
    item = client.get("/api/admin/feedback?status=approved", headers=ADMIN).json()["items"][0]
    assert item["model_version"] == "v0007"


# --------------------------------------------------------------------------- the real runner


def request_for(store: Store, kb_dir: Path) -> ImproveRequest:
    return ImproveRequest(db=store.path, min_items=3, preset="cpu-demo", kb=str(kb_dir), actor="kim")


def test_the_command_line_is_improve_with_the_servers_db_kb_preset_and_threshold(store: Store, kb_dir: Path) -> None:
    command = improve_command_line(request_for(store, kb_dir))
    assert command[1:4] == ["-m", "aldlab.cli", "improve"]
    assert command[4:] == ["--db", str(store.path), "--min-new-feedback", "3", "--preset", "cpu-demo", "--kb", str(kb_dir)]


def test_outcome_is_read_from_the_record_the_run_registered(tmp_path: Path) -> None:
    registry = ModelRegistry()
    log = tmp_path / "improve.log"
    log.write_text("", encoding="utf-8")
    first = registry.register(fake_adapter(tmp_path / "a1"), base_model="tiny", created_by="test")
    promoted = result_of_run(0, "", log, registry, before=set())
    assert (promoted.state, promoted.model_id) == ("kept", first.id)  # registered, not promoted
    registry.promote(first.id, "test")
    assert result_of_run(0, "", log, registry, before=set()).state == "promoted"
    second = registry.register(fake_adapter(tmp_path / "a2"), base_model="tiny", created_by="test")
    registry.set_status(second.id, "rejected", note="holdout: 하락 -0.08 / dropped; corrections: 개선 없음 / no gain")
    kept = result_of_run(0, "", log, registry, before={first.id})
    assert (kept.state, kept.model_id) == ("kept", second.id)
    assert kept.reasons == ["holdout: 하락 -0.08 / dropped", "corrections: 개선 없음 / no gain"]
    unregistered = result_of_run(0, "표\n  - 후보 어댑터를 불러올 수 없습니다 / does not load\n", log, registry,
                                 before={first.id, second.id})
    assert unregistered.state == "kept" and unregistered.reasons == ["후보 어댑터를 불러올 수 없습니다 / does not load"]


def test_a_second_run_is_refused_by_improves_own_lock(store: Store, kb_dir: Path) -> None:
    """The child `aldlab improve` meets a live lock (a CLI run): it stops before training."""
    lock = ModelRegistry().root / "improve.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(f"{os.getpid()}\n", encoding="utf-8")  # this process is alive: the lock holds
    result = run_improve_cli(request_for(store, kb_dir))
    assert result.state == "failed", result
    assert "다른 aldlab improve 가 실행 중입니다" in result.reasons[0] and f"PID {os.getpid()}" in result.reasons[0]
    assert any("Another aldlab improve is running" in line for line in result.reasons)
    assert result.log is not None and Path(result.log).is_file()


def test_the_last_run_survives_a_restart_and_a_cut_run_says_so(tmp_path: Path) -> None:
    """The status is kept on disk: a finished run shows after a restart; a run the server was
    still running when it stopped shows as failed with the reason, never as running forever."""
    from aldlab.serve.improve_runs import INTERRUPTED, ImproveRequest, ImproveResult, ImproveRuns

    state = tmp_path / "serve" / "improve-status.json"
    runs = ImproveRuns(lambda request: ImproveResult("promoted", model_id="v0002"), state_file=state)
    runs.start(ImproveRequest(db=tmp_path / "a.db", min_items=1, preset=None, kb=None, actor="kim"))
    runs.wait(10)
    again = ImproveRuns(state_file=state).status()
    assert again.state == "promoted" and again.model_id == "v0002" and again.started_by == "kim"

    gate = threading.Event()
    stuck = ImproveRuns(lambda request: (gate.wait(10), ImproveResult("kept"))[1], state_file=state)
    stuck.start(ImproveRequest(db=tmp_path / "a.db", min_items=1, preset=None, kb=None, actor="lee"))
    after_crash = ImproveRuns(state_file=state).status()
    assert after_crash.state == "failed" and after_crash.reasons == [INTERRUPTED] and after_crash.started_by == "lee"
    gate.set()
    stuck.wait(10)
    state.write_text("{not json", encoding="utf-8")
    assert ImproveRuns(state_file=state).status().state == "idle"
