"""`BabelIndex`: the one object users need to ingest documents and query them."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from llama_index.core.schema import NodeWithScore

from babelrank.config import NO_RERANKER, Settings
from babelrank.errors import ConfigError, ModelNotFoundError
from babelrank.ingest.chunking import TokenChunker
from babelrank.ingest.pipeline import Ingestor, IngestReport
from babelrank.ingest.sources import (
    SourceDocument,
    from_llama_documents,
    from_texts,
    read_paths,
    vanished,
)
from babelrank.models.encoders import (
    DEFAULT_RERANKER,
    BiEncoder,
    load_bi_encoder,
    prepare_cross_encoder,
)
from babelrank.models.language import make_detector
from babelrank.query.neutral import (
    IDENTITY,
    LanguageMap,
    NeutralScorer,
    apply_maps,
    language_codes,
)
from babelrank.query.rerank import CrossEncoderReranker
from babelrank.query.retriever import BabelRetriever, SearchResult, language_filter
from babelrank.store.calibration import CalibrationKeeper
from babelrank.store.chroma import ChromaStore, Hit, lock_store

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_TOKENS = 256
NEUTRAL_OVERFETCH = 8
NEUTRAL_MIN_FETCH = 1000
"""Neutral search of a collection too big for `neutral_scan_mb` fetches max(NEUTRAL_OVERFETCH x k, NEUTRAL_MIN_FETCH) raw neighbours in its
first query (ids and distances only, see `BabelIndex.search_vectors`). Chroma answers that in
about the time of a 50-hit query with documents (2000 costs 3x more). Simulated on e5-small
(benchmarks/neutral_study.py), k=50: 0.03 extra per-language queries per search on 4-language
XQuAD-R (4890 chunks) and none on 2-language Tatoeba pools, against 0.86 and 0.4-0.8 with 8 x k."""


class BabelIndex:
    """A multilingual collection: ingest folders, files, texts or llama-index Documents; query it.

    >>> index = BabelIndex(store_path="./store")          # doctest: +SKIP
    >>> index.ingest(["docs/"])                           # doctest: +SKIP
    >>> index.query("червоний автомобіль")                 # doctest: +SKIP

    Settings come from keyword arguments, then `BABELRANK_*` env vars (see `Settings`).
    """

    def __init__(self, settings: Settings | None = None, *, encoder: BiEncoder | None = None, **overrides: Any) -> None:
        self.settings = settings.replace(**overrides) if settings is not None else Settings.from_env(**overrides)
        s = self.settings
        early_lock = None if s.chroma_host else lock_store(s.store_path)  # a store in use fails before the model loads
        try:
            self.encoder = encoder or load_bi_encoder(
                s.embed_model, model_dir=s.model_dir, device=s.device, backend=s.backend, cache_dir=s.cache_dir,
                onnx_spinning=s.onnx_spinning, trust_remote_code=s.trust_remote_code,
            )
            self.store = ChromaStore(
                s.collection, self.encoder.fingerprint(), path=s.store_path, host=s.chroma_host, port=s.chroma_port
            )
        finally:
            if early_lock is not None:
                early_lock.release()  # the store holds its own
        self.detector = make_detector(s.language_backend, s.expected_languages or None)
        tokens = self._chunk_tokens()
        self.chunker = TokenChunker(self.encoder.tokenizer, tokens, min(s.chunk_overlap, tokens // 4), lock=self.encoder.lock)
        self._reranker: CrossEncoderReranker | None = None
        self._reranker_loaded = False
        self._reranker_lock = threading.Lock()
        self.calibration = CalibrationKeeper(self.store, self.encoder.dimension)
        self._scorer: NeutralScorer | None = None

    def _chunk_tokens(self) -> int:
        enc = self.encoder
        budget = enc.max_seq_length - enc.special_tokens() - enc.prompt_tokens(enc.document_prompt)
        wanted = self.settings.chunk_tokens or min(DEFAULT_CHUNK_TOKENS, budget)
        if wanted > budget:
            raise ConfigError(
                f"chunk_tokens={wanted} does not fit {enc.name}: at most {budget} tokens "
                f"(max_seq_length {enc.max_seq_length} minus prompt and special tokens)"
            )
        return wanted

    # ---- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Release the store (its lock, in embedded mode)."""
        self.store.close()

    def __enter__(self) -> "BabelIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- ingest -------------------------------------------------------------------------
    def _ingestor(self, progress: bool | None) -> Ingestor:
        return Ingestor(
            self.encoder, self.store, self.chunker, self.detector,
            batch_size=self.settings.embed_batch_size,
            progress=self.settings.progress if progress is None else progress,
            listener=self.calibration,
        )

    def ingest(
        self,
        paths: Iterable[str | Path],
        *,
        include: Sequence[str] = ("*",),
        exclude: Sequence[str] = (),
        prune: bool = False,
        text_field: str = "text",
        progress: bool | None = None,
    ) -> IngestReport:
        """Ingest files and folders (recursive; .txt .md .html .json .jsonl .pdf).

        `include`/`exclude` are globs matched against each file's path relative to the folder
        and against its name (`*` also crosses folders, e.g. `uk/*` or `*.md`).

        What cannot be read (see `read_paths`) or is over `max_file_mb` is listed in
        `report.skipped` with its reason; the rest is ingested.

        With `prune=True`, stored documents from the given folders and files that are gone
        are deleted: files deleted or no longer matching the globs, and records removed from
        a JSON/JSONL file (its records are its documents). A skipped file or folder keeps
        all its documents (see `babelrank.ingest.sources.vanished`).
        """
        paths = [Path(p).expanduser() for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
        docs, skipped = read_paths(
            paths, include=include, exclude=exclude, text_field=text_field, max_file_mb=self.settings.max_file_mb
        )
        report = IngestReport(skipped=list(skipped))
        self.prepare_reranker()
        self._ingestor(progress).run(docs, report)
        if prune:
            gone = vanished(self.documents(), paths, docs, skipped)
            deleted_docs, deleted_chunks = self._ingestor(progress).delete(gone)
            report.deleted += deleted_docs
            report.chunks_deleted += deleted_chunks
        logger.info("ingest: %s", report.as_dict())
        return report

    def ingest_texts(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
        *,
        progress: bool | None = None,
    ) -> IngestReport:
        """Ingest raw strings (ids default to a hash of each text)."""
        self.prepare_reranker()
        return self._ingestor(progress).run(from_texts(texts, ids, metadata))

    def ingest_documents(self, documents: Iterable[Any], *, progress: bool | None = None) -> IngestReport:
        """Ingest llama-index `Document`s or `SourceDocument`s."""
        docs = list(documents)
        native = [d for d in docs if isinstance(d, SourceDocument)]
        self.prepare_reranker()
        return self._ingestor(progress).run(native + from_llama_documents(d for d in docs if not isinstance(d, SourceDocument)))

    def delete(self, doc_ids: str | Iterable[str]) -> int:
        """Delete documents by id; returns how many chunks were removed."""
        ids = [doc_ids] if isinstance(doc_ids, str) else list(doc_ids)
        return self._ingestor(False).delete(ids)[1]

    def documents(self) -> dict[str, str]:
        """Every stored document: `{doc_id: source}`."""
        out: dict[str, str] = {}
        for _, metas, _ in self.store.iter_all():
            for m in metas:
                out.setdefault(str(m["doc_id"]), str(m.get("source", "")))
        return out

    # ---- query --------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load now what the first queries would load lazily: the reranker and the language
        detector's models (lingua's take ~5 s and ~1 GB for all languages, or only the
        `expected_languages`; lazily, one short query can spend seconds loading most of them)."""
        self.reranker()
        self.detector.warm_up()

    def reranker(self) -> CrossEncoderReranker | None:
        """The configured reranker, loaded on first use (None when rerank is off)."""
        with self._reranker_lock:
            return self._load_reranker()

    def _load_reranker(self) -> CrossEncoderReranker | None:
        if not self._reranker_loaded:
            s = self.settings
            self._reranker = self._rerank_model_or_none(lambda model: CrossEncoderReranker(
                model, top_n=s.top_n, batch_size=s.rerank_batch_size, max_length=s.rerank_max_length,
                candidates=s.rerank_candidates, margin=s.rerank_margin,
                model_dir=str(s.model_dir) if s.model_dir else None, device=s.device, backend=s.backend,
                cache_dir=s.cache_dir, onnx_spinning=s.onnx_spinning, trust_remote_code=s.trust_remote_code,
            ))
            self._reranker_loaded = True
        return self._reranker

    def prepare_reranker(self) -> None:
        """Export the reranker to ONNX now if its backend needs an export the cache lacks.

        Ingest calls this first, so that the one-time export (15-50 s) happens where waiting is
        expected and never in the middle of a first query; a cached export is not opened.
        """
        with self._reranker_lock:
            if self._reranker_loaded:
                return
            s = self.settings
            found = self._rerank_model_or_none(lambda model: prepare_cross_encoder(
                model, model_dir=s.model_dir, device=s.device, backend=s.backend, cache_dir=s.cache_dir,
                trust_remote_code=s.trust_remote_code,
            ))
            if found is None:  # no rerank: nothing for a query to load either
                self._reranker_loaded = True

    def _rerank_model_or_none(self, use: Callable[[str], Any]) -> Any:
        """`use(model)` for the configured reranker; None when rerank is off, or when "auto"
        finds no default reranker (warned once)."""
        name = self.settings.rerank_model
        if name.strip().lower() in NO_RERANKER:
            return None
        try:
            return use(DEFAULT_RERANKER if name == "auto" else name)
        except ModelNotFoundError as exc:
            if name != "auto":
                raise
            logger.warning("rerank is off: %s (set BABELRANK_RERANK_MODEL=none to silence)", exc)
            return None

    def neutral_scorer(self, mode: str | None = None) -> NeutralScorer | None:
        """The language-neutral scorer, or None when the mode is off for this collection.

        `mode` ("auto", "on", "off") overrides the collection's setting for one query.
        "auto" turns it on when at least two languages have a centroid.
        """
        mode = mode or self.settings.neutral
        if mode == "off":
            return None
        calibration, scorer = self.calibration.current(), self._scorer
        if scorer is None or scorer.calibration is not calibration:
            scorer = self._scorer = NeutralScorer(calibration)
        if mode == "auto" and len(scorer.languages) < 2:
            return None
        return scorer

    def search_vectors(
        self, vector: np.ndarray, query_language: str, k: int, where: Mapping[str, Any] | None,
        scorer: NeutralScorer | None = None, include_embeddings: bool = False,
    ) -> list[Hit]:
        """Top-k chunks for a query vector, best first.

        Raw mode: one Chroma query, score = cosine. Neutral mode: the search vector is
        `NeutralScorer.query_vector` (the query less its lean toward its own language) and the
        neutral score is an increasing function of its cosine within each chunk language
        (`LanguageMap`).
        A collection whose vectors fit in `neutral_scan_mb` (and a filter on languages only,
        or none) is scored exactly over every chunk from an in-memory copy of its vectors.
        A bigger one: one Chroma query fetches the ids and cosines of `NEUTRAL_MIN_FETCH` (or
        `NEUTRAL_OVERFETCH` x k) neighbours of that vector, their languages come from the store's id
        cache; a language whose unseen chunks could still reach the neutral top-k (its map of
        the lowest fetched cosine > the k-th neutral score) gets its own filtered query of k:
        the exact neutral top-k under the same approximate search, nearly always from one
        query. Either way, documents are then read for the top k only.
        With `include_embeddings`, each hit carries its stored vector (for dedup).
        """
        if scorer is None:
            return self.store.query(vector, k, where, include_embeddings=include_embeddings)
        maps = scorer.maps(vector, query_language)
        vector = scorer.query_vector(vector, query_language)
        allowed = language_filter(where) if where else None
        if not where or allowed is not None:
            def score(cosines: np.ndarray, codes: np.ndarray, names: list[str]) -> np.ndarray:
                scores = apply_maps(maps, cosines, codes, names)
                if allowed is not None:
                    scores[~np.isin(codes, [i for i, lang in enumerate(names) if allowed(lang)])] = -np.inf
                return scores

            found = self.store.scan(vector, k, score, self.settings.neutral_scan_mb * 2**20 // 4, wait=not self.store.shared)
            if found is not None:
                return self.store.hits(found[0], found[1].tolist(), include_embeddings=include_embeddings)
        return self._neutral_chroma_search(vector, k, where, maps, allowed, include_embeddings)

    def _neutral_chroma_search(
        self, vector: np.ndarray, k: int, where: Mapping[str, Any] | None, maps: Mapping[str, LanguageMap],
        allowed: Callable[[str], bool] | None, include_embeddings: bool,
    ) -> list[Hit]:
        """Neutral top-k from Chroma: one deep query, per-language queries where the bound needs them.

        `allowed` tests a chunk language when `where` constrains the language only (languages
        it refuses need no query of their own); every query carries the whole `where`.
        """
        def score_map(language: str) -> LanguageMap:
            return maps.get(language, maps.get("und", IDENTITY))

        fetch = max(k * NEUTRAL_OVERFETCH, NEUTRAL_MIN_FETCH)
        ids, cosines = self.store.nearest(vector, fetch, where)
        scores = apply_maps(maps, cosines, *language_codes(self.store.languages(ids)))
        if len(ids) == fetch:  # not exhaustive: check every language's bound
            floor = float(cosines[-1])
            kth = float(-np.partition(-scores, k - 1)[k - 1]) if len(scores) >= k else -np.inf
            seen = set(ids)
            for language in self.calibration.languages():
                if (allowed is not None and not allowed(language)) or score_map(language)(floor) <= kth:
                    continue
                clause: dict[str, Any] = {"language": language}
                logger.debug("neutral search: extra query for %r", language)
                more_ids, more = self.store.nearest(vector, k, {"$and": [clause, dict(where)]} if where else clause)
                new = [i for i, cid in enumerate(more_ids) if cid not in seen]
                ids = ids + [more_ids[i] for i in new]
                scores = np.concatenate([scores, score_map(language)(more[new])])
                seen.update(more_ids)
        top = np.argsort(-scores, kind="stable")[:k]
        return self.store.hits([ids[i] for i in top], scores[top].tolist(), include_embeddings=include_embeddings)

    def as_retriever(self, **kwargs: Any) -> BabelRetriever:
        """A llama-index retriever; keyword arguments as in `BabelRetriever`."""
        return BabelRetriever(self, **kwargs)

    def search(self, query: str, **kwargs: Any) -> SearchResult:
        """Nodes for `query` plus its detected language and stage timings."""
        return self.as_retriever(**kwargs).search(query)

    def query(self, query: str, **kwargs: Any) -> list[NodeWithScore]:
        """Top-n nodes for `query`.

        Keywords as in `BabelRetriever`: `top_k`, `top_n`, `languages`, `where`, `rerank`,
        `neutral`, `min_score`, `dedup`, `dedup_threshold`, `prefer_languages`,
        `prefer_margin`, `answer_language`.
        """
        return self.search(query, **kwargs).nodes

    def as_query_engine(self, llm: Any = None, **kwargs: Any) -> Any:
        """A llama-index `RetrieverQueryEngine` answering with `llm` over this index."""
        from llama_index.core.query_engine import RetrieverQueryEngine

        return RetrieverQueryEngine.from_args(self.as_retriever(**kwargs), llm=llm)

    # ---- info ---------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Collection statistics: chunks and documents per language, model, store."""
        languages: Counter = Counter()
        docs: set[str] = set()
        for _, metas, _ in self.store.iter_all():
            languages.update(str(m.get("language", "und")) for m in metas)
            docs.update(str(m["doc_id"]) for m in metas)
        return {
            "collection": self.store.name,
            "store": self.store.location,
            "chunks": sum(languages.values()),
            "documents": len(docs),
            "languages": dict(languages.most_common()),
            **self.encoder.fingerprint(),
            "chunk_tokens": self.chunker.max_tokens,
            "neutral": {"mode": self.settings.neutral, "active": self.neutral_scorer() is not None,
                        "calibration": self.calibration.describe()},
        }
