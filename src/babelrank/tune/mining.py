"""Training pairs mined from the collection itself: its chunks that translate each other.

No labels are needed. A collection that holds one text in several languages (a manual in
Ukrainian and English, a site in three languages) already holds translation pairs; training
the bi-encoder to put them together is what removes its preference for the query's own
language. `mine_pairs` finds them with the test that translation-aware results use
(`babelrank.query.dedup`), so what counts as a translation is defined once:

Centred cosine. Every stored chunk vector is centred on its language's centroid in the
collection (the global mean for a language with fewer than `MIN_DEDUP_CHUNKS` chunks) and
re-normalised, by dedup's own `language_centres` and `centred_unit_vectors`; two chunks are a
candidate pair when that cosine reaches the model's dedup threshold (e5-small 0.61, the
equal-error point of Tatoeba translations against the hardest non-translations).

Mutual nearest neighbours. For every two languages A and B, a chunk of A and a chunk of B
form a pair only when each is the other's nearest neighbour (highest centred cosine) among
all chunks of the other language, and their cosine reaches the threshold. So every chunk is
in at most one pair per other language, and a chunk whose best partner prefers another chunk
(a paraphrase, a near-duplicate section) gives no pair rather than a wrong one, which a
threshold alone does not see.
Measured with multilingual-e5-small (onnx-int8) on all 240 XQuAD paragraphs in en, ru, de,
es, zh and ar (1739 chunks): 1932 pairs, every one two chunks of the same paragraph
(precision 100 %), found in 1.1 s; per language pair en-es 269, de-es 247, en-de 245,
es-ru 227, de-ru 201, en-ru 200, but 15-88 for pairs with Arabic or Chinese (ar-zh 15): the
threshold, measured on Tatoeba's European pairs, is strict for those (fewer pairs, not wrong
ones). Without the rule on neighbouring chunks below, 396 of those 1932 hard negatives were
another chunk of the positive's own paragraph; with it, 6 of the 201 en-ru ones (240
paragraphs, 581 chunks: 201 pairs, all right).

Direction. Each pair is produced once: the anchor is the chunk in the pivot language (default
"en") when one side is in it, else the chunk of the alphabetically first language.

Hard negatives (optional, `hard_negatives=True`). For each pair, the chunk of the positive's
language with the highest centred cosine to the anchor that is neither the positive, nor a
chunk next to it in its document (consecutive chunks share their overlap), nor a translation
of the anchor (its cosine is below the threshold): what the current model confuses most with
the right answer, without naming text of the answer itself a negative.

Left out: chunks of undetermined language (no language pair to learn), pairs whose two texts
are the same (a name or a number tagged with two languages teaches nothing), and a collection
of fewer than `MIN_DEDUP_CHUNKS` chunks, whose centroids mean nothing (dedup is off there too).
Scores are computed block by block (`block` rows of one language against all chunks of the
other), so memory stays at `block` x (chunks of a language) floats: 10,000 chunks are fine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING, Sequence

import numpy as np

from babelrank.query.dedup import (
    MIN_DEDUP_CHUNKS,
    centred_unit_vectors,
    default_threshold,
    language_centres,
)
from babelrank.schema import chunk_language
from babelrank.store.calibration import LanguageCalibration, is_unknown_language
from babelrank.store.chroma import ChromaStore
from babelrank.tune.examples import Example, TrainingData

if TYPE_CHECKING:
    from babelrank.index import BabelIndex

logger = logging.getLogger(__name__)

DEFAULT_BLOCK = 1024
"""Rows of one language scored against the other language at a time."""


@dataclass(frozen=True)
class _Chunks:
    """The collection's chunks of known language: ids, language codes, centred unit vectors and
    places (document id, chunk index)."""

    ids: list[str]
    languages: np.ndarray
    vectors: np.ndarray
    places: list[tuple[str, int]]

    def rows(self, language: str) -> np.ndarray:
        return np.flatnonzero(self.languages == language)


@dataclass(frozen=True)
class _Pair:
    """One mined pair: row indices into `_Chunks` (anchor, positive, negative or -1)."""

    anchor: int
    positive: int
    negative: int = -1


def _read_chunks(store: ChromaStore, calibration: LanguageCalibration | None) -> _Chunks | None:
    """Every chunk of known language, centred as dedup centres it; None under `MIN_DEDUP_CHUNKS` chunks."""
    ids: list[str] = []
    languages: list[str] = []
    places: list[tuple[str, int]] = []
    pages: list[np.ndarray] = []
    for page_ids, metadatas, embeddings in store.iter_all(include_embeddings=True):
        ids += page_ids
        languages += [chunk_language(m) for m in metadatas]
        places += [(str(m.get("doc_id", cid)), int(m.get("chunk_index", 0))) for cid, m in zip(page_ids, metadatas)]
        pages.append(np.asarray(embeddings, dtype=np.float32))
    if len(ids) < MIN_DEDUP_CHUNKS:
        logger.warning("mining: the collection holds %d chunks, fewer than the %d its language centroids "
                       "need; no pairs mined", len(ids), MIN_DEDUP_CHUNKS)
        return None
    raw = np.concatenate(pages)
    if calibration is None:  # the keeper's sums, of the stored (unit) vectors
        calibration = LanguageCalibration(raw.shape[1])
        calibration.add(centred_unit_vectors(raw, None), languages)
    known = np.asarray([not is_unknown_language(lang) for lang in languages])
    kept_languages = [lang for lang, k in zip(languages, known) if k]
    vectors = centred_unit_vectors(raw[known], language_centres(calibration, kept_languages))
    kept = np.flatnonzero(known)
    return _Chunks([ids[i] for i in kept], np.asarray(kept_languages, dtype=object), vectors,
                   [places[i] for i in kept])


def mutual_nearest(a: np.ndarray, b: np.ndarray, threshold: float,
                   block: int = DEFAULT_BLOCK) -> list[tuple[int, int, float]]:
    """Mutual nearest neighbours between the rows of `a` and of `b` at or above `threshold`.

    Args:
        a: (n, d) unit vectors.
        b: (m, d) unit vectors.
        threshold: the least dot product of a pair.
        block: rows of `a` multiplied with `b` at a time.

    Returns:
        `(i, j, score)` for every i whose best row of `b` is j while the best row of `a` for j
        is i, with `a[i] @ b[j] >= threshold`; in order of i.
    """
    if len(a) == 0 or len(b) == 0:
        return []
    best_of_a = np.empty(len(a), dtype=np.int64)
    score_of_a = np.empty(len(a), dtype=np.float32)
    best_of_b = np.zeros(len(b), dtype=np.int64)
    score_of_b = np.full(len(b), -np.inf, dtype=np.float32)
    for start in range(0, len(a), block):
        sims = a[start:start + block] @ b.T
        best_of_a[start:start + len(sims)] = sims.argmax(1)
        score_of_a[start:start + len(sims)] = sims.max(1)
        column_best, column_arg = sims.max(0), sims.argmax(0) + start
        better = column_best > score_of_b
        score_of_b[better], best_of_b[better] = column_best[better], column_arg[better]
    rows = np.arange(len(a))
    keep = (best_of_b[best_of_a] == rows) & (score_of_a >= threshold)
    return [(int(i), int(best_of_a[i]), float(score_of_a[i])) for i in np.flatnonzero(keep)]


def _not_negatives(chunks: _Chunks, pool_rows: np.ndarray, partners: np.ndarray) -> np.ndarray:
    """(n, 3) pool positions no negative may take: each partner and the chunks before and
    after it in its document (they share `chunk_overlap` tokens with it); -1 where none."""
    position = {chunks.places[r]: k for k, r in enumerate(pool_rows)}
    out = []
    for p in partners:
        doc, index = chunks.places[pool_rows[p]]
        out.append([p, position.get((doc, index - 1), -1), position.get((doc, index + 1), -1)])
    return np.asarray(out, dtype=np.int64).reshape(-1, 3)


def _hardest_below(anchors: np.ndarray, pool: np.ndarray, excluded: np.ndarray, threshold: float,
                   block: int) -> np.ndarray:
    """Per anchor row, the pool row of highest score below `threshold` that `excluded` does not
    name (-1: none)."""
    out = np.full(len(anchors), -1, dtype=np.int64)
    for start in range(0, len(anchors), block):
        sims = anchors[start:start + block] @ pool.T
        sims[sims >= threshold] = -np.inf
        banned = excluded[start:start + block]
        rows = np.broadcast_to(np.arange(len(sims))[:, None], banned.shape)
        sims[rows[banned >= 0], banned[banned >= 0]] = -np.inf
        best = sims.argmax(1)
        found = np.isfinite(sims[np.arange(len(sims)), best])
        out[start:start + len(sims)] = np.where(found, best, -1)
    return out


def _direction(first: str, second: str, pivot: str | None) -> tuple[str, str]:
    """(anchor language, positive language) of two languages in alphabetical order: the pivot
    first when it is one of them, else the alphabetical order."""
    return (second, first) if second == pivot else (first, second)


def _mine_languages(chunks: _Chunks, anchor_language: str, positive_language: str, threshold: float,
                    hard_negatives: bool, block: int) -> list[_Pair]:
    """The mutual-nearest pairs of two languages, as rows of `chunks`."""
    rows_a, rows_b = chunks.rows(anchor_language), chunks.rows(positive_language)
    found = mutual_nearest(chunks.vectors[rows_a], chunks.vectors[rows_b], threshold, block)
    if not found:
        return []
    i = np.asarray([f[0] for f in found])
    j = np.asarray([f[1] for f in found])
    negatives = np.full(len(found), -1)
    if hard_negatives:
        excluded = _not_negatives(chunks, rows_b, j)
        negatives = _hardest_below(chunks.vectors[rows_a[i]], chunks.vectors[rows_b], excluded, threshold, block)
    logger.info("mining %s-%s: %d pairs of %d x %d chunks (median centred cosine %.3f)", anchor_language,
                positive_language, len(found), len(rows_a), len(rows_b), float(np.median([f[2] for f in found])))
    return [_Pair(int(rows_a[x]), int(rows_b[y]), int(rows_b[n]) if n >= 0 else -1)
            for x, y, n in zip(i, j, negatives)]


def _examples(store: ChromaStore, chunks: _Chunks, pairs: Sequence[_Pair]) -> list[Example]:
    """The pairs as `Example`s with their chunk texts; pairs of one same text left out."""
    wanted = sorted({chunks.ids[r] for p in pairs for r in (p.anchor, p.positive, p.negative) if r >= 0})
    texts = {cid: record[0] for cid, record in store.get(wanted, include_embeddings=False).items()}
    out, same = [], 0
    for p in pairs:
        anchor, positive = texts.get(chunks.ids[p.anchor]), texts.get(chunks.ids[p.positive])
        if anchor is None or positive is None:  # deleted since it was read
            continue
        if anchor.strip().casefold() == positive.strip().casefold():
            same += 1
            continue
        negative = texts.get(chunks.ids[p.negative]) if p.negative >= 0 else None
        out.append(Example(anchor, positive, negative, str(chunks.languages[p.anchor]),
                           str(chunks.languages[p.positive]), source="mined"))
    if same:
        logger.info("mining: left out %d pairs whose two chunks hold the same text", same)
    return out


def mine_pairs(
    store: ChromaStore,
    threshold: float,
    calibration: LanguageCalibration | None = None,
    pivot: str | None = "en",
    hard_negatives: bool = False,
    block: int = DEFAULT_BLOCK,
) -> list[Example]:
    """Translation pairs among the stored chunks: mutual nearest neighbours across languages.

    Args:
        store: the collection to mine.
        threshold: the least centred cosine of a pair: the model's dedup threshold
            (`babelrank.query.dedup.default_threshold`).
        calibration: the collection's language calibration (its centroids); None computes it
            from the vectors read, which gives the same centroids.
        pivot: the language that is the anchor of every pair it is in (None: none).
        hard_negatives: add to each pair the hardest negative of the positive's language.
        block: rows scored at a time (memory: `block` x chunks of one language floats).

    Returns:
        One `Example` (source "mined") per pair, grouped by language pair, anchor language
        first (see the module docstring); empty for a collection under `MIN_DEDUP_CHUNKS` chunks.
    """
    chunks = _read_chunks(store, calibration)
    if chunks is None:
        return []
    languages = sorted(set(chunks.languages.tolist()))
    pairs: list[_Pair] = []
    for first, second in combinations(languages, 2):
        anchor_language, positive_language = _direction(first, second, pivot)
        pairs += _mine_languages(chunks, anchor_language, positive_language, threshold, hard_negatives, block)
    examples = _examples(store, chunks, pairs)
    logger.info("mined %d pairs from %d chunks in %s: %s", len(examples), len(chunks.ids),
                ", ".join(languages) or "no language", TrainingData(examples).counts().get("mined", {}))
    return examples


def mine_from_index(index: BabelIndex, threshold: float | None = None, pivot: str | None = "en",
                    hard_negatives: bool = False) -> list[Example]:
    """`mine_pairs` on a `BabelIndex`'s collection, its calibration and its model's threshold.

    Args:
        index: the open index.
        threshold: the least centred cosine of a pair; None: the index's `dedup_threshold`
            setting, else its model's calibrated dedup threshold (a warning when the model has
            none and e5-small's is used).
        pivot: the language that is the anchor of every pair it is in (None: none).
        hard_negatives: add to each pair the hardest negative of the positive's language.

    Returns:
        The mined examples (see `mine_pairs`).
    """
    if threshold is None:
        threshold = index.settings.dedup_threshold
    if threshold is None:
        threshold, calibrated = default_threshold(index.encoder.name)
        if not calibrated:
            logger.warning("mining: no calibrated dedup threshold for %s; using %.2f (measure one with "
                           "benchmarks/dedup_threshold.py)", index.encoder.name, threshold)
    return mine_pairs(index.store, threshold, index.calibration.current(), pivot, hard_negatives)
