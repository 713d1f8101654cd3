"""typer's own usage errors and help, in Korean first and English.

A newcomer's first contact with `aldlab` is often a typo: an unknown option, a missing
argument, `--limit abc`. typer reports those itself, before any aldlab code runs, in an
English-only box. `BilingualGroup` (the root command's class) catches them on the way out
and re-raises them with a Korean line above the English one, as `UserError` messages read;
they stay usage errors, so the exit code stays 2.

Only typer is imported here: `aldlab --help` stays fast.
"""

from __future__ import annotations

import re
from typing import Any

import typer
from typer.core import TyperGroup, TyperOption

# typer >= 0.2x vendors click under `typer._click`, older typer uses click itself; both
# raise subclasses of the UsageError that `typer.BadParameter` derives from.
UsageError: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

#: Words a user types after a flag when they expect it to take a value (`--debug true`).
_BOOL_WORDS = {"true", "false", "yes", "no", "on", "off", "1", "0"}

#: English details of typer's value checks -> Korean. Pattern on the English detail, Korean
#: template (the pattern's groups fill it). The first match wins; no match keeps only the
#: generic Korean line, the English detail follows it anyway.
_VALUE_DETAILS: list[tuple[str, str]] = [
    (r"valid integer|is not a valid int", "정수를 주세요"),
    (r"valid number|is not a valid float", "숫자를 주세요"),
    (r"valid boolean|is not a valid bool", "true 또는 false를 주세요"),
    (r"greater than or equal to (\S+?)\.?$", "{0} 이상이어야 합니다"),
    (r"greater than (\S+?)\.?$", "{0}보다 커야 합니다"),
    (r"less than or equal to (\S+?)\.?$", "{0} 이하여야 합니다"),
    (r"less than (\S+?)\.?$", "{0}보다 작아야 합니다"),
    (r"not in the range", "허용 범위를 벗어났습니다"),
    (r"does not exist", "경로가 없습니다"),
    (r"[Ii]nput should be (.+)$|is not one of (.+)$", "다음 중 하나를 주세요: {0}"),
]


class BilingualGroup(TyperGroup):
    """The root command: every usage error below it leaves with a Korean line first.

    Sub-commands are parsed inside the root's `invoke`, so catching there covers them all;
    the root's own options are parsed in `make_context`.
    """

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except UsageError as exc:
            raise bilingual_usage_error(exc) from exc

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            raise bilingual_usage_error(exc) from exc


def bilingual_usage_error(exc: Exception) -> Exception:
    """The same usage error (same context, exit code 2) with a Korean line above the English."""
    if type(exc).__name__ == "NoArgsIsHelpError" or getattr(exc, "bilingual", False):
        return exc  # the help page itself, or already translated by an inner group
    english = exc.format_message()  # type: ignore[attr-defined]
    translated = UsageError(f"{korean_usage_message(exc)}\n{english}", getattr(exc, "ctx", None))  # type: ignore[call-arg]
    translated.bilingual = True  # type: ignore[attr-defined]
    return translated


def korean_usage_message(exc: Exception) -> str:
    """One Korean line for a click/typer usage error, from its type and fields."""
    kind = type(exc).__name__
    message = str(getattr(exc, "message", "") or "")
    if kind == "NoSuchOption":
        text = f"알 수 없는 옵션입니다: {exc.option_name}"  # type: ignore[attr-defined]
        possibilities = getattr(exc, "possibilities", None)
        if possibilities:
            text += f" (혹시: {', '.join(sorted(possibilities))})"
        return text
    if kind == "MissingParameter":
        what = "인자" if getattr(exc, "param_type", None) == "argument" or _is_argument(exc) else "옵션"
        return f"필수 {what} {_param_hint(exc)}이(가) 없습니다"
    if kind == "BadParameter":
        detail = _korean_value_detail(message)
        return f"{_param_hint(exc)} 값이 올바르지 않습니다" + (f": {detail}" if detail else "")
    if kind == "BadOptionUsage":
        option = getattr(exc, "option_name", "")
        if "requires" in message:
            return f"옵션 {option}에는 값이 필요합니다"
        if "does not take a value" in message:
            return f"옵션 {option}은(는) 값을 받지 않는 켜기/끄기 플래그입니다 ({option}=… 대신 {option}만 쓰세요)"
        return f"옵션 {option}을(를) 잘못 썼습니다"
    if match := re.match(r"No such command '(.+)'", message):
        word = match.group(1)
        if word.lower() in _BOOL_WORDS:
            return (f"알 수 없는 명령입니다: '{word}' — 켜기/끄기 플래그는 값 없이 씁니다 "
                    f"(--debug true 대신 --debug)")
        return f"알 수 없는 명령입니다: '{word}'"
    if match := re.match(r"Got unexpected extra argument(?:\(s\)|s)? \((.*)\)", message):
        return f"예상하지 못한 인자입니다: {match.group(1)} (공백이 든 질문은 따옴표로 감싸세요)"
    if message.startswith("Missing command"):
        return "명령을 주세요"
    return "명령줄 사용법이 올바르지 않습니다"


def _param_hint(exc: Exception) -> str:
    hint = getattr(exc, "param_hint", None)
    if hint is None and getattr(exc, "param", None) is not None:
        hint = exc.param.get_error_hint()  # type: ignore[attr-defined]
    if hint is None:
        return "값"
    return hint if isinstance(hint, str) else " / ".join(repr(h) for h in hint)


def _is_argument(exc: Exception) -> bool:
    param = getattr(exc, "param", None)
    return getattr(param, "param_type_name", None) == "argument"


def _korean_value_detail(english: str) -> str:
    for pattern, korean in _VALUE_DETAILS:
        if match := re.search(pattern, english):
            return korean.format(*[g for g in match.groups() if g is not None])
    return ""


def use_bilingual_help_text() -> None:
    """The error panel's title and its "Try ... --help" line in both languages, and no
    `<bool>` beside a flag in `--help`.

    typer 0.2x prints `<bool>` beside every on/off flag, which reads as "takes a value",
    so people typed `aldlab --debug true` (and got "No such command 'true'"). A flag's
    spelling already says what it takes (`--x/--no-x`), so its type column stays empty.
    These are module-level settings in typer's `rich_utils`; older typer without them keeps
    its defaults.
    """
    try:
        from typer import rich_utils
    except ImportError:  # typer without rich: plain click output, which shows no `<bool>`
        return
    rich_utils.ERRORS_PANEL_TITLE = "오류 / Error"
    rich_utils.RICH_HELP = "도움말 / help: [blue]'{command_path} {help_option}'[/]"
    original = getattr(TyperOption, "display_type_rich", None)
    if original is None or getattr(original, "hides_flag_type", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else original(self, ctx)

    display_type_rich.hides_flag_type = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
