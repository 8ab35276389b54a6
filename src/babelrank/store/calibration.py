"""The collection's language calibration: per-language statistics of the stored chunk vectors,
kept in step with every write.

`LanguageCalibration` holds, per chunk language, float64 running sums, sums of squares and
counts of the stored vectors (so centroids and per-dimension variances are exact after any
sequence of adds and removes); `CalibrationKeeper` stores it in the collection metadata and
updates it with each write (it is the ingest's `WriteListener`), from any number of
processes. Language-neutral scoring (`babelrank.query.neutral`) reads it.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Callable

import numpy as np

from babelrank.schema import chunk_language
from babelrank.store.chroma import CALIBRATION_KEY, ChromaStore

logger = logging.getLogger(__name__)

UNKNOWN_LANGUAGES = frozenset({"", "und", "unknown", "xx"})
DEFAULT_MIN_COUNT = 2
"""Fewest chunks for a language's own statistics: neutral scoring works from a collection's
first chunks. Measured (benchmarks/neutral_study.py, e5-small), statistics from N random
chunks per language: XQuAD-R en+ru+de+es+zh+ar mAP@20 0.321 raw, 0.570 all, 0.436 / 0.471 /
0.494 / 0.524 / 0.545 from 2 / 3 / 5 / 10 / 20 (hit@1 0.724-0.731 throughout); Tatoeba, no
language of the 16 below raw from 2, 3, 5 or 10 chunks. An English pool (XQuAD-R, 1180 sentences) with 2-10 chunks
of another language beside it keeps its English mAP@20 within 0.3 points. The quickstart
collection (3 chunks a language) needs it: its Ukrainian question ranked the Ukrainian
market note above the English library text it asks about, without statistics."""


def is_unknown_language(language: str | None) -> bool:
    return language is None or language.lower() in UNKNOWN_LANGUAGES


class _Sums:
    """Float64 running sums, sums of squares and counts of vectors, keyed by language."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.sums: dict[str, np.ndarray] = {}
        self.squares: dict[str, np.ndarray] = {}
        self.counts: dict[str, int] = {}

    def update(self, vectors: np.ndarray, languages: Sequence[str], sign: int) -> None:
        v = np.asarray(vectors, dtype=np.float64).reshape(-1, self.dim)
        if len(v) != len(languages):
            raise ValueError(f"{len(v)} vectors but {len(languages)} languages")
        langs = np.asarray([str(x) for x in languages])
        for lang in np.unique(langs):
            block = v[langs == lang]
            new = self.counts.get(lang, 0) + sign * len(block)
            if new < 0:
                raise ValueError(f"removing more '{lang}' vectors than were added")
            if new == 0:
                self.sums.pop(lang, None)
                self.squares.pop(lang, None)
                self.counts.pop(lang, None)
                continue
            self.sums[lang] = self.sums.get(lang, np.zeros(self.dim)) + sign * block.sum(0)
            self.squares[lang] = self.squares.get(lang, np.zeros(self.dim)) + sign * (block * block).sum(0)
            self.counts[lang] = new

    def mean(self, language: str) -> np.ndarray:
        return self.sums[language] / self.counts[language]

    def variance(self, language: str) -> np.ndarray:
        mean = self.mean(language)
        return np.maximum(self.squares[language] / self.counts[language] - mean * mean, 0.0)

    def total_mean(self) -> np.ndarray | None:
        n = sum(self.counts.values())
        return None if n == 0 else sum(self.sums.values()) / n

    def total_variance(self) -> np.ndarray | None:
        n = sum(self.counts.values())
        if n == 0:
            return None
        mean = sum(self.sums.values()) / n
        return np.maximum(sum(self.squares.values()) / n - mean * mean, 0.0)

    def to_dict(self) -> dict:
        return {k: {"sum": self.sums[k].tolist(), "sum_sq": self.squares[k].tolist(), "count": self.counts[k]}
                for k in self.counts}

    @classmethod
    def from_dict(cls, dim: int, d: dict) -> _Sums:
        """Sums saved by `to_dict`; KeyError when a field is missing (an older format)."""
        s = cls(dim)
        for k, v in d.items():
            s.sums[k] = np.asarray(v["sum"], dtype=np.float64)
            s.squares[k] = np.asarray(v["sum_sq"], dtype=np.float64)
            s.counts[k] = int(v["count"])
        return s


class LanguageCalibration:
    """Per-language running sums (float64) and counts of stored chunk vectors.

    Optionally also sums of *pseudo-query* vectors (a sample of the collection's own chunks
    embedded with the query prompt), used only to recognise the language of untagged queries.
    """

    def __init__(self, dim: int, min_count: int = DEFAULT_MIN_COUNT) -> None:
        self.dim = dim
        self.min_count = min_count
        self._chunks = _Sums(dim)
        self._pseudo = _Sums(dim)

    def add(self, vectors: np.ndarray, languages: Sequence[str]) -> None:
        """Account for newly stored chunk vectors (raw, as stored in the index)."""
        self._chunks.update(vectors, languages, +1)

    def remove(self, vectors: np.ndarray, languages: Sequence[str]) -> None:
        """Account for deleted chunk vectors (the same vectors that were added)."""
        self._chunks.update(vectors, languages, -1)

    def add_pseudo_queries(self, vectors: np.ndarray, languages: Sequence[str]) -> None:
        """Add query-prompt embeddings of sampled own chunks (for query language ID)."""
        self._pseudo.update(vectors, languages, +1)

    @property
    def counts(self) -> dict[str, int]:
        return dict(self._chunks.counts)

    @property
    def languages(self) -> list[str]:
        """Languages that have a centroid."""
        return sorted(k for k in self._chunks.counts if self.centroid(k) is not None)

    def centroid(self, language: str) -> np.ndarray | None:
        """Mean stored vector of `language`; None when unknown or under `min_count` chunks."""
        if is_unknown_language(language) or self._chunks.counts.get(language, 0) < self.min_count:
            return None
        return self._chunks.mean(language)

    def global_centroid(self) -> np.ndarray | None:
        """Mean of all stored chunk vectors (every language, "und" included)."""
        return self._chunks.total_mean()

    def variance(self, language: str) -> np.ndarray | None:
        """Per-dimension variance of `language`'s stored vectors (None where `centroid` is)."""
        return None if self.centroid(language) is None else self._chunks.variance(language)

    def global_variance(self) -> np.ndarray | None:
        """Per-dimension variance of all stored chunk vectors."""
        return self._chunks.total_variance()

    def pseudo_query_centroid(self, language: str) -> np.ndarray | None:
        """Mean pseudo-query vector of `language` (None without enough of them)."""
        if self.centroid(language) is None or self._pseudo.counts.get(language, 0) < self.min_count:
            return None
        return self._pseudo.mean(language)

    def to_dict(self) -> dict:
        return {"dim": self.dim, "chunks": self._chunks.to_dict(),
                "pseudo_queries": self._pseudo.to_dict()}

    @classmethod
    def from_dict(cls, d: dict, min_count: int = DEFAULT_MIN_COUNT) -> LanguageCalibration:
        """Sums saved by `to_dict`; `min_count` is a scoring rule, not data, so it is not saved."""
        cal = cls(int(d["dim"]), min_count)
        cal._chunks = _Sums.from_dict(cal.dim, d.get("chunks", {}))
        cal._pseudo = _Sums.from_dict(cal.dim, d.get("pseudo_queries", {}))
        return cal


class CalibrationKeeper:
    """Keeps the collection's language calibration in step with every write, from any number of processes.

    The calibration (per-language sums of the stored vectors) is saved in the collection
    metadata with the writes under way (``pending``) and whether it is ``exact``. Every change
    of that record is a read-modify-write under the store's metadata lock
    (`ChromaStore.update_meta`), so no process's change is lost:

    * a write registers in ``pending`` (`before_write`), stores its chunks, then adds its own
      change of the sums to the record as it is *then* and leaves ``pending`` (`on_write`),
      so writes of different documents add up exactly in any interleaving;
    * a write that cannot finish (killed: in embedded mode one of another process, with a
      server one pending for over `LEASE_SECONDS`) is dropped from ``pending`` and the record
      marked not exact; so is a change that does not fit (the same document written by two
      processes at once) and a record whose counts disagree with the collection once no
      one writes;
    * a record that is not exact is recalibrated from the stored vectors (`rebuild`) by the
      last write to finish, or on open/refresh when no one writes. A rebuild is pending too
      (renewed as it reads, so a killed one holds writes up for at most `REBUILD_LEASE_SECONDS`)
      and writes wait for it, so it reads a collection that no one changes.

    So once every writer has finished, the saved calibration equals one computed from scratch.
    A lease that runs out on a live process costs a rebuild, not exactness.
    """

    REFRESH_SECONDS = 5.0
    LEASE_SECONDS = 600.0
    REBUILD_LEASE_SECONDS = 60.0
    _process = uuid.uuid4().hex[:12]
    _serial = itertools.count()
    _active: set[str] = set()  # this process's writes and rebuilds under way

    def __init__(self, store: ChromaStore, dim: int) -> None:
        self.store = store
        self.dim = dim
        self._token: str | None = None
        self._loaded_at = 0.0
        self._load()

    def _load(self) -> None:
        saved = self.store.get_meta(CALIBRATION_KEY)
        record = self._parse(saved)
        live = [t for t, entry in record["pending"].items() if not self._dead(t, entry)]
        if live or (record["exact"] and not record["pending"] and self._counted(record) == self.store.count()):
            self._use(record)  # with writes under way, the last of them settles the calibration
        else:
            if record is saved:
                logger.warning("language calibration of %r is out of step; recalibrating from the stored vectors", self.store.name)
            self.rebuild()
        self._loaded_at = time.monotonic()

    def refresh(self, force: bool = False) -> None:
        """With a Chroma server, pick up calibration changes written by other processes."""
        if self.store.shared and (force or time.monotonic() - self._loaded_at > self.REFRESH_SECONDS):
            self.store.reload()
            self._load()

    def rebuild(self) -> LanguageCalibration:
        """Recalibrate from every stored vector and save; left to the last writer while writes are under way."""
        token = self._new_token()
        try:
            record = self._update(partial(self._register, token, True))
            if token in record["pending"]:
                try:
                    fresh = self._from_scratch(token)
                except BaseException:
                    self._update(partial(self._rebuilt, token, None))
                    raise
                record = self._update(partial(self._rebuilt, token, fresh))
        finally:
            self._active.discard(token)
        self._use(record)
        return self._calibration

    def _from_scratch(self, token: str) -> LanguageCalibration:
        calibration = LanguageCalibration(self.dim)
        renewed = time.monotonic()
        for _, metas, vectors in self.store.iter_all(include_embeddings=True):
            calibration.add(vectors, [chunk_language(m) for m in metas])
            if time.monotonic() - renewed > self.REBUILD_LEASE_SECONDS / 4:
                self._update(partial(self._renew, token))
                renewed = time.monotonic()
        return calibration

    def before_write(self) -> None:
        """Register a write (waiting while a rebuild is under way)."""
        if self._token is not None:
            self._active.discard(self._token)  # a write that never finished
        self._token = token = self._new_token()
        record = self._update(partial(self._register, token, False))
        if token not in record["pending"]:
            logger.info("waiting for another process to recalibrate %r", self.store.name)
        while token not in record["pending"]:
            time.sleep(0.5)
            record = self._update(partial(self._register, token, False))
        self._use(record)

    def on_write(self, added: np.ndarray, added_languages: Sequence[str], removed: np.ndarray, removed_languages: Sequence[str]) -> None:
        """Add a write's change to the saved calibration, as other processes left it, and end the write."""
        token, self._token = self._token, None
        try:
            record = self._update(partial(self._apply, token, (added, added_languages, removed, removed_languages)))
        finally:
            if token is not None:
                self._active.discard(token)
        self._use(record)
        if not record["exact"] and not record["pending"]:
            self.rebuild()

    # ---- the saved record (changed only through `_update`) ----------------------------------
    def _update(self, change: Callable[[Any], dict[str, Any] | None]) -> dict[str, Any]:
        return self._parse(self.store.update_meta(CALIBRATION_KEY, change))

    def _parse(self, saved: Any) -> dict[str, Any]:
        """The saved record; an empty one, not exact, when there is none or it is in an older format."""
        try:
            LanguageCalibration.from_dict(saved["calibration"])
            if isinstance(saved["pending"], dict) and isinstance(saved["exact"], bool):
                return saved
        except (KeyError, TypeError):
            pass
        if saved is not None:
            logger.info("language calibration of %r is in an older format; recalibrating", self.store.name)
        return {"calibration": LanguageCalibration(self.dim).to_dict(), "pending": {}, "exact": False}

    def _new_token(self) -> str:
        token = f"{self._own()}{next(self._serial)}"
        self._active.add(token)
        return token

    def _own(self) -> str:
        """The prefix of this process's tokens."""
        return f"{self._process}-{os.getpid()}-"

    def _dead(self, token: str, entry: Mapping[str, Any]) -> bool:
        """Whether a pending write or rebuild can no longer finish."""
        if token.startswith(self._own()):
            return token not in self._active
        lease = self.REBUILD_LEASE_SECONDS if entry["rebuild"] else self.LEASE_SECONDS
        return not self.store.shared or time.time() - float(entry["since"]) > lease

    def _settle(self, saved: Any) -> dict[str, Any]:
        """The record without the writes that cannot finish (not exact when there were any)."""
        record = self._parse(saved)
        dead = [t for t, entry in record["pending"].items() if self._dead(t, entry)]
        if dead:
            logger.warning("%d write(s) to %r did not finish; the language calibration will be rebuilt", len(dead), self.store.name)
            record["pending"] = {t: e for t, e in record["pending"].items() if t not in dead}
            record["exact"] = False
        return record

    def _register(self, token: str, rebuild: bool, saved: Any) -> dict[str, Any]:
        """The record with `token` pending, unless a rebuild is under way (or, for a rebuild, anything)."""
        record = self._settle(saved)
        if not any(rebuild or entry["rebuild"] for entry in record["pending"].values()):
            record["pending"][token] = {"since": time.time(), "rebuild": rebuild}
        return record

    def _renew(self, token: str, saved: Any) -> dict[str, Any] | None:
        record = self._settle(saved)
        if token not in record["pending"]:
            return None
        record["pending"][token]["since"] = time.time()
        return record

    def _apply(self, token: str | None, change: tuple[np.ndarray, Sequence[str], np.ndarray, Sequence[str]], saved: Any) -> dict[str, Any]:
        record = self._settle(saved)
        counted = record["pending"].pop(token, None) is not None  # else given up as dead: recalibrate
        if counted:
            try:
                record["calibration"] = self._changed(record["calibration"], *change)
            except ValueError:  # it removes what was never counted (two processes wrote one document)
                counted = False
        if not counted or (not record["pending"] and self._counted(record) != self.store.count()):
            record["exact"] = False
        return record

    @staticmethod
    def _changed(saved: dict[str, Any], added: np.ndarray, added_languages: Sequence[str], removed: np.ndarray,
                 removed_languages: Sequence[str]) -> dict[str, Any]:
        calibration = LanguageCalibration.from_dict(saved)
        if len(removed):
            calibration.remove(removed, removed_languages)
        if len(added):
            calibration.add(added, added_languages)
        return calibration.to_dict()

    def _rebuilt(self, token: str, fresh: LanguageCalibration | None, saved: Any) -> dict[str, Any]:
        """The record after a rebuild (`fresh` None: it failed); exact unless it was given up as dead meanwhile."""
        record = self._settle(saved)
        ours = record["pending"].pop(token, None) is not None
        if fresh is not None:
            record["calibration"] = fresh.to_dict()
            record["exact"] = ours
        return record

    @staticmethod
    def _counted(record: Mapping[str, Any]) -> int:
        return sum(int(c["count"]) for c in record["calibration"]["chunks"].values())

    def _use(self, record: Mapping[str, Any]) -> None:
        self._calibration = LanguageCalibration.from_dict(record["calibration"])

    @property
    def latest(self) -> LanguageCalibration:
        """The calibration as this process last read or wrote it, without asking the store
        (`current` also picks up other processes' writes to a Chroma server)."""
        return self._calibration

    def languages(self) -> list[str]:
        """Every language with stored chunks ("und" included)."""
        return sorted(self._calibration.counts)

    def current(self) -> LanguageCalibration:
        """The calibration as it stands (with a Chroma server, picking up other processes' writes).

        A write replaces the object rather than changing it, so a reader on another thread
        keeps a consistent one."""
        self.refresh()
        return self._calibration

    def describe(self) -> dict[str, Any]:
        """Per-language chunk counts and whether each has a centroid."""
        calibration = self._calibration  # one snapshot: a write may replace it meanwhile
        out = {}
        for lang, n in sorted(calibration.counts.items()):
            centroid = calibration.centroid(lang)
            out[lang] = {"chunks": n, "centroid": centroid is not None,
                         "centroid_norm": None if centroid is None else round(float(np.linalg.norm(centroid)), 4)}
        return out
