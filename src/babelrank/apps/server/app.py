"""HTTP service: a FastAPI app over one `BabelIndex` (``babelrank serve`` runs it with uvicorn).

Endpoints (see ``/docs`` for the OpenAPI schema):

* ``POST   /v1/query``                 search: both scores, languages, metadata, timings
* ``POST   /v1/documents``             ingest JSON texts or multipart-uploaded files
* ``DELETE /v1/documents/{doc_id}``    delete one document
* ``GET    /v1/collections``           collection statistics
* ``GET    /health``                   liveness (never needs the token)

Design:

* Models (bi-encoder, reranker, lingua's language models) load once, at start-up (lifespan), before the first request is accepted.
* Model and store work runs on two worker threads, so the event loop is never blocked:
  queries on one, writes (ingest, delete) on the other, so a query does not queue behind an
  ingest. The tokenizer and model are shared under the encoder's lock, taken one embedding
  batch at a time, so a query waits for at most one batch of a running ingest. Writes are
  also serialised with an `asyncio.Lock`, and an ingest request is one job per slice of
  documents (`ServerSettings.ingest_slice_chars`), so a delete waits for one slice.
* Errors are JSON ``{"error": {"type": ..., "message": ...}}`` (422 validation errors add
  ``"details"``), with the status codes listed in `ERROR_TYPES`; none closes the connection.
* `RequestGuardMiddleware` refuses what a page on another site could make a browser send:
  bodies that are not JSON, foreign ``Origin`` headers and, without a token, foreign ``Host`` names.
* Server-only settings (`ServerSettings`) come from ``BABELRANK_<NAME>`` variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Literal,
    Mapping,
    Sequence,
    TypeVar,
)

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from babelrank.config import (
    ENV_PREFIX,
    SERVE_CONFIG_ENV,
    TOP_K_MAX,
    TOP_N_MAX,
    VERSION,
    ServerSettings,
    Settings,
    mode_flag,
)
from babelrank.errors import (
    BabelrankError,
    ConfigError,
    ModelMismatchError,
    ModelNotFoundError,
    SourceError,
    StoreLockedError,
)
from babelrank.models.language import parse_language_code, parse_language_codes
from babelrank.query.filters import validate_where
from babelrank.schema import result_dict

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Status code and error ``type`` of each failure, as documented in docs/interfaces.md.
ERROR_TYPES: dict[str, int] = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "model_mismatch": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "validation_error": 422,
    "internal_error": 500,
    "not_ready": 503,
    "store_locked": 503,
    "store_unavailable": 503,
    "model_unavailable": 503,
}
_STATUS_TYPES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                 413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error"}


# ---- request / response models -----------------------------------------------------------
Mode = Literal["auto", "on", "off"]


class QueryRequest(BaseModel):
    """A search request."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    query: str = Field(min_length=1, description="The query text, any language.")
    k: int | None = Field(None, ge=1, le=TOP_K_MAX, validation_alias=AliasChoices("k", "top_k"),
                          description="Candidates fetched from the vector store (default: setting top_k).")
    top_n: int | None = Field(None, ge=1, le=TOP_N_MAX, description="Results returned (default: setting top_n).")
    languages: list[str] | None = Field(None, description="Only chunks in these languages (ISO 639-1 or 639-3; "
                                        "\"und\" = undetermined), e.g. [\"uk\", \"ru\"].")
    where: dict[str, Any] | None = Field(None, description="Chroma metadata filter, e.g. {\"topic\": \"places\"}.")
    rerank: bool | None = Field(None, description="Cross-encoder rerank; null = as configured.")
    min_score: float | None = Field(None, description="Drop results whose final score is lower.")
    prefer_languages: list[str] | None = Field(
        None, description="Results in these languages rank first unless another scores more than prefer_margin higher.")
    prefer_margin: float | None = Field(None, ge=0.0, description="How far a preferred-language result may "
                                        "trail and still rank first (default 0.05, in final-score units).")
    answer_language: str | None = Field(None, description="Preferred like prefer_languages, and the version shown "
                                        "when translations are merged.")
    dedup: Mode | None = Field(None, description="Merge translations / near duplicates: on, off, or auto "
                               "(= as configured; also null).")
    dedup_threshold: float | None = Field(None, ge=-1.0, le=1.0, description="Centred cosine at or above which "
                                          "results merge (default: the model's).")
    neutral: Mode | None = Field(None, description="Language-neutral scoring: on, off, or auto (= as configured; "
                                 "also null).")

    @field_validator("languages", "prefer_languages")
    @classmethod
    def _codes(cls, value: list[str] | None) -> list[str] | None:
        return parse_language_codes(value)

    @field_validator("where")
    @classmethod
    def _where(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return validate_where(value)

    @field_validator("answer_language")
    @classmethod
    def _code(cls, value: str | None) -> str | None:
        return parse_language_code(value) if value is not None and value.strip() else None

    def search_options(self) -> dict[str, Any]:
        """Keyword arguments of `BabelIndex.search` for this request."""
        options: dict[str, Any] = {
            "top_k": self.k, "top_n": self.top_n, "languages": self.languages, "where": self.where,
            "rerank": self.rerank, "min_score": self.min_score, "dedup": mode_flag(self.dedup),
            "dedup_threshold": self.dedup_threshold, "neutral": mode_flag(self.neutral),
            "prefer_languages": self.prefer_languages, "answer_language": self.answer_language,
        }
        if self.prefer_margin is not None:
            options["prefer_margin"] = self.prefer_margin
        return options


class Alternate(BaseModel):
    id: str = Field(description="Chunk id of a translation / near duplicate merged into this result.")
    language: str
    score: float = Field(description="Its first-stage retrieval score.")


class QueryHit(BaseModel):
    rank: int
    id: str = Field(description="Chunk id.")
    doc_id: str
    text: str
    score: float | None = Field(description="Final score: rerank_score when rerank ran, else retrieval_score.")
    retrieval_score: float | None = Field(description="Cosine similarity of query and chunk.")
    rerank_score: float | None = Field(description="Sigmoid of the cross-encoder logit (null without rerank).")
    rerank_logit: float | None = None
    language: str | None
    language_confidence: float | None = None
    source: str | None
    chunk_index: int | None
    char_start: int | None = None
    char_end: int | None = None
    alternates: list[Alternate] = Field(default_factory=list, description="Translations / near duplicates merged "
                                        "into this result (dedup), best first.")
    metadata: dict[str, Any] = Field(description="The document's own metadata.")


class QueryResponse(BaseModel):
    query: str
    query_language: str
    query_language_confidence: float
    timings: dict[str, float] = Field(description="Seconds per stage (embed, search, rerank, total).")
    results: list[QueryHit]


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, min_length=1, max_length=1024, description="Stable id; default: hash of the text.")
    text: str = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)
    source: str | None = Field(None, description="Where the text comes from (shown in results); default \"text\".")


class DocumentsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(min_length=1, max_length=10_000)


class IngestResponse(BaseModel):
    documents: int
    added: int
    updated: int
    unchanged: int
    deleted: int
    chunks_written: int
    chunks_embedded: int
    chunks_deleted: int
    truncated: int
    languages: dict[str, int]
    skipped: list[dict[str, str]]
    seconds: float


class DeleteResponse(BaseModel):
    doc_id: str
    chunks_deleted: int


class CollectionsResponse(BaseModel):
    collections: list[dict[str, Any]]


class ErrorBody(BaseModel):
    type: str = Field(description="Machine-readable kind, e.g. validation_error, unauthorized, not_found.")
    message: str
    details: list[dict[str, Any]] | None = Field(None, description="Per-field problems (validation errors only).")


class ErrorResponse(BaseModel):
    error: ErrorBody


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token (when BABELRANK_API_TOKEN is set)"},
    403: {"model": ErrorResponse, "description": "Foreign Origin, or (without a token) a Host name not allowed"},
    413: {"model": ErrorResponse, "description": "Request body over the limit"},
    415: {"model": ErrorResponse, "description": "A body that is not application/json (or multipart where documented)"},
    422: {"model": ErrorResponse, "description": "Invalid request"},
    503: {"model": ErrorResponse, "description": "Not ready, or the store/model is unavailable"},
}


class HealthResponse(BaseModel):
    status: str
    version: str


# ---- errors ------------------------------------------------------------------------------
class ApiError(Exception):
    """An error answered as ``{"error": {"type", "message"}}`` with the status of its type."""

    def __init__(self, type_: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.type = type_
        self.status = ERROR_TYPES[type_]
        self.message = message
        self.details = details


class _BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


def error_response(status: int, type_: str, message: str, details: Any = None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The one error shape of this service."""
    body: dict[str, Any] = {"type": type_, "message": message}
    if details is not None:
        body["details"] = jsonable_encoder(details)
    return JSONResponse({"error": body}, status_code=status, headers=dict(headers or {}))


def classify(exc: BaseException) -> ApiError:
    """Map an exception from the core to an `ApiError` (message kept, type by class)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, StoreLockedError):
        return ApiError("store_locked", str(exc))
    if isinstance(exc, ModelMismatchError):
        return ApiError("model_mismatch", str(exc))
    if isinstance(exc, ModelNotFoundError):
        return ApiError("model_unavailable", str(exc))
    if isinstance(exc, (ConfigError, SourceError, ValueError)) or _chroma_bad_input(exc):
        return ApiError("validation_error", str(exc))
    if isinstance(exc, ConnectionError):
        return ApiError("store_unavailable", str(exc))
    if isinstance(exc, BabelrankError):
        return ApiError("internal_error", str(exc))
    return ApiError("internal_error", f"internal error ({type(exc).__name__}); see the server log")


def core_error_response(method: str, path: str, exc: Exception) -> JSONResponse:
    """The answer to an exception from the core (server errors are logged, with a traceback for bugs)."""
    err = classify(exc)
    if err.status >= 500:
        logger.error("%s %s failed: %s", method, path, exc, exc_info=err.type == "internal_error")
    return error_response(err.status, err.type, err.message)


def _chroma_bad_input(exc: BaseException) -> bool:
    """Chroma's own 4xx errors (e.g. an invalid `where` filter), which are not ValueErrors."""
    if not type(exc).__module__.startswith("chromadb"):
        return False
    try:
        return 400 <= int(exc.code()) < 500  # type: ignore[attr-defined]
    except Exception:
        return False


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.type, exc.message, exc.details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        type_ = _STATUS_TYPES.get(exc.status_code, "bad_request" if exc.status_code < 500 else "internal_error")
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(jsonable_encoder(exc.detail))
        return error_response(exc.status_code, type_, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else str(first.get("msg", "invalid request"))
        return error_response(422, "validation_error", message, errors)

    async def _core_error(request: Request, exc: Exception) -> JSONResponse:
        return core_error_response(request.method, request.url.path, exc)

    # Not `Exception`: Starlette gives its handler to ServerErrorMiddleware, which re-raises after
    # answering, and uvicorn then closes the kept-alive connection. InternalErrorMiddleware takes the rest.
    handled: list[type] = [BabelrankError, ValueError, ConnectionError]
    try:
        from chromadb.errors import ChromaError

        handled.append(ChromaError)
    except ImportError:  # pragma: no cover
        pass
    for exc_type in handled:
        app.add_exception_handler(exc_type, _core_error)


# ---- ASGI middleware ---------------------------------------------------------------------
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
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
        await error_response(ERROR_TYPES[problem[0]], *problem)(scope, receive, send)

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
        response = error_response(401, "unauthorized", f"{message}: send 'Authorization: Bearer <BABELRANK_API_TOKEN>'",
                                  headers={"WWW-Authenticate": "Bearer"})
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
        too_large = error_response(413, "payload_too_large", f"request body is larger than {self.max_bytes} bytes")
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None:
            try:
                if int(length) > self.max_bytes:
                    await too_large(scope, receive, send)
                    return
            except ValueError:
                await error_response(400, "bad_request", "invalid Content-Length header")(scope, receive, send)
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
    """Answer 500 (``internal_error``) to an exception no handler took, without re-raising it.

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


# ---- the service -------------------------------------------------------------------------
class Service:
    """The index plus the machinery that keeps model work off the event loop.

    Blocking work runs on two worker threads, one lane each: queries (and statistics) on one,
    writes (start-up, ingest, delete) on the other, so a query never queues behind an ingest;
    the two share the models through their locks (`BiEncoder.lock`: one embedding batch at a
    time). Writes are also serialised with an `asyncio.Lock`.
    """

    def __init__(self, settings: Settings, server: ServerSettings, index: Any = None) -> None:
        self.settings = settings
        self.server = server
        self.index = index
        self.owns_index = index is None
        self.write_lock: asyncio.Lock | None = None
        self.lanes: dict[str, ThreadPoolExecutor] = {}

    async def start(self) -> None:
        self.write_lock = asyncio.Lock()  # created inside the serving event loop
        self.lanes = {lane: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"babelrank-{lane}") for lane in ("read", "write")}
        try:
            if self.index is None:
                from babelrank.index import BabelIndex

                self.index = await self.run(BabelIndex, self.settings, lane="write")
            # load the reranker and language-ID models now (once), not on the first queries
            await self.run(self.index.warm_up)
        except BaseException as exc:
            if isinstance(exc, StoreLockedError):
                logger.error("cannot start: %s", exc)
            await self.stop()
            raise
        logger.info("ready: collection %r at %s", self.index.store.name, self.index.store.location)

    async def stop(self) -> None:
        lanes, self.lanes = self.lanes, {}
        for executor in lanes.values():
            await asyncio.to_thread(executor.shutdown, wait=True)  # lets running work finish
        if self.owns_index and self.index is not None:
            self.index.close()
            self.index = None

    async def run(self, fn: Callable[..., T], *args: Any, lane: str = "read", **kwargs: Any) -> T:
        """Run blocking model/store work on the worker thread of `lane` ("read" or "write")."""
        if not self.lanes:
            raise ApiError("not_ready", "the service is not started (its lifespan has not run)")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.lanes[lane], lambda: fn(*args, **kwargs))

    async def ingest(self, docs: Sequence[Any]) -> Any:
        """Ingest `docs` under the write lock, one slice (`ServerSettings.ingest_slice_chars`) per
        write-lane job, so that a delete waits for one slice, not for the whole request."""
        from babelrank.ingest.pipeline import IngestReport

        report = IngestReport()
        async with self.writing():
            for part in ingest_slices(docs, self.server.ingest_slice_chars):
                add_report(report, await self.run(self.require_index().ingest_documents, part, progress=False, lane="write"))
        return report

    def writing(self) -> asyncio.Lock:
        """The lock that serialises writes (ingest, delete)."""
        if self.write_lock is None:
            raise ApiError("not_ready", "the service is not started (its lifespan has not run)")
        return self.write_lock

    def require_index(self) -> Any:
        if self.index is None:
            raise ApiError("not_ready", "the index is not loaded yet")
        return self.index


def ingest_slices(docs: Sequence[Any], max_chars: int) -> list[list[Any]]:
    """Consecutive slices of `docs` of about `max_chars` characters of text (a longer document
    alone); documents sharing an id go in the first one's slice, so the ingest still keeps the
    first of them and reports the others as duplicates."""
    slices: list[list[Any]] = []
    home: dict[str, int] = {}
    size = 0
    for doc in docs:
        at = home.get(doc.doc_id)
        if at is None:
            if not slices or (slices[-1] and size + len(doc.text) > max_chars):
                slices.append([])
                size = 0
            at = home[doc.doc_id] = len(slices) - 1
            size += len(doc.text)
        slices[at].append(doc)
    return slices


def add_report(total: Any, part: Any) -> None:
    """Add the counts, languages and skipped inputs of ingest report `part` to `total`."""
    for f in dataclasses.fields(total):
        mine, theirs = getattr(total, f.name), getattr(part, f.name)
        if isinstance(mine, Counter):
            mine.update(theirs)
        elif isinstance(mine, list):
            mine.extend(theirs)
        else:
            setattr(total, f.name, mine + theirs)


def hide_folders(value: str) -> str:
    """`value` without the folders of the absolute path it starts with (ids and sources of files):
    ``/srv/docs/notes.jsonl#market::0::3f2a`` -> ``notes.jsonl#market::0::3f2a``."""
    if not os.path.isabs(value):
        return value
    end = min((i for i in (value.find("#"), value.find("::")) if i >= 0), default=len(value))
    return Path(value[:end]).name + value[end:]


def _result_without_folders(result: dict[str, Any]) -> dict[str, Any]:
    out = {**result, **{k: hide_folders(result[k]) for k in ("id", "doc_id", "source") if isinstance(result.get(k), str)}}
    out["alternates"] = [{**a, "id": hide_folders(a["id"])} for a in result.get("alternates") or []]
    return out


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with its `$defs` references inlined (for `openapi_extra`)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


def create_app(
    settings: Settings | None = None,
    index: Any = None,
    *,
    server_settings: ServerSettings | None = None,
) -> FastAPI:
    """The FastAPI app.

    Args:
        settings: index settings (default: ``index.settings`` or `Settings.from_env()`).
        index: an open `BabelIndex` to serve; the caller keeps ownership (the app does not
            close it). Without one the app opens (and at shutdown closes) its own at start-up;
            a locked embedded store then fails start-up with `StoreLockedError`.
        server_settings: token and limits (default: `ServerSettings.from_env()`).
    """
    if settings is None:
        settings = index.settings if index is not None else Settings.from_env()
    server = server_settings or ServerSettings.from_env()
    service = Service(settings, server, index)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="babelrank",
        version=VERSION,
        description="Multilingual retrieve-and-rerank. Errors: `{\"error\": {\"type\": ..., \"message\": ...}}`. "
        "When BABELRANK_API_TOKEN is set, send `Authorization: Bearer <token>` (all paths but /health).",
        lifespan=lifespan,
        responses=_ERROR_RESPONSES,
    )
    app.state.service = service
    _install_error_handlers(app)
    app.add_middleware(InternalErrorMiddleware)  # innermost: inside the body limit and auth
    app.add_middleware(BodyLimitMiddleware, max_bytes=server.max_body_bytes)
    app.add_middleware(BearerAuthMiddleware, token=server.api_token)  # 401 before reading bodies
    app.add_middleware(RequestGuardMiddleware, check_host=server.api_token is None,  # outermost
                       hosts=server.allowed_hosts, origins=server.allowed_origins)

    @app.get("/health", response_model=HealthResponse, tags=["service"])
    async def health() -> dict[str, Any]:
        """Liveness; 200 once models are loaded. Never needs the token."""
        if service.index is None:
            raise ApiError("not_ready", "starting")
        return {"status": "ok", "version": VERSION}

    @app.post("/v1/query", response_model=QueryResponse, tags=["query"])
    async def query(request: QueryRequest) -> dict[str, Any]:
        """Retrieve (and rerank) chunks for a query in any language."""
        if len(request.query) > server.max_query_chars:
            raise ApiError("validation_error", f"query: at most {server.max_query_chars} characters allowed, "
                           f"got {len(request.query)}")
        if not request.query.strip():
            raise ApiError("validation_error", "query: must not be blank")
        idx = service.require_index()
        loop = asyncio.get_running_loop()
        start = loop.time()
        result = await service.run(idx.search, request.query, **request.search_options())
        timings = {k: round(v, 6) for k, v in result.timings.items()}
        timings["total"] = round(loop.time() - start, 6)
        return {
            "query": request.query,
            "query_language": result.query_language,
            "query_language_confidence": float(result.query_language_confidence),
            "timings": timings,
            "results": [r if server.shows_paths else _result_without_folders(r)
                        for r in (result_dict(i, n) for i, n in enumerate(result.nodes, 1))],
        }

    @app.post(
        "/v1/documents",
        response_model=IngestResponse,
        tags=["documents"],
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": _inline_schema(DocumentsIn)},
            "multipart/form-data": {"schema": {"type": "object", "required": ["files"], "properties": {
                "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                "metadata": {"type": "string", "description": "JSON object added to every uploaded document's metadata"},
            }}},
        }}},
    )
    async def add_documents(request: Request) -> dict[str, Any]:
        """Ingest documents: a JSON body `{"documents": [{"id", "text", "metadata"}]}`, or
        multipart files (field `files`, repeatable; optional field `metadata`, a JSON object).

        An uploaded file's document id is its file name (`name#record-id` for JSON/JSONL
        records), so uploading a file again updates it. Re-sending unchanged documents is cheap.
        """
        service.require_index()  # 503 before reading the body while starting
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "multipart/form-data":
            docs, skipped = await _read_uploads(request, service)
        else:  # JSON: RequestGuardMiddleware lets nothing else through
            docs, skipped = await _read_json_documents(request)
        report = await service.ingest(docs)
        report.skipped.extend(skipped)
        return report.as_dict()

    @app.delete("/v1/documents/{doc_id:path}", response_model=DeleteResponse, tags=["documents"])
    async def delete_document(doc_id: str) -> dict[str, Any]:
        """Delete one document (all its chunks); 404 when the collection does not hold it."""
        idx = service.require_index()
        async with service.writing():
            removed = await service.run(idx.delete, [doc_id], lane="write")
        if not removed:
            raise ApiError("not_found", f"no document with id {doc_id!r}")
        return {"doc_id": doc_id, "chunks_deleted": removed}

    @app.get("/v1/collections", response_model=CollectionsResponse, tags=["collections"])
    async def collections() -> dict[str, Any]:
        """Statistics of the served collection: chunks and documents per language, model, store."""
        idx = service.require_index()
        info = await service.run(idx.info)
        for name in ("rerank_model", "backend", "language_backend", "top_k", "top_n", "neutral", "dedup"):
            info.setdefault(name, getattr(idx.settings, name))
        info.setdefault("expected_languages", list(idx.settings.expected_languages))
        if not server.shows_paths:
            info = {k: hide_folders(v) if isinstance(v, str) else v for k, v in info.items()}
        return {"collections": [jsonable_encoder(info)]}

    return app


async def _read_json_documents(request: Request) -> tuple[list[Any], list[Any]]:
    from babelrank.ingest.sources import from_texts

    raw = await request.body()
    try:
        payload = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError("validation_error", f"body is not valid JSON: {exc}") from None
    try:
        body = DocumentsIn.model_validate(payload)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
    docs = []
    for i, d in enumerate(body.documents):
        if not d.text.strip():
            raise ApiError("validation_error", f"documents.{i}.text: must not be blank")
        doc = from_texts([d.text], [d.id] if d.id else None, [d.metadata])[0]
        if d.source:
            doc = dataclasses.replace(doc, source=d.source)
        docs.append(doc)
    return docs, []


async def _read_uploads(request: Request, service: Service) -> tuple[list[Any], list[Any]]:
    from babelrank.ingest.sources import SUPPORTED_SUFFIXES, Skipped

    form = await request.form(max_files=10_000, max_fields=100)
    uploads = [f for f in form.getlist("files") if hasattr(f, "filename")]
    if not uploads:
        raise ApiError("validation_error", "files: upload at least one file in the multipart field 'files'")
    extra: dict[str, Any] = {}
    if form.get("metadata"):
        try:
            extra = json.loads(str(form.get("metadata")))
        except json.JSONDecodeError as exc:
            raise ApiError("validation_error", f"metadata: not valid JSON: {exc}") from None
        if not isinstance(extra, dict):
            raise ApiError("validation_error", "metadata: must be a JSON object")
    docs: list[Any] = []
    skipped: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="babelrank-upload-") as tmp:
        for n, upload in enumerate(uploads):
            name = Path(upload.filename or f"upload-{n}").name or f"upload-{n}"
            if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
                skipped.append(Skipped(name, f"unsupported file type; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"))
                continue
            folder = Path(tmp) / str(n)
            folder.mkdir()
            path = folder / name
            path.write_bytes(await upload.read())
            try:
                docs.extend(await service.run(_read_upload, path, name, extra, lane="write"))
            except SourceError as exc:
                skipped.append(Skipped(name, str(exc)))
    return docs, skipped


def _read_upload(path: Path, name: str, extra: Mapping[str, Any]) -> list[Any]:
    from babelrank.ingest.sources import clean_metadata, read_file

    tmp_source = str(path.resolve())
    out = []
    for doc in read_file(path):
        doc_id = name + doc.doc_id[len(tmp_source):] if doc.doc_id.startswith(tmp_source) else doc.doc_id
        out.append(dataclasses.replace(doc, doc_id=doc_id, source=name, metadata=clean_metadata({**doc.metadata, **extra})))
    return out


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn babelrank.apps.server.app:app_from_env --factory`` and worker processes.

    Reads `Settings` from ``BABELRANK_SERVE_CONFIG`` (JSON, written by ``babelrank serve``)
    when set, else from the ``BABELRANK_*`` environment.
    """
    raw = os.environ.get(SERVE_CONFIG_ENV)
    settings = Settings.from_env(env={}, **json.loads(raw)) if raw else Settings.from_env()
    return create_app(settings)
