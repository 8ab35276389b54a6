"""``babelrank tune``: fine-tune the embedding model with a held-out guard (`babelrank.tune.api.tune`).

    babelrank tune --pairs pairs.jsonl --output models/tuned --max-steps 300
    babelrank tune --parallel ru-en:ru_en.tsv --method distill --output models/distilled --time-budget 3600
    babelrank tune --mine --hard-negatives --output models/mined --require-improvement
    babelrank tune --parallel data/tatoeba --mine --chunks 5000 --method layers --min-gain -0.02 --output models/half

The base model is the configured embedding model (``--embed-model``, ``BABELRANK_EMBED_MODEL``).
Training data come from ``--pairs``, ``--parallel`` and ``--mine`` (`babelrank.tune.data`,
`babelrank.tune.mining`); a seeded ``--held-out`` fraction of them is kept for the guard. The
before/after table is printed and saved in the output folder; exit code 3 when
``--require-improvement`` refuses the tuned model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from babelrank.apps.cli.errors import UsageError
from babelrank.apps.cli.settings import settings_from_args
from babelrank.errors import NotImprovedError

METHOD_CHOICES = ("contrastive", "distill", "layers")


def add_tune_command(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``tune`` (its options and handler) to the main parser's subcommands."""
    p = sub.add_parser(
        "tune", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="fine-tune the embedding model (held-out guard)",
        description="Fine-tune the embedding model (--embed-model) on your pairs, parallel text or pairs mined "
        "from the collection; measure a held-out part before and after; write a model folder usable as "
        "--embed-model. Exit codes: 0 ok, 1 failure, 2 bad usage, 3 refused by --require-improvement.",
        epilog="examples:\n  babelrank tune --pairs pairs.jsonl --output models/tuned --max-steps 300\n"
        "  babelrank tune --parallel ru-en:ru_en.tsv --method distill --output models/distilled\n"
        "  babelrank tune --mine --hard-negatives --output models/mined --require-improvement")
    d = p.add_argument_group("data")
    d.add_argument("--pairs", action="append", type=Path, metavar="FILE",
                   help="your (query, positive[, negative]) pairs: JSONL or TSV (repeatable)")
    d.add_argument("--parallel", action="append", metavar="SPEC",
                   help="parallel text: a Tatoeba folder or file, or SRC-TGT:FILE.tsv (repeatable)")
    d.add_argument("--mine", action="store_true", help="mine translation pairs from the collection")
    d.add_argument("--hard-negatives", action="store_true", help="with --mine: add a mined hard negative to each pair")
    d.add_argument("--chunks", type=int, default=0, metavar="N",
                   help="distill/layers: also fit up to N of the collection's chunks (default 0)")
    d.add_argument("--held-out", type=float, default=0.1, metavar="FRACTION", help="share kept for the guard (default 0.1)")
    m = p.add_argument_group("training")
    m.add_argument("--output", type=Path, required=True, metavar="DIR", help="the tuned model's folder")
    m.add_argument("--method", choices=METHOD_CHOICES, default="contrastive", help="default: contrastive")
    m.add_argument("--max-steps", type=int, metavar="N", help="stop after N steps (default: one epoch)")
    m.add_argument("--epochs", type=float, default=1.0, metavar="E", help="passes over the data (default 1)")
    m.add_argument("--time-budget", type=float, metavar="SECONDS", help="stop (and save) when this much time is spent")
    m.add_argument("--batch-size", type=int, default=16, metavar="N", help="examples per step (default 16)")
    m.add_argument("--mini-batch-size", type=int, default=32, metavar="N",
                   help="contrastive: above this batch size, the cached loss in mini-batches of N (default 32)")
    m.add_argument("--learning-rate", type=float, default=2e-5, metavar="LR", help="default 2e-5")
    m.add_argument("--save-steps", type=int, default=100, metavar="N", help="checkpoint every N steps (default 100)")
    m.add_argument("--seed", type=int, default=42, help="default 42")
    m.add_argument("--train-embeddings", action="store_true", help="also train the word-embedding matrix (memory)")
    m.add_argument("--max-length", type=int, metavar="TOKENS",
                   help="truncate training texts to this many tokens (memory; default: the model's maximum)")
    g = p.add_argument_group("guard")
    g.add_argument("--require-improvement", action="store_true",
                   help="install the model only when the held-out mean rises by more than --min-gain; else exit 3")
    g.add_argument("--min-gain", type=float, default=0.0, metavar="G",
                   help="rise of the held-out mean that counts as better (negative: loss accepted; default 0)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:
    """``babelrank tune``: read the data, tune, print the table and how to use the model."""
    from babelrank.tune.api import describe, tune
    from babelrank.tune.data import split_held_out
    from babelrank.tune.trainer import TrainOptions

    if not (args.pairs or args.parallel or args.mine or args.chunks):
        raise UsageError("give training data: --pairs FILE, --parallel SPEC and/or --mine")
    settings = settings_from_args(args)
    data, texts = _training_data(args, settings)
    train, held = split_held_out(data, args.held_out, args.seed)
    progress = not args.quiet and (settings.progress if settings.progress is not None else sys.stderr.isatty())
    options = TrainOptions(
        batch_size=args.batch_size, mini_batch_size=args.mini_batch_size, learning_rate=args.learning_rate,
        epochs=args.epochs, max_steps=args.max_steps, time_budget=args.time_budget, save_steps=args.save_steps,
        seed=args.seed, device=settings.device, train_embeddings=args.train_embeddings,
        max_length=args.max_length, progress=progress)
    try:
        result = tune(str(settings.embed_model), train, held, args.output, method=args.method, texts=texts,
                      options=options, require_improvement=args.require_improvement, min_gain=args.min_gain,
                      model_dir=settings.model_dir, trust_remote_code=settings.trust_remote_code)
    except NotImprovedError as exc:
        if exc.result is not None:
            _print(exc.result, describe, args.json)
        raise
    _print(result, describe, args.json)
    return 0


def _training_data(args: argparse.Namespace, settings: Any) -> tuple[Any, list[str]]:
    """The examples of every source asked for, and the collection's chunks for ``--chunks``."""
    from babelrank.tune.data import read_pairs, read_parallel
    from babelrank.tune.examples import TrainingData

    data = TrainingData()
    for path in args.pairs or ():
        data.extend(read_pairs(path))
    for spec in args.parallel or ():
        data.extend(read_parallel(spec))
    texts: list[str] = []
    if args.mine or args.chunks:
        from babelrank.index import BabelIndex
        from babelrank.tune.mining import mine_from_index

        with BabelIndex(settings) as index:
            if args.mine:
                data.extend(mine_from_index(index, hard_negatives=args.hard_negatives))
            texts = _collection_chunks(index, args.chunks)
    for source, pairs in data.counts().items():
        print(f"{source}: {sum(pairs.values())} examples ({', '.join(f'{k} {v}' for k, v in pairs.items())})",
              file=sys.stderr)
    return data, texts


def _collection_chunks(index: Any, limit: int) -> list[str]:
    """Up to `limit` chunk texts of the index's collection, in stored order."""
    texts: list[str] = []
    for ids, _, _ in index.store.iter_all():
        if len(texts) >= limit:
            break
        stored = index.store.get(ids[: limit - len(texts)], include_embeddings=False)
        texts += [text for text, _, _ in stored.values()]
    return texts


def _print(result: Any, describe: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(describe(result), ensure_ascii=False))
        return
    run = result.run
    print(f"{result.method}: {run.steps} steps ({run.stopped_by}), {run.seconds:.0f} s, "
          f"{run.rows_per_second:.1f} rows/s" + (f", resumed from {run.resumed_from}" if run.resumed_from else ""))
    print(result.report.markdown())
    if result.installed:
        print(f"\nInstalled in {result.output}. Use it:\n"
              f"  babelrank ingest DOCS --embed-model {result.output} --collection NEW_NAME\n"
              f"  babelrank reindex --to-model {result.output}    # re-embed the existing collection")
    else:
        print(f"\nNot installed: {result.output} is unchanged; the refused model is in {result.model_path}.")
