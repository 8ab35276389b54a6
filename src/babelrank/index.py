"""`BabelIndex`: the one object users need to ingest documents and query them."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from llama_index.core.schema import NodeWithScore

from babelrank.chunking import TokenChunker
from babelrank.config import NO_RERANKER, Settings
from babelrank.errors import ConfigError, ModelNotFoundError
from babelrank.ingest import IngestReport, Ingestor
from babelrank.language import make_detector
from babelrank.models import DEFAULT_RERANKER, BiEncoder, load_bi_encoder, prepare_cross_encoder
from babelrank.neutral import IDENTITY, LanguageCalibration, LanguageMap, NeutralScorer, apply_maps, language_codes
from babelrank.rerank import CrossEncoderReranker
from babelrank.retriever import BabelRetriever, SearchResult, language_filter
from babelrank.sources import SourceDocument, from_llama_documents, from_texts, read_paths, vanished
from babelrank.store import CALIBRATION_KEY, ChromaStore, Hit, lock_store

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
        self.calibration = _CalibrationKeeper(self.store, self.encoder.dimension)

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
        all its documents (see `babelrank.sources.vanished`).
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
        scorer = self.calibration.scorer()
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


class _CalibrationKeeper:
    """Keeps the collection's language calibration in step with every write, from any number of processes.

    The calibration (per-language sums of the stored vectors) is saved in the collection
    metadata with the writes under way (``pending``) and whether it is ``exact``. Every change
    of that record is a read-modify-write under the store's metadata lock
    (`ChromaStore.update_meta`), so no process's change is lost:

    * a write registers in ``pending`` (`before_write`), stores its chunks, then adds its own
      change of the sums to the record as it is *then* and leaves ``pending`` (`on_write`),
      so writes of different documents add up exactly in any interleaving;
    * a write that cannot finish (killed: in embedded mode one of another process, with a
      server one pending for over `LEASE_SECONDS`) is dropped from ``pending`` and the record
      marked not exact; so is a change that does not fit (the same document written by two
      processes at once) and a record whose counts disagree with the collection once no
      one writes;
    * a record that is not exact is recalibrated from the stored vectors (`rebuild`) by the
      last write to finish, or on open/refresh when no one writes. A rebuild is pending too
      (renewed as it reads, so a killed one holds writes up for at most `REBUILD_LEASE_SECONDS`)
      and writes wait for it, so it reads a collection that no one changes.

    So once every writer has finished, the saved calibration equals one computed from scratch.
    A lease that runs out on a live process costs a rebuild, not exactness.
    """

    REFRESH_SECONDS = 5.0
    LEASE_SECONDS = 600.0
    REBUILD_LEASE_SECONDS = 60.0
    _process = uuid.uuid4().hex[:12]
    _serial = itertools.count()
    _active: set[str] = set()  # this process's writes and rebuilds under way

    def __init__(self, store: ChromaStore, dim: int) -> None:
        self.store = store
        self.dim = dim
        self._token: str | None = None
        self._scorer: NeutralScorer | None = None
        self._loaded_at = 0.0
        self._load()

    def _load(self) -> None:
        saved = self.store.get_meta(CALIBRATION_KEY)
        record = self._parse(saved)
        live = [t for t, entry in record["pending"].items() if not self._dead(t, entry)]
        if live or (record["exact"] and not record["pending"] and self._counted(record) == self.store.count()):
            self._use(record)  # with writes under way, the last of them settles the calibration
        else:
            if record is saved:
                logger.warning("language calibration of %r is out of step; recalibrating from the stored vectors", self.store.name)
            self.rebuild()
        self._loaded_at = time.monotonic()

    def refresh(self, force: bool = False) -> None:
        """With a Chroma server, pick up calibration changes written by other processes."""
        if self.store.shared and (force or time.monotonic() - self._loaded_at > self.REFRESH_SECONDS):
            self.store.reload()
            self._load()

    def rebuild(self) -> LanguageCalibration:
        """Recalibrate from every stored vector and save; left to the last writer while writes are under way."""
        token = self._new_token()
        try:
            record = self._update(partial(self._register, token, True))
            if token in record["pending"]:
                try:
                    fresh = self._from_scratch(token)
                except BaseException:
                    self._update(partial(self._rebuilt, token, None))
                    raise
                record = self._update(partial(self._rebuilt, token, fresh))
        finally:
            self._active.discard(token)
        self._use(record)
        return self.calibration

    def _from_scratch(self, token: str) -> LanguageCalibration:
        calibration = LanguageCalibration(self.dim)
        renewed = time.monotonic()
        for _, metas, vectors in self.store.iter_all(include_embeddings=True):
            calibration.add(vectors, [str(m.get("language", "und")) for m in metas])
            if time.monotonic() - renewed > self.REBUILD_LEASE_SECONDS / 4:
                self._update(partial(self._renew, token))
                renewed = time.monotonic()
        return calibration

    def before_write(self) -> None:
        """Register a write (waiting while a rebuild is under way)."""
        if self._token is not None:
            self._active.discard(self._token)  # a write that never finished
        self._token = token = self._new_token()
        record = self._update(partial(self._register, token, False))
        if token not in record["pending"]:
            logger.info("waiting for another process to recalibrate %r", self.store.name)
        while token not in record["pending"]:
            time.sleep(0.5)
            record = self._update(partial(self._register, token, False))
        self._use(record)

    def on_write(self, added: np.ndarray, added_languages: Sequence[str], removed: np.ndarray, removed_languages: Sequence[str]) -> None:
        """Add a write's change to the saved calibration, as other processes left it, and end the write."""
        token, self._token = self._token, None
        try:
            record = self._update(partial(self._apply, token, (added, added_languages, removed, removed_languages)))
        finally:
            if token is not None:
                self._active.discard(token)
        self._use(record)
        if not record["exact"] and not record["pending"]:
            self.rebuild()

    # ---- the saved record (changed only through `_update`) ----------------------------------
    def _update(self, change: Callable[[Any], dict[str, Any] | None]) -> dict[str, Any]:
        return self._parse(self.store.update_meta(CALIBRATION_KEY, change))

    def _parse(self, saved: Any) -> dict[str, Any]:
        """The saved record; an empty one, not exact, when there is none or it is in an older format."""
        try:
            LanguageCalibration.from_dict(saved["calibration"])
            if isinstance(saved["pending"], dict) and isinstance(saved["exact"], bool):
                return saved
        except (KeyError, TypeError):
            pass
        if saved is not None:
            logger.info("language calibration of %r is in an older format; recalibrating", self.store.name)
        return {"calibration": LanguageCalibration(self.dim).to_dict(), "pending": {}, "exact": False}

    def _new_token(self) -> str:
        token = f"{self._own()}{next(self._serial)}"
        self._active.add(token)
        return token

    def _own(self) -> str:
        """The prefix of this process's tokens."""
        return f"{self._process}-{os.getpid()}-"

    def _dead(self, token: str, entry: Mapping[str, Any]) -> bool:
        """Whether a pending write or rebuild can no longer finish."""
        if token.startswith(self._own()):
            return token not in self._active
        lease = self.REBUILD_LEASE_SECONDS if entry["rebuild"] else self.LEASE_SECONDS
        return not self.store.shared or time.time() - float(entry["since"]) > lease

    def _settle(self, saved: Any) -> dict[str, Any]:
        """The record without the writes that cannot finish (not exact when there were any)."""
        record = self._parse(saved)
        dead = [t for t, entry in record["pending"].items() if self._dead(t, entry)]
        if dead:
            logger.warning("%d write(s) to %r did not finish; the language calibration will be rebuilt", len(dead), self.store.name)
            record["pending"] = {t: e for t, e in record["pending"].items() if t not in dead}
            record["exact"] = False
        return record

    def _register(self, token: str, rebuild: bool, saved: Any) -> dict[str, Any]:
        """The record with `token` pending, unless a rebuild is under way (or, for a rebuild, anything)."""
        record = self._settle(saved)
        if not any(rebuild or entry["rebuild"] for entry in record["pending"].values()):
            record["pending"][token] = {"since": time.time(), "rebuild": rebuild}
        return record

    def _renew(self, token: str, saved: Any) -> dict[str, Any] | None:
        record = self._settle(saved)
        if token not in record["pending"]:
            return None
        record["pending"][token]["since"] = time.time()
        return record

    def _apply(self, token: str | None, change: tuple[np.ndarray, Sequence[str], np.ndarray, Sequence[str]], saved: Any) -> dict[str, Any]:
        record = self._settle(saved)
        counted = record["pending"].pop(token, None) is not None  # else given up as dead: recalibrate
        if counted:
            try:
                record["calibration"] = self._changed(record["calibration"], *change)
            except ValueError:  # it removes what was never counted (two processes wrote one document)
                counted = False
        if not counted or (not record["pending"] and self._counted(record) != self.store.count()):
            record["exact"] = False
        return record

    @staticmethod
    def _changed(saved: dict[str, Any], added: np.ndarray, added_languages: Sequence[str], removed: np.ndarray,
                 removed_languages: Sequence[str]) -> dict[str, Any]:
        calibration = LanguageCalibration.from_dict(saved)
        if len(removed):
            calibration.remove(removed, removed_languages)
        if len(added):
            calibration.add(added, added_languages)
        return calibration.to_dict()

    def _rebuilt(self, token: str, fresh: LanguageCalibration | None, saved: Any) -> dict[str, Any]:
        """The record after a rebuild (`fresh` None: it failed); exact unless it was given up as dead meanwhile."""
        record = self._settle(saved)
        ours = record["pending"].pop(token, None) is not None
        if fresh is not None:
            record["calibration"] = fresh.to_dict()
            record["exact"] = ours
        return record

    @staticmethod
    def _counted(record: Mapping[str, Any]) -> int:
        return sum(int(c["count"]) for c in record["calibration"]["chunks"].values())

    def _use(self, record: Mapping[str, Any]) -> None:
        self.calibration = LanguageCalibration.from_dict(record["calibration"])
        self._scorer = None

    def languages(self) -> list[str]:
        """Every language with stored chunks ("und" included)."""
        return sorted(self.calibration.counts)

    def scorer(self) -> NeutralScorer:
        """The scorer of the current calibration (a write on another thread may replace it meanwhile)."""
        self.refresh()
        calibration, scorer = self.calibration, self._scorer
        if scorer is None or scorer.calibration is not calibration:
            scorer = self._scorer = NeutralScorer(calibration)
        return scorer

    def describe(self) -> dict[str, Any]:
        """Per-language chunk counts and whether each has a centroid."""
        counts = self.calibration.counts
        return {lang: {"chunks": n, "centroid": self.calibration.centroid(lang) is not None,
                       "centroid_norm": None if self.calibration.centroid(lang) is None
                       else round(float(np.linalg.norm(self.calibration.centroid(lang))), 4)}
                for lang, n in sorted(counts.items())}
