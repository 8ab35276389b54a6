"""The command line's flags as settings: the flag values handed to `babelrank.config`'s one
resolution order (flags > ``BABELRANK_*`` variables > config file > defaults)."""

from __future__ import annotations

import argparse
from typing import Any, Mapping

from babelrank.apps.cli.errors import UsageError
from babelrank.config import (
    ServerSettings,
    Settings,
    resolve_server_settings,
    resolve_settings,
)

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
"""Flag destination -> `Settings` field."""
SERVER_FLAGS = ("max_body_bytes", "max_query_chars")
"""Flags (of ``serve``) that are `ServerSettings` fields of the same name."""


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None, **extra: Any) -> Settings:
    """`Settings` of a command (eval and compare too): its flags, then `extra` values.

    Args:
        args: the parsed command line (``--config`` names the config file).
        env: the environment (default `os.environ`).
        **extra: values given by the command's own options; they win over the common flags.

    Raises:
        UsageError: both ``--store`` and ``--chroma-host`` were given.
        ConfigError: a bad setting or config file.
    """
    if getattr(args, "store", None) is not None and getattr(args, "chroma_host", None) is not None:
        raise UsageError("give --store (embedded store) or --chroma-host (Chroma server), not both")
    given = {name: getattr(args, flag, None) for flag, name in FLAG_SETTINGS.items()}
    given.update({k: v for k, v in extra.items() if v is not None})
    return resolve_settings(given, env, getattr(args, "config", None))


def server_settings_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> ServerSettings:
    """`ServerSettings` of ``serve`` in the same order (flags > environment > config file)."""
    given = {name: getattr(args, name, None) for name in SERVER_FLAGS}
    return resolve_server_settings(given, env, getattr(args, "config", None))
