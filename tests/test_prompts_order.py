"""The RAG prompt lists retrieved passages with the most relevant one last, next to the question."""

from __future__ import annotations

from types import SimpleNamespace

from aldlab.prompts import build_messages, format_context


def _passage(i: int) -> SimpleNamespace:
    return SimpleNamespace(id=f"doc-{i}", title=f"제목 {i}", text=f"본문 {i}")


def test_most_relevant_passage_is_nearest_the_question() -> None:
    ranked = [_passage(1), _passage(2), _passage(3)]  # retrieval order: doc-1 is the best match
    user = build_messages("질문입니다?", ranked)[-1]["content"]
    assert user.index("[doc-3]") < user.index("[doc-2]") < user.index("[doc-1]") < user.index("질문: 질문입니다?")
    assert [p.id for p in ranked] == ["doc-1", "doc-2", "doc-3"]  # the caller's list is not reordered


def test_empty_context_is_named() -> None:
    assert format_context([]) == "(참고 문서 없음)"
