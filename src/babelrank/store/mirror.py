"""An in-memory copy of a collection's vectors and language tags, and the exact scan over it.

A collection small enough (`max_floats` vector components) is scored exactly over every chunk
from memory instead of through Chroma's approximate index. The copy is read from the store on
first use (now, or on a background thread), kept in step with the writes of the store object
that owns it, and dropped when the collection may have been changed from elsewhere.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np

from babelrank.schema import chunk_language

logger = logging.getLogger(__name__)

Score = Callable[[np.ndarray, np.ndarray, list[str]], np.ndarray]
"""`score(cosines, codes, names)`: scores of all chunks (chunk i in language `names[codes[i]]`; -inf leaves it out)."""

_BLAS: Any = None  # one ThreadpoolController per process, made on first use (it inspects the loaded libraries)


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


class VectorSource(Protocol):
    """Where the copy is read from (a `ChromaStore`)."""

    name: str

    def count(self) -> int: ...

    def iter_all(self, include_embeddings: bool = False) -> Iterator[tuple[list[str], list[dict[str, Any]], np.ndarray | None]]: ...


class _Rows:
    """The copy itself: unit vectors and language codes, one row per chunk.

    Rows are appended on insert and swapped with the last row on delete; language tags are
    small integer codes into `names`.
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


class VectorMirror:
    """The in-memory copy of one collection (see the module docstring); thread-safe.

    Args:
        source: the store it copies; its writes must be reported through `put` and `drop`,
            and anything else that may change it through `invalidate`.
    """

    def __init__(self, source: VectorSource) -> None:
        self._source = source
        self._rows: _Rows | None = None
        self._lock = threading.Lock()
        self._building = threading.Event()
        self._writes = 0  # writes seen (a copy read across one is discarded)

    @property
    def loaded(self) -> bool:
        """Whether a copy is in memory now."""
        return self._rows is not None

    def put(self, ids: Sequence[str], vectors: np.ndarray, languages: Sequence[str]) -> None:
        """Report an insert or replace of chunks."""
        with self._lock:
            self._writes += 1
            if self._rows is not None:
                self._rows.put(ids, np.asarray(vectors, dtype=np.float32), languages)

    def drop(self, ids: Sequence[str]) -> None:
        """Report a delete of chunks."""
        with self._lock:
            self._writes += 1
            if self._rows is not None:
                self._rows.drop(ids)

    def invalidate(self) -> None:
        """Forget the copy (the collection may have been changed by another process)."""
        with self._lock:
            self._rows = None
            self._writes += 1

    def scan(self, vector: np.ndarray, k: int, score: Score, max_floats: int, wait: bool = True) -> tuple[list[str], np.ndarray] | None:
        """Ids and scores of the k best chunks by an exact scan of every stored vector.

        Args:
            vector: the query vector (unit length).
            k: how many chunks.
            score: turns the exact cosines of `vector` with all chunks into scores (`Score`).
            max_floats: the most vector components the copy may hold.
            wait: read a missing copy now; else on a background thread, answering None until
                it is ready.

        Returns:
            `(ids, scores)` best first; None, and nothing is held, when the collection has more
            than `max_floats` vector components (search Chroma instead) or the copy is not ready.
        """
        dim = int(np.shape(vector)[-1])
        with self._lock:
            rows = self._rows
            if rows is not None and len(rows.ids) * dim > max_floats:
                self._rows = rows = None  # grew too big
        if rows is None:
            if wait:
                self.load(dim, max_floats)
            elif not self._building.is_set():
                self._building.set()
                threading.Thread(target=self.load, args=(dim, max_floats), daemon=True).start()
            with self._lock:
                rows = self._rows
            if rows is None:
                return None
        with self._lock:
            n = len(rows.ids)
            with _one_blas_thread():
                cosines = rows.vectors[:n] @ np.asarray(vector, dtype=np.float32)
            scores = score(cosines, rows.codes[:n], rows.names)
            top = np.argpartition(-scores, k - 1)[:k] if n > k else np.arange(n)
            top = top[np.argsort(-scores[top], kind="stable")]
            top = top[np.isfinite(scores[top])]
            return [rows.ids[i] for i in top], scores[top]

    def load(self, dim: int, max_floats: int) -> None:
        """Read every vector into a new copy; kept only if no write came meanwhile (and it fits)."""
        source = self._source
        try:
            with self._lock:
                writes = self._writes
            count = source.count()
            if count == 0 or count * dim > max_floats:
                return
            started = time.perf_counter()
            rows = _Rows(dim)
            for ids, metas, vectors in source.iter_all(include_embeddings=True):
                rows.put(ids, vectors, [chunk_language(m) for m in metas])
            with self._lock:
                if self._writes == writes:
                    self._rows = rows
                    logger.info("neutral search: %d vectors of %r read into memory in %.1f s",
                                len(rows.ids), source.name, time.perf_counter() - started)
        except Exception as exc:  # a closed or unreachable store: Chroma search still works
            logger.warning("could not read the vectors of %r into memory: %s", source.name, exc)
        finally:
            self._building.clear()
