"""Generation off the event loop.

Model calls are CPU-bound and take seconds; running them on the event loop would freeze
every other request (health checks, feedback, the web UI). They run on a small thread
pool that shares the one loaded model. Requests beyond the pool wait in the pool's queue;
only past `max_pending` waiting jobs do new requests get a clear 503 instead of piling up
without bound.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_END = object()


class WorkerBusy(Exception):
    """Too many generation jobs are waiting."""


class GenerationWorker:
    """Runs blocking generation calls and streams on worker threads."""

    def __init__(self, *, threads: int = 1, max_pending: int = 256) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="aldlab-gen")
        self.max_pending = max_pending
        self.pending = 0
        self._lock = threading.Lock()

    def _admit(self) -> None:
        with self._lock:
            if self.pending >= self.max_pending:
                raise WorkerBusy()
            self.pending += 1

    def _release(self) -> None:
        with self._lock:
            self.pending -= 1

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` on a worker thread and await its result."""
        self._admit()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
        finally:
            self._release()

    async def stream(self, make_iter: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
        """Iterate `make_iter()` on a worker thread, yielding its items on the event loop.

        If the consumer stops early (client disconnected), the worker notices at the next
        item and closes the generator, so an abandoned stream frees the model promptly.
        """
        self._admit()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancelled = threading.Event()

        def push(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:  # the event loop is gone (server shutting down)
                cancelled.set()

        def produce() -> None:
            iterator = None
            try:
                if cancelled.is_set():
                    return
                iterator = make_iter()
                for item in iterator:
                    if cancelled.is_set():
                        break
                    push("item", item)
                push("end", None)
            except BaseException as exc:  # noqa: BLE001 - re-raised on the loop side
                push("error", exc)
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
                self._release()

        future = loop.run_in_executor(self._executor, produce)
        try:
            while True:
                kind, value = await queue.get()
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    break
        finally:
            cancelled.set()
            del future  # the job finishes on its own and releases its slot

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
