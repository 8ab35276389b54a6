"""Ranking metrics against hand-computed values."""

from __future__ import annotations

from math import log2

import pytest

from babelrank.evaluation.metrics import (
    auroc,
    average_precision_at_k,
    evaluate_by_group,
    evaluate_run,
    expected_calibration_error,
    hit_at_k,
    kept_at_k,
    language_spread,
    latency_percentiles,
    ndcg_at_k,
    query_metrics,
    recall_at_k,
    reciprocal_rank,
    refused_at_k,
)

RANKED = ["a", "b", "c", "d"]
RELEVANT = {"b", "d", "x"}  # "x" is never retrieved


def test_recall_and_hit_at_k():
    assert recall_at_k(RANKED, RELEVANT, 1) == 0.0
    assert recall_at_k(RANKED, RELEVANT, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKED, RELEVANT, 4) == pytest.approx(2 / 3)
    assert recall_at_k(RANKED, RELEVANT, 100) == pytest.approx(2 / 3)  # k beyond the list
    assert hit_at_k(RANKED, RELEVANT, 1) == 0.0
    assert hit_at_k(RANKED, RELEVANT, 2) == 1.0
    # one relevant id: recall@k is top-k accuracy
    assert recall_at_k(RANKED, ["c"], 3) == hit_at_k(RANKED, ["c"], 3) == 1.0


def test_reciprocal_rank():
    assert reciprocal_rank(RANKED, RELEVANT) == 0.5
    assert reciprocal_rank(RANKED, RELEVANT, k=1) == 0.0
    assert reciprocal_rank(RANKED, {"d"}, k=10) == 0.25
    assert reciprocal_rank(RANKED, {"zzz"}) == 0.0


def test_ndcg_binary_and_graded():
    dcg = 1 / log2(3) + 1 / log2(5)  # relevant at ranks 2 and 4
    idcg = 1 + 1 / log2(3) + 1 / log2(4)  # three relevant ids
    assert ndcg_at_k(RANKED, RELEVANT, 4) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["b", "d"], {"b", "d"}, 10) == pytest.approx(1.0)
    graded = {"a": 3, "b": 1, "c": 0}  # grade 0 = judged not relevant
    assert ndcg_at_k(["b", "a", "z"], graded, 3) == pytest.approx((1 + 3 / log2(3)) / (3 + 1 / log2(3)))
    assert ndcg_at_k(["c"], graded, 3) == 0.0


def test_average_precision_lareqa_definition():
    # XQuAD-R style: four relevant sentences found at ranks 1, 2, 5 and 30
    ranked = [f"s{i}" for i in range(1, 41)]
    relevant = {"s1", "s2", "s5", "s30"}
    assert average_precision_at_k(ranked, relevant, 20) == pytest.approx((1 + 1 + 3 / 5) / 4)
    # denominator min(|relevant|, k): the Kaggle apk reference cases
    five = ["1", "2", "3", "4", "5"]
    assert average_precision_at_k(["6", "4", "7", "1", "2"], five, 2) == pytest.approx(0.25)
    assert average_precision_at_k(five, ["1", "3"], 3) == pytest.approx(5 / 6)
    many = [str(i) for i in range(100)]
    assert average_precision_at_k(many[:20] + ["x"] * 5, many, 20) == pytest.approx(1.0)
    # one relevant id: AP equals the reciprocal rank
    assert average_precision_at_k(RANKED, {"c"}, 20) == pytest.approx(1 / 3)


def test_duplicates_take_a_rank_but_earn_once():
    assert average_precision_at_k(["1", "1", "1", "1", "1"], ["1", "2", "3", "4", "5"], 5) == pytest.approx(0.2)
    assert average_precision_at_k(["1", "1", "1"], ["1", "2", "3"], 3) == pytest.approx(1 / 3)
    assert recall_at_k(["a", "a", "b"], {"a", "b"}, 2) == 0.5
    assert ndcg_at_k(["a", "a", "b"], {"a", "b"}, 3) == pytest.approx((1 + 1 / log2(4)) / (1 + 1 / log2(3)))


def test_no_relevant_or_empty_ranking_scores_zero():
    for relevant in (set(), {"a": 0}):
        assert query_metrics(RANKED, relevant, ks=(1, 5)) == {
            "recall@1": 0.0, "hit@1": 0.0, "recall@5": 0.0, "hit@5": 0.0,
            "mrr@10": 0.0, "ndcg@10": 0.0, "map@20": 0.0,
        }  # fmt: skip
    assert set(query_metrics([], {"a"}).values()) == {0.0}


def test_bad_arguments():
    with pytest.raises(ValueError, match="k must be >= 1"):
        recall_at_k(RANKED, RELEVANT, 0)
    with pytest.raises(TypeError, match="not the string"):
        recall_at_k(RANKED, "b", 1)


RUN = {"q1": ["a", "b", "c"], "q2": ["x", "y"], "q3": ["z"]}
QRELS = {"q1": {"b"}, "q2": {"y", "w"}, "q4": {"m"}, "q5": set()}


def test_evaluate_run_averages_judged_queries():
    # q1: first hit at rank 2 of 1 relevant; q2: 1 of 2 relevant at rank 2; q4: not in the run;
    # q5 has no relevant id (left out); q3 has no judgements (ignored)
    result = evaluate_run(RUN, QRELS, ks=(1, 5))
    expected = {
        "recall@1": 0.0,
        "hit@1": 0.0,
        "recall@5": (1 + 0.5 + 0) / 3,
        "hit@5": 2 / 3,
        "mrr@10": (0.5 + 0.5) / 3,
        "ndcg@10": (1 / log2(3) + (1 / log2(3)) / (1 + 1 / log2(3))) / 3,
        "map@20": (0.5 + 0.25) / 3,
        "queries": 3.0,
    }
    assert result == pytest.approx(expected)
    assert evaluate_run({}, {}) == {"queries": 0.0}


def test_evaluate_run_graded_qrels_and_custom_depths():
    result = evaluate_run({"q": ["n", "g"]}, {"q": {"g": 2, "n": 0}}, ks=(1,), mrr_k=1, ndcg_k=2, map_k=2)
    assert result == pytest.approx(
        {"recall@1": 0.0, "hit@1": 0.0, "mrr@1": 0.0, "ndcg@2": 1 / log2(3), "map@2": 0.5, "queries": 1.0}
    )


def test_evaluate_by_group():
    groups = {"q1": "uk", "q2": "en", "q4": "en", "q5": "en"}
    result = evaluate_by_group(RUN, QRELS, groups, ks=(5,))
    assert list(result) == ["en", "uk"]
    assert result["uk"]["recall@5"] == 1.0 and result["uk"]["queries"] == 1.0
    assert result["en"]["recall@5"] == 0.25 and result["en"]["queries"] == 2.0
    with pytest.raises(ValueError, match="no group"):
        evaluate_by_group(RUN, QRELS, {"q1": "uk"})


def test_latency_percentiles():
    result = latency_percentiles([0.4, 0.1, 0.3, 0.2])
    # linear interpolation: p95 sits at position 0.95 * 3 = 2.85 of the sorted values
    assert result == pytest.approx({"p50": 0.25, "p95": 0.3 + 0.85 * 0.1, "mean": 0.25})
    assert latency_percentiles([2.0]) == {"p50": 2.0, "p95": 2.0, "mean": 2.0}
    with pytest.raises(ValueError):
        latency_percentiles([])


def test_language_spread_names_worst_and_best():
    per = {"en": {"map@20": 0.5}, "zh": {"map@20": 0.2}, "de": {"map@20": 0.4}}
    spread = language_spread(per, "map@20")
    assert (spread["worst"], spread["best"]) == ("zh", "en")
    assert spread["worst_to_best"] == pytest.approx(0.4)
    assert language_spread({"en": {"map@20": 0.5}}, "map@20") is None
    assert language_spread(per, "recall@1") is None


# --- answerability ----------------------------------------------------------------------------


def test_auroc_counts_ties_half():
    # pairs (pos, neg): (3,1) (3,2) (2,1) win, (2,2) ties -> (3 + 0.5) / 4
    assert auroc([3, 2], [1, 2]) == pytest.approx(0.875)
    assert auroc([1, 1], [1]) == 0.5
    assert auroc([0.1], [0.2, 0.3]) == 0.0
    assert auroc([0.9, 0.8], [0.1]) == 1.0
    # 3 positives, 2 negatives: 0.7 beats both, 0.4 beats 0.2 and ties 0.4, 0.1 beats none -> 3.5 / 6
    assert auroc([0.7, 0.4, 0.1], [0.4, 0.2]) == pytest.approx(3.5 / 6)
    assert auroc([], [1.0]) != auroc([], [1.0])  # NaN with an empty side


def test_expected_calibration_error():
    # bin 1: p 0.1, 0.15 (mean 0.125) vs outcomes 0, 1 (0.5): 0.5 * 0.375; bin 9: p 0.9, 0.95 vs 1, 1: 0.5 * 0.075
    assert expected_calibration_error([0.1, 0.15, 0.9, 0.95], [0, 1, 1, 1]) == pytest.approx(0.1875 + 0.0375)
    # two bins: [0, 0.5) holds 0.2, 0.4 (0.3 vs 0.5), [0.5, 1] holds 0.6 (vs 1): 2/3 * 0.2 + 1/3 * 0.4
    assert expected_calibration_error([0.2, 0.4, 0.6], [0, 1, 1], bins=2) == pytest.approx(0.4 / 3 + 0.4 / 3)
    assert expected_calibration_error([1.0, 0.0], [True, False]) == 0.0  # p = 1 falls in the last bin
    assert expected_calibration_error([0.5, 0.5], [1, 0]) == 0.0
    nan = expected_calibration_error([], [])
    assert nan != nan
    with pytest.raises(ValueError):
        expected_calibration_error([0.5], [1, 0])
    with pytest.raises(ValueError):
        expected_calibration_error([1.5], [1])


def test_kept_and_refused_at_k():
    ranked, relevances = ["a", "b", "c"], [0.9, 0.6, 0.2]
    assert kept_at_k(ranked, {"b", "x"}, relevances, 0.5) == 1.0
    assert kept_at_k(ranked, {"b"}, relevances, 0.7) == 0.0  # b ranks but falls under the threshold
    assert kept_at_k(ranked, {"b"}, relevances, 0.5, k=1) == 0.0  # b is not in the top 1
    assert kept_at_k(ranked, {"c"}, relevances, 0.2) == 1.0  # at the threshold counts as kept
    assert kept_at_k(ranked, set(), relevances, 0.0) == 0.0
    assert refused_at_k([0.4, 0.3], 0.5) == 1.0
    assert refused_at_k([0.4, 0.6], 0.5) == 0.0
    assert refused_at_k([0.4, 0.6], 0.5, k=1) == 1.0
    assert refused_at_k([0.5], 0.5) == 0.0
    assert refused_at_k([], 0.5) == 1.0
