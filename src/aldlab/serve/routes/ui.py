"""The web UI's page (its scripts and styles are the `/static` mount of `create_app`) and
the API's OpenAPI schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from aldlab.serve.deps import ApiKey

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")


@router.get("/openapi.json", dependencies=[ApiKey])
async def openapi_schema(request: Request) -> dict[str, Any]:
    """FastAPI's own schema, behind the API key when one is set (it maps every route)."""
    return request.app.openapi()
