"""`aldlab feedback list|approve|reject|export` on a real store (the command group alone)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


# ---------------------------------------------------------------- issue 21: feedback import

LEGACY_ROWS = [
    {"session_id": "1", "question": "VG12가 뭐야?", "answer": "…VG12는 공정 챔버 진공 게이지다.", "feedback": "like",
     "contexts": [{"text": "VG12는 메인 공정 챔버의 압력을 측정하는 진공 게이지다.", "score": 0.7}], "comment": None,
     "timestamp": "2025-12-03T15:41:55.485484"},
    {"session_id": "2", "question": "퍼지는 왜 해?", "answer": "몰라요", "feedback": "dislike",
     "correction": "잔류 전구체를 치워 CVD성 반응을 막기 위해서입니다.", "contexts": []},
]


def write_legacy(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps({"feedbacks": rows, "description": "legacy"}, ensure_ascii=False, indent=2), "utf-8")
    return path


def test_import_queues_legacy_rows_as_pending_once(tmp_path: Path) -> None:
    legacy = write_legacy(tmp_path / "feedback_data.json", LEGACY_ROWS)
    db = tmp_path / "new.sqlite3"  # created by the import
    result = runner.invoke(feedback_app, ["import", str(legacy), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "2 queued as pending, 0 already" in result.output
    store = Store(db)
    assert store.count_feedback("pending") == 2 and store.export_feedback_rows() == []  # nothing approved by importing
    listed = runner.invoke(feedback_app, ["list", "--db", str(db)]).output
    assert "VG12가 뭐야?" in listed and "잔류 전구체를 치워" in listed and "r1 [pending]" in listed
    assert "«VG12는 메인 공정 챔버의" in listed  # a legacy context has text, no id
    again = runner.invoke(feedback_app, ["import", str(legacy), "--db", str(db)])
    assert again.exit_code == 0 and "0 queued as pending, 2 already" in again.output
    assert store.count_feedback() == 2
    first = next(r for r in store.iter_feedback_rows(status="pending") if r["feedback"] == "like")
    assert first["contexts"] == [{"id": "", "title": "", "text": "VG12는 메인 공정 챔버의 압력을 측정하는 진공 게이지다."}]
    result = runner.invoke(feedback_app, ["approve", str(first["feedback_id"]), "--revision", "1", "--reviewer", "kim", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert runner.invoke(feedback_app, ["import", str(legacy), "--db", str(db)]).exit_code == 0
    assert [r["question"] for r in store.export_feedback_rows()] == ["VG12가 뭐야?"]  # the decision stands
    exported = tmp_path / "approved.jsonl"
    assert runner.invoke(feedback_app, ["export", str(exported), "--db", str(db)]).exit_code == 0
    back = runner.invoke(feedback_app, ["import", str(exported), "--db", str(db)])
    assert "0 queued as pending, 1 already" in back.output and store.count_feedback() == 2


def test_imported_items_cannot_be_changed_through_the_api(tmp_path: Path) -> None:
    from aldlab.store import FeedbackForbidden

    db = tmp_path / "a.sqlite3"
    runner.invoke(feedback_app, ["import", str(write_legacy(tmp_path / "f.json", LEGACY_ROWS[:1])), "--db", str(db)])
    store = Store(db)
    answer_id = next(store.iter_feedback_rows(status="pending"))["answer_id"]
    with pytest.raises(FeedbackForbidden):
        store.add_feedback(answer_id, "dislike", correction="VG12는 게이트 밸브 개폐 신호다.")


@pytest.mark.parametrize(
    ("name", "content", "line", "words"),
    [
        ("f.json", json.dumps({"feedbacks": [LEGACY_ROWS[0], {**LEGACY_ROWS[1], "question": " "}]}, ensure_ascii=False, indent=2),
         None, ("question", "question 이 비어")),
        ("f.jsonl", json.dumps(LEGACY_ROWS[0], ensure_ascii=False) + "\n\n" + json.dumps({**LEGACY_ROWS[1], "feedback": "meh"}) + "\n",
         3, ("'feedback'", "like/dislike")),
        ("f.jsonl", json.dumps(LEGACY_ROWS[0], ensure_ascii=False) + "\n{not json\n", 2, ("JSON",)),
        ("f.jsonl", json.dumps({**LEGACY_ROWS[0], "contexts": "VG12"}, ensure_ascii=False) + "\n", 1, ("'contexts'",)),
        ("f.csv", "question,answer\n", None, ("지원하지 않는", "Unsupported")),
    ],
)
def test_bad_import_names_file_and_line_and_queues_nothing(tmp_path: Path, name: str, content: str, line: int | None,
                                                           words: tuple[str, ...]) -> None:
    from aldlab.errors import UserError

    source = tmp_path / name
    source.write_text(content, "utf-8")
    if name == "f.json":  # the line where the second row's object opens (indent=2 puts it alone on a line)
        line = [i for i, text in enumerate(content.splitlines(), 1) if text == "    {"][1]
        assert line > 10
    db = tmp_path / "a.sqlite3"
    Store(db)
    result = runner.invoke(feedback_app, ["import", str(source), "--db", str(db)])
    assert result.exit_code != 0 and isinstance(result.exception, UserError)
    message = result.exception.render()
    where = f"{source}:{line}" if line else str(source)
    assert message.startswith(where + ": ") and all(w in message for w in words)
    ko, en = message.splitlines()[:2]
    assert any("\uac00" <= ch <= "\ud7a3" for ch in ko) and en.startswith(where)
    assert Store(db).count_feedback() == 0


def test_approving_a_correction_can_teach_retrieval_its_question(tmp_path: Path) -> None:
    """--teach-retrieval: the question joins the questions of the document the correction comes
    from (retrieval then finds that document for it); without a source document, nothing changes."""
    from aldlab.kb.io import load_kb
    from aldlab.serve.testing import write_tiny_kb

    kb_dir = write_tiny_kb(tmp_path / "kb")
    source = load_kb(kb_dir).documents[2]
    store = Store(tmp_path / "serve.sqlite3")
    aid = store.log_answer(question="가스 왜 빼는 거야?", answer="엉뚱한 답", model="ft", token="t")
    taught = store.add_feedback(aid, "dislike", correction=source.text, token="t")
    aid = store.log_answer(question="날씨는?", answer="답", model="ft", token="t")
    untaught = store.add_feedback(aid, "dislike", correction="전혀 다른 내용의 문장으로 KB 어디에도 없습니다.", token="t")
    args = ["--revision", "1", "--reviewer", "kim", "--db", str(store.path), "--kb", str(kb_dir), "--teach-retrieval"]
    result = runner.invoke(feedback_app, ["approve", str(taught), *args])
    assert result.exit_code == 0, result.output
    assert source.id in result.output and "가스 왜 빼는 거야?" in load_kb(kb_dir).by_id()[source.id].questions
    count = sum(len(d.questions) for d in load_kb(kb_dir).documents)
    again = runner.invoke(feedback_app, ["approve", str(untaught), *args])
    assert again.exit_code == 0 and "not taught" in again.output
    assert sum(len(d.questions) for d in load_kb(kb_dir).documents) == count


def test_teach_retrieval_on_feedback_without_a_correction_fails_before_approving(tmp_path: Path) -> None:
    """A 👍 has nothing to teach: the error comes first and the item stays pending."""
    from aldlab.serve.testing import write_tiny_kb

    kb_dir = write_tiny_kb(tmp_path / "kb")
    store = Store(tmp_path / "serve.sqlite3")
    aid = store.log_answer(question="퍼지 왜 해?", answer="좋은 답", model="ft", token="t")
    liked = store.add_feedback(aid, "like", token="t")
    args = ["--revision", "1", "--reviewer", "kim", "--db", str(store.path), "--kb", str(kb_dir), "--teach-retrieval"]
    result = runner.invoke(feedback_app, ["approve", str(liked), *args])
    assert result.exit_code != 0 and "not approved" in str(result.exception)
    assert store.count_feedback("pending") == 1 and store.count_feedback("approved") == 0
