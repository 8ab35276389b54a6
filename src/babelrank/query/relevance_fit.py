"""The collection's relevance calibration: fitted from its own pseudo-queries, kept in its metadata.

`babelrank.query.relevance` defines a result's relevance from two normal laws of its standing
``z`` (null: the best irrelevant chunk; relevant: the chunk that answers). This module measures
those laws on the collection itself, without labels, and keeps them current.

Pseudo-queries. Up to `PSEUDO_QUERIES` chunks are drawn (seed 0, over the sorted chunk ids, so
a re-run on the same collection draws the same ones). Of each, one sentence (drawn the same
way) is embedded with the query prompt: the chunk answers it. Per pseudo-query, along its
neutral search vector (`NeutralScorer.query_vector`, in the chunk's own language):

* null: the ``z`` of the best-scored chunk once the source chunk's document (every chunk of
  it) and its translations are held out (the chunks in other languages whose centred cosine
  with one of the document's chunks reaches the model's dedup threshold,
  `babelrank.query.dedup`; without a calibrated threshold only the document is held out). A
  question about a document the collection lacks finds none of its chunks: holding out the
  source chunk alone left its sibling chunks in the pool, whose part of the same passage
  raised the null (XQuAD en+ru+de+es through the product, paragraphs cut into 592 chunks:
  ECE 0.098-0.128 per question language, answers kept 73-83 %);
* relevant: the ``z`` of the source chunk as stored (it still holds the sentence) and of
  the source with the sentence removed (embedded with the passage prompt): the inverse cloze
  task; ``mu1`` is midway;
* the spread of ``z`` over all chunks.

Measured (benchmarks/relevance_study.py, e5-small, XQuAD en+ru+de+es, 256 pseudo-queries):
see `babelrank.query.relevance`. 256 pseudo-queries put the standard error of ``mu0`` and
``mu1`` near 0.1 z-units (the laws spread about 1-1.6), for 512 extra embeddings: on e5-small
with 2 CPU cores about as long as ingesting 256 chunks.

When. `RelevanceKeeper.refresh` refits when the collection has no calibration, when its
chunk count has doubled or halved since (between refits the null moves with the
extreme-value law of the collection size) or when its set of languages has changed. The
facade calls it when it opens a collection and after every ingest and delete, never in a
query (a query reads the saved calibration), so a query is never held up by a fit; the fit
embeds in slices of four batches, as the ingest does, so queries run between slices. A
collection of fewer than `MIN_CHUNKS` (50) chunks has no calibration: its results carry no
relevance and nothing is filtered.
"""

from __future__ import annotations

import logging
import re
from typing import Callable, Sequence

import numpy as np

from babelrank.models.bi_encoder import BiEncoder
from babelrank.query.dedup import (
    centred_unit_vectors,
    default_threshold,
    language_centres,
)
from babelrank.query.neutral import (
    NeutralScorer,
    apply_maps,
    encode_languages,
    language_map,
)
from babelrank.query.relevance import (
    RelevanceCalibration,
    fit_calibration,
    is_finite_calibration,
)
from babelrank.schema import UNDETERMINED, chunk_language
from babelrank.store.calibration import CalibrationKeeper
from babelrank.store.chroma import RELEVANCE_KEY, ChromaStore

logger = logging.getLogger(__name__)

PSEUDO_QUERIES = 256
MIN_CHUNKS = 50
"""Fewest chunks for a calibration. Below it the laws rest on a handful of pseudo-queries (the
standard error of ``mu0`` grows past 0.13 z-units at 50) and each language's spread ``s_B`` on
a handful of vectors; on the quickstart collection (9 chunks, 3 a language, e5-small) the fit
gave the answer to "Where can I buy honey in the morning?" a relevance of 0.24, so its search
was refused. A smaller collection has no relevance: nothing is filtered, `answerable` is None."""
SEED = 0
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'«„(]?[A-ZА-ЯЁÄÖÜÁÉÍÓÚÑ0-9])|(?<=[。！？])")


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`: after a stop and a space before a capital (Latin, Cyrillic) or
    digit, or after a CJK full stop, question or exclamation mark."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def cloze(text: str, rng: np.random.Generator) -> tuple[str, str]:
    """One random sentence of `text` and the text without it (itself when it has one sentence)."""
    sentences = split_sentences(text) or [text]
    j = int(rng.integers(len(sentences)))
    rest = " ".join(sentences[:j] + sentences[j + 1:])
    return sentences[j], rest or text


class CollectionVectors:
    """Every stored vector of a collection with its id, document and language, and the dedup's translation test.

    Args:
        ids: chunk ids (any order; kept sorted here, so draws do not depend on read order).
        documents: each chunk's document id.
        languages: each chunk's language tag.
        vectors: (n, d) stored vectors.
        scorer: the neutral scorer of the collection's language calibration.
        threshold: the dedup's centred-cosine threshold; None = no translation test.
    """

    def __init__(self, ids: Sequence[str], documents: Sequence[str], languages: Sequence[str], vectors: np.ndarray,
                 scorer: NeutralScorer, threshold: float | None) -> None:
        order = np.argsort(np.asarray(ids, dtype=object), kind="stable")
        self.ids = [ids[i] for i in order]
        self.documents = np.asarray(documents, dtype=object)[order]
        self.languages = np.asarray(languages, dtype=object)[order]
        self.vectors = np.asarray(vectors, dtype=np.float64)[order]
        self.codes, self.names = encode_languages(list(self.languages))
        self.scorer, self.threshold = scorer, threshold
        centres = language_centres(scorer.calibration, list(self.languages))
        self.centred = centred_unit_vectors(self.vectors, centres) if threshold is not None else None

    @classmethod
    def from_store(cls, store: ChromaStore, scorer: NeutralScorer, threshold: float | None) -> "CollectionVectors":
        """Every chunk of `store`."""
        ids: list[str] = []
        documents: list[str] = []
        languages: list[str] = []
        pages = []
        for page_ids, metas, page in store.iter_all(include_embeddings=True):
            ids += page_ids
            documents += [str(m.get("doc_id", cid)) for cid, m in zip(page_ids, metas)]
            languages += [chunk_language(m) for m in metas]
            pages.append(page)
        vectors = np.vstack(pages) if pages else np.zeros((0, scorer.calibration.dim))
        return cls(ids, documents, languages, vectors, scorer, threshold)

    def held_out(self, k: int) -> np.ndarray:
        """Mask of chunk `k`'s document (all its chunks) and the chunks in other languages that
        translate one of them: what a collection that cannot answer the pseudo-query lacks."""
        out = self.documents == self.documents[k]
        if self.centred is not None:
            reach = (self.centred @ self.centred[out].T).max(axis=1) >= self.threshold
            out = out | ((self.languages != self.languages[k]) & reach)
        return out


def _measure(coll: CollectionVectors, k: int, query: np.ndarray, rest: np.ndarray) -> tuple[float, float, float, float] | None:
    """`(null z, z with the sentence, z without it, spread of z)` for chunk `k`'s pseudo-query
    (None when nothing is left once its document is held out)."""
    language = str(coll.languages[k])
    qv = coll.scorer.query_vector(query, language).astype(np.float64)
    maps = coll.scorer.maps(query, language)
    cos = coll.vectors @ qv
    means = np.array([language_map(maps, x).mean for x in coll.names])[coll.codes]
    spreads = np.array([language_map(maps, x).spread for x in coll.names])[coll.codes].clip(min=1e-12)
    z = (cos - means) / spreads
    held = coll.held_out(k)
    if held.all():
        return None
    neutral = np.where(held, -np.inf, apply_maps(maps, cos, coll.codes, coll.names))
    without = (float(rest @ qv) - means[k]) / spreads[k]
    return float(z[int(np.argmax(neutral))]), float(z[k]), float(without), float(z.std())


Encode = Callable[[list[str]], np.ndarray]


def fit_relevance(coll: CollectionVectors, texts: Callable[[list[str]], list[str]], encode_queries: Encode,
                  encode_documents: Encode, sample: int = PSEUDO_QUERIES) -> RelevanceCalibration | None:
    """Fit the collection's relevance calibration from pseudo-queries (see the module docstring).

    Args:
        coll: the collection's vectors.
        texts: the texts of some chunk ids, in order.
        encode_queries: unit vectors of texts with the query prompt.
        encode_documents: unit vectors of texts with the passage prompt.
        sample: how many pseudo-queries, at most.

    Returns:
        The calibration, or None for a collection under `MIN_CHUNKS` chunks, one whose chunks
        all belong to one document (no pseudo-query is left a null), or a degenerate fit.
    """
    if len(coll.ids) < MIN_CHUNKS:
        return None
    rng = np.random.default_rng(SEED)
    picked = sorted(int(i) for i in rng.permutation(len(coll.ids))[:sample])
    pairs = [cloze(text, rng) for text in texts([coll.ids[i] for i in picked])]
    queries = encode_queries([p[0] for p in pairs])
    rests = np.asarray(encode_documents([p[1] for p in pairs]), dtype=np.float64)
    measured = np.array([m for k, q, r in zip(picked, queries, rests) if (m := _measure(coll, k, q, r)) is not None])
    if len(measured) < 2:
        return None
    languages = sorted(set(str(x) for x in coll.languages) - {UNDETERMINED})
    fitted = fit_calibration(measured[:, 0], measured[:, 1], measured[:, 2], float(measured[:, 3].mean()),
                             len(coll.ids), languages)
    return fitted if is_finite_calibration(fitted) else None


class RelevanceKeeper:
    """The collection's relevance calibration, read from and saved in its metadata.

    Args:
        store: the collection.
        encoder: its embedding model (its name picks the dedup threshold of the hold-out).
        languages: its language calibration (the neutral statistics behind ``z``).
        batch_size: the encoder's batch size (`Settings.embed_batch_size`).
    """

    def __init__(self, store: ChromaStore, encoder: BiEncoder, languages: CalibrationKeeper, batch_size: int = 32) -> None:
        self.store = store
        self.encoder = encoder
        self.languages = languages
        self.batch_size = batch_size
        threshold, calibrated = default_threshold(encoder.name)
        self.threshold = threshold if calibrated else None
        self._failed: tuple[int, tuple[str, ...]] | None = None  # the collection state no fit came from

    def current(self) -> RelevanceCalibration | None:
        """The saved calibration (None when there is none or it cannot be read)."""
        saved = self.store.get_meta(RELEVANCE_KEY)
        if not saved:
            return None
        try:
            return RelevanceCalibration.from_dict(saved)
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("relevance calibration of %r unreadable (%s); refitting", self.store.name, exc)
            return None

    def _state(self) -> tuple[int, tuple[str, ...]]:
        counts = self.languages.current().counts
        return sum(counts.values()), tuple(sorted(x for x in counts if x != UNDETERMINED))

    def stale(self, calibration: RelevanceCalibration | None) -> bool:
        """True when the calibration is missing, the size doubled or halved, or the languages changed.

        A missing one is not stale under `MIN_CHUNKS` chunks, nor while the collection is as
        it was when a fit last gave nothing.
        """
        n, languages = self._state()
        if calibration is None:
            return n >= MIN_CHUNKS and self._failed != (n, languages)
        ratio = n / max(calibration.reference_size, 1)
        return languages != calibration.languages or not 0.5 < ratio < 2.0

    def refresh(self) -> RelevanceCalibration | None:
        """The current calibration, refitted first when stale (and saved; None when none can be fitted)."""
        calibration = self.current()
        if not self.stale(calibration):
            return calibration
        logger.info("calibrating relevance of %r on up to %d pseudo-queries", self.store.name, PSEUDO_QUERIES)
        coll = CollectionVectors.from_store(self.store, NeutralScorer(self.languages.current()), self.threshold)
        calibration = fit_relevance(coll, self._texts, self._sliced(self.encoder.encode_queries),
                                    self._sliced(self.encoder.encode_documents))
        self.store.update_meta(RELEVANCE_KEY, lambda _: {} if calibration is None else calibration.to_dict())
        self._failed = self._state() if calibration is None else None
        return calibration

    def _texts(self, ids: list[str]) -> list[str]:
        found = self.store.get(ids, include_embeddings=False)
        return [found[i][0] for i in ids]

    def _sliced(self, encode: Callable[..., np.ndarray]) -> Encode:
        """`encode` in slices of four batches, as the ingest embeds: the encoder's lock is held for
        one slice at a time, so queries are answered while a calibration embeds."""
        step, batch = 4 * self.batch_size, self.batch_size

        def run(texts: list[str]) -> np.ndarray:
            return np.vstack([encode(texts[i:i + step], batch_size=batch) for i in range(0, len(texts), step)])

        return run
