"""The ingest pipeline: chunk, tag language, embed, write — idempotent and resumable."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Protocol, Sequence

import numpy as np
from tqdm.auto import tqdm

from babelrank.chunking import TokenChunker
from babelrank.language import LanguageDetector
from babelrank.models import BiEncoder
from babelrank.sources import Skipped, SourceDocument
from babelrank.store import RESERVED, ChromaStore

logger = logging.getLogger(__name__)


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


def chunk_id(doc_id: str, index: int, content_sha256: str) -> str:
    """Stable chunk id from (document id, chunk index, content hash)."""
    return f"{doc_id}::{index}::{content_sha256[:16]}"


@dataclass(frozen=True)
class _Prepared:
    doc: SourceDocument
    doc_sha256: str
    ids: list[str]
    texts: list[str]
    metadatas: list[dict[str, Any]]
    is_new: bool


class Ingestor:
    """Writes documents into a `ChromaStore` so that the store ends in one well-defined state.

    A document whose text, metadata and chunking are unchanged since the last complete write
    is skipped without embedding. A changed document gets its new chunks written first, then
    its stale chunks deleted; a run that is killed anywhere is repaired by the next run,
    which finds the document incomplete (chunk count or hash mismatch) and writes it again.
    Chunks whose id (doc, index, content hash) is already stored reuse the stored vector.
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
        try:
            for group in self._groups(todo, state):
                self._write(group, state, report)
                bar.update(len(group))
        finally:
            bar.close()
        report.truncated += self.encoder.truncated
        self.encoder.truncated = 0
        report.seconds += time.perf_counter() - start
        return report

    def _groups(self, todo: list[tuple[SourceDocument, str]], state: dict[str, Any]) -> Iterator[list[_Prepared]]:
        group: list[_Prepared] = []
        size = 0
        for doc, sha in todo:
            prepared = self._prepare(doc, sha, is_new=doc.doc_id not in state)
            group.append(prepared)
            size += len(prepared.ids)
            if size >= self.group_chunks:
                yield group
                group, size = [], 0
        if group:
            yield group

    def _prepare(self, doc: SourceDocument, sha: str, is_new: bool) -> _Prepared:
        chunks = self.chunker.split(doc.text)
        detections = self.detector.detect_many([c.text for c in chunks])
        user = {("user_" + k if k in RESERVED else k): v for k, v in doc.metadata.items()}
        ids, texts, metas = [], [], []
        for i, (chunk, det) in enumerate(zip(chunks, detections)):
            content = hashlib.sha256(chunk.text.encode("utf-8")).hexdigest()
            ids.append(chunk_id(doc.doc_id, i, content))
            texts.append(chunk.text)
            metas.append({
                **user,
                "doc_id": doc.doc_id,
                "source": doc.source,
                "chunk_index": i,
                "chunk_count": len(chunks),
                "language": det.language,
                "language_confidence": round(float(det.confidence), 4),
                "content_sha256": content,
                "doc_sha256": sha,
                "char_start": chunk.char_start,
                "char_end": chunk.char_end,
            })
        return _Prepared(doc, sha, ids, texts, metas, is_new)

    def _write(self, group: list[_Prepared], state: dict[str, Any], report: IngestReport) -> None:
        old_ids = [cid for p in group if p.doc.doc_id in state for cid in state[p.doc.doc_id].chunk_ids]
        old = self.store.get(old_ids) if old_ids else {}
        ids = [cid for p in group for cid in p.ids]
        texts = [t for p in group for t in p.texts]
        metas = [m for p in group for m in p.metadatas]
        vectors = np.zeros((len(ids), self.encoder.dimension), dtype=np.float32)
        missing = [i for i, cid in enumerate(ids) if cid not in old]
        for i, cid in enumerate(ids):
            if cid in old:
                vectors[i] = old[cid][2]
        if missing:
            vectors[missing] = self.encoder.encode_documents([texts[i] for i in missing], self.batch_size)
        if self.listener is not None:
            self.listener.before_write()
        if ids:
            self.store.upsert(ids, vectors, texts, metas)
        keep = set(ids)
        stale = [cid for cid in old_ids if cid not in keep]
        if stale:
            self.store.delete_ids(stale)
        if self.listener is not None:
            removed = [old[c] for c in old_ids if c in old]
            self.listener.on_write(
                vectors,
                [m["language"] for m in metas],
                np.stack([r[2] for r in removed]) if removed else np.zeros((0, self.encoder.dimension), np.float32),
                [str(r[1].get("language", "und")) for r in removed],
            )
        report.chunks_embedded += len(missing)
        report.chunks_written += len(ids)
        report.chunks_deleted += len(stale)
        report.languages.update(m["language"] for m in metas)
        for p in group:
            if p.is_new:
                report.added += 1
            else:
                report.updated += 1
            if not p.ids:
                logger.warning("document %s produced no chunks", p.doc.doc_id)

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
                np.stack([v[2] for v in old.values()]), [str(v[1].get("language", "und")) for v in old.values()],
            )
        return len(state), len(ids)
