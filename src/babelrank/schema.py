"""The chunk schema: what babelrank stores with every chunk and how a result is serialised.

One home for the metadata keys (written by the ingest, read by the query, the apps and the
evaluation), the chunk-id format and the JSON form of a result (the CLI's ``--json`` and
the HTTP API share it).

A chunk id is ``<doc_id>::<chunk index>::<first 16 hex digits of the chunk text's sha256>``:
stable across runs, so an unchanged chunk keeps its id (and its stored vector) when its
document is ingested again.
"""

from __future__ import annotations

from typing import Any, Mapping

CHUNK_KEYS = (
    "doc_id", "source", "chunk_index", "chunk_count", "language", "language_confidence",
    "content_sha256", "doc_sha256", "char_start", "char_end",
)
"""Metadata the ingest writes on every chunk; a document's own metadata key of the same name
is stored as ``user_<key>``."""

SCORE_KEYS = ("retrieval_score", "relevance", "rerank_score", "rerank_logit")
"""Scores the query adds to a result's metadata."""

QUERY_KEYS = ("query_language", "alternates")
"""Per-query metadata: the query's language and the collapsed translations of the chunk."""

RESULT_KEYS = ("doc_id", "source", "chunk_index", "language", "language_confidence", "char_start", "char_end", *SCORE_KEYS)
"""Metadata a serialised result shows as its own fields (the rest goes under ``metadata``)."""

HIDDEN_FROM_LLM = tuple(k for k in (*CHUNK_KEYS, *SCORE_KEYS, *QUERY_KEYS) if k not in ("source", "language"))
"""Metadata an LLM does not need to read (llama-index excludes it from prompts and embeddings)."""

UNDETERMINED = "und"
"""The ``language`` of a chunk whose language could not be identified (ISO 639-2 "und")."""

_ID_SEPARATOR = "::"


def user_key(key: str) -> str:
    """The stored name of a document's own metadata key (``user_`` + a reserved name)."""
    return "user_" + key if key in CHUNK_KEYS else key


def chunk_language(meta: Mapping[str, Any] | None) -> str:
    """The language tag in a chunk's metadata (`UNDETERMINED` when it has none)."""
    return str((meta or {}).get("language", UNDETERMINED))


def chunk_id(doc_id: str, index: int, content_sha256: str) -> str:
    """Stable chunk id from (document id, chunk index, content hash)."""
    return f"{doc_id}{_ID_SEPARATOR}{index}{_ID_SEPARATOR}{content_sha256[:16]}"


def doc_id_of(chunk_id: str) -> str:
    """The document id inside a chunk id (document ids may themselves contain ``::``)."""
    return chunk_id.rsplit(_ID_SEPARATOR, 2)[0]


def result_dict(rank: int, node: Any) -> dict[str, Any]:
    """One query result (a llama-index ``NodeWithScore``) as a JSON-able dict."""
    meta = dict(node.node.metadata)
    out: dict[str, Any] = {"rank": rank, "id": node.node.node_id, "doc_id": str(meta.get("doc_id", "")),
                           "text": node.node.get_content(), "score": None if node.score is None else float(node.score)}
    for key in RESULT_KEYS[1:]:
        out[key] = meta.get(key)
    out["alternates"] = list(meta.get("alternates") or [])
    out["metadata"] = {k: v for k, v in meta.items() if k not in RESULT_KEYS and k not in CHUNK_KEYS and k not in QUERY_KEYS}
    return out
