"""``babelrank reindex``: re-embed a collection with another model and switch to it when complete.

The collection's current model is not loaded (`babelrank.index.reindex_collection`), so a
collection whose model is gone can still be moved to another one. See `babelrank.ingest.reindex`
for the copy and `babelrank.store.aliases` for the switch.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from babelrank.apps.cli.errors import UsageError
from babelrank.apps.cli.output import PROG, format_table
from babelrank.apps.cli.settings import settings_from_args

EPILOG = """examples:
  babelrank reindex --to-model e5-base
  babelrank reindex --to-model ./models/my-tuned-e5 --keep-old --collection docs

Queries keep answering from the old collection until the new one is complete; an interrupted
run (Ctrl-C, a killed process) is continued by running the same command again. Afterwards the
collection opens with the new model without --embed-model."""


def add_reindex(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the ``reindex`` command to the parser's subcommands."""
    p = sub.add_parser("reindex", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="re-embed the collection with another model",
                       description="Re-embed every chunk of the collection with another embedding model into a "
                       "new Chroma collection, then switch the collection's name to it in one step and delete the "
                       "old one (unless --keep-old). The collection remembers the new model.", epilog=EPILOG)
    p.add_argument("--to-model", required=True, metavar="MODEL",
                   help="the new embedding model: preset (e5-small, e5-base, labse, minilm), hub id or folder")
    p.add_argument("--keep-old", action="store_true", help="keep the old Chroma collection after the switch")
    p.add_argument("--batch-size", type=int, metavar="N",
                   help="chunks per model call (default: setting embed_batch_size; a continued run keeps its first)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_reindex)


def cmd_reindex(args: argparse.Namespace) -> int:
    """``babelrank reindex --to-model MODEL``: re-embed, switch, print the report."""
    # imported here: `babelrank --help` need not load the models' libraries
    from babelrank.index import reindex_collection

    settings = settings_from_args(args)
    progress = False if args.quiet else settings.progress if settings.progress is not None else sys.stderr.isatty()
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    report = reindex_collection(settings, args.to_model, keep_old=args.keep_old, batch_size=args.batch_size,
                                progress=progress)
    print(json.dumps(report.as_dict(), ensure_ascii=False) if args.json else reindex_text(report.as_dict()))
    return 0


def reindex_text(report: dict[str, Any]) -> str:
    """A `ReindexReport` (as a dict) as a line and a table of counts."""
    if not report["switched"]:
        return f"collection {report['collection']!r} already uses {report['model']}: nothing to do"
    rows = [
        ("model", report["model"]),
        ("chunks", report["chunks"]),
        ("embedded now", report["embedded"]),
        ("written before (resumed)", report["resumed"]),
        ("removed (gone from the source)", report["removed"]),
        ("batches", f"{report['batches']} of {report['batch_size']}"),
        ("truncated", report["truncated"]),
        ("Chroma collection", report["target"]),
        ("old Chroma collection", f"{report['source']} ({'deleted' if report['dropped'] else 'kept'})"),
        ("seconds", round(report["seconds"], 1)),
    ]
    return f"{PROG}: collection {report['collection']!r} now uses {report['model']}\n" + format_table(rows, align="ll")
