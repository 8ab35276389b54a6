"""Quality of a model tuned by `babelrank tune` on shared data, measured on data it never saw.

    python benchmarks/tune_quality.py --model ../shared/models/multilingual-e5-small-q4 \
        --tatoeba ../shared/data/tatoeba --xquad ../shared/data/xquad --xquad-r ../shared/data/xquad-r \
        --method layers --time-budget 600 --output /tmp/tuned-layers
    python benchmarks/tune_quality.py ... --method contrastive --time-budget 900 --output /tmp/tuned-contrastive

Training data (`babelrank.tune.data`): Tatoeba pairs of `--tatoeba-languages` (`read_parallel`)
and XQuAD question-paragraph pairs between the `--languages` of articles 0-35 only
(`xquad_pairs`, its default); `--held-out` of them (seeded, grouped) are the guard's
held-out part. Then `babelrank.tune.api.tune` (product defaults but the options given here;
frozen word embeddings; `min_gain=-1` so the model is always installed), and three
measurements of the base model and the tuned one, both loaded with `load_bi_encoder(...,
backend="torch")`:

* the guard's table (held-out Tatoeba translation accuracy and XQuAD retrieval per language pair);
* Tatoeba xx->eng accuracy over all lines of `--tatoeba-eval` languages that were not
  trained on (nearest English sentence by cosine, both sides read as passages);
* XQuAD-R mAP@20 and R@1 per query language on articles 36-47 only (`xquad_r_sentence_pool`
  filtered to the sentences of those articles and the questions whose answers are there),
  through the product's pipeline (`babelrank.evaluation.runner.evaluate`: ingest into a
  temporary store, language-neutral scoring as the product defaults, no reranker, no dedup).

Prints markdown tables, the wall time of each step and the load average.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from babelrank.config import Settings
from babelrank.evaluation.datasets import (
    EvalCorpus,
    load_tatoeba,
    xquad_r_sentence_pool,
)
from babelrank.evaluation.runner import evaluate
from babelrank.models.bi_encoder import load_bi_encoder
from babelrank.tune.api import tune
from babelrank.tune.data import read_parallel, split_held_out, xquad_pairs
from babelrank.tune.examples import TrainingData
from babelrank.tune.trainer import TrainOptions

EVAL_ARTICLES = range(36, 48)


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def held_out_articles(corpus: EvalCorpus, articles: range) -> EvalCorpus:
    """The sentences of `articles` and the questions whose relevant sentences are all there."""
    def article(doc_id: str) -> int:
        return int(doc_id.split(":")[2])  # xquad-r:<lang>:<article>:<paragraph>:<sentence>

    docs = [d for d in corpus.documents if article(d.id) in articles]
    kept = {d.id for d in docs}
    queries = [q for q in corpus.queries if corpus.qrels[q.id] and corpus.qrels[q.id] <= kept]
    qrels = {q.id: corpus.qrels[q.id] for q in queries}
    return EvalCorpus(f"{corpus.name}:articles {articles.start}-{articles.stop - 1}", docs, queries, qrels)


def tatoeba_accuracy(encoder: Any, folder: Path, lang3: str) -> float:
    pair = load_tatoeba(folder, lang3)
    src = encoder.encode_documents(list(pair.source), batch_size=64)
    eng = encoder.encode_documents(list(pair.english), batch_size=64)
    return float(np.mean(np.argmax(src @ eng.T, axis=1) == np.arange(len(src))))


def measure(name: str, folder: str, corpus: EvalCorpus, args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    encoder = load_bi_encoder(folder, device="cpu", backend="torch")
    tatoeba = {lang: tatoeba_accuracy(encoder, args.tatoeba, lang) for lang in args.tatoeba_eval.split(",") if lang}
    settings = Settings().replace(embed_model=folder, backend="torch", device="cpu")
    report = evaluate(corpus, settings, rerank=False, neutral=None, k=20, dedup=False, progress=False,
                      cache=False, encoder=encoder)
    return {"name": name, "tatoeba": tatoeba, "metrics": report.metrics, "per_language": report.per_language,
            "seconds": time.perf_counter() - start, "load": load()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--tatoeba", type=Path, required=True)
    parser.add_argument("--xquad", type=Path, required=True)
    parser.add_argument("--xquad-r", type=Path, required=True)
    parser.add_argument("--output", type=Path, help="the tuned model's folder (a re-run resumes); needed unless --tuned")
    parser.add_argument("--method", default="contrastive", choices=("contrastive", "distill", "layers"))
    parser.add_argument("--languages", default="en,ru,de,es", help="XQuAD training and XQuAD-R evaluation languages")
    parser.add_argument("--tatoeba-languages", default="rus,deu,fra", help="Tatoeba pairs trained on ('' = none)")
    parser.add_argument("--tatoeba-eval", default="ukr,slk", help="Tatoeba pairs measured (not trained on)")
    parser.add_argument("--held-out", type=float, default=0.1)
    parser.add_argument("--time-budget", type=float, default=600)
    parser.add_argument("--max-steps", type=int, help="the schedule's length (default: one epoch)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--skip-base", action="store_true", help="do not measure the base model again")
    parser.add_argument("--tuned", type=Path, help="measure this already tuned model folder; no training")
    args = parser.parse_args()
    languages = args.languages.split(",")
    trained = {x for x in args.tatoeba_languages.split(",") if x}
    if trained & set(args.tatoeba_eval.split(",")):
        parser.error("--tatoeba-eval must not name a trained Tatoeba language")
    if not (args.tuned or args.output):
        parser.error("give --output (train) or --tuned (measure a tuned model)")
    steps: list[tuple[str, float, str]] = []

    if args.tuned:
        corpus = held_out_articles(xquad_r_sentence_pool(args.xquad_r, languages), EVAL_ARTICLES)
        result = None
    else:
        corpus, result = train_model(args, languages, trained, steps)
    measured = []
    for name, folder in (("base", args.model), ("tuned", str(args.tuned or result.model_path))):
        if name == "base" and args.skip_base:
            continue
        measured.append(measure(name, folder, corpus, args))
        steps.append((f"measure {name}", measured[-1]["seconds"], measured[-1]["load"]))
    if result is not None:
        counts = result.counts
        print(f"method {args.method}; training examples {sum(sum(v.values()) for v in counts.values())} "
              f"({', '.join(f'{s}: {sum(v.values())}' for s, v in counts.items())}); "
              f"batch {args.batch_size}, lr {args.learning_rate}, max length {args.max_length}, "
              f"time budget {args.time_budget:.0f} s; {os.cpu_count()} CPUs\n")
        print("Guard (held-out part of the training sources):\n")
        print(result.report.markdown())
    print_tables(args, languages, corpus, measured, steps)


def train_model(args: argparse.Namespace, languages: list[str], trained: set[str],
                steps: list[tuple[str, float, str]]) -> tuple[EvalCorpus, Any]:
    start = time.perf_counter()
    data = TrainingData()
    if trained:
        data.extend(read_parallel(args.tatoeba, languages=sorted(trained)))
    data.extend(xquad_pairs(args.xquad, languages))  # articles 0-35
    train, held = split_held_out(data, args.held_out, 42)
    corpus = held_out_articles(xquad_r_sentence_pool(args.xquad_r, languages), EVAL_ARTICLES)
    steps.append(("data", time.perf_counter() - start, load()))

    start = time.perf_counter()
    options = TrainOptions(batch_size=args.batch_size, learning_rate=args.learning_rate, max_steps=args.max_steps,
                           time_budget=args.time_budget, max_length=args.max_length, save_steps=10_000,
                           progress=False, device="cpu")
    result = tune(args.model, train, held, args.output, method=args.method, options=options, min_gain=-1.0)
    steps.append((f"tune ({result.run.steps} steps, {result.run.stopped_by}, training {result.run.seconds:.0f} s, "
                  f"{result.run.rows_per_second:.1f} rows/s)", time.perf_counter() - start, load()))
    return corpus, result


def print_tables(args: argparse.Namespace, languages: list[str], corpus: EvalCorpus, measured: list[dict[str, Any]],
                 steps: list[tuple[str, float, str]]) -> None:
    print(f"\nXQuAD-R {'+'.join(languages)}, articles 36-47 ({len(corpus.documents)} sentences, "
          f"{len(corpus.queries)} questions), Tatoeba xx->eng accuracy (all lines, languages not trained on):\n")
    tatoeba_langs = [x for x in args.tatoeba_eval.split(",") if x]
    header = ["model", "mAP@20 all", "R@1 all", *[f"mAP@20 / R@1 {q}" for q in languages],
              *[f"Tatoeba {x}→eng" for x in tatoeba_langs]]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for m in measured:
        cells = [m["name"], f"{m['metrics']['map@20']:.3f}", f"{m['metrics']['recall@1']:.3f}"]
        cells += [f"{m['per_language'][q]['map@20']:.3f} / {m['per_language'][q]['recall@1']:.3f}"
                  if q in m["per_language"] else "–" for q in languages]
        cells += [f"{m['tatoeba'][x]:.3f}" for x in tatoeba_langs]
        print("| " + " | ".join(cells) + " |")
    print("\n| step | wall s | load avg after |\n|---|---|---|")
    for what, seconds, after in steps:
        print(f"| {what} | {seconds:.0f} | {after} |")


if __name__ == "__main__":
    main()
