"""`aldlab pipeline` orchestration: skip unchanged stages, redo changed ones, --force."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aldlab import pipeline
from aldlab.errors import UserError
from aldlab.pipeline import StagePlan, run_pipeline


def _fake_plans(tmp_path: Path, calls: list[str]) -> list[StagePlan]:
    source = tmp_path / "input.txt"

    def stage(name: str, output: Path):
        def run() -> dict[str, object]:
            calls.append(name)
            output.write_text(name, "utf-8")
            return {"ok": True, "path": output}

        return run

    outs = {n: tmp_path / f"{n}.out" for n in pipeline.STAGES}
    return [StagePlan(n, {"src": source, "n": 1}, [outs[n]], stage(n, outs[n])) for n in pipeline.STAGES]


def test_unchanged_stages_are_skipped_and_changes_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    (tmp_path / "input.txt").write_text("v1", "utf-8")
    monkeypatch.setattr(pipeline, "build_plans", lambda *a, **k: _fake_plans(tmp_path, calls))
    run_dir = tmp_path / "run"
    run_pipeline("cpu-demo", run_dir)
    assert calls == list(pipeline.STAGES)
    run_pipeline("cpu-demo", run_dir)
    assert calls == list(pipeline.STAGES), "second run with the same inputs must skip every stage"
    (tmp_path / "input.txt").write_text("v2", "utf-8")
    run_pipeline("cpu-demo", run_dir)
    assert calls[len(pipeline.STAGES):] == list(pipeline.STAGES)
    run_pipeline("cpu-demo", run_dir, force=True, stages=("data",))
    assert calls[-1] == "data"
    manifest = json.loads((run_dir / "manifest.json").read_text("utf-8"))
    assert set(manifest["stages"]) == set(pipeline.STAGES)
    assert set(manifest["versions"]) >= {"python", "torch", "aldlab"}  # values: tests/test_manifest.py
    assert manifest["stages"]["data"]["result"]["path"].endswith("data.out")


def test_missing_output_reruns_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    (tmp_path / "input.txt").write_text("v1", "utf-8")
    monkeypatch.setattr(pipeline, "build_plans", lambda *a, **k: _fake_plans(tmp_path, calls))
    run_pipeline(None, tmp_path / "run")
    (tmp_path / "train.out").unlink()
    run_pipeline(None, tmp_path / "run")
    assert calls[len(pipeline.STAGES):] == ["train"]


def test_kb_stage_fails_clearly_on_a_broken_kb(tmp_path: Path) -> None:
    bad = tmp_path / "docs.json"
    bad.write_text('{"documents": [{"id": 1, "text": ""}]}', "utf-8")
    with pytest.raises(UserError) as info:
        pipeline._run_kb(bad)
    assert "docs.json" in info.value.render()


def test_real_plans_wire_the_preset_into_every_stage(tmp_path) -> None:
    """build_plans itself (not a fake): files flow data -> train -> eval and the preset's
    rag section reaches eval, so the pipeline answers the way `aldlab ask` does."""
    plans = {p.name: p for p in pipeline.build_plans("cpu-demo", tmp_path, kb_path=None, config_file=None)}
    assert list(plans) == ["kb", "data", "train", "eval"]
    assert plans["train"].inputs["train"] == tmp_path / "data" / "train.jsonl"
    assert plans["train"].inputs["config"]["trainable_tokens"] == ["<end_of_turn>"]
    assert plans["eval"].inputs["adapter"] == tmp_path / "adapter" / "adapter_model.safetensors"
    assert plans["eval"].inputs["rag"]["no_repeat_ngram_size"] == 8
    assert plans["eval"].inputs["config"]["max_new_tokens"] >= 128


def test_outcome_table_shows_loops_and_support(tmp_path, capsys) -> None:
    """Key-fact recall alone hid word salad: the headline table shows loops/echo and support."""
    import json

    est = lambda v: {"value": v, "low": v, "high": v, "n": 30}  # noqa: E731
    system = {"keyfact_recall": est(0.6), "repetition_or_echo_rate": est(0.27), "support": est(0.91),
              "refusal_f1": est(0.9), "latency_s": est(3.0)}
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.json").write_text(json.dumps({"systems": {"ft+rag": system}}), encoding="utf-8")
    pipeline.print_outcome(tmp_path)
    out = capsys.readouterr().out
    assert "27%" in out and "0.91" in out
