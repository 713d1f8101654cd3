"""Stage 4, evaluation: base vs fine-tuned, with and without retrieval.

`aldlab eval` / `run_eval(EvalConfig)` answers a JSONL question set (evalsets/seed.jsonl by
default) with every requested system through the RAG core's Assistant, scores the answers
(key-fact recall, refusal precision/recall, ROUGE-L on Kiwi morphemes, chrF, Korean-ness,
length, latency, bootstrap CIs), optionally asks an LLM judge, and writes answers.jsonl,
metrics.json, report.html, report.md and manifest.json.
"""

from aldlab.eval.config import EvalConfig

__all__ = ["EvalConfig"]
