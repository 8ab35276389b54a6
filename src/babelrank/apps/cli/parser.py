"""The ``babelrank`` argument parser: the configuration and output options every command
takes, and one small function per command that adds its own options and handler."""

from __future__ import annotations

import argparse

from babelrank.apps.cli.argtypes import (
    count_arg,
    language_arg,
    languages_arg,
    relevance_arg,
)
from babelrank.apps.cli.commands import cmd_delete, cmd_info, cmd_ingest, cmd_query
from babelrank.apps.cli.evaluation import register as register_eval_commands
from babelrank.apps.cli.output import PROG
from babelrank.apps.cli.reindex import add_reindex
from babelrank.apps.cli.serve import cmd_serve
from babelrank.apps.cli.tune import add_tune_command
from babelrank.config import BACKENDS, CONFIG_ENV, MODES, TOP_K_MAX, TOP_N_MAX, VERSION

LANGUAGE_BACKENDS = ("auto", "fast", "langdetect", "lingua")
FORMATTER = argparse.RawDescriptionHelpFormatter
EPILOG = """examples:
  babelrank ingest docs/ --include '*.md' --prune
  babelrank query 'червоний автомобіль' -n 3 --lang uk,ru
  babelrank info
  babelrank serve --port 8000

Run 'babelrank COMMAND --help' for a command's options. Exit codes: 0 ok, 1 failure, 2 bad usage/input."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser: ingest, query, info, delete, serve, eval and compare."""
    common = common_parser()
    parser = argparse.ArgumentParser(
        prog=PROG, parents=[common], formatter_class=FORMATTER, epilog=EPILOG,
        description="Multilingual retrieve-and-rerank: ingest documents in any language, query them in any language.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for add in (_add_ingest, _add_query, _add_info, _add_delete, add_reindex, _add_serve, add_tune_command):
        add(sub, common)
    register_eval_commands(sub, parents=[add_output_options(argparse.ArgumentParser(add_help=False))])
    return parser


def common_parser() -> argparse.ArgumentParser:
    """Options every command takes (defaults suppressed, so they may come before or after the command)."""
    common = argparse.ArgumentParser(add_help=False)
    S = argparse.SUPPRESS
    g = common.add_argument_group("configuration (flags > BABELRANK_* env vars > --config file > defaults)")
    g.add_argument("--config", metavar="FILE", default=S,
                   help=f"TOML or JSON file of settings (keys = setting names, e.g. embed_model); env {CONFIG_ENV}")
    g.add_argument("--embed-model", metavar="NAME", default=S,
                   help="embedding model: preset (e5-small, e5-base, labse, minilm), hub id or folder [BABELRANK_EMBED_MODEL]")
    g.add_argument("--rerank-model", metavar="NAME", default=S,
                   help="cross-encoder: preset, hub id, folder, 'auto' or 'none' [BABELRANK_RERANK_MODEL]")
    g.add_argument("--model-dir", metavar="DIR", default=S, help="folder of local models, for offline use [BABELRANK_MODEL_DIR]")
    g.add_argument("--device", metavar="DEV", default=S, help="auto, cpu, cuda, cuda:1, mps [BABELRANK_DEVICE]")
    g.add_argument("--store", metavar="PATH", default=S, help="embedded Chroma store folder [BABELRANK_STORE_PATH]")
    g.add_argument("--chroma-host", metavar="HOST", default=S,
                   help="use a Chroma server (`chroma run`) instead of --store [BABELRANK_CHROMA_HOST]")
    g.add_argument("--chroma-port", metavar="PORT", type=int, default=S, help="Chroma server port [BABELRANK_CHROMA_PORT]")
    g.add_argument("--collection", metavar="NAME", default=S, help="collection name [BABELRANK_COLLECTION]")
    g.add_argument("--backend", choices=BACKENDS, default=S,
                   help="inference backend of both models: torch, onnx, onnx-int8 (CPU) [BABELRANK_BACKEND]")
    g.add_argument("--language-backend", choices=LANGUAGE_BACKENDS, default=S,
                   help="language detector: auto, fast, langdetect, lingua [BABELRANK_LANGUAGE_BACKEND]")
    g.add_argument("--expected-languages", type=languages_arg, metavar="CODES", default=S,
                   help="languages the collection holds, e.g. uk,ru,en; detection answers only these "
                   "(or und) [BABELRANK_EXPECTED_LANGUAGES]")
    add_output_options(common)
    return common


def add_output_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``-v``/``--verbose`` and ``-q``/``--quiet`` (defaults suppressed, as in `common_parser`); returns `parser`."""
    S = argparse.SUPPRESS
    o = parser.add_argument_group("output")
    o.add_argument("-v", "--verbose", action="count", default=S, help="more logging (-vv: debug); tracebacks on errors")
    o.add_argument("-q", "--quiet", action="store_true", default=S, help="only results and errors; no progress bars")
    return parser


def _add_ingest(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ingest", parents=[common], formatter_class=FORMATTER, help="ingest files and folders",
                       description="Ingest files and folders (recursive; .txt .md .html .json .jsonl .pdf). "
                       "Re-running is cheap: unchanged documents are skipped, changed ones replaced.",
                       epilog="example:\n  babelrank ingest examples/data --exclude '*.jsonl' --prune")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    p.add_argument("--include", action="append", metavar="GLOB", help="only files matching (repeatable; e.g. '*.md', 'uk/*')")
    p.add_argument("--exclude", action="append", metavar="GLOB", help="skip files matching (repeatable)")
    p.add_argument("--prune", action="store_true", help="delete stored documents from these folders whose files are gone")
    p.add_argument("--text-field", default="text", metavar="NAME", help="text field of JSON/JSONL records (default: text)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_ingest)


def _add_query(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("query", parents=[common], formatter_class=FORMATTER, help="search the collection",
                       description="Search the collection. Prints the detected query language and a table "
                       "(or JSON lines with --json).",
                       epilog="examples:\n  babelrank query 'де купити квитки на потяг?' -n 3\n"
                       "  babelrank query 'bicycle repair' --lang uk,ru --json\n"
                       "  babelrank query 'train tickets' --answer-language uk --dedup on --neutral off")
    p.add_argument("text", help="the query, in any language")
    p.add_argument("-k", "--top-k", dest="k", type=count_arg(TOP_K_MAX), metavar="K",
                   help=f"candidates fetched before rerank, 1..{TOP_K_MAX} (default: setting top_k)")
    p.add_argument("-n", "--top-n", dest="n", type=count_arg(TOP_N_MAX), metavar="N",
                   help=f"results shown, 1..{TOP_N_MAX} (default: setting top_n)")
    p.add_argument("--lang", "--languages", dest="lang", action="append", type=languages_arg, metavar="CODES",
                   help="only chunks in these languages, e.g. uk,ru (repeatable; 'und' = undetermined)")
    p.add_argument("--where", metavar="JSON", help="Chroma metadata filter, e.g. '{\"topic\": \"places\"}'")
    p.add_argument("--min-score", type=float, metavar="S", help="drop results scoring lower")
    p.add_argument("--min-relevance", type=relevance_arg, metavar="P", default=argparse.SUPPRESS,
                   help="drop results whose relevance (calibrated probability that the chunk is relevant) "
                   "is lower, 0..1, or 'none' to keep all (default: setting min_relevance, 0.5)")
    p.add_argument("--no-rerank", action="store_true", help="skip the cross-encoder")
    p.add_argument("--prefer", "--prefer-languages", dest="prefer", action="append", type=languages_arg,
                   metavar="CODES", help="rank results in these languages first unless another scores more "
                   "than --prefer-margin higher (repeatable)")
    p.add_argument("--prefer-margin", type=float, metavar="M",
                   help="how far a preferred-language result may trail and still rank first (default 0.05)")
    p.add_argument("--answer-language", type=language_arg, metavar="CODE",
                   help="preferred like --prefer, and the version shown when translations are merged")
    p.add_argument("--dedup", choices=MODES, help="merge translations / near duplicates: on, off, or auto "
                   "(the configured mode; default)")
    p.add_argument("--dedup-threshold", type=float, metavar="T",
                   help="centred cosine in [-1, 1] at which results merge (default: the model's)")
    p.add_argument("--neutral", choices=MODES, help="language-neutral scoring: on, off, or auto "
                   "(the configured mode; default)")
    p.add_argument("--json", action="store_true", help="one JSON object per result (JSON lines)")
    p.set_defaults(func=cmd_query)


def _add_info(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("info", parents=[common], formatter_class=FORMATTER, help="collection statistics",
                       description="Collection statistics: chunks per language, model, dimension, store.")
    p.add_argument("--documents", action="store_true", help="also list document ids and sources")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)


def _add_delete(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("delete", parents=[common], formatter_class=FORMATTER, help="delete documents by id",
                       description="Delete documents by id (a file's id is its absolute path; a relative path "
                       "to an existing file is accepted too). Exit code 1 when an id is not found.",
                       epilog="example:\n  babelrank delete examples/data/en/library.txt 'notes.jsonl#market'")
    p.add_argument("doc_ids", nargs="+", metavar="DOC_ID")
    p.set_defaults(func=cmd_delete)


def _add_serve(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], formatter_class=FORMATTER, help="run the HTTP service",
                       description="Run the HTTP API (docs at /docs). Models load once at start-up. "
                       "Auth: set BABELRANK_API_TOKEN to require 'Authorization: Bearer <token>'. "
                       "An embedded store serves one process; for --workers > 1 use a Chroma server.",
                       epilog="examples:\n  babelrank serve --port 8000\n"
                       "  BABELRANK_API_TOKEN=s3cret babelrank serve --host 0.0.0.0 --chroma-host localhost "
                       "--chroma-port 8001 --workers 4")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (> 1 needs --chroma-host)")
    p.add_argument("--max-body-bytes", type=int, metavar="N", help="largest request body (default 10 MiB) [BABELRANK_MAX_BODY_BYTES]")
    p.add_argument("--max-query-chars", type=int, metavar="N", help="longest query (default 2000) [BABELRANK_MAX_QUERY_CHARS]")
    p.set_defaults(func=cmd_serve)
