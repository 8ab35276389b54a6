"""Run an `EvalCorpus` through the real babelrank pipeline and score it.

`evaluate` ingests the corpus documents with `BabelIndex.ingest_documents` into a Chroma
collection of its own (chunking, the product's language detection and embedding exactly as
users get them), asks every query with `BabelIndex.search`, maps chunk hits back to document
ids, drops each query's excluded documents (`EvalCorpus.filter_run`) and computes ranking
metrics overall and per query language, the share of same-language documents in the top 10,
query-language detection accuracy and per-stage latency.

Embedding cache: the store of each (embedding model, chunking, language detector, corpus
content) lives in its own folder under the cache directory (``$BABELRANK_EVAL_CACHE`` or
``~/.cache/babelrank/eval``). Ingest is idempotent, so a second run on the same data and model
embeds nothing, and an interrupted run resumes where it stopped. `cache=False` uses a
temporary store instead.

`raw_nearest_neighbour_accuracy` is the reference the pipeline is checked against: brute-force
cosine nearest neighbours with the same model and prompts, no chunking, no store.
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from babelrank.config import NO_RERANKER, Settings
from babelrank.errors import ConfigError
from babelrank.evaluation.datasets import EvalCorpus, EvalDocument, EvalQuery
from babelrank.evaluation.metrics import (
    evaluate_by_group,
    evaluate_run,
    language_spread,
    latency_percentiles,
)
from babelrank.ingest.sources import SourceDocument, clean_metadata
from babelrank.schema import doc_id_of

if TYPE_CHECKING:
    from babelrank.index import BabelIndex
    from babelrank.models.encoders import BiEncoder
    from babelrank.query.rerank import CrossEncoderReranker

logger = logging.getLogger(__name__)

CACHE_ENV = "BABELRANK_EVAL_CACHE"
DEFAULT_CACHE_DIR = Path("~/.cache/babelrank/eval")
COLLECTION = "eval"
SAME_LANGUAGE_K = 10
STAGES = ("embed", "search", "rerank")
UNKNOWN_LANGUAGE = "und"


# --- the report ---------------------------------------------------------------------------


@dataclass
class EvalReport:
    """Scores, latencies and ingest statistics of one evaluation run.

    `metrics` holds the run averages (`recall@1/5/10`, `hit@1/5/10`, `mrr@10`, `ndcg@10`,
    `map@<k>`, `same_language@10`, `query_language_accuracy`, `queries`); `per_language` the
    same per query language. `run` is the scored ranking (document ids, best first, at most k
    per query, excluded documents removed); it is left out of `as_dict()` unless asked for.
    `timings` holds the per-query seconds of each stage that `latency_ms` summarises.
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

    def as_dict(self, include_run: bool = False) -> dict[str, Any]:
        """JSON-ready form: the run-level metrics are top-level keys (`map@20`, `recall@10`, ...)."""
        out: dict[str, Any] = {
            "corpus": self.corpus,
            "model": self.model,
            "reranker": self.reranker or "none",
            "neutral": {True: "on", False: "off", None: "default"}[self.neutral],
            "neutral_active": self.neutral_active,
            "dedup": {True: "on", False: "off", None: "default"}[self.dedup],
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
        return out


def _round(value: float) -> float:
    return round(float(value), 6)


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
                out[doc] = (chunk, str(m.get("language", UNKNOWN_LANGUAGE)))
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


def _check_k(k: int) -> None:
    if k < SAME_LANGUAGE_K:
        raise ConfigError(f"k must be >= {SAME_LANGUAGE_K} (recall@10 and ndcg@10 need 10 ranks), got {k}")


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
        dedup: translation-aware results (collapse translations into one result). Off by
            default: benchmarks count each translation as a document of its own. When on
            (True) or the product default (None), each result's `alternates` are ranked
            right after it.
        progress: progress bars (ingest and queries); None = when stderr is a terminal.
        cache_dir: folder of cached eval stores (default `$BABELRANK_EVAL_CACHE` or
            `~/.cache/babelrank/eval`); the store for this model and corpus is reused, so
            nothing already embedded is embedded again.
        cache: False = a temporary store, deleted afterwards.
        encoder, reranker: already loaded models to reuse across runs (optional).
        top_k: chunks fetched per query; default max(2k, settings.top_k) plus the largest
            exclusion list. Deepened automatically when chunk duplicates and exclusions
            leave fewer than k documents.
    """
    from babelrank.index import BabelIndex

    _check_k(k)
    if not corpus.queries:
        raise ConfigError(f"{corpus.name}: no queries to evaluate")
    if not corpus.documents:
        raise ConfigError(f"{corpus.name}: no documents to evaluate")
    if rerank and reranker is None and settings.rerank_model.strip().lower() in NO_RERANKER:
        raise ConfigError("rerank=True needs a rerank model (settings.rerank_model is 'none')")
    show = sys.stderr.isatty() if progress is None else progress
    changes: dict[str, Any] = {"collection": COLLECTION, "progress": show}
    if neutral is not None:
        changes["neutral"] = "on" if neutral else "off"
    if dedup is not None:
        changes["dedup"] = "on" if dedup else "off"
    if not rerank:
        changes["rerank_model"] = "none"
    base = settings.replace(**changes)
    base = replace(base, chroma_host=None)

    tmp: tempfile.TemporaryDirectory[str] | None = None
    if encoder is None:
        from babelrank.models.encoders import load_bi_encoder

        encoder = load_bi_encoder(base.embed_model, **model_options(base))
    if cache:
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        store_path = root / store_key(corpus, encoder.fingerprint(), base)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="babelrank-eval-")
        store_path = Path(tmp.name) / "store"
    store_path.mkdir(parents=True, exist_ok=True)
    try:
        index = BabelIndex(base.replace(store_path=store_path), encoder=encoder)
        try:
            if rerank and reranker is not None:
                index._reranker, index._reranker_loaded = reranker, True
            return _run(index, corpus, rerank=rerank, neutral=neutral, dedup=dedup, k=k, top_k=top_k,
                        progress=show, store=str(store_path) if cache else None)
        finally:
            index.close()
    finally:
        if tmp is not None:
            tmp.cleanup()


def model_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of `load_bi_encoder` / `CrossEncoderReranker` from settings."""
    return {"model_dir": settings.model_dir, "device": settings.device, "backend": settings.backend,
            "cache_dir": settings.cache_dir, "onnx_spinning": settings.onnx_spinning,
            "trust_remote_code": settings.trust_remote_code}


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
    from tqdm.auto import tqdm

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

    stored_language = _stored_languages(index)
    doc_language = {
        d.id: (d.language if d.language and d.language != UNKNOWN_LANGUAGE else stored_language.get(d.id, UNKNOWN_LANGUAGE))
        for d in corpus.documents
    }
    if rerank:
        if index.reranker() is None:
            raise ConfigError(f"rerank model {index.settings.rerank_model!r} could not be loaded")
    neutral_active = neutral is not False and index.neutral_scorer() is not None

    n_chunks = max(1, ingest["chunks"])
    max_excluded = max((len(v) for v in corpus.exclude.values()), default=0)
    depth = min(top_k or (max(2 * k, index.settings.top_k) + max_excluded), n_chunks)
    search_kwargs: dict[str, Any] = {"rerank": rerank, "neutral": neutral, "dedup": dedup}

    def search(q: EvalQuery) -> tuple[list[str], Any]:
        fetch = depth
        while True:
            result = index.search(q.text, top_k=fetch, top_n=fetch, **search_kwargs)
            ranked = [d for d in _doc_ids(result.nodes) if d not in corpus.exclude.get(q.id, ())]
            if len(ranked) >= k or len(result.nodes) < fetch or fetch >= n_chunks:
                return ranked[:k], result
            fetch = min(2 * fetch, n_chunks)

    search(corpus.queries[0])  # warm-up: first-call overheads stay out of the latencies
    run: dict[str, list[str]] = {}
    detected: dict[str, str] = {}
    timings: dict[str, list[float]] = {s: [] for s in (*STAGES, "total")}
    for q in tqdm(corpus.queries, desc="queries", unit="q", disable=not progress):
        t0 = time.perf_counter()
        ranked, result = search(q)
        timings["total"].append(time.perf_counter() - t0)
        for stage in STAGES:
            if stage in result.timings:
                timings[stage].append(result.timings[stage])
        run[q.id] = ranked
        detected[q.id] = result.query_language

    run = corpus.filter_run(run)
    metrics, per_language = score_run(corpus, run, doc_language, detected, k)
    stages = [s for s in (*STAGES, "total") if timings[s] and (s != "rerank" or rerank)]
    latency = {s: {n: v * 1000 for n, v in latency_percentiles(timings[s]).items()} for s in stages}
    return EvalReport(
        corpus=corpus.name,
        model=str(index.encoder.name),
        reranker=str(getattr(index.reranker(), "model", index.settings.rerank_model)) if rerank else None,
        neutral=neutral,
        neutral_active=neutral_active,
        k=k,
        metrics=metrics,
        per_language=per_language,
        latency_ms=latency,
        ingest=ingest,
        counts=corpus.counts(),
        store=store,
        dedup=dedup,
        run=run,
        detected_query_language=detected,
        timings={s: timings[s] for s in stages},
    )


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
    group = {q.id: q.language or detected.get(q.id) or UNKNOWN_LANGUAGE for q in corpus.queries}
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


# --- the reference: brute-force nearest neighbours -----------------------------------------


def raw_nearest_neighbour_accuracy(
    encoder: "BiEncoder", corpus: EvalCorpus, batch_size: int = 32
) -> dict[str, Any]:
    """accuracy@1 of exact cosine nearest neighbours, with the model's prompts, no chunking.

    Every document is embedded whole (`encode_documents`), every query with
    `encode_queries`; each query's excluded documents are masked. Returns
    `{"accuracy@1", "queries", "per_language": {lang: accuracy@1}, "top1": {query id: doc id},
    "margin": {query id: score of the best minus the second-best document}}`.
    For one-chunk documents (Tatoeba sentences) `evaluate(..., rerank=False, neutral=False)`
    must reach the same accuracy@1: the pipeline (chunking, store, search) loses nothing.
    `compare_top1` lists the queries where the two disagree; a disagreement on a query with a
    margin of float noise (a near-tie; vectors from differently padded batches differ in the
    last bits) is not a loss, one with a clear margin is.
    """
    ids = [d.id for d in corpus.documents]
    position = {d: i for i, d in enumerate(ids)}
    docs = encoder.encode_documents([d.text for d in corpus.documents], batch_size)
    queries = encoder.encode_queries([q.text for q in corpus.queries], batch_size)
    scores = queries @ docs.T
    for qi, q in enumerate(corpus.queries):
        for d in corpus.exclude.get(q.id, ()):
            scores[qi, position[d]] = -np.inf
    best = scores.argmax(axis=1)
    top1 = {q.id: ids[int(best[qi])] for qi, q in enumerate(corpus.queries)}
    two = np.sort(scores, axis=1)[:, -2:] if scores.shape[1] > 1 else np.hstack([scores, scores])
    margin = {q.id: float(two[qi, 1] - two[qi, 0]) for qi, q in enumerate(corpus.queries)}
    judged = [q for q in corpus.queries if corpus.qrels.get(q.id)]
    hits = {q.id: float(top1[q.id] in corpus.qrels[q.id]) for q in judged}
    per_language: dict[str, list[float]] = {}
    for q in judged:
        per_language.setdefault(q.language or UNKNOWN_LANGUAGE, []).append(hits[q.id])
    return {
        "accuracy@1": _mean(list(hits.values())),
        "queries": len(hits),
        "per_language": {lang: _mean(v) for lang, v in sorted(per_language.items())},
        "top1": top1,
        "margin": margin,
    }


def compare_top1(raw: Mapping[str, Any], report: EvalReport) -> list[dict[str, Any]]:
    """Queries whose pipeline top-1 document differs from the raw nearest neighbour, with the
    raw margin of each (see `raw_nearest_neighbour_accuracy`)."""
    out = []
    for qid, doc in raw["top1"].items():
        got = (report.run.get(qid) or [None])[0]
        if got != doc:
            out.append({"query": qid, "raw": doc, "pipeline": got, "raw_margin": raw["margin"][qid]})
    return out


# --- corpus helpers for the CLI -------------------------------------------------------------


def head_tatoeba(corpus: EvalCorpus, n: int) -> EvalCorpus:
    """The first `n` sentence pairs of a Tatoeba corpus (both sides of the pool)."""
    documents = [d for d in corpus.documents if int(d.metadata.get("line", 0)) < n]
    queries = [q for q in corpus.queries if int(q.id.rsplit(":", 1)[1]) < n]
    keep = {q.id for q in queries}
    return EvalCorpus(
        corpus.name,
        documents,
        queries,
        {q: r for q, r in corpus.qrels.items() if q in keep},
        {q: e for q, e in corpus.exclude.items() if q in keep},
    )


def head_queries(corpus: EvalCorpus, n: int) -> EvalCorpus:
    """The first `n` queries per query language (documents unchanged)."""
    seen: dict[str | None, int] = {}
    queries = []
    for q in corpus.queries:
        if seen.get(q.language, 0) < n:
            seen[q.language] = seen.get(q.language, 0) + 1
            queries.append(q)
    keep = {q.id for q in queries}
    return EvalCorpus(
        corpus.name,
        list(corpus.documents),
        queries,
        {q: r for q, r in corpus.qrels.items() if q in keep},
        {q: e for q, e in corpus.exclude.items() if q in keep},
    )


def documents_from_sources(docs: Sequence[SourceDocument]) -> list[EvalDocument]:
    """User documents as eval documents; their language is unknown ("und") until the
    pipeline detects it (the runner then uses the detected language)."""
    return [
        EvalDocument(d.doc_id, d.text, UNKNOWN_LANGUAGE, {**dict(d.metadata), "source": d.source}) for d in docs
    ]


def _normalise_space(text: str) -> str:
    return " ".join(text.split())


def user_corpus(
    doc_paths: Sequence[str | Path],
    *,
    judgements: Sequence[Any] | None = None,
    queries: Sequence[EvalQuery] | None = None,
    qrels: Mapping[str, Mapping[str, int]] | None = None,
    text_field: str = "text",
    name: str = "judgements",
) -> EvalCorpus:
    """An `EvalCorpus` from the user's own documents and judgements.

    Documents are read like `babelrank ingest` reads them (files and folders; a JSON/JSONL
    record is one document). Give either `judgements` (`load_user_judgements`: each relevant
    entry is a document id or a passage text) or `queries` + TREC `qrels` (document ids).

    A document is named by its full id (`/abs/path/file.txt`, `/abs/path/data.jsonl#7`), its
    path relative to a given folder or to the working directory, its file name, or (JSON
    records) its record id, each as long as it names one document. A passage text names every
    document that contains it (whitespace-insensitive).
    """
    from babelrank.errors import SourceError
    from babelrank.ingest.sources import read_paths

    if (judgements is None) == (queries is None or qrels is None):
        raise ConfigError("give either judgements, or queries together with qrels")
    paths = [Path(p).expanduser() for p in doc_paths]
    sources, skipped = read_paths(paths)
    for s in skipped:
        logger.warning("not evaluated: %s (%s)", s.source, s.reason)
    if not sources:
        raise SourceError(f"no readable documents in {', '.join(map(str, doc_paths))}")
    docs = documents_from_sources(sources)
    resolve = _resolver(sources, [p.resolve() for p in paths if p.is_dir()])

    if judgements is not None:
        normalised = [(d.id, _normalise_space(d.text)) for d in docs]
        eval_queries, table = [], {}
        for j in judgements:
            relevant: set[str] = set()
            for entry in j.relevant:
                found = resolve(entry)
                if not found:
                    needle = _normalise_space(entry)
                    found = {doc for doc, text in normalised if needle and needle in text}
                if not found:
                    raise SourceError(
                        f"query {j.query.id!r}: relevant entry {entry[:80]!r} is neither a document id "
                        "nor a passage found in any document"
                    )
                relevant |= found
            eval_queries.append(j.query)
            table[j.query.id] = relevant
        return EvalCorpus(name, docs, eval_queries, table)

    assert queries is not None and qrels is not None
    known = {q.id for q in queries}
    unknown = sorted(set(qrels) - known)
    if unknown:
        logger.warning("%d judged queries are not in the queries file (e.g. %s); left out", len(unknown), unknown[:3])
    graded: dict[str, dict[str, int]] = {}
    for qid, judged in qrels.items():
        if qid not in known:
            continue
        row: dict[str, int] = {}
        for docid, grade in judged.items():
            found = resolve(docid)
            if not found:
                if grade > 0:
                    raise SourceError(f"qrels: query {qid!r} names document {docid!r}, which is not among the documents")
                continue
            if len(found) > 1:
                raise SourceError(f"qrels: document {docid!r} of query {qid!r} names {len(found)} documents; use a full id")
            row[next(iter(found))] = grade
        graded[qid] = row
    asked = [q for q in queries if q.id in graded]
    if len(asked) < len(queries):
        logger.warning("%d queries have no judgements; not asked", len(queries) - len(asked))
    return EvalCorpus(name, docs, asked, graded)  # type: ignore[arg-type]


def _resolver(docs: Sequence[SourceDocument], roots: Sequence[Path]) -> Callable[[str], set[str]]:
    aliases: dict[str, set[str]] = {}
    cwd = Path.cwd()
    for d in docs:
        ids = {d.doc_id}
        suffix = d.doc_id[len(d.source):] if d.doc_id.startswith(d.source) else ""
        source = Path(d.source)
        names = {source.name}
        for root in (*roots, cwd):
            try:
                names.add(source.relative_to(root).as_posix())
            except ValueError:
                pass
        ids |= {n + suffix for n in names}
        if suffix.startswith("#"):
            ids.add(suffix[1:])
        for alias in ids:
            aliases.setdefault(alias, set()).add(d.doc_id)
    exact = {d.doc_id for d in docs}

    def resolve(name: str) -> set[str]:
        if name in exact:
            return {name}
        found = aliases.get(name, set())
        if len(found) > 1:
            raise ConfigError(f"{name!r} names {len(found)} documents ({sorted(found)[:3]}...); use a full id")
        return set(found)

    return resolve
