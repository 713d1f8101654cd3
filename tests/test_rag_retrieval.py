"""Fusion, MMR, duplicate removal, synonym expansion and keyword filtering of HybridRetriever."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rag_testkit import SYNONYMS, install_fake_embedder, tiny_kb

from aldlab.errors import UserError
from aldlab.rag.config import RagConfig
from aldlab.rag.retriever import HybridRetriever, SynonymExpander, coverage_terms, mmr_select, rrf_fuse
from aldlab.rag.tokenize import ascii_terms, get_tokenizer


@pytest.fixture()
def retriever(tmp_path: Path) -> HybridRetriever:
    install_fake_embedder()
    return HybridRetriever.from_kb(tiny_kb(), RagConfig(dense_model="fake", index_dir=tmp_path), show_progress=False)


def test_rrf_sums_weighted_reciprocal_ranks() -> None:
    fused = rrf_fuse([[1, 2, 3], [3, 1]], [0.25, 0.75], k=10)
    assert fused[1] == pytest.approx(0.25 / 11 + 0.75 / 12)
    assert fused[3] == pytest.approx(0.25 / 13 + 0.75 / 11)
    assert fused[2] == pytest.approx(0.25 / 12)
    # the dense-heavy weight lets document 3 (dense rank 1) win over BM25's first
    assert max(fused, key=fused.get) == 3
    # a zero weight removes that ranking entirely
    assert set(rrf_fuse([[1], [2]], [1.0, 0.0])) == {1}


def test_mmr_subtracts_redundancy() -> None:
    # candidates 0 and 1 are near-identical; 2 is different and slightly less relevant
    sim = np.array([[1.0, 0.99, 0.1], [0.99, 1.0, 0.1], [0.1, 0.1, 1.0]])
    assert mmr_select([10, 11, 12], [1.0, 0.95, 0.9], sim, top_k=2, lam=0.5) == [10, 12]
    # lambda = 1 is pure relevance order
    assert mmr_select([10, 11, 12], [1.0, 0.95, 0.9], sim, top_k=2, lam=1.0) == [10, 11]


def test_exact_duplicates_are_removed(retriever: HybridRetriever) -> None:
    ids = [p.id for p in retriever.retrieve("Purge 시간이 짧으면 파티클", top_k=5)]
    assert ids[0] in {"tiny-001", "tiny-008"}
    assert not {"tiny-001", "tiny-008"} <= set(ids)


def test_passages_carry_ids_titles_and_raw_scores(retriever: HybridRetriever) -> None:
    passages = retriever.retrieve("MFC Zero drift 점검", top_k=2)
    top = passages[0]
    assert top.id == "tiny-004" and top.title == "MFC Zero drift"
    assert set(top.scores) >= {"rrf", "bm25", "dense"}
    assert top.scores["bm25"] > 0 and -1.0 <= top.scores["dense"] <= 1.0
    assert top.score == pytest.approx(top.scores["rrf"])


def test_korean_particles_and_domain_terms_tokenize() -> None:
    tokenizer = get_tokenizer(["로드락", "챔버 벽"])
    assert "로드락" in tokenizer.tokenize("로드락이 벤트가 안 돼요")
    assert "챔버_벽" in tokenizer.tokenize("챔버 벽 온도")
    # Latin terms: case-folded and kept whole, whatever the user's casing
    assert ascii_terms("vg12와 Al2O3, Self-limiting") == ["vg12", "al2o3", "self-limiting", "self", "limiting"]


def test_synonym_expansion_finds_other_spellings() -> None:
    expander = SynonymExpander(SYNONYMS)
    assert expander.expansions("퍼지 시간") == ["Purge"]
    assert set(expander.expansions("전구체 온도")) == {"Precursor", "프리커서"}
    # Latin synonyms only match whole words: "Argon" is not "Ar", "MFCs" is not "MFC"
    assert expander.expansions("Argon 순도") == []
    assert "아르곤" in expander.expansions("Ar 순도")
    assert expander.expansions("날씨") == []


def test_synonym_expansion_lets_bm25_match_the_kb_spelling(tmp_path: Path) -> None:
    config = RagConfig(dense_model="none", index_dir=tmp_path)
    retriever = HybridRetriever.from_kb(tiny_kb(), config, show_progress=False)
    result = retriever.search("퍼지가 부족하면?", top_k=1)  # the KB writes "Purge"
    assert result.expanded_terms == ["Purge"]
    assert result.passages[0].id in {"tiny-001", "tiny-008"}
    assert result.features.coverage > 0  # 퍼지 counts as a KB concept
    config.synonym_weight = 0.0
    assert retriever.search("퍼지가 부족하면?", top_k=1).passages == []  # nothing matches without expansion


def test_kb_spelling_rewrites_glossary_terms_to_the_kbs_own_spelling(retriever: HybridRetriever) -> None:
    # the tiny KB writes "Purge" and "Precursor"; users write 퍼지 and 전구체
    assert retriever.kb_spelling("퍼지가 부족하면?") == "Purge가 부족하면?"
    assert retriever.kb_spelling("전구체 온도") == "Precursor 온도"
    assert retriever.kb_spelling("날씨 어때") == "날씨 어때"  # nothing to rewrite: the query itself


def test_dense_query_is_the_mean_of_own_and_kb_spelling(retriever: HybridRetriever) -> None:
    embed = retriever.embedder.encode_queries
    own, kb = embed(["퍼지가 부족하면?"])[0], embed(["Purge가 부족하면?"])[0]
    mean = (own + kb) / np.linalg.norm(own + kb)
    assert np.allclose(retriever.query_vector("퍼지가 부족하면?"), mean, atol=1e-6)
    assert np.allclose(retriever.query_vector("Purge가 부족하면?"), kb, atol=1e-6)


def test_filter_keyword_restricts_and_rejects_unknown(retriever: HybridRetriever) -> None:
    ids = [p.id for p in retriever.retrieve("온도와 압력", top_k=3, filter_keyword="VG12")]
    assert ids == ["tiny-005"]
    # synonyms of the keyword count too
    assert {p.id for p in retriever.retrieve("공급", top_k=3, filter_keyword="전구체")} == {"tiny-003"}
    with pytest.raises(UserError, match="없는키워드"):
        retriever.retrieve("온도", filter_keyword="없는키워드")


def test_hybrid_weight_moves_between_bm25_and_dense(retriever: HybridRetriever) -> None:
    retriever.config.rrf_weight = 0.0
    bm25_only = retriever.search("TMA Canister 가열", top_k=3)
    assert bm25_only.passages[0].id == "tiny-003"
    assert all(p.scores["bm25"] > 0 for p in bm25_only.passages)  # dense-only hits are excluded
    retriever.config.rrf_weight = 1.0
    dense_only = retriever.search("TMA Canister 가열", top_k=3)
    assert len(dense_only.passages) == 3 and dense_only.passages[0].id == "tiny-003"


def test_reranker_hook_reorders(tmp_path: Path) -> None:
    install_fake_embedder()

    def prefer_vg12(query: str, texts: list[str]) -> list[float]:
        return [10.0 if "VG12" in t else 0.0 for t in texts]

    retriever = HybridRetriever.from_kb(
        tiny_kb(), RagConfig(dense_model="fake", index_dir=tmp_path), show_progress=False, reranker=prefer_vg12
    )
    passages = retriever.retrieve("챔버 압력 게이지", top_k=2)
    assert passages[0].id == "tiny-005" and passages[0].scores["rerank"] == 10.0


def test_absolute_features_separate_off_topic(retriever: HybridRetriever) -> None:
    on = retriever.search("로드락 Vent 속도").features
    off = retriever.search("오늘 점심 메뉴 추천").features
    assert on.coverage > off.coverage and on.bm25_top > off.bm25_top
    assert off.coverage == 0.0 and off.bm25_top == 0.0


def test_numbers_count_as_their_unit_or_not_at_all_in_coverage(retriever: HybridRetriever) -> None:
    assert coverage_terms(["500sccm", "480", "1.5", "10^-3", "vg12", "h2o", "로드락"]) == {"sccm", "vg12", "h2o", "로드락"}
    plain = retriever.search("로드락 Vent 속도").features
    with_values = retriever.search("로드락 Vent 속도 480 490 1.5").features
    assert with_values.coverage == plain.coverage  # the values the user read are not topics the KB lacks
