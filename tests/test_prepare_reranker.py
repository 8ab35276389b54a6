"""The reranker's one-time ONNX export happens at ingest, never in a user's first query."""

from __future__ import annotations

from typing import Any

import pytest

import babelrank.index as index_module
import babelrank.query.rerank_loader as rerank_loader
from babelrank.errors import ModelNotFoundError


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(name: str, **kwargs: Any) -> str:
        calls.append((name, kwargs))
        return kwargs["backend"]

    monkeypatch.setattr(rerank_loader, "prepare_cross_encoder", record)
    return calls


def test_ingest_prepares_the_configured_reranker_first(make_index, tiny_models, exports) -> None:
    index = make_index(backend="onnx-int8", trust_remote_code=True)
    index.ingest_texts(["Червоний автомобіль стоїть біля будинку."])
    assert exports == [(str(tiny_models["cross"]), {
        "model_dir": None, "device": index.settings.device, "backend": "onnx-int8", "cache_dir": None,
        "trust_remote_code": True})]
    index.reranker()  # loaded now: later ingests have nothing to prepare
    index.ingest_texts(["A red car is parked outside the house."])
    assert len(exports) == 1


def test_nothing_to_prepare_without_rerank(make_index, exports) -> None:
    make_index(rerank_model="none").ingest_texts(["Червоний автомобіль."])
    assert exports == []


def test_auto_without_the_default_reranker_warns_once(make_index, monkeypatch, caplog) -> None:
    def missing(name: str, **kwargs: Any) -> str:
        raise ModelNotFoundError(f"{name} is not here")

    monkeypatch.setattr(rerank_loader, "prepare_cross_encoder", missing)
    index = make_index(rerank_model="auto")
    index.ingest_texts(["Червоний автомобіль."])
    assert index.reranker() is None and index.query("автомобіль")  # answers without rerank
    assert sum("rerank is off" in r.getMessage() for r in caplog.records) == 1


def test_a_named_reranker_that_is_missing_is_an_error_at_ingest(make_index, monkeypatch) -> None:
    def missing(name: str, **kwargs: Any) -> str:
        raise ModelNotFoundError(f"{name} is not here")

    monkeypatch.setattr(rerank_loader, "prepare_cross_encoder", missing)
    with pytest.raises(ModelNotFoundError):
        make_index(rerank_model="/nowhere/cross-encoder").ingest_texts(["Червоний автомобіль."])


def test_trust_remote_code_reaches_the_embedding_model(tiny_models, tmp_path, monkeypatch) -> None:
    seen: dict[str, Any] = {}
    real = index_module.load_bi_encoder

    def record(name: str, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return real(name, **kwargs)

    monkeypatch.setattr(index_module, "load_bi_encoder", record)
    index = index_module.BabelIndex(embed_model=str(tiny_models["bi"]), rerank_model="none",
                                    store_path=tmp_path / "store", trust_remote_code=True, progress=False)
    index.close()
    assert seen["trust_remote_code"] is True
