"""The bodies of ``POST /v1/documents`` as source documents: a JSON list of texts, or multipart files.

An uploaded file's document id is its file name (``name#record-id`` for JSON/JSONL records),
so uploading a file again updates it.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from babelrank.apps.server.errors import ApiError
from babelrank.apps.server.schemas import DocumentsIn
from babelrank.apps.server.service import Service
from babelrank.errors import SourceError
from babelrank.ingest.sources import (
    SUPPORTED_SUFFIXES,
    Skipped,
    SourceDocument,
    clean_metadata,
    from_texts,
    read_file,
)


async def read_json_documents(request: Request) -> tuple[list[SourceDocument], list[Skipped]]:
    """The documents of a JSON body ``{"documents": [{"id", "text", "metadata", "source"}]}`` (none skipped).

    Raises:
        ApiError: the body is not JSON, or a text is blank (``validation_error``).
        RequestValidationError: the JSON does not match `DocumentsIn`.
    """
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


async def read_uploads(request: Request, service: Service) -> tuple[list[SourceDocument], list[Skipped]]:
    """The documents of the multipart files (field ``files``, repeatable; optional field ``metadata``,
    a JSON object added to each), and the files skipped (unsupported type, unreadable).

    The files are read on `service`'s write lane, from a temporary folder removed afterwards.

    Raises:
        ApiError: no file, or ``metadata`` is not a JSON object (``validation_error``).
    """
    form = await request.form(max_files=10_000, max_fields=100)
    uploads = [f for f in form.getlist("files") if hasattr(f, "filename")]
    if not uploads:
        raise ApiError("validation_error", "files: upload at least one file in the multipart field 'files'")
    extra = _form_metadata(form.get("metadata"))
    docs: list[SourceDocument] = []
    skipped: list[Skipped] = []
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


def _form_metadata(field: Any) -> dict[str, Any]:
    """The multipart field ``metadata`` (a JSON object; absent or empty: none)."""
    if not field:
        return {}
    try:
        extra = json.loads(str(field))
    except json.JSONDecodeError as exc:
        raise ApiError("validation_error", f"metadata: not valid JSON: {exc}") from None
    if not isinstance(extra, dict):
        raise ApiError("validation_error", "metadata: must be a JSON object")
    return extra


def _read_upload(path: Path, name: str, extra: Mapping[str, Any]) -> list[SourceDocument]:
    """The documents of the uploaded file at `path`, with ids and source under its file `name`."""
    tmp_source = str(path.resolve())
    out = []
    for doc in read_file(path):
        doc_id = name + doc.doc_id[len(tmp_source):] if doc.doc_id.startswith(tmp_source) else doc.doc_id
        out.append(dataclasses.replace(doc, doc_id=doc_id, source=name, metadata=clean_metadata({**doc.metadata, **extra})))
    return out
