"""First-stage search: the top-k chunks for a query vector, raw or language-neutral.

Raw mode is one Chroma query; the score is the cosine. Neutral mode (see
`babelrank.query.neutral`) searches with `NeutralScorer.query_vector` (the query less its lean
toward its own language) and scores each chunk by its language's `LanguageMap` of that cosine:

* a collection whose vectors fit in `neutral_scan_mb` (and a filter on languages only, or
  none) is scored exactly over every chunk, from the store's in-memory copy of its vectors;
* a bigger one: one Chroma query fetches the ids and cosines of `NEUTRAL_MIN_FETCH` (or
  `NEUTRAL_OVERFETCH` x k) neighbours, their languages come from the store's id cache; a
  language whose unseen chunks could still reach the neutral top-k (its map of the lowest
  fetched cosine > the k-th neutral score) gets its own filtered query of k: the exact
  neutral top-k under the same approximate search, nearly always from one query.

Either way, documents are then read for the top k only.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

import numpy as np

from babelrank.query.filters import language_filter, with_language
from babelrank.query.neutral import (
    LanguageMap,
    NeutralScorer,
    apply_maps,
    encode_languages,
    language_map,
)
from babelrank.store.calibration import CalibrationKeeper
from babelrank.store.chroma import ChromaStore, Hit

logger = logging.getLogger(__name__)

NEUTRAL_OVERFETCH = 8
NEUTRAL_MIN_FETCH = 1000
"""Neutral search of a collection too big for `neutral_scan_mb` fetches max(NEUTRAL_OVERFETCH x k, NEUTRAL_MIN_FETCH) raw neighbours in its
first query (ids and distances only, see `Searcher.search`). Chroma answers that in
about the time of a 50-hit query with documents (2000 costs 3x more). Simulated on e5-small
(benchmarks/neutral_study.py), k=50: 0.03 extra per-language queries per search on 4-language
XQuAD-R (4890 chunks) and none on 2-language Tatoeba pools, against 0.86 and 0.4-0.8 with 8 x k."""


class Searcher:
    """Top-k chunks of one collection for a query vector (see the module docstring).

    Args:
        store: the collection.
        calibration: its language calibration (the neutral scorer is built from it).
        neutral: the collection's neutral mode, "auto", "on" or "off" (`Settings.neutral`).
        scan_mb: the most megabytes of vectors scored exactly in memory (`Settings.neutral_scan_mb`).
    """

    def __init__(self, store: ChromaStore, calibration: CalibrationKeeper, *, neutral: str = "auto", scan_mb: int = 64) -> None:
        self.store = store
        self.calibration = calibration
        self.neutral = neutral
        self.scan_mb = scan_mb
        self._scorer: NeutralScorer | None = None  # the scorer of the last calibration seen

    def scorer(self, mode: str | None = None) -> NeutralScorer | None:
        """The language-neutral scorer, or None when the mode is off for this collection.

        Args:
            mode: "auto", "on" or "off" for one query; None = the collection's mode. "auto"
                turns it on when at least two languages have a centroid.
        """
        mode = mode or self.neutral
        if mode == "off":
            return None
        calibration, scorer = self.calibration.current(), self._scorer
        if scorer is None or scorer.calibration is not calibration:
            scorer = self._scorer = NeutralScorer(calibration)
        if mode == "auto" and len(scorer.languages) < 2:
            return None
        return scorer

    def search(
        self, vector: np.ndarray, query_language: str, k: int, where: Mapping[str, Any] | None,
        scorer: NeutralScorer | None = None, include_embeddings: bool = False,
    ) -> list[Hit]:
        """Top-k chunks for a query vector, best first.

        Args:
            vector: the query embedding.
            query_language: the query's detected language (the neutral score depends on it).
            k: how many chunks.
            where: a Chroma filter (see `babelrank.query.filters.build_where`).
            scorer: the neutral scorer (`scorer`); None searches raw.
            include_embeddings: give each hit its stored vector (for dedup).

        Returns:
            Hits whose `score` is the cosine (raw) or the neutral score.
        """
        if scorer is None:
            return self.store.query(vector, k, where, include_embeddings=include_embeddings)
        maps = scorer.maps(vector, query_language)
        vector = scorer.query_vector(vector, query_language)
        allowed = language_filter(where) if where else None
        if not where or allowed is not None:
            def score(cosines: np.ndarray, codes: np.ndarray, names: list[str]) -> np.ndarray:
                scores = apply_maps(maps, cosines, codes, names)
                if allowed is not None:
                    scores[~np.isin(codes, [i for i, lang in enumerate(names) if allowed(lang)])] = -np.inf
                return scores

            found = self.store.mirror.scan(vector, k, score, self.scan_mb * 2**20 // 4, wait=not self.store.shared)
            if found is not None:
                return self.store.hits(found[0], found[1].tolist(), include_embeddings=include_embeddings)
        return self._from_chroma(vector, k, where, maps, allowed, include_embeddings)

    def _from_chroma(
        self, vector: np.ndarray, k: int, where: Mapping[str, Any] | None, maps: Mapping[str, LanguageMap],
        allowed: Callable[[str], bool] | None, include_embeddings: bool,
    ) -> list[Hit]:
        """Neutral top-k from Chroma: one deep query, per-language queries where the bound needs them.

        `allowed` tests a chunk language when `where` constrains the language only (languages
        it refuses need no query of their own); every query carries the whole `where`.
        """
        fetch = max(k * NEUTRAL_OVERFETCH, NEUTRAL_MIN_FETCH)
        ids, cosines = self.store.nearest(vector, fetch, where)
        scores = apply_maps(maps, cosines, *encode_languages(self.store.languages(ids)))
        if len(ids) == fetch:  # not exhaustive: check every language's bound
            floor = float(cosines[-1])
            kth = float(-np.partition(-scores, k - 1)[k - 1]) if len(scores) >= k else -np.inf
            seen = set(ids)
            for language in self.calibration.languages():
                if (allowed is not None and not allowed(language)) or language_map(maps, language)(floor) <= kth:
                    continue
                logger.debug("neutral search: extra query for %r", language)
                more_ids, more = self.store.nearest(vector, k, with_language(language, where))
                new = [i for i, cid in enumerate(more_ids) if cid not in seen]
                ids = ids + [more_ids[i] for i in new]
                scores = np.concatenate([scores, language_map(maps, language)(more[new])])
                seen.update(more_ids)
        top = np.argsort(-scores, kind="stable")[:k]
        return self.store.hits([ids[i] for i in top], scores[top].tolist(), include_embeddings=include_embeddings)
