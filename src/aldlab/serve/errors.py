"""The service's one error shape and the handlers that produce it.

Every failure is JSON `{"error": {"message", "message_ko", "message_en", "type", "code"}}`
(the shape the `openai` client reads), never a traceback and never a server path.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from aldlab.errors import UserError
from aldlab.serve.worker import ClientBusy, WorkerBusy

log = logging.getLogger("aldlab.serve")


class ApiError(StarletteHTTPException):
    """An error answered as JSON with a bilingual message (Korean first)."""

    def __init__(
        self, status: int, code: str, ko: str, en: str, *, hint: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(status_code=status, detail=en)
        self.code = code
        self.ko = ko
        self.en = en
        self.hint = hint
        self.retry_after = retry_after

    @classmethod
    def of(cls, exc: UserError, status: int, code: str) -> ApiError:
        """A `UserError` from the store or the KB as this status and code, its words kept."""
        return cls(status, code, exc.ko, exc.en, hint=exc.hint)


def rate_limited(wait: int, ko: str, en: str) -> ApiError:
    """429 + Retry-After for a client over its rate; `ko`/`en` say what came too often."""
    return ApiError(
        429, "rate_limited", f"{ko}. {wait}초 뒤에 다시 시도하세요.", f"{en}; retry in {wait} s.", retry_after=wait
    )


def invalid_text(field: str) -> JSONResponse:
    """400 for text that is not valid Unicode (a lone surrogate such as "\\ud800")."""
    return error_response(
        400,
        "invalid_text",
        f"{field}에 올바르지 않은 문자(짝 없는 서로게이트)가 있습니다.",
        f"{field} contains invalid characters (a lone surrogate).",
    )


def error_body(code: str, ko: str, en: str, hint: str | None = None) -> dict[str, Any]:
    """The one error shape of the service (OpenAI-compatible: `error.message`)."""
    error: dict[str, Any] = {"message": f"{ko} / {en}", "message_ko": ko, "message_en": en, "type": code, "code": code}
    if hint:
        error["hint"] = hint
    return {"error": error}


def error_response(status: int, code: str, ko: str, en: str, hint: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, ko, en, hint), status_code=status)


#: An absolute directory part: '/' then segments of word characters, '.', '-', '+', '~',
#: '@', ',', '=' and inner single spaces ('/tmp/my kb/', '/opt/c++/'), each ending in '/'.
#: A segment never starts or ends with a space, so the ' / ' between Korean and English
#: in a message is not taken for a path.
_DIRECTORY = re.compile(r"(?<![\w<])/(?:[\w.+~@,=-]+(?: [\w.+~@,=-]+)*/)+")


def redact_paths(text: str, kb: Path | None) -> str:
    """Error text without the server's absolute paths (KB dir -> '<kb>'; other directories dropped,
    the file name kept)."""
    if kb is not None:
        for prefix in sorted({str(kb.resolve()), str(kb.absolute()), str(kb)}, key=len, reverse=True):
            text = text.replace(prefix, "<kb>")
    return _DIRECTORY.sub("", text)


def user_error_body(exc: UserError) -> dict[str, Any]:
    """A UserError for a client: file names stay, the server's directories do not."""
    loc = redact_paths(exc.location(), None)
    prefix = f"{loc}: " if loc else ""
    return error_body("invalid_request", prefix + redact_paths(exc.ko, None), prefix + redact_paths(exc.en, None), exc.hint)


def kb_unavailable(exc: UserError, kb: Path | None) -> ApiError:
    """503 for a KB whose files do not validate (the message names the file, not the path)."""
    loc = redact_paths(exc.location(), kb)
    prefix = f"{loc}: " if loc else ""
    return ApiError(
        503,
        "kb_unavailable",
        prefix + redact_paths(exc.ko, kb),
        prefix + redact_paths(exc.en, kb),
        hint="관리자에게 알리세요: KB 파일 검증 실패 / tell the admin: the KB files do not validate",
    )


def busy_response(exc: WorkerBusy | None = None) -> JSONResponse:
    """503 when the whole queue is full; 429 when this client already has its share."""
    if isinstance(exc, ClientBusy):
        response = error_response(
            429,
            "too_many_requests",
            "이 클라이언트의 대기 중인 질문이 너무 많습니다. 앞의 답변이 끝난 뒤 다시 시도하세요.",
            "Too many of your questions are waiting; retry after the earlier answers finish.",
        )
    else:
        response = error_response(
            503, "server_busy", "요청이 많아 잠시 후 다시 시도하세요.", "The server is busy; retry shortly."
        )
    response.headers["Retry-After"] = "2"
    return response


def internal_error_body(exc: BaseException) -> dict[str, Any]:
    """Error body for failures after a stream started (status is already 200)."""
    if isinstance(exc, UserError):
        return user_error_body(exc)
    if isinstance(exc, ApiError):
        return error_body(exc.code, exc.ko, exc.en, exc.hint)
    if isinstance(exc, WorkerBusy):
        return error_body("server_busy", "요청이 많아 잠시 후 다시 시도하세요.", "The server is busy; retry shortly.")
    log.error("error while streaming", exc_info=exc)
    return error_body("internal_error", "서버 내부 오류입니다.", "Internal server error.")


def install_error_handlers(app: FastAPI) -> None:
    """JSON for every failure; tracebacks only in the server log."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, ApiError):
            response = error_response(exc.status_code, exc.code, exc.ko, exc.en, exc.hint)
            if exc.retry_after is not None:
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
        messages = {
            404: ("경로를 찾을 수 없습니다.", "Not found."),
            405: ("허용되지 않는 메서드입니다.", "Method not allowed."),
        }
        ko, en = messages.get(exc.status_code, ("요청을 처리할 수 없습니다.", str(exc.detail)))
        return error_response(exc.status_code, "http_error", ko, en)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        for err in exc.errors():  # `aldlab.serve.schemas.RequestBody`, or pydantic's own check
            if err.get("type") in ("invalid_text", "string_unicode"):
                where = (err.get("ctx") or {}).get("field") or ".".join(str(p) for p in err.get("loc", ()) if p != "body")
                return invalid_text(where or "body")
        for err in exc.errors():  # a text over its limit: say the limit, counted in characters
            if err.get("type") == "string_too_long":
                where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
                limit = (err.get("ctx") or {}).get("max_length")
                given = len(err["input"]) if isinstance(err.get("input"), str) else None
                sent_ko = f", 보낸 글자 {given}자" if given is not None else ""
                sent_en = f", got {given}" if given is not None else ""
                return error_response(
                    422,
                    "text_too_long",
                    f"{where}가 너무 깁니다 (최대 {limit}자{sent_ko}; JSON 이스케이프가 아니라 글자 수로 셉니다).",
                    f"{where} is too long (max {limit} characters{sent_en}; counted as decoded characters, not bytes).",
                    hint="문서를 나누어 올리세요 / split the document",
                )
        problems = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
        detail = "; ".join(problems)
        return error_response(422, "invalid_request", f"요청 형식이 잘못되었습니다: {detail}", f"Invalid request: {detail}")

    @app.exception_handler(UserError)
    async def user_error(_: Request, exc: UserError) -> JSONResponse:
        return JSONResponse(user_error_body(exc), status_code=400)

    @app.exception_handler(WorkerBusy)
    async def busy(_: Request, exc: WorkerBusy) -> JSONResponse:
        return busy_response(exc)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error: %s", exc)
        return error_response(500, "internal_error", "서버 내부 오류입니다.", "Internal server error.")
