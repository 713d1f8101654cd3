"""transformers/peft noise stays out of normal output (issue 25) and comes back with --debug."""

from __future__ import annotations

import os
import sys
import warnings

import pytest

from aldlab.llm.model import QUIET_ENV, quiet_model_libraries


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*QUIET_ENV, "ALDLAB_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "transformers", raising=False)  # only the env vars and filters
    return monkeypatch


def _warnings_seen_after_quieting() -> list[str]:
    with warnings.catch_warnings(record=True) as seen:  # restores the filters afterwards
        warnings.simplefilter("always")
        quiet_model_libraries()
        warnings.warn_explicit("deprecated", FutureWarning, "modeling_utils.py", 1, module="transformers.modeling_utils")
        warnings.warn_explicit("peft says", UserWarning, "peft_model.py", 1, module="peft.peft_model")
        warnings.warn_explicit("ours", FutureWarning, "assistant.py", 1, module="aldlab.rag.assistant")
    return [str(w.message) for w in seen]


def test_library_warnings_and_bars_are_off_in_normal_mode(clean_env: pytest.MonkeyPatch) -> None:
    assert _warnings_seen_after_quieting() == ["ours"]  # aldlab's own warnings still show
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"  # the "Loading weights" bar
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "error"


def test_debug_keeps_everything(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ALDLAB_DEBUG", "1")
    assert _warnings_seen_after_quieting() == ["deprecated", "peft says", "ours"]
    assert not any(name in os.environ for name in QUIET_ENV)


def test_a_users_own_setting_wins(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TRANSFORMERS_VERBOSITY", "info")
    _warnings_seen_after_quieting()
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "info"
