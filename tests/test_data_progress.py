"""The dataset build says what it is doing (issue 25: 91 s of silence), without changing what
it writes; `aldlab data review` finds the pipeline's dataset without being told."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from aldlab.data.build import build_dataset
from aldlab.data.build_progress import STEP_LABELS, BuildProgress
from aldlab.data.commands import app, newest_dataset_dir
from aldlab.data.config import DataConfig
from test_data_build import make_kb


@pytest.fixture(scope="module")
def small_kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_kb(tmp_path_factory.mktemp("kb") / "kb", n_synthetic=30)


def _config(kb: Path, out: Path) -> DataConfig:
    return DataConfig(kb=kb, output_dir=out, train_size=60, eval_size=15, seed=3, semantic_model="hash")


def test_progress_names_each_step_in_a_log_and_leaves_the_files_unchanged(
    small_kb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quiet = build_dataset(_config(small_kb, tmp_path / "quiet"), progress=False)
    assert capsys.readouterr().err == ""
    shown = build_dataset(_config(small_kb, tmp_path / "shown"), progress=True)
    log = capsys.readouterr().err  # not a terminal: one plain line per step
    for step in ("inputs", "facts", "split", "render", "checks", "write"):
        assert STEP_LABELS[step] in log, log
    assert STEP_LABELS["teacher"] not in log  # no teacher configured: not announced
    assert log.index(STEP_LABELS["facts"]) < log.index(STEP_LABELS["split"]) < log.index(STEP_LABELS["write"])
    for name in ("train.jsonl", "eval.jsonl"):
        assert (quiet.output_dir / name).read_bytes() == (shown.output_dir / name).read_bytes()
    written = json.loads(shown.stats_path.read_text(encoding="utf-8"))["timings_s"]
    assert list(written) == ["inputs", "facts", "teacher", "split", "render", "checks"]  # as before the progress


def test_embedding_progress_is_logged_by_quarters() -> None:
    out = io.StringIO()
    with BuildProgress(["split"], console=Console(file=out, width=200)) as steps:
        steps.start("split")
        for done in range(0, 101, 10):
            steps.embedded(done, 100)
    lines = out.getvalue().splitlines()
    assert any("embedding sentences" in line and line.endswith(": 100") for line in lines), lines
    assert [line.strip() for line in lines if "%" in line] == ["30/100 (30%)", "50/100 (50%)", "80/100 (80%)", "100/100 (100%)"]
    assert set(steps.timings) == {"split"}


def test_disabled_progress_prints_nothing_but_still_times() -> None:
    out = io.StringIO()
    with BuildProgress(["inputs", "facts"], enabled=False, console=Console(file=out)) as steps:
        steps.start("inputs")
        steps.start("facts")
        steps.embedded(5, 10)
    assert out.getvalue() == "" and set(steps.timings) == {"inputs", "facts"}


def test_review_defaults_to_the_newest_dataset_under_runs(
    small_kb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = build_dataset(_config(small_kb, tmp_path / "built"), progress=False)
    older, newer = tmp_path / "runs" / "data", tmp_path / "runs" / "cpu-demo" / "data"
    for target, age in ((older, 100), (newer, 0)):
        shutil.copytree(built.output_dir, target)
        stamp = (target / "train.jsonl").stat().st_mtime - age
        os.utime(target / "train.jsonl", (stamp, stamp))
    (tmp_path / "runs" / "empty" / "data").mkdir(parents=True)  # no dataset in it: never chosen
    assert newest_dataset_dir(tmp_path / "runs") == Path(tmp_path / "runs" / "cpu-demo" / "data")

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["review", "-n", "2"])
    assert result.exit_code == 0, result.output
    assert "runs/cpu-demo/data" in result.output  # says which one it used
    assert (newer / "review.md").exists() and not (older / "review.md").exists()


def test_review_without_any_dataset_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aldlab.errors import UserError

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["review"])
    assert isinstance(result.exception, UserError)
    assert "aldlab pipeline" in str(result.exception) and "runs/" in str(result.exception)
