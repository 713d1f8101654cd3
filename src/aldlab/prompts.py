"""The one place where prompts live.

Training data (stage 2), fine-tuning (3), evaluation (4) and serving (5) all build their
chat messages here, so the prompt a model was trained on is exactly the prompt it is
served with. Change a prompt here and every stage changes together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

#: The refusal phrase. Data builder targets, the RAG out-of-KB path, and the eval refusal
#: detector all use this constant.
REFUSAL = "관련 정보가 부족합니다"

SYSTEM_PROMPT = (
    "당신은 반도체 ALD(원자층 증착) 공정과 장비에 정통한 한국어 전문가 어시스턴트입니다. "
    "질문에 정확하고 간결하게 한국어로 답하세요. 기술 용어는 영문을 함께 써도 됩니다. "
    f"확실하지 않거나 근거가 없으면 추측하지 말고 \"{REFUSAL}\"라고 답하세요."
)

RAG_INSTRUCTION = (
    "아래 참고 문서만 근거로 답하세요. 근거로 쓴 문서는 [문서ID] 형식으로 인용하세요. "
    f"참고 문서에 답이 없으면 \"{REFUSAL}\"라고 답하고 이유를 한 문장으로 덧붙이세요."
)


class CitedText(Protocol):
    """Anything with an id, a title and a text: a KB document or a retrieved passage."""

    id: str
    title: str
    text: str


def format_context(passages: Sequence[CitedText], *, most_relevant_last: bool = True) -> str:
    """Render passages (most relevant first, as retrieval returns them) as a block the model
    can cite by id, listed in reverse: the most relevant passage last, next to the question.

    Why: the fine-tuned small model copies from the passages nearest the question. On
    evalsets/dev.jsonl (98 answerable, the cpu-demo adapter, top 3) the answering document
    was retrieved first 86 times, yet key-fact recall was 0.658 with it listed first and
    0.816 with it listed last (false refusals 6.1% -> 2.0%). Training rows shuffle their
    passages, so the order is only learnt from here at serving time. A block shown to a
    person (`--context-only`) keeps retrieval order: `most_relevant_last=False`.
    """
    ordered = list(reversed(passages)) if most_relevant_last else list(passages)
    blocks = [f"[{p.id}] {p.title}\n{p.text}" for p in ordered]
    return "\n\n".join(blocks) if blocks else "(참고 문서 없음)"


def build_user_prompt(question: str, passages: Sequence[CitedText] | None) -> str:
    """User turn: the bare question (closed-book) or question + retrieved context (RAG)."""
    question = question.strip()
    if passages is None:
        return question
    return f"{RAG_INSTRUCTION}\n\n참고 문서:\n{format_context(passages)}\n\n질문: {question}"


def build_messages(
    question: str,
    passages: Sequence[CitedText] | None = None,
    *,
    history: Sequence[dict[str, str]] = (),
    answer: str | None = None,
) -> list[dict[str, str]]:
    """Chat messages for one turn.

    `passages=None` is the closed-book style; a (possibly empty) sequence is the
    retrieval style. `history` holds earlier user/assistant turns for multi-turn chat.
    With `answer`, the assistant turn is appended (a training example).
    """
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    messages.extend({"role": m["role"], "content": m["content"]} for m in history)
    messages.append({"role": "user", "content": build_user_prompt(question, passages)})
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


def refusal_answer(reason: str | None = None) -> str:
    """The refusal target/answer: the fixed phrase plus a short reason."""
    if not reason:
        return f"{REFUSAL}."
    return f"{REFUSAL}. {reason.strip()}"


#: Quote marks a model may wrap around the phrase ("관련 정보가 부족합니다", 「…」).
_QUOTES = "\"'“”‘’「」『』`"
#: Besides the phrase, a refusal may carry a short lead-in ("죄송하지만", "질문하신 내용은
#: 참고 문서에 없어": 5-15 characters without spaces); an echoed system prompt or RAG
#: instruction, the other way the phrase turns up, has over 60 characters besides it.
_REFUSAL_EXTRA_CHARS = 20


def is_refusal(answer: str) -> bool:
    """True when an answer is a refusal: the one classifier of eval metrics and the service.

    A refusal *opens* with the refusal phrase (after quotes and whitespace), or is
    essentially only that phrase (at most a short lead-in besides it). The phrase inside
    a longer text is not enough: an untuned model often echoes the system prompt or the
    RAG instruction, which contain the phrase, and that echo is not a refusal; neither is
    a text that quotes the instruction ('"관련 정보가 부족합니다"라고 답하세요').
    """
    text = " ".join(answer.split()).strip().lstrip(_QUOTES).strip()
    at = text.find(REFUSAL)
    if at < 0:
        return False
    after = text[at + len(REFUSAL) :].lstrip(_QUOTES)
    if after.startswith("라고"):
        return False  # the instruction quoted, not a refusal
    if at == 0:
        return True
    extra = (text[:at] + after).translate(str.maketrans("", "", _QUOTES + " .,!?:;·…-"))
    return len(extra) <= _REFUSAL_EXTRA_CHARS
