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
    assert "aldlab serve" in out  # what to do next (issue 25)


def test_real_plans_link_settings_and_carry_overrides(tmp_path: Path) -> None:
    """--kb reaches data and eval, eval uses the model train trains, data's context count
    follows rag.top_k, and a served model (rag.llm_url) reaches eval through the rag section."""
    extra = tmp_path / "extra.yaml"
    extra.write_text("rag:\n  top_k: 4\n  llm_url: http://127.0.0.1:9/v1\ntrain:\n  model_name: tiny-model\n", "utf-8")
    kb = tmp_path / "kb"
    plans = {p.name: p for p in pipeline.build_plans("cpu-demo", tmp_path / "run", kb_path=kb, config_file=extra)}
    data, evals = plans["data"].inputs, plans["eval"].inputs
    assert plans["kb"].inputs == {"kb": kb} and data["kb"] == kb and evals["kb"] == kb
    assert data["config"]["num_context_docs"] == 4 == evals["rag"]["top_k"]
    assert data["config"]["output_dir"] == str(tmp_path / "run" / "data")
    assert evals["config"]["model_name"] == "tiny-model" == plans["train"].inputs["config"]["model_name"]
    assert evals["rag"]["llm_url"] == "http://127.0.0.1:9/v1"
    assert plans["eval"].outputs == [tmp_path / "run" / "eval" / "report.html", tmp_path / "run" / "eval" / "metrics.json"]


def test_model_flag_replaces_the_presets_model_for_train_and_eval(tmp_path: Path) -> None:
    """`aldlab pipeline --model Qwen/...` without writing a YAML (issue 25)."""
    from typer.testing import CliRunner

    from aldlab.cli import app

    plans = {p.name: p for p in pipeline.build_plans("cpu-demo", tmp_path / "run", kb_path=None, config_file=None,
                                                      model="Qwen/Qwen2.5-0.5B-Instruct")}
    assert plans["train"].inputs["config"]["model_name"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert plans["eval"].inputs["config"]["model_name"] == "Qwen/Qwen2.5-0.5B-Instruct"
    default = {p.name: p for p in pipeline.build_plans("cpu-demo", tmp_path / "r2", kb_path=None, config_file=None)}
    assert default["train"].inputs["config"]["model_name"] == "embedded"
    assert "--model" in CliRunner().invoke(app, ["pipeline", "--help"]).output


def test_real_plans_rerun_only_the_stages_whose_inputs_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """run_pipeline over the real build_plans, stage bodies replaced by fakes that write the
    files the next stage reads: a KB edit reruns data and eval, not train (same data), and a
    lock file left in the KB by a writer reruns nothing."""
    from rag_testkit import write_tiny_kb

    kb = write_tiny_kb(tmp_path / "kb")
    run_dir = tmp_path / "run"
    calls: list[str] = []

    def fake_data(config) -> dict:
        calls.append("data")
        config.output_dir.mkdir(parents=True, exist_ok=True)
        for name in ("train.jsonl", "eval.jsonl"):
            (config.output_dir / name).write_text('{"messages": []}\n', "utf-8")
        return {"rows": 1}

    def fake_train(config) -> dict:
        calls.append("train")
        assert Path(config.train_file) == run_dir / "data" / "train.jsonl"
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(config.output_dir) / "adapter_model.safetensors").write_bytes(b"weights")
        return {"steps": 1}

    def fake_eval(config, rag_config) -> dict:
        calls.append("eval")
        assert Path(config.adapter) == run_dir / "adapter" and Path(config.kb) == kb
        out = Path(config.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("report.html", "metrics.json"):
            (out / name).write_text("{}", "utf-8")
        return {"top_k": rag_config.top_k}

    monkeypatch.setattr(pipeline, "_run_data", fake_data)
    monkeypatch.setattr(pipeline, "_run_train", fake_train)
    monkeypatch.setattr(pipeline, "_run_eval", fake_eval)
    run_pipeline("cpu-demo", run_dir, kb_path=kb)
    assert calls == ["data", "train", "eval"]
    (kb / "kb.json.lock").write_text("", "utf-8")
    run_pipeline("cpu-demo", run_dir, kb_path=kb)
    assert calls == ["data", "train", "eval"], "a lock file is not a KB change"
    docs = kb / "documents" / "purge.jsonl"
    edited = docs.read_text("utf-8").replace("파티클", "파티클(particle)", 1)
    assert edited != docs.read_text("utf-8")
    docs.write_text(edited, "utf-8")
    run_pipeline("cpu-demo", run_dir, kb_path=kb)
    assert calls[3:] == ["data", "eval"], "same train.jsonl: the train stage stays"
    manifest = json.loads((run_dir / "manifest.json").read_text("utf-8"))
    assert manifest["stages"]["eval"]["result"] == {"top_k": 3}
