"""`aldlab improve` on the tiny model: approved corrections -> candidate -> gate -> promoted ->
a running server answers with the new version, without a restart; and the ways it must refuse.

Data build, training (warm start), the candidate's load check, `run_eval`, the gate, the
registry and the server's hot swap are the real ones. Only the answers scored by the gate
come from a scripted assistant (`Scripted`): the tiny random model cannot learn Korean
corrections in a few steps, so the test decides what the candidate says and checks that
everything around it acts on that. `test_cli_improve_runs_on_the_tiny_model` runs the
command with the tiny model answering for real.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from rag_testkit import install_fake_embedder, write_dev_set, write_tiny_kb

from aldlab.errors import UserError
from aldlab.improve import ImproveConfig, improve_lock, run_improve
from aldlab.rag.types import Answer, AskOptions
from aldlab.settings import default_adapter
from aldlab.store import Store
from aldlab.store.registry import ModelRegistry

#: (question, the current model's wrong answer, the reviewer-approved correction): the tiny KB's facts.
CORRECTIONS = [
    ("VG12는 어떤 게이지야?", "VG12는 게이트 밸브 신호입니다.", "VG12는 공정 챔버 압력을 재는 capacitance manometer입니다."),
    ("TMA 캐니스터를 가열해야 해?", "네, 150도로 가열합니다.", "TMA는 증기압이 높아 Canister를 가열하지 않고 vapor draw로 공급합니다."),
    ("로드락 Vent는 어떻게 해?", "빠르게 대기로 엽니다.", "로드락 Vent는 건조 N2로 천천히 대기압까지 올립니다."),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny model, a trained tiny adapter (the model serving before improve), KB, dev set."""
    from aldlab.train.tiny import train_tiny_adapter

    root = tmp_path_factory.mktemp("improve")
    model, adapter = train_tiny_adapter(root / "first", steps=1)
    kb = write_tiny_kb(root / "kb")
    dev = write_dev_set(root / "dev.jsonl")
    return {"root": root, "model": model, "adapter": adapter, "kb": kb, "dev": dev}


@pytest.fixture()
def setup(tiny: dict[str, Path], tmp_path: Path) -> dict[str, Any]:
    """Per test (each has its own ALDLAB_HOME): v0001 promoted, three approved corrections, the config."""
    install_fake_embedder()
    registry = ModelRegistry()
    first = registry.register(tiny["adapter"], base_model=str(tiny["model"]), created_by="test")
    registry.promote(first.id, "test")
    store = Store(tmp_path / "serve.sqlite3")
    ids = []
    for question, wrong, correction in CORRECTIONS:
        answer_id = store.log_answer(question=question, answer=wrong, model=first.id, model_version=first.id, token="t")
        fid = store.add_feedback(answer_id, "dislike", correction=correction, token="t")
        store.review_feedback(fid, "approved", "kim", revision=1)
        ids.append(fid)
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(tiny_config(tiny, tmp_path), encoding="utf-8")
    config = ImproveConfig(db=str(store.path), dev_sets=[str(tiny["dev"])])
    return {"registry": registry, "first": first, "store": store, "ids": ids, "config_file": config_file,
            "config": config, "tiny": tiny}


def tiny_config(tiny: dict[str, Path], tmp_path: Path) -> str:
    """The preset a test passes as --config: every stage sized for seconds on the tiny model."""
    return f"""
data:
  train_size: 40
  eval_size: 8
  rag_ratio: 0.0
  semantic_model: hash
  particle_check_sample: 10
train:
  model_name: {tiny['model']}
  max_steps: 2
  batch_size: 4
  learning_rate: 0.05
  lora_r: 4
  lora_alpha: 8
  max_seq_len: 512
  allow_skipping_long_rows: true
  max_eval_examples: 4
  eval_steps: 100
  save_steps: 100
  logging_steps: 1
  num_threads: 1
eval:
  max_new_tokens: 8
  batch_size: 4
  bootstrap_samples: 200
rag:
  dense_model: fake
  index_dir: {tmp_path / 'index'}
  dev_set: {tiny['dev']}
  max_new_tokens: 8
"""


class Scripted:
    """Answers like eval's BatchAnswerer: the current model repeats the wrong answers; the
    candidate says the corrections (or, `worse`, also forgets every dev-set fact)."""

    def __init__(self, worse: bool = False) -> None:
        self.worse = worse
        self.fixes = {q: (wrong, fix) for q, wrong, fix in CORRECTIONS}

    def answer_batch(self, questions: Sequence[str], options: AskOptions) -> list[Answer]:
        return [self.answer(q, options.model) for q in questions]

    def answer(self, question: str, model: str) -> Answer:
        if question in self.fixes:
            text = self.fixes[question][1 if model == "candidate" else 0]
        elif any(w in question for w in ("날씨", "김치", "주식", "손흥민", "제주", "고양이", "비트코인", "파스타")):
            return Answer(question=question, text="관련 정보가 부족합니다.", refused=True, model=model)
        else:
            text = "모르겠습니다." if self.worse and model == "candidate" else question  # dev expects its first word
        return Answer(question=question, text=text, model=model)


def improve(setup: dict[str, Any], **kw: Any) -> Any:
    return run_improve(None, kw.pop("config", setup["config"]), kb_path=setup["tiny"]["kb"],
                       config_file=setup["config_file"], actor="lee", **kw)


def serving_app(setup: dict[str, Any], tmp_path: Path) -> Any:
    """`aldlab serve` as it starts when following the registry: the real Assistant on the tiny
    model with the promoted adapter attached under its version id."""
    from aldlab.rag.assistant import Assistant
    from aldlab.rag.config import RagConfig
    from aldlab.serve.app import create_app
    from aldlab.serve.settings import ServeSettings

    pointer = default_adapter()
    config = RagConfig(dense_model="fake", index_dir=tmp_path / "index", dev_set=setup["tiny"]["dev"], max_new_tokens=4)
    assistant = Assistant.from_config(setup["tiny"]["kb"], config, model_name=str(setup["tiny"]["model"]),
                                      adapters={pointer.model_id: str(pointer.adapter_dir)}, show_progress=False)
    settings = ServeSettings(kb=str(setup["tiny"]["kb"]), default_model=pointer.model_id, follow_registry=True,
                             model_versions={pointer.model_id: pointer.model_id}, registry_poll_s=0.05)
    return create_app(assistant, setup["store"], settings), assistant


def wait_for_version(client: TestClient, version: str, timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        health = client.get("/api/health").json()
        if health["model_version"] == version:
            return health
        time.sleep(0.05)
    raise AssertionError(f"the server never switched to {version}: {health}")


def test_approved_corrections_become_a_promoted_model_served_without_restart(setup, tmp_path) -> None:
    app, assistant = serving_app(setup, tmp_path)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        before = client.post("/api/ask", json={"question": "VG12는 무슨 게이지야?"}).json()
        assert before["model"] == "v0001"
        assert client.get("/api/health").json()["model_version"] == "v0001"
        # validated before the swap: must finish on the model it started with
        in_flight = anyio.run(lambda: app.state.answers.validate_query(
            "TMA Canister 가열이 필요해?", model=None, history=[], top_k=None, max_new_tokens=4))

        outcome = improve(setup, assistant_factory=lambda c, r: Scripted())

        assert outcome.promoted and outcome.model_id == "v0002", outcome.reasons
        record = setup["registry"].get("v0002")
        assert record.status == "promoted" and record.parent == "v0001" and record.promoted_by == "lee"
        assert record.feedback_ids == sorted(setup["ids"]) and record.kb_hash and record.dataset_hash
        gate = record.scores["sets"]
        assert gate["corrections"]["correct"] == {"current": 0, "candidate": 3}
        assert gate["dev"]["delta"]["value"] > 0 and gate["dev"]["passed"]  # "로드락 Vent" is a dev question too
        meta = json.loads((Path(record.adapter_dir) / "training_meta.json").read_text("utf-8"))
        assert meta["config"]["init_adapter"] == setup["first"].adapter_dir, "warm start from the promoted model"
        train_rows = (outcome.run_dir / "data" / "train.jsonl").read_text("utf-8")
        assert sum(fix in train_rows for _, _, fix in CORRECTIONS) >= 2, "corrections reach the training data"
        assert (outcome.run_dir / "gate.md").exists() and not list(setup["registry"].staging_dir.iterdir())

        health = wait_for_version(client, "v0002")
        assert health["default_model"] == "v0002" and health["model_swap_error"] is None
        after = client.post("/api/ask", json={"question": "VG12는 무슨 게이지야?"}).json()
        assert after["model"] == "v0002"
        assert setup["store"].get_answer(after["answer_id"]).model_version == "v0002"
        listed = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert "v0002" in listed and "v0001" not in listed
        assert client.post("/api/ask", json={"question": "VG12는 무슨 게이지야?", "model": "ft"}).json()["model"] == "v0002"

        finished = assistant.answer(in_flight.question, in_flight.options)
        assert in_flight.model == "v0001" and finished.model == "v0001"

        setup["registry"].rollback("park")  # `aldlab models rollback`
        wait_for_version(client, "v0001")
        assert client.post("/api/ask", json={"question": "VG12는 무슨 게이지야?"}).json()["model"] == "v0001"


def test_a_worse_candidate_is_registered_rejected_and_the_current_model_keeps_serving(setup) -> None:
    outcome = improve(setup, assistant_factory=lambda c, r: Scripted(worse=True))
    assert not outcome.promoted and outcome.model_id == "v0002"
    assert any("dev" in reason for reason in outcome.reasons)
    record = setup["registry"].get("v0002")
    assert record.status == "rejected" and "dev" in record.note
    assert record.scores["sets"]["dev"]["delta"]["high"] < -0.05
    assert default_adapter().model_id == "v0001" and setup["registry"].promoted().id == "v0001"


def test_no_better_on_the_corrections_is_no_promotion(setup) -> None:
    class Same(Scripted):
        def answer(self, question: str, model: str) -> Answer:
            return super().answer(question, "current")  # the candidate says what the current says

    outcome = improve(setup, assistant_factory=lambda c, r: Same())
    assert not outcome.promoted and "corrected" in " ".join(outcome.reasons)
    assert setup["registry"].promoted().id == "v0001"
    # the corrections are asked first; once they fail, the dev set is not worth its time
    assert outcome.decision.skipped == ["dev"] and "dev" not in setup["registry"].get("v0002").scores["sets"]


class Recording(Scripted):
    """Scripted, noting which model was asked which question."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str, str]] = []

    def answer(self, question: str, model: str) -> Answer:
        self.asked.append((question, model))
        return super().answer(question, model)


def test_the_next_run_reuses_the_promoted_models_answers(setup) -> None:
    """The promoted candidate's answers to the dev set are kept; the next run asks only the new candidate."""
    first = Recording()
    assert improve(setup, assistant_factory=lambda c, r: first).promoted
    dev_questions = {json.loads(line)["question"] for line in setup["tiny"]["dev"].read_text("utf-8").splitlines()}
    assert {m for q, m in first.asked if q in dev_questions} == {"current", "candidate"}

    store = setup["store"]  # one more approved correction: something new to learn
    answer_id = store.log_answer(question="ALD 밸브는 어디 있어?", answer="가스 캐비닛", model="v0002",
                                 model_version="v0002", token="t")
    fid = store.add_feedback(answer_id, "dislike", correction="ALD 밸브는 챔버 가까이 manifold에 있습니다.", token="t")
    store.review_feedback(fid, "approved", "kim", revision=1)
    second = Recording()
    second.fixes["ALD 밸브는 어디 있어?"] = ("가스 캐비닛", "ALD 밸브는 챔버 가까이 manifold에 있습니다.")
    outcome = improve(setup, config=replace(setup["config"], promote=False), assistant_factory=lambda c, r: second)
    assert outcome.decision.cached == ["dev"]
    assert {m for q, m in second.asked if q in dev_questions and q not in {c[0] for c in CORRECTIONS}} == {"candidate"}
    gate = setup["registry"].get(outcome.model_id).scores["sets"]["dev"]
    assert gate["current"]["value"] == setup["registry"].get("v0002").scores["sets"]["dev"]["candidate"]["value"]

    third = Recording()  # --no-reuse-answers: both models answer again
    third.fixes.update(second.fixes)
    improve(setup, config=replace(setup["config"], promote=False, reuse_answers=False),
            assistant_factory=lambda c, r: third)
    assert {m for q, m in third.asked if q in dev_questions} == {"current", "candidate"}


def test_answer_key_changes_with_anything_an_answer_depends_on(tmp_path: Path) -> None:
    from aldlab.eval.answer_cache import answer_key
    from aldlab.eval.config import EvalConfig
    from aldlab.rag.config import RagConfig

    adapter = tmp_path / "a"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"w1")
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"id": "1"}\n', encoding="utf-8")
    eval_cfg, rag_cfg = EvalConfig(), RagConfig(index_dir=tmp_path / "i")
    key = answer_key(adapter, questions, "kb1", eval_cfg, rag_cfg)
    assert key == answer_key(adapter, questions, "kb1", replace(eval_cfg, output_dir=tmp_path / "x"), rag_cfg)
    assert key != answer_key(adapter, questions, "kb2", eval_cfg, rag_cfg)
    assert key != answer_key(adapter, questions, "kb1", replace(eval_cfg, max_new_tokens=9), rag_cfg)
    assert key != answer_key(adapter, questions, "kb1", eval_cfg, replace(rag_cfg, top_k=5))
    questions.write_text('{"id": "2"}\n', encoding="utf-8")
    assert key != answer_key(adapter, questions, "kb1", eval_cfg, rag_cfg)


def test_a_candidate_that_does_not_load_is_never_promoted(setup, monkeypatch) -> None:
    import aldlab.train.trainer as trainer

    def broken_train(config: Any, progress: bool = True) -> None:
        out = Path(config.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
        (out / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}), "utf-8")

    monkeypatch.setattr(trainer, "train", broken_train)
    outcome = improve(setup, assistant_factory=lambda c, r: Scripted())
    assert not outcome.promoted and outcome.decision is None
    assert "does not load" in outcome.reasons[0]
    assert setup["registry"].get("v0002").status == "rejected"
    assert default_adapter().model_id == "v0001"


def test_a_run_killed_mid_train_leaves_the_registry_and_pointer_as_they_were(setup, monkeypatch) -> None:
    import aldlab.train.trainer as trainer

    pointer_before = ModelRegistry().record_path("v0001").read_text("utf-8"), default_adapter()

    def dies_mid_train(config: Any, progress: bool = True) -> None:
        out = Path(config.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "adapter_model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt  # Ctrl-C or a kill in the middle of a step

    real_train = trainer.train
    monkeypatch.setattr(trainer, "train", dies_mid_train)
    with pytest.raises(KeyboardInterrupt):
        improve(setup, assistant_factory=lambda c, r: Scripted())
    registry = setup["registry"]
    assert [r.id for r in registry.records()] == ["v0001"]
    assert (registry.record_path("v0001").read_text("utf-8"), default_adapter()) == pointer_before
    assert not (registry.root / "improve.lock").exists()
    monkeypatch.setattr(trainer, "train", real_train)  # not undo(): that would drop the test's ALDLAB_HOME too
    outcome = improve(setup, assistant_factory=lambda c, r: Scripted())  # the next run clears the leftovers
    assert outcome.promoted and outcome.model_id == "v0002"


def test_two_improve_runs_at_once_are_refused_and_a_dead_holder_is_taken_over(tmp_path: Path) -> None:
    lock = tmp_path / "improve.lock"
    lock.write_text(f"{__import__('os').getpid()}\n")  # a live process holds it
    with pytest.raises(UserError, match="Another aldlab improve is running"), improve_lock(lock):
        pass
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(dead.stdout)
    with improve_lock(lock):
        assert lock.read_text().strip() == str(__import__("os").getpid())
    assert not lock.exists()


def test_nothing_new_to_learn_is_a_clear_error(setup) -> None:
    config = ImproveConfig(db=setup["config"].db, dev_sets=setup["config"].dev_sets, min_new_feedback=4)
    with pytest.raises(UserError, match="Only 3 new approved"):
        improve(setup, config=config)


def test_cli_improve_runs_on_the_tiny_model(setup) -> None:
    """The real flags and the real eval (the tiny model answers); then `aldlab models`."""
    from typer.testing import CliRunner

    from aldlab.cli import app

    runner = CliRunner()
    assert "--from-base" in runner.invoke(app, ["improve", "--help"]).output
    result = runner.invoke(app, [
        "improve", "--config", str(setup["config_file"]), "--kb", str(setup["tiny"]["kb"]), "--db", setup["config"].db,
        "--dev-sets", str(setup["tiny"]["dev"]), "--from-base", "--limit", "4",
    ])
    assert result.exit_code == 0, result.output
    assert "corrections" in result.output and "v0002" in result.output
    record = setup["registry"].get("v0002")
    assert record.note.startswith("from base") or record.status == "rejected"
    meta = json.loads((Path(record.adapter_dir) / "training_meta.json").read_text("utf-8"))
    assert meta["config"]["init_adapter"] is None
    listing = runner.invoke(app, ["models", "list"])
    assert listing.exit_code == 0 and "v0001" in listing.output and "v0002" in listing.output
    shown = runner.invoke(app, ["models", "show", "v0002"])
    assert '"feedback_ids"' in shown.output
