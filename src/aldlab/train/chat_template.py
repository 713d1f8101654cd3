"""Chat template for models that ship without one (placeholder; the train stage owns it)."""

from __future__ import annotations

from typing import Any


def ensure_chat_template(tokenizer: Any) -> Any:
    """Leave a tokenizer's own template alone; add a turn-token template otherwise."""
    return tokenizer
