"""Exceptions raised by babelrank; each message says what went wrong and how to fix it."""

from __future__ import annotations


class BabelrankError(Exception):
    """Base class of every error babelrank raises on purpose."""


class ConfigError(BabelrankError, ValueError):
    """A setting has an invalid value."""


class ModelNotFoundError(BabelrankError):
    """A model could be found neither locally nor on a reachable model hub."""


class ModelMismatchError(BabelrankError):
    """The collection was built with a different embedding model."""


class StoreLockedError(BabelrankError):
    """Another process holds the embedded Chroma store."""


class SourceError(BabelrankError, ValueError):
    """An input document cannot be read (empty, binary, not UTF-8, malformed)."""


class FilterError(BabelrankError, ValueError):
    """A metadata filter (a Chroma ``where``) is malformed."""
