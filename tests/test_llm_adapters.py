"""check_adapter_dir: the one adapter-directory check every stage uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from aldlab.errors import UserError
from aldlab.llm.adapters import check_adapter_dir


def test_an_adapter_dir_comes_back_as_a_path(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text("{}", encoding="utf-8")
    assert check_adapter_dir(str(tmp_path)) == tmp_path
    assert check_adapter_dir(tmp_path, require=["adapter_config.json"]) == tmp_path


def test_missing_dir_or_file_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")
    for path in (tmp_path / "missing", tmp_path / "file"):
        with pytest.raises(UserError, match="Adapter directory not found") as info:
            check_adapter_dir(path)
        assert info.value.path == str(path) and "aldlab train" in (info.value.hint or "")


def test_a_dir_without_a_required_file_is_not_an_adapter(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"Not an adapter directory \(no adapter_config.json\)") as info:
        check_adapter_dir(tmp_path, require=["adapter_config.json"], hint="do this")
    assert info.value.path == str(tmp_path) and info.value.hint == "do this"
