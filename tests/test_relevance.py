"""Unit tests of babelrank.query.relevance, the relevance method (pure; synthetic numbers, no model)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from babelrank.config import DEFAULT_MIN_RELEVANCE
from babelrank.query.relevance import (
    FORMAT_VERSION,
    RelevanceCalibration,
    answerable,
    expected_null_max,
    fit_calibration,
    is_finite_calibration,
    keep_relevant,
    log_odds,
    relevance,
    standing,
)

CAL = RelevanceCalibration(null_mean=3.0, null_spread=1.0, relevant_mean=5.0, chunk_spread=1.0,
                           reference_size=500, queries=256)


def test_standing_is_the_z_in_the_results_language() -> None:
    z = standing([0.85, 0.80], [0.75, 0.70], [0.025, 0.05])
    assert z == pytest.approx([4.0, 2.0])


def test_standing_survives_a_zero_spread() -> None:
    assert np.isfinite(standing([0.8], [0.8], [0.0])).all()


def test_expected_null_max_is_the_gaussian_quantile() -> None:
    assert expected_null_max(2) == pytest.approx(0.0, abs=1e-12)
    assert expected_null_max(100) == pytest.approx(2.326, abs=1e-3)
    assert expected_null_max(1000) == pytest.approx(3.090, abs=1e-3)
    assert expected_null_max(1) == expected_null_max(2)


def test_relevance_is_one_half_midway_between_the_laws() -> None:
    assert relevance([4.0], CAL, 500)[0] == pytest.approx(0.5)
    assert log_odds([4.0], CAL, 500)[0] == pytest.approx(0.0)


def test_relevance_matches_the_formula() -> None:
    # log odds = (mu1 - mu0) / sd0^2 * (z - (mu0 + mu1) / 2) = 2 * (5 - 4)
    assert relevance([5.0], CAL, 500)[0] == pytest.approx(1 / (1 + math.exp(-2.0)))


def test_relevance_is_in_unit_interval_and_increasing() -> None:
    z = np.linspace(-50, 50, 201)
    r = relevance(z, CAL, 500)
    assert ((r >= 0) & (r <= 1)).all()
    assert (np.diff(r) >= 0).all()
    assert r[0] == pytest.approx(0.0, abs=1e-12) and r[-1] == pytest.approx(1.0)


def test_a_bigger_collection_needs_a_higher_standing() -> None:
    # the best of more irrelevant chunks stands higher, so the same z is less convincing
    small, same, big = (relevance([4.2], CAL, n)[0] for n in (50, 500, 50_000))
    assert small > same > big
    assert CAL.null_location(500) == pytest.approx(CAL.null_mean)
    shift = expected_null_max(50_000) - expected_null_max(500)
    assert CAL.null_location(50_000) == pytest.approx(3.0 + shift)


def test_extra_log_odds_adds_evidence() -> None:
    base = relevance([4.0], CAL, 500)[0]
    assert relevance([4.0], CAL, 500, extra_log_odds=math.log(3))[0] == pytest.approx(0.75)
    assert relevance([4.0], CAL, 500, extra_log_odds=[-1.0])[0] < base


def test_fit_recovers_synthetic_laws() -> None:
    rng = np.random.default_rng(0)
    null = rng.normal(3.0, 0.9, 4000)
    with_sentence, without_sentence = rng.normal(5.5, 1.5, 4000), rng.normal(3.5, 1.5, 4000)
    cal = fit_calibration(null, with_sentence, without_sentence, chunk_spread=0.95, reference_size=480)
    assert cal.null_mean == pytest.approx(3.0, abs=0.05)
    assert cal.null_spread == pytest.approx(0.9, abs=0.05)
    assert cal.relevant_mean == pytest.approx(4.5, abs=0.1)
    assert (cal.chunk_spread, cal.reference_size, cal.queries) == (0.95, 480, 4000)


def test_fit_calibrates_a_synthetic_mixture() -> None:
    """Queries answerable half the time, laws as fitted: relevance is calibrated."""
    rng = np.random.default_rng(1)
    cal = RelevanceCalibration(3.0, 0.9, 4.8, 1.0, 400)
    y = rng.random(20_000) < 0.5
    z = np.where(y, rng.normal(4.8, 0.9, y.size), rng.normal(3.0, 0.9, y.size))
    r = relevance(z, cal, 400)
    for lo in np.arange(0.0, 1.0, 0.2):
        sel = (r >= lo) & (r < lo + 0.2)
        assert y[sel].mean() == pytest.approx(r[sel].mean(), abs=0.03)


def test_fit_needs_measurements() -> None:
    with pytest.raises(ValueError):
        fit_calibration([3.0], [5.0, 5.1], [4.0, 4.2], 1.0, 10)


def test_round_trip_through_json() -> None:
    d = json.loads(json.dumps(CAL.to_dict()))
    assert d["version"] == FORMAT_VERSION
    assert RelevanceCalibration.from_dict(d) == CAL


def test_from_dict_rejects_another_version() -> None:
    with pytest.raises(ValueError):
        RelevanceCalibration.from_dict({**CAL.to_dict(), "version": 99})


def test_finite_check() -> None:
    assert is_finite_calibration(CAL)
    assert not is_finite_calibration(RelevanceCalibration(float("nan"), 1.0, 5.0, 1.0, 10))


def test_answerable_and_keep_at_the_default() -> None:
    assert DEFAULT_MIN_RELEVANCE == 0.5
    assert answerable([0.2, 0.5])
    assert not answerable([0.2, 0.49])
    assert not answerable([])
    assert keep_relevant([0.9, 0.3, 0.6]).tolist() == [0, 2]
    assert keep_relevant([0.9, 0.3, 0.6], min_relevance=0.95).tolist() == []
