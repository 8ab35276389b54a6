"""HTTP service: a FastAPI app over one `BabelIndex` (``babelrank serve`` runs it with uvicorn).

Endpoints (see ``/docs`` for the OpenAPI schema):

* ``POST   /v1/query``                 search: both scores, languages, metadata, timings
* ``POST   /v1/documents``             ingest JSON texts or multipart-uploaded files
* ``DELETE /v1/documents/{doc_id}``    delete one document
* ``GET    /v1/collections``           collection statistics
* ``GET    /health``                   liveness (never needs the token)

Design, one module each:

* `app`: `create_app` and the routes; `app_from_env` is the factory of worker processes
  (``uvicorn babelrank.apps.server:app_from_env --factory``), which read their settings from
  one serialised object (`babelrank.config.load_serve_config`).
* `service`: models (bi-encoder, reranker, lingua's language models) load once, at start-up
  (lifespan), before the first request is accepted. Model and store work runs on two worker
  threads, so the event loop is never blocked: queries on one, writes (ingest, delete) on the
  other, so a query does not queue behind an ingest. The tokenizer and model are shared under
  the encoder's lock, taken one embedding slice (four batches) at a time, so a query waits for
  at most one slice of a running ingest. Writes are also serialised with an `asyncio.Lock`, and an ingest
  request is one job per slice of documents (`ServerSettings.ingest_slice_chars`), so a delete
  waits for one slice.
* `errors`: errors are JSON ``{"error": {"type": ..., "message": ...}}`` (422 validation errors
  add ``"details"``); none closes the connection.
* `middleware`: `RequestGuardMiddleware` refuses what a page on another site could make a
  browser send: bodies that are not JSON, foreign ``Origin`` headers and, without a token,
  foreign ``Host`` names; then the bearer token and the body limit.
* `schemas`: request and response bodies; `uploads`: ingest bodies as documents; `paths`:
  server file paths hidden from answers.
"""

from babelrank.apps.server.app import app_from_env, create_app

__all__ = ["app_from_env", "create_app"]
