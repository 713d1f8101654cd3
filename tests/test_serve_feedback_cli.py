"""`aldlab feedback list|approve|reject|export` on a real store (the command group alone)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from aldlab.serve.feedback_commands import feedback_app
from aldlab.store import Store

runner = CliRunner()


def seeded(tmp_path: Path) -> tuple[Path, list[int]]:
    store = Store(tmp_path / "serve.sqlite3")
    ids = []
    for q, correction in [("TMA란?", "TMA는 전구체입니다."), ("퍼지란?", "아무 말")]:
        aid = store.log_answer(question=q, answer="답", model="ft", context_ids=["tiny-003"], token="t",
                               history=[{"role": "user", "content": "앞 질문"}] if q == "퍼지란?" else [])
        ids.append(store.add_feedback(aid, "dislike", correction=correction, token="t"))
    return store.path, ids


def test_list_approve_reject_export(tmp_path: Path) -> None:
    db, (first, second) = seeded(tmp_path)
    result = runner.invoke(feedback_app, ["list", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "TMA란?" in result.output and "TMA는 전구체입니다." in result.output and "앞 질문" in result.output
    assert "2 of 2" in result.output
    result = runner.invoke(feedback_app, ["approve", str(first), "--revision", "1", "--reviewer", "kim", "--db", str(db)])
    assert result.exit_code == 0 and "approved" in result.output
    result = runner.invoke(feedback_app, ["reject", str(second), "--revision", "1", "--reviewer", "kim", "--note", "무의미",
                                         "--db", str(db)])
    assert result.exit_code == 0 and "rejected" in result.output
    out = tmp_path / "approved.jsonl"
    result = runner.invoke(feedback_app, ["export", str(out), "--db", str(db)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["question"] for r in rows] == ["TMA란?"] and rows[0]["review"]["reviewer"] == "kim"
    result = runner.invoke(feedback_app, ["list", "--status", "all", "--json", "--db", str(db)])
    assert [json.loads(line)["review"]["status"] for line in result.output.splitlines()] == ["approved", "rejected"]


def test_missing_db_and_reviewer_are_clean_errors(tmp_path: Path) -> None:
    result = runner.invoke(feedback_app, ["list", "--db", str(tmp_path / "none.sqlite3")])
    assert result.exit_code != 0 and "not found" in str(result.exception)
    db, (first, _) = seeded(tmp_path)
    result = runner.invoke(feedback_app, ["approve", str(first), "--revision", "1", "--db", str(db)])
    assert result.exit_code != 0  # --reviewer is required
    result = runner.invoke(feedback_app, ["approve", "999", "--revision", "1", "--reviewer", "kim", "--db", str(db)])
    assert result.exit_code != 0 and "999" in str(result.exception)


def test_a_decision_names_the_revision_listed(tmp_path: Path) -> None:
    """Issue 22: `approve ID` approved whatever text the item had by then."""
    db, (first, _) = seeded(tmp_path)
    listed = runner.invoke(feedback_app, ["list", "--db", str(db)]).output
    assert f"#{first} r1 [pending]" in listed
    store = Store(db)
    answer_id = next(store.iter_feedback_rows(status=None, feedback_id=first))["answer_id"]
    store.add_feedback(answer_id, "dislike", correction="TMA는 맨손으로 다뤄도 안전하다", token="t")
    result = runner.invoke(feedback_app, ["approve", str(first), "--revision", "1", "--reviewer", "kim", "--db", str(db)])
    assert result.exit_code != 0 and "it is now 2" in str(result.exception)
    assert store.count_feedback("approved") == 0
    result = runner.invoke(feedback_app, ["approve", str(first), "--reviewer", "kim", "--db", str(db)])
    assert result.exit_code != 0 and "--revision" in result.output  # a decision without it is refused
    result = runner.invoke(feedback_app, ["reject", str(first), "--revision", "2", "--reviewer", "kim", "--db", str(db)])
    assert result.exit_code == 0 and "rejected" in result.output
