"""report.html reads top-down as a user needs it (issue 25): headline first, per-topic bars
with n and CI (small topics named, not drawn), batched latency said so, the training loss
when the adapter has a log, and a score on every per-question row."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from aldlab.eval import runner
from aldlab.eval.report import (
    answer_score,
    glance_rows,
    loss_plot,
    loss_section,
    moving_average,
    split_steps_by_length,
    verdict,
)
from aldlab.rag.types import Answer, AskOptions
from test_eval_runner import FT_ANSWERS, QUESTIONS, FakeAssistant, make_config

#: Two more "ALD 기본" questions: that topic reaches n=3 and is drawn, the others are not.
EXTRA = [
    {"id": f"b{i}", "question": f"ALD 사이클 질문 {i}?", "topic": "ALD 기본", "difficulty": "기본", "answerable": True,
     "expect": [["사이클", "cycle"]]}
    for i in (2, 3)
]


class ThreeBasicsAssistant(FakeAssistant):
    def __init__(self) -> None:
        super().__init__()
        self.by_text.update({q["question"]: q["id"] for q in EXTRA})

    def answer(self, question: str, options: AskOptions) -> Answer:
        qid = self.by_text[question]
        if qid in FT_ANSWERS:
            return super().answer(question, options)
        text = "ALD는 한 사이클씩 쌓습니다." if options.model == "ft" else "모르겠습니다."
        return Answer(question=question, text=text, passages=[], refused=False, latency_s=0.2, model=options.model)


def _history() -> list[dict[str, Any]]:
    """A group_by_length run: long retrieval steps learn (loss falls), short closed-book ones do not."""
    steps: list[dict[str, Any]] = [{"step": 0, "eval_loss": 2.3}]
    for step in range(1, 21):
        long = step % 2 == 0
        steps.append({"step": step, "loss": (1.0 / step if long else 3.2), "padded_tokens": (2400 if long else 600) + step,
                      "tokens": 300})
    steps[-1].update({"eval_loss": 1.4, "train_loss": 1.5})
    return steps


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("report")
    qfile = root / "q.jsonl"
    qfile.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in [*QUESTIONS, *EXTRA]), encoding="utf-8")
    config = make_config(root, qfile)
    (Path(config.adapter) / "training_meta.json").write_text(
        json.dumps({"config": {"batch_size": 4}, "history": _history()}), encoding="utf-8"
    )
    result = runner.run_eval(config, progress=False, assistant_factory=lambda c, r: ThreeBasicsAssistant())
    return {
        "page": result.paths["report.html"].read_text(encoding="utf-8"),
        "md": result.paths["report.md"].read_text(encoding="utf-8"),
        "metrics": result.metrics,
    }


def test_page_opens_with_the_headline_not_the_wide_table(report: dict[str, Any]) -> None:
    page = report["page"]
    headline, wide = page.index('class="headline"'), page.index("전체 지표 / all metrics")
    glance = page.index('class="glance"')
    assert headline < glance < page.index("그래프 / plots") < wide
    # the glance table: main system vs passage, recall with CI, length ratio, refusal counts
    header, rows = glance_rows(report["metrics"])
    assert header[1].startswith("ft+rag") and header[2].startswith("passage")
    labels = [r[0] for r in rows]
    assert any("key-fact recall" in label for label in labels) and any("answer length" in label for label in labels)
    assert rows[2][1] == "1/1"  # the one out-of-scope question, refused by ft+rag
    assert re.search(r"\d+ \(\d\.\d\d× passage\)", rows[1][1])
    assert "gold passage retrieved" in page  # measured or said why not
    assert report["md"].index("key-fact recall") < report["md"].index("## 전체 지표 / all metrics")


def test_small_topics_are_named_not_drawn_and_latency_is_called_batched(report: dict[str, Any]) -> None:
    page = report["page"]
    note = re.search(r"topics with fewer than 3 questions[^<]*", page)
    assert note and "Purge (n=1)" in note.group(0) and "ALD 기본" not in note.group(0)  # n=3: drawn
    assert "batched" in page and "aldlab ask" in page


def test_loss_curve_from_the_training_log_splits_long_and_short_steps(report: dict[str, Any]) -> None:
    page = report["page"]
    assert "학습 손실 / training loss" in page and "group_by_length" in page
    # overall, topic (ALD 기본), difficulty (기본, n=4), refusal, latency, loss
    assert page.count('src="data:image/png;base64,') == 6
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")


def test_every_question_row_shows_each_systems_score(report: dict[str, Any]) -> None:
    page = report["page"]
    summary = re.search(r"<summary>p1 ·.*?</summary>", page, re.S)
    assert summary and "ft+rag 2/2 · 1.00" in summary.group(0) and "base 0/2 · 0.00" in summary.group(0)
    out_of_scope = re.search(r"<summary>x1 ·.*?</summary>", page, re.S)
    assert out_of_scope and "ft 거절 ✓" in out_of_scope.group(0) and "base 답변 ✗" in out_of_scope.group(0)


def test_answer_score_wording() -> None:
    assert answer_score({"keyfact_hits": [True, False, True], "keyfact_recall": 2 / 3, "refused": False}, True) == "2/3 · 0.67"
    assert answer_score({"keyfact_hits": [False], "keyfact_recall": 0.0, "refused": True}, True).endswith("거절 ✗ / refused ✗")
    assert answer_score({"refused": True}, False) == "거절 ✓ / refused ✓"
    assert answer_score({}, True) == "–"


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        ({"value": -0.2, "low": -0.3, "high": -0.1, "n": 9}, "fewer key facts"),
        ({"value": 0.2, "low": 0.1, "high": 0.3, "n": 9}, "more key facts"),
        ({"value": -0.08, "low": -0.2, "high": 0.02, "n": 9}, "CI spans 0"),
    ],
)
def test_verdict_reads_the_confidence_interval(delta: dict[str, Any], expected: str) -> None:
    metrics = {"primary_system": "ft+rag", "keyfact_recall_deltas": {"ft+rag vs passage": delta},
               "systems": {"ft+rag": {"keyfact_recall": {"value": 0.7}}}}
    assert expected in verdict(metrics)


def test_step_lengths_split_only_when_they_fall_into_two_groups() -> None:
    steps = [h for h in _history() if "loss" in h]
    threshold = split_steps_by_length(steps, 4)
    assert threshold is not None and 160 < threshold < 590
    even = [{"padded_tokens": 600 + 10 * i} for i in range(10)]
    assert split_steps_by_length(even, 4) is None
    _, caption = loss_plot(_history(), 4)
    assert "group_by_length" in caption and "eval loss" in caption
    _, plain = loss_plot([{"step": i, "loss": 1.0, "padded_tokens": 600} for i in range(1, 10)], 4)
    assert "5-step mean" in plain and "group_by_length" not in plain


def test_no_loss_section_without_a_training_log(tmp_path: Path) -> None:
    assert loss_section({"ft": str(tmp_path)}) == "" and loss_section(None) == ""


def test_moving_average() -> None:
    assert moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
