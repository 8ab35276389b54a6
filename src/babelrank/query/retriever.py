"""The query path: detect language, embed, search (raw or neutral), dedup, rerank, assemble nodes."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from babelrank.config import DEFAULT_MIN_RELEVANCE, flag_mode
from babelrank.models.bi_encoder import BiEncoder
from babelrank.models.language import LanguageDetector
from babelrank.query.dedup import (
    MIN_DEDUP_CHUNKS,
    alternates,
    collapse_translations,
    default_threshold,
    language_centres,
)
from babelrank.query.filters import build_where
from babelrank.query.neutral import NeutralScorer, language_map
from babelrank.query.relevance import answerable, keep_relevant, relevance
from babelrank.query.relevance_fit import RelevanceKeeper
from babelrank.query.rerank import CrossEncoderReranker
from babelrank.query.search import Searcher
from babelrank.schema import HIDDEN_FROM_LLM, UNDETERMINED, chunk_language
from babelrank.store.calibration import CalibrationKeeper
from babelrank.store.chroma import Hit

logger = logging.getLogger(__name__)

DEFAULT_PREFER_MARGIN = 0.05
"""How far (in score units) a preferred-language result may trail and still rank first."""


@dataclass
class SearchResult:
    """Nodes for one query, plus what the query path learned on the way.

    `answerable` is True when at least one first-stage candidate's relevance reaches
    `min_relevance` (`DEFAULT_MIN_RELEVANCE` when that is None), False when none does (then,
    with `min_relevance` set, `nodes` is empty), None when the collection has no relevance
    calibration (fewer than 50 chunks, `babelrank.query.relevance_fit.MIN_CHUNKS`).
    """

    nodes: list[NodeWithScore]
    query_language: str
    query_language_confidence: float
    timings: dict[str, float] = field(default_factory=dict)
    answerable: bool | None = None


class BabelRetriever(BaseRetriever):
    """A llama-index retriever over one collection (`BabelIndex.as_retriever` builds it).

    query → language detection (reported, never a filter unless `languages` is given) →
    query embedding (query prompt) → Chroma top-k (+filters) → language-neutral re-scoring
    (when on) → cross-encoder rerank (when on) → top-n `NodeWithScore`.

    Scores: `retrieval_score` is the cosine similarity of query and chunk (in neutral mode,
    that cosine mapped per chunk language, see `babelrank.query.neutral`); `relevance` the
    calibrated probability that the chunk is relevant (`babelrank.query.relevance`; absent
    without a relevance calibration); `rerank_score` is the sigmoid of the cross-encoder
    logit (raw logit in `rerank_logit`). A node's `score` is the rerank score when rerank
    ran, else the retrieval score; `min_score` applies to it. `min_relevance` applies to
    `relevance`, before rerank.

    Translation-aware results (`dedup`, see `babelrank.query.dedup`): first-stage candidates whose
    stored passage vectors, each centred on its language's centroid in the collection, reach
    `dedup_threshold` cosine are collapsed into one result
    *before* rerank (the cross-encoder only scores distinct content). The representative is
    the version in `answer_language`, else in the first of `prefer_languages` present, else
    in the detected query language, else the best-scored; the others are listed, best first,
    in its metadata as `alternates` = [{id, language, score}] (score = retrieval score).
    `dedup` is "on", "off" or "auto": on when the collection holds more than one language
    and the model's threshold is known (`BabelIndex.as_retriever` takes True/False, or None
    for `Settings.dedup`).

    Language preferences: `languages` is a hard filter. `prefer_languages` (and
    `answer_language`, which is preferred too) is a soft preference that never changes a
    score: results are ordered by `score + prefer_margin` for a preferred language and by
    `score` otherwise, i.e. a preferred-language result ranks ahead of another-language
    result unless that one scores more than `prefer_margin` higher (default 0.05; in the
    units of the final score: cosine without rerank, sigmoid probability with rerank).

    Args:
        encoder: embeds the query (query prompt).
        detector: detects the query's language.
        searcher: the first-stage search of the collection.
        reranker: the cross-encoder reranker; None retrieves without rerank.
        calibration: the collection's language calibration (dedup centres on its centroids).
        relevance: the collection's relevance calibration; None = no `relevance` field.
        top_k: first-stage candidates.
        top_n: results returned.
        languages: a hard filter on chunk languages.
        where: a metadata filter (see `babelrank.query.filters`).
        rerank: False skips the reranker; True requires one (ValueError without).
        neutral: language-neutral scores on/off for this query; None = the searcher's mode.
        min_score: drop results whose final score is lower.
        min_relevance: drop results whose relevance is lower; None keeps them all.
        dedup: "auto", "on" or "off" (see above).
        dedup_threshold: the cosine at which two candidates are one; None = the model's default.
        prefer_languages, prefer_margin, answer_language: see above.
        **kwargs: passed to llama-index's `BaseRetriever`.

    Raises:
        ValueError: `prefer_margin` < 0 or `dedup_threshold` outside [-1, 1].
    """

    def __init__(
        self,
        *,
        encoder: BiEncoder,
        detector: LanguageDetector,
        searcher: Searcher,
        reranker: CrossEncoderReranker | None,
        calibration: CalibrationKeeper,
        top_k: int,
        relevance: RelevanceKeeper | None = None,
        top_n: int,
        languages: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        rerank: bool | None = None,
        neutral: bool | None = None,
        min_score: float | None = None,
        min_relevance: float | None = None,
        dedup: str = "auto",
        dedup_threshold: float | None = None,
        prefer_languages: Sequence[str] | None = None,
        prefer_margin: float = DEFAULT_PREFER_MARGIN,
        answer_language: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(prefer_languages, str):
            prefer_languages = [prefer_languages]
        if prefer_margin < 0:
            raise ValueError(f"prefer_margin must be >= 0, got {prefer_margin}")
        if min_relevance is not None and not 0.0 <= min_relevance <= 1.0:
            raise ValueError(f"min_relevance is a probability in [0, 1], got {min_relevance}")
        if dedup_threshold is not None and not -1.0 <= dedup_threshold <= 1.0:
            raise ValueError(f"dedup_threshold is a cosine in [-1, 1], got {dedup_threshold}")
        self.encoder = encoder
        self.detector = detector
        self.searcher = searcher
        self.reranker = reranker
        self.calibration = calibration
        self.relevance = relevance
        self.top_k = top_k
        self.top_n = top_n
        self.languages = list(languages) if languages else None
        self.where = dict(where) if where else None
        self.rerank = rerank
        self.neutral = neutral
        self.min_score = min_score
        self.min_relevance = min_relevance
        self.dedup = dedup
        self.dedup_threshold = dedup_threshold
        self.prefer_languages = list(prefer_languages) if prefer_languages else []
        self.prefer_margin = prefer_margin
        self.answer_language = answer_language or None

    def dedup_threshold_in_use(self) -> float | None:
        """The dedup cosine threshold this query would use, or None when dedup is off."""
        mode, model = self.dedup, self.encoder.name
        if mode == "off":
            return None
        threshold, calibrated = (self.dedup_threshold, True) if self.dedup_threshold is not None else default_threshold(model)
        counts = self.calibration.latest.counts
        if sum(counts.values()) < MIN_DEDUP_CHUNKS:
            # centroids of a handful of chunks are meaningless (two chunks centre to opposite vectors)
            logger.info("dedup is off: the collection holds fewer than %d chunks", MIN_DEDUP_CHUNKS)
            return None
        if mode == "auto":
            known = [lang for lang in counts if lang != UNDETERMINED]
            if len(known) < 2:
                return None
            if not calibrated:
                logger.info("dedup is off: no calibrated threshold for %s (set dedup_threshold, "
                            "see benchmarks/dedup_threshold.py)", model)
                return None
        elif not calibrated:
            logger.warning("dedup: no calibrated threshold for %s; using %.2f (measure one with "
                           "benchmarks/dedup_threshold.py)", model, threshold)
        return threshold

    def search(self, query: str) -> SearchResult:
        """Run the query path and return nodes with the detected query language and timings.

        Raises:
            ValueError: the query is empty, or rerank was requested without a reranker.
        """
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query is empty")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        detection = self.detector.detect(query)
        vector = self.encoder.encode_queries([query])[0]
        t1 = time.perf_counter()
        timings["embed"] = t1 - t0
        scorer = self.searcher.scorer(flag_mode(self.neutral))
        threshold = self.dedup_threshold_in_use()
        hits = self.searcher.search(
            vector, detection.language, self.top_k, build_where(self.languages, self.where), scorer,
            include_embeddings=threshold is not None,
        )
        if threshold is not None and hits:
            nodes = self._collapse(hits, detection.language, threshold)
        else:
            nodes = [self._node(hit, detection.language) for hit in hits]
        t2 = time.perf_counter()
        timings["search"] = t2 - t1
        nodes, any_relevant = self._relevant(nodes, vector, detection.language, scorer)
        timings["relevance"] = time.perf_counter() - t2
        t2 = time.perf_counter()
        nodes = self._reranked(nodes, query)
        timings["rerank"] = time.perf_counter() - t2
        if self.min_score is not None:
            nodes = [n for n in nodes if (n.score or 0.0) >= self.min_score]
        preferred = self._preferred()
        if preferred:
            nodes = sorted(
                nodes,
                key=lambda n: (n.score or 0.0) + (self.prefer_margin if n.node.metadata.get("language") in preferred else 0.0),
                reverse=True,
            )
        return SearchResult(nodes[: self.top_n], detection.language, detection.confidence, timings, any_relevant)

    def _relevant(self, nodes: list[NodeWithScore], vector: np.ndarray, language: str,
                  scorer: NeutralScorer | None) -> tuple[list[NodeWithScore], bool | None]:
        """Give every node its `relevance`; drop those under `min_relevance`; and whether any passes.

        The standing z of a result is its cosine with the search vector (recovered from a
        neutral score by the inverse map) against its language's mean and spread along that
        vector; a raw search's vector is the query itself.
        """
        calibration = self.relevance.current() if self.relevance is not None else None
        if calibration is None:
            return nodes, None
        stats = scorer or self.searcher.scorer("on")
        maps = stats.maps(vector, language, project=scorer is not None) if stats is not None else {}
        z = []
        for n in nodes:
            m = language_map(maps, chunk_language(n.node.metadata))
            score = n.node.metadata["retrieval_score"]
            z.append(((m.cosine(score) if scorer is not None else score) - m.mean) / max(m.spread, 1e-12))
        values = relevance(z, calibration, sum(self.calibration.latest.counts.values()))
        for n, r in zip(nodes, values):
            n.node.metadata["relevance"] = float(r)
        found = answerable(values, DEFAULT_MIN_RELEVANCE if self.min_relevance is None else self.min_relevance)
        if self.min_relevance is not None:
            nodes = [nodes[i] for i in keep_relevant(values, self.min_relevance)]
        return nodes, found

    def _reranked(self, nodes: list[NodeWithScore], query: str) -> list[NodeWithScore]:
        reranker = self.reranker if self.rerank is not False else None
        if self.rerank and reranker is None:
            raise ValueError("rerank was requested but no rerank model is configured (rerank_model='none')")
        if reranker is not None and nodes:
            return reranker.rerank(nodes, query, top_n=len(nodes))
        return nodes

    def _preferred(self) -> set[str]:
        return set(self.prefer_languages) | ({self.answer_language} if self.answer_language else set())

    def _collapse(self, hits: Sequence[Hit], query_language: str, threshold: float) -> list[NodeWithScore]:
        """One node per group of translations / near duplicates among `hits` (see `babelrank.query.dedup`)."""
        if any(h.embedding is None for h in hits):
            raise RuntimeError("dedup needs the candidates' stored vectors (include_embeddings=True)")
        languages = [chunk_language(h.metadata) for h in hits]
        order = [lang for lang in [self.answer_language, *self.prefer_languages, query_language]
                 if lang and lang != UNDETERMINED]
        centres = language_centres(self.calibration.latest, languages)
        groups = collapse_translations(
            np.stack([h.embedding for h in hits]), [h.score for h in hits], languages, threshold,
            prefer_language=list(dict.fromkeys(order)), centres=centres,
        )
        nodes = []
        for g in groups:
            node = self._node(hits[g.representative], query_language)
            node.node.metadata["alternates"] = alternates(
                [(hits[i].id, languages[i], hits[i].score) for i in g.others]
            )
            nodes.append(node)
        return nodes

    @staticmethod
    def _node(hit: Hit, query_language: str) -> NodeWithScore:
        meta = dict(hit.metadata)
        meta["retrieval_score"] = hit.score
        meta["query_language"] = query_language
        node = TextNode(
            id_=hit.id,
            text=hit.text,
            metadata=meta,
            excluded_llm_metadata_keys=list(HIDDEN_FROM_LLM),
            excluded_embed_metadata_keys=list(HIDDEN_FROM_LLM),
        )
        return NodeWithScore(node=node, score=hit.score)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self.search(query_bundle.query_str).nodes

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)
