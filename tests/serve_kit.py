"""Fixtures shared by the service tests: a tiny KB on disk, a fresh SQLite store and the fake
assistant over that KB. Test modules import them by name (`from serve_kit import ...`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aldlab.serve.fake import FakeAssistant
from aldlab.serve.testing import write_tiny_kb
from aldlab.store import Store


@pytest.fixture()
def kb_dir(tmp_path: Path) -> Path:
    return write_tiny_kb(tmp_path / "kb")


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "serve.sqlite3")


@pytest.fixture()
def assistant(kb_dir: Path) -> FakeAssistant:
    return FakeAssistant(kb_dir)
