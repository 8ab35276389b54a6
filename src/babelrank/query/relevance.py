"""Calibrated relevance: the probability that a result answers the query, and "no answer here".

A retrieval score says which chunk is best, not whether any chunk is good: e5 cosines of
unrelated passages sit at 0.75-0.8, MiniLM's near 0.3, and the best of 500 unrelated chunks
scores higher than the best of 50. This module turns a result's score into an estimate in
[0, 1] that the chunk is relevant, with the same meaning for every model and language, from
statistics babelrank keeps anyway and a calibration the collection gives itself, without
labels. It is pure (numpy only); the caller supplies the numbers: the retriever
(`babelrank.query.retriever`) per query, `babelrank.query.relevance_fit` for the calibration.

Definition. For a query with search vector ``q'`` (``babelrank.query.neutral``), a result
``d`` in language ``B`` with cosine ``cos(q', d)``, and ``B``'s mean ``m_B`` and spread
``s_B`` of cosines along ``q'`` (the neutral calibration's), the result's *standing* is::

    z = (cos(q', d) - m_B) / s_B

The calibration (``RelevanceCalibration``) holds two normal laws on ``z`` with one spread,
both measured on the collection itself with pseudo-queries (below): the *null* law
``N(mu0, sd0)`` of the top result's ``z`` for a query the collection cannot answer, and the
*relevant* law ``N(mu1, sd0)`` of the ``z`` of the chunk that answers. With ``n`` chunks now
and ``n_ref`` at calibration, the null's location follows the Gaussian extreme-value law of
the maximum of ``n`` draws, ``b(n) = Phi^-1(1 - 1/n)``, in units of the per-chunk spread
``sc`` of ``z``::

    mu0(n)    = mu0 + sc (b(n) - b(n_ref))
    log_odds  = (mu1 - mu0(n)) / sd0^2 * (z - (mu0(n) + mu1) / 2)
    relevance = 1 / (1 + exp(-log_odds))

i.e. the posterior that ``z`` comes from the relevant law rather than the null one, at even
prior odds (before looking, a query is as likely answerable as not). ``relevance >= 0.5``
means "more likely relevant than not": that is the default ``min_relevance``, and a search is
*answerable* when any result reaches it.

Pseudo-queries (``fit_calibration``; `babelrank.query.relevance_fit` draws and embeds them). A random sentence of a stored
chunk, embedded with the query prompt, is a question the collection can answer (that chunk)
or, with the chunk and its translations held out, one it cannot. Two answerable forms bracket
a real question: the chunk still holding the sentence verbatim (too easy) and the chunk with
the sentence removed (the inverse cloze task, Lee et al. 2019; too hard); ``mu1`` is midway
between their mean z. The figures below are from ``benchmarks/relevance_study.py`` (e5-small,
XQuAD paragraphs en+ru+de+es with half the paragraph ids removed, 480 chunks, 256
pseudo-queries; choices made on articles 0-35):

* ``mu1``: with the sentence 5.36, without 3.70, midway 4.53; real questions' answer
  paragraphs (as top result) 4.89 +- 1.15.
* ``mu0``: the held-out top result stands at 3.14 +- 0.95, real unanswerable questions'
  at 2.90 +- 0.84: a slightly high null, which errs toward "no answer here".
* One spread for both laws, the null's (the equal-variance model of signal detection): the
  null's is the well-measured one and real answers spread 1.15, near it, while each pseudo
  form spreads about 1.6 (they differ in how much of the sentence the chunk keeps). With the
  forms' spread pooled in, relevance was under-confident: ECE 0.13-0.14 per question
  language instead of 0.03-0.06.
* z rather than the score itself: the top-1 neutral score separates answerable from
  unanswerable questions slightly better (AUROC 0.915-0.934 against 0.894-0.923 for z) but
  its scale moves with the query language: a logistic fit of it on pooled pseudo-queries had
  ECE 0.105-0.109 for Russian questions, the same fit of z 0.054-0.063.
* Per-language counts enter only through ``n``: a chunk's z is standardised in its own
  language, so the best of ``n`` irrelevant chunks has the same law however ``n`` splits over
  languages. The ``b(n)`` shift is the textbook extreme-value law, not measured here (the
  study calibrates on the collection it searches).

A cross-encoder logit, where rerank ran, would add its own log-likelihood ratio to
``log_odds`` (``extra_log_odds``), calibrated on the same pseudo-queries; that is an extension
point, not measured (no real cross-encoder offline). The bi-encoder's z bounds what this score
can separate: at 0.5 it keeps the answer of 79-87 % of answerable questions and refuses 82-88 %
of unanswerable ones (e5, 4 languages); no threshold on it keeps 90 % and refuses 80 % in every
language.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from babelrank.config import DEFAULT_MIN_RELEVANCE

FORMAT_VERSION = 2
"""Bumped whenever the fit changes (2: the null holds out the source's whole document), so a
collection calibrated by an older fit is refitted when it is opened."""
_MIN_SPREAD = 1e-6


def expected_null_max(n: int) -> float:
    """``Phi^-1(1 - 1/n)``: the Gaussian extreme-value location of the largest of ``n`` draws.

    Args:
        n: Number of draws (chunks); values below 2 are treated as 2.

    Returns:
        The location in standard units (0.0 for n = 2, 2.33 for 100, 3.09 for 1000).
    """
    return NormalDist().inv_cdf(1.0 - 1.0 / max(int(n), 2))


def standing(cosines: Any, means: Any, spreads: Any) -> np.ndarray:
    """``z = (cos - m_B) / s_B`` per result: how far it stands above its language's scores.

    Args:
        cosines: Cosine of each result with the search vector ``q'``.
        means: ``m_B`` of each result's language along ``q'`` (broadcastable to `cosines`).
        spreads: ``s_B`` of each result's language along ``q'`` (broadcastable).

    Returns:
        Float64 array of z, the shape of `cosines`.
    """
    c = np.asarray(cosines, dtype=np.float64)
    s = np.maximum(np.asarray(spreads, dtype=np.float64), _MIN_SPREAD)
    return (c - np.asarray(means, dtype=np.float64)) / s


@dataclass(frozen=True)
class RelevanceCalibration:
    """The collection's own null and relevant laws of the standing z (see the module docstring).

    Attributes:
        null_mean: ``mu0``, mean best z of held-out pseudo-queries.
        null_spread: ``sd0``, its standard deviation (the spread of both laws).
        relevant_mean: ``mu1``, midway between the mean z of the source chunk with and
            without the pseudo-query's sentence.
        chunk_spread: ``sc``, standard deviation of z over all chunks for a pseudo-query.
        reference_size: ``n_ref``, chunks in the collection when calibrated.
        queries: Pseudo-queries behind the fit (for reporting).
        languages: The collection's chunk languages when calibrated (a new language makes
            the calibration stale, see `babelrank.query.relevance_fit`).
    """

    null_mean: float
    null_spread: float
    relevant_mean: float
    chunk_spread: float
    reference_size: int
    queries: int = 0
    languages: tuple[str, ...] = ()

    def null_location(self, n: int) -> float:
        """``mu0(n)``: the null mean moved to a collection of `n` chunks."""
        return self.null_mean + self.chunk_spread * (expected_null_max(n) - expected_null_max(self.reference_size))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (plain floats and ints) for the collection metadata."""
        return {"version": FORMAT_VERSION, **asdict(self), "languages": list(self.languages)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RelevanceCalibration:
        """The calibration saved by `to_dict`.

        Raises:
            ValueError: On another format version.
            KeyError: When a field is missing.
        """
        if int(d.get("version", FORMAT_VERSION)) != FORMAT_VERSION:
            raise ValueError(f"relevance calibration format {d.get('version')} (expected {FORMAT_VERSION})")
        return cls(float(d["null_mean"]), float(d["null_spread"]), float(d["relevant_mean"]),
                   float(d["chunk_spread"]), int(d["reference_size"]), int(d.get("queries", 0)),
                   tuple(str(x) for x in d.get("languages", ())))


def fit_calibration(null_best: Sequence[float], with_sentence: Sequence[float], without_sentence: Sequence[float],
                    chunk_spread: float, reference_size: int, languages: Sequence[str] = ()) -> RelevanceCalibration:
    """Fit the two laws from pseudo-query measurements on the collection (no labels).

    The relevant law is centred midway between the two answerable forms, which bracket a real
    question; both laws take the null's spread (see the module docstring).

    Args:
        null_best: Per held-out pseudo-query, the z of the top result in the collection without
            its source chunk and the source's translations.
        with_sentence: z of the source chunk (still holding the sentence) per pseudo-query.
        without_sentence: z of the source chunk with the sentence removed per pseudo-query.
        chunk_spread: Standard deviation of z over all chunks, pooled over pseudo-queries.
        reference_size: Chunks in the collection the measurements came from.
        languages: The collection's chunk languages.

    Returns:
        The calibration.

    Raises:
        ValueError: With fewer than 2 values in any sample.
    """
    z0, za, zb = (np.asarray(x, dtype=np.float64) for x in (null_best, with_sentence, without_sentence))
    if min(len(z0), len(za), len(zb)) < 2:
        raise ValueError("need at least 2 pseudo-query measurements of each kind")
    return RelevanceCalibration(float(z0.mean()), float(z0.std(ddof=1)), float((za.mean() + zb.mean()) / 2),
                                float(chunk_spread), int(reference_size), len(z0), tuple(sorted(languages)))


def log_odds(z: Any, calibration: RelevanceCalibration, collection_size: int) -> np.ndarray:
    """Log odds that a result of standing `z` is relevant rather than the best irrelevant one.

    Args:
        z: Standing of each result (`standing`).
        calibration: The collection's `RelevanceCalibration`.
        collection_size: Chunks in the collection now (all languages).

    Returns:
        Float64 array, the shape of `z`; increasing in z.
    """
    mu0 = calibration.null_location(collection_size)
    mu1 = calibration.relevant_mean
    var = max(calibration.null_spread ** 2, _MIN_SPREAD)
    return (mu1 - mu0) / var * (np.asarray(z, dtype=np.float64) - (mu0 + mu1) / 2)


def relevance(z: Any, calibration: RelevanceCalibration, collection_size: int,
              extra_log_odds: Any = 0.0) -> np.ndarray:
    """Estimated probability, in [0, 1], that each result is relevant to the query.

    Args:
        z: Standing of each result (`standing`).
        calibration: The collection's `RelevanceCalibration`.
        collection_size: Chunks in the collection now (all languages).
        extra_log_odds: Further evidence per result as a log-likelihood ratio (extension point,
            e.g. a calibrated cross-encoder logit); 0 adds nothing.

    Returns:
        Float64 array, the shape of `z`.
    """
    t = log_odds(z, calibration, collection_size) + np.asarray(extra_log_odds, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-np.clip(t, -700.0, 700.0)))


def answerable(relevances: Any, min_relevance: float = DEFAULT_MIN_RELEVANCE) -> bool:
    """True when at least one result is at or above `min_relevance`."""
    r = np.asarray(relevances, dtype=np.float64)
    return bool(r.size and r.max() >= min_relevance)


def keep_relevant(relevances: Any, min_relevance: float = DEFAULT_MIN_RELEVANCE) -> np.ndarray:
    """Indices of the results at or above `min_relevance`, in their given order."""
    return np.flatnonzero(np.asarray(relevances, dtype=np.float64) >= min_relevance)


def is_finite_calibration(calibration: RelevanceCalibration) -> bool:
    """False when any number is NaN or infinite (e.g. a fit on degenerate pseudo-queries)."""
    return all(math.isfinite(float(v)) for v in asdict(calibration).values() if not isinstance(v, tuple))
