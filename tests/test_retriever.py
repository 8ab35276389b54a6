import asyncio

import pytest
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine

from babelrank.query.filters import build_where

DOCS = {
    "uk-car": "Червоний автомобіль стоїть біля будинку на вулиці.",
    "ru-car": "Красная машина стоит возле дома у реки.",
    "en-car": "The red car is parked outside the house near the river.",
    "uk-house": "Синій будинок біля річки, поруч старий міст і парк.",
    "en-kettle": "The kettle boils water in the kitchen every morning.",
    "ru-kettle": "Чайник кипятит воду на кухне каждое утро.",
}


@pytest.fixture
def index(make_index):
    idx = make_index(top_k=6, top_n=3)
    idx.ingest_texts(list(DOCS.values()), ids=list(DOCS), metadata=[{"topic": k.split("-")[1]} for k in DOCS])
    return idx


def test_results_carry_both_scores_and_metadata(index) -> None:
    result = index.search("червоний автомобіль")
    assert len(result.nodes) == 3
    assert result.query_language in {"uk", "und"} and set(result.timings) == {"embed", "search", "relevance", "rerank"}
    scores = [n.score for n in result.nodes]
    assert scores == sorted(scores, reverse=True)
    for n in result.nodes:
        meta = n.node.metadata
        assert {"doc_id", "source", "language", "retrieval_score", "rerank_score", "rerank_logit", "topic"} <= set(meta)
        assert -1 <= meta["retrieval_score"] <= 1 and n.score == meta["rerank_score"]


def test_rerank_off_returns_first_stage_order(index) -> None:
    nodes = index.query("red car", rerank=False, top_n=6)
    assert [n.score for n in nodes] == sorted((n.score for n in nodes), reverse=True)
    assert all("rerank_score" not in n.node.metadata and n.score == n.node.metadata["retrieval_score"] for n in nodes)
    assert len(nodes) == 6


def test_filters_on_language_and_metadata(index) -> None:
    langs = {n.node.metadata["language"] for n in index.query("car", languages=["ru"], top_n=6)}
    assert langs <= {"ru"}
    assert {n.node.metadata["doc_id"] for n in index.query("car", where={"topic": "kettle"}, top_n=6)} == {"en-kettle", "ru-kettle"}
    both = index.query("car", where={"topic": "car"}, languages=["en"], top_n=6)
    assert {n.node.metadata["doc_id"] for n in both} <= {"en-car"}


def test_min_score_applies_to_final_score(index) -> None:
    all_nodes = index.query("house", top_n=6)
    cut = all_nodes[2].score
    assert all(n.score >= cut for n in index.query("house", top_n=6, min_score=cut))
    assert len(index.query("house", top_n=6, min_score=cut)) == len([n for n in all_nodes if n.score >= cut])


def test_bad_queries(index) -> None:
    for bad in ("", "   "):
        with pytest.raises(ValueError, match="empty"):
            index.query(bad)


def test_rerank_none_and_requested_rerank(make_index) -> None:
    idx = make_index(rerank_model="none", collection="no-rerank")
    idx.ingest_texts(["a red car", "a blue house"])
    assert idx.reranker() is None
    assert "rerank_score" not in idx.query("car")[0].node.metadata
    with pytest.raises(ValueError, match="no rerank model"):
        idx.query("car", rerank=True)


def test_aretrieve_and_query_engine_with_mock_llm(index) -> None:
    retriever = index.as_retriever(top_n=2)
    nodes = asyncio.run(retriever.aretrieve("red car"))
    assert len(nodes) == 2
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM(max_tokens=8))
    response = engine.query("Where is the red car?")
    assert len(response.source_nodes) == 2 and isinstance(str(response), str)
    assert index.as_query_engine(llm=MockLLM()).query("kettle").source_nodes


def test_build_where() -> None:
    assert build_where(None, None) is None
    assert build_where(["uk"], None) == {"language": {"$in": ["uk"]}}
    assert build_where(["uk"], {"a": 1, "b": 2}) == {"$and": [{"language": {"$in": ["uk"]}}, {"a": 1}, {"b": 2}]}
    assert build_where(None, {"$or": [{"a": 1}, {"b": 2}]}) == {"$or": [{"a": 1}, {"b": 2}]}
