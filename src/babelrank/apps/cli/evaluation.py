"""`babelrank eval ...`: benchmarks and user judgements through the real pipeline.

    babelrank eval xquad-r --data DIR --languages en,ru,de,es --model PATH --reranker none --json
    babelrank eval tatoeba-mixed --data DIR --languages ukr,rus --model PATH --reranker none --json
    babelrank eval xquad --data DIR --doc-languages en,ru --query-languages ru,de,es,en
    babelrank eval xquad-unanswerable --data DIR --languages en,ru,de,es --model PATH --reranker none
    babelrank eval judgements --queries FILE --docs PATH [PATH ...] [--qrels FILE]
    babelrank compare xquad-r --data DIR --model A --model B --backend torch,onnx-int8 --reranker none

The main parser calls `register(subparsers, parents)`; each command's handler is
`args.func(args) -> int` and raises babelrank errors, which the entry point prints. `compare`
runs the same benchmarks for several configurations (`babelrank.evaluation.compare`). What
they print is written by `babelrank.apps.cli.eval_output`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from babelrank.apps.cli.argtypes import probability_arg
from babelrank.apps.cli.eval_output import (
    answerability_text,
    emit,
    header,
    markdown_table,
    report_text,
)
from babelrank.apps.cli.settings import settings_from_args
from babelrank.config import BACKENDS, DEFAULT_MIN_RELEVANCE, Settings, mode_flag
from babelrank.errors import BabelrankError, ConfigError, SourceError
from babelrank.evaluation import answerability, datasets
from babelrank.evaluation.compare import (
    PLOT_INSTALL,
    Summarise,
    compare,
    configurations,
    plot_comparison,
    require_matplotlib,
)
from babelrank.evaluation.datasets import EvalCorpus, head_queries, head_tatoeba
from babelrank.evaluation.runner import EvalReport, evaluate
from babelrank.evaluation.user_data import user_corpus
from babelrank.query.rerank_loader import load_reranker


def _languages(value: str) -> list[str]:
    langs = [x.strip() for x in value.split(",") if x.strip()]
    if not langs:
        raise argparse.ArgumentTypeError("give a comma-separated list of language codes, e.g. en,ru")
    return list(dict.fromkeys(langs))


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _share(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0.0 <= x < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {x}")
    return x


def _backends(value: str) -> list[str]:
    from babelrank.models.onnx import check_backend

    names = [x.strip() for x in value.split(",") if x.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give backends as a comma-separated list, e.g. torch,onnx-int8")
    try:
        return list(dict.fromkeys(check_backend(x) for x in names))
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _common(parser: argparse.ArgumentParser, compare: bool = False) -> None:
    # options the main CLI also takes before the command name default to SUPPRESS, so that a
    # value given there is not overwritten by this sub-command's default
    S = argparse.SUPPRESS
    c = parser.add_argument_group("configurations (every combination of these is run)") if compare else None
    g = parser.add_argument_group("pipeline")
    if c is not None:
        c.add_argument("--model", dest="models", action="append", metavar="NAME",
                       help="an embedding model to compare: preset, hub id or folder (repeat: --model A --model B)")
        c.add_argument("--backend", dest="backends", action="append", type=_backends, metavar="LIST",
                       help="backends to compare: torch, onnx, onnx-int8, comma-separated or repeated "
                       "(default: BABELRANK_BACKEND or torch)")
        c.add_argument("--reranker", dest="rerankers", action="append", metavar="NAME",
                       help="a reranker to compare, 'none' for the first stage alone (repeatable; default: "
                       "--rerank-model, BABELRANK_RERANK_MODEL, else the default reranker when it can be loaded)")
        c.add_argument("--plot", type=Path, metavar="PNG", help=f"also write a PNG of quality vs query latency "
                       f"(needs matplotlib: {PLOT_INSTALL})")
    else:
        g.add_argument("--model", help="embedding model: preset, hub id or folder (default: --embed-model, "
                       "BABELRANK_EMBED_MODEL or e5-small)")
        g.add_argument("--reranker", help="cross-encoder folder/preset/hub id, or 'none' for the first stage alone "
                       "(default: --rerank-model, BABELRANK_RERANK_MODEL, else the default reranker when it can be loaded)")
        g.add_argument("--backend", default=S, help=f"{', '.join(BACKENDS)} (default auto) [BABELRANK_BACKEND]")
    g.add_argument("--model-dir", default=S, help="folder of local models [BABELRANK_MODEL_DIR]")
    g.add_argument("--neutral", choices=("on", "off"), help="language-neutral scoring (default: the product default)")
    g.add_argument("--dedup", choices=("on", "off", "default"), default="off",
                   help="translation-aware results; off by default, since benchmarks count every translation as "
                   "a document of its own ('on'/'default': collapsed translations rank right after their result)")
    g.add_argument("--expected-languages", type=_languages, help="languages the detector may answer (default: any)")
    g.add_argument("--device", default=S, help="auto, cpu, cuda, cuda:1, mps [BABELRANK_DEVICE]")
    g.add_argument("--top-k", type=_positive, help="chunks fetched per query (default: max(2k, top_k))")
    o = parser.add_argument_group("run")
    o.add_argument("--k", type=_positive, default=20, help="ranking depth scored: map@k (default 20; at least 10)")
    o.add_argument("--limit", type=_positive, help="first N items per language (paragraphs, sentence pairs or queries)")
    o.add_argument("--cache-dir", type=Path, help="cached eval stores (default: BABELRANK_EVAL_CACHE or ~/.cache/babelrank/eval)")
    o.add_argument("--no-cache", action="store_true", help="embed into a temporary store, keep nothing")
    o.add_argument("--no-progress", action="store_true", help="no progress bars")
    o.add_argument("--json", action="store_true", help="print one JSON object instead of a markdown table")
    o.add_argument("--output", type=Path, help="also write the JSON report to this file")


def register(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    """Add the `eval` and `compare` commands (benchmarks as sub-commands) to a CLI's subparsers.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers`` returned.
        parents: parsers whose options every eval and compare parser takes too (the main
            CLI's ``-v``/``-q``).
    """
    parents = list(parents)
    parser = subparsers.add_parser(
        "eval",
        parents=parents,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="measure retrieval quality on benchmarks or your own judgements",
        description="Run a benchmark or your own judgements through the real pipeline (ingest, "
        "language detection, search, rerank) and report recall, MRR, nDCG, mAP, same-language "
        "share of the top 10 and latency, overall and per query language.",
    )
    _benchmarks(parser, compare=False, parents=parents)
    parser = subparsers.add_parser(
        "compare",
        parents=parents,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="compare models, backends and rerankers on one benchmark, side by side",
        description="Run every combination of --model, --backend and --reranker through the real "
        "pipeline on the same benchmark data and print one table: quality metrics, ingest speed, "
        "query latency per stage (p50/p95), index size on disk and embedding dimension. Embeddings "
        "are cached per model, backend and corpus, so a second run embeds nothing.",
        epilog="example:\n  babelrank compare xquad-r --data DIR --languages en,ru --model e5-small --model minilm "
        "--backend torch,onnx-int8 --reranker none --plot compare.png",
    )
    _benchmarks(parser, compare=True, parents=parents)


def _benchmarks(parser: argparse.ArgumentParser, compare: bool, parents: list[argparse.ArgumentParser]) -> None:
    """The benchmark sub-commands of `eval` or `compare`."""
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)

    def add(name: str, handler: Callable[[argparse.Namespace], int], **kwargs: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=parents, **kwargs)
        p.set_defaults(func=_compare if compare else handler)
        return p

    p = add("xquad-r", _xquad_r, help="LAReQA XQuAD-R: questions against all sentences of all languages",
            description="Every question in every language against the sentence pool of all "
            "languages; one relevant sentence per language (LAReQA mAP@20).")
    p.add_argument("--data", type=Path, required=True, help="folder holding <lang>.json")
    p.add_argument("--languages", type=_languages, help="e.g. en,ru,de,es (default: every <lang>.json in --data)")
    _common(p, compare)

    p = add("tatoeba-mixed", _tatoeba_mixed, help="Tatoeba xx->en from a pool of both sides (plus the English-only pool)",
            description="Per language: each xx sentence asks for its English translation in a pool "
            "holding both sides (its own sentence excluded), then in the English side alone.")
    p.add_argument("--data", type=Path, required=True, help="folder holding tatoeba.xxx-eng.xxx / .eng files")
    p.add_argument("--languages", type=_languages, help="ISO 639-3 codes, e.g. ukr,rus (default: every pair in --data)")
    _common(p, compare)

    p = add("xquad", _xquad, help="XQuAD questions against whole paragraphs",
            description="Questions in the query languages against the XQuAD paragraphs of the "
            "document languages; the paragraph in every document language is relevant.")
    p.add_argument("--data", type=Path, required=True, help="folder holding xquad.<lang>.json")
    p.add_argument("--doc-languages", type=_languages, required=True, help="e.g. en,ru")
    p.add_argument("--query-languages", type=_languages, required=True, help="e.g. ru,de,es,en")
    _common(p, compare)

    p = add("xquad-unanswerable", _xquad_unanswerable, help="XQuAD with half the paragraphs removed: does "
            "relevance tell answerable questions from unanswerable ones?",
            description="XQuAD paragraphs of the languages in one collection, with the paragraphs of a random "
            "share of the paragraph positions removed in every language; every question of the languages is asked. "
            "Per query language: AUROC of the top result's relevance (answerable vs unanswerable) and of its "
            "retrieval score, at --min-relevance the share of answerable questions kept (answer in the top 10 "
            "with relevance >= it) and of unanswerable ones refused (nothing in the top 10 reaches it), ECE of the "
            "top result's relevance for 'the top result is the answer', hit@1 and hit@10; also per article split.")
    p.add_argument("--data", type=Path, required=True, help="folder holding xquad.<lang>.json")
    p.add_argument("--languages", type=_languages, default=["en", "ru", "de", "es"],
                   help="document and query languages (default en,ru,de,es)")
    p.add_argument("--removed", type=_share, default=0.5, help="share of paragraph positions removed (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the removed positions (default 0)")
    p.add_argument("--min-relevance", type=probability_arg, help="threshold of kept/refused (default: the setting "
                   f"min_relevance, else {DEFAULT_MIN_RELEVANCE})")
    p.add_argument("--dev-articles", type=int, default=answerability.DEV_ARTICLES,
                   help=f"articles below it are the development split, the rest held out (default "
                   f"{answerability.DEV_ARTICLES}: 0-35 / 36-47)")
    _common(p, compare)

    p = add("judgements", _judgements, help="your own queries and relevant documents",
            description="Without --qrels, --queries is JSONL: {\"query\": ..., \"relevant\": [document "
            "id or passage text, ...], \"id\"?: ..., \"language\"?: ...}. With --qrels (TREC: qid iter "
            "docid relevance), --queries holds the queries (JSONL {id, text, language?} or TSV).")
    p.add_argument("--queries", type=Path, required=True, help="JSONL judgements, or the queries of --qrels")
    p.add_argument("--docs", type=Path, nargs="+", required=True, help="document files and folders")
    p.add_argument("--qrels", type=Path, help="TREC qrels file")
    p.add_argument("--text-field", default="text", help="text field of JSON/JSONL documents (default: text)")
    _common(p, compare)


# --- shared plumbing ------------------------------------------------------------------------


def pipeline_settings(args: argparse.Namespace, **extra: Any) -> Settings:
    """Settings from the eval flags, then the main CLI's flags (--embed-model, --config, ...),
    `BABELRANK_*` variables, the config file and defaults."""
    return settings_from_args(args, embed_model=getattr(args, "model", None),
                              rerank_model=getattr(args, "reranker", None), **extra)


def _dedup_flag(value: str) -> bool | None:
    """``--dedup`` as the runner takes it: ``default`` is the configured mode (`mode_flag`'s ``auto``)."""
    return mode_flag("auto" if value == "default" else value)


class _Pipeline:
    """Settings and models loaded once per command, shared by its runs."""

    def __init__(self, args: argparse.Namespace) -> None:
        if args.k < 10:
            raise ConfigError(f"--k must be at least 10 (recall@10 and ndcg@10), got {args.k}")
        self.args = args
        self.progress = False if args.no_progress or getattr(args, "quiet", False) else None
        self.settings = pipeline_settings(args, progress=self.progress)
        self.neutral = mode_flag(args.neutral)
        self.dedup = _dedup_flag(args.dedup)
        from babelrank.models.bi_encoder import load_bi_encoder

        s = self.settings
        self.encoder = load_bi_encoder(s.embed_model, **s.bi_encoder_options())
        self.reranker = load_reranker(s)
        self.rerank = self.reranker is not None

    def run(self, corpus: EvalCorpus) -> EvalReport:
        a = self.args
        if self.progress is not False:
            print(f"evaluating {corpus.name}: {len(corpus.documents)} documents, {len(corpus.queries)} queries",
                  file=sys.stderr)
        return evaluate(
            corpus, self.settings, rerank=self.rerank, neutral=self.neutral, dedup=self.dedup, k=a.k,
            progress=self.progress, cache_dir=a.cache_dir, cache=not a.no_cache,
            encoder=self.encoder, reranker=self.reranker, top_k=a.top_k,
        )

    @property
    def reranker_name(self) -> str:
        return self.settings.rerank_model if self.rerank else "none"


def _load(what: str, loader: Callable[[], EvalCorpus]) -> EvalCorpus:
    """Call a data loader, turning file and format problems into babelrank errors."""
    try:
        return loader()
    except BabelrankError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SourceError(f"{what}: {exc}") from None


def _print_report(args: argparse.Namespace, report: EvalReport) -> int:
    result = report.as_dict()
    return emit(result, report_text(result), as_json=args.json, path=args.output)


# --- handlers -----------------------------------------------------------------------------


def _available(data: Path, pattern: str, what: str) -> list[str]:
    if not data.is_dir():
        raise SourceError(f"{what} folder not found: {data}")
    langs = sorted(p.name.split(".")[0] for p in data.glob(pattern))
    if not langs:
        raise SourceError(f"no {pattern} files in {data}")
    return langs


def _xquad_r_corpus(args: argparse.Namespace) -> EvalCorpus:
    languages = args.languages or _available(args.data, "*.json", "XQuAD-R")
    return _load("XQuAD-R", lambda: datasets.xquad_r_sentence_pool(args.data, languages, limit=args.limit))


def _xquad_corpus(args: argparse.Namespace) -> EvalCorpus:
    return _load("XQuAD", lambda: datasets.xquad_paragraph_pool(
        args.data, args.doc_languages, args.query_languages, limit=args.limit))


def _unanswerable_corpus(args: argparse.Namespace) -> EvalCorpus:
    return _load("XQuAD", lambda: datasets.xquad_unanswerable_pool(
        args.data, args.languages, removed=args.removed, seed=args.seed, limit=args.limit))


def _min_relevance(args: argparse.Namespace, settings: Settings) -> float:
    """--min-relevance, else the setting, else the product default (the setting 'none' keeps every
    result, and a search's `answerable` then uses the default)."""
    if args.min_relevance is not None:
        return args.min_relevance
    return DEFAULT_MIN_RELEVANCE if settings.min_relevance is None else settings.min_relevance


def _judgements_corpus(args: argparse.Namespace) -> EvalCorpus:
    def load() -> EvalCorpus:
        if args.qrels:
            return user_corpus(args.docs, queries=datasets.load_queries(args.queries),
                               qrels=datasets.load_trec_qrels(args.qrels), text_field=args.text_field)
        return user_corpus(args.docs, judgements=datasets.load_user_judgements(args.queries), text_field=args.text_field)

    corpus = _load("judgements", load)
    return head_queries(corpus, args.limit) if args.limit else corpus


def _xquad_r(args: argparse.Namespace) -> int:
    return _print_report(args, _Pipeline(args).run(_xquad_r_corpus(args)))


def _xquad(args: argparse.Namespace) -> int:
    return _print_report(args, _Pipeline(args).run(_xquad_corpus(args)))


def _judgements(args: argparse.Namespace) -> int:
    return _print_report(args, _Pipeline(args).run(_judgements_corpus(args)))


def _xquad_unanswerable(args: argparse.Namespace) -> int:
    corpus = _unanswerable_corpus(args)
    pipeline = _Pipeline(args)
    run = pipeline.run(corpus)
    report = run.as_dict()
    scores = answerability.score_answerability(corpus, run, dev_articles=args.dev_articles,
                                         min_relevance=_min_relevance(args, pipeline.settings))
    result = {
        "benchmark": "xquad-unanswerable",
        **{key: report[key] for key in ("corpus", "model", "reranker", "neutral", "neutral_active", "dedup")},
        "languages": args.languages,
        "removed": args.removed,
        "seed": args.seed,
        **scores,
        **{key: report[key] for key in ("latency_ms", "ingest", "counts", "store")},
    }
    return emit(result, answerability_text(result), as_json=args.json, path=args.output)


TATOEBA_KEYS = ("recall@5", "recall@10", "mrr@10", "ndcg@10", "same_language@10", "query_language_accuracy")
#: run-level Tatoeba figures: means over the languages
TATOEBA_MEANS = ("accuracy@1", "accuracy@1_english_only", "same_language@10", "recall@10")


def _tatoeba_corpora(args: argparse.Namespace) -> list[tuple[str, EvalCorpus, EvalCorpus]]:
    """(ISO 639-3 code, mixed pool, English-only pool) per language."""
    if args.languages:
        languages = args.languages
    else:
        if not args.data.is_dir():
            raise SourceError(f"Tatoeba folder not found: {args.data}")
        languages = datasets.available_tatoeba_languages(args.data)
        if not languages:
            raise SourceError(f"no tatoeba.xxx-eng.xxx / .eng pairs in {args.data}")
    wrong = [x for x in languages if len(x) != 3]
    if wrong:
        raise ConfigError(f"Tatoeba languages are ISO 639-3 codes as in the file names (e.g. ukr, rus), got {wrong}")
    corpora = []
    for lang in languages:
        mixed = _load("Tatoeba", lambda: datasets.tatoeba_mixed_pool(args.data, lang))
        english = _load("Tatoeba", lambda: datasets.tatoeba_english_only(args.data, lang))
        if args.limit:
            mixed, english = head_tatoeba(mixed, args.limit), head_tatoeba(english, args.limit)
        corpora.append((lang, mixed, english))
    return corpora


def tatoeba_summary(
    runs: Sequence[tuple[str, EvalReport, EvalReport]],
) -> tuple[dict[str, float | None], dict[str, dict[str, Any]]]:
    """Means over the languages (`TATOEBA_MEANS`) and one row per language, from each
    language's (ISO 639-3 code, mixed-pool report, English-only report)."""
    per_language: dict[str, dict[str, Any]] = {}
    for lang, mixed, english in runs:
        m, e = mixed.as_dict(), english.as_dict()
        per_language[lang] = {
            "language": next(iter(m["per_language"])),
            "accuracy@1": m["recall@1"],
            "accuracy@1_english_only": e["recall@1"],
            **{key: m[key] for key in TATOEBA_KEYS if key in m},
            "accuracy@1_lost_to_same_language": round(e["recall@1"] - m["recall@1"], 6),
            "queries": m["queries"],
            "documents": m["ingest"]["documents"],
            "latency_ms_p50": m["latency_ms"]["total"]["p50"],
            "latency_ms_p95": m["latency_ms"]["total"]["p95"],
        }

    def mean(key: str) -> float | None:
        values = [r[key] for r in per_language.values() if isinstance(r.get(key), (int, float))]
        return round(sum(values) / len(values), 6) if values else None

    return {key: mean(key) for key in TATOEBA_MEANS}, per_language


def _tatoeba_mixed(args: argparse.Namespace) -> int:
    corpora = _tatoeba_corpora(args)
    pipeline = _Pipeline(args)
    runs = [(lang, pipeline.run(mixed), pipeline.run(english)) for lang, mixed, english in corpora]
    means, per_language = tatoeba_summary(runs)
    first = runs[0][1].as_dict()
    result = {
        "benchmark": "tatoeba-mixed",
        "model": first["model"],
        "reranker": first["reranker"],
        "neutral": first["neutral"],
        "neutral_active": first["neutral_active"],
        "dedup": first["dedup"],
        "k": args.k,
        **means,
        "per_language": per_language,
        "chunks_embedded": sum(r.ingest["chunks_embedded"] for _, *reports in runs for r in reports),
    }
    lines = [
        header(result) + " (means over languages in the last row)",
        "",
        markdown_table({**per_language, "mean": result}, ("accuracy@1", "accuracy@1_english_only", "recall@10",
                                                          "mrr@10", "same_language@10", "query_language_accuracy", "queries")),
    ]
    return emit(result, "\n".join(lines), as_json=args.json, path=args.output)


# --- compare ------------------------------------------------------------------------------


def _compare_plan(
    args: argparse.Namespace, settings: Settings
) -> tuple[list[EvalCorpus], Summarise | None, tuple[str, ...]]:
    """The corpora of the benchmark, how to summarise one configuration's reports, and the
    main quality metrics (the first is plotted)."""
    ranking = ("ndcg@10", "mrr@10", "recall@10")
    if args.benchmark == "xquad-unanswerable":
        return _unanswerable_plan(args, settings)
    if args.benchmark == "xquad-r":
        return [_xquad_r_corpus(args)], None, (f"map@{args.k}", "recall@1", "recall@10")
    if args.benchmark == "xquad":
        return [_xquad_corpus(args)], None, ranking
    if args.benchmark == "judgements":
        return [_judgements_corpus(args)], None, ranking
    tatoeba = _tatoeba_corpora(args)

    def summarise(reports: Sequence[EvalReport]) -> tuple[dict[str, float | None], dict[str, dict[str, Any]]]:
        return tatoeba_summary([(lang, reports[2 * i], reports[2 * i + 1]) for i, (lang, _, _) in enumerate(tatoeba)])

    return [c for _, mixed, english in tatoeba for c in (mixed, english)], summarise, TATOEBA_MEANS[:2] + ("recall@10",)


def _unanswerable_plan(
    args: argparse.Namespace, settings: Settings
) -> tuple[list[EvalCorpus], Summarise, tuple[str, ...]]:
    """`_compare_plan` of xquad-unanswerable: per configuration the mean and the worst query
    language of AUROC, kept, refused and ECE (`answerability.summary`)."""
    corpus, min_relevance = _unanswerable_corpus(args), _min_relevance(args, settings)

    def summarise(reports: Sequence[EvalReport]) -> tuple[dict[str, float | None], dict[str, dict[str, Any]]]:
        (report,) = reports
        return answerability.summary(answerability.score_answerability(
            corpus, report, min_relevance=min_relevance, dev_articles=args.dev_articles))

    metrics = tuple(f"{name}_{how}" for name in answerability.SUMMARY_METRICS for how in ("mean", "worst"))
    return [corpus], summarise, metrics


def _compare(args: argparse.Namespace) -> int:
    if args.k < 10:
        raise ConfigError(f"--k must be at least 10 (recall@10 and ndcg@10), got {args.k}")
    if args.plot:
        require_matplotlib()
    progress = False if args.no_progress or getattr(args, "quiet", False) else None
    settings = pipeline_settings(args, progress=progress)
    configs = configurations(
        args.models or [],
        [b for group in args.backends or [[settings.backend]] for b in group],
        args.rerankers or [settings.rerank_model],
    )
    corpora, summarise, metrics = _compare_plan(args, settings)
    comparison = compare(
        corpora, settings, configs, metrics=metrics, benchmark=args.benchmark if len(corpora) > 1 else None,
        summarise=summarise, neutral=mode_flag(args.neutral), dedup=_dedup_flag(args.dedup), k=args.k, progress=progress,
        cache_dir=args.cache_dir, cache=not args.no_cache, top_k=args.top_k,
    )
    result = comparison.as_dict()
    markdown = comparison.markdown()
    if args.plot:
        result["plot"] = str(plot_comparison(comparison, args.plot))
        markdown += f"\n\nplot: {result['plot']}"
    return emit(result, markdown, as_json=args.json, path=args.output)

