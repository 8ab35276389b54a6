"""Language-neutral retrieval scores for a multilingual bi-encoder.

Multilingual bi-encoders prefer the query's own language: an irrelevant chunk in the
query's language often outscores the relevant chunk in another language. This module
removes that preference without training, from per-language statistics of the
collection's own (raw, L2-normalised) chunk vectors.

Definition. Let ``q`` be the unit query vector (query prompt), ``d`` a unit chunk vector
(passage prompt) in language ``B``, ``A`` the query language, ``mu_L`` the mean and ``v_L``
the per-dimension variance of the stored chunk vectors tagged ``L``, and ``c`` the mean of
the calibrated languages' centroids. The query's *own-language direction* is
``a_A = unit(mu_A - c)`` and its *lean* is ``<q, a_A>``. The search vector is the query less
its lean, when it leans toward its own language::

    q' = unit(q - max(0, <q, a_A>) a_A)

Along ``q'`` the cosines with language ``L`` have mean ``m_L = <q', mu_L>`` and (ignoring
correlations between dimensions) spread ``s_L = sqrt(sum_i q'_i^2 v_L[i])``. The neutral
score is::

    retrieval_score(q, d) = max(<q', d> + max(0, m_A - m_B),  m_A + (s_A / s_B) (<q', d> - m_B))

Why each part (e5-small; XQuAD-R sentence pools, Tatoeba mixed pools; all figures from
``benchmarks/neutral_study.py``):

* The lean removal is the per-chunk form of the own-language bonus. The cosine holds a
  term ``<q, a_A> <d, a_A>``: every chunk is rewarded by how strongly it is in the query's
  language, and a language-wide constant (a lift) can only remove its mean. It is largest
  for Chinese: the zh centroid stands 0.249 from ``c`` (other languages 0.17-0.19) and zh
  questions lean 0.250 toward it (0.11-0.21), zh chunks form the tightest cluster (centroid
  norm 0.915, others 0.87-0.89). On the 6-language pool (en ru de es zh ar) the lift and
  spread alone left zh at mAP@20 0.428 (0.71 of English) and cost 2.5 points of hit@1;
  with the lean removed zh reaches 0.539 (0.87 of English), the pool 0.546 -> 0.570 and
  hit@1 0.704 -> 0.725 (raw 0.729). On en+ru+de+es 0.676 -> 0.685, R@1 0.745 -> 0.743 (raw
  0.743).
* Only a lean toward the query's own language is removed (``max(0, .)``): queries in
  languages whose chunks the model does not favour over English (Tatoeba hye, kat, aze,
  hrv, uzb: 1-12 % of their queries lean toward their own language) lose 2-4.5 points of
  accuracy when their component along ``a_A`` is removed anyway; clipped, no language of
  the 16 is below raw.
* The lift ``max(0, m_A - m_B)`` equalises what is left of the mean preference, and never
  lowers a language the query does not prefer (the "full centring" ``<q, d - mu_B>`` costs
  2-4 points on languages the model handles without bias).
* The spread term maps ``B``'s cosine distribution onto ``A``'s (same mean and spread), so
  a chunk that stands out in ``B`` as much as the best of ``A`` scores like it even where
  ``B``'s cosines are more compressed than ``A``'s (+0.7 mAP@20 points on XQuAD-R over the
  lift alone, no change on Tatoeba).

Consequences: within one language the score is an increasing function of the cosine with
``q'``, so an ANN search with ``q'`` is exact per language; a one-language collection ranks
(and scores) exactly as raw (no second centroid, no direction); nothing is fitted and
there is no per-language constant: every quantity is the collection's own statistic.
Chunks whose language has no statistics (``"und"`` or fewer than ``min_count`` chunks) use
the whole collection's. An unknown query language (``None``/``"und"``, or one without
statistics) is estimated as the language whose pseudo-query centroid is nearest (see
:meth:`LanguageCalibration.add_pseudo_queries`), or, without pseudo-queries, the nearest
chunk centroid.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from babelrank.schema import UNDETERMINED
from babelrank.store.calibration import LanguageCalibration, is_unknown_language

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class LanguageMap:
    """Neutral score of one chunk language as a function of the raw cosine (increasing).

    ``score(cos) = max(cos + lift, own_mean + ratio * (cos - mean))``; see the module docstring.
    `mean` and `spread` are the language's ``m_B`` and ``s_B`` along the search vector (the
    relevance standing `babelrank.query.relevance.standing` reads them too).
    """

    lift: float = 0.0
    own_mean: float = 0.0
    mean: float = 0.0
    ratio: float = 1.0
    spread: float = 1.0

    def __call__(self, cos: Any) -> Any:
        return np.maximum(cos + self.lift, self.own_mean + self.ratio * (cos - self.mean))

    def cosine(self, score: Any) -> Any:
        """The cosine a neutral `score` came from (the inverse of the map: both branches increase)."""
        return np.minimum(score - self.lift, self.mean + (score - self.own_mean) / self.ratio)


IDENTITY = LanguageMap()


class NeutralScorer:
    """Language-neutral scoring from a calibration (see the module docstring)."""

    def __init__(self, calibration: LanguageCalibration) -> None:
        self.calibration = calibration
        self.languages = calibration.languages
        glob = calibration.global_centroid()
        self._global = np.zeros(calibration.dim) if glob is None else glob
        gvar = calibration.global_variance()
        self._global_var = np.zeros(calibration.dim) if gvar is None else gvar
        self._mu = {lang: calibration.centroid(lang) for lang in self.languages}
        self._var = {lang: calibration.variance(lang) for lang in self.languages}
        self._pq = {lang: calibration.pseudo_query_centroid(lang) for lang in self.languages}
        centre = np.mean(list(self._mu.values()), axis=0) if len(self._mu) >= 2 else None
        self._own = {} if centre is None else {lang: _unit(mu - centre) for lang, mu in self._mu.items()}

    def estimate_language(self, query: np.ndarray) -> str | None:
        """Nearest pseudo-query centroid (cosine), else nearest chunk centroid."""
        cands = {k: v for k, v in self._pq.items() if v is not None} or self._mu
        if not cands:
            return None
        q = np.asarray(query, dtype=np.float64).ravel()
        return max(cands, key=lambda k: float(q @ cands[k]) / (np.linalg.norm(cands[k]) + 1e-12))

    def resolve_language(self, query: np.ndarray, query_language: str | None) -> str | None:
        """The query language used for scoring (estimated when unknown or uncalibrated)."""
        if not is_unknown_language(query_language) and query_language in self._mu:
            return query_language
        guess = self.estimate_language(query)
        log.debug("query language %r -> %r", query_language, guess)
        return guess

    def maps(self, query: np.ndarray, query_language: str | None, project: bool = True) -> dict[str, LanguageMap]:
        """The score map of every calibrated chunk language, and of "und" (the fallback).

        Each map takes the cosine of a chunk with `query_vector(query, query_language)`, or with
        the unit query itself when `project` is False (a raw search's vector; its maps serve
        the relevance standing only). Empty when nothing is calibrated (then every score is
        that cosine).
        """
        lang = self.resolve_language(_unit(query), query_language)
        if lang is None:
            return {}
        q = self._projected(query, lang) if project else _unit(query)
        q2 = q * q
        stats = {b: (float(q @ mu), float(np.sqrt(q2 @ self._var[b]))) for b, mu in self._mu.items()}
        stats[UNDETERMINED] = (float(q @ self._global), float(np.sqrt(q2 @ self._global_var)))
        own_mean, own_spread = stats[lang]
        return {b: LanguageMap(max(0.0, own_mean - mean), own_mean, mean,
                               own_spread / spread if spread > 1e-12 else 1.0, spread)
                for b, (mean, spread) in stats.items()}

    def query_vector(self, query: np.ndarray, query_language: str | None = None) -> np.ndarray:
        """Vector for the ANN index: the unit query less its lean toward its own language.

        ``unit(q - max(0, <q, a_A>) a_A)`` (see the module docstring); the unit query itself
        when fewer than two languages are calibrated or the query does not lean toward its
        language. Within a language the neutral score is an increasing function of the
        cosine with this vector, so an ANN search with it is exact per language; see
        `rescore` for the cross-language part.
        """
        lang = self.resolve_language(_unit(query), query_language)
        return self._projected(query, lang).astype(np.float32)

    def _projected(self, query: np.ndarray, language: str | None) -> np.ndarray:
        q = _unit(query)
        own = self._own.get(language) if language is not None else None
        lean = 0.0 if own is None else float(q @ own)
        return _unit(q - lean * own) if lean > 0 else q

    def rescore(self, query: np.ndarray, query_language: str | None, candidates: np.ndarray,
                candidate_languages: Sequence[str]) -> np.ndarray:
        """Exact neutral scores of raw candidate vectors (higher is better)."""
        q = self._projected(query, self.resolve_language(_unit(query), query_language))
        c = np.asarray(candidates, dtype=np.float64).reshape(-1, q.shape[0])
        return apply_maps(self.maps(query, query_language), c @ q, *encode_languages(candidate_languages))


def encode_languages(languages: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """`(codes, names)` with `names[codes[i]] == languages[i]`, as `apply_maps` takes them."""
    names, codes = np.unique(np.asarray(list(languages), dtype=object), return_inverse=True)
    return codes.reshape(-1), [str(x) for x in names]


def language_map(maps: Mapping[str, LanguageMap], language: str) -> LanguageMap:
    """The map of chunks in `language`: its own, else the whole collection's (`UNDETERMINED`'s),
    else the identity (nothing calibrated)."""
    return maps.get(language, maps.get(UNDETERMINED, IDENTITY))


def apply_maps(maps: Mapping[str, LanguageMap], cosines: np.ndarray, codes: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Neutral scores of raw `cosines`; chunk i is in language `names[codes[i]]` (raw where `maps` is empty)."""
    out = np.asarray(cosines, dtype=np.float64).copy()
    if not maps:
        return out
    for code, lang in enumerate(names):
        rows = codes == code
        if rows.any():
            out[rows] = language_map(maps, lang)(out[rows])
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).ravel()
    n = np.linalg.norm(v)
    return v / n if n > 0 else v
