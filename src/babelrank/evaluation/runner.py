"""Run an `EvalCorpus` through the real babelrank pipeline and score it.

`evaluate` ingests the corpus documents with `BabelIndex.ingest_documents` into a Chroma
collection of its own (chunking, the product's language detection and embedding exactly as
users get them), asks every query with `BabelIndex.search` (keeping every result:
`min_relevance=None`; each result's `relevance` is recorded in `EvalReport.signals`), maps
chunk hits back to document ids, drops each query's excluded documents (`EvalCorpus.filter_run`)
and computes ranking metrics overall and per query language, the share of same-language
documents in the top 10, query-language detection accuracy and per-stage latency.

Embedding cache: the store of each (embedding model, chunking, language detector, corpus
content) lives in its own folder under the cache directory (``$BABELRANK_EVAL_CACHE`` or
``~/.cache/babelrank/eval``). Ingest is idempotent, so a second run on the same data and model
embeds nothing, and an interrupted run resumes where it stopped. `cache=False` uses a
temporary store instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from babelrank.config import NO_RERANKER, Settings
from babelrank.errors import ConfigError
from babelrank.evaluation.datasets import EvalCorpus, EvalQuery
from babelrank.evaluation.metrics import (
    evaluate_by_group,
    evaluate_run,
    language_spread,
    latency_percentiles,
)
from babelrank.ingest.sources import SourceDocument, clean_metadata
from babelrank.models.language import UNDETERMINED
from babelrank.schema import doc_id_of

if TYPE_CHECKING:
    from babelrank.index import BabelIndex
    from babelrank.models.bi_encoder import BiEncoder
    from babelrank.query.rerank import CrossEncoderReranker
    from babelrank.query.retriever import SearchResult

logger = logging.getLogger(__name__)

CACHE_ENV = "BABELRANK_EVAL_CACHE"
DEFAULT_CACHE_DIR = Path("~/.cache/babelrank/eval")
COLLECTION = "eval"
SAME_LANGUAGE_K = 10
STAGES = ("embed", "search", "rerank")


# --- the report ---------------------------------------------------------------------------


@dataclass
class EvalReport:
    """Scores, latencies and ingest statistics of one evaluation run.

    `metrics` holds the run averages (`recall@1/5/10`, `hit@1/5/10`, `mrr@10`, `ndcg@10`,
    `map@<k>`, `same_language@10`, `query_language_accuracy`, `queries`); `per_language` the
    same per query language. `run` is the scored ranking (document ids, best first, at most k
    per query, excluded documents removed); it and `signals` are left out of `as_dict()` unless
    asked for. `signals[query_id]` holds, in the order of `run[query_id]`, each document's `relevance`
    (None without a relevance calibration) and `retrieval_score` (of its best chunk), and the
    search's `answerable`. `timings` holds the per-query seconds of each stage that
    `latency_ms` summarises.
    """

    corpus: str
    model: str
    reranker: str | None
    neutral: bool | None
    neutral_active: bool
    k: int
    metrics: dict[str, float]
    per_language: dict[str, dict[str, float]]
    latency_ms: dict[str, dict[str, float]]
    ingest: dict[str, Any]
    counts: dict[str, dict[str, int]]
    store: str | None = None
    dedup: bool | None = False
    run: dict[str, list[str]] = field(default_factory=dict, repr=False)
    detected_query_language: dict[str, str] = field(default_factory=dict, repr=False)
    timings: dict[str, list[float]] = field(default_factory=dict, repr=False)
    signals: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def as_dict(self, include_run: bool = False) -> dict[str, Any]:
        """JSON-ready form: the run-level metrics are top-level keys (`map@20`, `recall@10`, ...)."""
        out: dict[str, Any] = {
            "corpus": self.corpus,
            "model": self.model,
            "reranker": self.reranker or "none",
            "neutral": switch_name(self.neutral),
            "neutral_active": self.neutral_active,
            "dedup": switch_name(self.dedup),
            "k": self.k,
            **{name: _round(v) for name, v in self.metrics.items()},
            "per_language": {
                lang: {name: _round(v) for name, v in m.items()} for lang, m in self.per_language.items()
            },
            "latency_ms": {s: {n: round(v, 2) for n, v in p.items()} for s, p in self.latency_ms.items()},
            "ingest": self.ingest,
            "counts": self.counts,
            "store": self.store,
        }
        spread = language_spread(self.per_language, f"map@{self.k}")
        if spread is not None:
            out["language_spread"] = {n: _round(v) if isinstance(v, float) else v for n, v in spread.items()}
        if "queries" in out:
            out["queries"] = int(out["queries"])
        for m in out["per_language"].values():
            if "queries" in m:
                m["queries"] = int(m["queries"])
        if include_run:
            out["run"] = self.run
            out["detected_query_language"] = self.detected_query_language
            out["signals"] = self.signals
        return out


def _round(value: float) -> float:
    return round(float(value), 6)


def switch_name(flag: bool | None) -> str:
    """A run's on/off switch as reports write it: "on", "off", or "default" (None: the product default)."""
    return {True: "on", False: "off", None: "default"}[flag]


# --- cache --------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """`$BABELRANK_EVAL_CACHE`, else `~/.cache/babelrank/eval`."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR).expanduser()


def _slug(text: str, limit: int = 48) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_")[:limit] or "x"


def corpus_fingerprint(corpus: EvalCorpus) -> str:
    """Hash of the document pool (ids, texts, metadata): what the store content depends on."""
    h = hashlib.sha256()
    for d in corpus.documents:
        h.update(json.dumps([d.id, d.text, d.metadata], sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def store_key(corpus: EvalCorpus, encoder_fingerprint: Mapping[str, Any], settings: Settings) -> Path:
    """Relative folder of the cached store for this (model, chunking, detector, corpus).

    `<model>-<dim>-<hash of fingerprint and pipeline settings>/<corpus>-<docs>-<content hash>`.
    """
    from babelrank.config import VERSION

    pipeline = json.dumps(
        {
            "model": dict(encoder_fingerprint),
            "chunk_tokens": settings.chunk_tokens,
            "chunk_overlap": settings.chunk_overlap,
            "language_backend": settings.language_backend,
            "expected_languages": list(settings.expected_languages),
            "backend": getattr(settings, "backend", "torch"),
            "babelrank": VERSION,
        },
        sort_keys=True,
    )
    model_name = str(encoder_fingerprint.get("model", "model")).rstrip("/\\")
    model_part = "{}-{}-{}".format(
        _slug(Path(model_name).name or model_name, 40),
        encoder_fingerprint.get("dimension", "d"),
        hashlib.sha256(pipeline.encode()).hexdigest()[:10],
    )
    corpus_part = f"{_slug(corpus.name, 60)}-{len(corpus.documents)}-{corpus_fingerprint(corpus)[:12]}"
    return Path(model_part) / corpus_part


# --- helpers ------------------------------------------------------------------------------


def _source_documents(corpus: EvalCorpus) -> list[SourceDocument]:
    """Corpus documents as babelrank inputs: no language tag, the product detects it."""
    docs = []
    for d in corpus.documents:
        meta = {k: v for k, v in d.metadata.items() if k not in ("source", "language", "lang")}
        source = str(d.metadata.get("source") or corpus.name)
        docs.append(SourceDocument(d.id, d.text, source, clean_metadata(meta)))
    return docs


def _doc_ids(nodes: Sequence[Any]) -> list[str]:
    """Document ids of chunk nodes, best first, each kept at its first (best) rank.

    A node that stands for collapsed translations (dedup) is followed by its `alternates`,
    best first: a document the user is shown as a listed translation counts at that rank.
    """
    ids: list[str] = []
    for n in nodes:
        meta = n.node.metadata
        ids.append(str(meta["doc_id"]))
        for alt in meta.get("alternates") or ():
            ids.append(doc_id_of(str(alt["id"])))
    return list(dict.fromkeys(ids))


def _stored_languages(index: "BabelIndex") -> dict[str, str]:
    """Detected language of each stored document (of its first chunk)."""
    out: dict[str, tuple[int, str]] = {}
    for _, metas, _ in index.store.iter_all():
        for m in metas:
            doc, chunk = str(m["doc_id"]), int(m.get("chunk_index", 0))
            if doc not in out or chunk < out[doc][0]:
                out[doc] = (chunk, str(m.get("language", UNDETERMINED)))
    return {doc: lang for doc, (_, lang) in out.items()}


def same_language_at_k(
    run: Mapping[str, Sequence[str]], query_language: Mapping[str, str | None], doc_language: Mapping[str, str], k: int = SAME_LANGUAGE_K
) -> dict[str, float]:
    """Per query: share of its top-k documents in the query's language (queries without a
    language or without results are left out)."""
    out = {}
    for q, ranked in run.items():
        lang = query_language.get(q)
        top = list(ranked[:k])
        if lang and top:
            out[q] = sum(doc_language.get(d) == lang for d in top) / len(top)
    return out


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


# --- the runner ---------------------------------------------------------------------------


def evaluate(
    corpus: EvalCorpus,
    settings: Settings,
    *,
    rerank: bool,
    neutral: bool | None,
    k: int = 20,
    dedup: bool | None = False,
    progress: bool | None = None,
    cache_dir: Path | str | None = None,
    cache: bool = True,
    encoder: "BiEncoder | None" = None,
    reranker: "CrossEncoderReranker | None" = None,
    top_k: int | None = None,
) -> EvalReport:
    """Evaluate `corpus` through `BabelIndex`: ingest, search every query, score.

    Args:
        corpus: documents, queries, judgements and per-query exclusions.
        settings: pipeline settings (model, chunking, detector, reranker, batch sizes,
            device). Its store, collection and Chroma server are replaced by the eval store.
        rerank: run the cross-encoder (`settings.rerank_model` must name one) or not.
        neutral: language-neutral scoring on/off; None = the product default. With True,
            `settings.neutral` is also set to "on" (False: "off").
        k: ranking depth that is scored (map@k; recall/hit@1/5/10 need k >= 10).
        dedup: translation-aware results (collapse translations into one result). Off by default:
            benchmarks count each translation as a document of its own. When on (True) or the
            product default (None), each result's `alternates` are ranked right after it.
        progress: progress bars (ingest and queries); None = when stderr is a terminal.
        cache_dir: folder of cached eval stores (default `$BABELRANK_EVAL_CACHE` or
            `~/.cache/babelrank/eval`); the store for this model and corpus is reused, so
            nothing already embedded is embedded again.
        cache: False = a temporary store, deleted afterwards.
        encoder, reranker: already loaded models to reuse across runs (optional).
        top_k: chunks fetched per query; default max(2k, settings.top_k) plus the largest
            exclusion list. Deepened automatically when chunk duplicates and exclusions
            leave fewer than k documents.

    Returns:
        The scores, latencies and ingest statistics of the run.

    Raises:
        ConfigError: k < 10, no queries or documents, or rerank without a loadable model.
    """
    from babelrank.index import BabelIndex

    _check_request(corpus, settings, k, rerank=rerank, reranker=reranker)
    show = sys.stderr.isatty() if progress is None else progress
    base = _eval_settings(settings, rerank=rerank, neutral=neutral, dedup=dedup, progress=show)
    if encoder is None:
        from babelrank.models.bi_encoder import load_bi_encoder

        encoder = load_bi_encoder(base.embed_model, **base.bi_encoder_options())
    with _eval_store(corpus, encoder.fingerprint(), base, cache=cache, cache_dir=cache_dir) as store_path:
        index = BabelIndex(base.replace(store_path=store_path), encoder=encoder, reranker=reranker if rerank else None)
        try:
            return _run(index, corpus, rerank=rerank, neutral=neutral, dedup=dedup, k=k, top_k=top_k,
                        progress=show, store=str(store_path) if cache else None)
        finally:
            index.close()


def _check_request(
    corpus: EvalCorpus, settings: Settings, k: int, *, rerank: bool, reranker: "CrossEncoderReranker | None"
) -> None:
    """Fail before any work on a run that cannot be scored (`ConfigError`)."""
    if k < SAME_LANGUAGE_K:
        raise ConfigError(f"k must be >= {SAME_LANGUAGE_K} (recall@10 and ndcg@10 need 10 ranks), got {k}")
    if not corpus.queries:
        raise ConfigError(f"{corpus.name}: no queries to evaluate")
    if not corpus.documents:
        raise ConfigError(f"{corpus.name}: no documents to evaluate")
    if rerank and reranker is None and settings.rerank_model.strip().lower() in NO_RERANKER:
        raise ConfigError("rerank=True needs a rerank model (settings.rerank_model is 'none')")


def _eval_settings(settings: Settings, *, rerank: bool, neutral: bool | None, dedup: bool | None,
                   progress: bool) -> Settings:
    """`settings` as one eval run uses them: the eval collection in an embedded store, the run's
    switches (None keeps the setting), no rerank model when rerank is off."""
    changes: dict[str, Any] = {"collection": COLLECTION, "progress": progress}
    if neutral is not None:
        changes["neutral"] = switch_name(neutral)
    if dedup is not None:
        changes["dedup"] = switch_name(dedup)
    if not rerank:
        changes["rerank_model"] = "none"
    return replace(settings.replace(**changes), chroma_host=None)


@contextmanager
def _eval_store(
    corpus: EvalCorpus, encoder_fingerprint: Mapping[str, Any], settings: Settings, *, cache: bool,
    cache_dir: Path | str | None,
) -> Iterator[Path]:
    """The store folder of a run: the cached one of this model and corpus (`store_key`), or with
    `cache=False` a temporary one, deleted afterwards."""
    if cache:
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        path = root / store_key(corpus, encoder_fingerprint, settings)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="babelrank-eval-") as tmp:
        path = Path(tmp) / "store"
        path.mkdir(parents=True, exist_ok=True)
        yield path


def _run(
    index: "BabelIndex",
    corpus: EvalCorpus,
    *,
    rerank: bool,
    neutral: bool | None,
    dedup: bool | None,
    k: int,
    top_k: int | None,
    progress: bool,
    store: str | None,
) -> EvalReport:
    """Ingest the corpus into `index`, ask every query and score the run."""
    ingest = _ingest_corpus(index, corpus, progress=progress, store=store)
    doc_language = _document_languages(corpus, _stored_languages(index))
    if rerank and index.reranker() is None:
        raise ConfigError(f"rerank model {index.settings.rerank_model!r} could not be loaded")
    neutral_active = neutral is not False and index.neutral_scorer() is not None
    chunks = max(1, ingest["chunks"])
    depth = _first_depth(corpus, k, top_k, index.settings.top_k, chunks)
    search = _Search(index, corpus.exclude, k=k, depth=depth, chunks=chunks,
                     options={"rerank": rerank, "neutral": neutral, "dedup": dedup, "min_relevance": None})
    run, detected, timings, signals = _ask_all(search, corpus.queries, progress=progress)
    run = corpus.filter_run(run)
    metrics, per_language = score_run(corpus, run, doc_language, detected, k)
    stages = [s for s in (*STAGES, "total") if timings[s] and (s != "rerank" or rerank)]
    return EvalReport(
        corpus=corpus.name,
        model=str(index.encoder.name),
        reranker=str(getattr(index.reranker(), "model", index.settings.rerank_model)) if rerank else None,
        neutral=neutral,
        neutral_active=neutral_active,
        k=k,
        metrics=metrics,
        per_language=per_language,
        latency_ms={s: latency_ms(timings[s]) for s in stages},
        ingest=ingest,
        counts=corpus.counts(),
        store=store,
        dedup=dedup,
        run=run,
        detected_query_language=detected,
        timings={s: timings[s] for s in stages},
        signals=signals,
    )


def _ingest_corpus(index: "BabelIndex", corpus: EvalCorpus, *, progress: bool, store: str | None) -> dict[str, Any]:
    """Ingest the corpus documents (nothing is embedded twice in a cached store) and return the
    ingest statistics of `EvalReport.ingest`."""
    report = index.ingest_documents(_source_documents(corpus), progress=progress)
    ingest = {
        "documents": report.documents,
        "chunks_written": report.chunks_written,
        "chunks_embedded": report.chunks_embedded,
        "truncated": report.truncated,
        "seconds": round(report.seconds, 3),
        "chunks_per_s": round(report.chunks_embedded / report.seconds, 2) if report.chunks_embedded and report.seconds > 0 else None,
        "chunks": index.store.count(),
        "skipped": len(report.skipped),
    }
    if report.skipped:
        logger.warning("%s: %d documents were not ingested: %s", corpus.name, len(report.skipped), report.skipped[:3])
    if store is not None:
        ingest["build"] = _build_record(Path(store), ingest)
    return ingest


def _document_languages(corpus: EvalCorpus, stored: Mapping[str, str]) -> dict[str, str]:
    """Each document's language: the corpus's, else (user documents) the one detected at ingest."""
    return {
        d.id: d.language if d.language and d.language != UNDETERMINED else stored.get(d.id, UNDETERMINED)
        for d in corpus.documents
    }


def _first_depth(corpus: EvalCorpus, k: int, top_k: int | None, default_top_k: int, chunks: int) -> int:
    """Chunks fetched per query at first: `top_k`, else max(2k, the settings' top_k) plus the
    largest exclusion list; never more than the store holds."""
    max_excluded = max((len(v) for v in corpus.exclude.values()), default=0)
    return min(top_k or (max(2 * k, default_top_k) + max_excluded), chunks)


@dataclass
class _Search:
    """One query's scored ranking: its first `k` documents, its excluded documents dropped.

    Searches `depth` chunks first and twice as many while chunk duplicates and exclusions
    leave fewer than `k` documents and the store holds more.
    """

    index: "BabelIndex"
    exclude: Mapping[str, set[str]]
    k: int
    depth: int
    chunks: int
    options: dict[str, Any]

    def __call__(self, query: EvalQuery) -> tuple[list[str], "SearchResult"]:
        fetch = self.depth
        while True:
            result = self.index.search(query.text, top_k=fetch, top_n=fetch, **self.options)
            ranked = [d for d in _doc_ids(result.nodes) if d not in self.exclude.get(query.id, ())]
            if len(ranked) >= self.k or len(result.nodes) < fetch or fetch >= self.chunks:
                return ranked[: self.k], result
            fetch = min(2 * fetch, self.chunks)


def _ask_all(
    search: Callable[[EvalQuery], tuple[list[str], "SearchResult"]], queries: Sequence[EvalQuery], *, progress: bool
) -> tuple[dict[str, list[str]], dict[str, str], dict[str, list[float]], dict[str, dict[str, Any]]]:
    """Every query's ranking, detected language, per-stage seconds (and "total") and
    `EvalReport.signals`."""
    from tqdm.auto import tqdm

    search(queries[0])  # warm-up: first-call overheads stay out of the latencies
    run: dict[str, list[str]] = {}
    detected: dict[str, str] = {}
    timings: dict[str, list[float]] = {s: [] for s in (*STAGES, "total")}
    signals: dict[str, dict[str, Any]] = {}
    for q in tqdm(queries, desc="queries", unit="q", disable=not progress):
        t0 = time.perf_counter()
        ranked, result = search(q)
        timings["total"].append(time.perf_counter() - t0)
        for stage in STAGES:
            if stage in result.timings:
                timings[stage].append(result.timings[stage])
        run[q.id] = ranked
        detected[q.id] = result.query_language
        signals[q.id] = _signals(result, ranked)
    return run, detected, timings, signals


def _signals(result: "SearchResult", ranked: Sequence[str]) -> dict[str, Any]:
    """`EvalReport.signals` of one query: per ranked document the relevance and retrieval score
    of its best chunk (a translation listed under a dedup result: the result's relevance and
    its own score), and the search's `answerable`."""
    best: dict[str, tuple[float | None, float]] = {}
    for n in result.nodes:
        meta = n.node.metadata
        relevance = meta.get("relevance")
        best.setdefault(str(meta["doc_id"]), (relevance, float(meta["retrieval_score"])))
        for alt in meta.get("alternates") or ():
            best.setdefault(doc_id_of(str(alt["id"])), (relevance, float(alt["score"])))
    return {
        "relevance": [best[d][0] for d in ranked],
        "retrieval_score": [best[d][1] for d in ranked],
        "answerable": result.answerable,
    }


def latency_ms(seconds: Sequence[float]) -> dict[str, float]:
    """`latency_percentiles` of per-query seconds, in milliseconds."""
    return {name: value * 1000 for name, value in latency_percentiles(seconds).items()}


def _build_record(store: Path, ingest: dict[str, Any]) -> dict[str, Any] | None:
    """Ingest statistics of the run that embedded this cached store (kept next to it)."""
    path = store / "eval-build.json"
    if ingest["chunks_embedded"]:
        record = {k: ingest[k] for k in ("chunks_embedded", "seconds", "chunks_per_s")}
        try:
            old = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, json.JSONDecodeError):
            old = {}
        if record["chunks_embedded"] >= old.get("chunks_embedded", 0):
            path.write_text(json.dumps(record))
        return record
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def score_run(
    corpus: EvalCorpus,
    run: Mapping[str, Sequence[str]],
    doc_language: Mapping[str, str],
    detected: Mapping[str, str],
    k: int = 20,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Run-level and per-query-language metrics of a (filtered, document-level) run.

    A query without a language is grouped under its detected language.
    """
    group = {q.id: q.language or detected.get(q.id) or UNDETERMINED for q in corpus.queries}
    same = same_language_at_k(run, group, doc_language, SAME_LANGUAGE_K)
    lid = {q.id: float(detected.get(q.id) == q.language) for q in corpus.queries if q.language and q.id in detected}
    judged = {q: rel for q, rel in corpus.qrels.items() if rel}

    def extra(qids: Sequence[str]) -> dict[str, float]:
        out = {f"same_language@{SAME_LANGUAGE_K}": _mean([same[q] for q in qids if q in same])}
        if lid:
            out["query_language_accuracy"] = _mean([lid[q] for q in qids if q in lid])
        return out

    metrics = {**evaluate_run(run, judged, map_k=k), **extra([q.id for q in corpus.queries])}
    per_language = {
        lang: {**m, **extra([q for q in judged if group[q] == lang])}
        for lang, m in evaluate_by_group(run, judged, group, map_k=k).items()
    }
    return metrics, per_language
