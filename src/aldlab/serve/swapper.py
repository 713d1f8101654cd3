"""The hot swap: a model promoted in the registry starts answering without a restart.

`aldlab improve` and `aldlab models promote|rollback` move the promoted pointer
(ALDLAB_HOME/default_adapter.json); the server reads it every `registry_poll_s` seconds,
like the KB reloader watches the KB. A new pointer means: attach that adapter to the
loaded base model under its version id (off the event loop; the base is not reloaded),
then make it the default (`Models.promote`). Requests already validated carry the old
version's name and finish on it (it stays attached). An adapter that fails to attach is
reported in /api/health and the current model keeps answering; the same pointer is not
retried until it changes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import anyio

from aldlab.errors import UserError
from aldlab.rag.types import AssistantProtocol
from aldlab.serve.models import Models
from aldlab.settings import default_adapter

log = logging.getLogger("aldlab.serve")


class ModelSwapper:
    """Follows the registry's promoted pointer; `check` does one poll, `run` polls forever."""

    def __init__(self, assistant: AssistantProtocol, models: Models, *, current: str, interval_s: float) -> None:
        self._assistant = assistant
        self._models = models
        self._seen = current  # the pointer's model id already served (or already failed)
        self._interval_s = interval_s
        self._lock = asyncio.Lock()
        self.last: dict[str, Any] = {"version": current or None, "error": None, "swapped_at": None}

    async def check(self) -> bool:
        """Read the pointer once; attach and promote a new version. True if it swapped."""
        async with self._lock:  # one swap at a time (a poll and a test's explicit check)
            pointer = await anyio.to_thread.run_sync(default_adapter)
            if pointer is None or not pointer.model_id or pointer.model_id == self._seen:
                return False
            version, path = pointer.model_id, str(pointer.adapter_dir)
            self._seen = version
            try:
                if version not in self._assistant.models():  # a rollback to an attached version
                    await anyio.to_thread.run_sync(self._assistant.add_adapter, version, path)
            except Exception as exc:  # noqa: BLE001 - the current model keeps answering
                log.exception("attaching promoted model %s failed", version)
                message = exc.render() if isinstance(exc, UserError) else type(exc).__name__
                self.last = {**self.last, "error": f"{version}: {message}"}
                return False
            self._models.promote(version, version)
            self.last = {"version": version, "error": None, "swapped_at": time.time()}
            log.info("now answering with model %s", version)
            return True

    async def run(self) -> None:
        """Poll until cancelled (the app's lifespan starts and cancels it)."""
        while True:
            await asyncio.sleep(self._interval_s)
            with contextlib.suppress(Exception):  # a bad poll must not end polling; check logs
                await self.check()
