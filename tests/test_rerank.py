from pathlib import Path

import numpy as np
import pytest
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from babelrank import CrossEncoderReranker
from babelrank.query.rerank import sigmoid


@pytest.fixture(scope="module")
def reranker(tiny_models: dict[str, Path]) -> CrossEncoderReranker:
    return CrossEncoderReranker(str(tiny_models["cross"]), top_n=2, batch_size=2, device="cpu", backend="torch")


def _nodes(texts: list[str]) -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(id_=f"n{i}", text=t), score=0.5 - i / 10) for i, t in enumerate(texts)]


def test_postprocessor_scores_sorts_and_keeps_both_stages(reranker: CrossEncoderReranker) -> None:
    texts = ["червоний автомобіль", "a blue house by the river", "the kettle boils", "красная машина"]
    out = reranker.postprocess_nodes(_nodes(texts), query_bundle=QueryBundle("red car"))
    assert len(out) == 2
    assert out[0].score >= out[1].score
    logits = reranker._encoder.logits("red car", texts)
    best = np.argsort(-logits)[:2]
    assert [n.node.id_ for n in out] == [f"n{i}" for i in best]
    for n in out:
        meta = n.node.metadata
        assert 0 <= meta["rerank_score"] <= 1 and meta["rerank_score"] == pytest.approx(float(sigmoid(meta["rerank_logit"])))
        assert meta["retrieval_score"] == pytest.approx(0.5 - int(n.node.id_[1:]) / 10)
        assert n.score == meta["rerank_score"]
        assert "rerank_logit" in n.node.excluded_llm_metadata_keys


def test_threshold_and_truncation_count(reranker: CrossEncoderReranker) -> None:
    before = reranker.truncated
    nodes = _nodes(["short", "word " * 200])
    scores = sorted(float(sigmoid(x)) for x in reranker._encoder.logits("q", ["short", "word " * 200]))
    out = reranker.rerank(nodes, "q", top_n=5, min_score=scores[1])
    assert len(out) == 1
    assert reranker.truncated > before


def test_needs_a_query(reranker: CrossEncoderReranker) -> None:
    with pytest.raises(ValueError, match="needs the query"):
        reranker.postprocess_nodes(_nodes(["a"]))


def test_sigmoid_is_stable() -> None:
    assert sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist() == [0.0, 0.5, 1.0]


@pytest.mark.parametrize(
    ("options", "reranked"),
    [({"candidates": 3}, 3), ({"margin": 0.15}, 2), ({"margin": 0.25}, 3), ({"margin": 0.25, "candidates": 2}, 2), ({"candidates": 1}, 2), ({}, 5)],
)
def test_candidates_and_margin_rerank_only_the_best_first_stage_nodes(
    reranker: CrossEncoderReranker, monkeypatch: pytest.MonkeyPatch, options: dict, reranked: int
) -> None:
    texts = ["червоний автомобіль", "a blue house by the river", "the kettle boils", "красная машина", "river bank"]
    seen: list[list[str]] = []
    real = reranker._encoder.logits
    monkeypatch.setattr(reranker._encoder, "logits", lambda q, t, **kw: seen.append(list(t)) or real(q, t, **kw))
    fewer = CrossEncoderReranker(reranker.model, top_n=2, cross_encoder=reranker._encoder, **options)
    out = fewer.rerank(_nodes(texts)[::-1], "red car", top_n=10)  # first-stage scores 0.5, 0.4, ... (given worst first)
    assert len(seen) == 1 and sorted(seen[0]) == sorted(texts[:reranked])  # best first-stage scores, >= top_n (2)
    assert sorted(n.node.id_ for n in out) == [f"n{i}" for i in range(reranked)]
    assert [n.score for n in out] == sorted((n.score for n in out), reverse=True)


def test_candidates_are_validated(reranker: CrossEncoderReranker) -> None:
    with pytest.raises(ValueError):
        CrossEncoderReranker(reranker.model, cross_encoder=reranker._encoder, candidates=0)
    with pytest.raises(ValueError):
        CrossEncoderReranker(reranker.model, cross_encoder=reranker._encoder, margin=-0.1)
