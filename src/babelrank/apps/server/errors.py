"""Errors of the HTTP API: every failure is answered as ``{"error": {"type": ..., "message": ...}}``
(422 validation errors add ``"details"``), and none closes the connection.

The core's exceptions carry their own status and type (`babelrank.errors.classify`); this module
adds the types only the HTTP layer gives (`ERROR_STATUS`) and installs the handlers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from chromadb.errors import ChromaError
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from babelrank.errors import BabelrankError, classify

logger = logging.getLogger(__name__)

_BAD_INPUT = classify(ValueError())
_INTERNAL = classify(Exception())

#: Status code of each error ``type`` the HTTP layer gives itself (docs/http-api.md lists them
#: with those of the core's errors).
ERROR_STATUS: dict[str, int] = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "not_ready": 503,
    _BAD_INPUT.error_type: _BAD_INPUT.http_status,  # a request's own checks answer as the core's bad input
}
_HTTP_STATUS_TYPES = {status: type_ for type_, status in ERROR_STATUS.items() if status < 500}


class ApiError(Exception):
    """An error answered as ``{"error": {"type", "message"}}`` with the status of its type."""

    def __init__(self, type_: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.type = type_
        self.status = ERROR_STATUS[type_]
        self.message = message
        self.details = details

    def response(self, headers: Mapping[str, str] | None = None) -> JSONResponse:
        """This error's answer."""
        return error_response(self.status, self.type, self.message, self.details, headers)


def error_response(status: int, type_: str, message: str, details: Any = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The one error shape of this service."""
    body: dict[str, Any] = {"type": type_, "message": message}
    if details is not None:
        body["details"] = jsonable_encoder(details)
    return JSONResponse({"error": body}, status_code=status, headers=dict(headers or {}))


def core_error_response(method: str, path: str, exc: Exception) -> JSONResponse:
    """The answer to an exception from the core, with the status and type `babelrank.errors.classify` gives it.

    Server errors are logged, with a traceback for bugs; the message of an exception babelrank
    does not know (a bug) stays in the log and the answer names only its class.
    """
    kind = classify(exc)
    if kind.http_status >= 500:
        logger.error("%s %s failed: %s", method, path, exc, exc_info=kind == _INTERNAL)
    if kind == _INTERNAL and not isinstance(exc, BabelrankError):
        message = f"internal error ({type(exc).__name__}); see the server log"
    else:
        message = str(exc)
    return error_response(kind.http_status, kind.error_type, message)


def install_error_handlers(app: FastAPI) -> None:
    """Answer `ApiError`, HTTP errors, invalid requests and the core's exceptions in the one shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        type_ = _HTTP_STATUS_TYPES.get(exc.status_code, "bad_request" if exc.status_code < 500 else _INTERNAL.error_type)
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(jsonable_encoder(exc.detail))
        return error_response(exc.status_code, type_, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else str(first.get("msg", "invalid request"))
        return error_response(_BAD_INPUT.http_status, _BAD_INPUT.error_type, message, errors)

    async def _core_error(request: Request, exc: Exception) -> JSONResponse:
        return core_error_response(request.method, request.url.path, exc)

    # Not `Exception`: Starlette gives its handler to ServerErrorMiddleware, which re-raises after
    # answering, and uvicorn then closes the kept-alive connection. InternalErrorMiddleware takes the rest.
    for exc_type in (BabelrankError, ValueError, ConnectionError, ChromaError):
        app.add_exception_handler(exc_type, _core_error)
