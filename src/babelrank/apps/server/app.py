"""The FastAPI app: `create_app` wires the service, error handlers and middleware to the routes."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder

from babelrank.apps.server.errors import ApiError, install_error_handlers
from babelrank.apps.server.middleware import install_middleware
from babelrank.apps.server.paths import hide_folders, result_without_folders
from babelrank.apps.server.schemas import (
    DOCUMENTS_BODY,
    ERROR_RESPONSES,
    CollectionsResponse,
    DeleteResponse,
    HealthResponse,
    IngestResponse,
    QueryRequest,
    QueryResponse,
)
from babelrank.apps.server.service import Service
from babelrank.apps.server.uploads import read_json_documents, read_uploads
from babelrank.config import (
    SERVE_CONFIG_ENV,
    VERSION,
    ServerSettings,
    Settings,
    load_serve_config,
)
from babelrank.index import BabelIndex
from babelrank.schema import result_dict


def create_app(
    settings: Settings | None = None,
    index: BabelIndex | None = None,
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

    Returns:
        The app; its lifespan starts the service (``app.state.service``).
    """
    if settings is None:
        settings = index.settings if index is not None else Settings.from_env()
    server = server_settings or ServerSettings.from_env()
    app = FastAPI(
        title="babelrank",
        version=VERSION,
        description="Multilingual retrieve-and-rerank. Errors: `{\"error\": {\"type\": ..., \"message\": ...}}`. "
        "When BABELRANK_API_TOKEN is set, send `Authorization: Bearer <token>` (all paths but /health).",
        lifespan=_lifespan,
        responses=ERROR_RESPONSES,
    )
    app.state.service = Service(settings, server, index)
    install_error_handlers(app)
    install_middleware(app, server)
    app.include_router(router)
    return app


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn babelrank.apps.server:app_from_env --factory`` and worker processes.

    Reads both settings from ``BABELRANK_SERVE_CONFIG`` (the JSON object ``babelrank serve``
    writes with `babelrank.config.dump_serve_config`) when set, else from the ``BABELRANK_*``
    environment.
    """
    raw = os.environ.get(SERVE_CONFIG_ENV)
    if not raw:
        return create_app(Settings.from_env(), server_settings=ServerSettings.from_env())
    settings, server = load_serve_config(raw)
    return create_app(settings, server_settings=server)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    service: Service = app.state.service
    await service.start()
    try:
        yield
    finally:
        await service.stop()


async def _service(request: Request) -> Service:
    """The app's service (a dependency of every route; async, so it runs on the event loop)."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]
router = APIRouter()


@router.get("/health", response_model=HealthResponse, tags=["service"])
async def health(service: ServiceDep) -> dict[str, Any]:
    """Liveness; 200 once models are loaded. Never needs the token."""
    if service.index is None:
        raise ApiError("not_ready", "starting")
    return {"status": "ok", "version": VERSION}


@router.post("/v1/query", response_model=QueryResponse, tags=["query"])
async def query(request: QueryRequest, service: ServiceDep) -> dict[str, Any]:
    """Retrieve (and rerank) chunks for a query in any language."""
    most = service.server.max_query_chars
    if len(request.query) > most:
        raise ApiError("validation_error", f"query: at most {most} characters allowed, got {len(request.query)}")
    if not request.query.strip():
        raise ApiError("validation_error", "query: must not be blank")
    idx = service.require_index()
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await service.run(idx.search, request.query, **request.search_options())
    timings = {k: round(v, 6) for k, v in result.timings.items()}
    timings["total"] = round(loop.time() - start, 6)
    results = (result_dict(i, n) for i, n in enumerate(result.nodes, 1))
    return {
        "query": request.query,
        "query_language": result.query_language,
        "query_language_confidence": float(result.query_language_confidence),
        "timings": timings,
        "answerable": result.answerable,
        "results": [r if service.server.shows_paths else result_without_folders(r) for r in results],
    }


@router.post("/v1/documents", response_model=IngestResponse, tags=["documents"], openapi_extra=DOCUMENTS_BODY)
async def add_documents(request: Request, service: ServiceDep) -> dict[str, Any]:
    """Ingest documents: a JSON body `{"documents": [{"id", "text", "metadata"}]}`, or
    multipart files (field `files`, repeatable; optional field `metadata`, a JSON object).

    An uploaded file's document id is its file name (`name#record-id` for JSON/JSONL
    records), so uploading a file again updates it. Re-sending unchanged documents is cheap.
    """
    service.require_index()  # 503 before reading the body while starting
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        docs, skipped = await read_uploads(request, service)
    else:  # JSON: RequestGuardMiddleware lets nothing else through
        docs, skipped = await read_json_documents(request)
    report = await service.ingest(docs)
    report.skipped.extend(skipped)
    return report.as_dict()


@router.delete("/v1/documents/{doc_id:path}", response_model=DeleteResponse, tags=["documents"])
async def delete_document(doc_id: str, service: ServiceDep) -> dict[str, Any]:
    """Delete one document (all its chunks); 404 when the collection does not hold it."""
    idx = service.require_index()
    async with service.writing():
        removed = await service.run(idx.delete, [doc_id], lane="write")
    if not removed:
        raise ApiError("not_found", f"no document with id {doc_id!r}")
    return {"doc_id": doc_id, "chunks_deleted": removed}


@router.get("/v1/collections", response_model=CollectionsResponse, tags=["collections"])
async def collections(service: ServiceDep) -> dict[str, Any]:
    """Statistics of the served collection: chunks and documents per language, model, store."""
    idx = service.require_index()
    info = await service.run(idx.info)
    for name in ("rerank_model", "backend", "language_backend", "top_k", "top_n", "neutral", "dedup"):
        # the backend the embedding model runs on ("auto" resolved), else the settings
        info.setdefault(name, idx.encoder.backend if name == "backend" else getattr(idx.settings, name))
    info.setdefault("expected_languages", list(idx.settings.expected_languages))
    if not service.server.shows_paths:
        info = {k: hide_folders(v) if isinstance(v, str) else v for k, v in info.items()}
    return {"collections": [jsonable_encoder(info)]}
