"""Load test of `aldlab serve`: N concurrent clients ask and give feedback.

    python bench/serve_load.py                     # 32 clients, 10 s (plus a 1-client baseline)
    python bench/serve_load.py --clients 64 --duration 20 --gen-delay 0.01

The server runs in-process (uvicorn thread on 127.0.0.1) around a tiny fake generator
(`aldlab.serve.fake.FakeAssistant`, fixed per-request delay), so the numbers measure the
service itself: routing, the generation worker queue, SSE streaming and SQLite writes.
Each client loops until the time or request budget runs out: ask (every 4th request
streams over SSE), then send feedback on the answer it got. After the run the feedback
rows in SQLite are counted and compared with the feedback the server acknowledged; they
must be equal (no lost writes). The 1-client run is the baseline for the ratio column.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from aldlab.serve.app import create_app
from aldlab.serve.fake import FakeAssistant
from aldlab.serve.settings import ServeSettings
from aldlab.serve.testing import serve_in_thread, write_tiny_kb
from aldlab.store import Store

QUESTIONS = ["TMA 전구체는 무엇인가요?", "퍼지 단계의 역할은?", "ALD 자기제한 반응 설명", "오늘 날씨 어때?"]


@dataclass
class RunResult:
    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    feedback_acked: int = 0
    feedback_rows: int = 0

    @property
    def requests(self) -> int:
        return len(self.latencies)

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        if len(self.latencies) == 1:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[int(q) - 1]


async def ask(client: httpx.AsyncClient, question: str, stream: bool) -> tuple[str, str]:
    """One question; returns (answer_id, answer_token), raising on any failure.

    The token lets this client, and only it, rate the answer."""
    body = {"question": question, "model": "base"}
    if not stream:
        r = await client.post("/api/ask", json=body)
        r.raise_for_status()
        return str(r.json()["answer_id"]), str(r.json()["answer_token"])
    answer_id = token = None
    async with client.stream("POST", "/api/ask?stream=true", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event["type"] == "error":
                    raise RuntimeError(event["error"]["message"])
                if event["type"] == "answer":
                    answer_id, token = event["answer_id"], event["answer_token"]
    if answer_id is None:
        raise RuntimeError("stream ended without an answer")
    return str(answer_id), str(token)


async def client_loop(base_url: str, n: int, deadline: float, max_requests: int, result: RunResult) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        for i in range(max_requests):
            if time.monotonic() >= deadline:
                break
            question = QUESTIONS[(n + i) % len(QUESTIONS)]
            started = time.perf_counter()
            try:
                answer_id, token = await ask(client, question, stream=(n + i) % 4 == 0)
                result.latencies.append(time.perf_counter() - started)
                fb = await client.post(
                    "/api/feedback",
                    json={"answer_id": answer_id, "answer_token": token, "rating": "like" if i % 2 else "dislike", "comment": f"c{n}-{i}"},
                )
                if fb.status_code == 200 and fb.json().get("ok"):
                    result.feedback_acked += 1
                else:
                    raise RuntimeError(f"feedback HTTP {fb.status_code}: {fb.text[:120]}")
            except Exception as exc:  # noqa: BLE001 - counted, a sample is printed
                result.errors += 1
                if len(result.error_samples) < 3:
                    result.error_samples.append(f"{type(exc).__name__}: {exc}"[:200])


def run(clients: int, duration: float, max_requests: int, gen_delay: float, token_delay: float, workdir: Path) -> RunResult:
    kb = write_tiny_kb(workdir / f"kb-{clients}")
    store = Store(workdir / f"serve-{clients}.sqlite3")
    assistant = FakeAssistant(kb, delay_s=gen_delay, token_delay_s=token_delay)
    # All bench clients come from 127.0.0.1, i.e. one client to the per-client limits; they
    # are switched off here because this measures the service's capacity, not the limiter
    # (tests/test_serve_security.py covers the 429s).
    settings = ServeSettings(kb=str(kb), rate_limit_per_minute=0, max_pending_per_client=0)
    app = create_app(assistant, store, settings)
    result = RunResult(clients=clients)
    with serve_in_thread(app) as url:

        async def main() -> None:
            deadline = time.monotonic() + duration
            await asyncio.gather(*(client_loop(url, n, deadline, max_requests, result) for n in range(clients)))

        started = time.perf_counter()
        asyncio.run(main())
        result.seconds = time.perf_counter() - started
    result.feedback_rows = store.count_feedback()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run (default 10)")
    parser.add_argument("--max-requests", type=int, default=1000, help="questions per client at most")
    parser.add_argument("--gen-delay", type=float, default=0.005, help="fake generation time per answer, s")
    parser.add_argument("--token-delay", type=float, default=0.0, help="fake delay per streamed word, s")
    args = parser.parse_args()
    console = Console(width=140)  # keep the table readable when piped to a file
    results = []
    with tempfile.TemporaryDirectory(prefix="aldlab-serve-load-") as tmp:
        for clients in (1, args.clients):
            console.print(f"running {clients} client(s) for up to {args.duration:.0f} s …", style="dim", highlight=False)
            results.append(run(clients, args.duration, args.max_requests, args.gen_delay, args.token_delay, Path(tmp)))
    baseline = results[0]
    base_rps = baseline.requests / baseline.seconds if baseline.seconds else float("nan")
    table = Table(title=f"aldlab serve load (fake generator {args.gen_delay * 1000:.0f} ms/answer, 127.0.0.1)")
    for col in ("clients", "requests", "req/s", "vs 1 client", "p50 ms", "p95 ms", "errors", "feedback acked", "rows in SQLite", "lost"):
        table.add_column(col, justify="right")
    for r in results:
        rps = r.requests / r.seconds if r.seconds else float("nan")
        table.add_row(
            str(r.clients),
            str(r.requests),
            f"{rps:.1f}",
            f"{rps / base_rps:.2f}x",
            f"{r.percentile(50) * 1000:.1f}",
            f"{r.percentile(95) * 1000:.1f}",
            str(r.errors),
            str(r.feedback_acked),
            str(r.feedback_rows),
            str(r.feedback_acked - r.feedback_rows),
        )
    console.print(table)
    for r in results:
        for sample in r.error_samples:
            console.print(f"[red]error sample ({r.clients} clients):[/] {sample}", highlight=False)
    ok = all(r.errors == 0 and r.feedback_acked == r.feedback_rows for r in results)
    console.print("PASS: 0 errors, 0 lost feedback rows" if ok else "FAIL: errors or lost feedback rows", style="green" if ok else "red")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
