"""Compare embedding models, backends and rerankers on one benchmark, side by side.

`compare` runs every `Configuration` (embedding model, backend, reranker) through the runner
that `babelrank eval` uses (`evaluate`: chunking, language detection, Chroma, language-neutral
scoring, rerank) on the same corpora, and collects for each: the quality metrics, ingest speed,
per-stage query latency, index size on disk and embedding dimension. `Comparison.markdown()`
renders one table with the configurations side by side, `Comparison.as_dict()` the JSON form,
and `plot_comparison` a PNG of quality against query latency (needs matplotlib:
``pip install 'babelrank[plot]'``).

Stores are cached exactly as `babelrank eval` caches them (one per model, backend, chunking and
corpus), so a second comparison on the same corpus embeds nothing; configurations that differ
only in their reranker share one store.
"""

from __future__ import annotations

import itertools
import logging
import math
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babelrank.config import NO_RERANKER, Settings
from babelrank.errors import ConfigError
from babelrank.evaluation.datasets import EvalCorpus
from babelrank.evaluation.runner import (
    STAGES,
    EvalReport,
    default_cache_dir,
    evaluate,
    latency_ms,
    switch_name,
)
from babelrank.query.rerank_loader import load_reranker

logger = logging.getLogger(__name__)

PLOT_INSTALL = "pip install 'babelrank[plot]'"

#: turns one configuration's reports (one per corpus, in corpus order) into
#: (run-level metrics, per-language rows)
Summarise = Callable[[Sequence[EvalReport]], tuple[dict[str, float | None], dict[str, dict[str, Any]]]]


def _short(name: str) -> str:
    """The last part of a folder path or hub id."""
    return Path(name.rstrip("/\\")).name or name


def reranks(reranker: str) -> bool:
    """Whether a reranker name asks for rerank ('none', 'off' and '' do not)."""
    return reranker.strip().lower() not in NO_RERANKER


@dataclass(frozen=True)
class Configuration:
    """One compared setup: embedding model, inference backend and reranker ('none' = off)."""

    model: str
    backend: str = "torch"
    reranker: str = "none"

    @property
    def label(self) -> str:
        """Short name for tables and plots, e.g. ``e5-small · onnx-int8 · no rerank``."""
        rerank = f"rerank {_short(self.reranker)}" if reranks(self.reranker) else "no rerank"
        return f"{_short(self.model)} · {self.backend} · {rerank}"


def configurations(models: Sequence[str], backends: Sequence[str], rerankers: Sequence[str]) -> list[Configuration]:
    """Every combination of the given models, backends and rerankers (duplicates dropped),
    model by model, so that configurations sharing a loaded model run one after another."""
    from babelrank.models.onnx import check_backend

    if not models:
        raise ConfigError("nothing to compare: name at least one embedding model (--model A --model B)")
    checked = [check_backend(b) for b in backends] or ["torch"]
    combos = itertools.product(dict.fromkeys(models), dict.fromkeys(checked), dict.fromkeys(rerankers or ["none"]))
    return [Configuration(m, b, r) for m, b, r in combos]


def require_matplotlib() -> None:
    """Fail with the install command when matplotlib is missing (plots need it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError(f"plotting needs matplotlib, which is not installed: {PLOT_INSTALL}") from None


def disk_bytes(path: Path | str) -> int:
    """Bytes that the files under `path` occupy on disk (allocated blocks where known)."""
    total = 0
    for f in Path(path).rglob("*"):
        if f.is_file():
            st = f.stat()
            blocks = getattr(st, "st_blocks", None)
            total += blocks * 512 if blocks is not None else st.st_size
    return total


# --- results -------------------------------------------------------------------------------


@dataclass
class ConfigurationResult:
    """Quality, speed and size of one configuration over the compared corpora.

    `ingest["chunks_per_s"]` is the embedding throughput of the ingest that built the stores
    (this run's, or the cached build's when nothing was embedded now: `ingest["cached"]`).
    `latency_ms` holds p50/p95 per query stage over every query of every corpus.
    """

    configuration: Configuration
    label: str
    model: str
    reranker: str
    dimension: int
    metrics: dict[str, float | None]
    per_language: dict[str, dict[str, Any]]
    latency_ms: dict[str, dict[str, float]]
    ingest: dict[str, Any]
    index_bytes: int | None
    stores: list[str]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "label": self.label,
            "model": self.model,
            "backend": self.configuration.backend,
            "reranker": self.reranker,
            "dimension": self.dimension,
            "metrics": {k: _round(v) for k, v in self.metrics.items()},
            "per_language": self.per_language,
            "latency_ms": {s: {n: round(v, 2) for n, v in p.items()} for s, p in self.latency_ms.items()},
            "ingest": self.ingest,
            "index_bytes": self.index_bytes,
            "stores": self.stores,
        }


def _round(value: Any) -> Any:
    return round(float(value), 6) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _cell(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


@dataclass
class Comparison:
    """Every configuration's result on one benchmark; `metrics` are its main quality metrics
    (the first one is plotted)."""

    benchmark: str
    corpora: list[str]
    metrics: tuple[str, ...]
    documents: int
    queries: int
    k: int
    neutral: bool | None
    dedup: bool | None
    results: list[ConfigurationResult]

    def as_dict(self) -> dict[str, Any]:
        """One JSON object: the benchmark, its main metrics and a list of configurations."""
        return {
            "benchmark": self.benchmark,
            "corpora": self.corpora,
            "documents": self.documents,
            "queries": self.queries,
            "k": self.k,
            "neutral": switch_name(self.neutral),
            "dedup": switch_name(self.dedup),
            "metrics": list(self.metrics),
            "configurations": [r.as_dict() for r in self.results],
        }

    def rows(self) -> list[tuple[str, list[str]]]:
        """The table's rows: (measure, one cell per configuration)."""
        res = self.results
        rows = [(m, [_cell(r.metrics.get(m)) for r in res]) for m in self.metrics]
        rows.append(("ingest chunks/s", [_cell(r.ingest["chunks_per_s"], 1) for r in res]))
        rows.append(("chunks (embedded now)", [f"{r.ingest['chunks']} ({r.ingest['chunks_embedded']})" for r in res]))
        for stage in (*STAGES, "total"):
            if any(stage in r.latency_ms for r in res):
                rows.append((f"query {stage} ms p50 / p95", [
                    f"{r.latency_ms[stage]['p50']:.1f} / {r.latency_ms[stage]['p95']:.1f}" if stage in r.latency_ms else "–"
                    for r in res
                ]))
        rows.append(("index size MB", [_cell(None if r.index_bytes is None else r.index_bytes / 2**20, 1) for r in res]))
        rows.append(("embedding dim", [str(r.dimension) for r in res]))
        return rows

    def markdown(self) -> str:
        """A header line and one markdown table, the configurations side by side."""
        header = " · ".join([
            f"**{self.benchmark}**", f"{self.documents} documents", f"{self.queries} queries",
            f"neutral {switch_name(self.neutral)}", f"dedup {switch_name(self.dedup)}",
        ])
        lines = [header, "", "| | " + " | ".join(r.label for r in self.results) + " |",
                 "|---|" + "---:|" * len(self.results)]
        lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in self.rows()]
        if any(r.ingest["cached"] for r in self.results):
            lines += ["", "ingest chunks/s of a configuration that embedded nothing now (0 in brackets) "
                      "is the rate measured when its cached store was built."]
        return "\n".join(lines)


# --- running -------------------------------------------------------------------------------


def _single(reports: Sequence[EvalReport]) -> tuple[dict[str, float | None], dict[str, dict[str, Any]]]:
    (report,) = reports
    return dict(report.metrics), report.as_dict()["per_language"]


def _ingest(reports: Sequence[EvalReport]) -> dict[str, Any]:
    now = sum(r.ingest["chunks_embedded"] for r in reports)
    builds: list[dict[str, Any]] = [b for r in reports if (b := r.ingest.get("build"))]
    rate = None
    if len(builds) == len(reports):  # every store's build was measured (this run or a cached one)
        embedded = sum(b["chunks_embedded"] for b in builds)
        seconds = sum(b["seconds"] for b in builds)
        rate = round(embedded / seconds, 2) if embedded and seconds > 0 else None
    return {
        "documents": sum(r.ingest["documents"] for r in reports),
        "chunks": sum(r.ingest["chunks"] for r in reports),
        "chunks_embedded": now,
        "cached": now == 0,
        "seconds": round(sum(r.ingest["seconds"] for r in reports), 3),
        "chunks_per_s": rate,
        "truncated": sum(r.ingest["truncated"] for r in reports),
    }


def _latency(reports: Sequence[EvalReport]) -> dict[str, dict[str, float]]:
    out = {}
    for stage in (*STAGES, "total"):
        seconds = [t for r in reports for t in r.timings.get(stage, ())]
        if seconds:
            out[stage] = latency_ms(seconds)
    return out


def _check_models(configs: Sequence[Configuration], model_dir: Path | None) -> None:
    """Fail before any work when a model folder does not exist (`ModelNotFoundError`)."""
    from babelrank.models.presets import resolve_model

    for name in dict.fromkeys([c.model for c in configs] + [c.reranker for c in configs if reranks(c.reranker)]):
        if name != "auto":
            resolve_model(name, model_dir)


def compare(
    corpora: Sequence[EvalCorpus],
    settings: Settings,
    configs: Sequence[Configuration],
    *,
    metrics: Sequence[str],
    benchmark: str | None = None,
    summarise: Summarise | None = None,
    neutral: bool | None = None,
    dedup: bool | None = False,
    k: int = 20,
    progress: bool | None = None,
    cache_dir: Path | str | None = None,
    cache: bool = True,
    top_k: int | None = None,
) -> Comparison:
    """Run every configuration on the same corpora through `evaluate` and collect the results.

    Args:
        corpora: the evaluation corpora, run in this order for every configuration.
        settings: pipeline settings; each configuration replaces its embed model, backend and
            rerank model.
        configs: what to compare (see `configurations`).
        metrics: the main quality metrics (keys of the summarised metrics), first one plotted.
        benchmark: name shown in the table (default: the first corpus's name).
        summarise: reports of one configuration -> (metrics, per-language rows); required for
            several corpora, default: the single corpus's run metrics.
        neutral, dedup, k, top_k: as for `evaluate`.
        progress: progress bars (configurations, ingest, queries); None = when stderr is a terminal.
        cache_dir, cache: as for `evaluate`; with `cache=False` the stores live in a temporary
            folder for the duration of the comparison (so their size can still be measured).

    Returns:
        The comparison: one result per configuration, in the order of `configs`.

    Raises:
        ConfigError: no configuration, no corpus, or several corpora without `summarise`.
        ModelNotFoundError: a model folder that does not exist (checked before any work).
    """
    summarise = _summariser(corpora, configs, summarise)
    _check_models(configs, settings.model_dir)
    show = sys.stderr.isatty() if progress is None else progress
    options = {"neutral": neutral, "dedup": dedup, "k": k, "top_k": top_k, "progress": show}
    with _stores_root(cache, cache_dir) as root:
        results = _run_configurations(corpora, settings, configs, summarise, root=root, keep_stores=cache,
                                      options=options)
    _unique_labels(results)
    _warn_on_chunk_counts(results)
    return Comparison(
        benchmark=benchmark or corpora[0].name,
        corpora=[c.name for c in corpora],
        metrics=tuple(metrics),
        documents=sum(len(c.documents) for c in corpora),
        queries=sum(len(c.queries) for c in corpora),
        k=k,
        neutral=neutral,
        dedup=dedup,
        results=results,
    )


def _summariser(corpora: Sequence[EvalCorpus], configs: Sequence[Configuration], summarise: Summarise | None) -> Summarise:
    """`summarise`, or for a single corpus its run metrics (`ConfigError` when nothing is to be compared)."""
    if not configs:
        raise ConfigError("nothing to compare: give at least one configuration")
    if not corpora:
        raise ConfigError("nothing to compare on: no corpus given")
    if summarise is None:
        if len(corpora) != 1:
            raise ConfigError("comparing on several corpora needs a summarise function")
        return _single
    return summarise


@contextmanager
def _stores_root(cache: bool, cache_dir: Path | str | None) -> Iterator[Path]:
    """The folder of the compared stores: the eval cache, or with `cache=False` a temporary
    folder, deleted afterwards."""
    if cache:
        yield Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        return
    with tempfile.TemporaryDirectory(prefix="babelrank-compare-") as tmp:
        yield Path(tmp)


def _run_configurations(
    corpora: Sequence[EvalCorpus],
    settings: Settings,
    configs: Sequence[Configuration],
    summarise: Summarise,
    *,
    root: Path,
    keep_stores: bool,
    options: dict[str, Any],
) -> list[ConfigurationResult]:
    """Evaluate each configuration on every corpus; consecutive configurations of one model and
    backend share the loaded model, and one model is released before the next is loaded."""
    from tqdm.auto import tqdm

    from babelrank.models.bi_encoder import load_bi_encoder

    results: list[ConfigurationResult] = []
    encoder: Any = None
    loaded: tuple[str, str] | None = None
    bar = tqdm(configs, desc="configurations", unit="config", disable=not options["progress"])
    for config in bar:
        bar.set_postfix_str(config.label)
        s = settings.replace(embed_model=config.model, backend=config.backend, rerank_model=config.reranker)
        if loaded != (config.model, config.backend):
            encoder = None  # release the previous model before loading the next
            encoder = load_bi_encoder(config.model, **s.bi_encoder_options())
            loaded = (config.model, config.backend)
        reranker = None  # likewise the previous reranker
        reranker = load_reranker(s)
        reports = [
            evaluate(c, s, rerank=reranker is not None, cache_dir=root, encoder=encoder, reranker=reranker, **options)
            for c in corpora
        ]
        results.append(_result(config, reports, summarise, dimension=encoder.dimension, keep_stores=keep_stores))
    bar.close()
    return results


def _result(
    config: Configuration, reports: Sequence[EvalReport], summarise: Summarise, *, dimension: int, keep_stores: bool
) -> ConfigurationResult:
    """One configuration's result from its reports (one per corpus)."""
    run_metrics, per_language = summarise(reports)
    stores = [r.store for r in reports if r.store]
    return ConfigurationResult(
        configuration=config,
        label=config.label,
        model=reports[0].model,
        reranker=reports[0].reranker or "none",
        dimension=dimension,
        metrics=run_metrics,
        per_language=per_language,
        latency_ms=_latency(reports),
        ingest=_ingest(reports),
        index_bytes=sum(disk_bytes(p) for p in dict.fromkeys(stores)),
        stores=stores if keep_stores else [],
    )


def _warn_on_chunk_counts(results: Sequence[ConfigurationResult]) -> None:
    """Warn when the configurations cut the corpora into different numbers of chunks."""
    chunks = {r.ingest["chunks"] for r in results}
    if len(chunks) > 1:
        logger.warning("the configurations cut the corpus into different numbers of chunks (%s): each model "
                       "chunks with its own tokenizer", ", ".join(f"{r.label}: {r.ingest['chunks']}" for r in results))


def _unique_labels(results: Sequence[ConfigurationResult]) -> None:
    """Models with the same folder name get their full name in the label."""
    labels = [r.label for r in results]
    for r in results:
        if labels.count(r.label) > 1:
            r.label = r.label.replace(_short(r.configuration.model), r.configuration.model, 1)


# --- plot ----------------------------------------------------------------------------------


def plot_comparison(comparison: Comparison, path: Path | str, metric: str | None = None) -> Path:
    """Write a PNG of quality (`metric`, default the first main metric) against the median
    query latency: one numbered point per configuration, named in the legend (matplotlib,
    Agg canvas)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metric = metric or comparison.metrics[0]
    fig = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for number, r in enumerate(comparison.results, start=1):
        x, y = r.latency_ms.get("total", {}).get("p50"), r.metrics.get(metric)
        if x is None or y is None or not math.isfinite(y):
            logger.warning("%s: no %s or latency to plot", r.label, metric)
            continue
        ax.scatter([x], [y], s=40, label=f"{number}  {r.label}")
        ax.annotate(str(number), (x, y), textcoords="offset points", xytext=(5, 5), fontsize=9)
    ax.margins(x=0.15, y=0.15)
    ax.set_xlim(left=0)
    ax.legend(fontsize=8, loc="best")
    ax.set_xlabel("query latency p50, ms (whole query; lower is faster)")
    ax.set_ylabel(metric)
    ax.set_title(f"{comparison.benchmark}: {metric} vs query latency ({comparison.queries} queries)")
    ax.grid(alpha=0.3)
    out = Path(path).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=120)
    return out
