"""`aldlab ask` / `aldlab chat` end to end (no LLM: context-only and refusals)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rag_testkit import install_fake_embedder, write_tiny_kb
from typer.testing import CliRunner

from aldlab.cli import app
from aldlab.llm.generator import Reply
from aldlab.settings import shipped_kb_dir

runner = CliRunner()


@pytest.fixture()
def kb_dir(tmp_path: Path) -> Path:
    install_fake_embedder()
    return write_tiny_kb(tmp_path / "kb")


@pytest.fixture()
def no_refusal(tmp_path: Path) -> list[str]:
    """The tiny KB has no dev set to calibrate on; these tests are about output, not refusal."""
    path = tmp_path / "rag.yaml"
    path.write_text("rag:\n  refusal_threshold: 0.0\n", encoding="utf-8")
    return ["--config", str(path)]


def test_ask_context_only_prints_contexts_and_scores(kb_dir: Path, no_refusal: list[str]) -> None:
    result = runner.invoke(app, ["ask", "VG12 게이지", "--kb", str(kb_dir), "--context-only", "--dense-model", "fake",
                                 "--top-k", "2", *no_refusal])
    assert result.exit_code == 0, result.output
    assert "[tiny-005]" in result.output and "VG12 게이지" in result.output
    assert "confidence" in result.output


def test_a_refusal_before_any_model_names_no_model(kb_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "strict.yaml"
    config.write_text("rag:\n  refusal_threshold: 1.0\n", encoding="utf-8")  # everything is refused
    result = runner.invoke(app, ["ask", "김치찌개 끓이는 법", "--kb", str(kb_dir), "--context-only", "--dense-model", "fake",
                                 "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "관련 정보가 부족합니다" in result.output and "refused before any model call" in result.output
    assert "모델 / model:" not in result.output


def test_ask_json_has_passages_confidence_and_threshold(kb_dir: Path, no_refusal: list[str]) -> None:
    result = runner.invoke(app, ["ask", "로드락 Vent", "--kb", str(kb_dir), "--context-only", "--json",
                                 "--dense-model", "fake", "--filter-keyword", "로드락", *no_refusal])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [p["id"] for p in data["passages"]] == ["tiny-002"]
    assert {"confidence", "threshold", "refused", "citations", "latency_s"} <= set(data)
    assert data["passages"][0]["title"] == "로드락 Vent" and "bm25" in data["passages"][0]["scores"]


def test_ask_bad_keyword_and_missing_adapter_are_clean_errors(kb_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ask", "x", "--kb", str(kb_dir), "--context-only", "--dense-model", "fake",
                                 "--filter-keyword", "없는키워드"])
    assert result.exit_code != 0 and "없는키워드" in str(result.exception)
    result = runner.invoke(app, ["ask", "x", "--kb", str(kb_dir), "--adapter", str(tmp_path / "none")])
    assert result.exit_code != 0 and "none" in str(result.exception)


def test_chat_handles_follow_ups_and_commands(kb_dir: Path, no_refusal: list[str]) -> None:
    lines = "로드락 Vent 절차\n그거 왜 천천히 해?\n/reset\n/model nope\n/exit\n"
    result = runner.invoke(
        app, ["chat", "--kb", str(kb_dir), "--context-only", "--dense-model", "fake", *no_refusal], input=lines
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("[tiny-002]") >= 2  # the follow-up retrieved the same topic
    assert "history cleared" in result.output and "available" in result.output


@pytest.mark.parametrize(
    ("question", "expected_prefix"),
    [("로드락 Vent에 건조 N2를 쓰는 이유", "loadlock-"), ("MFC Zero drift 원인", "mfc-"), ("Purge 시간이 너무 짧으면?", "purge-")],
)
def test_shipped_kb_answers_seed_topics_with_contexts(question: str, expected_prefix: str) -> None:
    if not (shipped_kb_dir() / "documents").exists():
        pytest.skip("shipped KB not present")
    # BM25 only keeps this test fast (no 430-document embedding); calibration is fitted on dev.jsonl.
    result = runner.invoke(app, ["ask", question, "--context-only", "--json", "--dense-model", "none"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert not data["refused"] and data["passages"][0]["id"].startswith(expected_prefix)


@pytest.mark.parametrize("question", ["내일 서울 날씨 어때?", "된장찌개 맛있게 끓이는 법", "테슬라 주가 전망 알려줘"])
def test_shipped_kb_refuses_off_topic(question: str) -> None:
    if not (shipped_kb_dir() / "documents").exists():
        pytest.skip("shipped KB not present")
    result = runner.invoke(app, ["ask", question, "--json", "--dense-model", "none"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["refused"] and data["text"].startswith("관련 정보가 부족합니다") and data["citations"] == []


class FakeHF:
    """Stands in for HFGenerator: records how it was built and which adapter answered."""

    built: list[dict] = []
    text = "길게는 100 ms, 짧게는 10 ms, 20 ms 입니다"

    def __init__(self, model_name=None, adapters=None, **_: object) -> None:  # noqa: ANN001
        self.adapters = dict(adapters or {})
        self.calls: list[str | None] = []
        FakeHF.built.append({"model_name": model_name, "adapters": self.adapters, "generator": self})

    def generate(self, messages, *, max_new_tokens=256, adapter=None):  # noqa: ANN001, ANN201
        self.calls.append(adapter)
        return self.text

    def reply(self, messages, *, max_new_tokens=256, adapter=None):  # noqa: ANN001, ANN201
        return Reply(self.generate(messages, max_new_tokens=max_new_tokens, adapter=adapter))

    def stream(self, messages, *, max_new_tokens=256, adapter=None):  # noqa: ANN001, ANN201
        yield self.generate(messages, max_new_tokens=max_new_tokens, adapter=adapter)

    def models(self) -> list[str]:
        return ["base", *self.adapters]


@pytest.fixture()
def fake_hf(monkeypatch: pytest.MonkeyPatch) -> type[FakeHF]:
    import aldlab.llm.hf_generate

    FakeHF.built = []
    monkeypatch.setattr(aldlab.llm.hf_generate, "HFGenerator", FakeHF)
    return FakeHF


def test_ask_uses_the_recorded_adapter_and_says_so(
    kb_dir: Path, no_refusal: list[str], fake_hf: type[FakeHF], tmp_path: Path
) -> None:
    from aldlab.settings import record_default_adapter

    adapter = tmp_path / "run" / "adapter"
    adapter.mkdir(parents=True)
    record_default_adapter(adapter, "embedded")
    result = runner.invoke(app, ["ask", "퍼지 시간이 짧으면?", "--kb", str(kb_dir), "--dense-model", "fake", *no_refusal])
    assert result.exit_code == 0, result.output
    built = fake_hf.built[-1]
    assert built["adapters"] == {"ft": str(adapter.resolve())} and built["generator"].calls == ["ft"]
    assert "모델 / model: ft" in result.output and "not instruction-tuned" not in result.output
    # the reply cites nothing and no context supports it: the best passage is shown, and the CLI says why
    assert "뒷받침하는 문서가 없어" in result.output and "참고 문서 / contexts" in result.output


def test_ask_base_way_out_and_base_only_warning(
    kb_dir: Path, no_refusal: list[str], fake_hf: type[FakeHF], tmp_path: Path
) -> None:
    from aldlab.settings import record_default_adapter

    args = ["ask", "퍼지 시간이 짧으면?", "--kb", str(kb_dir), "--dense-model", "fake", *no_refusal]
    result = runner.invoke(app, args)  # nothing recorded yet: base model, with the warning
    assert result.exit_code == 0, result.output
    assert fake_hf.built[-1]["generator"].calls == [None]
    assert "not instruction-tuned" in result.output and "aldlab pipeline" in result.output
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    record_default_adapter(adapter, None)
    result = runner.invoke(app, [*args, "--no-adapter"])
    assert result.exit_code == 0, result.output
    assert fake_hf.built[-1]["adapters"] == {} and fake_hf.built[-1]["generator"].calls == [None]
    assert "모델 / model: base" in result.output and "not instruction-tuned" in result.output


def test_chat_shows_the_passage_that_replaced_a_streamed_reply(
    kb_dir: Path, no_refusal: list[str], fake_hf: type[FakeHF], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aldlab.rag.types import FALLBACK_NOTES

    monkeypatch.setattr(FakeHF, "text", "관련 정보가 부족합니다. 참고 문서에 없습니다.")
    result = runner.invoke(app, ["chat", "--kb", str(kb_dir), "--dense-model", "fake", *no_refusal],
                           input="VG12는 무슨 게이지야?\n/exit\n")
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert " ".join(FALLBACK_NOTES["model_refused"][0].split()) in flat
    assert "capacitance manometer" in flat  # the best passage, shown after the model's streamed refusal


def test_a_recorded_adapter_that_is_gone_is_reported_not_used(fake_hf: type[FakeHF], tmp_path: Path) -> None:
    from aldlab.rag.build import choose_model
    from aldlab.settings import default_adapter, record_default_adapter

    record_default_adapter(tmp_path / "deleted", "embedded")
    assert default_adapter() is not None and not default_adapter().exists()
    choice = choose_model(None, None)
    assert choice.adapters == {} and choice.default == "base" and "gone" in choice.notes[0]
    # an adapter trained on another base is not put on this one
    (tmp_path / "other").mkdir()
    record_default_adapter(tmp_path / "other", "Qwen/Qwen2.5-7B-Instruct")
    choice = choose_model("embedded", None)
    assert choice.adapters == {} and "another base" in choice.notes[0]
    assert choose_model(None, None).adapters == {"ft": str((tmp_path / "other").resolve())}


def test_empty_question_and_bad_port_fail_before_anything_loads() -> None:
    """Checked before the index is built or a model loads (issue 25: 60+ s cold before the error)."""
    empty = runner.invoke(app, ["ask", "   ", "--dense-model", "fake"])
    assert empty.exit_code != 0 and "질문이 비어 있습니다" in str(empty.exception)
    port = runner.invoke(app, ["serve", "--port", "99999"])
    assert port.exit_code == 2 and "65535" in port.output
