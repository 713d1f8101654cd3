"""One integration run of `aldlab eval` on the embedded gemma-3-270m (no adapter)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aldlab.eval.config import EvalConfig
from aldlab.eval.runner import run_eval
from aldlab.rag import assistant  # noqa: F401 - the project's own RAG core must import, not be skipped


@pytest.mark.slow
def test_eval_embedded_base_model_on_three_seed_questions(tmp_path: Path) -> None:
    config = EvalConfig(
        systems=["base", "base+rag"],
        output_dir=tmp_path / "eval",
        max_new_tokens=24,
        limit=3,
        bootstrap_samples=100,
    )
    result = run_eval(config, progress=False)
    rows = [json.loads(line) for line in result.paths["answers.jsonl"].read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 6 and {r["system"] for r in rows} == {"base", "base+rag"}
    assert all(isinstance(r["answer"], str) and r["latency_s"] > 0 for r in rows)
    assert any(r["contexts"] for r in rows if r["system"] == "base+rag")
    assert set(result.metrics["systems"]) == {"base", "base+rag"}
    assert 'src="data:image/png;base64,' in result.paths["report.html"].read_text(encoding="utf-8")
    assert result.paths["report.md"].exists()
