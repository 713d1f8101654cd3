"""`aldlab ask` / `aldlab chat` end to end (no LLM: context-only and refusals)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rag_testkit import install_fake_embedder, write_tiny_kb
from typer.testing import CliRunner

from aldlab.cli import app
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
