"""The question-to-document translation model (rag/translation.py) and its cache next to the index."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from rag_testkit import install_fake_embedder, tiny_kb

from aldlab.rag.config import RagConfig
from aldlab.rag.retriever import HybridRetriever
from aldlab.rag.translation import DIGITS, VERSION, TranslationModel, cue_terms

DOCS = [
    ["purge", "시간", "짧", "파티클", "두께", "증가"],
    ["purge", "시간", "길", "throughput", "손해"],
    ["mfc", "유량", "제어", "sccm"],
]


def test_questions_teach_words_the_documents_never_use() -> None:
    # users say "줄이" (cut down) where the KB writes "짧" (short)
    pairs = [({"퍼지", "줄이"}, 0), ({"줄이", "두께"}, 0), ({"퍼지", "늘리"}, 1), ({"유량", "헌팅"}, 2)]
    model = TranslationModel.fit(pairs, DOCS)
    scores = model.scores({"줄이", "purge"}, DOCS)
    assert int(np.argmax(scores)) == 0
    # an association learned on one document carries to others sharing the term
    other = [["짧", "펄스"], ["길", "펄스"]]
    assert model.scores({"줄이"}, other)[0] > model.scores({"줄이"}, other)[1]


def test_without_questions_it_is_a_smoothed_query_likelihood() -> None:
    model = TranslationModel.fit([], DOCS)
    scores = model.scores({"mfc", "유량"}, DOCS)
    assert int(np.argmax(scores)) == 2
    assert np.isfinite(model.scores({"없는말"}, DOCS)).all()
    assert model.scores(set(), DOCS).tolist() == [0.0, 0.0, 0.0]


def test_json_round_trip_and_a_stale_version_is_refitted() -> None:
    model = TranslationModel.fit([({"퍼지", "줄이"}, 0)], DOCS)
    data = json.loads(json.dumps(model.to_json()))
    again = TranslationModel.from_json(data)
    assert again is not None
    assert again.table == model.table, "the fitted table is the stored one: a cold and a warm index rank alike"
    assert again.scores({"줄이"}, DOCS).tolist() == model.scores({"줄이"}, DOCS).tolist()
    assert TranslationModel.from_json({**data, "version": VERSION - 1}) is None


FIT_SCRIPT = """
import json
from aldlab.rag.translation import TranslationModel
docs = [["purge", "시간", "짧", "파티클", "두께", "증가", "purge"], ["purge", "시간", "길", "throughput"], ["mfc", "유량", "sccm"]]
words = ["퍼지", "줄이", "두께", "늘리", "시간", "?why", "파티클", "헌팅", "유량", "짧", "길"]
pairs = [(set(words[i:i + 5]), i % 3) for i in range(len(words))]
print(json.dumps(TranslationModel.fit(pairs, docs).to_json(), sort_keys=True))
"""


def test_fitting_is_the_same_in_every_process() -> None:
    """A set of strings iterates in an order that changes with each process's hash seed; the
    fitted table must not (before: float sums in that order, so every cold index build fitted
    a slightly different model), and what is fitted is what is stored."""
    import os
    import subprocess
    import sys

    runs = [
        subprocess.run([sys.executable, "-c", FIT_SCRIPT], env={**os.environ, "PYTHONHASHSEED": seed},
                       capture_output=True, text=True, check=True).stdout
        for seed in ("1", "2", "3")
    ]
    assert runs[0] == runs[1] == runs[2]
    pairs = [({"퍼지", "줄이", "두께"}, 0), ({"퍼지", "늘리"}, 1), ({"유량", "헌팅", "퍼지"}, 2), ({"시간", "줄이"}, 1)]
    model = TranslationModel.fit(pairs, DOCS)
    assert all(p == round(p, DIGITS) for row in model.table.values() for p in row.values())


def test_cue_terms_keep_the_question_words_bm25_drops() -> None:
    assert cue_terms("퍼지 왜 하는 거야?") == {"?why"}
    assert cue_terms("MFC가 뭐야? 어떻게 써?") == {"?what", "?how"}
    assert cue_terms("Purge 시간 범위") == set()


def _kb_with_questions():
    kb = tiny_kb()
    docs = [replace(d, questions=["이거 줄이면 어떻게 돼?"]) if i == 0 else d for i, d in enumerate(kb.documents)]
    return replace(kb, documents=docs)


def test_retriever_fits_once_caches_next_to_the_index_and_survives_a_damaged_cache(tmp_path: Path) -> None:
    install_fake_embedder()
    config = RagConfig(dense_model="fake", index_dir=tmp_path)
    kb = _kb_with_questions()
    first = HybridRetriever.from_kb(kb, config, show_progress=False)
    cache = first.index.cache_dir / "translation.json"  # type: ignore[operator]
    assert cache.exists(), "fitted when the retriever is built, not on the first question"
    second = HybridRetriever.from_kb(kb, config, show_progress=False)
    assert second.translation_model().table == first.translation_model().table
    cache.write_text("{not json", encoding="utf-8")
    third = HybridRetriever.from_kb(kb, config, show_progress=False)
    assert third.translation_model().table == first.translation_model().table
    assert json.loads(cache.read_text(encoding="utf-8"))["version"] == VERSION
    order, features = third.rank_sample("ALD window 온도")
    assert features.shape[0] == len(order) and np.isfinite(features).all()


def test_scorer_scores_every_document_as_the_per_term_formula() -> None:
    pairs = [({"퍼지", "줄이"}, 0), ({"줄이", "두께"}, 0), ({"퍼지", "늘리"}, 1), ({"유량", "헌팅"}, 2)]
    model = TranslationModel.fit(pairs, DOCS)
    query = {"줄이", "purge", "없는말"}
    expected = []
    for terms in DOCS:
        total = 0.0
        for w in sorted(query):
            p = sum(model.table.get(t, {w: float(t == w)}).get(w, 0.0) for t in terms) / len(terms)
            background = 0.2 * (model.collection.get(w, 0) + 0.5) / model.total
            total += np.log(p + background)
        expected.append(total / len(query))
    assert np.allclose(model.scorer(DOCS).scores(query), expected)


def test_translation_list_joins_the_fusion_only_with_example_questions(tmp_path: Path) -> None:
    install_fake_embedder()
    kb = _kb_with_questions()
    on = HybridRetriever.from_kb(kb, RagConfig(dense_model="fake", index_dir=tmp_path), show_progress=False)
    off = HybridRetriever.from_kb(
        kb, RagConfig(dense_model="fake", index_dir=tmp_path, translation_weight=0.0), show_progress=False
    )
    query = "이거 줄이면 어떻게 돼?"
    fused_on = on._fused_candidates(query, 3, None).fused
    fused_off = off._fused_candidates(query, 3, None).fused
    first = 0  # the document whose example question this is
    assert fused_on[first] > fused_off.get(first, 0.0)
    # a KB without example questions has no translation list: fusion as before
    plain = HybridRetriever.from_kb(tiny_kb(), RagConfig(dense_model="fake", index_dir=tmp_path), show_progress=False)
    bare = HybridRetriever.from_kb(
        tiny_kb(), RagConfig(dense_model="fake", index_dir=tmp_path, translation_weight=0.0), show_progress=False
    )
    assert plain._fused_candidates(query, 3, None).fused == bare._fused_candidates(query, 3, None).fused
