"""The `aldlab serve` web application: OpenAI-compatible API, ask/feedback API, admin KB
editing and the static web UI.

This module only assembles the app (FastAPI full-stack template style):

- `models.py`   `Models`: the model list (cached), the default model and its registry version
- `swapper.py`  `ModelSwapper`: follows the registry's promoted model without a restart
- `answers.py`  `Answers`: validation, queue admission, answering, the answer log, usage
- `payload.py`  an answer as the client sees it, confidence in words
- `kb_admin.py` `KbAdmin`: the KB's documents (the assistant's copy), edits, index reloads
- `improve_runs.py` `ImproveRuns`: the admin tab's `aldlab improve` (a child process) and its status
- `routes/`     thin routers per area: `ask` (health, ask, documents), `openai`,
                `feedback` (rating + review queue), `admin` (KB edits, reload, audit, improve), `ui`
- `deps.py`     `Annotated` dependencies: each piece above, the store, the settings, the
                client, the API-key and admin guards
- `schemas.py`  request and response models
- `errors.py`, `middleware.py`, `sse.py`, `reloader.py`, `documents.py`

`create_app(assistant, store, settings)` takes any `aldlab.rag.types.AssistantProtocol`,
so tests and the load bench run it with `aldlab.serve.fake.FakeAssistant` and never load
a model.

Hardening, in one place:
- every error is JSON `{"error": {"message", "message_ko", "message_en", "type", "code"}}`
  (the shape the `openai` client reads), never a traceback;
- request bodies, question length, history, top_k and max tokens are capped;
- admin routes are off unless a token is configured and compare it in constant time;
- with an API key, everything but the health check and the UI page needs it;
- CORS is off unless origins are configured; every response carries a strict CSP, so
  even a rendering bug in the UI cannot run injected script.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from aldlab import __version__
from aldlab.rag.types import AssistantProtocol
from aldlab.serve.answers import Answers
from aldlab.serve.errors import install_error_handlers
from aldlab.serve.guards import FailureThrottle, GuardMiddleware, RateLimiter, allowed_hosts
from aldlab.serve.improve_runs import ImproveRunner, ImproveRuns
from aldlab.serve.kb_admin import KbAdmin
from aldlab.serve.middleware import BodyLimitMiddleware, SecurityHeadersMiddleware
from aldlab.serve.models import Models
from aldlab.serve.schemas import DOCUMENT_BODY_BYTES
from aldlab.serve.routes import admin, ask, feedback, openai, ui
from aldlab.serve.settings import ServeSettings
from aldlab.serve.swapper import ModelSwapper
from aldlab.settings import aldlab_home
from aldlab.store import Store


def create_app(
    assistant: AssistantProtocol, store: Store, settings: ServeSettings, *, improve_runner: ImproveRunner | None = None
) -> FastAPI:
    """Build the FastAPI app around an assistant, a `aldlab.store.Store` and settings.

    `improve_runner` replaces the child `aldlab improve` the admin tab starts (tests).
    """
    models = Models(assistant, settings.default_model, settings.model_versions)
    answers = Answers(assistant, store, settings, models)
    swapper = (
        ModelSwapper(assistant, models, current=models.version_of(settings.default_model or ""),
                     interval_s=settings.registry_poll_s)
        if settings.follow_registry else None
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        polling = asyncio.create_task(swapper.run()) if swapper is not None else None
        yield
        if polling is not None:
            polling.cancel()
        answers.worker.shutdown()

    app = FastAPI(
        title="aldlab",
        version=__version__,
        docs_url=None,  # Swagger UI loads scripts from a CDN: offline and CSP say no
        redoc_url=None,
        openapi_url=None,  # served by `routes/ui.py` behind the API key, like the routes it lists
        lifespan=lifespan,
    )
    # The routes' dependencies (`aldlab.serve.deps`), one of each per app.
    app.state.settings = settings
    app.state.store = store
    app.state.models = models
    app.state.answers = answers
    app.state.swapper = swapper  # None unless the server follows the registry
    app.state.kb = KbAdmin(assistant, settings.kb, on_reloaded=models.forget)
    app.state.kb.repair_audit(store)  # settle KB edits a crash left half-recorded
    # Real runs keep their status across restarts; an injected (test) runner stays in memory.
    status_file = None if improve_runner is not None else aldlab_home() / "serve" / "improve-status.json"
    app.state.improve = ImproveRuns(improve_runner, state_file=status_file)
    app.state.admin_failures = FailureThrottle()
    app.state.feedback_limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    app.state.started = time.time()
    install_error_handlers(app)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_body_bytes, larger={"/api/admin/documents": DOCUMENT_BODY_BYTES}
    )
    # Outermost: a request for another Host or with a non-JSON body does no work at all.
    app.add_middleware(GuardMiddleware, hosts=allowed_hosts(settings.host, settings.allowed_hosts))
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Admin-Token", "X-Aldlab-Actor"],
        )

    for area in (ask, feedback, openai, admin, ui):
        app.include_router(area.router)
    app.mount("/static", StaticFiles(directory=ui.STATIC_DIR), name="static")
    return app
