"""The ingest pipeline: chunk, tag language, embed, write — idempotent and resumable."""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np
from tqdm.auto import tqdm

from babelrank.ingest.chunking import Chunk, TokenChunker
from babelrank.ingest.sources import Skipped, SourceDocument
from babelrank.models.bi_encoder import BiEncoder
from babelrank.models.language import Detection, LanguageDetector
from babelrank.schema import chunk_id, chunk_language, user_key
from babelrank.store.chroma import ChromaStore

logger = logging.getLogger(__name__)

_CHUNK_CHARS = 200_000
"""Characters of documents chunked per batched tokenizer call (a few hundred chunks)."""


class WriteListener(Protocol):
    """Told about every vector written to or removed from the collection (e.g. calibration)."""

    def before_write(self) -> None: ...

    def on_write(self, added: np.ndarray, added_languages: Sequence[str], removed: np.ndarray, removed_languages: Sequence[str]) -> None: ...


@dataclass
class IngestReport:
    """What an ingest run did."""

    documents: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    chunks_written: int = 0
    chunks_embedded: int = 0
    chunks_deleted: int = 0
    truncated: int = 0
    languages: Counter = field(default_factory=Counter)
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        d = dict(self.__dict__)
        d["languages"] = dict(self.languages)
        d["skipped"] = [s.__dict__ for s in self.skipped]
        return d


@dataclass(frozen=True)
class _Prepared:
    doc: SourceDocument
    doc_sha256: str
    chunks: list[Chunk]
    hashes: list[str]
    ids: list[str]
    is_new: bool


_Row = tuple[_Prepared, int]  # a document and the index of one of its chunks


@dataclass
class _Written:
    """What the writer has stored of one group so far (the listener hears of it once per group)."""

    vectors: list[np.ndarray] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    started: bool = False


class _Writer:
    """Runs jobs one at a time, in order, on a background thread (Chroma writes overlap encoding).

    At most `pending` jobs wait. The first failure stops it: later jobs are skipped and the
    exception is raised in the caller's thread by the next `submit` or by `close`.
    """

    def __init__(self, pending: int = 2) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=pending)
        self._error: BaseException | None = None
        self._abort = False
        self._thread = threading.Thread(target=self._loop, name="babelrank-ingest-writer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._error is None and not self._abort:
                try:
                    job()
                except BaseException as exc:  # KeyboardInterrupt too: re-raised in the caller's thread
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, job: Callable[[], None]) -> None:
        self._raise()
        self._jobs.put(job)

    def close(self, discard: bool = False) -> None:
        """Wait for the queued jobs (or, with `discard`, only the running one); raise a failure."""
        self._abort = discard
        self._jobs.put(None)
        self._thread.join()
        self._raise()


class Ingestor:
    """Writes documents into a `ChromaStore` so that the store ends in one well-defined state.

    A document whose text, metadata and chunking are unchanged since the last complete write
    is skipped without embedding. A changed document gets its new chunks written first, then
    its stale chunks deleted; a run that is killed anywhere is repaired by the next run,
    which finds the document incomplete (chunk count or hash mismatch) and writes it again.
    Chunks whose id (doc, index, content hash) is already stored reuse the stored vector.

    Documents go in groups of about `group_chunks` chunks. A group's new chunks are embedded
    longest first, in slices of four batches; while the next slice is embedded, a background
    thread tags the languages of the last one and writes it to Chroma, so that language ID
    and writes overlap encoding. The collection's listener hears of each group once.
    """

    def __init__(
        self,
        encoder: BiEncoder,
        store: ChromaStore,
        chunker: TokenChunker,
        detector: LanguageDetector,
        *,
        batch_size: int = 32,
        group_chunks: int = 256,
        progress: bool | None = None,
        listener: WriteListener | None = None,
    ) -> None:
        self.encoder = encoder
        self.store = store
        self.chunker = chunker
        self.detector = detector
        self.batch_size = batch_size
        self.group_chunks = group_chunks
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.listener = listener
        self._settings_key = json.dumps([chunker.max_tokens, chunker.overlap, encoder.fingerprint()], sort_keys=True)

    def doc_sha256(self, doc: SourceDocument) -> str:
        """Hash of everything that decides a document's chunks and vectors."""
        payload = json.dumps([doc.text, doc.source, dict(doc.metadata), self._settings_key], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def run(self, docs: Sequence[SourceDocument], report: IngestReport | None = None) -> IngestReport:
        """Ingest documents; returns the report (also updated in place when given)."""
        report = report or IngestReport()
        start = time.perf_counter()
        unique: dict[str, SourceDocument] = {}
        for doc in docs:
            if doc.doc_id in unique:
                logger.warning("duplicate document id %s: keeping the first one", doc.doc_id)
                report.skipped.append(Skipped(doc.source, f"duplicate document id {doc.doc_id}"))
                continue
            unique[doc.doc_id] = doc
        report.documents += len(unique)
        state = self.store.docs_state(list(unique))
        todo = []
        for doc in unique.values():
            sha = self.doc_sha256(doc)
            stored = state.get(doc.doc_id)
            if stored is not None and stored.complete and stored.doc_sha256 == sha:
                report.unchanged += 1
            else:
                todo.append((doc, sha))
        bar = tqdm(total=len(todo), unit="doc", desc="ingest", disable=not self.progress or not todo)
        writer = _Writer()
        try:
            for group in self._groups(todo, state):
                self._embed_group(group, state, writer, report, bar)
            writer.close()
        except BaseException:
            writer.close(discard=True)
            raise
        finally:
            bar.close()
        report.truncated += self.encoder.truncated
        self.encoder.truncated = 0
        report.seconds += time.perf_counter() - start
        return report

    def _groups(self, todo: list[tuple[SourceDocument, str]], state: dict[str, Any]) -> Iterator[list[_Prepared]]:
        group: list[_Prepared] = []
        size = 0
        for prepared in self._prepare(todo, state):
            group.append(prepared)
            size += len(prepared.ids)
            if size >= self.group_chunks:
                yield group
                group, size = [], 0
        if group:
            yield group

    def _prepare(self, todo: list[tuple[SourceDocument, str]], state: dict[str, Any]) -> Iterator[_Prepared]:
        """Chunk and hash documents, a batch of them per tokenizer call (about `_CHUNK_CHARS` characters)."""
        start = 0
        while start < len(todo):
            end, chars = start, 0
            while end < len(todo) and (end == start or chars + len(todo[end][0].text) <= _CHUNK_CHARS):
                chars += len(todo[end][0].text)
                end += 1
            batch = todo[start:end]
            for (doc, sha), chunks in zip(batch, self.chunker.split_many([doc.text for doc, _ in batch])):
                hashes = [hashlib.sha256(c.text.encode("utf-8")).hexdigest() for c in chunks]
                ids = [chunk_id(doc.doc_id, i, h) for i, h in enumerate(hashes)]
                yield _Prepared(doc, sha, chunks, hashes, ids, doc.doc_id not in state)
            start = end

    def _embed_group(self, group: list[_Prepared], state: dict[str, Any], writer: _Writer, report: IngestReport, bar: Any) -> None:
        """Embed a group's new chunks slice by slice, handing each slice to the writer."""
        old_ids = [cid for p in group if p.doc.doc_id in state for cid in state[p.doc.doc_id].chunk_ids]
        old = self.store.get(old_ids) if old_ids else {}
        rows = [(p, i) for p in group for i in range(len(p.ids))]
        written = _Written()
        reused = [(p, i) for p, i in rows if p.ids[i] in old]
        if reused:
            writer.submit(partial(self._write_rows, reused, np.stack([old[p.ids[i]][2] for p, i in reused]), 0, report, written))
        missing = sorted(((p, i) for p, i in rows if p.ids[i] not in old), key=lambda r: -r[0].chunks[r[1]].n_tokens)
        step = max(1, self.batch_size) * 4
        for s in range(0, len(missing), step):
            part = missing[s : s + step]
            vectors = self.encoder.encode_documents([p.chunks[i].text for p, i in part], self.batch_size)
            writer.submit(partial(self._write_rows, part, vectors, len(part), report, written))
        writer.submit(partial(self._finish_group, group, old_ids, old, report, bar, written))

    def _write_rows(self, rows: list[_Row], vectors: np.ndarray, embedded: int, report: IngestReport, written: _Written) -> None:
        """Tag languages, then upsert some chunks of the group (writer thread)."""
        texts = [p.chunks[i].text for p, i in rows]
        detections = self.detector.detect_many(texts)
        metas = [self._metadata(p, i, det) for (p, i), det in zip(rows, detections)]
        languages = [m["language"] for m in metas]
        if self.listener is not None and not written.started:
            self.listener.before_write()
        written.started = True
        self.store.upsert([p.ids[i] for p, i in rows], vectors, texts, metas)
        written.vectors.append(vectors)
        written.languages.extend(languages)
        report.chunks_embedded += embedded
        report.chunks_written += len(rows)
        report.languages.update(languages)

    def _finish_group(
        self, group: list[_Prepared], old_ids: list[str], old: dict[str, Any], report: IngestReport, bar: Any, written: _Written
    ) -> None:
        """After all of a group's chunks are written: delete the stale ones, tell the listener (writer thread)."""
        keep = {cid for p in group for cid in p.ids}
        stale = [cid for cid in old_ids if cid not in keep]
        removed = [old[c] for c in old_ids if c in old]
        if self.listener is not None and not written.started and (stale or removed):
            self.listener.before_write()
        if stale:
            self.store.delete_ids(stale)
        if self.listener is not None and (written.vectors or removed):
            empty = np.zeros((0, self.encoder.dimension), np.float32)
            self.listener.on_write(
                np.concatenate(written.vectors) if written.vectors else empty, written.languages,
                np.stack([r[2] for r in removed]) if removed else empty, [chunk_language(r[1]) for r in removed],
            )
        report.chunks_deleted += len(stale)
        for p in group:
            if p.is_new:
                report.added += 1
            else:
                report.updated += 1
            if not p.ids:
                logger.warning("document %s produced no chunks", p.doc.doc_id)
        bar.update(len(group))

    @staticmethod
    def _metadata(p: _Prepared, i: int, detection: Detection) -> dict[str, Any]:
        chunk = p.chunks[i]
        return {
            **{user_key(k): v for k, v in p.doc.metadata.items()},
            "doc_id": p.doc.doc_id,
            "source": p.doc.source,
            "chunk_index": i,
            "chunk_count": len(p.chunks),
            "language": detection.language,
            "language_confidence": round(float(detection.confidence), 4),
            "content_sha256": p.hashes[i],
            "doc_sha256": p.doc_sha256,
            "char_start": chunk.char_start,
            "char_end": chunk.char_end,
        }

    def delete(self, doc_ids: Iterable[str]) -> tuple[int, int]:
        """Delete documents by id; returns (documents, chunks) deleted."""
        doc_ids = list(doc_ids)
        state = self.store.docs_state(doc_ids)
        ids = [cid for s in state.values() for cid in s.chunk_ids]
        if not ids:
            return 0, 0
        old = self.store.get(ids)
        if self.listener is not None:
            self.listener.before_write()
        self.store.delete_ids(ids)
        if self.listener is not None:
            self.listener.on_write(
                np.zeros((0, self.encoder.dimension), np.float32), [],
                np.stack([v[2] for v in old.values()]), [chunk_language(v[1]) for v in old.values()],
            )
        return len(state), len(ids)
