"""The served index plus the machinery that keeps model and store work off the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from babelrank.apps.server.errors import ApiError
from babelrank.config import ServerSettings, Settings
from babelrank.errors import BabelrankError
from babelrank.index import BabelIndex
from babelrank.ingest.pipeline import IngestReport
from babelrank.ingest.sources import SourceDocument

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Service:
    """The index plus the machinery that keeps model work off the event loop.

    Blocking work runs on two worker threads, one lane each: queries (and statistics) on one,
    writes (start-up, ingest, delete) on the other, so a query never queues behind an ingest;
    the two share the models through their locks (`BiEncoder.lock`: one embedding slice at a
    time). Writes are also serialised with an `asyncio.Lock`.

    Args:
        settings: the index settings (used when the service opens its own index).
        server: the HTTP layer's settings.
        index: an open index to serve (the caller keeps ownership); None = open one at `start`
            and close it at `stop`.
    """

    def __init__(self, settings: Settings, server: ServerSettings, index: BabelIndex | None = None) -> None:
        self.settings = settings
        self.server = server
        self.index = index
        self.owns_index = index is None
        self.write_lock: asyncio.Lock | None = None
        self.lanes: dict[str, ThreadPoolExecutor] = {}

    async def start(self) -> None:
        """Start the lanes, open the index (unless given one) and load every model once.

        Raises:
            BabelrankError: e.g. another process holds the embedded store, or a model is
                missing (logged in one line); the service is stopped again.
        """
        self.write_lock = asyncio.Lock()  # created inside the serving event loop
        self.lanes = {lane: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"babelrank-{lane}") for lane in ("read", "write")}
        try:
            if self.index is None:
                self.index = await self.run(BabelIndex, self.settings, lane="write")
            # load the reranker and language-ID models now (once), not on the first queries
            await self.run(self.index.warm_up)
        except BaseException as exc:
            if isinstance(exc, BabelrankError):  # a locked store, a missing model: say it in one line
                logger.error("cannot start: %s", exc)
            await self.stop()
            raise
        logger.info("ready: collection %r at %s", self.index.store.name, self.index.store.location)

    async def stop(self) -> None:
        """Let running work finish, stop the lanes, and close the index if the service opened it."""
        lanes, self.lanes = self.lanes, {}
        for executor in lanes.values():
            await asyncio.to_thread(executor.shutdown, wait=True)  # lets running work finish
        if self.owns_index and self.index is not None:
            self.index.close()
            self.index = None

    async def run(self, fn: Callable[..., T], *args: Any, lane: str = "read", **kwargs: Any) -> T:
        """Run blocking model/store work on the worker thread of `lane` ("read" or "write")."""
        if not self.lanes:
            raise ApiError("not_ready", "the service is not started (its lifespan has not run)")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.lanes[lane], lambda: fn(*args, **kwargs))

    async def ingest(self, docs: Sequence[SourceDocument]) -> IngestReport:
        """Ingest `docs` under the write lock, one slice (`ServerSettings.ingest_slice_chars`) per
        write-lane job, so that a delete waits for one slice, not for the whole request."""
        report = IngestReport()
        async with self.writing():
            for part in ingest_slices(docs, self.server.ingest_slice_chars):
                await self.run(self.require_index().ingest_documents, part, progress=False, report=report, lane="write")
        return report

    def writing(self) -> asyncio.Lock:
        """The lock that serialises writes (ingest, delete)."""
        if self.write_lock is None:
            raise ApiError("not_ready", "the service is not started (its lifespan has not run)")
        return self.write_lock

    def require_index(self) -> BabelIndex:
        """The served index (`ApiError` ``not_ready`` while it loads)."""
        if self.index is None:
            raise ApiError("not_ready", "the index is not loaded yet")
        return self.index


def ingest_slices(docs: Sequence[SourceDocument], max_chars: int) -> list[list[SourceDocument]]:
    """Consecutive slices of `docs` of about `max_chars` characters of text (a longer document
    alone); documents sharing an id go in the first one's slice, so the ingest still keeps the
    first of them and reports the others as duplicates."""
    slices: list[list[SourceDocument]] = []
    home: dict[str, int] = {}
    size = 0
    for doc in docs:
        at = home.get(doc.doc_id)
        if at is None:
            if not slices or (slices[-1] and size + len(doc.text) > max_chars):
                slices.append([])
                size = 0
            at = home[doc.doc_id] = len(slices) - 1
            size += len(doc.text)
        slices[at].append(doc)
    return slices
