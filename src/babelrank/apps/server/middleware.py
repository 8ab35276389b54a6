"""ASGI middleware of the HTTP API: browser-borne requests, the bearer token, the body limit, and
an answer (never a closed connection) for exceptions no handler took."""

from __future__ import annotations

import secrets

from fastapi import FastAPI, HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from babelrank.apps.server.errors import ApiError, core_error_response
from babelrank.config import ENV_PREFIX, LOOPBACK_HOSTS, ServerSettings


def install_middleware(app: FastAPI, server: ServerSettings) -> None:
    """Add the middleware of `server`'s settings to `app`, outermost last."""
    app.add_middleware(InternalErrorMiddleware)  # innermost: inside the body limit and auth
    app.add_middleware(BodyLimitMiddleware, max_bytes=server.max_body_bytes)
    app.add_middleware(BearerAuthMiddleware, token=server.api_token)  # 401 before reading bodies
    app.add_middleware(RequestGuardMiddleware, check_host=server.api_token is None,  # outermost
                       hosts=server.allowed_hosts, origins=server.allowed_origins)


MULTIPART_PATHS = ("/v1/documents",)
"""Paths that take multipart/form-data besides JSON (file uploads); every other body must be JSON."""


class RequestGuardMiddleware:
    """Refuse requests a web page on another site could make a browser send.

    * ``Host`` (only when `check_host`, i.e. without a token): the loopback names, the address
      the request arrived at, or one of `hosts` (against DNS rebinding).
    * ``Origin``, when present: the server's own origin (the same host and port as ``Host``)
      or one of `origins`.
    * POST/PUT/PATCH bodies: ``application/json`` (multipart/form-data on `MULTIPART_PATHS`),
      so no cross-site form or Content-Type-less fetch, which browsers send without asking
      the server first, reaches an endpoint.
    """

    def __init__(self, app: ASGIApp, *, check_host: bool, hosts: tuple[str, ...], origins: tuple[str, ...],
                 exempt: tuple[str, ...] = ("/health",)) -> None:
        self.app = app
        self.check_host = check_host and "*" not in hosts
        self.hosts = {_host_name(h) for h in (*LOOPBACK_HOSTS, *hosts)}
        self.origins = {o.lower().rstrip("/") for o in origins}
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = self.problem(scope) if scope["type"] == "http" else None
        if problem is None:
            await self.app(scope, receive, send)
            return
        await ApiError(*problem).response()(scope, receive, send)

    def problem(self, scope: Scope) -> tuple[str, str] | None:
        """(error type, message) of a request to refuse, else None."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or ()}
        host = headers.get("host", "")
        if self.check_host and scope["path"] not in self.exempt and not self._host_allowed(host, scope):
            return "forbidden", (f"Host {host!r} is not allowed: without an API token the server answers only to "
                                 f"{', '.join(sorted(self.hosts))} and its own addresses (against DNS rebinding); "
                                 f"add the name to {ENV_PREFIX}ALLOWED_HOSTS, or set {ENV_PREFIX}API_TOKEN")
        origin = headers.get("origin")
        if origin is not None and not self._origin_allowed(origin, host):
            return "forbidden", (f"requests from the web origin {origin!r} are refused; "
                                 f"allow it with {ENV_PREFIX}ALLOWED_ORIGINS")
        if scope["method"] in ("POST", "PUT", "PATCH"):
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            multipart = scope["path"] in MULTIPART_PATHS
            if not (media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
                    or (multipart and media == "multipart/form-data")):
                wanted = "application/json" + (" or multipart/form-data" if multipart else "")
                return "unsupported_media_type", f"send Content-Type: {wanted}, not {media or 'none'}"
        return None

    def _host_allowed(self, host: str, scope: Scope) -> bool:
        name = _host_name(host)
        arrived_at = (scope.get("server") or ("",))[0]
        return name in self.hosts or (bool(name) and name == _host_name(str(arrived_at)))

    def _origin_allowed(self, origin: str, host: str) -> bool:
        origin = origin.strip().lower().rstrip("/")
        if "*" in self.origins or origin in self.origins:
            return True
        scheme, sep, authority = origin.partition("://")
        return bool(sep) and scheme in ("http", "https") and authority == host.strip().lower()


def _host_name(host: str) -> str:
    """The name in a ``Host`` header or setting, without port, brackets or a final dot, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


class BearerAuthMiddleware:
    """Require ``Authorization: Bearer <token>`` on every HTTP path except those exempt."""

    def __init__(self, app: ASGIApp, token: str | None, exempt: tuple[str, ...] = ("/health",)) -> None:
        self.app = app
        self.token = token.strip().encode() if token else None
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or ()).get(b"authorization", b"")
        scheme, _, given = header.partition(b" ")
        if scheme.lower() == b"bearer" and secrets.compare_digest(given.strip(), self.token):
            await self.app(scope, receive, send)
            return
        message = "missing bearer token" if not header else "invalid bearer token"
        error = ApiError("unauthorized", f"{message}: send 'Authorization: Bearer <BABELRANK_API_TOKEN>'")
        response = error.response(headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


class BodyLimitMiddleware:
    """Answer 413 to request bodies over `max_bytes` (by Content-Length, or while streaming)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = ApiError("payload_too_large", f"request body is larger than {self.max_bytes} bytes").response()
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None:
            try:
                if int(length) > self.max_bytes:
                    await too_large(scope, receive, send)
                    return
            except ValueError:
                await ApiError("bad_request", "invalid Content-Length header").response()(scope, receive, send)
                return
        received = 0
        tracked = _StartTrackingSend(send)

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        try:
            await self.app(scope, limited_receive, tracked)
        except _BodyTooLarge:
            if not tracked.started:
                await too_large(scope, receive, send)


class _BodyTooLarge(HTTPException):
    """Raised while a body streams in past the limit (answered 413 by the HTTP error handler)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


class _StartTrackingSend:
    """An ASGI `send` that remembers whether the response has started."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)


class InternalErrorMiddleware:
    """Answer an exception no handler took (`core_error_response`: 500 ``internal_error`` for a
    bug), without re-raising it.

    A re-raised exception makes uvicorn close the connection after the answer, so a client's
    next request on that kept-alive connection would be reset.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracked = _StartTrackingSend(send)
        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if tracked.started:  # half an answer is out: only closing the connection is left
                raise
            await core_error_response(scope["method"], scope["path"], exc)(scope, receive, send)
