"""The example questions' character n-gram list: scoring, typing variants, and when it joins the fusion."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from rag_testkit import install_fake_embedder, tiny_kb

from aldlab.rag.config import RagConfig
from aldlab.rag.question_ngrams import QuestionNgramIndex, char_ngrams
from aldlab.rag.retriever import HybridRetriever

QUESTIONS = [
    ["퍼지 시간 줄이면 어떻게 돼?", "퍼지가 뭐야?"],
    [],
    ["MFC 헌팅 원인이 뭐야?"],
    ["로드락 펌핑이 오래 걸려요"],
]


def _cosine(a: Counter[str], b: Counter[str], idf: dict[str, float], unseen: float) -> float:
    def vec(c: Counter[str]) -> dict[str, float]:
        v = {g: (1 + math.log(n)) * idf.get(g, unseen) for g, n in c.items()}
        norm = math.sqrt(sum(x * x for x in v.values()))
        return {g: x / norm for g, x in v.items()}

    va, vb = vec(a), vec(b)
    return sum(x * vb.get(g, 0.0) for g, x in va.items())


def test_each_document_scores_its_closest_question_by_tfidf_cosine() -> None:
    index = QuestionNgramIndex(QUESTIONS)
    flat = [q for qs in QUESTIONS for q in qs]
    df = Counter(g for q in flat for g in char_ngrams(q))
    idf = {g: math.log((len(flat) + 1) / (n + 1)) + 1 for g, n in df.items()}
    query = "퍼지시간 줄였더니 어떻게 됨"
    expected = [
        max((_cosine(char_ngrams(query), char_ngrams(q), idf, math.log(len(flat) + 1) + 1) for q in qs), default=0.0)
        for qs in QUESTIONS
    ]
    assert np.allclose(index.scores(query), expected)
    assert index.scores(query)[1] == 0.0  # a document without questions


def test_spacing_and_endings_still_meet_the_question() -> None:
    scores = QuestionNgramIndex(QUESTIONS).scores("로드락펌핑 왜이렇게 오래걸림")
    assert int(np.argmax(scores)) == 3
    assert not QuestionNgramIndex([[], []]).scores("아무거나").any()
    assert QuestionNgramIndex([[], []]).empty


def test_list_joins_the_fusion_only_with_example_questions(tmp_path: Path) -> None:
    install_fake_embedder()
    kb = tiny_kb()
    asked = replace(kb, documents=[replace(d, questions=["이거 줄이면 어떻게 돼?"]) if i == 0 else d
                                   for i, d in enumerate(kb.documents)])
    config = RagConfig(dense_model="fake", index_dir=tmp_path, translation_weight=0.0)
    on = HybridRetriever.from_kb(asked, config, show_progress=False)
    off = HybridRetriever.from_kb(asked, replace(config, question_ngram_weight=0.0), show_progress=False)
    query = "이거 줄이면 어케됨?"
    assert on._fused_candidates(query, 3, None).fused[0] > off._fused_candidates(query, 3, None).fused.get(0, 0.0)
    plain = HybridRetriever.from_kb(kb, config, show_progress=False)
    assert plain._question_ngrams is None  # no example questions: fusion as before
