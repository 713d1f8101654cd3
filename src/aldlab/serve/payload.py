"""What an answer looks like to a client: `AnswerOut`, with its confidence in words.

`/api/ask` returns it and the OpenAI routes put it under `aldlab`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aldlab.rag.types import FALLBACK_NOTES, LATER_PART_NOTE, Answer
from aldlab.serve.schemas import AnswerOut, Bilingual, CitationOut, ConfidenceLabel, ContextOut
from aldlab.serve.settings import ServeSettings


@dataclass(frozen=True)
class LoggedRef:
    """A logged answer's id and the secret token only its asker receives."""

    answer_id: str
    token: str


def answer_payload(answer: Answer, ref: LoggedRef, settings: ServeSettings) -> AnswerOut:
    """The answer, its contexts and citations, and its confidence (label by `settings`' thresholds)."""
    label = confidence_label(answer, settings)
    by_id = {p.id: p for p in answer.passages}
    basis = {c.id: (c.how, round(float(c.support), 3)) for c in answer.citation_details}
    citations = []
    for cid in answer.citations:
        how, support = basis.get(cid, ("bracket", 0.0))
        citations.append(CitationOut(id=cid, title=by_id[cid].title if cid in by_id else "", how=how, support=support))
    return AnswerOut(
        answer_id=ref.answer_id,
        answer_token=ref.token,
        answer=answer.text,
        model=answer.model,
        contexts=[ContextOut.of(p) for p in answer.passages],
        citations=citations,
        confidence=round(float(answer.confidence), 4),
        confidence_label=label,
        confidence_explanation=explain_confidence(answer, label),
        refused=bool(answer.refused),
        used_retrieval=bool(answer.used_retrieval),
        latency_s=round(float(answer.latency_s), 3),
        fallback=answer.fallback,  # type: ignore[arg-type]
        fallback_note=Bilingual(ko=FALLBACK_NOTES[answer.fallback][0], en=FALLBACK_NOTES[answer.fallback][1])
        if answer.fallback else None,
        later_part=answer.later_part,
        later_part_note=Bilingual(ko=LATER_PART_NOTE[0], en=LATER_PART_NOTE[1]) if answer.later_part else None,
    )


def confidence_label(answer: Answer, settings: ServeSettings) -> ConfidenceLabel:
    if answer.refused:
        return "low"
    if answer.confidence >= settings.confidence_high:
        return "high"
    if answer.confidence >= settings.confidence_medium:
        return "medium"
    return "low"


def explain_confidence(answer: Answer, label: ConfidenceLabel) -> Bilingual:
    """One sentence per language saying where the confidence comes from."""
    names = {"high": ("높음", "high"), "medium": ("보통", "medium"), "low": ("낮음", "low")}
    ko_label, en_label = names[label]
    if answer.refused:
        return Bilingual(
            ko="KB에서 충분한 근거를 찾지 못해 답변을 보류했습니다.",
            en="No sufficient evidence was found in the KB, so the assistant declined to answer.",
        )
    if not answer.used_retrieval or not answer.passages:
        return Bilingual(
            ko=f"문서 검색 없이 모델 지식만으로 답했습니다 (신뢰도 {ko_label}). 사실 확인이 필요합니다.",
            en=f"Answered from model knowledge without retrieval ({en_label}); verify the facts.",
        )
    n, c = len(answer.passages), len(answer.citations)
    # `confidence` is the retriever's calibrated probability that a relevant document
    # was found (aldlab.rag.confidence), not a raw fusion score, so it is what we show.
    return Bilingual(
        ko=(
            f"관련 문서 {n}개를 찾았고 검색 신뢰도(보정된 확률)는 {answer.confidence:.2f} ({ko_label})입니다. "
            + (f"답변이 문서 {c}개를 인용했습니다." if c else "답변이 문서를 인용하지 않았습니다.")
        ),
        en=(
            f"{n} relevant passages found; calibrated retrieval confidence {answer.confidence:.2f} ({en_label}). "
            + (f"The answer cites {c} document(s)." if c else "The answer cites no document.")
        ),
    )
