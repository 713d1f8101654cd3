"""Every command group is reachable from the `aldlab` entry point."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from aldlab.cli import app


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["feedback", "--help"], "approve"),
        (["data", "--help"], "review"),
        (["kb", "--help"], "audit"),
    ],
)
def test_command_groups_are_wired(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert expected in result.output
