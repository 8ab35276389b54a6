"""How the command line reports a failure: one line on stderr and an exit code.

Exit codes: 0 success, 1 failure, 2 bad usage or input, 130 interrupted. The code of an
exception comes from `babelrank.errors.classify`, which the HTTP server uses as well; only
`UsageError` is the command line's own.
"""

from __future__ import annotations

from babelrank.errors import BabelrankError, classify


class UsageError(Exception):
    """Bad command-line usage detected after parsing (exit code 2)."""


def exit_code(exc: BaseException) -> int:
    """The exit code of a failed command: 2 for bad usage or input, 1 for other failures."""
    return 2 if isinstance(exc, UsageError) else classify(exc).exit_code


def error_message(exc: BaseException) -> str:
    """A one-line message for an exception."""
    text = " ".join(str(exc).split())
    if isinstance(exc, (BabelrankError, UsageError, ConnectionError, ValueError)) or exit_code(exc) == 2:
        return text or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return f"unexpected {type(exc).__name__}: {text} (run with -v for the traceback)"
