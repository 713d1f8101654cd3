"""FastAPI dependencies of the routes, as `Annotated` aliases.

`create_app` builds each piece once per app and puts it on `app.state`; a route declares
only the pieces it uses: `ModelsDep`, `AnswersDep`, `KbDep`, `StoreDep`, `SettingsDep`,
`StartedAt`, `ClientDep`, `ImproveDep`. `ApiKey` and `FeedbackRate` (route-level) and `AdminActor` (a
parameter: the actor's name) are the guards; `AuditDep` (the KB audit log of an admin
request) needs `AdminActor` too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote
from typing import Annotated, Any

from fastapi import Depends, Request

from aldlab.serve.answers import Answers
from aldlab.serve.errors import ApiError, rate_limited
from aldlab.serve.guards import FailureThrottle, RateLimiter, bearer_token, token_matches
from aldlab.serve.improve_runs import ImproveRuns
from aldlab.serve.kb_admin import KbAdmin, KbAudit
from aldlab.serve.models import Models
from aldlab.serve.settings import ServeSettings
from aldlab.serve.swapper import ModelSwapper
from aldlab.store import Store

#: What may appear in an audit row's actor name (from the `X-Aldlab-Actor` header).
_ACTOR = re.compile(r"[^\w .@-]")


def _from_app_state(name: str) -> Callable[[Request], Any]:
    """A dependency giving `app.state.<name>`: what `create_app` built for this app."""

    def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    get.__name__ = f"get_{name}"
    return get


ModelsDep = Annotated[Models, Depends(_from_app_state("models"))]
AnswersDep = Annotated[Answers, Depends(_from_app_state("answers"))]
KbDep = Annotated[KbAdmin, Depends(_from_app_state("kb"))]
StoreDep = Annotated[Store, Depends(_from_app_state("store"))]
SettingsDep = Annotated[ServeSettings, Depends(_from_app_state("settings"))]
#: The admin tab's `aldlab improve` runs (one at a time) and the last one's status.
ImproveDep = Annotated[ImproveRuns, Depends(_from_app_state("improve"))]
#: The registry follower (None when the server was given its models by hand).
SwapperDep = Annotated[ModelSwapper | None, Depends(_from_app_state("swapper"))]
#: When the app was built (`time.time()`): uptime, and `created` of the model cards.
StartedAt = Annotated[float, Depends(_from_app_state("started"))]


def client_host(request: Request) -> str:
    """The peer's address: rate limits and throttles count per client (never stored).

    An X-Forwarded-For header changes it only when it comes from a proxy the operator
    named (`ServeSettings.trusted_proxies`; uvicorn applies it, configured by
    `aldlab.serve.commands.uvicorn_options`).
    """
    return request.client.host if request.client else ""


ClientDep = Annotated[str, Depends(client_host)]


def require_api_key(request: Request, settings: SettingsDep) -> None:
    """With ALDLAB_API_KEY set, the request needs `Authorization: Bearer <key>`."""
    expected = settings.api_key
    if expected and not token_matches(bearer_token(request.headers), expected):
        raise ApiError(
            401,
            "invalid_api_key",
            "API 키가 없거나 올바르지 않습니다 (Authorization: Bearer <ALDLAB_API_KEY>).",
            "Missing or invalid API key (Authorization: Bearer <ALDLAB_API_KEY>).",
        )


#: For `dependencies=[ApiKey]`: the routes that spend the model, write feedback or show the KB.
ApiKey = Depends(require_api_key)


def limit_feedback(request: Request, client: ClientDep) -> None:
    """Feedback per client: the question rate (`rate_limit_per_minute`/`_burst`), counted apart."""
    limiter: RateLimiter = request.app.state.feedback_limiter
    wait = limiter.acquire(client)
    if wait:
        raise rate_limited(wait, "피드백이 너무 잦습니다", "Too much feedback")


#: For `dependencies=[FeedbackRate]`: every write of `/api/feedback` costs one token.
FeedbackRate = Depends(limit_feedback)


def require_admin(request: Request, settings: SettingsDep) -> str:
    """The admin token must match; returns the actor name for the audit log.

    Wrong tokens are throttled per client (`FailureThrottle` on `app.state`), so guessing
    costs time. Only failures are counted and the right token always passes: users behind
    one NAT or proxy share an address, and five wrong guesses from any of them used to lock
    the admin out for a minute (issue 22). Guessing itself is hopeless: tokens have at
    least 24 characters, 8 of them distinct (`guards.weak_token_reason` stops the server otherwise).
    """
    expected = settings.admin_token
    if not expected:
        raise ApiError(
            403,
            "admin_disabled",
            "관리자 기능이 꺼져 있습니다 (ALDLAB_ADMIN_TOKEN 미설정).",
            "Admin routes are disabled (ALDLAB_ADMIN_TOKEN is not set).",
        )
    given = bearer_token(request.headers) or request.headers.get("x-admin-token", "").encode("latin-1", "replace")
    if not token_matches(given, expected):
        failures: FailureThrottle = request.app.state.admin_failures
        client = client_host(request)
        wait = failures.blocked_for(client)
        if wait:
            raise ApiError(
                429,
                "too_many_failures",
                f"잘못된 관리자 토큰이 너무 많습니다. {wait}초 뒤에 다시 시도하세요.",
                f"Too many wrong admin tokens; retry in {wait} s.",
                retry_after=wait,
            )
        failures.fail(client)
        raise ApiError(401, "unauthorized", "관리자 토큰이 올바르지 않습니다.", "Invalid admin token.")
    actor = _ACTOR.sub("", actor_name(request.headers.get("x-aldlab-actor", "")))[:64].strip()
    return actor or "admin"


def actor_name(header: str) -> str:
    """The admin's name from `X-Aldlab-Actor`: percent-encoded UTF-8 or raw UTF-8 bytes.

    Browsers refuse header values outside ISO-8859-1 (fetch throws on "김공정"), so the web UI
    sends `encodeURIComponent(name)`; curl and Python clients may send the raw UTF-8 bytes,
    which Starlette hands over decoded as Latin-1. `%` is never part of a name (`_ACTOR`), so
    decoding a plain ASCII name changes nothing.
    """
    try:
        header = header.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass  # not UTF-8 bytes: leave as it came
    return unquote(header, errors="replace")


AdminActor = Annotated[str, Depends(require_admin)]


def kb_audit(request: Request, store: StoreDep, actor: AdminActor) -> KbAudit:
    """The audit log of this admin request (needs the admin token: it records the actor)."""
    return KbAudit(store, actor, client_host(request))


AuditDep = Annotated[KbAudit, Depends(kb_audit)]
