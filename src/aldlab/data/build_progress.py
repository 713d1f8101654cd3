"""What `build_dataset` is doing right now, on stderr.

Measured on a fresh clone (issue 25): the data stage of `aldlab pipeline` printed nothing
for 91 s. Most of it is embedding the KB's sentences for the semantic split (a cold cache;
later builds take ~10 s), and a log or a pipe shows no rich bar at all. So each step is
named when it *starts* (not when it ends), the embedding gets its own bar with an ETA, and
without a terminal every step is one plain line.

Only reporting lives here; the build itself reads top to bottom in `aldlab.data.build`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from aldlab.progress import progress_bar

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

#: Step key (as recorded in stats.json `timings_s`) -> what the user reads while it runs.
STEP_LABELS: dict[str, str] = {
    "inputs": "KB와 피드백 읽기 / reading the KB and feedback",
    "facts": "질문 생성 / generating questions",
    "teacher": "교사 모델로 다듬기 / refining with the teacher model",
    "split": "중복 제거·누수 없는 분할 / dedup and leak-free split",
    "render": "학습·평가 행 조립 / assembling train and eval rows",
    "checks": "누수·조사 검사 / leakage and particle checks",
    "write": "파일 쓰기 / writing files",
}
EMBED_LABEL = "문장 임베딩 (첫 빌드만) / embedding sentences (first build only)"


class BuildProgress:
    """A context manager: `start(step)` names the step now running and times the previous one.

    In a terminal: one transient rich bar over the steps, plus a bar for sentence embedding.
    Without one (a log file, `| tee`): one line per step and per quarter of the embedding.
    Disabled: silent, but the timings are still recorded.
    """

    def __init__(self, steps: Sequence[str], *, enabled: bool = True, console: Console | None = None) -> None:
        from rich.console import Console

        self.steps = list(steps)
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self.live = enabled and self.console.is_terminal
        self.timings: dict[str, float] = {}
        self._bar = progress_bar(enabled=self.live, transient=True, console=self.console)
        self._steps: TaskID | None = None
        self._embed: TaskID | None = None
        self._current: str | None = None
        self._started = self._mark = time.perf_counter()
        self._index = 0
        self._quarters_logged = 0

    def __enter__(self) -> BuildProgress:
        self._bar.__enter__()
        self._steps = self._bar.add_task("데이터셋 / dataset", total=len(self.steps))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self._finish_current()
        self._bar.__exit__(kind, exc, tb)

    def start(self, step: str) -> None:
        """`step` begins now; the one before it is done."""
        self._finish_current()
        self._current = step
        self._index += 1
        label = f"데이터셋 / dataset [{self._index}/{len(self.steps)}] {STEP_LABELS[step]}"
        if self.live:
            self._bar.update(self._steps, description=label)
        elif self.enabled:
            self.console.print(f"{label} … (+{time.perf_counter() - self._started:.0f}s)", highlight=False, soft_wrap=True)

    def skip(self, step: str) -> None:
        """A step with nothing to do (no teacher configured): timed as 0 s, not shown."""
        self._finish_current()
        self.timings[step] = 0.0

    def embedded(self, done: int, total: int) -> None:
        """Sentence-embedding progress, `SentenceVectors.on_embed`."""
        if self.live:
            if self._embed is None:
                self._embed = self._bar.add_task(f"  {EMBED_LABEL}", total=total)
            self._bar.update(self._embed, completed=done, total=total)
            if done >= total:
                self._bar.remove_task(self._embed)
                self._embed = None
        elif self.enabled and total:
            quarter = 4 * done // total
            if done == 0:
                self._quarters_logged = 0
                self.console.print(f"  {EMBED_LABEL}: {total}", highlight=False, soft_wrap=True)
            elif quarter > self._quarters_logged:
                self._quarters_logged = quarter
                self.console.print(f"  {done}/{total} ({done / total:.0%})", highlight=False, soft_wrap=True)

    def _finish_current(self) -> None:
        now = time.perf_counter()
        if self._current is not None:
            self.timings[self._current] = round(now - self._mark, 2)
            if self.live:
                self._bar.update(self._steps, advance=1)
        self._current, self._mark = None, now
