"""The query path: detect language, embed, search Chroma, (neutralise), rerank, assemble nodes."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

if TYPE_CHECKING:
    from babelrank.index import BabelIndex

logger = logging.getLogger(__name__)

# metadata an LLM does not need to read
_HIDDEN_KEYS = [
    "doc_id", "chunk_index", "chunk_count", "language_confidence", "content_sha256", "doc_sha256",
    "char_start", "char_end", "retrieval_score", "rerank_score", "rerank_logit", "query_language",
]


@dataclass
class SearchResult:
    """Nodes for one query, plus what the query path learned on the way."""

    nodes: list[NodeWithScore]
    query_language: str
    query_language_confidence: float
    timings: dict[str, float] = field(default_factory=dict)


def build_where(languages: Sequence[str] | None, where: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A Chroma `where` filter from a language list and any metadata filter."""
    clauses: list[dict[str, Any]] = []
    if languages:
        clauses.append({"language": {"$in": list(languages)}})
    if where and any(k.startswith("$") for k in where):
        clauses.append(dict(where))
    elif where:
        clauses.extend({k: v} for k, v in where.items())
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


class BabelRetriever(BaseRetriever):
    """A llama-index retriever over a `BabelIndex`.

    query → language detection (reported, never a filter unless `languages` is given) →
    query embedding (query prompt) → Chroma top-k (+filters) → language-neutral re-scoring
    (when on) → cross-encoder rerank (when on) → top-n `NodeWithScore`.

    Scores: `retrieval_score` is the cosine similarity of query and chunk (in neutral mode,
    of the language-corrected vectors); `rerank_score` is the sigmoid of the cross-encoder
    logit (raw logit in `rerank_logit`). A node's `score` is the rerank score when rerank
    ran, else the retrieval score; `min_score` applies to it.
    """

    def __init__(
        self,
        index: "BabelIndex",
        *,
        top_k: int | None = None,
        top_n: int | None = None,
        languages: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        rerank: bool | None = None,
        neutral: bool | None = None,
        min_score: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.index = index
        self.top_k = top_k or index.settings.top_k
        self.top_n = top_n or index.settings.top_n
        self.languages = list(languages) if languages else None
        self.where = dict(where) if where else None
        self.rerank = rerank
        self.neutral = neutral
        self.min_score = index.settings.min_score if min_score is None else min_score

    def search(self, query: str) -> SearchResult:
        """Run the query path and return nodes with the detected query language and timings."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query is empty")
        index = self.index
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        detection = index.detector.detect(query)
        vector = index.encoder.encode_queries([query])[0]
        t1 = time.perf_counter()
        timings["embed"] = t1 - t0
        scorer = index.neutral_scorer() if self.neutral is not False else None
        if self.neutral and scorer is None:
            logger.info("language-neutral scoring requested but the collection has no calibration; raw scores used")
        hits = index.search_vectors(vector, detection.language, self.top_k, build_where(self.languages, self.where), scorer)
        t2 = time.perf_counter()
        timings["search"] = t2 - t1
        nodes = [self._node(hit, detection.language) for hit in hits]
        reranker = index.reranker() if self.rerank is not False else None
        if self.rerank and reranker is None:
            raise ValueError("rerank was requested but no rerank model is configured (rerank_model='none')")
        if reranker is not None and nodes:
            nodes = reranker.rerank(nodes, query, top_n=len(nodes))
        timings["rerank"] = time.perf_counter() - t2
        if self.min_score is not None:
            nodes = [n for n in nodes if (n.score or 0.0) >= self.min_score]
        return SearchResult(nodes[: self.top_n], detection.language, detection.confidence, timings)

    @staticmethod
    def _node(hit: Any, query_language: str) -> NodeWithScore:
        meta = dict(hit.metadata)
        meta["retrieval_score"] = hit.score
        meta["query_language"] = query_language
        node = TextNode(
            id_=hit.id,
            text=hit.text,
            metadata=meta,
            excluded_llm_metadata_keys=list(_HIDDEN_KEYS),
            excluded_embed_metadata_keys=list(_HIDDEN_KEYS),
        )
        return NodeWithScore(node=node, score=hit.score)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self.search(query_bundle.query_str).nodes

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)
