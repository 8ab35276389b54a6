"""The evaluation runner: tiny models end to end, the embedding cache, pipeline == raw NN;
and, with BABELRANK_TEST_MODELS / BABELRANK_TEST_DATA set, the same checks on the real e5."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from babelrank import Settings
from babelrank.errors import ConfigError, SourceError
from babelrank.evaluation import (
    EvalCorpus,
    EvalDocument,
    EvalQuery,
    EvalReport,
    evaluate,
    load_queries,
    load_trec_qrels,
    load_user_judgements,
    tatoeba_mixed_pool,
    user_corpus,
    xquad_r_sentence_pool,
)
from babelrank.evaluation.datasets import head_tatoeba
from babelrank.evaluation.runner import same_language_at_k, store_key
from babelrank.models.bi_encoder import BiEncoder, load_bi_encoder

# float noise between differently padded batches; a top-1 disagreement on a wider margin is a loss
NEAR_TIE = 1e-4

PAIRS = [
    ("Червоний автомобіль стоїть біля будинку.", "The red car is parked near the house."),
    ("Синій будинок біля річки.", "A blue house stands by the river."),
    ("Чайник кип'ятить воду на кухні.", "The kettle boils water in the kitchen."),
    ("Старий міст і парк поруч.", "The old bridge and the park are near."),
    ("Я люблю читати книги вечорами.", "I like reading books in the evening."),
    ("Завтра буде дощ і холодний вітер.", "Tomorrow there will be rain and a cold wind."),
    ("Мій брат працює в лікарні.", "My brother works in a hospital."),
    ("Ми поїдемо до моря влітку.", "We will go to the sea in summer."),
    ("Кіт спить на дивані.", "The cat is sleeping on the sofa."),
    ("Де найближча станція метро?", "Where is the nearest metro station?"),
    ("Вона купила нову сукню.", "She bought a new dress."),
    ("Діти граються у дворі.", "The children are playing in the yard."),
]


@pytest.fixture
def settings(tiny_models: dict[str, Path]) -> Settings:
    return Settings(embed_model=str(tiny_models["bi"]), rerank_model="none", device="cpu", progress=False)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_models: dict[str, Path]):
    return load_bi_encoder(str(tiny_models["bi"]), device="cpu")


@pytest.fixture
def tatoeba_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tatoeba"
    folder.mkdir()
    (folder / "tatoeba.ukr-eng.ukr").write_text("".join(uk + "\n" for uk, _ in PAIRS), encoding="utf-8")
    (folder / "tatoeba.ukr-eng.eng").write_text("".join(en + "\n" for _, en in PAIRS), encoding="utf-8")
    return folder


def _small_corpus() -> EvalCorpus:
    documents = [EvalDocument(f"en{i}", en, "en") for i, (_, en) in enumerate(PAIRS[:6])]
    documents += [EvalDocument(f"uk{i}", uk, "uk") for i, (uk, _) in enumerate(PAIRS[6:], start=6)]
    queries = [EvalQuery(f"q{i}", PAIRS[i][0], "uk") for i in range(3)]
    queries += [EvalQuery(f"q{i}", PAIRS[i][1], "en") for i in range(6, 9)]
    qrels = {f"q{i}": {f"en{i}"} for i in range(3)} | {f"q{i}": {f"uk{i}"} for i in range(6, 9)}
    return EvalCorpus("small", documents, queries, qrels)


METRIC_KEYS = {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "map@20", "same_language@10", "queries"}


def test_evaluate_end_to_end(settings: Settings, tmp_path: Path) -> None:
    corpus = _small_corpus()
    report = evaluate(corpus, settings, rerank=False, neutral=None, cache_dir=tmp_path / "cache")
    out = report.as_dict()
    json.dumps(out)  # JSON-ready
    assert METRIC_KEYS <= set(out) and out["queries"] == 6
    assert set(out["per_language"]) == {"en", "uk"}
    for lang, m in out["per_language"].items():
        assert METRIC_KEYS <= set(m) and m["queries"] == 3
        assert all(0.0 <= v <= 1.0 for k, v in m.items() if k != "queries"), (lang, m)
    assert out["reranker"] == "none" and out["neutral"] == "default" and out["k"] == 20
    assert set(out["latency_ms"]) == {"embed", "search", "total"}
    assert all(v["p50"] <= v["p95"] for v in out["latency_ms"].values())
    assert out["ingest"]["documents"] == 12 and out["ingest"]["chunks_embedded"] == 12
    assert out["ingest"]["chunks_per_s"] > 0
    assert out["counts"] == {"documents": {"en": 6, "uk": 6}, "queries": {"uk": 3, "en": 3}}
    # 12 documents, all fetched: the run holds every document once, by document id
    for qid, ranked in report.run.items():
        assert sorted(ranked) == sorted(d.id for d in corpus.documents), qid
    # same_language@10 recomputed from the run
    lang = {d.id: d.language for d in corpus.documents}
    expected = [sum(lang[d] == q.language for d in report.run[q.id][:10]) / 10 for q in corpus.queries]
    assert out["same_language@10"] == pytest.approx(sum(expected) / len(expected), abs=1e-6)
    assert report.detected_query_language.keys() == {q.id for q in corpus.queries}


def test_second_run_embeds_nothing(settings: Settings, tmp_path: Path) -> None:
    corpus = _small_corpus()
    first = evaluate(corpus, settings, rerank=False, neutral=False, cache_dir=tmp_path)
    second = evaluate(corpus, settings, rerank=False, neutral=False, cache_dir=tmp_path)
    assert first.ingest["chunks_embedded"] == 12
    assert second.ingest["chunks_embedded"] == 0 and second.ingest["chunks"] == 12
    assert second.ingest["build"]["chunks_embedded"] == 12  # how the cached store was built
    assert second.store == first.store and Path(second.store).is_relative_to(tmp_path)
    assert second.run == first.run and second.metrics == first.metrics
    # another pool (one text changed) gets a store of its own
    docs = list(corpus.documents)
    docs[0] = EvalDocument(docs[0].id, docs[0].text + " Again.", "en")
    changed = EvalCorpus(corpus.name, docs, corpus.queries, corpus.qrels)
    third = evaluate(changed, settings, rerank=False, neutral=False, cache_dir=tmp_path)
    assert third.store != first.store and third.ingest["chunks_embedded"] == 12


def test_cache_dir_from_environment(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BABELRANK_EVAL_CACHE", str(tmp_path / "env-cache"))
    report = evaluate(_small_corpus(), settings, rerank=False, neutral=False)
    assert Path(report.store).is_relative_to(tmp_path / "env-cache")


def test_no_cache_uses_a_temporary_store(settings: Settings, tmp_path: Path) -> None:
    report = evaluate(_small_corpus(), settings, rerank=False, neutral=False, cache=False)
    assert report.store is None and report.ingest["chunks_embedded"] == 12


def test_store_key_depends_on_model_and_corpus(settings: Settings) -> None:
    corpus = _small_corpus()
    fp = {"model": "/models/multilingual-e5-small-q4", "dimension": 384, "query_prompt": "query: ", "document_prompt": "passage: "}
    key = store_key(corpus, fp, settings)
    assert key.parts[0].startswith("multilingual-e5-small-q4-384-") and key.parts[1].startswith("small-12-")
    assert store_key(corpus, {**fp, "dimension": 768}, settings) != key
    assert store_key(corpus, fp, settings.replace(chunk_tokens=32)) != key
    assert store_key(corpus, fp, settings.replace(expected_languages="en,uk")) != key
    assert store_key(corpus, fp, settings.replace(top_n=3)) == key  # query-side settings share the store


def test_chunks_map_back_to_documents(settings: Settings, tmp_path: Path) -> None:
    long_en = " ".join(en for _, en in PAIRS)  # several chunks at chunk_tokens=16
    long_uk = " ".join(uk for uk, _ in PAIRS)
    documents = [EvalDocument("long-en", long_en, "en"), EvalDocument("long-uk", long_uk, "uk")]
    documents += [EvalDocument(f"s{i}", en, "en") for i, (_, en) in enumerate(PAIRS[:4])]
    queries = [EvalQuery("q0", PAIRS[5][1], "en"), EvalQuery("q1", PAIRS[7][0], "uk")]
    corpus = EvalCorpus("long", documents, queries, {"q0": {"long-en"}, "q1": {"long-uk", "long-en"}})
    report = evaluate(corpus, settings.replace(chunk_tokens=16, chunk_overlap=0), rerank=False, neutral=False, cache=False)
    assert report.ingest["chunks"] > len(documents)
    for ranked in report.run.values():
        assert sorted(ranked) == sorted(d.id for d in documents)  # each document once
    assert report.metrics["recall@10"] == 1.0


def test_exclusions_are_dropped(settings: Settings, tatoeba_dir: Path) -> None:
    corpus = tatoeba_mixed_pool(tatoeba_dir, "ukr")
    report = evaluate(corpus, settings, rerank=False, neutral=False, k=10, cache=False)
    for q in corpus.queries:
        ranked = report.run[q.id]
        assert len(ranked) == 10 and not set(ranked) & corpus.exclude[q.id]
    assert set(report.as_dict()) >= {"map@10", "recall@10"}


def test_rerank_with_a_cross_encoder(settings: Settings, tiny_models: dict[str, Path]) -> None:
    s = settings.replace(rerank_model=str(tiny_models["cross"]))
    report = evaluate(_small_corpus(), s, rerank=True, neutral=True, cache=False)
    out = report.as_dict()
    assert out["reranker"] == str(tiny_models["cross"]) and out["neutral"] == "on"
    assert "rerank" in out["latency_ms"]
    assert all(len(r) == 12 for r in report.run.values())


def test_dedup_is_off_by_default_and_alternates_are_ranked(settings: Settings) -> None:
    corpus = _small_corpus()
    assert evaluate(corpus, settings, rerank=False, neutral=False, cache=False).as_dict()["dedup"] == "off"
    # threshold -1 collapses all candidates into one result: its alternates keep every document ranked
    collapsed = evaluate(corpus, settings.replace(dedup_threshold=-1.0), rerank=False, neutral=False, dedup=True, cache=False)
    assert collapsed.as_dict()["dedup"] == "on"
    for ranked in collapsed.run.values():
        assert sorted(ranked) == sorted(d.id for d in corpus.documents)


def test_doc_ids_follow_alternates() -> None:
    from types import SimpleNamespace

    from babelrank.evaluation.runner import _doc_ids

    def node(doc: str, alternates: list[str] = ()) -> SimpleNamespace:
        meta = {"doc_id": doc, "alternates": [{"id": f"{a}::0::abc", "language": "en", "score": 0.5} for a in alternates]}
        return SimpleNamespace(node=SimpleNamespace(metadata=meta))

    nodes = [node("a", ["x::y", "b"]), node("b"), node("c", ["a"])]
    assert _doc_ids(nodes) == ["a", "x::y", "b", "c"]


def test_bad_arguments(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="rerank model"):
        evaluate(_small_corpus(), settings, rerank=True, neutral=None, cache=False)
    with pytest.raises(ConfigError, match="k must be"):
        evaluate(_small_corpus(), settings, rerank=False, neutral=None, k=5, cache=False)


def test_same_language_at_k() -> None:
    langs = {"a": "en", "b": "uk", "c": "uk"}
    run = {"q1": ["a", "b", "c"], "q2": [], "q3": ["a"]}
    assert same_language_at_k(run, {"q1": "uk", "q2": "uk", "q3": None}, langs) == {"q1": pytest.approx(2 / 3)}
    assert same_language_at_k(run, {"q1": "en"}, langs, k=1) == {"q1": 1.0}


# --- the reference: brute-force nearest neighbours -------------------------------------------


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def raw_nearest_neighbour_accuracy(
    encoder: BiEncoder, corpus: EvalCorpus, batch_size: int = 32
) -> dict[str, Any]:
    """accuracy@1 of exact cosine nearest neighbours, with the model's prompts, no chunking.

    Every document is embedded whole (`encode_documents`), every query with
    `encode_queries`; each query's excluded documents are masked. Returns
    `{"accuracy@1", "queries", "per_language": {lang: accuracy@1}, "top1": {query id: doc id},
    "margin": {query id: score of the best minus the second-best document}}`.
    For one-chunk documents (Tatoeba sentences) `evaluate(..., rerank=False, neutral=False)`
    must reach the same accuracy@1: the pipeline (chunking, store, search) loses nothing.
    `compare_top1` lists the queries where the two disagree; a disagreement on a query with a
    margin of float noise (a near-tie; vectors from differently padded batches differ in the
    last bits) is not a loss, one with a clear margin is.
    """
    ids = [d.id for d in corpus.documents]
    position = {d: i for i, d in enumerate(ids)}
    docs = encoder.encode_documents([d.text for d in corpus.documents], batch_size)
    queries = encoder.encode_queries([q.text for q in corpus.queries], batch_size)
    scores = queries @ docs.T
    for qi, q in enumerate(corpus.queries):
        for d in corpus.exclude.get(q.id, ()):
            scores[qi, position[d]] = -np.inf
    best = scores.argmax(axis=1)
    top1 = {q.id: ids[int(best[qi])] for qi, q in enumerate(corpus.queries)}
    two = np.sort(scores, axis=1)[:, -2:] if scores.shape[1] > 1 else np.hstack([scores, scores])
    margin = {q.id: float(two[qi, 1] - two[qi, 0]) for qi, q in enumerate(corpus.queries)}
    judged = [q for q in corpus.queries if corpus.qrels.get(q.id)]
    hits = {q.id: float(top1[q.id] in corpus.qrels[q.id]) for q in judged}
    per_language: dict[str, list[float]] = {}
    for q in judged:
        per_language.setdefault(q.language or "und", []).append(hits[q.id])
    return {
        "accuracy@1": _mean(list(hits.values())),
        "queries": len(hits),
        "per_language": {lang: _mean(v) for lang, v in sorted(per_language.items())},
        "top1": top1,
        "margin": margin,
    }


def compare_top1(raw: Mapping[str, Any], report: EvalReport) -> list[dict[str, Any]]:
    """Queries whose pipeline top-1 document differs from the raw nearest neighbour, with the
    raw margin of each (see `raw_nearest_neighbour_accuracy`)."""
    out = []
    for qid, doc in raw["top1"].items():
        got = (report.run.get(qid) or [None])[0]
        if got != doc:
            out.append({"query": qid, "raw": doc, "pipeline": got, "raw_margin": raw["margin"][qid]})
    return out


def test_pipeline_equals_raw_nearest_neighbour_tiny(settings: Settings, tiny_encoder, tatoeba_dir: Path) -> None:
    corpus = tatoeba_mixed_pool(tatoeba_dir, "ukr")
    raw = raw_nearest_neighbour_accuracy(tiny_encoder, corpus)
    report = evaluate(corpus, settings, rerank=False, neutral=False, cache=False, encoder=tiny_encoder)
    assert raw["queries"] == len(PAIRS)
    _assert_pipeline_loses_nothing(raw, report)


def test_store_searches_wide_enough(tmp_path: Path) -> None:
    """Chroma's default HNSW breadth (100) loses true nearest neighbours (see store.HNSW_EF);
    new collections are built wider and older ones are widened when opened."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from babelrank.store.chroma import HNSW_EF, ChromaStore

    client = chromadb.PersistentClient(path=str(tmp_path / "old"), settings=ChromaSettings(anonymized_telemetry=False))
    client.get_or_create_collection("legacy", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
    fp = {"model": "m", "dimension": 4}
    for path, name in ((tmp_path / "new", "fresh"), (tmp_path / "old", "legacy")):
        store = ChromaStore(name, fp, path=path)
        try:
            assert store.collection.configuration["hnsw"]["ef_search"] >= HNSW_EF, name
        finally:
            store.close()


def _assert_pipeline_loses_nothing(raw: dict, report) -> None:
    diffs = compare_top1(raw, report)
    losses = [d for d in diffs if d["raw_margin"] > NEAR_TIE]
    assert not losses, losses
    n = raw["queries"]
    assert abs(report.metrics["recall@1"] - raw["accuracy@1"]) <= len(diffs) / n + 1e-9
    if not diffs:
        assert report.metrics["recall@1"] == pytest.approx(raw["accuracy@1"], abs=1e-12)


def test_head_tatoeba(tatoeba_dir: Path) -> None:
    corpus = head_tatoeba(tatoeba_mixed_pool(tatoeba_dir, "ukr"), 5)
    assert corpus.counts() == {"documents": {"en": 5, "uk": 5}, "queries": {"uk": 5}}
    assert set(corpus.qrels) == set(corpus.exclude) == {q.id for q in corpus.queries}


# --- user data ------------------------------------------------------------------------------


@pytest.fixture
def user_docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "car.txt").write_text(PAIRS[0][1], encoding="utf-8")
    (docs / "sub" / "kettle.md").write_text(PAIRS[2][0], encoding="utf-8")
    (docs / "faq.jsonl").write_text(
        "".join(json.dumps({"id": f"f{i}", "text": en}) + "\n" for i, (_, en) in enumerate(PAIRS[3:8])), encoding="utf-8"
    )
    return docs


def test_user_corpus_from_judgements(user_docs: Path, tmp_path: Path, settings: Settings) -> None:
    judgements = tmp_path / "j.jsonl"
    lines = [
        {"id": "a", "query": "red car", "relevant": ["car.txt"]},
        {"id": "b", "query": "чайник", "relevant": ["sub/kettle.md", "f1"], "language": "uk"},
        {"id": "c", "query": "rain", "relevant": ["there will be  rain"]},  # a passage text
    ]
    judgements.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    corpus = user_corpus([user_docs], judgements=load_user_judgements(judgements))
    root = str(user_docs.resolve())
    assert corpus.qrels == {
        "a": {f"{root}/car.txt"},
        "b": {f"{root}/sub/kettle.md", f"{root}/faq.jsonl#f1"},
        "c": {f"{root}/faq.jsonl#f2"},
    }
    assert {d.language for d in corpus.documents} == {"und"}
    report = evaluate(corpus, settings, rerank=False, neutral=False, cache=False)
    out = report.as_dict()
    assert out["queries"] == 3 and "uk" in out["per_language"]  # "b" by its given language
    assert not math.isnan(out["same_language@10"])  # document languages come from detection

    judgements.write_text(json.dumps({"query": "x", "relevant": ["no such passage"]}) + "\n", encoding="utf-8")
    with pytest.raises(SourceError, match="no such passage"):
        user_corpus([user_docs], judgements=load_user_judgements(judgements))


def test_user_corpus_from_trec_qrels(user_docs: Path, tmp_path: Path) -> None:
    (tmp_path / "q.tsv").write_text("1\tred car\n2\tsea\ten\n3\tunjudged\n", encoding="utf-8")
    (tmp_path / "qrels").write_text("1 0 car.txt 1\n2 0 faq.jsonl#f4 2\n2 0 gone.txt 0\n9 0 car.txt 1\n", encoding="utf-8")
    corpus = user_corpus(
        [user_docs], queries=load_queries(tmp_path / "q.tsv"), qrels=load_trec_qrels(tmp_path / "qrels")
    )
    root = str(user_docs.resolve())
    assert [q.id for q in corpus.queries] == ["1", "2"]
    assert corpus.qrels == {"1": {f"{root}/car.txt": 1}, "2": {f"{root}/faq.jsonl#f4": 2}}
    (tmp_path / "qrels").write_text("1 0 gone.txt 1\n", encoding="utf-8")
    with pytest.raises(SourceError, match="gone.txt"):
        user_corpus([user_docs], queries=load_queries(tmp_path / "q.tsv"), qrels=load_trec_qrels(tmp_path / "qrels"))
    with pytest.raises(ConfigError):
        user_corpus([user_docs])


def test_user_corpus_reads_the_given_text_field(tmp_path: Path) -> None:
    docs = tmp_path / "records.jsonl"
    docs.write_text("".join(json.dumps({"id": f"r{i}", "body": en}) + "\n" for i, (_, en) in enumerate(PAIRS[:3])),
                    encoding="utf-8")
    (tmp_path / "j.jsonl").write_text(json.dumps({"id": "a", "query": "kettle", "relevant": ["r2"]}) + "\n",
                                      encoding="utf-8")
    corpus = user_corpus([docs], judgements=load_user_judgements(tmp_path / "j.jsonl"), text_field="body")
    assert [d.text for d in corpus.documents] == [en for _, en in PAIRS[:3]]
    assert corpus.qrels == {"a": {f"{docs.resolve()}#r2"}}


# --- real model and data (CI) ---------------------------------------------------------------

TATOEBA_SENTENCES = 200


@pytest.fixture(scope="module")
def e5(e5_path: Path):
    return load_bi_encoder(str(e5_path), device="cpu")


@pytest.mark.real_model
def test_real_e5_tatoeba_pipeline_equals_raw_nearest_neighbour(e5, e5_path: Path, real_data_dir: Path) -> None:
    corpus = head_tatoeba(tatoeba_mixed_pool(real_data_dir / "tatoeba", "ukr"), TATOEBA_SENTENCES)
    raw = raw_nearest_neighbour_accuracy(e5, corpus)
    settings = Settings(embed_model=str(e5_path), rerank_model="none", device="cpu", progress=False)
    report = evaluate(corpus, settings, rerank=False, neutral=False, cache=False, encoder=e5)
    print(f"Tatoeba ukr mixed pool, first {TATOEBA_SENTENCES}: pipeline accuracy@1 "
          f"{report.metrics['recall@1']:.3f}, raw NN {raw['accuracy@1']:.3f}, disagreements {compare_top1(raw, report)}")
    assert raw["queries"] == TATOEBA_SENTENCES and raw["accuracy@1"] > 0.5
    _assert_pipeline_loses_nothing(raw, report)


@pytest.mark.real_model
def test_real_e5_xquad_r_small(e5, e5_path: Path, real_data_dir: Path, tmp_path: Path) -> None:
    corpus = xquad_r_sentence_pool(real_data_dir / "xquad-r", ["en", "ru"], limit=3)
    settings = Settings(embed_model=str(e5_path), rerank_model="none", device="cpu", progress=False)
    report = evaluate(corpus, settings, rerank=False, neutral=False, cache_dir=tmp_path, encoder=e5)
    out = report.as_dict()
    print("XQuAD-R en+ru, 3 paragraphs:", {k: out[k] for k in ("map@20", "recall@1", "recall@10", "same_language@10")})
    assert set(out["per_language"]) == {"en", "ru"}
    for m in (out, *out["per_language"].values()):
        assert {"map@20", "recall@1", "recall@10", "same_language@10"} <= set(m)
        assert 0.3 < m["recall@10"] <= 1.0 and 0.0 <= m["same_language@10"] <= 1.0
    # languages are detected, not given: nearly every query and document gets its own
    assert out["query_language_accuracy"] > 0.9
