"""Who may talk to the service, and how much: host check, JSON-only bodies, API key,
admin-token throttling and per-client rate limits.

Why each exists (issue 12's audit):
- Host check: without it a web page on `rebind.evil.com` that re-points its DNS to
  127.0.0.1 (DNS rebinding) can read answers, submit feedback and dump the KB, because
  the browser then treats the service as same-origin.
- JSON-only bodies: a cross-site HTML form can POST `text/plain` or form data without a
  CORS preflight; refusing every non-JSON body closes that on any FastAPI version.
- API key: like vLLM's `--api-key`, optional; it guards the routes that spend the model
  and write feedback.
- Throttles: a wrong admin token costs the guesser time, and one client cannot take all
  of the (CPU-bound, single) model.
"""

from __future__ import annotations

import hmac
import json
import math
import threading
import time
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

#: Hosts always accepted: the loopback names.
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
#: Methods whose body must be JSON when they have one.
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def _json_error(status: int, code: str, ko: str, en: str, retry_after: int | None = None) -> tuple[bytes, list]:
    body = json.dumps(
        {"error": {"message": f"{ko} / {en}", "message_ko": ko, "message_en": en, "type": code, "code": code}},
        ensure_ascii=False,
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    return body, headers


async def _send_error(send: Send, status: int, code: str, ko: str, en: str) -> None:
    body, headers = _json_error(status, code, ko, en)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def host_name(header: str) -> str:
    """'Example.COM:8000' -> 'example.com', '[::1]:8000' -> '::1'."""
    host = header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def allowed_hosts(bind_host: str, extra: Iterable[str]) -> set[str]:
    """The configured host (unless a wildcard bind address), loopback, and --allowed-host."""
    hosts = set(LOOPBACK_HOSTS) | {host_name(h) for h in extra if h}
    if bind_host not in ("0.0.0.0", "::", ""):
        hosts.add(host_name(bind_host))
    return hosts


class GuardMiddleware:
    """Refuse requests for other hosts (421-style 400) and non-JSON bodies (415)."""

    def __init__(self, app: ASGIApp, hosts: set[str]) -> None:
        self.app = app
        self.any_host = "*" in hosts
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if not self.any_host and host_name(headers.get("host", "")) not in self.hosts:
            await _send_error(
                send,
                400,
                "invalid_host",
                "허용되지 않은 Host입니다. 서버 주소로 접속하거나 --allowed-host 로 추가하세요.",
                "Host not allowed; use the server's address or add it with --allowed-host.",
            )
            return
        if scope["method"] in BODY_METHODS and _has_body(headers):
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                await _send_error(
                    send,
                    415,
                    "unsupported_media_type",
                    "요청 본문은 application/json 이어야 합니다.",
                    "Request bodies must be application/json.",
                )
                return
        await self.app(scope, receive, send)


def _has_body(headers: dict[str, str]) -> bool:
    if "transfer-encoding" in headers:
        return True
    try:
        return int(headers.get("content-length", "0") or "0") > 0
    except ValueError:
        return True


def bearer_token(headers: Any) -> bytes:
    """The Bearer token as raw bytes (headers arrive latin-1 decoded; compare bytes, so a
    non-ASCII token set as UTF-8 in the environment still matches)."""
    auth = headers.get("authorization", "")
    if not auth.lower().startswith("bearer "):
        return b""
    return auth[7:].strip().encode("latin-1", "replace")


def token_matches(given: bytes, expected: str) -> bool:
    return hmac.compare_digest(given, expected.encode("utf-8"))


class RateLimiter:
    """Token bucket per client: `per_minute` sustained, `burst` at once; 0 disables."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, client: str) -> int:
        """0 if allowed now, else the seconds to wait (for Retry-After)."""
        if self.rate <= 0:
            return 0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                if len(self._buckets) > 10_000:  # forget idle clients (memory stays bounded)
                    self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 600}
                return 0
            self._buckets[client] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self.rate))


class FailureThrottle:
    """After `limit` wrong tokens from a client within `window_s`, refuse its wrong tokens
    for `window_s` (the right token is never refused: `aldlab.serve.deps.require_admin`)."""

    def __init__(self, limit: int = 5, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def blocked_for(self, client: str) -> int:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if now - t < self.window_s]
            if recent:
                self._failures[client] = recent
            else:  # nothing to remember (memory stays bounded by the clients failing now)
                self._failures.pop(client, None)
            if len(recent) >= self.limit:
                return max(1, math.ceil(self.window_s - (now - recent[0])))
            return 0

    def fail(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, []).append(time.monotonic())


#: Tokens refused at start-up: copied from an example.
WEAK_TOKENS = {"change-me", "changeme", "admin", "password", "secret", "token", "test"}
#: `secrets.token_urlsafe(18)` is 24 characters (144 random bits); shorter is refused.
MIN_TOKEN_CHARS = 24
#: 24 random URL-safe characters hold ~19 distinct ones; fewer than this is a pattern
#: (16x"a", "abababab...") that a guesser tries first.
MIN_DISTINCT_CHARS = 8
#: How to make a good one (the refusal says it).
TOKEN_RECIPE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


def weak_token_reason(token: str) -> tuple[str, str] | None:
    """Why `token` is too weak to guard the service, as (Korean, English); None if it is fine."""
    value = token.strip()
    if value.lower() in WEAK_TOKENS:
        return "예시 값입니다", "it is an example value"
    if len(value) < MIN_TOKEN_CHARS:
        return f"{len(value)}자로 {MIN_TOKEN_CHARS}자보다 짧습니다", f"it has {len(value)} characters, fewer than {MIN_TOKEN_CHARS}"
    if len(set(value)) < MIN_DISTINCT_CHARS:
        return (
            f"서로 다른 문자가 {len(set(value))}개뿐입니다 (최소 {MIN_DISTINCT_CHARS}개)",
            f"it has only {len(set(value))} distinct characters (at least {MIN_DISTINCT_CHARS})",
        )
    return None


def weak_token(token: str) -> bool:
    return weak_token_reason(token) is not None
