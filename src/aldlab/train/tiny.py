"""Tiny training fixtures: a chat JSONL in the `aldlab data build` format, a tiny trained adapter.

The tiny model itself is `llm.tiny.build_tiny_model_dir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aldlab.llm.tiny import build_tiny_model_dir

_FACTS = [
    "TMA와 H2O로 Al2O3를 증착합니다.",
    "성장률은 사이클당 약 1 옹스트롬입니다.",
    "퍼지 시간이 부족하면 CVD 성분이 생깁니다.",
    "ALD 윈도우는 성장률이 일정한 온도 구간입니다.",
]
_TOPICS = ["TMA", "퍼지", "윈도우", "성장률"]


def write_chat_jsonl(path: str | Path, n: int, seed: int = 0, mix: bool = False) -> Path:
    """A small chat JSONL in the `aldlab data build` format (messages + extra keys).

    With `mix`, rows cycle closed-book / RAG (two passages, so longer) / refusal, with the
    `style` and `kind` keys `aldlab data build` writes.
    """
    import json
    import random

    from aldlab.prompts import build_messages, refusal_answer

    rng = random.Random(seed)
    out = Path(path)
    with out.open("w", encoding="utf-8") as fh:
        for i in range(n):
            question = f"ALD에서 {rng.choice(_TOPICS)}는 무엇인가요? ({i})"
            answer = " ".join(rng.sample(_FACTS, rng.randint(1, len(_FACTS))))
            shape = ("closed", "rag", "refusal")[i % 3] if mix else "closed"
            if shape == "rag":
                passages = [_Passage(f"d{j}", _TOPICS[j], _FACTS[j]) for j in range(2)]
                row = {"style": "rag", "kind": "kb", "messages": build_messages(question, passages, answer=answer + " [d0]")}
            elif shape == "refusal":
                row = {"style": "closed", "kind": "unanswerable", "messages": build_messages(question, answer=refusal_answer())}
            else:
                row = {"style": "closed" if mix else "closed_book", "kind": "kb",
                       "messages": build_messages(question, answer=answer)}
            fh.write(json.dumps({"id": f"q{i}", **row}, ensure_ascii=False) + "\n")
    return out


class _Passage:
    """The (id, title, text) shape `aldlab.prompts.build_messages` reads."""

    def __init__(self, id: str, title: str, text: str) -> None:  # noqa: A002
        self.id, self.title, self.text = id, title, text


def train_tiny_adapter(root: str | Path, rows: int = 16, steps: int = 3, **overrides: Any) -> tuple[Path, Path]:
    """Train a LoRA adapter on the tiny model for a few steps; returns (model_dir, adapter_dir).

    For tests that need a real trained adapter (saved the way `aldlab train` saves it)
    rather than a hand-built one.
    """
    from aldlab.train.config import TrainConfig
    from aldlab.train.trainer import train

    root = Path(root)
    model = build_tiny_model_dir(root / "model")
    data = write_chat_jsonl(root / "train.jsonl", rows, seed=0)
    settings: dict[str, Any] = dict(
        model_name=str(model), train_file=str(data), output_dir=str(root / "adapter"), learning_rate=5e-2,
        max_seq_len=512, max_steps=steps, eval_steps=100, save_steps=100, logging_steps=1, lora_r=4, lora_alpha=8,
        num_threads=1, max_eval_examples=4,
    )
    settings.update(overrides)
    train(TrainConfig(**settings), progress=False)
    return model, Path(settings["output_dir"])
