"""The index rebuild after a KB edit, in the background and one at a time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from aldlab.errors import UserError
from aldlab.serve.errors import redact_paths
from aldlab.serve.schemas import ReloadStatus

log = logging.getLogger("aldlab.serve")


class Reloader:
    """Rebuilds the index in the background, one rebuild at a time, coalescing requests.

    Rebuilding the shipped KB's index after one edit took ~140 s on the 2-core CPU box
    (dense embeddings + refusal calibration), far too long to hold an admin's request or
    the generation worker. Edits therefore return at once; N edits during a rebuild cause
    one more rebuild, not N. `wait=True` callers (tests, the reload button) await it.

    `reload` is the assistant's `reload_if_changed` (it builds a new retriever and swaps it
    in atomically, so answers keep using the old index meanwhile); `on_done` runs after
    every rebuild (`Models.forget`: the adapters may differ); `kb` is redacted from errors.
    """

    def __init__(self, reload: Callable[[], Any], *, kb: Path | None, on_done: Callable[[], None]) -> None:
        self._reload = reload
        self._kb = kb
        self._on_done = on_done
        self._task: asyncio.Task[None] | None = None
        self._dirty = False
        self.last: dict[str, Any] = {"ok": None, "seconds": None, "error": None, "finished_at": None}

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def request(self) -> asyncio.Task[None]:
        """Start a rebuild, or mark the running one as needing one more pass."""
        self._dirty = True
        if not self.running:
            self._task = asyncio.create_task(self._run())
        assert self._task is not None
        return self._task

    async def _run(self) -> None:
        while self._dirty:
            self._dirty = False
            started = time.perf_counter()
            try:
                await anyio.to_thread.run_sync(self._reload)
                self.last = {"ok": True, "seconds": round(time.perf_counter() - started, 3), "error": None}
            except Exception as exc:  # noqa: BLE001 - reported via /api/health and the reload route
                log.exception("index reload failed")
                message = exc.render() if isinstance(exc, UserError) else f"{type(exc).__name__}"
                self.last = {
                    "ok": False,
                    "seconds": round(time.perf_counter() - started, 3),
                    "error": redact_paths(message, self._kb),
                }
            self.last["finished_at"] = time.time()
            self._on_done()

    def status(self) -> ReloadStatus:
        return ReloadStatus(running=self.running, **self.last)
