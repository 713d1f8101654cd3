"""FastAPI dependencies of the routes, as `Annotated` aliases.

`ServiceDep` gives a route the app's one `Service`; `ApiKey` (route-level) and
`AdminActor` (a parameter: the actor's name for the audit log) are the two guards.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request

from aldlab.serve.errors import ApiError
from aldlab.serve.guards import bearer_token, token_matches
from aldlab.serve.service import Service

#: What may appear in an audit row's actor name (from the `X-Aldlab-Actor` header).
_ACTOR = re.compile(r"[^\w .@-]")


def get_service(request: Request) -> Service:
    """The app's Service (`create_app` puts it on `app.state`)."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


def client_host(request: Request) -> str:
    """The peer's address: rate limits and throttles count per client (never stored)."""
    return request.client.host if request.client else ""


ClientDep = Annotated[str, Depends(client_host)]


def require_api_key(request: Request, service: ServiceDep) -> None:
    """With ALDLAB_API_KEY set, the request needs `Authorization: Bearer <key>`."""
    expected = service.settings.api_key
    if expected and not token_matches(bearer_token(request.headers), expected):
        raise ApiError(
            401,
            "invalid_api_key",
            "API 키가 없거나 올바르지 않습니다 (Authorization: Bearer <ALDLAB_API_KEY>).",
            "Missing or invalid API key (Authorization: Bearer <ALDLAB_API_KEY>).",
        )


#: For `dependencies=[ApiKey]`: the routes that spend the model or write feedback.
ApiKey = Depends(require_api_key)


def require_admin(request: Request, service: ServiceDep) -> str:
    """The admin token must match; returns the actor name for the audit log.

    Wrong tokens are throttled per client (`FailureThrottle`), so guessing costs time.
    """
    expected = service.settings.admin_token
    client = client_host(request)
    wait = service.admin_failures.blocked_for(client)
    if wait:
        raise ApiError(
            429,
            "too_many_failures",
            f"잘못된 관리자 토큰이 너무 많습니다. {wait}초 뒤에 다시 시도하세요.",
            f"Too many wrong admin tokens; retry in {wait} s.",
            retry_after=wait,
        )
    if not expected:
        raise ApiError(
            403,
            "admin_disabled",
            "관리자 기능이 꺼져 있습니다 (ALDLAB_ADMIN_TOKEN 미설정).",
            "Admin routes are disabled (ALDLAB_ADMIN_TOKEN is not set).",
        )
    given = bearer_token(request.headers) or request.headers.get("x-admin-token", "").encode("latin-1", "replace")
    if not token_matches(given, expected):
        service.admin_failures.fail(client)
        raise ApiError(401, "unauthorized", "관리자 토큰이 올바르지 않습니다.", "Invalid admin token.")
    service.admin_failures.succeed(client)
    actor = _ACTOR.sub("", request.headers.get("x-aldlab-actor", ""))[:64].strip()
    return actor or "admin"


AdminActor = Annotated[str, Depends(require_admin)]
