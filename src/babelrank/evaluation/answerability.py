"""Answerability: does `relevance` tell the questions a collection answers from those it cannot?

Issue #17's evaluation, run through the product like every other benchmark: the corpus is
`babelrank.evaluation.datasets.xquad_unanswerable_pool` (XQuAD paragraphs of several
languages with a random half of the paragraph positions removed in every language), the
runner (`babelrank.evaluation.runner.evaluate`) ingests it with `BabelIndex` and searches
every question keeping every result (`min_relevance=None`), and `score_answerability` scores the
recorded signals (`EvalReport.signals`) per question language, over all questions and per
article split. Its definitions follow `benchmarks/relevance_study.py`:

* ``auroc``: AUROC of the top result's `relevance`, answerable (positive) against
  unanswerable questions; ``auroc_retrieval_score`` the same for the top result's raw
  `retrieval_score` (the baseline: what a threshold on the score itself could do).
* ``kept``: share of answerable questions whose answer paragraph (in any language) is among
  the top `k` results with a relevance at or above `min_relevance` (it survives the filter).
* ``refused``: share of unanswerable questions with no relevance at or above `min_relevance`
  among the top `k` (the search says "no answer here").
* ``ece``: expected calibration error (10 bins) of the top result's relevance for "the top
  result is the answer paragraph or one of its translations", over all questions.
* ``hit@1``, ``hit@10``: of the answerable questions (``kept`` cannot exceed ``hit@10``).

A result without `relevance` (a collection without calibration) is never filtered, as in the
product: it counts as kept, and ``auroc``/``ece`` are None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from babelrank.config import DEFAULT_MIN_RELEVANCE
from babelrank.evaluation.datasets import EvalCorpus
from babelrank.evaluation.metrics import (
    auroc,
    expected_calibration_error,
    hit_at_k,
    kept_at_k,
    refused_at_k,
)
from babelrank.evaluation.runner import EvalReport
from babelrank.models.language import UNDETERMINED

ANSWERABILITY_K = 10
DEV_ARTICLES = 36
"""XQuAD articles 0-35 are for development, 36-47 for held-out checks (issue #17's hygiene)."""
SUMMARY_METRICS = ("auroc", "kept", "refused", "ece")
"""What `summary` condenses per configuration: the mean and the worst query language."""
_WORST = {"auroc": min, "kept": min, "refused": min, "ece": max}


@dataclass(frozen=True)
class _Question:
    """One question's signals, cut to the top `k` results."""

    language: str
    article: int | None
    answerable: bool
    ranked: list[str]
    relevant: frozenset[str]
    relevances: list[float]  # NaN where a result has no relevance
    top_score: float


def _questions(corpus: EvalCorpus, report: EvalReport, k: int) -> list[_Question]:
    """The asked questions of `corpus` with their top-`k` signals from `report`."""
    out = []
    for q in corpus.queries:
        if q.id not in report.signals:
            continue
        signals, ranked = report.signals[q.id], report.run.get(q.id, [])[:k]
        relevances = [math.nan if r is None else float(r) for r in signals["relevance"][:k]]
        scores = signals["retrieval_score"]
        article = q.metadata.get("article")
        out.append(_Question(
            language=q.language or report.detected_query_language.get(q.id) or UNDETERMINED,
            article=None if article is None else int(article),
            answerable=bool(corpus.qrels.get(q.id)),
            ranked=list(ranked),
            relevant=frozenset(corpus.qrels.get(q.id, ())),
            relevances=relevances,
            top_score=float(scores[0]) if scores else -math.inf,
        ))
    return out


def _top_relevance(q: _Question) -> float:
    return q.relevances[0] if q.relevances else 0.0


def _passing(q: _Question) -> list[float]:
    """Relevances as the filter sees them: a result without one is never dropped."""
    return [math.inf if math.isnan(r) else r for r in q.relevances]


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def _group_metrics(questions: Sequence[_Question], min_relevance: float, k: int = ANSWERABILITY_K) -> dict[str, Any]:
    """The answerability figures of one group of questions (module docstring), rounded to 6 places."""
    yes = [q for q in questions if q.answerable]
    no = [q for q in questions if not q.answerable]
    top = np.array([_top_relevance(q) for q in questions])
    calibrated = bool(questions) and not np.isnan(top).any()
    figures = {
        "auroc": auroc([_top_relevance(q) for q in yes], [_top_relevance(q) for q in no]) if calibrated else math.nan,
        "auroc_retrieval_score": auroc([q.top_score for q in yes], [q.top_score for q in no]),
        "kept": _mean([kept_at_k(q.ranked, q.relevant, _passing(q), min_relevance, k) for q in yes]),
        "refused": _mean([refused_at_k(_passing(q), min_relevance, k) for q in no]),
        "ece": expected_calibration_error(top, [hit_at_k(q.ranked, q.relevant, 1) for q in questions])
        if calibrated else math.nan,
        "hit@1": _mean([hit_at_k(q.ranked, q.relevant, 1) for q in yes]),
        f"hit@{k}": _mean([hit_at_k(q.ranked, q.relevant, k) for q in yes]),
    }
    return {"answerable": len(yes), "unanswerable": len(no), **{n: round(v, 6) for n, v in figures.items()}}


def _by_language(questions: Sequence[_Question], min_relevance: float, k: int) -> dict[str, Any]:
    """{"all": figures, "per_language": {language: figures}}."""
    languages = sorted({q.language for q in questions})
    return {
        "all": _group_metrics(questions, min_relevance, k),
        "per_language": {
            lang: _group_metrics([q for q in questions if q.language == lang], min_relevance, k) for lang in languages
        },
    }


def _splits(questions: Sequence[_Question], dev_articles: int | None) -> dict[str, list[_Question]]:
    """The questions of the development and of the held-out articles; none when a question has no
    article or a split would be empty."""
    articles = [q.article for q in questions if q.article is not None]
    if dev_articles is None or len(articles) < len(questions) or not articles:
        return {}
    first, last = min(articles), max(articles)
    split = {
        f"articles {first}-{dev_articles - 1}": [q for q in questions if q.article < dev_articles],
        f"articles {dev_articles}-{last}": [q for q in questions if q.article >= dev_articles],
    }
    return split if all(split.values()) else {}


def score_answerability(
    corpus: EvalCorpus,
    report: EvalReport,
    *,
    min_relevance: float = DEFAULT_MIN_RELEVANCE,
    k: int = ANSWERABILITY_K,
    dev_articles: int | None = DEV_ARTICLES,
) -> dict[str, Any]:
    """Score a run of `corpus` (its `report`) for answerability.

    Args:
        corpus: The evaluated corpus; a query with an empty `qrels` entry is unanswerable.
        report: The runner's report of it (its `signals` and `run`).
        min_relevance: The threshold of ``kept`` and ``refused``.
        k: Results per question that count for ``kept``, ``refused`` and ``hit@k``.
        dev_articles: Articles below it form the development split, the rest the held-out
            one (queries need an `article` in their metadata; no splits when one would be
            empty); None: no splits.

    Returns:
        ``{"min_relevance", "k", "positions", "positions_removed", <figures of all
        questions>, "per_language": {language: figures}, "splits": {name: {"all": figures,
        "per_language": ...}}}``; a figure that cannot be computed is NaN.
    """
    questions = _questions(corpus, report, k)
    groups = _by_language(questions, min_relevance, k)
    positions = {(q.metadata.get("article"), q.metadata.get("paragraph")): bool(corpus.qrels.get(q.id))
                 for q in corpus.queries if "article" in q.metadata}
    return {
        "min_relevance": min_relevance,
        "k": k,
        "positions": len(positions) or None,
        "positions_removed": sum(not kept for kept in positions.values()) if positions else None,
        **groups["all"],
        "per_language": groups["per_language"],
        "splits": {name: _by_language(qs, min_relevance, k) for name, qs in _splits(questions, dev_articles).items()},
    }


def summary(result: Mapping[str, Any]) -> tuple[dict[str, float | None], dict[str, dict[str, Any]]]:
    """One configuration's row for `compare`: the mean and the worst query language of each of
    `SUMMARY_METRICS` (``auroc_mean``, ``auroc_worst``, ...), and the per-language figures.

    Args:
        result: What `score_answerability` returned.
    """
    per_language = dict(result["per_language"])
    out: dict[str, float | None] = {}
    for name in SUMMARY_METRICS:
        values = [float(m[name]) for m in per_language.values() if m.get(name) is not None and math.isfinite(m[name])]
        out[f"{name}_mean"] = float(np.mean(values)) if values else None
        out[f"{name}_worst"] = _WORST[name](values) if values else None
    return out, per_language
