"""When an answer is a refusal: the gate before the LLM and the settling of generated text.

Refusal happens *before* the LLM when the calibrated confidence of the retrieval is below
the threshold fitted on evalsets/dev.jsonl, or when the question names something no KB
document mentions: the answer is then the fixed refusal phrase from `aldlab.prompts` and
no model is loaded or called. After generation, `settle_generated` decides whether the
model's text is a refusal (its own, or an echo of the question).
"""

from __future__ import annotations

import re

from aldlab import prompts
from aldlab.text import CITATION_TAG, HANGUL, split_sentences
from aldlab.rag.retriever import Retrieval


REFUSAL_REASON = "지식 베이스에서 이 질문과 관련된 문서를 찾지 못했습니다."


ENGLISH_NOTE = "이 어시스턴트는 한국어 질문에 답합니다 / This assistant answers questions asked in Korean."
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def asked_in_english(question: str) -> bool:
    """No Hangul and at least three Latin words: an English question (not "VG12 게이지")."""
    return not HANGUL.search(question) and len(_LATIN_WORD.findall(question)) >= 3


def refusal_reason(
    retrieval: Retrieval, threshold: float, *, check_names: bool = True, check_site: bool = True
) -> str | None:
    """Why the KB cannot answer this retrieval's question, or None when it can; an English
    question's refusal also says, in both languages, that the assistant answers Korean ones."""
    reason = _reason(retrieval, threshold, check_names=check_names, check_site=check_site)
    if reason and asked_in_english(retrieval.query):
        return f"{reason} {ENGLISH_NOTE}"
    return reason


def _reason(
    retrieval: Retrieval, threshold: float, *, check_names: bool = True, check_site: bool = True
) -> str | None:
    """Why the KB cannot answer this retrieval's question, or None when it can.

    The one pre-LLM refusal rule (the service and batched eval both call it): refuse when
    the question names something no KB document mentions (`Retrieval.unknown_names`), asks
    about one site, tool, bill or person (`Retrieval.site_specific`), or when the calibrated
    confidence is below the threshold fitted on the dev set.
    """
    if check_names and retrieval.unknown_names:
        names = ", ".join(f"'{n}'" for n in retrieval.unknown_names[:3])
        return f"지식 베이스에 {names}에 대한 내용이 없습니다."
    if check_site and retrieval.site_specific:
        phrases = ", ".join(f"'{p}'" for p in retrieval.site_specific[:2])
        return f"{phrases}처럼 특정 현장·장비·비용·사람에 관한 기록은 일반 ALD 지식 베이스에 없습니다."
    if not retrieval.passages or retrieval.confidence < threshold:
        return REFUSAL_REASON
    return None


def model_refused(text: str) -> bool:
    """The model itself declined (the one classifier, `prompts.is_refusal`, shared with eval).

    An untuned base model often echoes the system prompt, which contains the phrase; that
    echo is not a refusal and must not hide the answer's citations — `is_refusal` knows.
    """
    return prompts.is_refusal(text)


_NOT_WORD = re.compile(r"[^0-9a-z\uac00-\ud7a3]+")
ECHO_REASON = "모델이 질문을 되풀이했을 뿐 답하지 못했습니다."


def _squash(text: str) -> str:
    return _NOT_WORD.sub("", CITATION_TAG.sub("", text).casefold())


def echoes_question(text: str, question: str, *, slack: int = 10) -> bool:
    """True when the answer only repeats (part of) the question.

    A small model that finds nothing to say in the contexts often writes the question back
    ("CMP 공정에서 슬러리 pH는 어떻게 관리해?"). That is no answer: the user is better served
    by the refusal. Compared without spaces, punctuation and [id] tags; `slack` characters
    beyond the question ("…관리해? 입니다") still count as an echo.
    """
    answer, asked = _squash(text), _squash(question)
    if len(answer) < 6 or len(asked) < 6:
        return False
    return answer in asked or (answer.startswith(asked) and len(answer) - len(asked) <= slack)


def settle_generated(text: str, question: str, *, with_context: bool = True) -> tuple[str, bool]:
    """(text to show, refused) for a generated answer: the one rule for service and eval.

    The model's own refusal keeps its reason when the reason reads as one
    (`tidy_refusal`); an echo of the question becomes the refusal. `with_context` says
    whether the prompt held passages (the fallback reason names them or not).
    """
    if model_refused(text):
        return tidy_refusal(text, MODEL_REFUSAL_REASON if with_context else CLOSED_BOOK_REASON), True
    if echoes_question(text, question):
        return prompts.refusal_answer(ECHO_REASON), True
    return text, False


#: What a refusal says when the model's own reason is not a reason (with passages / closed-book).
MODEL_REFUSAL_REASON = "참고 문서에서 이 질문에 답할 근거를 찾지 못했습니다."
CLOSED_BOOK_REASON = "확실한 근거가 없어 답하지 않습니다."
#: A reason says what is missing: "…내용이 없습니다", "…찾을 수 없습니다", "…알 수 없습니다".
_NEGATION = re.compile(r"없|않|못|모릅|모르")
_REASON_MAX_CHARS = 100


def tidy_refusal(text: str, fallback: str = MODEL_REFUSAL_REASON) -> str:
    """The refusal phrase plus the model's first reason sentence, or a plain reason.

    The fine-tuned 270M model learnt reasons like "참고 문서에 X에 대한 내용이 없습니다", but
    sometimes writes the question back after the phrase ("관련 정보가 부족합니다. 참고 문서에는
    ALD 장비 가동률이 몇 %였는지 알려주세요."), copies a passage sentence with its [id], or
    loops. A reason is kept only when its first sentence is short, cites nothing and says
    that something is missing; otherwise the user reads `fallback`.
    """
    at = text.find(prompts.REFUSAL)
    rest = text[at + len(prompts.REFUSAL):] if at >= 0 else ""
    rest = rest.lstrip(" .,:;!\"'“”」』\n")
    sentences = split_sentences(rest, at_newlines=True)
    reason = sentences[0] if sentences else ""
    # A citation anywhere means the "reason" was copied from a passage.
    if reason and not CITATION_TAG.search(rest) and _NEGATION.search(reason) and len(reason) <= _REASON_MAX_CHARS:
        return prompts.refusal_answer(reason)
    return prompts.refusal_answer(fallback)
