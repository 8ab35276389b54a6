"""The ``babelrank`` entry point: parse the command line, set up logging, run the command,
and turn a failure into one line on stderr and an exit code (`babelrank.apps.cli.errors`)."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Sequence

from babelrank.apps.cli.errors import error_message, exit_code
from babelrank.apps.cli.output import PROG
from babelrank.apps.cli.parser import build_parser

NOISY_LOGGERS = ("transformers", "sentence_transformers", "chromadb", "httpx", "httpcore", "urllib3", "filelock")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``babelrank`` command line.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 success, 1 failure, 2 bad usage or input, 130 interrupted.
    """
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
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(noisy)
    if verbose < 2:
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()  # e.g. "Token indices sequence length is longer than ..."
            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover
            pass
