"""typer's own usage errors reach the user in Korean first, then English, with exit code 2;
flags show no `<bool>` metavar."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from aldlab.cli import app


def _invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200", "NO_COLOR": "1"})
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "korean", "english"),
    [
        (["eval", "--bogus"], "알 수 없는 옵션입니다: --bogus", "No such option: --bogus"),
        (["eval", "--limt", "3"], "혹시: --limit", "No such option: --limt"),
        (["kb", "search"], "필수 인자 'query'", "Missing argument 'query'"),
        (["eval", "--limit", "abc"], "'--limit' 값이 올바르지 않습니다: 정수를 주세요", "Invalid value for '--limit'"),
        (["eval", "--limit", "0"], "1 이상이어야 합니다", "greater than or equal to 1"),
        (["eval", "--kb"], "옵션 --kb에는 값이 필요합니다", "requires an argument"),
        (["--debug", "true"], "켜기/끄기 플래그는 값 없이 씁니다", "No such command 'true'"),
        (["ask", "purge", "시간"], "따옴표로 감싸세요", "unexpected extra argument"),
    ],
)
def test_usage_errors_are_korean_then_english_with_exit_code_2(args: list[str], korean: str, english: str) -> None:
    code, output = _invoke(args)
    assert code == 2, output
    assert korean in output and english in output, output
    assert output.index(korean) < output.index(english), "Korean comes first"
    assert "오류 / Error" in output
    assert "Traceback" not in output


def test_no_args_still_shows_the_help_page() -> None:
    code, output = _invoke(["kb"])
    assert "Commands" in output and "오류 / Error" not in output, output
    assert code in (0, 2)


@pytest.mark.parametrize("args", [["--help"], ["eval", "--help"], ["data", "build", "--help"], ["train", "--help"]])
def test_help_shows_no_bool_metavar(args: list[str]) -> None:
    code, output = _invoke(args)
    assert code == 0, output
    assert "<bool>" not in output
    # the value-taking options keep their type
    if args != ["--help"]:
        assert re.search(r"<(int|str|path|float)", output), output


def test_dataclass_bool_fields_are_on_off_flags() -> None:
    code, output = _invoke(["data", "build", "--help"])
    assert code == 0
    assert "--no-refusal-twins" in output
