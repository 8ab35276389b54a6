"""Per-query ranking metrics and their averages over a run (pure Python + numpy).

Conventions shared by every function here:

* `ranked` is a best-first list of document ids; only its first `k` entries count.
* `relevant` is either a collection of relevant ids (binary relevance) or a mapping
  id -> grade; an id is relevant when its grade is > 0 (graded gains only matter to nDCG).
* A document id repeated in `ranked` keeps its rank but earns credit only at its first
  occurrence (as in the LAReQA / XTREME-R evaluation code). Map chunk ids back to document
  ids and de-duplicate (`list(dict.fromkeys(ids))`) before scoring if duplicates should not
  take up ranks.
* A query with no relevant document scores 0.0 on every metric; `evaluate_run` leaves such
  queries out of the averages.

Definitions (|R| = number of relevant ids, rel_i = 1 when rank i holds a new relevant id):

* recall@k = |R ∩ top-k| / |R| (the BEIR / pytrec_eval `recall_k` convention). With one
  relevant id (Tatoeba) it equals hit@k, i.e. top-k accuracy.
* hit@k (success@k) = 1 when any relevant id is in the top k, else 0.
* RR@k = 1 / rank of the first relevant id within the top k, else 0.
* nDCG@k = DCG@k / IDCG@k with DCG = sum_i gain_i / log2(i + 1) and linear gains (the grade,
  or 1 for binary relevance); IDCG sorts all judged grades best-first.
* AP@k = (1 / min(|R|, k)) * sum_{i<=k} rel_i * precision@i — the definition of LAReQA
  mAP@20 (Roy et al. 2020; `average_precision_at_k` in the LAReQA/XTREME-R code, itself the
  Kaggle `apk`). For an XQuAD-R question with four relevant sentences (one per language), a
  ranking with them at ranks 1, 2, 5 and 30 scores (1/1 + 2/2 + 3/5) / 4 = 0.65.

Answerability ("is the answer in the collection at all?", `babelrank.evaluation.answerability`):

* AUROC = P(score of a random positive > score of a random negative), ties counting half
  (the Mann-Whitney U statistic over n_pos * n_neg).
* ECE (expected calibration error) = sum over equal-width bins of p of
  (share of items in the bin) * |mean p - mean outcome| in the bin.
* kept@k = 1 when a relevant id is in the top k with a relevance >= min_relevance (the
  answer survives the product's filter); refused@k = 1 when no relevance in the top k
  reaches min_relevance (the search says "no answer here").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

Relevance = Collection[str] | Mapping[str, float]


def _grades(relevant: Relevance) -> dict[str, float]:
    """Relevant ids with their (positive) grades."""
    if isinstance(relevant, str):
        raise TypeError(f"relevant must be a collection of ids, not the string {relevant!r}")
    if isinstance(relevant, Mapping):
        return {doc: float(g) for doc, g in relevant.items() if g > 0}
    return {doc: 1.0 for doc in relevant}


def _gains(ranked: Sequence[str], grades: Mapping[str, float], k: int) -> list[float]:
    """Gain of each of the top-k ranks; a repeated id earns nothing after its first rank."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    seen: set[str] = set()
    gains = []
    for doc in ranked[:k]:
        gains.append(grades.get(doc, 0.0) if doc not in seen else 0.0)
        seen.add(doc)
    return gains


def recall_at_k(ranked: Sequence[str], relevant: Relevance, k: int) -> float:
    """Fraction of the relevant ids found in the top k."""
    grades = _grades(relevant)
    if not grades:
        return 0.0
    return sum(g > 0 for g in _gains(ranked, grades, k)) / len(grades)


def hit_at_k(ranked: Sequence[str], relevant: Relevance, k: int) -> float:
    """1.0 when any relevant id is in the top k, else 0.0."""
    return float(any(g > 0 for g in _gains(ranked, _grades(relevant), k)))


def reciprocal_rank(ranked: Sequence[str], relevant: Relevance, k: int = 10) -> float:
    """1 / rank of the first relevant id within the top k (0.0 when none)."""
    for rank, gain in enumerate(_gains(ranked, _grades(relevant), k), start=1):
        if gain > 0:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Relevance, k: int = 10) -> float:
    """Normalised DCG over the top k with linear gains (binary, or the grades of a mapping)."""
    grades = _grades(relevant)
    gains = _gains(ranked, grades, k)
    ideal = sorted(grades.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    if idcg == 0:
        return 0.0
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains)) / idcg


def average_precision_at_k(ranked: Sequence[str], relevant: Relevance, k: int = 20) -> float:
    """AP over the top k, normalised by min(|relevant|, k) (LAReQA mAP@k per query)."""
    grades = _grades(relevant)
    if not grades:
        return 0.0
    hits, total = 0, 0.0
    for rank, gain in enumerate(_gains(ranked, grades, k), start=1):
        if gain > 0:
            hits += 1
            total += hits / rank
    return total / min(len(grades), k)


def query_metrics(
    ranked: Sequence[str],
    relevant: Relevance,
    ks: Sequence[int] = (1, 5, 10),
    mrr_k: int = 10,
    ndcg_k: int = 10,
    map_k: int = 20,
) -> dict[str, float]:
    """All metrics of one query: recall@k and hit@k for each k, mrr@, ndcg@, map@."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = recall_at_k(ranked, relevant, k)
        out[f"hit@{k}"] = hit_at_k(ranked, relevant, k)
    out[f"mrr@{mrr_k}"] = reciprocal_rank(ranked, relevant, mrr_k)
    out[f"ndcg@{ndcg_k}"] = ndcg_at_k(ranked, relevant, ndcg_k)
    out[f"map@{map_k}"] = average_precision_at_k(ranked, relevant, map_k)
    return out


def evaluate_run(
    run: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Relevance],
    ks: Sequence[int] = (1, 5, 10),
    mrr_k: int = 10,
    ndcg_k: int = 10,
    map_k: int = 20,
) -> dict[str, float]:
    """Mean of `query_metrics` over the queries of `qrels` that have a relevant id.

    A judged query missing from `run` counts as an empty ranking (scores 0); queries of `run`
    without judgements are ignored. The result also holds "queries": how many were averaged.
    """
    judged = [q for q, rel in qrels.items() if _grades(rel)]
    if len(judged) < len(qrels):
        logger.warning("%d judged queries have no relevant document; left out", len(qrels) - len(judged))
    missing = sum(q not in run for q in judged)
    if missing:
        logger.warning("%d judged queries are missing from the run; scored as empty rankings", missing)
    unjudged = sum(q not in qrels for q in run)
    if unjudged:
        logger.info("%d queries of the run have no judgements; ignored", unjudged)
    rows = [query_metrics(run.get(q, ()), qrels[q], ks, mrr_k, ndcg_k, map_k) for q in judged]
    if not rows:
        return {"queries": 0.0}
    means = {name: float(np.mean([row[name] for row in rows])) for name in rows[0]}
    means["queries"] = float(len(rows))
    return means


def evaluate_by_group(
    run: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Relevance],
    group_of: Mapping[str, str],
    ks: Sequence[int] = (1, 5, 10),
    mrr_k: int = 10,
    ndcg_k: int = 10,
    map_k: int = 20,
) -> dict[str, dict[str, float]]:
    """`evaluate_run` per group of queries (e.g. per query language or language pair).

    Every query of `qrels` must have a group.
    """
    ungrouped = [q for q in qrels if q not in group_of]
    if ungrouped:
        raise ValueError(f"{len(ungrouped)} judged queries have no group, e.g. {ungrouped[:3]}")
    groups: dict[str, dict[str, Relevance]] = {}
    for q, rel in qrels.items():
        groups.setdefault(group_of[q], {})[q] = rel
    return {g: evaluate_run(run, sub, ks, mrr_k, ndcg_k, map_k) for g, sub in sorted(groups.items())}


def auroc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Area under the ROC curve: the chance that a positive outscores a negative, ties half.

    Args:
        positives: Scores of the positive items (e.g. answerable questions).
        negatives: Scores of the negative items.

    Returns:
        The AUROC in [0, 1]; NaN when either side is empty.
    """
    pos, neg = np.asarray(positives, dtype=np.float64), np.asarray(negatives, dtype=np.float64)
    if not len(pos) or not len(neg):
        return float("nan")
    _, inverse, counts = np.unique(np.concatenate([pos, neg]), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]  # 1-based ranks, tied values share their mean rank
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


def expected_calibration_error(probabilities: Sequence[float], outcomes: Sequence[float], bins: int = 10) -> float:
    """Expected calibration error over `bins` equal-width bins of the probabilities.

    Bin i holds p in [i / bins, (i + 1) / bins), the last one also p = 1.

    Args:
        probabilities: Predicted probabilities in [0, 1].
        outcomes: What happened, 1 or 0 (True/False), one per probability.
        bins: Number of bins (>= 1).

    Returns:
        The ECE in [0, 1]; NaN for no items.

    Raises:
        ValueError: Lengths differ, bins < 1, or a probability outside [0, 1].
    """
    p, y = np.asarray(probabilities, dtype=np.float64), np.asarray(outcomes, dtype=np.float64)
    if p.shape != y.shape or bins < 1:
        raise ValueError(f"need as many outcomes as probabilities ({y.shape} vs {p.shape}) and bins >= 1")
    if not p.size:
        return float("nan")
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError("probabilities must lie in [0, 1]")
    which = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum((which == b).mean() * abs(p[which == b].mean() - y[which == b].mean())
                     for b in np.unique(which)))


def kept_at_k(ranked: Sequence[str], relevant: Relevance, relevances: Sequence[float],
              min_relevance: float, k: int = 10) -> float:
    """1.0 when a relevant id is in the top k with a relevance >= `min_relevance`, else 0.0.

    Args:
        ranked: Document ids, best first.
        relevant: The relevant ids (or id -> grade).
        relevances: The relevance of each ranked id (same order).
        min_relevance: The product's threshold.
        k: Ranks that count.
    """
    grades = _grades(relevant)
    gains = _gains(ranked, grades, k)
    return float(any(g > 0 and r >= min_relevance for g, r in zip(gains, relevances)))


def refused_at_k(relevances: Sequence[float], min_relevance: float, k: int = 10) -> float:
    """1.0 when no relevance among the first k reaches `min_relevance` (nothing kept), else 0.0."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return float(not any(r >= min_relevance for r in list(relevances)[:k]))


def language_spread(per_language: Mapping[str, Mapping[str, float]], metric: str) -> dict[str, Any] | None:
    """The worst and best group of `per_language` by `metric`, and their ratio.

    A method that serves the languages it was tuned on and fails on the next one shows here
    in one line (on the 11-language XQuAD-R pool the earlier neutral score gave map@20 from
    0.233 (zh) to 0.530 (en): worst/best 0.44). None with fewer than two groups or when
    `metric` is missing.
    """
    values = {g: float(m[metric]) for g, m in per_language.items() if metric in m}
    if len(values) < 2:
        return None
    worst, best = min(values, key=values.get), max(values, key=values.get)  # type: ignore[arg-type]
    ratio = values[worst] / values[best] if values[best] > 0 else 0.0
    return {"metric": metric, "worst": worst, "worst_value": values[worst], "best": best,
            "best_value": values[best], "worst_to_best": ratio}


def latency_percentiles(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95 (linear interpolation, numpy's default) and mean of per-query latencies."""
    if len(seconds) == 0:
        raise ValueError("no latencies given")
    values = np.asarray(seconds, dtype=float)
    p50, p95 = np.percentile(values, [50, 95])
    return {"p50": float(p50), "p95": float(p95), "mean": float(values.mean())}
