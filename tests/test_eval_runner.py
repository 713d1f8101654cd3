"""run_eval end to end with a fake Assistant (no model): outputs, metrics, report, CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from aldlab.errors import UserError
from aldlab.eval import runner
from aldlab.eval.config import EvalConfig
from aldlab.prompts import refusal_answer
from aldlab.rag.types import Answer, AskOptions, Passage

QUESTIONS = [
    {"id": "b1", "question": "ALD가 뭐야?", "topic": "ALD 기본", "difficulty": "기본", "answerable": True,
     "expect": [["self-limiting", "자기 제한"], ["사이클", "cycle"]], "reference": "ALD는 self-limiting 반응을 사이클로 반복한다."},
    {"id": "p1", "question": "퍼지 시간이 짧으면?", "topic": "Purge", "difficulty": "중급", "answerable": True,
     "expect": [["CVD"], ["파티클", "particle"]], "reference": "퍼지가 부족하면 CVD성 반응과 파티클이 생긴다."},
    {"id": "v1", "question": "VG12는 무엇을 재나요?", "topic": "VG12/VG13", "difficulty": "기본", "answerable": True,
     "expect": [["메인 챔버", "main chamber"]]},
    {"id": "x1", "question": "내일 서울 날씨는?", "topic": "경계", "difficulty": "기본", "answerable": False, "expect": []},
]

FT_ANSWERS = {
    "b1": "ALD는 자기 제한 반응을 한 사이클씩 반복합니다.",
    "p1": "퍼지가 짧으면 CVD성 반응으로 파티클이 생깁니다.",
    "v1": "VG12는 메인 챔버 압력을 재는 진공 게이지입니다.",
    "x1": refusal_answer("KB 범위 밖입니다."),
}


class FakeAssistant:
    """Answers like eval's BatchAnswerer (`answer_batch` with AskOptions); ft knows the facts, base does not."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bool, int]] = []
        self.by_text = {q["question"]: q["id"] for q in QUESTIONS}

    def answer_batch(self, questions: list[str], options: AskOptions) -> list[Answer]:
        return [self.answer(q, options) for q in questions]

    def answer(self, question: str, options: AskOptions) -> Answer:
        model, use_retrieval = options.model, options.use_retrieval
        self.calls.append((question, model, use_retrieval, options.max_new_tokens))
        qid = self.by_text[question]
        if model == "ft":
            text = FT_ANSWERS[qid]
        else:
            text = "잘 모르겠지만 <script>alert(1)</script> 증착 原子 기술입니다<end_of_turn>"
        passages = [Passage(id="ald-basics-001", title="ALD 정의", text="...", score=0.9)] if use_retrieval else []
        return Answer(question=question, text=text, passages=passages, refused=False, latency_s=0.25, model=model)


@pytest.fixture
def qfile(tmp_path: Path) -> Path:
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in QUESTIONS), encoding="utf-8")
    return path


def make_config(tmp_path: Path, qfile: Path, **kw) -> EvalConfig:
    adapter = tmp_path / "adapter"
    adapter.mkdir(exist_ok=True)
    defaults = dict(questions=qfile, adapter=adapter, output_dir=tmp_path / "out", bootstrap_samples=200, max_new_tokens=32)
    return EvalConfig(**{**defaults, **kw})


def test_run_eval_writes_all_outputs_with_expected_scores(tmp_path: Path, qfile: Path) -> None:
    fake = FakeAssistant()
    result = runner.run_eval(make_config(tmp_path, qfile), progress=False, assistant_factory=lambda c, r: fake)

    # one Assistant, every system x question, with the configured token budget (the
    # passage system generates nothing, so it asks for no tokens)
    assert len(fake.calls) == 20 and {c[3] for c in fake.calls[:16]} == {32} and {c[3] for c in fake.calls[16:]} == {None}
    assert {(c[1], c[2]) for c in fake.calls} == {("base", False), ("ft", False), ("base", True), ("ft", True)}

    lines = [json.loads(x) for x in result.paths["answers.jsonl"].read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 20
    assert set(lines[0]) >= {"system", "id", "question", "answer", "contexts", "refused", "latency_s"}
    assert {r["system"] for r in lines} == {"base", "ft", "base+rag", "ft+rag", "passage"}
    assert all(r["contexts"] == [] for r in lines if r["system"] in ("base", "ft"))
    assert all(r["contexts"][0]["id"] == "ald-basics-001" for r in lines if r["system"] not in ("base", "ft"))
    assert [r["refused"] for r in lines if r["system"] == "ft" ] == [False, False, False, True]

    metrics = json.loads(result.paths["metrics.json"].read_text(encoding="utf-8"))
    ft, base = metrics["systems"]["ft+rag"], metrics["systems"]["base+rag"]
    assert ft["keyfact_recall"]["value"] == 1.0 and base["keyfact_recall"]["value"] == 0.0
    assert ft["refusal_recall"]["value"] == 1.0 and ft["refusal_precision"]["value"] == 1.0
    assert base["refusal_recall"]["value"] == 0.0 and base["control_token_rate"] == 1.0 and base["han_rate"] == 1.0
    assert ft["by_topic"]["Purge"]["value"] == 1.0 and set(ft["by_difficulty"]) == {"기본", "중급"}
    assert ft["rouge_l"]["n"] == 2 and ft["chrf"]["value"] > 0
    assert metrics["primary_system"] == "ft+rag"
    assert metrics["keyfact_recall_deltas"]["ft+rag vs base+rag"]["value"] == 1.0
    assert metrics["headline"].startswith("ft+rag vs passage") and "ft+rag vs base+rag" in metrics["keyfact_recall_deltas"]

    page = result.paths["report.html"].read_text(encoding="utf-8")
    # overall, refusal, latency; topics and levels have < 3 questions each: named, not drawn
    assert page.count('src="data:image/png;base64,') == 3 and "fewer than 3 questions" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "전체 지표 / all metrics" in page and "http" not in page.replace("http-equiv", "")
    md = result.paths["report.md"].read_text(encoding="utf-8")
    assert "| ft+rag |" in md and "all metrics" in md
    manifest = json.loads((result.output_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["questions_sha256"] and manifest["config"]["max_new_tokens"] == 32
    # the KB is named by the content hash data and the retrieval index record (aldlab.manifest)
    assert len(manifest["kb"]["content_hash"]) == 16 and manifest["kb"]["documents"] > 0
    assert set(manifest["versions"]) >= {"python", "torch", "kiwipiepy"}
    assert result.passed is None


class FakeBatchAssistant(FakeAssistant):
    """Adds `answer_batch` (as eval.batch.BatchAnswerer has) and records the chunk sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[int] = []

    def answer_batch(self, questions: list[str], options: AskOptions) -> list[Answer]:
        self.chunks.append(len(questions))
        return super().answer_batch(questions, options)


def test_run_eval_answers_in_batches_and_writes_after_each(tmp_path: Path, qfile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeBatchAssistant()
    written: list[int] = []
    real_write = runner.atomic_write_jsonl
    monkeypatch.setattr(runner, "atomic_write_jsonl", lambda path, rows: (written.append(len(rows)), real_write(path, rows)))
    config = make_config(tmp_path, qfile, systems=["ft", "ft+rag"], batch_size=3)
    result = runner.run_eval(config, progress=False, assistant_factory=lambda c, r: fake)
    assert fake.chunks == [3, 1, 3, 1]  # per system, never mixing systems in one batch
    assert written == [3, 4, 7, 8]  # answers.jsonl after every batch
    lines = [json.loads(x) for x in result.paths["answers.jsonl"].read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in lines] == ["b1", "p1", "v1", "x1"] * 2
    assert [r["refused"] for r in lines] == [False, False, False, True] * 2
    ft_rag, ft = result.metrics["systems"]["ft+rag"], result.metrics["systems"]["ft"]
    assert ft_rag["repetition_or_echo_rate"]["value"] == 0.0 and ft_rag["support"]["n"] == 3  # refusal excluded
    assert ft["support"]["value"] is None  # closed-book: no contexts to support anything
    assert "support" in result.metrics["headline"] and "looping or echoing answers 0%" in result.metrics["headline"]
    items = [i for i in result.metrics["items"] if i["system"] == "ft+rag"]
    assert all({"repetition", "echo", "support", "has_repetition", "has_echo"} <= set(i) for i in items)
    assert "근거율 / support" in result.paths["report.html"].read_text(encoding="utf-8")
    assert "looping or echoing" in result.paths["report.md"].read_text(encoding="utf-8")
    with pytest.raises(UserError, match="batch_size"):
        runner.run_eval(make_config(tmp_path, qfile, batch_size=0), progress=False, assistant_factory=lambda c, r: fake)


def test_fail_under_gate(tmp_path: Path, qfile: Path) -> None:
    factory = lambda c, r: FakeAssistant()  # noqa: E731
    low = runner.run_eval(make_config(tmp_path, qfile, systems=["base"], fail_under=0.5), progress=False, assistant_factory=factory)
    assert low.passed is False and low.metrics["fail_under"]["system"] == "base"
    high = runner.run_eval(make_config(tmp_path, qfile, systems=["ft"], fail_under=0.5), progress=False, assistant_factory=factory)
    assert high.passed is True


def test_system_and_adapter_validation(tmp_path: Path, qfile: Path) -> None:
    with pytest.raises(UserError, match="adapter"):
        runner.parse_systems("base,ft", {})
    assert [s.name for s in runner.parse_systems("base, base+rag,base", {})] == ["base", "base+rag"]
    named = runner.parse_systems(["v2+rag"], {"v2": "/x"})
    assert named[0].model == "v2" and named[0].use_retrieval
    config = EvalConfig(questions=qfile, systems=["ft"], adapter=tmp_path / "missing", output_dir=tmp_path / "o")
    with pytest.raises(UserError, match="Adapter directory"):
        runner.run_eval(config, progress=False, assistant_factory=lambda c, r: FakeAssistant())


def test_run_eval_with_fake_judge_endpoint(tmp_path: Path, qfile: Path) -> None:
    import importlib.util

    # Load the fake endpoint from its sibling file by path, whatever pytest's import mode.
    spec = importlib.util.spec_from_file_location("_eval_judge_fakes", Path(__file__).with_name("test_eval_judge.py"))
    assert spec is not None and spec.loader is not None
    fakes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fakes)
    FakeEndpoint = fakes.FakeEndpoint  # noqa: N806

    def reply(body: dict) -> tuple[int, str]:
        text = body["messages"][-1]["content"]
        if "[답변 A]" in text:  # pairwise: prefer the answer without leaked markup
            a_part = text.split("[답변 A]")[1].split("[답변 B]")[0]
            return 200, json.dumps({"winner": "B" if "<script>" in a_part else "A", "이유": "-"})
        if "[평가할 답변]" in text:
            bad = "<script>" in text.split("[평가할 답변]")[1]
            score = 2 if bad else 5
            return 200, json.dumps({k: score for k in ("정확성", "완성도", "전문성", "구조화", "한국어")} | {"이유": "ok"})
        return 200, '{"ok": true}'

    fake = FakeEndpoint(reply)
    try:
        config = make_config(tmp_path, qfile, judge_url=fake.url, judge_model="fake-judge")
        result = runner.run_eval(config, progress=False, assistant_factory=lambda c, r: FakeAssistant())
    finally:
        fake.close()
    judge = result.metrics["judge"]
    assert judge["failures"] == 0
    assert judge["rubric"]["ft+rag"]["overall"] == 5.0 and judge["rubric"]["base"]["정확성"] == 2.0
    pair = judge["pairwise"]["ft vs base"]
    assert pair["wins_b"] == 4 and pair["order_consistency"] == 1.0
    assert set(judge["pairwise"]) == {"ft vs base", "ft+rag vs base+rag", "ft+rag vs passage"}
    item = next(i for i in result.metrics["items"] if i["system"] == "ft" and i["id"] == "b1")
    assert item["judge"]["overall"] == 5.0
    assert "LLM 평가 루브릭" in result.paths["report.html"].read_text(encoding="utf-8")


def run_cli(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> int:
    from aldlab import cli

    monkeypatch.setattr(sys, "argv", ["aldlab", *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
    return int(info.value.code or 0)


def test_cli_bad_question_file_exits_2_with_location(tmp_path: Path, monkeypatch, capsys) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(QUESTIONS[0], ensure_ascii=False) + "\n" + '{"id": "z", "question": "q"}\n', encoding="utf-8")
    code = run_cli(monkeypatch, ["eval", "--questions", str(bad), "--systems", "base", "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "bad.jsonl:2" in err and "topic" in err


def test_cli_runs_and_gates(tmp_path: Path, qfile: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(runner, "default_assistant_factory", lambda c, r: FakeAssistant())
    out = tmp_path / "cli"
    args = ["eval", "--questions", str(qfile), "--systems", "base,base+rag", "--output", str(out), "--quiet"]
    assert run_cli(monkeypatch, args) == 0
    assert (out / "report.html").exists() and "base" in capsys.readouterr().out
    assert run_cli(monkeypatch, [*args, "--fail-under", "0.9"]) == 1
    seen: list[int] = []
    monkeypatch.setattr(runner, "default_assistant_factory", lambda c, r: (seen.append(c.batch_size), FakeBatchAssistant())[1])
    assert run_cli(monkeypatch, [*args, "--batch-size", "3"]) == 0 and seen == [3]


@pytest.mark.parametrize("preset", ["cpu-demo", "gpu-qwen7b", "gpu-qwen7b-qlora"])
def test_presets_have_a_valid_eval_section(preset: str) -> None:
    from aldlab.config import resolve_config

    config = resolve_config(EvalConfig, "eval", preset=preset)
    assert runner.parse_systems(config.systems, {"ft": "x"})
    assert 1 <= config.max_new_tokens <= 1024


class EchoingAssistant(FakeAssistant):
    """base echoes the system prompt / RAG instruction (both contain the refusal phrase), as an
    untuned model does; ft refuses the unanswerable question properly."""

    def answer(self, question: str, options: AskOptions) -> Answer:
        from aldlab.prompts import RAG_INSTRUCTION, SYSTEM_PROMPT

        answer = super().answer(question, options)
        model, use_retrieval = options.model, options.use_retrieval
        if model == "base":
            answer.text = f"{RAG_INSTRUCTION} {SYSTEM_PROMPT}" if use_retrieval else SYSTEM_PROMPT
        return answer


def test_an_echoed_system_prompt_is_not_counted_as_a_refusal(tmp_path: Path, qfile: Path) -> None:
    """The echo contains "관련 정보가 부족합니다" inside the instruction; eval must call it an
    answer (as the service shows it), not a refusal that earns refusal recall."""
    from aldlab.prompts import REFUSAL, SYSTEM_PROMPT

    assert REFUSAL in SYSTEM_PROMPT  # the trap this test is about
    result = runner.run_eval(make_config(tmp_path, qfile), progress=False, assistant_factory=lambda c, r: EchoingAssistant())
    lines = [json.loads(x) for x in result.paths["answers.jsonl"].read_text(encoding="utf-8").splitlines()]
    echoes = [r for r in lines if r["system"] in ("base", "base+rag")]
    assert len(echoes) == 8 and not any(r["refused"] for r in echoes)
    systems = result.metrics["systems"]
    assert systems["base"]["refusal_recall"]["value"] == 0.0 and systems["base+rag"]["refusal_recall"]["value"] == 0.0
    assert systems["ft"]["refusal_recall"]["value"] == 1.0  # a real refusal still counts
    assert {r["id"] for r in lines if r["refused"]} == {"x1"}


def test_passage_system_is_the_yardstick_of_the_headline(tmp_path: Path, qfile: Path) -> None:
    """`passage` answers with the top retrieved passage verbatim (no model) after the same
    refusal gate; the headline compares ft+rag with it, lengths included."""
    fake = FakeAssistant()
    config = make_config(tmp_path, qfile, systems=["passage", "ft+rag"])
    result = runner.run_eval(config, progress=False, assistant_factory=lambda c, r: fake)
    rows = [json.loads(x) for x in result.paths["answers.jsonl"].read_text(encoding="utf-8").splitlines()]
    assert {r["answer"] for r in rows if r["system"] == "passage"} == {"..."}
    assert all(not c[1] or c[1] == "base" for c in fake.calls[:4])  # no adapter for the passage system
    metrics = json.loads(result.paths["metrics.json"].read_text(encoding="utf-8"))
    assert "ft+rag vs passage" in metrics["keyfact_recall_deltas"]
    assert metrics["headline"].startswith("ft+rag vs passage") and "× passage" in metrics["headline"]
    assert metrics["systems"]["passage"]["model"] == "" and metrics["systems"]["passage"]["answer_chars"] == 3.0


def test_retrieval_hits_read_the_gold_passages_from_the_contexts() -> None:
    from aldlab.evalset import Question

    questions = [
        Question("a", "q", "t", "기본", True, [["x"]], doc_ids=["d1"]),
        Question("b", "q", "t", "기본", True, [["x"]], doc_ids=["d9"]),
        Question("c", "q", "t", "기본", False),
    ]
    ctx = lambda *ids: [{"id": i, "title": "", "text": "", "score": 0.0} for i in ids]  # noqa: E731
    answers = [
        {"system": "passage", "id": "a", "contexts": ctx("d1")},
        {"system": "ft+rag", "id": "a", "contexts": ctx("d1", "d2", "d3")},
        {"system": "ft+rag", "id": "b", "contexts": ctx("d2", "d3", "d9")},
        {"system": "ft+rag", "id": "c", "contexts": ctx("d2", "d3", "d4")},
    ]
    assert runner.retrieval_hits(answers, questions) == {"system": "ft+rag", "n": 2, "hit@1": 0.5, "hit@3": 1.0}
    assert runner.retrieval_hits(answers, questions[2:]) is None
