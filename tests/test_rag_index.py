"""The index is cached on disk by KB content hash and rebuilt when the KB changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rag_testkit import install_fake_embedder, write_tiny_kb

from aldlab.rag.types import AskOptions
from aldlab.kb.io import load_kb
from aldlab.rag import index as index_module
from aldlab.rag.assistant import Assistant
from aldlab.rag.config import RagConfig
from aldlab.rag.retriever import HybridRetriever


@pytest.fixture()
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts real index builds (tokenize + embed every document)."""
    install_fake_embedder()
    counter: list[int] = []
    real = index_module.build_corpus_index

    def counting(documents, *args, **kwargs):  # noqa: ANN001, ANN202
        counter.append(len(documents))
        return real(documents, *args, **kwargs)

    monkeypatch.setattr(index_module, "build_corpus_index", counting)
    return counter


def test_index_is_built_once_then_loaded(tmp_path: Path, builds: list[int]) -> None:
    kb_dir = write_tiny_kb(tmp_path / "kb")
    config = RagConfig(dense_model="fake", index_dir=tmp_path / "index")
    first = HybridRetriever.from_kb(load_kb(kb_dir), config, kb_source=kb_dir, show_progress=False)
    second = HybridRetriever.from_kb(load_kb(kb_dir), config, kb_source=kb_dir, show_progress=False)
    assert builds == [8]
    assert first.index.cache_dir == second.index.cache_dir
    manifest = json.loads((first.index.cache_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["kb_hash"] == load_kb(kb_dir).content_hash() and manifest["documents"] == 8
    assert "kiwipiepy" in manifest["versions"]
    assert [p.id for p in first.retrieve("VG12", top_k=1)] == [p.id for p in second.retrieve("VG12", top_k=1)]


def test_editing_the_kb_rebuilds_and_prunes_the_stale_index(tmp_path: Path, builds: list[int]) -> None:
    kb_dir = write_tiny_kb(tmp_path / "kb")
    config = RagConfig(dense_model="fake", index_dir=tmp_path / "index")
    old = HybridRetriever.from_kb(load_kb(kb_dir), config, kb_source=kb_dir, show_progress=False)

    path = kb_dir / "documents" / "mfc.jsonl"
    row = json.loads(path.read_text(encoding="utf-8"))
    row["text"] = "MFC 교정에는 기준 유량계 sccm 비교가 필요하다. 볼트론 센서 점검도 한다."
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")

    new = HybridRetriever.from_kb(load_kb(kb_dir), config, kb_source=kb_dir, show_progress=False)
    assert builds == [8, 8]
    assert new.index.cache_dir != old.index.cache_dir
    assert not old.index.cache_dir.exists()  # the stale version of the same KB is deleted
    assert new.retrieve("볼트론", top_k=1)[0].id == "tiny-004"


def test_damaged_cache_is_rebuilt(tmp_path: Path, builds: list[int]) -> None:
    kb_dir = write_tiny_kb(tmp_path / "kb")
    config = RagConfig(dense_model="fake", index_dir=tmp_path / "index")
    first = HybridRetriever.from_kb(load_kb(kb_dir), config, show_progress=False)
    (first.index.cache_dir / "tokens.json").write_text("{broken", encoding="utf-8")
    HybridRetriever.from_kb(load_kb(kb_dir), config, show_progress=False)
    assert builds == [8, 8]


def test_assistant_reloads_when_kb_files_change(tmp_path: Path) -> None:
    install_fake_embedder()
    kb_dir = write_tiny_kb(tmp_path / "kb")
    config = RagConfig(dense_model="fake", index_dir=tmp_path / "index", refusal_threshold=0.0)
    assistant = Assistant.from_config(kb_dir, config, show_progress=False)
    assert assistant.reload_if_changed() is False  # nothing changed: no work

    path = kb_dir / "documents" / "loadlock.jsonl"
    row = json.loads(path.read_text(encoding="utf-8"))
    row["text"] += " 새로운 문장: 크세논 램프 점검."
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")

    assert assistant.reload_if_changed() is True
    assert assistant.answer("크세논 램프", AskOptions(context_only=True)).passages[0].id == "tiny-002"
