"""Importers: legacy JSON shapes, synonyms, text/Markdown/PDF; never renumber or drop ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aldlab.errors import UserError
from aldlab.kb.edit import add_document, delete_document, import_into, import_preview, update_document
from aldlab.kb.loaders import load_any, load_legacy_json, split_passages
from aldlab.kb.io import load_kb
from aldlab.kb.schema import Document
from aldlab.kb.validate import validate_kb, validate_path


#: Legacy documents that call VG12/VG13 gate valves or valve signals (the KB: vacuum gauges).
#: 241 is about the gate valve too but never names VG12/VG13, so it defines nothing.
LEGACY_VG_AS_VALVE = {"221", "225", "233", "234", "235", "236", "237", "238", "239", "240", "242"}


def test_all_257_legacy_documents_import_with_ids_and_keywords(legacy_dir: Path, tmp_path: Path) -> None:
    raw = json.loads((legacy_dir / "docs_ald.json").read_text(encoding="utf-8"))["documents"]
    report = import_into(tmp_path / "kb", load_legacy_json(legacy_dir / "docs_ald.json"), allow_conflicts=True)
    assert len(report.added) == len(raw) == 257
    assert {c.incoming_id for c in report.conflicts} == LEGACY_VG_AS_VALVE  # reported even when added
    kb = load_kb(tmp_path / "kb")
    by_id = kb.by_id()
    for row in raw:
        doc = by_id[str(row["id"])]
        assert doc.keywords == row["keywords"]
        assert doc.text == row["text"].strip()
    assert validate_kb(kb).errors == []


def test_reimport_is_idempotent_and_keeps_ids(legacy_dir: Path, tmp_path: Path) -> None:
    legacy = load_legacy_json(legacy_dir / "docs_ald.json")
    import_into(tmp_path / "kb", legacy)
    again = import_into(tmp_path / "kb", legacy)
    assert again.added == [] and len(again.unchanged) == 257 - len(LEGACY_VG_AS_VALVE)
    assert {c.incoming_id for c in again.conflicts} == LEGACY_VG_AS_VALVE
    assert len(load_kb(tmp_path / "kb").documents) == 257 - len(LEGACY_VG_AS_VALVE)


def test_legacy_import_into_shipped_kb_copy_keeps_everything(legacy_dir: Path, tmp_path: Path) -> None:
    import shutil

    from aldlab.settings import shipped_kb_dir

    shutil.copytree(shipped_kb_dir(), tmp_path / "kb")
    before = {d.id for d in load_kb(tmp_path / "kb").documents}
    report = import_into(tmp_path / "kb", load_legacy_json(legacy_dir / "docs_ald.json"))
    after = load_kb(tmp_path / "kb")
    assert before <= {d.id for d in after.documents}
    assert len(report.added) + len(report.duplicates) + len(report.near_duplicates) + len(report.conflicts) == 257
    assert validate_kb(after).errors == []


def test_legacy_vg_valve_definitions_are_conflicts_not_documents(legacy_dir: Path, tmp_path: Path) -> None:
    """Issue 11: the legacy file defines VG12/VG13 as gauges (18-21) and as gate-valve signals."""
    import shutil

    from aldlab.settings import shipped_kb_dir

    shutil.copytree(shipped_kb_dir(), tmp_path / "kb")
    report = import_into(tmp_path / "kb", load_legacy_json(legacy_dir / "docs_ald.json"))
    assert {c.incoming_id for c in report.conflicts} == LEGACY_VG_AS_VALVE
    assert {c.term for c in report.conflicts} <= {"VG12", "VG13"}
    assert all(c.existing_id.startswith("vacuum-gauge-") for c in report.conflicts)
    kept = load_kb(tmp_path / "kb").by_id()
    assert not LEGACY_VG_AS_VALVE & set(kept)
    assert {"18", "19", "20", "21"} <= set(kept)  # the gauge definitions agree with the KB


def test_conflict_within_one_file_keeps_the_first_definition(tmp_path: Path) -> None:
    source = tmp_path / "docs.json"
    rows = [
        {"id": 1, "keywords": ["VG12"], "text": "VG12는 공정 챔버의 압력을 측정하는 진공 게이지이다."},
        {"id": 2, "keywords": ["VG12"], "text": "VG12는 게이트 밸브 개폐 상태를 나타내는 신호이며, 압력을 측정하는 센서가 아니다."},
        {"id": 3, "keywords": ["VG12"], "text": "VG12 값이 흔들리면 게이지 zero와 배선을 먼저 확인한다."},
    ]
    source.write_text(json.dumps({"documents": rows}, ensure_ascii=False), "utf-8")
    report = import_into(tmp_path / "kb", load_any(source))
    assert report.added == ["1", "3"]
    assert [(c.incoming_id, c.existing_id, c.term) for c in report.conflicts] == [("2", "1", "VG12")]


def test_feedback_file_is_not_a_kb(legacy_dir: Path) -> None:
    feedback = legacy_dir / "feedback_data.json"
    with pytest.raises(UserError) as info:
        load_any(feedback)
    message = info.value.render()
    assert "not a KB" in message and "KB 파일이 아닙니다" in message
    assert "feedback_data.json" in message and "'feedbacks'" in message and '"documents"' in message
    assert "빈 텍스트" not in message
    assert info.value.path == str(feedback)


def test_list_of_non_documents_is_not_a_kb(tmp_path: Path) -> None:
    other = tmp_path / "rows.json"
    other.write_text(json.dumps([{"question": "q", "answer": "a"}]), "utf-8")
    with pytest.raises(UserError, match="This is not a KB"):
        load_any(other)


def test_legacy_synonyms_merge(legacy_dir: Path, tmp_path: Path) -> None:
    import_into(tmp_path / "kb", load_legacy_json(legacy_dir / "docs_ald.json"))
    import_into(tmp_path / "kb", load_any(legacy_dir / "synonyms.json"))
    kb = load_kb(tmp_path / "kb")
    assert {"로드락", "loadlock"} <= {s.casefold() for s in kb.synonyms_of("로드락 챔버")}
    assert "Mass Flow Controller" in kb.synonyms_of("MFC")


def test_list_and_keyword_map_shapes(tmp_path: Path) -> None:
    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps([{"keyword": "Purge", "text": "퍼지는 잔류 가스를 제거하는 단계이다."}]), "utf-8")
    as_map = tmp_path / "map.json"
    as_map.write_text(json.dumps({"MFC": ["MFC는 유량을 제어한다.", "MFC 오차는 ±1%이다."]}), "utf-8")
    docs = load_any(as_list).documents + load_any(as_map).documents
    assert [d.keywords for d in docs] == [["Purge"], ["MFC"], ["MFC"]]
    assert docs[0].topic == "purge" and docs[1].topic == "mfc"
    # ids derive from content: the same text always gets the same id
    assert load_any(as_map).documents[0].id == docs[1].id


def test_duplicates_and_near_duplicates_are_reported_not_added(tmp_path: Path) -> None:
    base = tmp_path / "base.json"
    text = "ALD 공정은 self-limiting 표면 반응을 이용해 원자층 단위로 박막을 증착하는 기술이다."
    base.write_text(json.dumps({"documents": [{"id": 1, "keywords": ["ALD"], "text": text}]}), "utf-8")
    import_into(tmp_path / "kb", load_any(base))
    dup = tmp_path / "dup.json"
    dup.write_text(
        json.dumps(
            {
                "documents": [
                    {"id": 2, "keywords": ["ALD"], "text": text.replace(" ", "  ")},
                    {"id": 3, "keywords": ["ALD"], "text": text.replace("기술이다", "기술이다!")[:-1] + "입니다"},
                    {"id": 1, "keywords": ["ALD"], "text": "다른 내용의 문서이다. id만 같다."},
                ]
            }
        ),
        "utf-8",
    )
    report = import_into(tmp_path / "kb", load_any(dup))
    assert report.duplicates == [("2", "1")]
    assert [n[:2] for n in report.near_duplicates] == [("3", "1")]
    assert report.id_conflicts == ["1"]
    kb = load_kb(tmp_path / "kb")
    assert [d.id for d in kb.documents] == ["1"] and kb.documents[0].text == text


def test_dry_run_writes_nothing(legacy_dir: Path, tmp_path: Path) -> None:
    report = import_preview(tmp_path / "kb", load_legacy_json(legacy_dir / "docs_ald.json"))
    assert len(report.added) == 257 - len(report.conflicts) == 246
    assert not (tmp_path / "kb" / "kb.json").exists()


def test_markdown_and_text_split_into_passages(tmp_path: Path) -> None:
    md = tmp_path / "notes.md"
    long_para = " ".join(["Purge 시간이 짧으면 잔류 Precursor가 남아 CVD성 반응이 생긴다."] * 12)
    md.write_text(f"# 퍼지\n\n{long_para}\n\n# MFC\n\nMFC는 질량 유량을 제어한다.\n", "utf-8")
    kb = load_any(md)
    assert all(len(d.text) <= 400 for d in kb.documents)
    assert kb.documents[0].title == "퍼지" and kb.documents[-1].title == "MFC"
    assert len(kb.documents) >= 3
    assert split_passages("짧은 문단.") == ["짧은 문단."]


def test_pdf_import(tmp_path: Path) -> None:
    pdf = tmp_path / "manual.pdf"
    pdf.write_bytes(_tiny_pdf("ALD chamber purge time is 2 s for TMA. MFC accuracy is 1 percent of full scale."))
    kb = load_any(pdf)
    assert kb.documents and "purge" in kb.documents[0].text
    assert kb.documents[0].source == "manual.pdf#p1"


def _tiny_pdf(text: str) -> bytes:
    """A one-page PDF with Helvetica text, built by hand (no extra dependency)."""
    stream = f"BT /F1 10 Tf 20 100 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 200] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_bad_json_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "docs.json"
    bad.write_text('{\n  "documents": [\n    {"id": 1, "text": "a",}\n  ]\n}\n', "utf-8")
    with pytest.raises(UserError) as info:
        load_any(bad)
    assert info.value.path == str(bad) and info.value.line == 3


def test_validation_reports_file_and_line(tmp_path: Path) -> None:
    kb_dir = tmp_path / "kb"
    (kb_dir / "documents").mkdir(parents=True)
    (kb_dir / "kb.json").write_text(json.dumps({"topics": {"purge": "Purge"}, "keywords": ["Purge"]}), "utf-8")
    rows = [
        {"id": "a", "title": "t", "topic": "purge", "keywords": ["Purge"], "text": "x" * 80},
        {"id": "a", "title": "t", "topic": "purge", "keywords": ["Nope"], "text": ""},
    ]
    (kb_dir / "documents" / "purge.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", "utf-8")
    report = validate_path(kb_dir)
    where = {i.where for i in report.errors}
    assert where == {f"{kb_dir / 'documents' / 'purge.jsonl'}:2"}
    messages = " ".join(i.en for i in report.errors)
    assert "duplicate id 'a'" in messages and "empty text" in messages and "unknown keyword 'Nope'" in messages
    (kb_dir / "documents" / "purge.jsonl").write_text('{"id": "b", "text": \n', "utf-8")
    broken = validate_path(kb_dir)
    assert broken.errors[0].where.endswith("purge.jsonl:1")


def test_add_update_delete_are_atomic_and_checked(tmp_path: Path) -> None:
    import shutil

    from aldlab.settings import shipped_kb_dir

    shutil.copytree(shipped_kb_dir(), tmp_path / "kb")
    kb_dir = tmp_path / "kb"
    added = add_document(kb_dir, Document(id="", title="테스트", text="퍼지 테스트 문서 " * 6, keywords=["Purge"], topic="purge"))
    assert added.id.startswith("purge-") and added.id in load_kb(kb_dir).by_id()
    before, after = update_document(kb_dir, added.id, {"title": "바뀐 제목"})
    assert before.title == "테스트" and after.title == "바뀐 제목"
    with pytest.raises(UserError):
        update_document(kb_dir, added.id, {"keywords": ["없는키워드"]})
    with pytest.raises(UserError):
        add_document(kb_dir, Document(id=added.id, title="x", text="y" * 70, topic="purge"))
    removed = delete_document(kb_dir, added.id)
    assert removed.id == added.id and added.id not in load_kb(kb_dir).by_id()
    with pytest.raises(UserError):
        delete_document(kb_dir, "no-such-id")
    assert not list(kb_dir.rglob("*.tmp"))


def test_concurrent_adds_lose_nothing(tmp_path: Path) -> None:
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    from aldlab.settings import shipped_kb_dir

    shutil.copytree(shipped_kb_dir(), tmp_path / "kb")
    n_before = len(load_kb(tmp_path / "kb").documents)

    def add(i: int) -> str:
        doc = Document(id=f"purge-9{i:02d}", title=f"동시 {i}", text=f"동시 추가 문서 번호 {i} " * 5, topic="purge")
        return add_document(tmp_path / "kb", doc).id

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(add, range(16)))
    kb = load_kb(tmp_path / "kb")
    assert len(kb.documents) == n_before + 16 and set(ids) <= set(kb.by_id())


def test_cli_import_into_the_shipped_kb_needs_an_explicit_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 21: `kb import FILE` without --kb used to write into knowledge/ald."""
    import shutil

    from typer.testing import CliRunner

    from aldlab.files import sha256_tree
    from aldlab.kb import commands
    from aldlab.settings import shipped_kb_dir

    shipped = tmp_path / "shipped"
    shutil.copytree(shipped_kb_dir(), shipped)
    monkeypatch.setattr(commands, "shipped_kb_dir", lambda: shipped)
    source = tmp_path / "docs.json"
    text = "퍼지 가스 유량을 바꾼 뒤에는 첫 웨이퍼의 막 두께 균일도를 다시 확인한다."
    source.write_text(json.dumps({"documents": [{"id": "my-1", "keywords": ["Purge"], "text": text}]}, ensure_ascii=False), "utf-8")
    before = sha256_tree(shipped)
    runner = CliRunner()
    refused = runner.invoke(commands.app, ["import", str(source)])
    assert refused.exit_code != 0 and isinstance(refused.exception, UserError)
    message = refused.exception.render()
    assert "--kb" in message and "--into-shipped" in message and "내장 KB" in message and "shipped KB" in message
    assert sha256_tree(shipped) == before
    preview = runner.invoke(commands.app, ["import", str(source), "--dry-run"])
    assert preview.exit_code == 0, preview.output
    assert sha256_tree(shipped) == before
    mine = runner.invoke(commands.app, ["import", str(source), "--kb", str(tmp_path / "mine")])
    assert mine.exit_code == 0, mine.output
    assert "my-1" in load_kb(tmp_path / "mine").by_id() and sha256_tree(shipped) == before
    chosen = runner.invoke(commands.app, ["import", str(source), "--into-shipped"])
    assert chosen.exit_code == 0, chosen.output
    assert "my-1" in load_kb(shipped).by_id()
