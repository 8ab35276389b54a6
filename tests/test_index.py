import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from babelrank import ModelNotFoundError, StoreLockedError
from babelrank.query.neutral import LanguageMap
from babelrank.store.calibration import LanguageCalibration
from babelrank.store.chroma import CALIBRATION_KEY

UK = ["Червоний автомобіль стоїть біля будинку.", "Синій будинок біля річки.", "Чайник кипить на кухні щоранку.",
      "Старий міст відремонтували минулого літа.", "Бібліотека відкривається о дев'ятій ранку."]
EN = ["The red car is parked outside the house.", "A blue house stands by the river.", "The kettle boils in the kitchen.",
      "The old bridge was repaired last summer.", "The library opens at nine in the morning."]


def _texts(n: int) -> tuple[list[str], list[str]]:
    texts, ids = [], []
    for i in range(n):
        texts += [f"{UK[i % 5]} {i}", f"{EN[i % 5]} {i}"]
        ids += [f"uk{i}", f"en{i}"]
    return texts, ids


def _same(a: LanguageCalibration, b: LanguageCalibration) -> None:
    assert a.counts == b.counts
    for lang in a.counts:
        assert np.allclose(a._chunks.sums[lang], b._chunks.sums[lang], atol=1e-6)
        assert np.allclose(a._chunks.squares[lang], b._chunks.squares[lang], atol=1e-6)


def test_calibration_follows_adds_changes_and_deletes_exactly(make_index) -> None:
    index = make_index(expected_languages=("uk", "en"))
    texts, ids = _texts(30)
    index.ingest_texts(texts[:40], ids=ids[:40])
    index.ingest_texts(texts[40:], ids=ids[40:])
    index.ingest_texts(["Зовсім новий текст про річку.", "A completely new text."], ids=["uk3", "en7"])  # changes
    index.delete(["uk5", "en9", "uk11"])
    kept = LanguageCalibration.from_dict(index.store.get_meta(CALIBRATION_KEY)["calibration"])
    _same(kept, index.calibration.rebuild())
    assert sum(kept.counts.values()) == index.store.count() == 57
    info = index.info()["neutral"]
    assert info["active"] and info["calibration"]["uk"]["centroid"] and info["calibration"]["en"]["chunks"] >= 28


def _scratch(index) -> LanguageCalibration:
    """The calibration of every stored vector, read straight from Chroma."""
    res = index.store.collection.get(include=["embeddings", "metadatas"])
    calibration = LanguageCalibration(index.encoder.dimension)
    calibration.add(np.asarray(res["embeddings"], dtype=np.float32), [m["language"] for m in res["metadatas"]])
    return calibration


KILLED_WRITER = """
import os, sys
from babelrank import BabelIndex

index = BabelIndex(embed_model=sys.argv[1], store_path=sys.argv[2], collection="dirty-one", rerank_model="none")
index.ingest_texts([f"The red car is parked outside house {i}." for i in range(20)])
index.calibration.before_write()
texts = ["A chunk written by a process that is killed.", "Шматок, записаний процесом, який убили."]
metas = [{"doc_id": "half", "language": "en"}, {"doc_id": "half", "language": "uk"}]
index.store.upsert(["half-0", "half-1"], index.encoder.encode_documents(texts, 2), texts, metas)
os._exit(9)  # before the calibration counts them
"""


def test_a_write_killed_half_way_is_recalibrated_on_open(make_index, tiny_models, tmp_path) -> None:
    # the whole history in another process: embedded Chroma keeps a store's state in memory after its client closes
    args = [str(tiny_models["bi"]), str(tmp_path / "store")]
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, *args], capture_output=True, text=True, timeout=300)
    assert killed.returncode == 9, killed.stderr[-3000:]
    reopened = make_index(collection="dirty-one")
    assert reopened.store.count() == 22
    _same(reopened.calibration.latest, _scratch(reopened))
    saved = reopened.store.get_meta(CALIBRATION_KEY)
    assert saved["pending"] == {} and saved["exact"] is True


def test_a_rebuild_outlasts_a_transient_chroma_read_error(make_index, monkeypatch) -> None:
    from chromadb.api.models.Collection import Collection
    from chromadb.errors import InternalError

    index = make_index(collection="flaky")
    texts, ids = _texts(25)
    index.ingest_texts(texts, ids=ids)
    real_get, failed = Collection.get, []

    def flaky_get(self, *args, **kwargs):
        if "embeddings" in (kwargs.get("include") or []) and not failed:  # as a server flushing its first segment
            failed.append(kwargs)
            raise InternalError("Error executing plan: Internal error: Error creating hnsw segment reader: Nothing found on disk")
        return real_get(self, *args, **kwargs)

    monkeypatch.setattr(Collection, "get", flaky_get)
    rebuilt = index.calibration.rebuild()
    assert len(failed) == 1
    _same(rebuilt, _scratch(index))
    assert sum(rebuilt.counts.values()) == 50


def test_a_calibration_in_an_older_format_is_rebuilt_on_open(make_index) -> None:
    index = make_index(collection="old-format")
    texts, ids = _texts(25)
    index.ingest_texts(texts, ids=ids)
    good = index.calibration.latest
    saved = index.store.get_meta(CALIBRATION_KEY)
    for entry in saved["calibration"]["chunks"].values():
        del entry["sum_sq"]  # as written before per-language spreads were kept
    index.store.set_meta(CALIBRATION_KEY, saved)
    index.close()
    reopened = make_index(collection="old-format")
    _same(reopened.calibration.latest, good)
    assert all("sum_sq" in e for e in reopened.store.get_meta(CALIBRATION_KEY)["calibration"]["chunks"].values())


@pytest.mark.parametrize("scan_mb", [64, 0])  # in-memory scan / Chroma over-fetch
def test_neutral_search_is_exact_against_brute_force(make_index, scan_mb) -> None:
    index = make_index(neutral="on", top_k=10, rerank_model="none", neutral_scan_mb=scan_mb)
    texts, ids = _texts(30)
    index.ingest_texts(texts, ids=ids)
    scorer = index.neutral_scorer()
    assert scorer is not None and set(scorer.languages) >= {"uk", "en"}
    res = index.store.collection.get(include=["embeddings", "metadatas"])
    vectors = np.asarray(res["embeddings"], dtype=np.float32)
    languages = [m["language"] for m in res["metadatas"]]
    for query in ("червоний автомобіль", "the kettle", "бібліотека"):
        q = index.encoder.encode_queries([query])[0]
        lang = index.detector.detect(query).language
        exact = scorer.rescore(q, lang, vectors, languages)
        got = index.searcher.search(q, lang, 10, None, scorer)
        assert [h.score for h in got] == pytest.approx(sorted(exact, reverse=True)[:10], abs=1e-5)
        by_id = dict(zip(res["ids"], exact))
        assert all(h.score == pytest.approx(by_id[h.id], abs=1e-5) for h in got)
        only_uk = index.searcher.search(q, lang, 10, {"language": {"$in": ["uk"]}}, scorer)
        uk = sorted((s for s, x in zip(exact, languages) if x == "uk"), reverse=True)[:10]
        assert [h.score for h in only_uk] == pytest.approx(uk, abs=1e-5)
        assert {h.metadata["language"] for h in only_uk} == {"uk"}
    assert index.store.mirror.loaded == (scan_mb > 0)


LANGUAGE_WHERES = [  # every form Chroma accepts for a field, and combinations
    ({"language": "uk"}, {"uk"}),
    ({"language": {"$eq": "uk"}}, {"uk"}),
    ({"language": {"$ne": "en"}}, {"uk"}),
    ({"language": {"$in": ["uk"]}}, {"uk"}),
    ({"language": {"$nin": ["uk"]}}, {"en"}),
    ({"$or": [{"language": "uk"}, {"language": "en"}]}, {"uk", "en"}),
    ({"$and": [{"language": {"$in": ["uk", "en"]}}, {"language": {"$ne": "en"}}]}, {"uk"}),
    ({"$and": [{"language": "en"}, {"chunk_index": 0}]}, {"en"}),  # not language-only: Chroma path
]


@pytest.mark.parametrize("scan_mb", [64, 0])
def test_neutral_search_takes_every_language_where(make_index, scan_mb) -> None:
    """A `where` on the language, in any valid form, filters neutral search exactly (it crashed
    with TypeError for {"language": "ru"} and KeyError for $eq before)."""
    index = make_index(neutral="on", top_k=10, rerank_model="none", neutral_scan_mb=scan_mb)
    texts, ids = _texts(30)
    index.ingest_texts(texts, ids=ids)
    scorer = index.neutral_scorer()
    res = index.store.collection.get(include=["embeddings", "metadatas"])
    vectors = np.asarray(res["embeddings"], dtype=np.float32)
    languages = [m["language"] for m in res["metadatas"]]
    q = index.encoder.encode_queries(["червоний автомобіль"])[0]
    exact = scorer.rescore(q, "uk", vectors, languages)
    for where, wanted in LANGUAGE_WHERES:
        got = index.searcher.search(q, "uk", 10, where, scorer)
        want = sorted((s for s, lang in zip(exact, languages) if lang in wanted), reverse=True)[:10]
        assert [h.score for h in got] == pytest.approx(want, abs=1e-5), where
        assert got and {h.metadata["language"] for h in got} <= wanted, where
    nodes = index.query("червоний автомобіль", where={"language": "uk"}, top_n=5)
    assert nodes and {n.node.metadata["language"] for n in nodes} == {"uk"}


class _FixedLifts:
    """A scorer stand-in whose per-language lifts are given (to force each search path)."""

    def __init__(self, lifts: dict[str, float]) -> None:
        self.lifts = lifts

    def maps(self, query, query_language):
        return {lang: LanguageMap(lift=lift, own_mean=-np.inf, ratio=0.0) for lang, lift in self.lifts.items()}

    def query_vector(self, query, query_language=None):
        return query


@pytest.mark.parametrize("lifts, queries", [({"uk": 0.0, "en": 0.0, "und": 0.0}, 1),
                                            ({"uk": 5.0, "en": 0.0, "und": 0.0}, 2)])
def test_neutral_search_adds_a_language_query_only_when_its_bound_requires(make_index, monkeypatch, lifts, queries) -> None:
    index = make_index(neutral="on", rerank_model="none", neutral_scan_mb=0)
    texts, ids = _texts(60)
    keep = [i for i, x in enumerate(ids) if x.startswith("en") or int(x[2:]) < 12]  # 60 en, 12 uk
    index.ingest_texts([texts[i] for i in keep], ids=[ids[i] for i in keep])
    res = index.store.collection.get(include=["embeddings", "metadatas"])
    vectors = np.asarray(res["embeddings"], dtype=np.float64)
    languages = [m["language"] for m in res["metadatas"]]
    calls = []
    real_nearest = index.store.nearest
    monkeypatch.setattr(index.store, "nearest", lambda *a, **kw: calls.append(a) or real_nearest(*a, **kw))
    q = index.encoder.encode_queries(["the kettle boils"])[0]
    monkeypatch.setattr("babelrank.query.search.NEUTRAL_OVERFETCH", 4)  # first query: 60 of the 72 chunks
    monkeypatch.setattr("babelrank.query.search.NEUTRAL_MIN_FETCH", 1)
    got = index.searcher.search(q, "en", 15, None, _FixedLifts(lifts))
    unit = q / np.linalg.norm(q)
    exact = sorted((float(v @ unit) + lifts[lang] for v, lang in zip(vectors, languages)), reverse=True)[:15]
    assert [h.score for h in got] == pytest.approx(exact, abs=1e-4)
    assert len(calls) == queries
    if lifts["uk"] > 1:  # a lift that large puts all 12 Ukrainian chunks first
        assert [h.metadata["language"] for h in got] == ["uk"] * 12 + ["en"] * 3


def test_one_language_collection_ranks_exactly_as_raw(make_index) -> None:
    index = make_index(neutral="auto", rerank_model="none")
    index.ingest_texts([f"{t} {i}" for i in range(6) for t in EN], ids=[f"e{i}-{j}" for i in range(6) for j in range(5)])
    assert index.neutral_scorer() is None  # auto: off with one language
    forced = make_index(neutral="on", rerank_model="none", collection=index.store.name)
    for query in ("red car", "library", "river"):
        raw = index.query(query, top_n=10, neutral=False)
        neutral = forced.query(query, top_n=10)
        assert [n.node.id_ for n in raw] == [n.node.id_ for n in neutral]
        assert [n.score for n in raw] == pytest.approx([n.score for n in neutral], abs=1e-6)


def test_per_query_neutral_overrides_the_collection_setting(make_index) -> None:
    index = make_index(neutral="off", rerank_model="none")
    texts, ids = _texts(30)
    index.ingest_texts(texts, ids=ids)
    assert index.neutral_scorer() is None and index.neutral_scorer("on") is not None
    query = "червоний автомобіль"
    raw = {n.node.id_: n.score for n in index.query(query, top_n=60, top_k=60)}
    on = {n.node.id_: n.score for n in index.query(query, top_n=60, top_k=60, neutral=True)}
    assert set(raw) == set(on)
    # "on" gives the library's neutral scores, the collection's setting ("off") raw cosines
    stored = index.store.get(list(on))
    q = index.encoder.encode_queries([query])[0]
    scorer = index.neutral_scorer("on")
    for cid, (_, meta, vector) in stored.items():
        assert on[cid] == pytest.approx(float(scorer.rescore(q, "uk", vector[None], [meta["language"]])[0]), abs=1e-5)
        assert raw[cid] == pytest.approx(float(vector @ q), abs=1e-5)
    assert any(abs(on[i] - raw[i]) > 1e-4 for i in raw)


def test_rerank_candidate_settings_reach_the_reranker(make_index, tiny_models) -> None:
    index = make_index(rerank_model=str(tiny_models["cross"]), rerank_candidates=7, rerank_margin=0.2)
    reranker = index.reranker()
    assert reranker is not None and (reranker.candidates, reranker.margin) == (7, 0.2)


def test_warm_up_loads_the_reranker_and_the_language_models(make_index, monkeypatch) -> None:
    index = make_index()
    calls: list[int] = []
    monkeypatch.setattr(index.detector, "warm_up", lambda: calls.append(1))
    assert not index.rerankers.loaded
    index.warm_up()
    assert index.rerankers.loaded and index.reranker() is not None and calls == [1]


def _flock(path: Path) -> int:
    """Lock `path` through a file descriptor of its own (an flock conflicts with any other open of the file)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


@pytest.mark.skipif(sys.platform == "win32", reason="the store lock is POSIX-only")
def test_a_locked_store_is_refused_before_any_model_is_loaded(make_index, monkeypatch, tmp_path) -> None:
    lock = tmp_path / "store" / "babelrank.lock"
    holder = _flock(lock)  # as another process holding the store
    loaded: list[str] = []
    monkeypatch.setattr("babelrank.index.load_bi_encoder", lambda name, **_: loaded.append(name))
    try:
        with pytest.raises(StoreLockedError, match="in use by another babelrank process.*chroma-host"):
            make_index()
        assert loaded == []
    finally:
        os.close(holder)


@pytest.mark.skipif(sys.platform == "win32", reason="the store lock is POSIX-only")
def test_the_store_lock_is_released_when_the_model_fails_to_load(make_index, monkeypatch, tmp_path) -> None:
    def missing(name: str, **_: object) -> None:
        raise ModelNotFoundError(f"no model {name}")

    monkeypatch.setattr("babelrank.index.load_bi_encoder", missing)
    with pytest.raises(ModelNotFoundError):
        make_index()
    os.close(_flock(tmp_path / "store" / "babelrank.lock"))  # free for another process
