"""Who may write a store: the process lock of an embedded store and the metadata lock of a collection.

An embedded Chroma store (a folder) is opened by one process at a time: `lock_store` takes an
exclusive advisory lock on a file in it. A collection's metadata (where the language
calibration lives) is changed read-modify-write; `MetadataLock` serialises those changes:
a thread lock in embedded mode (the file lock keeps other processes out), an empty lock
collection on a Chroma server (shared by processes on any machine).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from babelrank.errors import StoreLockedError

logger = logging.getLogger(__name__)

META_LOCK_SUFFIX = ".babelrank-lock"
META_LOCK_LEASE = 30.0
"""Seconds after which a metadata lock (an empty collection named `<collection>.babelrank-lock`
on a Chroma server) counts as left by a killed process and is broken. It is held for a few
requests; the holder's clock dates it, so the clocks of the writing machines must agree to
well within this."""
_LOCAL_META_LOCKS: dict[tuple[str, str], threading.Lock] = {}
"""Process-wide on purpose: every `MetadataLock` of one embedded collection in this process
(several indexes may open one store) shares one thread lock."""


class FileLock:
    """An exclusive, non-blocking advisory lock on a file, shared by all users in this process.

    POSIX only (a no-op elsewhere). Other processes get `StoreLockedError`.
    """

    _held: dict[Path, list[int]] = {}  # process-wide: path -> [fd, users] (an flock is per process)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._active = False

    def acquire(self) -> None:
        """Take the lock (again, in this process, when it holds it already).

        Raises:
            StoreLockedError: another process holds it.
        """
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
        """Give this user's hold back (the file is unlocked when no user in this process holds it)."""
        if not self._active:
            return
        self._active = False
        held = self._held[self.path]
        held[1] -= 1
        if held[1] == 0:
            os.close(held[0])
            del self._held[self.path]


def lock_store(path: Path | str | None) -> FileLock:
    """Take the lock of the embedded store at `path` (the default store when None).

    `ChromaStore` takes it as well; taking it first lets a caller refuse a store in use before
    slow work such as loading a model. Hold it until the store is open, then `release()` it.

    Raises:
        StoreLockedError: another process holds the store.
    """
    lock = FileLock(Path(path or ".babelrank/chroma").expanduser().resolve() / "babelrank.lock")
    lock.acquire()
    return lock


class MetadataLock:
    """Exclusive use of one collection's metadata, among threads and processes.

    Args:
        client: the Chroma client of the collection.
        collection: the collection's name.
        location: where the store is (its folder or server URL; in messages, and the key of the
            embedded mode's thread lock).
        shared: True for a Chroma server (other processes write to it as well).
    """

    def __init__(self, client: Any, collection: str, location: str, shared: bool) -> None:
        self.client = client
        self.collection = collection
        self.location = location
        self.shared = shared

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock for the `with` block: a thread lock in embedded mode, a lock collection on a server."""
        if not self.shared:
            with _LOCAL_META_LOCKS.setdefault((self.location, self.collection), threading.Lock()):
                yield
            return
        name = self.collection + META_LOCK_SUFFIX
        self._take(name)
        try:
            yield
        finally:
            self.client.delete_collection(name)

    def _take(self, name: str) -> None:
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
                raise ConnectionError(f"cannot lock the metadata of {self.collection!r} at {self.location}: {error}") from None
            if since is not None and time.time() - since > META_LOCK_LEASE:
                logger.warning("breaking the metadata lock of %r, held for %.0f s (by a killed process?)",
                               self.collection, time.time() - since)
                self._drop(name)
            elif time.monotonic() > deadline:
                raise TimeoutError(
                    f"the metadata lock of {self.collection!r} at {self.location} stays taken; if no babelrank process "
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

    def _drop(self, name: str) -> None:
        try:
            self.client.delete_collection(name)
        except Exception as exc:  # another process broke it first
            logger.debug("could not delete %s: %s", name, exc)
