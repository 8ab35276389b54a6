"""The commands that work on a collection: ``ingest``, ``query``, ``info`` and ``delete``.

Each takes the parsed command line and returns the exit code; failures are raised (the
entry point prints them as one line).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from babelrank.apps.cli.errors import UsageError
from babelrank.apps.cli.output import (
    PROG,
    empty_result_text,
    info_text,
    ingest_text,
    results_table,
)
from babelrank.apps.cli.settings import settings_from_args
from babelrank.config import mode_flag
from babelrank.query.filters import validate_where
from babelrank.schema import result_dict

if TYPE_CHECKING:
    from babelrank.index import BabelIndex

logger = logging.getLogger(__name__)


def open_index(args: argparse.Namespace) -> "BabelIndex":
    """A `BabelIndex` configured from the command line (close it when done)."""
    # imported here: `babelrank --help` need not load the models' libraries
    from babelrank.index import BabelIndex

    settings = settings_from_args(args)
    logger.info("opening collection %r (%s)", settings.collection,
                f"chroma at {settings.chroma_host}:{settings.chroma_port}" if settings.chroma_host else settings.store_path)
    return BabelIndex(settings)


def cmd_ingest(args: argparse.Namespace) -> int:
    """``babelrank ingest PATH ...``: ingest files and folders; print the report."""
    for raw in args.paths:
        if not Path(raw).expanduser().exists():
            raise FileNotFoundError(f"no such file or folder: {raw}")
    progress = False if args.quiet else None
    with open_index(args) as index:
        if progress is None:
            progress = index.settings.progress if index.settings.progress is not None else sys.stderr.isatty()
        report = index.ingest(args.paths, include=args.include or ("*",), exclude=args.exclude or (),
                              prune=args.prune, text_field=args.text_field, progress=progress)
        where = f"collection {index.store.name!r} at {index.store.location}"
    print(json.dumps(report.as_dict(), ensure_ascii=False) if args.json else ingest_text(report, where))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """``babelrank query TEXT``: search; print the query language and the results."""
    options = query_options(args)
    with open_index(args) as index:
        result = index.search(args.text, **options)
    lang, conf = result.query_language, float(result.query_language_confidence)
    if args.json:
        for rank, node in enumerate(result.nodes, 1):
            print(json.dumps({**result_dict(rank, node), "query_language": lang, "query_language_confidence": conf,
                              "answerable": result.answerable}, ensure_ascii=False))
        if not args.quiet:
            print(f"query language: {lang} ({conf:.2f})", file=sys.stderr)
            if not result.nodes:
                print(empty_result_text(result.answerable), file=sys.stderr)
        return 0
    print(f"Query language: {lang} (confidence {conf:.2f})")
    if not result.nodes:
        print(empty_result_text(result.answerable))
    print(results_table(result.nodes))
    return 0


def query_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `BabelIndex.search` from ``query``'s flags.

    Raises:
        UsageError: an empty query, a ``--where`` that is not JSON, a value out of range.
        FilterError: a malformed ``--where`` filter.
    """
    if not args.text.strip():
        raise UsageError("the query is empty")
    where = None
    if args.where:
        try:
            where = validate_where(json.loads(args.where))
        except json.JSONDecodeError as exc:
            raise UsageError(f"--where is not valid JSON: {exc}") from None
    if args.dedup_threshold is not None and not -1.0 <= args.dedup_threshold <= 1.0:
        raise UsageError(f"--dedup-threshold is a cosine in [-1, 1], got {args.dedup_threshold}")
    if args.prefer_margin is not None and args.prefer_margin < 0:
        raise UsageError(f"--prefer-margin must be >= 0, got {args.prefer_margin}")
    options: dict[str, Any] = {
        "top_k": args.k, "top_n": args.n, "languages": _flat(args.lang), "where": where,
        "rerank": False if args.no_rerank else None, "min_score": args.min_score,
        "dedup": mode_flag(args.dedup), "dedup_threshold": args.dedup_threshold,
        "neutral": mode_flag(args.neutral), "prefer_languages": _flat(args.prefer),
        "answer_language": args.answer_language,
    }
    if args.prefer_margin is not None:
        options["prefer_margin"] = args.prefer_margin
    if hasattr(args, "min_relevance"):  # given (None = keep all); absent = the setting
        options["min_relevance"] = args.min_relevance
    return options


def _flat(values: Iterable[Sequence[str]] | None) -> list[str] | None:
    """The codes of a repeated list option, in order, once each (None when none were given)."""
    return list(dict.fromkeys(code for v in values or () for code in v)) or None


def cmd_info(args: argparse.Namespace) -> int:
    """``babelrank info``: print the collection's statistics (and documents with ``--documents``)."""
    with open_index(args) as index:
        info = index.info()
        for name in ("rerank_model", "backend", "language_backend"):
            info.setdefault(name, getattr(index.settings, name))
        documents = index.documents() if args.documents else None
    if args.json:
        if documents is not None:
            info["document_ids"] = documents
        print(json.dumps(info, ensure_ascii=False, default=str))
    else:
        print(info_text(info, documents))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """``babelrank delete DOC_ID ...``: delete documents; exit code 1 when an id is not found."""
    missing = []
    with open_index(args) as index:
        for doc_id in args.doc_ids:
            removed = 0
            for candidate in _id_candidates(doc_id):
                removed = index.delete([candidate])
                if removed:
                    print(f"deleted {candidate} ({removed} chunk{'s' if removed != 1 else ''})")
                    break
            if not removed:
                missing.append(doc_id)
    for doc_id in missing:
        print(f"{PROG}: not found: {doc_id} (see `{PROG} info --documents`)", file=sys.stderr)
    return 1 if missing else 0


def _id_candidates(doc_id: str) -> list[str]:
    """The id as given, then (for file ids) the absolute path the ingest used."""
    out = [doc_id]
    path, sep, record = doc_id.partition("#")
    p = Path(path).expanduser()
    if p.exists():
        resolved = str(p.resolve()) + (sep + record if sep else "")
        if resolved != doc_id:
            out.append(resolved)
    return out
