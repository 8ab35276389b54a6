"""The Chroma collection: ids, metadata schema, fingerprint check, upserts, deletes, search."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from babelrank.errors import ModelMismatchError, StoreLockedError

logger = logging.getLogger(__name__)

FINGERPRINT_PREFIX = "babelrank:"
CALIBRATION_KEY = "babelrank:calibration"
_PAGE = 2000
_READ_TRIES = 6
"""A Chroma read failing with an internal error is tried this often, waiting 0.05 s, 0.1 s, ...
between tries: while another process writes, a Chroma 1.x server can briefly answer a read with
"Error creating hnsw segment reader: Nothing found on disk" (seen when a collection's first
index segment is being flushed; the next read, 25 ms later, succeeded)."""
META_LOCK_SUFFIX = ".babelrank-lock"
META_LOCK_LEASE = 30.0
"""Seconds after which a metadata lock (an empty collection named `<collection>.babelrank-lock`
on a Chroma server) counts as left by a killed process and is broken. It is held for a few
requests; the holder's clock dates it, so the clocks of the writing machines must agree to
well within this."""
_LOCAL_META_LOCKS: dict[tuple[str, str], threading.Lock] = {}
# HNSW search/build breadth. Chroma's default (100) loses true nearest neighbours on clustered
# embeddings: on e5-small Tatoeba ukr+eng (2000 vectors) 3 % of queries got a wrong top-2 and
# ~0.2 of the exact top-50 went missing per query; at 400 none did, for < 0.3 ms per query.
HNSW_EF = 400


@dataclass(frozen=True)
class Hit:
    """One search result from the collection."""

    id: str
    text: str
    metadata: dict[str, Any]
    score: float  # cosine of query and chunk vectors; the neutral score from neutral search
    embedding: np.ndarray | None = None


_BLAS: Any = None


def _one_blas_thread() -> Any:
    """A context running numpy's BLAS on one thread.

    A multi-threaded OpenBLAS product leaves its threads spinning, which halved the speed of
    the next torch query embedding on 2 cores (19 -> 46 ms); one thread scans 43k x 384
    floats in ~6 ms, as fast as two.
    """
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


class _Mirror:
    """An in-memory copy of a collection's vectors and language tags, for exact scans.

    Rows (unit vectors) are appended on insert and swapped with the last row on delete;
    language tags are small integer codes into `names`.
    """

    def __init__(self, dim: int) -> None:
        self.vectors = np.empty((1024, dim), dtype=np.float32)
        self.codes = np.empty(1024, dtype=np.int32)
        self.ids: list[str] = []
        self.rows: dict[str, int] = {}
        self.names: list[str] = []
        self._code: dict[str, int] = {}

    def put(self, ids: Sequence[str], vectors: np.ndarray, languages: Sequence[str]) -> None:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms > 0, norms, 1.0)  # cosines, as Chroma's space
        for cid, vec, lang in zip(ids, vectors, languages):
            row = self.rows.get(cid)
            if row is None:
                row = len(self.ids)
                if row == len(self.vectors):
                    self.vectors = np.concatenate([self.vectors, np.empty_like(self.vectors)])
                    self.codes = np.concatenate([self.codes, np.empty_like(self.codes)])
                self.ids.append(cid)
                self.rows[cid] = row
            code = self._code.get(lang)
            if code is None:
                code = self._code[lang] = len(self.names)
                self.names.append(lang)
            self.vectors[row] = vec
            self.codes[row] = code

    def drop(self, ids: Sequence[str]) -> None:
        for cid in ids:
            row = self.rows.pop(cid, None)
            if row is None:
                continue
            last = len(self.ids) - 1
            if row != last:
                moved = self.ids[last]
                self.vectors[row], self.codes[row] = self.vectors[last], self.codes[last]
                self.ids[row] = moved
                self.rows[moved] = row
            self.ids.pop()


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


class _FileLock:
    """An exclusive, non-blocking advisory lock on a file, shared by all users in this process.

    POSIX only (a no-op elsewhere). Other processes get `StoreLockedError`.
    """

    _held: dict[Path, list[int]] = {}  # path -> [fd, users]

    def __init__(self, path: Path) -> None:
        self.path = path
        self._active = False

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: Chroma's own locking applies
            return
        held = self._held.get(self.path)
        if held is not None:
            held[1] += 1
            self._active = True
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreLockedError(
                f"the Chroma store at {self.path.parent} is in use by another babelrank process. "
                "An embedded store allows one process at a time; for several processes or workers "
                "run a Chroma server (`chroma run --path DIR --port 8001`) and pass "
                "--chroma-host/--chroma-port (BABELRANK_CHROMA_HOST / BABELRANK_CHROMA_PORT)."
            ) from None
        self._held[self.path] = [fd, 1]
        self._active = True

    def release(self) -> None:
        if not self._active:
            return
        self._active = False
        held = self._held[self.path]
        held[1] -= 1
        if held[1] == 0:
            os.close(held[0])
            del self._held[self.path]


def lock_store(path: Path | str | None) -> _FileLock:
    """Take the lock of the embedded store at `path` (the default store when None).

    `ChromaStore` takes it as well; taking it first lets a caller refuse a store in use before
    slow work such as loading a model. Hold it until the store is open, then `release()` it.

    Raises:
        StoreLockedError: another process holds the store.
    """
    lock = _FileLock(Path(path or ".babelrank/chroma").expanduser().resolve() / "babelrank.lock")
    lock.acquire()
    return lock


class ChromaStore:
    """A Chroma collection holding babelrank chunks (cosine space, raw model vectors).

    Opens an embedded `PersistentClient` at `path`, or an `HttpClient` when `host` is given.
    The collection records the embedding model's fingerprint and refuses any other model.
    """

    def __init__(
        self,
        collection: str,
        fingerprint: Mapping[str, str | int],
        *,
        path: Path | None = None,
        host: str | None = None,
        port: int = 8000,
    ) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        self._lock: _FileLock | None = None
        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if host:
            self.location = f"http://{host}:{port}"
            try:
                self.client = chromadb.HttpClient(host=host, port=port, settings=chroma_settings)
                self.client.heartbeat()
            except Exception as exc:
                raise ConnectionError(f"cannot reach the Chroma server at {self.location}: {exc}") from None
        else:
            self._lock = lock_store(path)
            self.location = str(self._lock.path.parent)
            self.client = chromadb.PersistentClient(path=self.location, settings=chroma_settings)
        self.name = collection
        # chunk id -> language tag, filled lazily by `languages`, kept in step by this
        # object's writes and dropped by `reload` (writes of other processes to a server)
        self._languages: dict[str, str] = {}
        # every vector and language tag in memory, built by the first `scan` of a collection
        # small enough for it; kept in step and dropped like `_languages`
        self._mirror: _Mirror | None = None
        self._mirror_lock = threading.Lock()
        self._mirror_building = threading.Event()
        self._writes = 0  # writes seen (an in-memory copy read across one is discarded)
        self.fingerprint = {FINGERPRINT_PREFIX + k: v for k, v in fingerprint.items()}
        try:
            self.collection = self.client.get_or_create_collection(
                collection,
                metadata=dict(self.fingerprint),
                configuration={"hnsw": {"space": "cosine", "ef_construction": HNSW_EF, "ef_search": HNSW_EF}},
                embedding_function=None,
            )
        except Exception as exc:
            self.close()
            raise ValueError(f"cannot open collection {collection!r}: {exc}") from None
        self._check_fingerprint()
        self._widen_search()

    def _widen_search(self) -> None:
        """Raise ef_search of a collection created with a narrower one (ef_construction is fixed at creation)."""
        try:
            hnsw = (self.collection.configuration or {}).get("hnsw") or {}
            if int(hnsw.get("ef_search") or HNSW_EF) < HNSW_EF:
                self.collection.modify(configuration={"hnsw": {"ef_search": HNSW_EF}})
        except Exception as exc:  # older servers or non-HNSW indexes: keep what is there
            logger.debug("could not raise ef_search of %s: %s", self.name, exc)

    def _check_fingerprint(self) -> None:
        stored = self.collection.metadata or {}
        diffs = [
            f"{k.removeprefix(FINGERPRINT_PREFIX)}: collection has {stored.get(k)!r}, model gives {v!r}"
            for k, v in self.fingerprint.items()
            if k in stored and stored[k] != v
        ]
        if diffs:
            self.close()
            raise ModelMismatchError(
                f"collection {self.name!r} at {self.location} was built with embedding model "
                f"{stored.get(FINGERPRINT_PREFIX + 'model')!r} ({'; '.join(diffs)}). "
                "Use that model, another collection name, or delete the collection and re-ingest."
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
        self.collection = self.client.get_collection(self.name, embedding_function=None)
        if self.collection.metadata != before:
            self._languages.clear()
            with self._mirror_lock:
                self._mirror = None
                self._writes += 1

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

    def update_meta(self, key: str, change: Callable[[Any], Any]) -> Any:
        """Replace a JSON value in the collection metadata by `change(current)`, one process at a time.

        Chroma replaces a collection's metadata as a whole and has no compare-and-set, so
        every babelrank process on one collection serialises these updates with a lock (see
        `META_LOCK_LEASE`): the current value is re-read under it, so no update is lost.

        Args:
            key: the metadata key.
            change: gets the current value (None when absent) and returns the new one, or
                None to leave it as it is.

        Returns:
            The value stored afterwards.
        """
        with self._meta_lock():
            self.reload()
            value = change(self.get_meta(key))
            if value is None:
                return self.get_meta(key)
            self.set_meta(key, value)
            return value

    @contextmanager
    def _meta_lock(self) -> Iterator[None]:
        """Exclusive use of the collection metadata: a thread lock in embedded mode (the file lock
        keeps other processes out), a lock collection on a Chroma server."""
        if not self.shared:
            with _LOCAL_META_LOCKS.setdefault((self.location, self.name), threading.Lock()):
                yield
            return
        name = self.name + META_LOCK_SUFFIX
        self._take_meta_lock(name)
        try:
            yield
        finally:
            self.client.delete_collection(name)

    def _take_meta_lock(self, name: str) -> None:
        """Create the lock collection `name`: wait while another process holds it, break it when held past the lease."""
        deadline = time.monotonic() + 2 * META_LOCK_LEASE
        delay, failures = 0.01, 0
        while True:
            try:
                self.client.create_collection(name, metadata={"since": time.time()}, embedding_function=None)
                return
            except Exception as exc:  # mostly "already exists" (Chroma has no error class for it)
                error = exc
            since = self._held_since(name)
            failures = failures + 1 if since is None else 0
            if failures == 5:  # no lock there, yet it cannot be created
                raise ConnectionError(f"cannot lock the metadata of {self.name!r} at {self.location}: {error}") from None
            if since is not None and time.time() - since > META_LOCK_LEASE:
                logger.warning("breaking the metadata lock of %r, held for %.0f s (by a killed process?)", self.name, time.time() - since)
                self._drop_lock(name)
            elif time.monotonic() > deadline:
                raise TimeoutError(
                    f"the metadata lock of {self.name!r} at {self.location} stays taken; if no babelrank process "
                    f"is writing to it, delete the Chroma collection {name!r}"
                )
            time.sleep(delay)
            delay = min(2 * delay, 0.2)

    def _held_since(self, name: str) -> float | None:
        """When the lock collection `name` was taken (None when there is none)."""
        try:
            return float((self.client.get_collection(name).metadata or {}).get("since", 0.0))
        except Exception:
            return None

    def _drop_lock(self, name: str) -> None:
        try:
            self.client.delete_collection(name)
        except Exception as exc:  # another process broke it first
            logger.debug("could not delete %s: %s", name, exc)

    # ---- writes -------------------------------------------------------------------------
    def upsert(self, ids: Sequence[str], embeddings: np.ndarray, texts: Sequence[str], metadatas: Sequence[Mapping[str, Any]]) -> None:
        """Insert or replace chunks."""
        limit = self.client.get_max_batch_size()
        languages = [str(meta.get("language", "und")) for meta in metadatas]
        self._languages.update(zip(ids, languages))
        for i in range(0, len(ids), limit):
            self.collection.upsert(
                ids=list(ids[i : i + limit]),
                embeddings=np.asarray(embeddings[i : i + limit], dtype=np.float32),
                documents=list(texts[i : i + limit]),
                metadatas=[dict(m) for m in metadatas[i : i + limit]],
            )
        with self._mirror_lock:
            self._writes += 1
            if self._mirror is not None:
                self._mirror.put(ids, np.asarray(embeddings, dtype=np.float32), languages)

    def delete_ids(self, ids: Sequence[str]) -> None:
        """Delete chunks by id."""
        for i in range(0, len(ids), _PAGE):
            self.collection.delete(ids=list(ids[i : i + _PAGE]))
        for cid in ids:
            self._languages.pop(cid, None)
        with self._mirror_lock:
            self._writes += 1
            if self._mirror is not None:
                self._mirror.drop(ids)

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
                cache[cid] = str((meta or {}).get("language", "und"))
        return [cache.get(cid, "und") for cid in ids]

    def scan(
        self, vector: np.ndarray, k: int, score: Callable[[np.ndarray, np.ndarray, list[str]], np.ndarray], max_floats: int,
        wait: bool = True,
    ) -> tuple[list[str], np.ndarray] | None:
        """Ids and scores of the k best chunks by an exact scan of every stored vector.

        `score(cosines, codes, names)` turns the exact cosines of `vector` with all chunks into
        scores (chunk i is in language `names[codes[i]]`; -inf leaves a chunk out). The scan
        runs on an in-memory copy of the vectors, read from Chroma on first use (`wait`: now;
        else on a background thread, answering None until it is ready) and kept in step with
        this object's writes. None, and nothing is held, when the collection has more than
        `max_floats` vector components: search Chroma instead.
        """
        dim = int(np.shape(vector)[-1])
        with self._mirror_lock:
            mirror = self._mirror
            if mirror is not None and len(mirror.ids) * dim > max_floats:
                self._mirror = mirror = None  # grew too big
        if mirror is None:
            if wait:
                self._build_mirror(dim, max_floats)
            elif not self._mirror_building.is_set():
                self._mirror_building.set()
                threading.Thread(target=self._build_mirror, args=(dim, max_floats), daemon=True).start()
            with self._mirror_lock:
                mirror = self._mirror
            if mirror is None:
                return None
        with self._mirror_lock:
            n = len(mirror.ids)
            with _one_blas_thread():
                cosines = mirror.vectors[:n] @ np.asarray(vector, dtype=np.float32)
            scores = score(cosines, mirror.codes[:n], mirror.names)
            top = np.argpartition(-scores, k - 1)[:k] if n > k else np.arange(n)
            top = top[np.argsort(-scores[top], kind="stable")]
            top = top[np.isfinite(scores[top])]
            return [mirror.ids[i] for i in top], scores[top]

    def _build_mirror(self, dim: int, max_floats: int) -> None:
        """Read every vector into a new in-memory copy; kept only if no write came meanwhile."""
        try:
            with self._mirror_lock:
                writes = self._writes
            count = self.count()
            if count == 0 or count * dim > max_floats:
                return
            started = time.perf_counter()
            mirror = _Mirror(dim)
            for ids, metas, vectors in self.iter_all(include_embeddings=True):
                mirror.put(ids, vectors, [str(m.get("language", "und")) for m in metas])
            with self._mirror_lock:
                if self._writes == writes:
                    self._mirror = mirror
                    logger.info("neutral search: %d vectors of %r read into memory in %.1f s",
                                len(mirror.ids), self.name, time.perf_counter() - started)
        except Exception as exc:  # a closed or unreachable store: Chroma search still works
            logger.warning("could not read the vectors of %r into memory: %s", self.name, exc)
        finally:
            self._mirror_building.clear()

    def hits(self, ids: Sequence[str], scores: Sequence[float], include_embeddings: bool = False) -> list[Hit]:
        """Whole hits for some chunk ids, in the given order, with the given scores."""
        found = self.get(ids, include_embeddings=include_embeddings)
        return [Hit(cid, found[cid][0], found[cid][1], float(score), found[cid][2])
                for cid, score in zip(ids, scores) if cid in found]

    def delete_collection(self) -> None:
        """Drop the whole collection."""
        self.client.delete_collection(self.name)
