"""Helpers to run the app for tests and the load bench: a tiny KB and a server thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from aldlab.kb.io import save_kb
from aldlab.kb.schema import Document, KnowledgeBase

#: A few Korean ALD passages (written for the tests, not copied from any KB).
TINY_DOCUMENTS = [
    Document(
        id="tiny-001",
        title="ALD 자기제한 반응",
        text="ALD는 전구체와 반응물을 번갈아 공급하며 표면 포화에 의한 자기제한 반응으로 한 사이클에 원자층 수준의 두께를 쌓는다.",
        keywords=["ALD", "자기제한"],
        topic="basics",
    ),
    Document(
        id="tiny-002",
        title="퍼지 단계의 역할",
        text="퍼지 단계는 남은 전구체와 부산물을 불활성 기체로 제거해 CVD 성 기생 반응을 막는다.",
        keywords=["퍼지"],
        topic="basics",
    ),
    Document(
        id="tiny-003",
        title="TMA 전구체",
        text="TMA(트라이메틸알루미늄)는 Al2O3 ALD에 쓰이는 대표 전구체로 물과 반응한다.",
        keywords=["TMA", "전구체"],
        topic="precursors",
    ),
]


def write_tiny_kb(root: str | Path, documents: Sequence[Document] = TINY_DOCUMENTS) -> Path:
    """A native KB directory with `documents` (topics declared, keywords in the vocabulary)."""
    root = Path(root)
    keywords = sorted({k for d in documents for k in d.keywords})
    topics = {d.topic: d.topic for d in documents}
    save_kb(KnowledgeBase(documents=list(documents), name="tiny", topics=topics, keywords=keywords), root)
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_in_thread(app: Any, *, host: str = "127.0.0.1", port: int | None = None, **options: Any) -> Iterator[str]:
    """Run `app` with uvicorn in a background thread; yields the base URL. `options` go to
    `uvicorn.Config` (`aldlab.serve.commands.uvicorn_options` gives what `aldlab serve` uses)."""
    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="aldlab-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
