"""Shared test fixtures: paths to the legacy deployment files beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LEGACY_DIR = REPO.parent / "shared" / "legacy"


@pytest.fixture()
def legacy_dir() -> Path:
    """../shared/legacy: real legacy files, read in place (never copied into the repo)."""
    if not (LEGACY_DIR / "docs_ald.json").exists():
        pytest.skip("../shared/legacy is not beside this checkout")
    return LEGACY_DIR


@pytest.fixture(autouse=True)
def _llama_cpp_absent(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine 'auto' picks llama.cpp when llama-cpp-python is installed (the `cpu` extra);
    tests that build fake adapters and generators must not depend on what a machine has, so
    they see it absent unless marked `real_llama_cpp` (tests that need it patch it back in)."""
    if request.node.get_closest_marker("real_llama_cpp") is None:
        from aldlab.llm import llamacpp

        monkeypatch.setattr(llamacpp, "llama_cpp_available", lambda: False)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Index caches go to a temp ALDLAB_HOME; the embedded model dir is shared read-only."""
    home = tmp_path_factory.mktemp("aldlab_home")
    real_home = Path.home() / ".cache" / "aldlab"
    models = Path(os.environ.get("ALDLAB_HOME", real_home)) / "models"
    models.mkdir(parents=True, exist_ok=True)  # the embedded model is built once, shared by all tests
    (home / "models").symlink_to(models, target_is_directory=True)
    monkeypatch.setenv("ALDLAB_HOME", str(home))
