"""Server-sent events for the streaming routes (/api/ask?stream=true, OpenAI `stream: true`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from aldlab.serve.worker import GenerationWorker, Ticket

#: No caching, and no proxy buffering (nginx would otherwise hold the tokens back).
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(data: dict[str, Any] | str) -> bytes:
    """One `data:` event; a dict as JSON (Korean unescaped), a string as is ("[DONE]")."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n".encode()


class TicketedStream(StreamingResponse):
    """A streaming response holding a queue ticket until its stream has taken it over.

    The ticket is taken before the response starts (so a full queue is a 503, not a 200
    with an error event); holding it here gives the slot back if the client leaves before
    the stream begins.
    """

    def __init__(self, content: AsyncIterator[bytes], worker: GenerationWorker, ticket: Ticket) -> None:
        super().__init__(content, media_type="text/event-stream", headers=SSE_HEADERS)
        self.worker = worker
        self.ticket = ticket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self.worker.reserved(self.ticket):
            await super().__call__(scope, receive, send)
