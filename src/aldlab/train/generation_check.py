"""The generation check at the end of training: a few eval questions answered by the adapter.

Why: the loss can fall while the answers read as nonsense. On gemma-3-270m the untrained
`<end_of_turn>` row made every answer loop until `max_new_tokens` with a loss that looked
fine; a stop rate of 0/3 in training_meta.json says so before any eval run.

The questions are fixed for a data set: the first eval row of each style (closed, rag,
refusal, in the file's order), then the next rows, so reruns answer the same questions.
Greedy, no penalties, the chat template and stop ids that serving uses
(`aldlab.llm.chat_template`); the budget is twice the reference answer's tokens (32-256),
enough for an answer that would stop, cheap for one that would not.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from aldlab.train.data import STYLES, Example, read_conversations

MIN_NEW_TOKENS = 32
MAX_NEW_TOKENS = 256


def pick_questions(path: str | Path, examples: list[Example], n: int) -> list[dict[str, Any]]:
    """Up to `n` eval rows as {line, style, messages (without the answer), reference}."""
    if n <= 0 or not examples:
        return []
    by_line = {row.line: (row.messages, row.style) for row in read_conversations(path)}
    lines = sorted({e.line for e in examples if e.line in by_line})
    first_of_style = [next(x for x in lines if by_line[x][1] == st) for st in STYLES
                      if any(by_line[x][1] == st for x in lines)]
    chosen = (first_of_style + [x for x in lines if x not in first_of_style])[:n]
    questions = []
    for line in sorted(chosen):
        messages, style = by_line[line]
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        questions.append({"line": line, "style": style, "messages": messages[:last],
                          "reference": messages[last]["content"]})
    return questions


def answer_questions(model: Any, tokenizer: Any, questions: list[dict[str, Any]], device: Any) -> dict[str, Any]:
    """Greedy answers to `questions`; returns the summary written to training_meta.json."""
    import torch

    from aldlab.llm.chat_template import end_of_turn_token_ids, render_prompt_ids

    stops = list(end_of_turn_token_ids(tokenizer))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    start = time.perf_counter()
    answers = []
    was_training = model.training
    model.eval()
    try:
        for q in questions:
            prompt = render_prompt_ids(tokenizer, q["messages"])
            budget = _budget(len(tokenizer(q["reference"], add_special_tokens=False)["input_ids"]))
            ids = torch.tensor([prompt], device=device)
            with torch.no_grad():
                out = model.generate(
                    input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=budget,
                    do_sample=False, temperature=None, top_p=None, top_k=None,
                    repetition_penalty=1.0, no_repeat_ngram_size=0,
                    eos_token_id=stops, pad_token_id=pad_id, use_cache=True,
                )
            new = [int(t) for t in out[0, len(prompt):].tolist()]
            stop_at = next((i for i, t in enumerate(new) if t in stops), None)
            answer = new if stop_at is None else new[:stop_at]
            answers.append({
                "line": q["line"], "style": q["style"], "question": q["messages"][-1]["content"],
                "reference": q["reference"], "answer": tokenizer.decode(answer, skip_special_tokens=True).strip(),
                "new_tokens": len(answer), "max_new_tokens": budget, "stopped": stop_at is not None,
            })
    finally:
        model.train(was_training)
    stopped = sum(a["stopped"] for a in answers)
    return {"questions": len(answers), "stopped": stopped, "stop_rate": stopped / len(answers) if answers else None,
            "seconds": round(time.perf_counter() - start, 2), "answers": answers}


def _budget(reference_tokens: int) -> int:
    return max(MIN_NEW_TOKENS, min(MAX_NEW_TOKENS, 2 * reference_tokens))


def summary_line(check: dict[str, Any]) -> str:
    """One console line: how many answers stopped, in Korean and English."""
    return (f"생성 확인 / generation check: {check['stopped']}/{check['questions']} 답변이 종료 토큰으로 끝남 "
            f"/ answers ended with the stop token ({check['seconds']}s)")
