"""The Chroma collection: fingerprint check, collection metadata, upserts, deletes, reads and search.

`ChromaStore` is the one object that talks to Chroma. It opens a collection by the name users
give and works on the physical Chroma collection behind it (the same name, or where a
reindex pointed it: `babelrank.store.aliases`). It keeps two caches in step with its own
writes: the language tag of each chunk id (`languages`) and, for exact scans, an in-memory
copy of the vectors (`mirror`, see `babelrank.store.mirror`). The locks it takes are in
`babelrank.store.lock`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from babelrank.errors import ModelMismatchError
from babelrank.schema import UNDETERMINED, chunk_language
from babelrank.store.aliases import Alias, read_alias, write_alias
from babelrank.store.lock import FileLock, MetadataLock, lock_store
from babelrank.store.mirror import VectorMirror

logger = logging.getLogger(__name__)

FINGERPRINT_PREFIX = "babelrank:"
CALIBRATION_KEY = "babelrank:calibration"
RELEVANCE_KEY = "babelrank:relevance"
_PAGE = 2000
_READ_TRIES = 6
"""A Chroma read failing with an internal error is tried this often, waiting 0.05 s, 0.1 s, ...
between tries: while another process writes, a Chroma 1.x server can briefly answer a read with
"Error creating hnsw segment reader: Nothing found on disk" (seen when a collection's first
index segment is being flushed; the next read, 25 ms later, succeeded)."""
# HNSW search/build breadth. Chroma's default (100) loses true nearest neighbours on clustered
# embeddings: on e5-small Tatoeba ukr+eng (2000 vectors) 3 % of queries got a wrong top-2 and
# ~0.2 of the exact top-50 went missing per query; at 400 none did, for < 0.3 ms per query.
HNSW_EF = 400


@dataclass(frozen=True)
class Hit:
    """One search result from the collection.

    Attributes:
        id: the chunk id.
        text: the chunk text.
        metadata: the chunk metadata (see `babelrank.schema`).
        score: what the search that found the chunk ranked it by: the cosine similarity of the
            query and chunk vectors for a raw search (`ChromaStore.query`), the language-neutral
            score for a neutral search (`babelrank.query.search`); the retriever reports it as
            the result's `retrieval_score`.
        embedding: the stored chunk vector, when asked for.
    """

    id: str
    text: str
    metadata: dict[str, Any]
    score: float
    embedding: np.ndarray | None = None


@dataclass(frozen=True)
class StoredDoc:
    """What the collection holds for one document."""

    doc_id: str
    doc_sha256: str | None
    chunk_count: int | None
    chunk_ids: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """All chunks of one ingest of the document are present (an interrupted write is not)."""
        return self.chunk_count == len(self.chunk_ids)


def connect(path: Path | None, host: str | None, port: int) -> tuple[Any, str, FileLock | None]:
    """A Chroma client: `(client, location, lock)`; embedded at `path` (taking its lock) unless `host` is given.

    Raises:
        ConnectionError: the server cannot be reached.
        StoreLockedError: another process holds the embedded store.
    """
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if host:
        location = f"http://{host}:{port}"
        try:
            client = chromadb.HttpClient(host=host, port=port, settings=chroma_settings)
            client.heartbeat()
        except Exception as exc:
            raise ConnectionError(f"cannot reach the Chroma server at {location}: {exc}") from None
        return client, location, None
    lock = lock_store(path)
    location = str(lock.path.parent)
    try:
        return chromadb.PersistentClient(path=location, settings=chroma_settings), location, lock
    except BaseException:
        lock.release()
        raise


def _retrying(read: Callable[[], Any]) -> Any:
    """`read()`, tried again after Chroma's internal errors (see `_READ_TRIES`)."""
    from chromadb.errors import InternalError

    for attempt in range(_READ_TRIES):
        try:
            return read()
        except InternalError as exc:
            if attempt == _READ_TRIES - 1:
                raise
            logger.info("Chroma read failed (%s); trying again", exc)
            time.sleep(0.05 * 2**attempt)


class ChromaStore:
    """A Chroma collection holding babelrank chunks (cosine space, raw model vectors).

    Opens an embedded `PersistentClient` at `path`, or an `HttpClient` when `host` is given.
    The collection records the embedding model's fingerprint and refuses any other model.

    Args:
        collection: the collection's name as users give it.
        fingerprint: the embedding model's (`BiEncoder.fingerprint`); None = open an existing
            collection whatever its model (to read it, as a reindex does).
        path, host, port: the embedded store's folder, or a Chroma server.
        physical: open this physical collection of `collection` (created when missing)
            instead of the one its name points to (a reindex's target).
    """

    def __init__(
        self,
        collection: str,
        fingerprint: Mapping[str, str | int] | None,
        *,
        path: Path | None = None,
        host: str | None = None,
        port: int = 8000,
        physical: str | None = None,
    ) -> None:
        self.client, self.location, self._lock = connect(path, host, port)
        self.name = collection
        """The collection's name as users give it (stable across reindexes)."""
        self.alias = read_alias(self.client, collection) if physical is None else None
        """Where the name points after a reindex (None: the name is its own physical collection)."""
        self.physical = physical or (self.alias.target if self.alias else collection)
        """The Chroma collection that holds the chunks (see `babelrank.store.aliases`)."""
        # chunk id -> language tag, filled lazily by `languages`, kept in step by this
        # object's writes and dropped by `reload` (writes of other processes to a server)
        self._languages: dict[str, str] = {}
        self.mirror = VectorMirror(self)
        """Every vector and language tag in memory, for exact scans (read on first use by a
        collection small enough for it); kept in step and dropped like the language cache."""
        self._meta_lock = MetadataLock(self.client, self.physical, self.location, shared=self._lock is None)
        try:
            self.collection = self._open(fingerprint)
        except Exception as exc:
            self.close()
            if isinstance(exc, ValueError):
                raise
            raise ValueError(f"cannot open collection {collection!r}: {exc}") from None
        self.fingerprint = {FINGERPRINT_PREFIX + k: v for k, v in (fingerprint or {}).items()}
        self._check_fingerprint()
        self._widen_search()

    def _open(self, fingerprint: Mapping[str, str | int] | None) -> Any:
        """The physical collection: created when missing, unless `fingerprint` is None or an alias names it."""
        if fingerprint is None or self.alias is not None:
            try:
                return self.client.get_collection(self.physical, embedding_function=None)
            except Exception:
                where = f"its reindexed Chroma collection {self.physical!r}" if self.alias else "it"
                raise ValueError(f"collection {self.name!r} at {self.location}: {where} does not exist") from None
        return self.client.get_or_create_collection(
            self.physical,
            metadata={FINGERPRINT_PREFIX + k: v for k, v in fingerprint.items()},
            configuration={"hnsw": {"space": "cosine", "ef_construction": HNSW_EF, "ef_search": HNSW_EF}},
            embedding_function=None,
        )

    @staticmethod
    def remembered(collection: str, *, path: Path | None = None, host: str | None = None, port: int = 8000) -> Alias | None:
        """The pointer of `collection` (with the model it was reindexed to), read before any model is loaded."""
        client, _, lock = connect(path, host, port)
        try:
            return read_alias(client, collection)
        finally:
            if lock is not None:
                lock.release()

    def _widen_search(self) -> None:
        """Raise ef_search of a collection created with a narrower one (ef_construction is fixed at creation)."""
        try:
            hnsw = (self.collection.configuration or {}).get("hnsw") or {}
            if int(hnsw.get("ef_search") or HNSW_EF) < HNSW_EF:
                self.collection.modify(configuration={"hnsw": {"ef_search": HNSW_EF}})
        except Exception as exc:  # older servers or non-HNSW indexes: keep what is there
            logger.debug("could not raise ef_search of %s: %s", self.name, exc)

    def built_with(self, fingerprint: Mapping[str, str | int]) -> bool:
        """Whether the collection records exactly this model fingerprint (`BiEncoder.fingerprint`)."""
        stored = self.collection.metadata or {}
        return all(stored.get(FINGERPRINT_PREFIX + k) == v for k, v in fingerprint.items())

    def _check_fingerprint(self) -> None:
        stored = self.collection.metadata or {}
        diffs = [
            f"{k.removeprefix(FINGERPRINT_PREFIX)}: collection has {stored.get(k)!r}, model gives {v!r}"
            for k, v in self.fingerprint.items()
            if k in stored and stored[k] != v
        ]
        if diffs:
            self.close()
            model = self.alias.model if self.alias else stored.get(FINGERPRINT_PREFIX + "model")
            remembered = " (the collection remembers it: leave --embed-model / BABELRANK_EMBED_MODEL unset)" if self.alias else ""
            raise ModelMismatchError(
                f"collection {self.name!r} at {self.location} was built with embedding model "
                f"{model!r} ({'; '.join(diffs)}). Use that model{remembered}, another collection name, "
                f"or re-embed the collection with the new model: `babelrank reindex --to-model MODEL`."
            )

    def close(self) -> None:
        """Release the store (and its lock, in embedded mode)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "ChromaStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- collection metadata -------------------------------------------------------------
    @property
    def shared(self) -> bool:
        """True for a Chroma server, which other processes may write to as well."""
        return self._lock is None

    def reload(self) -> None:
        """Re-read the collection (its metadata may have been changed by another process).

        babelrank's writes change the collection metadata (the calibration), so the in-memory
        caches are dropped only when it changed.
        """
        before = self.collection.metadata
        try:
            self.collection = self.client.get_collection(self.physical, embedding_function=None)
        except Exception as exc:
            moved = read_alias(self.client, self.name)
            if moved is None or moved.target == self.physical:
                raise
            raise ModelMismatchError(
                f"collection {self.name!r} at {self.location} was reindexed to embedding model {moved.model!r} "
                f"by another process ({exc}); open it again (restart the server) to use it"
            ) from None
        if self.collection.metadata != before:
            self._languages.clear()
            self.mirror.invalidate()

    def get_meta(self, key: str) -> Any:
        """A JSON value kept in the collection metadata (None when absent)."""
        raw = (self.collection.metadata or {}).get(key)
        return json.loads(raw) if isinstance(raw, str) else None

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value in the collection metadata (see `update_meta` for a read-modify-write)."""
        meta = dict(self.collection.metadata or {})
        meta[key] = json.dumps(value)
        meta.pop("hnsw:space", None)
        self.collection.modify(metadata=meta)

    def point_to(self, target: "ChromaStore", model: str) -> Alias:
        """Make this collection's name stand for `target`'s physical collection, in one atomic write.

        Args:
            target: the store of the new physical collection (written completely).
            model: the embedding model of `target`, as it is to be loaded (remembered by the name).

        Returns:
            The pointer written (its `previous` is this store's physical collection).
        """
        alias = Alias(self.name, target.physical, model, self.physical)
        write_alias(self.client, alias)
        return alias

    def drop(self) -> None:
        """Delete this store's physical collection (refused while the collection's name points to it)."""
        current = read_alias(self.client, self.name)
        if (current.target if current else self.name) == self.physical:
            raise ValueError(f"collection {self.name!r} stands for {self.physical!r}; it cannot be dropped")
        self.client.delete_collection(self.physical)
        self._languages.clear()
        self.mirror.invalidate()
        self.close()

    def update_meta(self, key: str, change: Callable[[Any], Any]) -> Any:
        """Replace a JSON value in the collection metadata by `change(current)`, one process at a time.

        Chroma replaces a collection's metadata as a whole and has no compare-and-set, so
        every babelrank process on one collection serialises these updates with a lock (see
        `babelrank.store.lock.MetadataLock`): the current value is re-read under it, so no update is lost.

        Args:
            key: the metadata key.
            change: gets the current value (None when absent) and returns the new one, or
                None to leave it as it is.

        Returns:
            The value stored afterwards.
        """
        with self._meta_lock.hold():
            self.reload()
            value = change(self.get_meta(key))
            if value is None:
                return self.get_meta(key)
            self.set_meta(key, value)
            return value

    # ---- writes -------------------------------------------------------------------------
    def upsert(self, ids: Sequence[str], embeddings: np.ndarray, texts: Sequence[str], metadatas: Sequence[Mapping[str, Any]]) -> None:
        """Insert or replace chunks."""
        limit = self.client.get_max_batch_size()
        languages = [chunk_language(meta) for meta in metadatas]
        self._languages.update(zip(ids, languages))
        for i in range(0, len(ids), limit):
            self.collection.upsert(
                ids=list(ids[i : i + limit]),
                embeddings=np.asarray(embeddings[i : i + limit], dtype=np.float32),
                documents=list(texts[i : i + limit]),
                metadatas=[dict(m) for m in metadatas[i : i + limit]],
            )
        self.mirror.put(ids, embeddings, languages)

    def delete_ids(self, ids: Sequence[str]) -> None:
        """Delete chunks by id."""
        for i in range(0, len(ids), _PAGE):
            self.collection.delete(ids=list(ids[i : i + _PAGE]))
        for cid in ids:
            self._languages.pop(cid, None)
        self.mirror.drop(ids)

    # ---- reads --------------------------------------------------------------------------
    def _get(self, **kwargs: Any) -> Any:
        return _retrying(lambda: self.collection.get(**kwargs))

    def _query(self, **kwargs: Any) -> Any:
        return _retrying(lambda: self.collection.query(**kwargs))

    def count(self) -> int:
        return int(_retrying(self.collection.count))

    def get(self, ids: Sequence[str], include_embeddings: bool = True) -> dict[str, tuple[str, dict[str, Any], np.ndarray | None]]:
        """Chunks by id: `{id: (text, metadata, embedding)}` for those present."""
        out: dict[str, tuple[str, dict[str, Any], np.ndarray | None]] = {}
        include = ["documents", "metadatas"] + (["embeddings"] if include_embeddings else [])
        for i in range(0, len(ids), _PAGE):
            res = self._get(ids=list(ids[i : i + _PAGE]), include=include)
            embs = res.get("embeddings") if include_embeddings else None
            for j, cid in enumerate(res["ids"]):
                emb = np.asarray(embs[j], dtype=np.float32) if embs is not None else None
                out[cid] = (res["documents"][j], dict(res["metadatas"][j]), emb)
        return out

    def docs_state(self, doc_ids: Sequence[str]) -> dict[str, StoredDoc]:
        """Stored chunk ids and hashes of some documents (absent documents are left out)."""
        found: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
        for i in range(0, len(doc_ids), 500):
            res = self._get(where={"doc_id": {"$in": list(doc_ids[i : i + 500])}}, include=["metadatas"])
            for cid, meta in zip(res["ids"], res["metadatas"]):
                found.setdefault(str(meta["doc_id"]), []).append((cid, meta))
        state = {}
        for doc_id, chunks in found.items():
            hashes = {m.get("doc_sha256") for _, m in chunks}
            counts = {m.get("chunk_count") for _, m in chunks}
            state[doc_id] = StoredDoc(
                doc_id,
                hashes.pop() if len(hashes) == 1 else None,
                counts.pop() if len(counts) == 1 else None,
                tuple(sorted(cid for cid, _ in chunks)),
            )
        return state

    def iter_all(self, include_embeddings: bool = False, where: Mapping[str, Any] | None = None) -> Iterator[tuple[list[str], list[dict[str, Any]], np.ndarray | None]]:
        """Every chunk, page by page: `(ids, metadatas, embeddings or None)`."""
        include = ["metadatas"] + (["embeddings"] if include_embeddings else [])
        offset = 0
        while True:
            res = self._get(include=include, limit=_PAGE, offset=offset, where=dict(where) if where else None)
            if not res["ids"]:
                return
            embs = np.asarray(res["embeddings"], dtype=np.float32) if include_embeddings else None
            yield list(res["ids"]), [dict(m) for m in res["metadatas"]], embs
            offset += len(res["ids"])

    def query(self, vector: np.ndarray, k: int, where: Mapping[str, Any] | None = None, include_embeddings: bool = False) -> list[Hit]:
        """Nearest chunks to `vector` (cosine), best first (fewer when the store holds fewer)."""
        include = ["documents", "metadatas", "distances"] + (["embeddings"] if include_embeddings else [])
        res = self._query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=k,
            where=dict(where) if where else None,
            include=include,
        )
        embs = res["embeddings"][0] if include_embeddings else None
        return [
            Hit(
                id=cid,
                text=res["documents"][0][i],
                metadata=dict(res["metadatas"][0][i]),
                score=1.0 - float(res["distances"][0][i]),
                embedding=np.asarray(embs[i], dtype=np.float32) if embs is not None else None,
            )
            for i, cid in enumerate(res["ids"][0])
        ]

    def nearest(self, vector: np.ndarray, k: int, where: Mapping[str, Any] | None = None) -> tuple[list[str], np.ndarray]:
        """Ids and cosines of the k nearest chunks, best first.

        Distances only: without documents and metadata Chroma answers a query of a few hundred
        neighbours about as fast as one of 50 (see `query` for whole hits).
        """
        res = self._query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=k,
            where=dict(where) if where else None,
            include=["distances"],
        )
        return list(res["ids"][0]), 1.0 - np.asarray(res["distances"][0], dtype=np.float64)

    def languages(self, ids: Sequence[str]) -> list[str]:
        """The language tag of each chunk id (cached; a missing chunk gives "und")."""
        cache = self._languages
        found = [cache.get(cid) for cid in ids]
        missing = [cid for cid, lang in zip(ids, found) if lang is None]
        if not missing:
            return found  # type: ignore[return-value]
        for i in range(0, len(missing), _PAGE):
            res = self._get(ids=missing[i : i + _PAGE], include=["metadatas"])
            for cid, meta in zip(res["ids"], res["metadatas"]):
                cache[cid] = chunk_language(meta)
        return [cache.get(cid, UNDETERMINED) for cid in ids]

    def hits(self, ids: Sequence[str], scores: Sequence[float], include_embeddings: bool = False) -> list[Hit]:
        """Whole hits for some chunk ids, in the given order, with the given scores."""
        found = self.get(ids, include_embeddings=include_embeddings)
        return [Hit(cid, found[cid][0], found[cid][1], float(score), found[cid][2])
                for cid, score in zip(ids, scores) if cid in found]
