"""The merge's precision and stop ids (`aldlab.llm.merge`), decided without a GPU."""

from __future__ import annotations

import pytest

from aldlab.llm.merge import merge_dtype, stop_ids


@pytest.mark.parametrize(("cuda", "capability", "dtype"), [
    (False, None, "float32"),     # CPU: exact
    (True, (7, 5), "float16"),    # T4: no bf16 in hardware, and vLLM refuses a bf16 model there
    (True, (7, 0), "float16"),    # V100
    (True, (8, 0), "bfloat16"),   # A100
    (True, (9, 0), "bfloat16"),   # H100
])
def test_merge_precision_follows_the_gpu_generation(cuda: bool, capability: tuple | None, dtype: str) -> None:
    assert merge_dtype(cuda, capability) == dtype


def test_stop_ids_keep_every_eos_of_the_base_after_the_end_of_turn() -> None:
    im_end, end_of_text = 151645, 151643
    assert stop_ids([im_end], [im_end, end_of_text]) == [im_end, end_of_text]  # Qwen2.5-Instruct
    assert stop_ids([106], 1) == [106, 1]  # Gemma: <end_of_turn>, then <eos>
    assert stop_ids([7], None) == [7]
