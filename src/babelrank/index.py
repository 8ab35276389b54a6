"""`BabelIndex`: the one object users need to ingest documents and query them."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from llama_index.core.schema import NodeWithScore

from babelrank.config import Settings, flag_mode
from babelrank.errors import ConfigError
from babelrank.ingest.chunking import TokenChunker
from babelrank.ingest.pipeline import Ingestor, IngestReport
from babelrank.ingest.reindex import Reindexer, ReindexProgress, ReindexReport
from babelrank.ingest.sources import (
    SourceDocument,
    from_llama_documents,
    from_texts,
    read_paths,
    vanished,
)
from babelrank.models.bi_encoder import BiEncoder, load_bi_encoder
from babelrank.models.language import make_detector
from babelrank.query.engine import BabelQueryEngine
from babelrank.query.neutral import NeutralScorer
from babelrank.query.relevance_fit import RelevanceKeeper
from babelrank.query.rerank import CrossEncoderReranker
from babelrank.query.rerank_loader import RerankerLoader
from babelrank.query.retriever import BabelRetriever, SearchResult
from babelrank.query.search import Searcher
from babelrank.schema import chunk_language
from babelrank.store.aliases import physical_name
from babelrank.store.calibration import CalibrationKeeper
from babelrank.store.chroma import ChromaStore
from babelrank.store.lock import lock_store

logger = logging.getLogger(__name__)

SETTING: Any = object()
"""Default of a query option whose None means something of its own: take the value from `settings`."""

DEFAULT_CHUNK_TOKENS = 256
"""Chunk size when `Settings.chunk_tokens` is unset (or the model's limit, when that is less)."""


class BabelIndex:
    """A multilingual collection: ingest folders, files, texts or llama-index Documents; query it.

    >>> index = BabelIndex(store_path="./store")          # doctest: +SKIP
    >>> index.ingest(["docs/"])                           # doctest: +SKIP
    >>> index.query("червоний автомобіль")                 # doctest: +SKIP

    Settings come from keyword arguments, then `BABELRANK_*` env vars (see `Settings`).

    The index wires the parts together and delegates to them: `encoder` (the bi-encoder),
    `store` (the Chroma collection), `calibration` (its language calibration, kept in step
    with every write), `detector` (language identification), `chunker`, `searcher` (raw and
    language-neutral search) and `rerankers` (the reranker, loaded on first use).

    Args:
        settings: the settings; None = from the environment (`Settings.from_env`).
        encoder: an already loaded bi-encoder to use instead of loading `settings.embed_model`.
        reranker: an already loaded reranker to use instead of loading `settings.rerank_model`.
        **overrides: settings to change.
    """

    def __init__(
        self, settings: Settings | None = None, *, encoder: BiEncoder | None = None,
        reranker: CrossEncoderReranker | None = None, **overrides: Any,
    ) -> None:
        self.settings = settings.replace(**overrides) if settings is not None else Settings.from_env(**overrides)
        s = self.settings
        early_lock = None if s.chroma_host else lock_store(s.store_path)  # a store in use fails before the model loads
        try:
            if encoder is None and not s.embed_model_given:
                self.settings = s = _remembered_model(s)
            self.encoder = encoder or load_bi_encoder(s.embed_model, **s.bi_encoder_options())
            self.store = ChromaStore(
                s.collection, self.encoder.fingerprint(), path=s.store_path, host=s.chroma_host, port=s.chroma_port
            )
        finally:
            if early_lock is not None:
                early_lock.release()  # the store holds its own
        self.detector = make_detector(s.language_backend, s.expected_languages or None)
        self.rerankers = RerankerLoader(s, reranker)
        self.chunker, self.calibration, self.searcher, self.relevance = self._parts(self.encoder, self.store)
        self.relevance.refresh()  # a collection from before relevance, or changed by an older version

    def _parts(self, encoder: BiEncoder, store: ChromaStore) -> tuple[TokenChunker, CalibrationKeeper, Searcher, RelevanceKeeper]:
        """What depends on the model and the collection: chunker, language calibration, searcher, relevance."""
        s = self.settings
        tokens = self._chunk_tokens(encoder)
        chunker = TokenChunker(encoder.tokenizer, tokens, min(s.chunk_overlap, tokens // 4), lock=encoder.lock)
        calibration = CalibrationKeeper(store, encoder.dimension)
        searcher = Searcher(store, calibration, neutral=s.neutral, scan_mb=s.neutral_scan_mb)
        return chunker, calibration, searcher, RelevanceKeeper(store, encoder, calibration, s.embed_batch_size)

    def _chunk_tokens(self, enc: BiEncoder) -> int:
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
        self.relevance.refresh()
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
        report = self._ingestor(progress).run(from_texts(texts, ids, metadata))
        self.relevance.refresh()
        return report

    def ingest_documents(
        self, documents: Iterable[Any], *, progress: bool | None = None, report: IngestReport | None = None,
    ) -> IngestReport:
        """Ingest llama-index `Document`s or `SourceDocument`s.

        Args:
            documents: what to ingest.
            progress: show a progress bar (None = `settings.progress`).
            report: a report to add this ingest's counts to (and return); None = a new one.
        """
        docs = list(documents)
        native = [d for d in docs if isinstance(d, SourceDocument)]
        self.prepare_reranker()
        llama = from_llama_documents(d for d in docs if not isinstance(d, SourceDocument))
        report = self._ingestor(progress).run(native + llama, report)
        self.relevance.refresh()
        return report

    def delete(self, doc_ids: str | Iterable[str]) -> int:
        """Delete documents by id; returns how many chunks were removed."""
        ids = [doc_ids] if isinstance(doc_ids, str) else list(doc_ids)
        removed = self._ingestor(False).delete(ids)[1]
        self.relevance.refresh()
        return removed

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
        return self.rerankers.get()

    def prepare_reranker(self) -> None:
        """Export the reranker to ONNX now if its backend needs an export the cache lacks.

        Ingest calls this first, so that the one-time export (15-50 s) happens where waiting is
        expected and never in the middle of a first query; a cached export is not opened.
        """
        self.rerankers.prepare()

    def neutral_scorer(self, mode: str | None = None) -> NeutralScorer | None:
        """The language-neutral scorer, or None when the mode is off for this collection.

        `mode` ("auto", "on", "off") overrides the collection's setting for one query.
        "auto" turns it on when at least two languages have a centroid.
        """
        return self.searcher.scorer(mode)

    def as_retriever(
        self, *, top_k: int | None = None, top_n: int | None = None, rerank: bool | None = None,
        min_score: float | None = None, min_relevance: float | None | object = SETTING, dedup: bool | None = None,
        dedup_threshold: float | None = None, **kwargs: Any,
    ) -> BabelRetriever:
        """A llama-index retriever over this collection.

        Args:
            top_k, top_n, min_score, dedup_threshold: None = as in `settings`.
            min_relevance: drop results whose relevance is lower; None keeps every result;
                `SETTING` (the default) = `settings.min_relevance`.
            rerank: None = rerank when a reranker is configured; False = never; True = always
                (the query fails without a reranker).
            dedup: None = `settings.dedup`; True/False = on/off for these queries.
            **kwargs: the other keywords of `BabelRetriever` (`languages`, `where`, `neutral`,
                `prefer_languages`, `prefer_margin`, `answer_language`) and of llama-index's
                `BaseRetriever`.
        """
        s = self.settings
        return BabelRetriever(
            encoder=self.encoder, detector=self.detector, searcher=self.searcher, calibration=self.calibration,
            relevance=self.relevance, reranker=self.reranker() if rerank is not False else None, rerank=rerank,
            top_k=top_k or s.top_k, top_n=top_n or s.top_n, min_score=s.min_score if min_score is None else min_score,
            min_relevance=s.min_relevance if min_relevance is SETTING else min_relevance,
            dedup=flag_mode(dedup) or s.dedup,
            dedup_threshold=s.dedup_threshold if dedup_threshold is None else dedup_threshold,
            **kwargs,
        )

    def search(self, query: str, **kwargs: Any) -> SearchResult:
        """Nodes for `query` plus its detected language and stage timings."""
        return self.as_retriever(**kwargs).search(query)

    def query(self, query: str, **kwargs: Any) -> list[NodeWithScore]:
        """Top-n nodes for `query`.

        Keywords as in `BabelRetriever`: `top_k`, `top_n`, `languages`, `where`, `rerank`,
        `neutral`, `min_score`, `min_relevance`, `dedup`, `dedup_threshold`, `prefer_languages`,
        `prefer_margin`, `answer_language`.
        """
        return self.search(query, **kwargs).nodes

    def as_query_engine(self, llm: Any = None, *, no_answer_message: str | None = None, **kwargs: Any) -> BabelQueryEngine:
        """A llama-index query engine answering with `llm` over this index.

        When no result passes `min_relevance` the LLM is not called: the response is
        `no_answer_message` (None = `settings.no_answer_message`), see `babelrank.query.engine`.
        `kwargs` go to `as_retriever`.
        """
        message = self.settings.no_answer_message if no_answer_message is None else no_answer_message
        return BabelQueryEngine.from_args(self.as_retriever(**kwargs), llm=llm, no_answer_message=message)

    # ---- reindex ------------------------------------------------------------------------
    def reindex(
        self, embed_model: str, *, keep_old: bool = False, batch_size: int | None = None, progress: bool | None = None,
        on_batch: Callable[[ReindexProgress], None] | None = None, encoder: BiEncoder | None = None,
    ) -> ReindexReport:
        """Re-embed the collection with another model, then switch this index and the collection's name to it.

        The chunks are copied into a new physical collection (`babelrank.ingest.reindex`);
        until the copy is complete and the name points to it (one atomic write,
        `babelrank.store.aliases`), this index, its queries and every other process keep
        using the old collection. A run that is interrupted loses nothing: the next one
        continues it. The collection then remembers `embed_model`: it opens with it when
        `Settings.embed_model` is left unset. Retrievers made before keep the old model; make new ones.

        Args:
            embed_model: the new model (preset, hub id or folder; remembered as given).
            keep_old: keep the old physical collection (default: delete it after the switch).
            batch_size: chunks per model call (default `embed_batch_size`); a continued run keeps its first one.
            progress: show a progress bar (None = `settings.progress`).
            on_batch: called after each batch written (queries may run meanwhile).
            encoder: the new model, already loaded (instead of loading `embed_model`).

        Returns:
            The report; `switched` is False when the collection already uses `embed_model`.

        Raises:
            ConfigError: `chunk_tokens` does not fit the new model.
        """
        s = self.settings
        new = encoder or load_bi_encoder(embed_model, **s.bi_encoder_options())
        self._chunk_tokens(new)  # fails before any work when chunk_tokens does not fit the new model
        report, target = _copy(self.store, new, embed_model, s, batch_size,
                               self._progress(progress), on_batch)
        if target is None:
            return report
        old = self.store
        parts = self._parts(new, target)
        self.settings = s.replace(embed_model=embed_model)
        self.encoder, self.store, (self.chunker, self.calibration, self.searcher, self.relevance) = new, target, parts
        _retire(old, keep_old, report)
        return report

    def _progress(self, progress: bool | None) -> bool:
        wanted = self.settings.progress if progress is None else progress
        return sys.stderr.isatty() if wanted is None else wanted

    # ---- info ---------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Collection statistics: chunks and documents per language, model, store."""
        languages: Counter = Counter()
        docs: set[str] = set()
        for _, metas, _ in self.store.iter_all():
            languages.update(chunk_language(m) for m in metas)
            docs.update(str(m["doc_id"]) for m in metas)
        return {
            "collection": self.store.name,
            "physical_collection": self.store.physical,
            "store": self.store.location,
            "chunks": sum(languages.values()),
            "documents": len(docs),
            "languages": dict(languages.most_common()),
            **self.encoder.fingerprint(),
            "chunk_tokens": self.chunker.max_tokens,
            "neutral": {"mode": self.settings.neutral, "active": self.neutral_scorer() is not None,
                        "calibration": self.calibration.describe()},
        }


def _remembered_model(settings: Settings) -> Settings:
    """`settings` with the model the collection was reindexed to, when it remembers one."""
    alias = ChromaStore.remembered(settings.collection, path=settings.store_path,
                                   host=settings.chroma_host, port=settings.chroma_port)
    if alias is None or not alias.model:
        return settings
    logger.info("collection %r was reindexed to %s: opening it with that model", settings.collection, alias.model)
    return settings.replace(embed_model=alias.model)


def reindex_collection(
    settings: Settings, embed_model: str, *, keep_old: bool = False, batch_size: int | None = None,
    progress: bool = False, on_batch: Callable[[ReindexProgress], None] | None = None,
) -> ReindexReport:
    """Re-embed the collection of `settings` with `embed_model` without loading its current model.

    What ``babelrank reindex`` runs: as `BabelIndex.reindex`, for a collection that no
    `BabelIndex` of this process has open (its current model need not be known or loadable).

    Args:
        settings: where the collection is (`collection`, `store_path` or a Chroma server) and
            how models load; its `embed_model` is not used.
        embed_model, keep_old, batch_size, progress, on_batch: as in `BabelIndex.reindex`.

    Returns:
        The report.

    Raises:
        ValueError: the collection does not exist.
        StoreLockedError: another process holds the embedded store.
    """
    s = settings
    early_lock = None if s.chroma_host else lock_store(s.store_path)  # a store in use fails before the model loads
    try:
        source = ChromaStore(s.collection, None, path=s.store_path, host=s.chroma_host, port=s.chroma_port)
    finally:
        if early_lock is not None:
            early_lock.release()
    try:
        encoder = load_bi_encoder(embed_model, **s.bi_encoder_options())
        report, target = _copy(source, encoder, embed_model, s, batch_size, progress, on_batch)
    except BaseException:
        source.close()
        raise
    if target is not None:
        target.close()
    _retire(source, keep_old or target is None, report)
    return report


def _copy(
    source: ChromaStore, encoder: BiEncoder, model: str, settings: Settings, batch_size: int | None,
    progress: bool, on_batch: Callable[[ReindexProgress], None] | None,
) -> tuple[ReindexReport, ChromaStore | None]:
    """Copy `source` into the physical collection of `encoder`'s model and point the name at it.

    Returns:
        The report and the target store (None, and nothing done, when `source` already has that model).
    """
    fingerprint = encoder.fingerprint()
    report = ReindexReport(source.name, model, source.physical, physical_name(source.name, fingerprint))
    if source.built_with(fingerprint):
        logger.info("collection %r already uses %s: nothing to reindex", source.name, model)
        report.target = source.physical
        return report, None
    s = settings
    target = ChromaStore(source.name, fingerprint, path=s.store_path, host=s.chroma_host, port=s.chroma_port,
                         physical=report.target)
    try:
        Reindexer(source, target, encoder, batch_size=batch_size or s.embed_batch_size, progress=progress,
                  on_batch=on_batch).run(report)
        RelevanceKeeper(target, encoder, CalibrationKeeper(target, encoder.dimension), s.embed_batch_size).refresh()  # as an ingest does
        source.point_to(target, model)
    except BaseException:
        target.close()
        raise
    report.switched = True
    logger.info("collection %r now stands for %r (model %s)", source.name, target.physical, model)
    return report, target


def _retire(old: ChromaStore, keep: bool, report: ReindexReport) -> None:
    """Close the old physical collection after a switch, deleting it unless `keep`."""
    if keep or not report.switched:
        old.close()
        return
    old.drop()
    report.dropped = True
    logger.info("deleted the old physical collection %r", old.physical)
