"""The HTTP API's request and response bodies (pydantic models; ``/docs`` shows them as OpenAPI)."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from babelrank.config import TOP_K_MAX, TOP_N_MAX, Mode, mode_flag
from babelrank.models.language import parse_language_code, parse_language_codes
from babelrank.query.filters import validate_where


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
    min_relevance: float | None = Field(None, ge=0.0, le=1.0, description="Drop results whose relevance (calibrated "
                                        "probability that the chunk is relevant) is lower; null = as configured "
                                        "(setting min_relevance, 0.5), 0 keeps every result.")
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
        if self.min_relevance is not None:
            options["min_relevance"] = self.min_relevance
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
    relevance: float | None = Field(None, description="Calibrated probability that the chunk is relevant to the "
                                    "query, the same meaning for every model and language (null when the "
                                    "collection has no relevance calibration).")
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
    timings: dict[str, float] = Field(description="Seconds per stage (embed, search, relevance, rerank, total).")
    answerable: bool | None = Field(description="True when some chunk reaches min_relevance; false: the "
                                    "collection holds no answer (results is then empty when min_relevance is "
                                    "set); null: the collection has no relevance calibration.")
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


class HealthResponse(BaseModel):
    status: str
    version: str


class ErrorBody(BaseModel):
    type: str = Field(description="Machine-readable kind, e.g. validation_error, unauthorized, not_found.")
    message: str
    details: list[dict[str, Any]] | None = Field(None, description="Per-field problems (validation errors only).")


class ErrorResponse(BaseModel):
    error: ErrorBody


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token (when BABELRANK_API_TOKEN is set)"},
    403: {"model": ErrorResponse, "description": "Foreign Origin, or (without a token) a Host name not allowed"},
    413: {"model": ErrorResponse, "description": "Request body over the limit"},
    415: {"model": ErrorResponse, "description": "A body that is not application/json (or multipart where documented)"},
    422: {"model": ErrorResponse, "description": "Invalid request"},
    503: {"model": ErrorResponse, "description": "Not ready, or the store/model is unavailable"},
}
"""The error answers every endpoint may give (OpenAPI ``responses``)."""


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


DOCUMENTS_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": _inline_schema(DocumentsIn)},
    "multipart/form-data": {"schema": {"type": "object", "required": ["files"], "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "metadata": {"type": "string", "description": "JSON object added to every uploaded document's metadata"},
    }}},
}}}
"""The OpenAPI request body of ``POST /v1/documents``, which reads the body itself (JSON or multipart)."""
