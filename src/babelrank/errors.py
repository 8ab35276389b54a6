"""Exceptions raised by babelrank; each message says what went wrong and how to fix it.

Each class carries what the apps answer with it, so the command line and the HTTP server
map errors from this one place (as chromadb's errors carry their own code):

* `exit_code`: the CLI's exit status (2: bad usage or input; 1: any other failure);
* `http_status` and `error_type`: the HTTP status and the ``error.type`` of the JSON body.

`classify` does the same for exceptions babelrank does not raise itself (a ``ValueError``
from a library, chromadb's ``InvalidArgumentError``, a lost connection, a missing file).
"""

from __future__ import annotations

from dataclasses import dataclass


class BabelrankError(Exception):
    """Base class of every error babelrank raises on purpose."""

    exit_code = 1
    http_status = 500
    error_type = "internal_error"


class ConfigError(BabelrankError, ValueError):
    """A setting has an invalid value."""

    exit_code = 2
    http_status = 422
    error_type = "validation_error"


class ModelNotFoundError(BabelrankError):
    """A model could be found neither locally nor on a reachable model hub."""

    http_status = 503
    error_type = "model_unavailable"


class ModelMismatchError(BabelrankError):
    """The collection was built with a different embedding model."""

    http_status = 409
    error_type = "model_mismatch"


class StoreLockedError(BabelrankError):
    """Another process holds the embedded Chroma store."""

    http_status = 503
    error_type = "store_locked"


class SourceError(BabelrankError, ValueError):
    """An input document cannot be read (empty, binary, not UTF-8, malformed)."""

    exit_code = 2
    http_status = 422
    error_type = "validation_error"


class FilterError(BabelrankError, ValueError):
    """A metadata filter (a Chroma ``where``) is malformed."""

    exit_code = 2
    http_status = 422
    error_type = "validation_error"


class NotImprovedError(BabelrankError):
    """A tuned model is not better than its base on the held-out data (``--require-improvement``).

    Exit code 3, so a script can tell "trained, but refused by the guard" from a failure.
    `result` is the `babelrank.tune.api.TuneResult` with the before/after table.
    """

    exit_code = 3
    http_status = 409
    error_type = "not_improved"

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class ErrorKind:
    """How the apps answer one exception."""

    exit_code: int
    http_status: int
    error_type: str


_BAD_INPUT = ErrorKind(2, 422, "validation_error")
_MISSING_PATH = ErrorKind(2, 500, "internal_error")  # a path a CLI user named; on a server, its own fault
_UNAVAILABLE = ErrorKind(1, 503, "store_unavailable")
_INTERNAL = ErrorKind(1, 500, "internal_error")


def classify(exc: BaseException) -> ErrorKind:
    """The exit code, HTTP status and error type of any exception.

    babelrank's own errors say it themselves; of the others, bad input (``ValueError``,
    chromadb's 4xx errors such as ``InvalidArgumentError`` for an invalid ``where``) is a
    usage error (exit 2, HTTP 422); a missing file or folder is a usage error of the command
    line (a path its user named) but the server's own fault (HTTP 500); a lost connection to
    a Chroma server means the store is unavailable; anything else is a bug (exit 1, HTTP 500).
    """
    if isinstance(exc, BabelrankError):
        return ErrorKind(exc.exit_code, exc.http_status, exc.error_type)
    if isinstance(exc, ValueError) or _chroma_bad_input(exc):
        return _BAD_INPUT
    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return _MISSING_PATH
    if isinstance(exc, ConnectionError):
        return _UNAVAILABLE
    return _INTERNAL


def _chroma_bad_input(exc: BaseException) -> bool:
    """chromadb's own 4xx errors (e.g. ``InvalidArgumentError`` for an invalid ``where``), which
    are not ValueErrors; each carries its HTTP status as ``code()``."""
    if not type(exc).__module__.startswith("chromadb"):
        return False
    try:
        return 400 <= int(exc.code()) < 500  # type: ignore[attr-defined]
    except Exception:
        return False
