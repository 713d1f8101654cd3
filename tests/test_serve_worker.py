"""Generation runs off the event loop: slow answers queue, health stays responsive."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from aldlab.rag.types import Answer
from aldlab.serve.app import create_app
from aldlab.serve.fake import FakeAssistant
from aldlab.serve.settings import ServeSettings
from aldlab.serve.testing import serve_in_thread, write_tiny_kb
from aldlab.serve.worker import GenerationWorker
from aldlab.store import Store


class CountingAssistant(FakeAssistant):
    """Records how many answers are being generated at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.active = 0
        self.most_active = 0
        self._count_lock = threading.Lock()

    def run(self, plan: Any, **kwargs: Any) -> Iterator[str | Answer]:
        with self._count_lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            yield from super().run(plan, **kwargs)
        finally:
            with self._count_lock:
                self.active -= 1


def test_slow_generation_queues_and_does_not_block_the_loop(tmp_path: Path) -> None:
    kb = write_tiny_kb(tmp_path / "kb")
    assistant = CountingAssistant(kb, delay_s=0.25)
    app = create_app(assistant, Store(tmp_path / "s.sqlite3"), ServeSettings(kb=str(kb)))

    async def scenario(url: str) -> tuple[list[int], int, bool]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            asks = [
                asyncio.create_task(client.post("/api/ask", json={"question": "TMA", "stream": i % 2 == 0}))
                for i in range(4)
            ]
            # Wait until one answer is generating and another waits behind it.
            while app.state.answers.worker.pending < 2 and not any(task.done() for task in asks):
                await asyncio.sleep(0.01)
            health = await client.get("/api/health")
            assert health.status_code == 200
            # Answered while generation was still queued: health did not wait for the model.
            answered_before_asks = not all(task.done() for task in asks)
            statuses = [r.status_code for r in await asyncio.gather(*asks)]
            return statuses, health.json()["pending"], answered_before_asks

    with serve_in_thread(app) as url:
        statuses, pending_at_health, answered_before_asks = asyncio.run(scenario(url))
    assert statuses == [200, 200, 200, 200]
    assert pending_at_health >= 1 and answered_before_asks
    assert assistant.calls == 4 and assistant.most_active == 1  # one generation thread: one answer at a time


def test_abandoned_stream_releases_its_slot() -> None:
    worker = GenerationWorker(threads=1, max_pending=1)

    def numbers() -> object:
        yield from range(1000)

    async def scenario() -> int:
        async for item in worker.stream(numbers):  # type: ignore[arg-type]
            if item == 3:
                break
        for _ in range(100):
            if worker.pending == 0:
                break
            await asyncio.sleep(0.01)
        return await worker.run(lambda: 42)  # the slot is free again

    assert asyncio.run(scenario()) == 42
    worker.shutdown()


def stream_events(text: str) -> list[dict]:
    import json

    return [json.loads(b[6:]) for b in text.split("\n\n") if b.startswith("data: ") and b[6:] != "[DONE]"]


def test_a_waiting_question_sees_its_place_in_line(tmp_path: Path) -> None:
    kb = write_tiny_kb(tmp_path / "kb")
    app = create_app(FakeAssistant(kb, delay_s=1.3), Store(tmp_path / "s.sqlite3"), ServeSettings(kb=str(kb)))

    async def scenario(url: str) -> list[list[dict]]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            async def ask(delay: float) -> list[dict]:
                await asyncio.sleep(delay)
                r = await client.post("/api/ask?stream=true", json={"question": "TMA 전구체"})
                return stream_events(r.text)

            return list(await asyncio.gather(ask(0), ask(0.2), ask(0.4)))

    with serve_in_thread(app) as url:
        first, _, third = asyncio.run(scenario(url))
    queued = [e for e in third if e["type"] == "status" and e["state"] == "queued"]
    assert queued[0]["position"] == 3  # two questions ahead of it
    assert min(e["position"] for e in queued) == 2  # updated while it waited (first one finished)
    kinds = [e["type"] for e in third]
    assert kinds.index("contexts") < kinds.index("token")  # contexts long before its turn
    started = next(e for e in third if e["type"] == "status" and e["state"] == "generating")
    assert started["elapsed_s"] >= 2.0 and kinds.index("token") > third.index(started)
    assert first[0]["position"] == 1


def test_full_queue_is_a_503_not_a_200_with_an_error_event(tmp_path: Path) -> None:
    kb = write_tiny_kb(tmp_path / "kb")
    app = create_app(
        FakeAssistant(kb, delay_s=0.5), Store(tmp_path / "s.sqlite3"), ServeSettings(kb=str(kb), max_pending=1)
    )

    async def scenario(url: str) -> list[tuple[int, str]]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            async def ask(delay: float) -> tuple[int, str]:
                await asyncio.sleep(delay)
                r = await client.post("/api/ask?stream=true", json={"question": "TMA"})
                return r.status_code, r.text

            return list(await asyncio.gather(ask(0), ask(0.1), ask(0.15)))

    with serve_in_thread(app) as url:
        results = asyncio.run(scenario(url))
    assert sorted(status for status, _ in results) == [200, 503, 503]  # which one wins depends on timing
    assert all('"type": "error"' not in text for status, text in results if status == 200)


def test_a_ticket_never_submitted_is_given_back() -> None:
    worker = GenerationWorker(threads=1, max_pending=1)
    ticket = worker.admit("a")
    assert worker.pending == 1 and worker.status(ticket).position == 1
    with worker.reserved(ticket):
        pass  # the response ended (client gone) before its stream started
    assert worker.pending == 0
    worker.shutdown()
