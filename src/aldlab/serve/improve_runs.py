"""The admin tab's "지금 개선 / Improve now": `aldlab improve` started by the server, its status polled.

    GET  /api/admin/improve   waiting approved feedback, the threshold, the last run's state
    POST /api/admin/improve   start a run (409 below the threshold or while one runs)

Why a child process running the CLI, not `aldlab.improve.run_improve` in a thread: `improve`
is wiring (it chains data, train and eval) and `serve` may not import it (tests/test_layers.py);
and a training run inside the server would hold the GIL and memory that answering needs.
A child is also what an operator would start by hand, with the same lock: a second run,
from the CLI or from here, is refused by `improve`'s own lock (`registry/improve.lock`).

The child's outcome is read back from the registry: the record it registered is promoted,
or rejected with the gate's reasons in its note. A run that stopped before registering
(too little feedback, the lock, a crash) is read from its exit status and the last lines
of its log (`ALDLAB_HOME/serve/improve-<time>.log`).

The runner is a plain function (`ImproveRunner`), so tests start a stand-in that never trains.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

from aldlab.files import atomic_write_json
from aldlab.settings import aldlab_home
from aldlab.store import Store
from aldlab.store.registry import ModelRegistry

#: idle: no run recorded (none since the server started, or no saved status); running; then how the last run ended.
RunState = Literal["idle", "running", "promoted", "kept", "failed"]
#: Lines of the child's log kept as the reason when it fails before registering anything.
FAILURE_TAIL_LINES = 4


@dataclass(frozen=True)
class ImproveRequest:
    """What one run is started with: the server's own DB, KB and preset, and who asked."""

    db: Path
    min_items: int
    preset: str | None
    kb: str | None
    actor: str


@dataclass
class ImproveResult:
    """How a run ended: promoted (the server follows the registry to it) or kept, and why."""

    state: Literal["promoted", "kept", "failed"]
    model_id: str | None = None
    reasons: list[str] = field(default_factory=list)
    log: str | None = None


#: Runs `aldlab improve` to the end (blocking; called in a background thread).
ImproveRunner = Callable[[ImproveRequest], ImproveResult]


@dataclass
class ImproveStatus:
    """The last run as the admin tab shows it."""

    state: RunState = "idle"
    started_at: float | None = None
    finished_at: float | None = None
    started_by: str | None = None
    model_id: str | None = None
    reasons: list[str] = field(default_factory=list)
    log: str | None = None


class ImproveAlreadyRunning(Exception):
    """A run started from this server is still running."""

    def __init__(self, status: ImproveStatus) -> None:
        super().__init__("improve already running")
        self.status = status


#: Why a run recorded as running when the server started shows as failed.
INTERRUPTED = (
    "서버가 실행 도중 멈췄습니다. 결과는 `aldlab models list`에서 확인하세요. / "
    "The server stopped during this run; see `aldlab models list` for what it registered."
)


class ImproveRuns:
    """One improve run at a time from this server, in a background thread.

    With `state_file`, the last run's status is also kept on disk (written atomically at the
    start and the end of a run), so the admin tab still shows it after a restart. A run that
    was "running" when the server stopped is shown as failed with `INTERRUPTED`: the server
    cannot know how it ended, while the registry (and `aldlab models list`) does. A server
    that stops mid-run does not stop the child: improve writes only into its staging dir
    until it registers, so it finishes (or is killed) without leaving the registry half-changed.
    """

    def __init__(self, runner: ImproveRunner | None = None, *, state_file: Path | None = None) -> None:
        self.runner = runner or run_improve_cli
        self.state_file = state_file
        self._status = self._load()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _load(self) -> ImproveStatus:
        """The status saved by an earlier server, or idle (a missing or unreadable file is idle)."""
        if self.state_file is None or not self.state_file.is_file():
            return ImproveStatus()
        try:
            saved = ImproveStatus(**json.loads(self.state_file.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return ImproveStatus()
        if saved.state == "running":
            saved.state, saved.reasons = "failed", [INTERRUPTED]
        return saved

    def _save(self) -> None:
        """Keep the status for the next server; a disk error must not end the run thread."""
        if self.state_file is None:
            return
        try:
            atomic_write_json(self.state_file, asdict(self._status))
        except OSError:
            pass

    def status(self) -> ImproveStatus:
        with self._lock:
            return replace(self._status)

    def start(self, request: ImproveRequest) -> ImproveStatus:
        """Start a run; `ImproveAlreadyRunning` when this server's last run has not ended."""
        with self._lock:
            if self._status.state == "running":
                raise ImproveAlreadyRunning(replace(self._status))
            self._status = ImproveStatus(state="running", started_at=time.time(), started_by=request.actor)
            self._save()
            self._thread = threading.Thread(target=self._run, args=(request,), name="aldlab-improve", daemon=True)
            self._thread.start()
            return replace(self._status)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the current run ends (tests; the server only polls)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, request: ImproveRequest) -> None:
        try:
            result = self.runner(request)
        except Exception as exc:  # noqa: BLE001 - a failed run is a status, never a dead thread
            result = ImproveResult("failed", reasons=[f"{type(exc).__name__}: {exc}"])
        with self._lock:
            self._status.state = result.state
            self._status.model_id = result.model_id
            self._status.reasons = list(result.reasons)
            self._status.log = result.log
            self._status.finished_at = time.time()
            self._save()


def feedback_waiting(store: Store) -> list[int]:
    """Approved feedback ids the promoted model was not trained on (what `improve` would use).

    The same rule as `aldlab.improve.new_feedback`, which serve cannot import.
    """
    promoted = ModelRegistry().promoted()
    used = set(promoted.feedback_ids) if promoted is not None else set()
    return [int(r["feedback_id"]) for r in store.iter_feedback_rows(status="approved") if int(r["feedback_id"]) not in used]


# --------------------------------------------------------------------------- the real runner


def improve_command_line(request: ImproveRequest) -> list[str]:
    """`aldlab improve` for this server: its DB, its KB, its preset, the tab's threshold."""
    command = [sys.executable, "-m", "aldlab.cli", "improve", "--db", str(request.db),
               "--min-new-feedback", str(request.min_items)]
    if request.preset:
        command += ["--preset", request.preset]
    if request.kb:
        command += ["--kb", request.kb]
    return command


def run_improve_cli(request: ImproveRequest) -> ImproveResult:
    """Run `aldlab improve` in a child process; its stderr (progress, errors) goes to a log file."""
    registry = ModelRegistry()
    before = {r.id for r in registry.records()}
    log = aldlab_home() / "serve" / f"improve-{time.strftime('%Y%m%d-%H%M%S')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as stderr:
        done = subprocess.run(  # noqa: S603 - our own interpreter and CLI, no shell
            improve_command_line(request), stdout=subprocess.PIPE, stderr=stderr, text=True,
            # A wide "terminal": rich would wrap the one-line error at 80 columns in a file.
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "1000"}, check=False,
        )
    with log.open("a", encoding="utf-8") as tail:
        tail.write(done.stdout)
    return result_of_run(done.returncode, done.stdout, log, registry, before)


def result_of_run(returncode: int, stdout: str, log: Path, registry: ModelRegistry, before: set[str]) -> ImproveResult:
    """Promoted / kept from the record the run registered; failed from its exit status and log."""
    if returncode != 0:
        return ImproveResult("failed", reasons=failure_lines(log), log=str(log))
    new = [r for r in registry.records() if r.id not in before]
    if new and new[-1].status == "promoted":
        return ImproveResult("promoted", new[-1].id, log=str(log))
    if new:
        reasons = [r for r in new[-1].note.split("; ") if r]
        return ImproveResult("kept", new[-1].id, reasons, log=str(log))
    # Nothing registered (the candidate did not load): `print_decision` listed the reasons.
    reasons = [line.strip()[2:] for line in stdout.splitlines() if line.startswith("  - ")]
    return ImproveResult("kept", None, reasons, log=str(log))


def failure_lines(log: Path) -> list[str]:
    """The CLI's one-line error (`오류 / error: ...`) and what follows it, else the log's last lines."""
    lines = [line.rstrip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("오류 / error:"):
            return [line.removeprefix("오류 / error:").strip(), *lines[i + 1 : i + FAILURE_TAIL_LINES]]
    return lines[-FAILURE_TAIL_LINES:]
