"""Unit tests for babelrank.query.neutral on synthetic vectors (fast, no model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from babelrank.query.neutral import NeutralScorer
from babelrank.store.calibration import DEFAULT_MIN_COUNT, LanguageCalibration

DIM = 64


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _world(n: int = 300, bias: float = 0.9, seed: int = 0):
    """Parallel content in English ("en"), a biased language ("bb") and an unbiased one ("uu").

    Every chunk = content + its language offset. "bb" queries carry the "bb" offset too (the
    model prefers the query's own language); "uu" queries carry none (no preference).
    """
    rng = np.random.default_rng(seed)
    content = _unit(rng.normal(size=(n, DIM)))
    off = {k: bias * _unit(rng.normal(size=DIM)) for k in ("en", "bb", "uu")}
    docs = {k: _unit(content + o + 0.25 * _unit(rng.normal(size=(n, DIM)))) for k, o in off.items()}
    noise = 0.25 * _unit(rng.normal(size=(n, DIM)))
    queries = {"bb": _unit(content + off["bb"] + noise), "uu": _unit(content + noise)}
    return docs, queries


def _acc(S: np.ndarray, n: int) -> float:
    """Top-1 is the English translation (first n columns); own-language twin excluded."""
    S = S.copy()
    S[np.arange(n), n + np.arange(n)] = -np.inf
    return float(np.mean(S.argmax(1) == np.arange(n)))


def _scores(scorer: NeutralScorer, Q, qlang, P, plangs) -> np.ndarray:
    return np.stack([scorer.rescore(q, qlang, P, plangs) for q in Q])


def test_add_remove_equals_from_scratch():
    rng = np.random.default_rng(1)
    v = _unit(rng.normal(size=(100, DIM)))
    langs = ["en"] * 40 + ["uk"] * 35 + ["und"] * 25
    cal = LanguageCalibration(DIM, min_count=5)
    cal.add(v, langs)
    cal.remove(v[:30], langs[:30])
    cal.remove(v[60:70], langs[60:70])
    keep = list(range(30, 60)) + list(range(70, 100))
    ref = LanguageCalibration(DIM, min_count=5)
    ref.add(v[keep], [langs[i] for i in keep])
    assert cal.counts == ref.counts
    for lang in ("en", "uk"):
        assert np.allclose(cal.centroid(lang), ref.centroid(lang), atol=1e-12)
        assert np.allclose(cal.variance(lang), ref.variance(lang), atol=1e-12)
        assert np.allclose(cal.variance(lang), v[[i for i in keep if langs[i] == lang]].var(0), atol=1e-12)
    assert cal.centroid("und") is None and cal.variance("und") is None
    assert np.allclose(cal.global_centroid(), ref.global_centroid())
    assert np.allclose(cal.global_variance(), v[keep].var(0), atol=1e-12)
    with pytest.raises(ValueError):
        cal.remove(v[:50], ["en"] * 50)


def test_min_count_and_round_trip():
    rng = np.random.default_rng(2)
    cal = LanguageCalibration(DIM, min_count=20)
    cal.add(_unit(rng.normal(size=(25, DIM))), ["en"] * 25)
    cal.add(_unit(rng.normal(size=(5, DIM))), ["uk"] * 5)
    cal.add_pseudo_queries(_unit(rng.normal(size=(20, DIM))), ["en"] * 20)
    assert cal.centroid("uk") is None and cal.centroid("en") is not None
    back = LanguageCalibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back.counts == cal.counts and back.min_count == DEFAULT_MIN_COUNT  # a rule, not saved data
    assert LanguageCalibration.from_dict(cal.to_dict(), min_count=20).centroid("uk") is None
    assert np.array_equal(back.centroid("en"), cal.centroid("en"))
    assert np.array_equal(back.variance("en"), cal.variance("en"))
    assert np.array_equal(back.pseudo_query_centroid("en"), cal.pseudo_query_centroid("en"))


def test_one_language_collection_is_raw():
    docs, queries = _world()
    P = docs["en"]
    cal = LanguageCalibration(DIM)
    cal.add(P, ["en"] * len(P))
    sc = NeutralScorer(cal)
    for q in queries["bb"][:20]:
        for lang in ("en", None, "und", "uk"):
            assert np.allclose(sc.rescore(q, lang, P, ["en"] * len(P)), P @ q)


def test_score_follows_its_definition_and_matches_spreads():
    """q' = unit(q - max(0, <q, a_A>) a_A), a_A = unit(mu_A - mean of the centroids); then
    max(cos' + max(0, m_A - m_B), m_A + s_A / s_B (cos' - m_B)) along q', from the collection's sums."""
    rng = np.random.default_rng(3)
    en = _unit(rng.normal(size=(200, DIM)))
    off = _unit(rng.normal(size=DIM))
    bb = _unit(off + 0.3 * _unit(rng.normal(size=(150, DIM))))  # cosines with bb are compressed
    P = np.vstack([en, bb])
    plangs = ["en"] * 200 + ["bb"] * 150
    cal = LanguageCalibration(DIM)
    cal.add(P, plangs)
    sc = NeutralScorer(cal)
    centre = (en.mean(0) + bb.mean(0)) / 2
    leaned = 0
    for q in _unit(rng.normal(size=(20, DIM)) + off * rng.uniform(-1, 1, size=(20, 1))):
        for a, b, X in (("bb", "en", en), ("en", "bb", bb)):
            own = _unit((bb if a == "bb" else en).mean(0) - centre)
            lean = float(q @ own)
            qp = _unit(q - max(0.0, lean) * own)
            leaned += lean > 0
            assert np.allclose(sc.query_vector(q, a), qp, atol=1e-6)
            m = {k: float(qp @ Y.mean(0)) for k, Y in (("en", en), ("bb", bb))}
            s = {k: float(np.sqrt((qp * qp) @ Y.var(0))) for k, Y in (("en", en), ("bb", bb))}
            if lean > 0:
                assert m[a] == pytest.approx(m[b], abs=1e-9)  # the lean removed, the means are equal
            cos = X @ qp
            want = np.maximum(cos + max(0.0, m[a] - m[b]), m[a] + s[a] / s[b] * (cos - m[b]))
            got = sc.rescore(q, a, X, [b] * len(X))
            assert np.allclose(got, want, atol=1e-9)
            # the standardised position inside each language is kept or raised, never lowered
            assert np.all((got - m[a]) / s[a] >= (cos - m[b]) / s[b] - 1e-9)
            own_x = bb if a == "bb" else en
            assert np.allclose(sc.rescore(q, a, own_x, [a] * len(own_x)), own_x @ qp)
    assert 0 < leaned < 40  # both cases (a lean removed, none to remove) were exercised


def test_recovers_planted_bias_and_spares_unbiased_language():
    docs, queries = _world()
    n = len(docs["en"])
    removed = {}
    for lang, expect_gain in (("bb", True), ("uu", False)):
        P = np.vstack([docs["en"], docs[lang]])
        plangs = ["en"] * n + [lang] * n
        cal = LanguageCalibration(DIM)
        cal.add(P, plangs)
        sc = NeutralScorer(cal)
        Q = queries[lang]
        raw = _acc(Q @ P.T, n)
        neutral = _acc(_scores(sc, Q, lang, P, plangs), n)
        removed[lang] = np.mean([1.0 - float(q @ sc.query_vector(q)) for q in Q])
        if expect_gain:
            assert raw < 0.5 and neutral > 0.9, (raw, neutral)
        else:
            assert abs(neutral - raw) <= 0.01, (raw, neutral)
    # the projection takes much more out of queries that carry their language than of those that do not
    assert removed["uu"] < 0.2 * removed["bb"], removed


def test_unknown_query_language_is_estimated():
    docs, queries = _world()
    n = len(docs["en"])
    P = np.vstack([docs["en"], docs["bb"]])
    plangs = ["en"] * n + ["bb"] * n
    cal = LanguageCalibration(DIM)
    cal.add(P, plangs)
    cal.add_pseudo_queries(queries["bb"][:50], ["bb"] * 50)  # query-prompt samples of own chunks
    cal.add_pseudo_queries(_unit(docs["en"][:50]), ["en"] * 50)
    sc = NeutralScorer(cal)
    assert all(sc.estimate_language(q) == "bb" for q in queries["bb"][:50])
    S_known = _scores(sc, queries["bb"], "bb", P, plangs)
    S_unknown = _scores(sc, queries["bb"], None, P, plangs)
    assert np.allclose(S_known, S_unknown)


def test_rescore_consistent_with_query_vector_per_language():
    """Per-language top-k by the ANN vector, merged after rescore == exact top-k."""
    docs, queries = _world(n=200)
    P = np.vstack([docs["en"], docs["bb"], docs["uu"][:10]])
    plangs = np.array(["en"] * 200 + ["bb"] * 200 + ["und"] * 10)
    cal = LanguageCalibration(DIM)
    cal.add(P, plangs.tolist())
    sc = NeutralScorer(cal)
    k = 20
    for q in queries["bb"][:25]:
        exact = sc.rescore(q, "bb", P, plangs.tolist())
        qv = sc.query_vector(q, "bb")
        assert np.isclose(np.linalg.norm(qv), 1.0, atol=1e-6)
        pooled = []
        for lang in np.unique(plangs):
            idx = np.flatnonzero(plangs == lang)
            ann = idx[np.argsort(-(P[idx] @ qv))[:k]]  # one filtered ANN query per language
            # within a language the neutral score is increasing in the ANN score
            order = np.argsort(P[idx] @ qv)
            assert np.all(np.diff(exact[idx][order]) >= -1e-12)
            pooled.append(ann)
        pooled = np.concatenate(pooled)
        merged = pooled[np.argsort(-sc.rescore(q, "bb", P[pooled], plangs[pooled].tolist()))[:k]]
        assert set(merged) == set(np.argsort(-exact)[:k])


# --- real model and data (CI): the headline claim through the product ---------------------


@pytest.mark.real_model
@pytest.mark.parametrize("lang3", ["ukr", "rus"])
def test_real_e5_tatoeba_mixed_pool_gains_at_least_15_points(lang3, e5_path, real_data_dir, tmp_path) -> None:
    """Full Tatoeba mixed pool (1000 queries, ~2000 chunks) through BabelIndex: the product's
    own chunking, language detection and Chroma; neutral on vs off on the same cached store."""
    from babelrank.config import Settings
    from babelrank.evaluation.datasets import tatoeba_mixed_pool
    from babelrank.evaluation.runner import evaluate
    from babelrank.models.bi_encoder import load_bi_encoder

    corpus = tatoeba_mixed_pool(real_data_dir / "tatoeba", lang3)
    settings = Settings(embed_model=str(e5_path), rerank_model="none", device="cpu", progress=False)
    encoder = load_bi_encoder(str(e5_path), device="cpu")
    acc = {mode: evaluate(corpus, settings, rerank=False, neutral=mode, cache_dir=tmp_path,
                          encoder=encoder).metrics["recall@1"] for mode in (False, True)}
    print(f"Tatoeba {lang3} mixed pool accuracy@1: neutral off {acc[False]:.3f}, on {acc[True]:.3f}")
    assert len(corpus.queries) == 1000
    assert acc[True] >= acc[False] + 0.15
