"""Collection names and the Chroma collections behind them: the pointer that ``babelrank reindex`` switches.

A babelrank collection has a stable name, the one users give (`Settings.collection`). Its
chunks live in one *physical* Chroma collection. Before any reindex that is the collection
of the same name, as it always was, and nothing else exists: a store written by an earlier
babelrank opens unchanged. A reindex writes the chunks, embedded with another model, into a
new physical collection and then points the name at it. The pointer (`Alias`) is the
metadata of one empty Chroma collection per name, ``<name>.babelrank-alias``:

* ``babelrank:target``: the physical collection the name stands for;
* ``babelrank:model``: the embedding model to open it with, as it was named to the reindex
  (a preset, hub id or folder), so the collection remembers its model;
* ``babelrank:previous``: the physical collection it pointed to before (kept or dropped).

Why a collection of its own per name, and why its metadata. Switching must be one atomic step
for every process that opens the collection, on an embedded store and on a Chroma server
alike, with nothing but Chroma to hold it. Chroma replaces a collection's metadata as a whole
in one write, so the pointer changes from the old target to the new in one request and a
reader sees one or the other, never a mix. One pointer collection per name (rather than one
registry of all names) makes that write a plain replacement: there is no read-modify-write
of other names' entries, hence no lock. The pointer could not live in the user collection's
own metadata: that collection is the old physical one, which the reindex deletes.

Physical names (`physical_name`) are ``<name>.<model>-<hash>``: the last part of the model's
name and 10 hex digits of the sha256 of its fingerprint (model, dimension, prompts). They are
deterministic, so a reindex run again after being killed finds the collection it was writing
and continues it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Mapping

ALIAS_SUFFIX = ".babelrank-alias"
_TARGET, _MODEL, _PREVIOUS, _SWITCHED = "babelrank:target", "babelrank:model", "babelrank:previous", "babelrank:switched"
_NAME_MAX = 512
"""Chroma's longest collection name (3-512 characters of [a-zA-Z0-9._-], alphanumeric at both ends, no '..')."""


@dataclass(frozen=True)
class Alias:
    """Where a collection name points after a reindex.

    Attributes:
        name: the collection name users give.
        target: the physical Chroma collection holding its chunks.
        model: the embedding model of `target`, as named to the reindex (loadable by that name).
        previous: the physical collection it pointed to before ("" when unknown).
    """

    name: str
    target: str
    model: str
    previous: str = ""


def alias_collection(name: str) -> str:
    """The Chroma collection whose metadata holds the pointer of collection `name`."""
    return name + ALIAS_SUFFIX


def read_alias(client: Any, name: str) -> Alias | None:
    """The pointer of collection `name` (None when it was never reindexed: it is its own physical collection)."""
    from chromadb.errors import NotFoundError

    try:
        meta = client.get_collection(alias_collection(name)).metadata or {}
    except (NotFoundError, ValueError):  # older Chroma clients raise ValueError for a missing collection
        return None
    if not meta.get(_TARGET):
        return None
    return Alias(name, str(meta[_TARGET]), str(meta.get(_MODEL, "")), str(meta.get(_PREVIOUS, "")))


def write_alias(client: Any, alias: Alias) -> None:
    """Point `alias.name` at `alias.target`, in one atomic Chroma write (creating the pointer when there is none)."""
    meta = {_TARGET: alias.target, _MODEL: alias.model, _PREVIOUS: alias.previous or "-", _SWITCHED: time.time()}
    try:
        holder = client.get_or_create_collection(alias_collection(alias.name), metadata=meta, embedding_function=None)
    except Exception as exc:
        raise ConnectionError(f"cannot write the pointer of collection {alias.name!r}: {exc}") from None
    if (holder.metadata or {}) != meta:
        holder.modify(metadata=meta)  # it existed: replace its metadata as a whole


def physical_name(name: str, fingerprint: Mapping[str, Any]) -> str:
    """The physical collection of collection `name` embedded by the model of `fingerprint` (deterministic).

    Args:
        name: the collection name users give.
        fingerprint: the model's fingerprint (`BiEncoder.fingerprint`, without the stored prefix).

    Returns:
        ``<name>.<model>-<hash>``, a valid Chroma name.
    """
    digest = hashlib.sha256(json.dumps(dict(fingerprint), sort_keys=True, default=str).encode("utf-8")).hexdigest()[:10]
    model = str(fingerprint.get("model", "model")).rstrip("/\\")
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", re.split(r"[/\\]", model)[-1]).strip("-_")[:40] or "model"
    tail = f".{slug}-{digest}"
    return name[: _NAME_MAX - len(tail)].rstrip(".") + tail
