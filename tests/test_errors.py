"""errors.classify: the one table the CLI's exit codes and the server's statuses come from."""

from __future__ import annotations

import pytest

from babelrank.errors import (
    ConfigError,
    FilterError,
    ModelMismatchError,
    ModelNotFoundError,
    SourceError,
    StoreLockedError,
    classify,
)


@pytest.mark.parametrize(("exc", "exit_code", "status", "kind"), [
    (ConfigError("x"), 2, 422, "validation_error"),
    (SourceError("x"), 2, 422, "validation_error"),
    (FilterError("x"), 2, 422, "validation_error"),
    (ModelNotFoundError("x"), 1, 503, "model_unavailable"),
    (ModelMismatchError("x"), 1, 409, "model_mismatch"),
    (StoreLockedError("x"), 1, 503, "store_locked"),
    (ValueError("x"), 2, 422, "validation_error"),
    (FileNotFoundError("x"), 2, 500, "internal_error"),
    (ConnectionError("x"), 1, 503, "store_unavailable"),
    (RuntimeError("x"), 1, 500, "internal_error"),
    (KeyError("x"), 1, 500, "internal_error"),
])
def test_each_error_says_its_exit_code_and_http_status(exc: BaseException, exit_code: int, status: int, kind: str) -> None:
    got = classify(exc)
    assert (got.exit_code, got.http_status, got.error_type) == (exit_code, status, kind)


def test_chromadb_client_errors_are_bad_input() -> None:
    from chromadb.errors import InvalidArgumentError

    got = classify(InvalidArgumentError("Invalid where clause"))
    assert (got.exit_code, got.http_status) == (2, 422)
