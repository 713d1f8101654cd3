"""ASGI middleware of the service: request body cap and security headers.

(Host and content-type checks live in `aldlab.serve.guards.GuardMiddleware`, with the
other who-may-talk rules.)
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aldlab.serve.errors import ApiError, error_body

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


class BodyLimitMiddleware:
    """Reject request bodies over `max_bytes` (checked on Content-Length and while reading).

    `larger` raises the cap for path prefixes whose bodies carry long texts (the admin
    document routes): their schema limits the decoded characters, and the byte cap only
    has to admit that many characters in the most escaped JSON spelling.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.default_bytes = max_bytes
        self.larger = dict(larger or {})

    def _cap(self, path: str) -> int:
        caps = [n for prefix, n in self.larger.items() if path.startswith(prefix)]
        return max([self.default_bytes, *caps])

    @staticmethod
    def _too_large(cap: int) -> ApiError:
        return ApiError(
            413,
            "request_too_large",
            f"요청 본문이 너무 큽니다 (최대 {cap} 바이트).",
            f"Request body too large (max {cap} bytes).",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self._cap(scope.get("path", ""))
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = cap + 1
                if declared > cap:
                    err = self._too_large(cap)
                    await JSONResponse(error_body(err.code, err.ko, err.en), status_code=413)(scope, receive, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise self._too_large(cap)
            return message

        await self.app(scope, limited_receive, send)


class SecurityHeadersMiddleware:
    """CSP and friends on every response (defence in depth for the web UI): even a
    rendering bug in the UI cannot run injected script."""

    HEADERS = [
        (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + self.HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)
