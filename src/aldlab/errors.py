"""User-facing errors.

A user mistake (bad file, bad flag) must surface as one clear line in Korean then
English, naming the file/line/field and what to do — never a traceback. Code raises
`UserError`; the CLI prints it and exits with code 2 (tracebacks only with --debug).
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """An error caused by the user's input, with a bilingual message and a fix."""

    def __init__(
        self,
        ko: str,
        en: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.ko = ko
        self.en = en
        self.path = str(path) if path is not None else None
        self.line = line
        self.hint = hint
        super().__init__(self.render())

    def location(self) -> str:
        """`file:line` prefix, or empty when the error is not tied to a file."""
        if self.path is None:
            return ""
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def render(self) -> str:
        """One line per language, prefixed with the location, plus an optional hint."""
        loc = self.location()
        prefix = f"{loc}: " if loc else ""
        text = f"{prefix}{self.ko}\n{prefix}{self.en}"
        if self.hint:
            text += f"\n→ {self.hint}"
        return text
