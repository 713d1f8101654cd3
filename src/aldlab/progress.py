"""The one progress bar every stage shows on stderr: what, bar, done/total, elapsed, ETA.

STYLE: anything over a few seconds gets a bar with its rate and ETA, and bars go to stderr
so stdout keeps only results. Stages add their own live fields (loss, tokens/s) as extra
columns between the count and the times instead of building a Progress of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn


def progress_bar(
    *extra: ProgressColumn | str,
    enabled: bool = True,
    transient: bool = False,
    console: Console | None = None,
) -> Progress:
    """A rich Progress on stderr (use as a context manager); `enabled=False` draws nothing.

    `extra` columns (rich columns or format strings such as "loss {task.fields[loss]}") go
    after the done/total count. `transient` removes the bar when it finishes, for steps
    whose result is printed right after (an index build, the dataset stages).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns: list[Any] = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *(TextColumn(c) if isinstance(c, str) else c for c in extra),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    return Progress(
        *columns,
        console=console or Console(stderr=True),
        transient=transient,
        disable=not enabled,
    )
