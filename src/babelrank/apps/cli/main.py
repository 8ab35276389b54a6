"""The ``babelrank`` command line: ingest, query, info, delete, serve (and eval when installed).

Configuration precedence: command-line flags > ``BABELRANK_*`` environment variables >
config file (``--config FILE`` or ``BABELRANK_CONFIG``; TOML or JSON, keys = `Settings`
field names) > defaults.

Exit codes: 0 success, 1 failure, 2 bad usage or input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from babelrank.config import (
    BACKENDS,
    ENV_PREFIX,
    MODES,
    TOP_K_MAX,
    TOP_N_MAX,
    ServerSettings,
    Settings,
    mode_flag,
)
from babelrank.errors import BabelrankError, ConfigError, FilterError, SourceError
from babelrank.models.language import parse_language_code, parse_language_codes
from babelrank.query.filters import validate_where
from babelrank.schema import result_dict

logger = logging.getLogger("babelrank.apps.cli.main")

PROG = "babelrank"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
SERVER_KEYS = ("api_token", "max_body_bytes", "max_query_chars", "allowed_hosts", "allowed_origins", "expose_paths",
               "ingest_slice_chars")  # the fields of babelrank.apps.server.app.ServerSettings
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
# flag dest -> Settings field
FLAG_SETTINGS = {
    "embed_model": "embed_model",
    "rerank_model": "rerank_model",
    "model_dir": "model_dir",
    "store": "store_path",
    "chroma_host": "chroma_host",
    "chroma_port": "chroma_port",
    "collection": "collection",
    "device": "device",
    "backend": "backend",
    "language_backend": "language_backend",
    "expected_languages": "expected_languages",
}
LANGUAGE_BACKENDS = ("auto", "fast", "langdetect", "lingua")


class UsageError(Exception):
    """Bad command-line usage detected after parsing (exit code 2)."""


# ---- configuration -------------------------------------------------------------------------
def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON config file; keys are `Settings` fields (plus server settings).

    A file holding a single ``[babelrank]`` table is read from that table. Dashes in keys
    are accepted (``embed-model``).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    raw = path.read_bytes()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = _parse_toml(raw, path)
        elif suffix == ".json":
            data = json.loads(raw.decode("utf-8"))
        else:
            try:
                data = json.loads(raw.decode("utf-8"))
            except ValueError:
                data = _parse_toml(raw, path)
    except ConfigError:
        raise
    except ValueError as exc:  # JSONDecodeError, TOMLDecodeError, UnicodeDecodeError
        raise ConfigError(f"config file {path} is not valid {'TOML' if suffix == '.toml' else 'JSON'}: {exc}") from None
    if isinstance(data, dict) and set(data) == {"babelrank"} and isinstance(data["babelrank"], dict):
        data = data["babelrank"]
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table/object of settings")
    values = {str(k).replace("-", "_"): v for k, v in data.items()}
    known = {f.name for f in dataclasses.fields(Settings)} | set(SERVER_KEYS)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return values


def _parse_toml(raw: bytes, path: Path) -> Any:
    try:
        import tomllib  # Python >= 3.11
    except ImportError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise ConfigError(f"reading {path} needs Python >= 3.11 (or `pip install tomli`); or use a JSON config file") from None
    return tomllib.loads(raw.decode("utf-8"))


def _file_values(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, Any]:
    config = getattr(args, "config", None) or env.get(CONFIG_ENV)
    return load_config_file(config) if config else {}


def _below_env(values: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Config-file values whose environment variable is not set (the environment wins)."""
    return {k: v for k, v in values.items() if not env.get(ENV_PREFIX + k.upper())}


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None, **extra: Any) -> Settings:
    """`Settings` from flags > ``BABELRANK_*`` env > config file > defaults (for subcommands, eval too)."""
    env = os.environ if env is None else env
    fields = {f.name for f in dataclasses.fields(Settings)}
    values = {k: v for k, v in _below_env(_file_values(args, env), env).items() if k in fields}
    for flag, name in FLAG_SETTINGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            values[name] = value
    values.update({k: v for k, v in extra.items() if v is not None})
    if getattr(args, "store", None) is not None and getattr(args, "chroma_host", None) is not None:
        raise UsageError("give --store (embedded store) or --chroma-host (Chroma server), not both")
    settings = Settings.from_env(env, **values)
    if getattr(args, "store", None) is not None and settings.chroma_host:
        settings = settings.replace(chroma_host=None)  # --store beats BABELRANK_CHROMA_HOST / a config file
    return settings


def server_settings_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Any:
    """`ServerSettings` with the same precedence (flags > env > config file)."""
    
    env = os.environ if env is None else env
    values = {k: v for k, v in _below_env(_file_values(args, env), env).items() if k in SERVER_KEYS}
    for name in ("max_body_bytes", "max_query_chars"):
        if getattr(args, name, None) is not None:
            values[name] = getattr(args, name)
    return ServerSettings.from_env(env, **values)


def open_index(args: argparse.Namespace, **extra: Any) -> Any:
    """A `BabelIndex` configured from the command line (close it when done)."""
    from babelrank.index import BabelIndex

    settings = settings_from_args(args, **extra)
    logger.info("opening collection %r (%s)", settings.collection,
                f"chroma at {settings.chroma_host}:{settings.chroma_port}" if settings.chroma_host else settings.store_path)
    return BabelIndex(settings)


# ---- output helpers ------------------------------------------------------------------------
def format_table(rows: Sequence[Sequence[Any]], headers: Sequence[str] | None = None, align: str = "") -> str:
    """A plain-text table; `align` gives 'l'/'r' per column (default: numbers right)."""
    body = [[_cell(c) for c in row] for row in rows]
    all_rows = ([list(headers)] if headers else []) + body
    if not all_rows:
        return ""
    ncols = max(len(r) for r in all_rows)
    widths = [max(len(r[i]) if i < len(r) else 0 for r in all_rows) for i in range(ncols)]
    numeric = [all(_is_number(r[i]) for r in body if i < len(r)) and bool(body) for i in range(ncols)]
    lines = []
    for n, row in enumerate(all_rows):
        cells = []
        for i in range(ncols):
            text = row[i] if i < len(row) else ""
            right = (align[i] == "r") if i < len(align) else numeric[i]
            cells.append(text.rjust(widths[i]) if right else text.ljust(widths[i]))
        lines.append("  ".join(cells).rstrip())
        if headers and n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text == "-"
    return True


def _short(text: str, width: int, left: bool = False) -> str:
    text = " ".join(str(text).split())
    if len(text) <= width:
        return text
    return ("…" + text[-(width - 1):]) if left else (text[: width - 1] + "…")


def _display_source(source: str) -> str:
    try:
        rel = os.path.relpath(source)
    except ValueError:
        return source
    return rel if not rel.startswith("..") else source


def _languages_arg(value: str) -> list[str]:
    """argparse type: a comma-separated list of language codes."""
    try:
        return parse_language_codes([value]) or []
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _language_arg(value: str) -> str:
    """argparse type: one language code."""
    try:
        return parse_language_code(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count_arg(most: int) -> Callable[[str], int]:
    """argparse type: an integer from 1 to `most` (the HTTP API's bounds of the same option)."""
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
        if not 1 <= number <= most:
            raise argparse.ArgumentTypeError(f"must be between 1 and {most}, got {number}")
        return number

    return parse


def _flat(values: Iterable[Sequence[str]] | None) -> list[str] | None:
    return list(dict.fromkeys(code for v in values or () for code in v)) or None


# ---- commands ------------------------------------------------------------------------------
def cmd_ingest(args: argparse.Namespace) -> int:
    for raw in args.paths:
        if not Path(raw).expanduser().exists():
            raise FileNotFoundError(f"no such file or folder: {raw}")
    progress = False if args.quiet else None
    with open_index(args) as index:
        if progress is None:
            progress = index.settings.progress if index.settings.progress is not None else sys.stderr.isatty()
        report = index.ingest(args.paths, include=args.include or ("*",), exclude=args.exclude or (),
                              prune=args.prune, text_field=args.text_field, progress=progress)
        info_line = f"collection {index.store.name!r} at {index.store.location}"
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False))
        return 0
    languages = ", ".join(f"{lang} {n}" for lang, n in report.languages.most_common()) or "-"
    rows = [
        ("documents", report.documents),
        ("added", report.added),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
        ("deleted", report.deleted),
        ("chunks written", report.chunks_written),
        ("chunks embedded", report.chunks_embedded),
        ("chunks deleted", report.chunks_deleted),
    ]
    if report.truncated:
        rows.append(("chunks truncated", report.truncated))
    rows += [("languages (chunks)", languages), ("seconds", f"{report.seconds:.2f}")]
    print(f"Ingested into {info_line}")
    print(format_table(rows, align="lr"))
    if report.skipped:
        print(f"\nSkipped {len(report.skipped)} input(s):")
        print(format_table([(_display_source(s.source), s.reason) for s in report.skipped], ("file", "reason"), align="ll"))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
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
    with open_index(args) as index:
        result = index.search(args.text, **options)
    lang, conf = result.query_language, float(result.query_language_confidence)
    if args.json:
        for rank, node in enumerate(result.nodes, 1):
            print(json.dumps({**result_dict(rank, node), "query_language": lang,
                              "query_language_confidence": conf}, ensure_ascii=False))
        if not args.quiet:
            print(f"query language: {lang} ({conf:.2f})", file=sys.stderr)
        return 0
    print(f"Query language: {lang} (confidence {conf:.2f})")
    if not result.nodes:
        print("No results.")
        return 0
    reranked = any(n.node.metadata.get("rerank_score") is not None for n in result.nodes)
    merged = any(n.node.metadata.get("alternates") for n in result.nodes)
    rows = []
    for rank, node in enumerate(result.nodes, 1):
        meta = node.node.metadata
        source, doc_id = str(meta.get("source", "")), str(meta.get("doc_id", ""))
        source = _display_source(doc_id if doc_id.startswith(source + "#") else source)
        if meta.get("chunk_count", 1) not in (1, None) or meta.get("chunk_index"):
            source += f" #{meta.get('chunk_index')}"
        scores = [node.score, meta.get("retrieval_score")] if reranked else [node.score]
        also = [",".join(a["language"] for a in meta.get("alternates") or []) or "-"] if merged else []
        rows.append([rank, *scores, meta.get("language"), *also, _short(source, 32, left=True), node.node.get_content()])
    headers = ["#", "rerank", "retrieval"] if reranked else ["#", "score"]
    headers += ["lang", "also"] if merged else ["lang"]
    headers += ["source", "snippet"]
    align = "r" * (len(headers) - 3 - merged) + "l" * (3 + merged)
    fixed = len(format_table([r[:-1] for r in rows], headers[:-1], align=align).splitlines()[0]) + 2
    width = max(30, shutil.get_terminal_size((120, 24)).columns - fixed)
    for row in rows:
        row[-1] = _short(row[-1], width)
    print(format_table(rows, headers, align=align))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    with open_index(args) as index:
        info = index.info()
        for name in ("rerank_model", "backend", "language_backend"):
            info.setdefault(name, getattr(index.settings, name))
        documents = index.documents() if args.documents else None
    if args.json:
        if documents is not None:
            info["document_ids"] = documents
        print(json.dumps(info, ensure_ascii=False, default=str))
        return 0
    keys = ["collection", "store", "model", "dimension", "query_prompt", "document_prompt", "chunk_tokens",
            "rerank_model", "backend", "language_backend", "documents", "chunks"]
    rows = [(k.replace("_", " "), repr(info[k]) if "prompt" in k else info[k]) for k in keys if k in info]
    for k, v in info.items():
        if k in keys or k == "languages":
            continue
        if k == "neutral" and isinstance(v, dict):
            v = f"{v.get('mode')} ({'active' if v.get('active') else 'inactive'})"
        elif isinstance(v, (dict, list)):
            v = json.dumps(v, ensure_ascii=False, default=str)
        rows.append((k.replace("_", " ") + (" scoring" if k == "neutral" else ""), v))
    print(format_table(rows, align="ll"))
    languages = info.get("languages") or {}
    if languages:
        calibration = (info.get("neutral") or {}).get("calibration") or {}

        def centroid(lang: str) -> str:
            c = calibration.get(lang) or {}
            return f"yes (norm {c['centroid_norm']})" if c.get("centroid") else "no (collection mean)"

        print("\nChunks per language and language-neutral calibration:")
        print(format_table([(lang, n, centroid(lang)) for lang, n in sorted(languages.items(), key=lambda kv: -kv[1])],
                           ("language", "chunks", "centroid"), align="lrl"))
    if documents is not None:
        print(f"\nDocuments ({len(documents)}):")
        print(format_table(sorted(documents.items()), ("doc_id", "source"), align="ll") if documents else "(none)")
    return 0


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


def cmd_delete(args: argparse.Namespace) -> int:
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


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from babelrank.apps.server.app import SERVE_CONFIG_ENV, create_app, settings_to_json

    settings = settings_from_args(args)
    server = _serve_settings(args)
    if args.workers < 1:
        raise UsageError("--workers must be >= 1")
    log_level = "warning" if args.quiet else ("debug" if (args.verbose or 0) > 1 else "info")
    where = f"http://{args.host}:{args.port}"
    if args.workers > 1:
        if not settings.chroma_host:
            raise UsageError("--workers > 1 needs a Chroma server: an embedded store allows one process. "
                             "Start `chroma run --path DIR --port 8001` and pass --chroma-host/--chroma-port")
        os.environ[SERVE_CONFIG_ENV] = json.dumps(settings_to_json(settings))
        os.environ.update(server.to_env())
        if not args.quiet:
            print(f"{PROG}: serving collection {settings.collection!r} on {where} with {args.workers} workers "
                  f"(API docs: {where}/docs)", file=sys.stderr)
        uvicorn.run("babelrank.apps.server.app:app_from_env", factory=True, host=args.host, port=args.port,
                    workers=args.workers, log_level=log_level)
        return 0
    from babelrank.index import BabelIndex

    index = BabelIndex(settings)  # a locked store fails here, with a one-line message
    try:
        app = create_app(settings, index, server_settings=server)
        if not args.quiet:
            print(f"{PROG}: serving collection {settings.collection!r} at {index.store.location} on {where} "
                  f"(API docs: {where}/docs; auth: {'bearer token' if server.api_token else 'none'})", file=sys.stderr)
        uvicorn.run(app, host=args.host, port=args.port, log_level=log_level)
    finally:
        index.close()
    return 0


def _serve_settings(args: argparse.Namespace) -> Any:
    """`ServerSettings` of ``serve``: the bound name (``--host``) is one the server answers to."""
    server = server_settings_from_args(args)
    if args.host not in WILDCARD_HOSTS and args.host not in server.allowed_hosts:
        server = dataclasses.replace(server, allowed_hosts=(*server.allowed_hosts, args.host))
    if args.host not in ("127.0.0.1", "localhost", "::1") and not server.api_token:
        logger.warning("serving on %s without an API token: anyone who can reach it can read and change the "
                       "collection (set BABELRANK_API_TOKEN); it answers requests addressed to its IP addresses, "
                       "localhost and %s (add names with BABELRANK_ALLOWED_HOSTS)", args.host,
                       ", ".join(server.allowed_hosts) or "no other name")
    return server


# ---- parser --------------------------------------------------------------------------------
def _common_parser() -> argparse.ArgumentParser:
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
    g.add_argument("--expected-languages", type=_languages_arg, metavar="CODES", default=S,
                   help="languages the collection holds, e.g. uk,ru,en; detection answers only these "
                   "(or und) [BABELRANK_EXPECTED_LANGUAGES]")
    _output_options(common)
    return common


def _output_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    S = argparse.SUPPRESS
    o = parser.add_argument_group("output")
    o.add_argument("-v", "--verbose", action="count", default=S, help="more logging (-vv: debug); tracebacks on errors")
    o.add_argument("-q", "--quiet", action="store_true", default=S, help="only results and errors; no progress bars")
    return parser


class _SubparsersWithCommon:
    """Hands `add_parser` to other modules (eval) with the output options (-v/-q) added.

    The configuration options are left to the module (it may use `settings_from_args`);
    they are accepted before the command name too (``babelrank --config F eval ...``).
    """

    def __init__(self, subparsers: Any, common: argparse.ArgumentParser) -> None:
        self._subparsers = subparsers
        self._common = common

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs["parents"] = [self._common, *kwargs.get("parents", [])]
        kwargs.setdefault("conflict_handler", "resolve")  # their own option of the same name wins
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        return self._subparsers.add_parser(name, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._subparsers, name)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (the eval commands are added when `babelrank.apps.cli.evaluation` exists)."""
    common = _common_parser()
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[common],
        formatter_class=fmt,
        description="Multilingual retrieve-and-rerank: ingest documents in any language, query them in any language.",
        epilog=(
            "examples:\n"
            "  babelrank ingest docs/ --include '*.md' --prune\n"
            "  babelrank query 'червоний автомобіль' -n 3 --lang uk,ru\n"
            "  babelrank info\n"
            "  babelrank serve --port 8000\n\n"
            "Run 'babelrank COMMAND --help' for a command's options. Exit codes: 0 ok, 1 failure, 2 bad usage/input."
        ),
    )
    from babelrank.config import VERSION

    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    p = sub.add_parser("ingest", parents=[common], formatter_class=fmt, help="ingest files and folders",
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

    p = sub.add_parser("query", parents=[common], formatter_class=fmt, help="search the collection",
                       description="Search the collection. Prints the detected query language and a table "
                       "(or JSON lines with --json).",
                       epilog="examples:\n  babelrank query 'де купити квитки на потяг?' -n 3\n"
                       "  babelrank query 'bicycle repair' --lang uk,ru --json\n"
                       "  babelrank query 'train tickets' --answer-language uk --dedup on --neutral off")
    p.add_argument("text", help="the query, in any language")
    p.add_argument("-k", "--top-k", dest="k", type=_count_arg(TOP_K_MAX), metavar="K",
                   help=f"candidates fetched before rerank, 1..{TOP_K_MAX} (default: setting top_k)")
    p.add_argument("-n", "--top-n", dest="n", type=_count_arg(TOP_N_MAX), metavar="N",
                   help=f"results shown, 1..{TOP_N_MAX} (default: setting top_n)")
    p.add_argument("--lang", "--languages", dest="lang", action="append", type=_languages_arg, metavar="CODES",
                   help="only chunks in these languages, e.g. uk,ru (repeatable; 'und' = undetermined)")
    p.add_argument("--where", metavar="JSON", help="Chroma metadata filter, e.g. '{\"topic\": \"places\"}'")
    p.add_argument("--min-score", type=float, metavar="S", help="drop results scoring lower")
    p.add_argument("--no-rerank", action="store_true", help="skip the cross-encoder")
    p.add_argument("--prefer", "--prefer-languages", dest="prefer", action="append", type=_languages_arg,
                   metavar="CODES", help="rank results in these languages first unless another scores more "
                   "than --prefer-margin higher (repeatable)")
    p.add_argument("--prefer-margin", type=float, metavar="M",
                   help="how far a preferred-language result may trail and still rank first (default 0.05)")
    p.add_argument("--answer-language", type=_language_arg, metavar="CODE",
                   help="preferred like --prefer, and the version shown when translations are merged")
    p.add_argument("--dedup", choices=MODES, help="merge translations / near duplicates: on, off, or auto "
                   "(the configured mode; default)")
    p.add_argument("--dedup-threshold", type=float, metavar="T",
                   help="centred cosine in [-1, 1] at which results merge (default: the model's)")
    p.add_argument("--neutral", choices=MODES, help="language-neutral scoring: on, off, or auto "
                   "(the configured mode; default)")
    p.add_argument("--json", action="store_true", help="one JSON object per result (JSON lines)")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("info", parents=[common], formatter_class=fmt, help="collection statistics",
                       description="Collection statistics: chunks per language, model, dimension, store.")
    p.add_argument("--documents", action="store_true", help="also list document ids and sources")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("delete", parents=[common], formatter_class=fmt, help="delete documents by id",
                       description="Delete documents by id (a file's id is its absolute path; a relative path "
                       "to an existing file is accepted too). Exit code 1 when an id is not found.",
                       epilog="example:\n  babelrank delete examples/data/en/library.txt 'notes.jsonl#market'")
    p.add_argument("doc_ids", nargs="+", metavar="DOC_ID")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("serve", parents=[common], formatter_class=fmt, help="run the HTTP service",
                       description="Run the HTTP API (docs at /docs). Models load once at start-up. "
                       "Auth: set BABELRANK_API_TOKEN to require 'Authorization: Bearer <token>'. "
                       "An embedded store serves one process; for --workers > 1 use a Chroma server.",
                       epilog="examples:\n  babelrank serve --port 8000\n"
                       "  BABELRANK_API_TOKEN=s3cret babelrank serve --host 0.0.0.0 --chroma-host localhost --chroma-port 8001 --workers 4")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (> 1 needs --chroma-host)")
    p.add_argument("--max-body-bytes", type=int, metavar="N", help="largest request body (default 10 MiB) [BABELRANK_MAX_BODY_BYTES]")
    p.add_argument("--max-query-chars", type=int, metavar="N", help="longest query (default 2000) [BABELRANK_MAX_QUERY_CHARS]")
    p.set_defaults(func=cmd_serve)

    try:
        from babelrank.apps.cli import evaluation as eval_cli
    except ImportError:
        pass
    else:
        eval_cli.register(_SubparsersWithCommon(sub, _output_options(argparse.ArgumentParser(add_help=False))))
    return parser


# ---- entry point ---------------------------------------------------------------------------
def configure_logging(verbose: int, quiet: bool) -> None:
    """Log to stderr: warnings by default, info with -v, debug with -vv, errors only with --quiet."""
    level = logging.ERROR if quiet else logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_babelrank", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._babelrank = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose else f"{PROG}: %(levelname)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    noisy = logging.DEBUG if verbose > 1 else max(level, logging.WARNING)
    for name in ("transformers", "sentence_transformers", "chromadb", "httpx", "httpcore", "urllib3", "filelock"):
        logging.getLogger(name).setLevel(noisy)
    if verbose < 2:
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()  # e.g. "Token indices sequence length is longer than ..."
            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover
            pass


def exit_code(exc: BaseException) -> int:
    """2 for bad usage or input, 1 for other failures."""
    if isinstance(exc, (UsageError, ConfigError, FilterError, SourceError, FileNotFoundError, NotADirectoryError,
                        IsADirectoryError)):
        return 2
    if isinstance(exc, ValueError) and not isinstance(exc, BabelrankError):
        return 2
    if type(exc).__name__ == "InvalidArgumentError" and type(exc).__module__.startswith("chromadb"):
        return 2  # e.g. an invalid --where filter
    return 1


def error_message(exc: BaseException) -> str:
    """A one-line message for an exception."""
    text = " ".join(str(exc).split())
    if isinstance(exc, (BabelrankError, UsageError, ConnectionError, ValueError)) or exit_code(exc) == 2:
        return text or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    if isinstance(exc, FileNotFoundError):
        return text
    return f"unexpected {type(exc).__name__}: {text} (run with -v for the traceback)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors (argparse prints them)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    args.verbose = getattr(args, "verbose", 0) or 0
    args.quiet = getattr(args, "quiet", False)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    configure_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `babelrank query ... | head -1`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except Exception as exc:  # one line, no traceback unless -v
        if args.verbose:
            traceback.print_exc()
        print(f"{PROG}: error: {error_message(exc)}", file=sys.stderr)
        return exit_code(exc)


def run() -> None:  # pragma: no cover - `python -m babelrank.apps.cli.main`
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
