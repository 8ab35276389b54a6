"""Re-embedding a collection with another model: the copy that ``babelrank reindex`` makes, resumable.

`Reindexer` copies every chunk of a source collection (its text and metadata, as stored:
the language tags, document ids and hashes, chunk counts, offsets and the documents' own keys,
everything `babelrank.schema.CHUNK_KEYS` names and more) into a target collection, with a
vector from the new model, then recalibrates the target's per-language statistics
(`babelrank.store.calibration`) from its stored vectors. It never writes to the source, so
queries on the source go on meanwhile; the switch to the target is the caller's (the facade
points the collection's name at it, `babelrank.store.aliases`).

The chunks are not cut again: they keep the boundaries the old model's tokenizer gave them
(a chunk over the new model's limit is truncated for embedding, and counted). Ingesting the
same files afterwards re-chunks them for the new model, as any change of model would.

Resuming. Chunks go in a fixed order (by id) and in fixed batches of `batch_size` chunks,
each one call of the model. A batch is done when the target holds each of its chunks with
the source's metadata; a run killed anywhere is continued by the next run, which skips the
batches done and embeds the others whole. So a resumed run embeds every chunk in the same
company as an uninterrupted one and its vectors are bit-identical to it, even with the
``onnx-int8`` backend, whose vectors depend on which texts share a batch (its activations
are quantised per batch). That is why the batch size is fixed at the first run and saved
in the target's metadata (`PLAN_KEY`): a later run uses the saved one. Chunks the source no
longer holds are deleted from the target before the switch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from tqdm.auto import tqdm

from babelrank.models.bi_encoder import BiEncoder
from babelrank.store.calibration import CalibrationKeeper
from babelrank.store.chroma import CALIBRATION_KEY, ChromaStore

logger = logging.getLogger(__name__)

PLAN_KEY = "babelrank:reindex"
"""Target collection metadata: where the copy comes from and its batch size (fixed at the first run)."""


@dataclass
class ReindexReport:
    """What a reindex did.

    Attributes:
        collection: the collection's name.
        model: the new embedding model.
        source: the physical collection read.
        target: the physical collection written (the collection's after the switch).
        chunks: chunks in the source.
        embedded: chunks embedded by this run.
        resumed: chunks an earlier, interrupted run had already written (skipped).
        removed: chunks in the target that the source no longer holds (deleted).
        batches: batches of the plan; `batch_size`: chunks per batch.
        truncated: chunks over the new model's token limit (truncated for embedding).
        switched: the collection's name now points to `target`.
        dropped: the old physical collection was deleted.
        seconds: wall time.
    """

    collection: str
    model: str
    source: str
    target: str
    chunks: int = 0
    embedded: int = 0
    resumed: int = 0
    removed: int = 0
    batches: int = 0
    batch_size: int = 0
    truncated: int = 0
    switched: bool = False
    dropped: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReindexProgress:
    """Where a reindex stands, after each batch written (for `Reindexer`'s `on_batch`)."""

    done: int
    total: int
    batch: int
    batches: int


class Reindexer:
    """Copies a collection into another with vectors from another model, resumably (see the module docstring).

    Args:
        source: the collection read (any model; never written).
        target: the collection written (opened with the new model's fingerprint).
        encoder: the new model.
        batch_size: chunks per model call, unless the target saved one at its first run.
        progress: show a progress bar (with an ETA).
        on_batch: called after each batch written, in the caller's thread.
    """

    def __init__(
        self, source: ChromaStore, target: ChromaStore, encoder: BiEncoder, *, batch_size: int = 32,
        progress: bool = False, on_batch: Callable[[ReindexProgress], None] | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.encoder = encoder
        self.batch_size = self._plan(max(1, int(batch_size)))
        self.progress = progress
        self.on_batch = on_batch

    def _plan(self, batch_size: int) -> int:
        """The batch size saved by the target's first run, or `batch_size` (then saved)."""
        plan = self.target.get_meta(PLAN_KEY)
        if isinstance(plan, dict) and int(plan.get("batch_size") or 0) > 0:
            if int(plan["batch_size"]) != batch_size:
                logger.info("continuing the reindex into %r with its batch size %d (not %d), so its vectors do not change",
                            self.target.physical, plan["batch_size"], batch_size)
            return int(plan["batch_size"])
        self.target.set_meta(PLAN_KEY, {"source": self.source.physical, "batch_size": batch_size, "started": time.time()})
        return batch_size

    def run(self, report: ReindexReport) -> ReindexReport:
        """Copy (or finish copying) every chunk, delete what the source lost, recalibrate; fills `report`."""
        start = time.perf_counter()
        wanted = self._metadatas(self.source)
        written = self._metadatas(self.target)
        ids = sorted(wanted)
        batches = [ids[i : i + self.batch_size] for i in range(0, len(ids), self.batch_size)]
        todo = [b for b in batches if any(written.get(cid) != wanted[cid] for cid in b)]
        stale = [cid for cid in written if cid not in wanted]
        report.chunks, report.batches, report.batch_size = len(ids), len(batches), self.batch_size
        report.resumed = sum(len(b) for b in batches) - sum(len(b) for b in todo) if written else 0
        logger.info("reindex %r: %d chunks in %d batches of %d into %r (%d already written, %d to delete)",
                    self.source.name, len(ids), len(batches), self.batch_size, self.target.physical,
                    report.resumed, len(stale))
        if todo or stale:
            self.target.set_meta(CALIBRATION_KEY, None)  # recalibrated from the stored vectors below
        if stale:
            self.target.delete_ids(stale)
            report.removed = len(stale)
        self._embed(todo, batches, report)
        CalibrationKeeper(self.target, self.encoder.dimension)  # rebuilds a calibration that is missing or out of step
        report.seconds += time.perf_counter() - start
        return report

    def _embed(self, todo: list[list[str]], batches: list[list[str]], report: ReindexReport) -> None:
        """Embed and write the batches of `todo`, one model call each."""
        total = sum(len(b) for b in batches)
        done = total - sum(len(b) for b in todo)
        bar = tqdm(total=total, initial=done, unit="chunk", desc="reindex", disable=not self.progress or not todo)
        truncated = self.encoder.truncated
        try:
            for number, batch in enumerate(todo, 1):
                found = self.source.get(batch, include_embeddings=False)
                ids = [cid for cid in batch if cid in found]  # a chunk deleted meanwhile is left out
                texts = [found[cid][0] for cid in ids]
                vectors = self.encoder.encode_documents(texts, batch_size=max(1, len(texts)))
                self.target.upsert(ids, vectors, texts, [found[cid][1] for cid in ids])
                report.embedded += len(ids)
                done += len(batch)
                bar.update(len(batch))
                logger.debug("reindex %r: batch %d of %d written", self.source.name, number, len(todo))
                if self.on_batch is not None:
                    self.on_batch(ReindexProgress(done, total, len(batches) - len(todo) + number, len(batches)))
        finally:
            bar.close()
            report.truncated += self.encoder.truncated - truncated

    @staticmethod
    def _metadatas(store: ChromaStore) -> dict[str, dict[str, Any]]:
        """Every chunk id of `store` with its metadata."""
        out: dict[str, dict[str, Any]] = {}
        for ids, metas, _ in store.iter_all():
            out.update(zip(ids, metas))
        return out
