"""Generation off the event loop, in a fair, visible queue.

Model calls are CPU-bound and take seconds; running them on the event loop would freeze
every other request (health checks, feedback, the web UI). They run on a small thread
pool that shares the one loaded model. Requests beyond the pool wait in the pool's queue.

Admission happens *before* a response starts (`admit` returns a `Ticket`), so a full
queue is an HTTP 503 (or 429 for one client over its share), never an HTTP 200 whose
stream then says "busy". Each ticket knows its place in line, so the web UI can say
"queued at position N" while it waits instead of showing a bare cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

#: While a job waits, its stream reports its queue position this often (seconds).
STATUS_INTERVAL_S = 1.0


class WorkerBusy(Exception):
    """Too many generation jobs are waiting (server-wide): 503."""


class ClientBusy(WorkerBusy):
    """This client already has its share of the queue: 429."""


@dataclass
class Ticket:
    """One admitted job: its place in line, released exactly once."""

    number: int
    client: str
    admitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    submitted: bool = False  # handed to the thread pool; from then on the job releases itself
    released: bool = False


@dataclass(frozen=True)
class QueueStatus:
    """What a waiting or running job reports to its client."""

    state: str  # "queued" | "generating"
    position: int  # place in line counting jobs still running ahead: 1 = nothing ahead; 0 once generating
    elapsed_s: float  # since admission

    @property
    def ahead(self) -> int:
        return max(0, self.position - 1)

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "position": self.position, "ahead": self.ahead, "elapsed_s": round(self.elapsed_s, 1)}


class GenerationWorker:
    """Runs blocking generation calls and streams on worker threads, first come first served."""

    def __init__(self, *, threads: int = 1, max_pending: int = 256, max_pending_per_client: int = 0) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="aldlab-gen")
        self.max_pending = max_pending
        self.max_pending_per_client = max_pending_per_client  # 0 = no per-client cap
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._tickets: dict[int, Ticket] = {}  # admitted and not yet released, in admission order

    @property
    def pending(self) -> int:
        """Jobs admitted and not finished (waiting or running)."""
        return len(self._tickets)

    def pending_for(self, client: str) -> int:
        with self._lock:
            return sum(1 for t in self._tickets.values() if t.client == client)

    # ------------------------------------------------------------------ admission
    def admit(self, client: str = "") -> Ticket:
        """Reserve a place in the queue now, or raise WorkerBusy/ClientBusy."""
        with self._lock:
            if len(self._tickets) >= self.max_pending:
                raise WorkerBusy()
            if self.max_pending_per_client and client:
                mine = sum(1 for t in self._tickets.values() if t.client == client)
                if mine >= self.max_pending_per_client:
                    raise ClientBusy()
            ticket = Ticket(next(self._numbers), client)
            self._tickets[ticket.number] = ticket
            return ticket

    def release(self, ticket: Ticket) -> None:
        """Give the place back (idempotent: a stream and its cleanup may both call it)."""
        with self._lock:
            if not ticket.released:
                ticket.released = True
                self._tickets.pop(ticket.number, None)

    @contextlib.contextmanager
    def reserved(self, ticket: Ticket) -> Iterator[Ticket]:
        """Hold `ticket` for a response; give it back if the job was never submitted.

        A client that disconnects before its stream starts would otherwise keep its place
        in the queue forever (Starlette never starts a body iterator it cannot send).
        """
        try:
            yield ticket
        finally:
            if not ticket.submitted:
                self.release(ticket)

    def _start(self, ticket: Ticket) -> None:
        with self._lock:
            ticket.started_at = time.monotonic()

    def status(self, ticket: Ticket) -> QueueStatus:
        """Queued at position N (1 = next) or generating, with seconds since admission."""
        with self._lock:
            elapsed = time.monotonic() - ticket.admitted_at
            if ticket.started_at is not None:
                return QueueStatus("generating", 0, elapsed)
            # Everything admitted earlier and not finished (running or waiting) is ahead.
            ahead = sum(1 for t in self._tickets.values() if t.number < ticket.number)
            return QueueStatus("queued", ahead + 1, elapsed)

    # ------------------------------------------------------------------ running
    def _submit(self, ticket: Ticket, job: Callable[[], Any]) -> Future[Any]:
        """Hand `job` to the worker thread; a shut-down executor gives the queue slot back."""
        try:
            future = self._executor.submit(job)
        except RuntimeError:  # executor shut down
            self.release(ticket)
            raise
        ticket.submitted = True
        return future

    async def run(self, fn: Callable[..., T], *args: Any, ticket: Ticket | None = None, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` on a worker thread and await its result."""
        ticket = ticket or self.admit()

        def job() -> T:
            try:
                self._start(ticket)
                return fn(*args, **kwargs)
            finally:
                self.release(ticket)

        future = self._submit(ticket, job)
        try:
            return await asyncio.wrap_future(future)
        finally:
            if future.cancel():  # the caller went away before the job started
                self.release(ticket)

    async def stream(
        self, make_iter: Callable[[], Iterator[T]], *, ticket: Ticket | None = None, report_status: bool = False
    ) -> AsyncIterator[T | QueueStatus]:
        """Iterate `make_iter()` on a worker thread, yielding its items on the event loop.

        With `report_status`, `QueueStatus` items are interleaved: the position every
        STATUS_INTERVAL_S while waiting, and one "generating" when the job starts.
        If the consumer stops early (client disconnected), the worker notices at the next
        item and closes the generator, so an abandoned stream frees the model promptly.
        """
        ticket = ticket or self.admit()
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
                self._start(ticket)
                push("started", None)
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
                self.release(ticket)

        job = self._submit(ticket, produce)
        try:
            while True:
                try:
                    kind, value = await asyncio.wait_for(queue.get(), STATUS_INTERVAL_S if report_status else None)
                except asyncio.TimeoutError:
                    yield self.status(ticket)
                    continue
                if kind == "started":
                    if report_status:
                        yield self.status(ticket)
                elif kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    break
        finally:
            cancelled.set()
            if job.cancel():  # never started: its slot is free at once
                self.release(ticket)
            # a started job sees `cancelled` at its next item and releases its slot itself

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
