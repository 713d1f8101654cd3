"""Feedback intake, bad input handling (nothing partial written) and the CLI."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aldlab.data.build import build_dataset
from aldlab.data.commands import app
from aldlab.data.config import DataConfig
from aldlab.errors import UserError
from aldlab.kb.io import load_kb

from test_data_build import make_kb, question_of, read_rows

LEGACY = Path(__file__).resolve().parents[2] / "shared" / "legacy"


@pytest.fixture(scope="module")
def kb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_kb(tmp_path_factory.mktemp("kb") / "kb", n_synthetic=40)


def feedback_rows(kb_dir: Path) -> list[dict]:
    doc = load_kb(kb_dir).by_id()["t-mfc"]
    ctx = [{"id": doc.id, "title": doc.title, "text": doc.text}]
    rows = [
        {"question": "MFC 설정값 단위가 뭐예요?", "answer": "보통 sccm 단위로 설정합니다. [t-mfc]", "feedback": "like", "contexts": ctx},
        {"question": "로드락 벤트는 왜 천천히 해?", "answer": "그냥 그렇게 합니다.", "feedback": "dislike", "correction": "처음부터 빠르게 벤트하면 난류로 파티클이 웨이퍼에 떨어지기 때문입니다.", "contexts": []},
        {"question": "VG12 값이 이상해요", "answer": "틀린 답변 문장입니다 XYZ", "feedback": "dislike", "comment": "별로", "contexts": []},
        {"question": "", "answer": "빈 질문", "feedback": "like"},
    ]
    return [{**row, "review": APPROVED} for row in rows]  # issue 21: only reviewed rows are trained on


APPROVED = {"status": "approved", "reviewer": "kim", "reviewed_at": "2026-01-05T09:00:00+00:00", "note": None}


def build_with_feedback(kb_dir: Path, feedback: Path, out: Path):
    return build_dataset(DataConfig(kb=kb_dir, feedback=[feedback], output_dir=out, train_size=80, eval_size=20, seed=5, semantic_model="hash"), progress=False)


def test_feedback_liked_and_corrected_used_disliked_never(kb_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in feedback_rows(kb_dir)), encoding="utf-8")
    report = build_with_feedback(kb_dir, path, tmp_path / "out")
    rows = read_rows(report.train_path) + read_rows(report.eval_path)
    fb = [r for r in rows if r["kind"] == "feedback"]
    answers = {question_of(r): r["messages"][2]["content"] for r in fb}
    assert answers["MFC 설정값 단위가 뭐예요?"].startswith("보통 sccm")
    assert answers["로드락 벤트는 왜 천천히 해?"].startswith("처음부터 빠르게")
    everything = json.dumps(rows, ensure_ascii=False)
    assert "그냥 그렇게 합니다" not in everything and "틀린 답변 문장입니다" not in everything
    liked = next(r for r in fb if r["style"] == "rag")
    assert liked["context_ids"] == ["t-mfc"]
    stats = json.loads(report.stats_path.read_text(encoding="utf-8"))["feedback"]
    assert stats["liked_used"] == 1 and stats["disliked_with_correction_used"] == 1
    assert stats["excluded_dislike_without_correction"] == 1 and stats["excluded_invalid"] == 1


def test_legacy_feedback_file_dislike_without_correction_is_excluded(kb_dir: Path, tmp_path: Path) -> None:
    legacy = LEGACY / "feedback_data.json"
    if not legacy.exists():
        pytest.skip("legacy files not present")
    report = build_with_feedback(kb_dir, legacy, tmp_path / "out")
    stats = json.loads(report.stats_path.read_text(encoding="utf-8"))["feedback"]
    assert stats == {**stats, "rows": 1, "liked_used": 0, "excluded_dislike_without_correction": 1}


def test_sqlite_store_is_read_through_the_store_exporter(kb_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "feedback.db"
    db.write_bytes(b"")  # the fake exporter does not read it
    fake = types.ModuleType("aldlab.store.feedback")
    fake.export_feedback_rows = lambda path, **_: feedback_rows(kb_dir)[:2]  # type: ignore[attr-defined]
    fake.count_feedback = lambda path, status=None: 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "aldlab.store.feedback", fake)
    report = build_with_feedback(kb_dir, db, tmp_path / "out")
    stats = json.loads(report.stats_path.read_text(encoding="utf-8"))["feedback"]
    assert stats["liked_used"] == 1 and stats["disliked_with_correction_used"] == 1


def test_only_reviewed_feedback_reaches_train_or_eval_from_every_source(
    kb_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 21: a legacy liked row without a review went straight into train.jsonl and eval.jsonl."""
    from aldlab.data.commands import print_report
    from aldlab.serve.feedback_commands import feedback_app
    from aldlab.store import Store

    def liked(question: str, answer: str, review: dict | None = None) -> dict:
        row = {"question": question, "answer": answer, "feedback": "like", "contexts": []}
        return row if review is None else {**row, "review": review}

    def write(name: str, rows: list[dict]) -> Path:
        path = tmp_path / name
        if name.endswith(".json"):
            path.write_text(json.dumps({"feedbacks": rows}, ensure_ascii=False, indent=2), encoding="utf-8")
        else:
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return path

    pending = {"status": "pending", "reviewer": None, "reviewed_at": None, "note": None}
    unreviewed = {
        "legacy": liked("히터 온도는 몇 도로 둬?", "히터는 항상 500도로 고정하면 됩니다."),
        "export without review": liked("TMA 캐니스터는 어디에 보관해?", "TMA 캐니스터는 햇빛이 드는 창가에 두면 됩니다."),
        "export pending": liked("챔버 세정 주기는?", "챔버 세정은 1년에 한 번이면 충분합니다.", pending),
        "export rejected": liked("MFC 교정은 언제 해?", "MFC는 교정할 필요가 전혀 없습니다.", {**APPROVED, "status": "rejected"}),
        "store pending": liked("펌프 오일은 언제 갈아?", "펌프 오일은 갈지 않아도 영구히 씁니다."),
    }
    approved = {
        "legacy, imported and approved": liked("퍼지 가스로 무엇을 써?", "퍼지 가스로는 보통 고순도 N2나 Ar을 씁니다."),
        "export approved": liked("오존 발생기 점검은?", "오존 발생기는 출력 농도와 냉각수 흐름을 매주 확인합니다.", APPROVED),
        "store approved": liked("웨이퍼 이송 전 확인할 것은?", "이송 전에 로드락과 챔버의 압력 차이가 작은지 확인합니다."),
    }
    db = tmp_path / "serve.sqlite3"
    store = Store(db)
    for key in ("store pending", "store approved"):
        answer_id = store.log_answer(question=unreviewed.get(key, approved.get(key))["question"], model="ft", token="t",
                                     answer=unreviewed.get(key, approved.get(key))["answer"])
        item = store.add_feedback(answer_id, "like", token="t")
        if key == "store approved":
            store.review_feedback(item, "approved", "lee", revision=1)
    to_review = write("to_review.json", [approved["legacy, imported and approved"]])
    assert CliRunner().invoke(feedback_app, ["import", str(to_review), "--db", str(db)]).exit_code == 0
    queued = next(r for r in store.iter_feedback_rows(status="pending") if r["question"] == "퍼지 가스로 무엇을 써?")
    store.review_feedback(queued["feedback_id"], "approved", "park", revision=queued["revisions"])
    sources = [
        write("feedback_data.json", [unreviewed["legacy"]]),
        write("export.jsonl", [unreviewed["export without review"], unreviewed["export pending"],
                               unreviewed["export rejected"], approved["export approved"]]),
        db,
    ]
    report = build_dataset(DataConfig(kb=kb_dir, feedback=sources, output_dir=tmp_path / "out", train_size=80, eval_size=20,
                                      seed=5, semantic_model="hash"), progress=False)
    everything = json.dumps(read_rows(report.train_path) + read_rows(report.eval_path), ensure_ascii=False)
    for kind, row in unreviewed.items():
        assert row["answer"] not in everything, kind
    for kind, row in approved.items():
        assert row["answer"] in everything, kind
    stats = json.loads(report.stats_path.read_text(encoding="utf-8"))
    fb = stats["feedback"]
    assert (fb["liked_used"], fb["excluded_unreviewed"], fb["excluded_rejected"], fb["pending_in_stores"]) == (3, 3, 1, 1)
    assert sorted(p["reviewer"] for p in fb["provenance"]) == ["kim", "lee", "park"]
    print_report(stats, report.output_dir)
    printed = " ".join(capsys.readouterr().out.split())
    assert "3 feedback rows without an approved review were excluded" in printed and "aldlab feedback import" in printed
    assert "1 pending items in the feedback database were not used" in printed


def test_approved_feedback_that_contradicts_a_kb_definition_is_excluded_and_reported(
    kb_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 21: the legacy liked answer "…VG12는 게이트 밸브 개폐 신호다." even once a reviewer approved it."""
    from aldlab.data.commands import print_report
    from aldlab.serve.feedback_commands import feedback_app
    from aldlab.store import Store

    legacy = tmp_path / "feedback_data.json"
    rows = [
        {"question": "VG12가 뭐예요?", "answer": "…VG12는 게이트 밸브 개폐 신호다.", "feedback": "like", "contexts": []},
        {"question": "VG12는 어디 압력을 봐?", "answer": "VG12는 공정 챔버 압력을 재는 진공 게이지입니다.", "feedback": "like"},
    ]
    legacy.write_text(json.dumps({"feedbacks": rows}, ensure_ascii=False), encoding="utf-8")
    db = tmp_path / "serve.sqlite3"
    assert CliRunner().invoke(feedback_app, ["import", str(legacy), "--db", str(db)]).exit_code == 0
    store = Store(db)
    for item in list(store.iter_feedback_rows(status="pending")):
        store.review_feedback(item["feedback_id"], "approved", "kim", revision=item["revisions"])
    report = build_with_feedback(kb_dir, db, tmp_path / "out")
    everything = json.dumps(read_rows(report.train_path) + read_rows(report.eval_path), ensure_ascii=False)
    assert "게이트 밸브 개폐 신호" not in everything
    assert "VG12는 공정 챔버 압력을 재는 진공 게이지입니다." in everything  # agrees with the KB: used
    stats = json.loads(report.stats_path.read_text(encoding="utf-8"))
    fb = stats["feedback"]
    assert fb["liked_used"] == 1 and fb["excluded_kb_conflict"] == 1
    [conflict] = fb["kb_conflicts"]
    assert conflict["term"] == "VG12" and conflict["kb_document"] == "t-vg12" and conflict["question"] == "VG12가 뭐예요?"
    assert "valve" in conflict["feedback_says"] and "gauge" in conflict["kb_says"]
    print_report(stats, report.output_dir)
    printed = " ".join(capsys.readouterr().out.split())
    assert "1 approved feedback targets contradict a KB definition and were excluded" in printed
    assert "'VG12'" in printed and "t-vg12" in printed and "게이트 밸브 개폐 신호다" in printed


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("feedback.json", "{\"feedbacks\": [ {\"question\": ", "JSON"),
        ("feedback.csv", "question,answer\n", "지원하지 않는"),
        ("feedback.jsonl", "{\"question\": \"a\"}\nnot json\n", "JSON"),
    ],
)
def test_unreadable_feedback_stops_and_writes_nothing(kb_dir: Path, tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(UserError) as err:
        build_with_feedback(kb_dir, path, out)
    assert message in err.value.render() and str(path) in err.value.render()
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_empty_and_malformed_kb_stop_with_a_clear_message(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "documents").mkdir(parents=True)
    (empty / "kb.json").write_text("{\"name\": \"x\"}", encoding="utf-8")
    with pytest.raises(UserError, match="문서가 없습니다"):
        build_dataset(DataConfig(kb=empty, output_dir=tmp_path / "o1", semantic_model="hash"), progress=False)
    broken = tmp_path / "broken"
    (broken / "documents").mkdir(parents=True)
    (broken / "kb.json").write_text("{}", encoding="utf-8")
    (broken / "documents" / "a.jsonl").write_text("{\"id\": \"a\", \"text\": \"ALD는 증착법이다.\"}\n{\"id\": \"b\"}\n", encoding="utf-8")
    with pytest.raises(UserError) as err:
        build_dataset(DataConfig(kb=broken, output_dir=tmp_path / "o2", semantic_model="hash"), progress=False)
    assert err.value.line == 2 and "text" in err.value.render()
    with pytest.raises(UserError):
        build_dataset(DataConfig(kb=tmp_path / "missing", output_dir=tmp_path / "o3", semantic_model="hash"), progress=False)
    assert not any((tmp_path / n).exists() for n in ("o1", "o2", "o3"))


def test_failed_rebuild_keeps_the_previous_dataset(kb_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = build_dataset(DataConfig(kb=kb_dir, output_dir=out, train_size=40, eval_size=10, semantic_model="hash"), progress=False)
    before = first.train_path.read_bytes()
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2", encoding="utf-8")
    with pytest.raises(UserError):
        build_dataset(DataConfig(kb=kb_dir, feedback=[bad], output_dir=out, train_size=40, eval_size=10, semantic_model="hash"), progress=False)
    assert first.train_path.read_bytes() == before


def test_foreign_output_directory_is_not_overwritten(kb_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.docx").write_text("precious", encoding="utf-8")
    with pytest.raises(UserError, match="덮어쓰지"):
        build_dataset(DataConfig(kb=kb_dir, output_dir=out, train_size=40, eval_size=10, semantic_model="hash"), progress=False)
    assert (out / "thesis.docx").read_text(encoding="utf-8") == "precious"


def test_invalid_settings_are_user_errors() -> None:
    with pytest.raises(UserError, match="rag_ratio"):
        DataConfig(rag_ratio=1.5)
    with pytest.raises(UserError, match="teacher"):
        DataConfig(teacher_url="http://127.0.0.1:9/v1")


def test_cli_build_prints_a_summary_table(kb_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["build", "--kb", str(kb_dir), "--output", str(out), "--train-size", "40", "--eval-size", "10", "--seed", "3", "--rag-ratio", "0.25", "--semantic-model", "hash", "-q"])
    assert result.exit_code == 0, result.output
    assert "leakage: 0" in result.output and "train" in result.output
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert stats["config"]["rag_ratio"] == 0.25 and stats["train"]["rows"] == 40


def test_cli_reports_bad_input_as_user_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["build", "--kb", str(tmp_path / "nope"), "--output", str(tmp_path / "o")])
    assert isinstance(result.exception, UserError)


def test_legacy_kb_builds(tmp_path: Path) -> None:
    legacy = LEGACY / "docs_ald.json"
    if not legacy.exists():
        pytest.skip("legacy files not present")
    report = build_dataset(DataConfig(kb=legacy, output_dir=tmp_path / "legacy", train_size=300, eval_size=75, semantic_model="hash"), progress=False)
    stats = json.loads(report.stats_path.read_text(encoding="utf-8"))
    assert stats["train"]["rows"] == 300 and stats["eval"]["rows"] == 75
    assert sum(v for k, v in stats["leakage"].items() if not k.startswith("dropped")) == 0
    assert stats["particles"]["errors"] == 0
