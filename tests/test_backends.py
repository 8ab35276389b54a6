"""ONNX Runtime backends (fp32 and dynamic int8) against the torch models they replace."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from tiny_models import build_bi_encoder, build_raw_bert

from babelrank.config import Settings
from babelrank.errors import ConfigError
from babelrank.models import onnx as backends
from babelrank.models.bi_encoder import load_bi_encoder
from babelrank.models.cross_encoder import load_cross_encoder

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

TEXTS = [
    "The red car is parked outside the house near the river.",
    "Червоний автомобіль стоїть біля будинку на вулиці.",
    "Синий дом у реки.",
    "kettle",
    "A blue house stands by the river and the old bridge, and the kettle boils water in the kitchen every morning "
    "while the red car waits outside the house near the river.",
]
QUERY = "червоний автомобіль біля річки"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "onnx-cache"
    monkeypatch.setenv(backends.CACHE_ENV, str(folder))
    return folder


@pytest.fixture(scope="module")
def shaped_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shaped")
    return {
        "labse_like": build_bi_encoder(root / "labse-like", dim=16, pooling="cls", seed=2),
        "raw_bert": build_raw_bert(root / "raw-bert", seed=3),
    }


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.mark.parametrize("which", ["bi", "bi_plain", "labse_like", "raw_bert"])
def test_onnx_fp32_matches_torch(which: str, tiny_models: dict[str, Path], shaped_models: dict[str, Path], cache: Path) -> None:
    path = {**tiny_models, **shaped_models}[which]
    ref = load_bi_encoder(str(path), device="cpu")
    fast = load_bi_encoder(str(path), backend="onnx")
    assert isinstance(fast.model, backends.OnnxSentenceEncoder)
    assert (fast.dimension, fast.max_seq_length) == (ref.dimension, ref.max_seq_length)
    assert (fast.query_prompt, fast.document_prompt) == (ref.query_prompt, ref.document_prompt)
    assert fast.fingerprint() == ref.fingerprint()  # one vector space: the backend is not part of it
    np.testing.assert_allclose(fast.encode_documents(TEXTS), ref.encode_documents(TEXTS), atol=2e-5)
    np.testing.assert_allclose(fast.encode_queries([QUERY]), ref.encode_queries([QUERY]), atol=2e-5)


def test_onnx_int8_close_to_torch(tiny_models: dict[str, Path], cache: Path) -> None:
    ref = load_bi_encoder(str(tiny_models["bi"]), device="cpu").encode_documents(TEXTS)
    fast = load_bi_encoder(str(tiny_models["bi"]), backend="onnx-int8")
    got = fast.encode_documents(TEXTS)
    assert fast.model.meta["backend"] == "onnx-int8"
    assert _cos(got, ref).min() > 0.98
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_batching_does_not_change_vectors(tiny_models: dict[str, Path], cache: Path) -> None:
    """Length-sorted batches are put back in input order; padding does not leak into vectors."""
    fast = load_bi_encoder(str(tiny_models["bi"]), backend="onnx")
    together = fast.model.encode(TEXTS, prompt="passage: ", batch_size=2)
    alone = np.stack([fast.model.encode([t], prompt="passage: ", batch_size=1)[0] for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=2e-5)
    assert fast.model.encode(TEXTS[0]).shape == (fast.dimension,)


def test_length_batches_respect_the_token_budget() -> None:
    lengths = [300, 10, 200, 20, 250, 30]
    batches = [b.tolist() for b in backends._length_batches(lengths, 32, 512)]
    assert batches == [[0], [4, 2], [5, 3, 1]]  # longest first; at most 512 padded tokens unless one text is longer
    assert [b.tolist() for b in backends._length_batches(lengths, 2)] == [[0, 4], [2, 5], [3, 1]]  # no budget


def test_token_budget_does_not_change_vectors(tiny_models: dict[str, Path], cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = load_bi_encoder(str(tiny_models["bi"]), backend="onnx")
    wide = fast.encode_documents(TEXTS)
    monkeypatch.setattr(backends, "BATCH_TOKENS", 16)  # every text alone in its batch
    assert all(len(b) == 1 for b in fast.model._plan([[0] * 20] * 3, 32))
    np.testing.assert_allclose(fast.encode_documents(TEXTS), wide, atol=2e-5)


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_cross_encoder_logits_close(backend: str, tiny_models: dict[str, Path], cache: Path) -> None:
    ref = load_cross_encoder(str(tiny_models["cross"]), device="cpu")
    fast = load_cross_encoder(str(tiny_models["cross"]), backend=backend)
    assert isinstance(fast.model, backends.OnnxCrossEncoder)
    assert fast.max_length == ref.max_length
    want, got = ref.logits(QUERY, TEXTS), fast.logits(QUERY, TEXTS)
    assert got.shape == want.shape == (len(TEXTS),)
    if backend == "onnx":
        np.testing.assert_allclose(got, want, atol=1e-4)
    else:
        assert np.abs(got - want).max() < 0.05 * max(1.0, np.abs(want).max())
    # default activation (sigmoid for one label) like CrossEncoder.predict
    pairs = [(QUERY, t) for t in TEXTS]
    np.testing.assert_allclose(fast.model.predict(pairs), 1 / (1 + np.exp(-got)), atol=1e-6)


def test_cross_encoder_max_length_truncates(tiny_models: dict[str, Path], cache: Path) -> None:
    ref = load_cross_encoder(str(tiny_models["cross"]), device="cpu", max_length=12)
    fast = load_cross_encoder(str(tiny_models["cross"]), backend="onnx", max_length=12)
    assert fast.model.max_seq_length == 12
    np.testing.assert_allclose(fast.logits(QUERY, TEXTS), ref.logits(QUERY, TEXTS), atol=1e-4)
    # counted from the adapter's own tokenization, like the torch path's separate count
    assert fast.truncated == ref.truncated == ref.count_truncated(QUERY, TEXTS) > 0


def test_cross_encoder_with_token_types_and_batching(tiny_models: dict[str, Path], tmp_path: Path, cache: Path) -> None:
    """Pairs whose tokenizer gives token type ids score like torch; batching does not change scores."""
    import json
    import shutil

    import torch
    from transformers import AutoModelForSequenceClassification

    folder = Path(shutil.copytree(tiny_models["cross"], tmp_path / "typed-cross"))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["model_input_names"] = ["input_ids", "token_type_ids", "attention_mask"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder))
    with torch.no_grad():  # make segment 1 matter, so that scores show whether the types got through
        model.bert.embeddings.token_type_embeddings.weight[1] = torch.linspace(-3, 3, model.config.hidden_size)
        model.classifier.weight *= 1000
    model.save_pretrained(str(folder))
    ref = load_cross_encoder(str(folder), device="cpu", max_length=24)
    fast = load_cross_encoder(str(folder), backend="onnx", max_length=24)
    assert "token_type_ids" in fast.model.meta["inputs"]
    assert 1 in ref.model.tokenizer(QUERY, TEXTS[0])["token_type_ids"]  # the second text is segment 1
    want = ref.logits(QUERY, TEXTS)
    np.testing.assert_allclose(fast.logits(QUERY, TEXTS), want, atol=1e-2)
    assert fast.truncated == ref.truncated > 0
    untyped = ref.model.tokenizer([QUERY] * len(TEXTS), TEXTS, padding=True, truncation=True, max_length=24, return_tensors="pt")
    untyped["token_type_ids"].zero_()
    with torch.no_grad():
        assert np.abs(model(**untyped).logits[:, 0].numpy() - want).max() > 0.1
    pairs = [(QUERY, t) for t in TEXTS]
    together = fast.model.predict(pairs, batch_size=2)
    alone = np.array([fast.model.predict([p], batch_size=1)[0] for p in pairs])
    np.testing.assert_allclose(together, alone, atol=1e-3)


def test_collections_are_shared_across_backends(make_index, cache: Path) -> None:
    """A collection written with torch opens with onnx-int8; unchanged documents are not re-embedded."""
    torch_index = make_index(backend="torch", rerank_model="none")
    torch_index.ingest_texts(TEXTS, ids=[f"t{i}" for i in range(len(TEXTS))])
    stored = torch_index.store.get(torch_index.store.docs_state(["t0"])["t0"].chunk_ids)
    torch_index.close()
    fast = make_index(backend="onnx-int8", rerank_model="none")
    report = fast.ingest_texts(TEXTS, ids=[f"t{i}" for i in range(len(TEXTS))])
    assert (report.unchanged, report.chunks_embedded) == (len(TEXTS), 0)
    (text, _, vector), = stored.values()
    assert _cos(fast.encoder.encode_documents([text])[0], vector) > 0.98
    assert fast.search(TEXTS[0], top_n=1).nodes[0].node.metadata["doc_id"] == "t0"


def test_export_is_cached(tiny_models: dict[str, Path], cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="babelrank.models.onnx"):
        first = load_bi_encoder(str(tiny_models["bi"]), backend="onnx-int8").encode_documents(TEXTS)
    assert any("exporting embedding model" in r.getMessage() for r in caplog.records)
    folders = list(cache.iterdir())
    assert len(folders) == 1 and (folders[0] / backends.MODEL_FILE).is_file()

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(backends, "export_bi_encoder", boom)
    monkeypatch.setattr("babelrank.models.bi_encoder.load_model", boom)  # not even the torch weights are loaded
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="babelrank.models.onnx"):
        again = load_bi_encoder(str(tiny_models["bi"]), backend="onnx-int8").encode_documents(TEXTS)
    assert not caplog.records
    np.testing.assert_array_equal(first, again)
    # another backend of the same model is a separate cache entry
    monkeypatch.undo()
    monkeypatch.setenv(backends.CACHE_ENV, str(cache))
    load_bi_encoder(str(tiny_models["bi"]), backend="onnx")
    assert len(list(cache.iterdir())) == 2


def test_cache_key_follows_model_files(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(tiny_models["bi"], tmp_path / "copy"))
    key = backends.cache_folder(str(copy), "onnx", "bi", tmp_path / "c")
    assert key == backends.cache_folder(str(copy), "onnx", "bi", tmp_path / "c")
    assert key != backends.cache_folder(str(copy), "onnx-int8", "bi", tmp_path / "c")
    (copy / "config_sentence_transformers.json").write_text((copy / "config_sentence_transformers.json").read_text() + " ")
    assert key != backends.cache_folder(str(copy), "onnx", "bi", tmp_path / "c")


def test_backend_from_settings_and_env(make_index, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BABELRANK_BACKEND", "onnx-int8")
    assert Settings.from_env().backend == "onnx-int8"
    monkeypatch.setenv("BABELRANK_CACHE_DIR", str(cache))
    assert Settings.from_env().cache_dir == cache
    index = make_index()
    assert isinstance(index.encoder.model, backends.OnnxSentenceEncoder)
    index.ingest_texts(TEXTS, metadata={"topic": "t"})
    result = index.search(QUERY, top_k=4, top_n=2)
    assert len(result.nodes) == 2
    assert isinstance(index.reranker()._encoder.model, backends.OnnxCrossEncoder)
    assert "rerank_score" in result.nodes[0].node.metadata
    assert set(result.timings) >= {"embed", "search", "rerank"}
    # a keyword wins over the environment
    assert not isinstance(make_index(backend="torch", collection="other2").encoder.model, backends.OnnxSentenceEncoder)


def _spinning(model) -> str:
    return model.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")


def test_onnx_spinning_setting_reaches_both_sessions(make_index, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = make_index(backend="onnx-int8", cache_dir=cache)
    assert _spinning(index.encoder.model) == "1" and _spinning(index.reranker()._encoder.model) == "1"
    monkeypatch.setenv("BABELRANK_ONNX_SPINNING", "false")
    assert Settings.from_env().onnx_spinning is False
    quiet = make_index(backend="onnx-int8", cache_dir=cache, collection="other3", onnx_spinning=False)
    assert _spinning(quiet.encoder.model) == "0" and _spinning(quiet.reranker()._encoder.model) == "0"


def test_unknown_backend_is_a_clear_error(tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="backend must be one of auto, torch, onnx, onnx-int8"):
        Settings(backend="tensorrt")
    monkeypatch.setenv("BABELRANK_BACKEND", "openvino")
    with pytest.raises(ConfigError, match="openvino"):
        Settings.from_env()
    with pytest.raises(ConfigError, match="choose one of: auto, torch, onnx, onnx-int8"):
        load_bi_encoder(str(tiny_models["bi"]), backend="int4")
    with pytest.raises(ConfigError, match="choose one of"):
        load_cross_encoder(str(tiny_models["cross"]), backend="fp16")


def test_unsupported_pipeline_falls_back_to_torch(tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers import models as st_models

    base = SentenceTransformer(str(build_bi_encoder(tmp_path / "base")), device="cpu")
    modules = [base[0], base[1], st_models.LayerNorm(base.get_embedding_dimension() if hasattr(base, "get_embedding_dimension") else 32)]
    SentenceTransformer(modules=modules, device="cpu").save(str(tmp_path / "odd"))
    with caplog.at_level(logging.WARNING):
        encoder = load_bi_encoder(str(tmp_path / "odd"), backend="onnx")
    assert "using torch" in caplog.text
    assert not isinstance(encoder.model, backends.OnnxSentenceEncoder)
    assert encoder.encode_documents(["text"]).shape == (1, encoder.dimension)


def test_truncation_is_counted_once(tiny_models: dict[str, Path], cache: Path) -> None:
    ref = load_bi_encoder(str(tiny_models["bi"]), device="cpu")
    fast = load_bi_encoder(str(tiny_models["bi"]), backend="onnx")
    long = " ".join(TEXTS * 4)
    np.testing.assert_allclose(fast.encode_documents([long, TEXTS[0]]), ref.encode_documents([long, TEXTS[0]]), atol=2e-5)
    assert fast.truncated == ref.truncated == 1


# --- backend "auto" and the one-time export ------------------------------------------------


def test_auto_is_the_default_and_picks_the_fastest_available(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    assert Settings().backend == "auto"
    assert backends.resolve_backend("auto", "cuda") == "torch"  # fp16 on the GPU
    assert backends.resolve_backend("auto", "cuda:1") == "torch"
    assert backends.resolve_backend("auto", "cpu") == "onnx-int8"
    assert backends.resolve_backend("onnx", "cpu") == "onnx"
    assert backends.resolve_backend(" Torch ", "cpu") == "torch"
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else find_spec(name, *a))
    assert backends.resolve_backend("auto", "cpu") == "torch"


def test_auto_backend_runs_both_models_in_onnx_int8_on_cpu(tiny_models: dict[str, Path], cache: Path) -> None:
    bi = load_bi_encoder(str(tiny_models["bi"]), backend="auto", device="cpu")
    cross = load_cross_encoder(str(tiny_models["cross"]), backend="auto", device="cpu")
    assert isinstance(bi.model, backends.OnnxSentenceEncoder) and bi.model.meta["backend"] == "onnx-int8"
    assert isinstance(cross.model, backends.OnnxCrossEncoder) and cross.model.meta["backend"] == "onnx-int8"
    assert (bi.backend, cross.backend) == ("onnx-int8", "onnx-int8")
    assert load_bi_encoder(str(tiny_models["bi"]), device="cpu").backend == "torch"


def test_prepare_cross_encoder_exports_before_the_first_query(
    tiny_models: dict[str, Path], cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from babelrank.models.cross_encoder import prepare_cross_encoder

    assert prepare_cross_encoder(str(tiny_models["cross"]), backend="torch") == "torch"
    assert not cache.exists()  # torch needs no export
    with caplog.at_level(logging.WARNING, logger="babelrank.models.onnx"):
        assert prepare_cross_encoder(str(tiny_models["cross"]), backend="auto", device="cpu") == "onnx-int8"
    assert "exporting rerank model" in caplog.text
    (folder,) = cache.iterdir()
    assert (folder / backends.MODEL_FILE).is_file()

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported or loaded torch weights again")

    monkeypatch.setattr(backends, "export_cross_encoder", boom)
    monkeypatch.setattr("babelrank.models.cross_encoder.load_model", boom)
    assert prepare_cross_encoder(str(tiny_models["cross"]), backend="auto", device="cpu") == "onnx-int8"
    cross = load_cross_encoder(str(tiny_models["cross"]), backend="auto", device="cpu")
    assert cross.logits(QUERY, TEXTS).shape == (len(TEXTS),)


@pytest.mark.parametrize("kind", ["bi", "cross"])
def test_export_frees_the_torch_model_before_fusing_and_quantizing(
    kind: str, tiny_models: dict[str, Path], cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The torch weights are no longer held while the ONNX file is fused and quantized."""
    import gc
    import weakref

    from babelrank.models import bi_encoder, cross_encoder

    models = bi_encoder if kind == "bi" else cross_encoder
    alive: list[weakref.ref] = []
    load = models.load_model

    def tracked(*args: object, **kwargs: object) -> tuple:
        loaded = load(*args, **kwargs)
        alive.append(weakref.ref(loaded[0]))
        return loaded

    fuse = backends._optimize_and_quantize

    def checked(*args: object, **kwargs: object) -> dict:
        gc.collect()
        assert alive and all(ref() is None for ref in alive), "the torch model is still in memory"
        return fuse(*args, **kwargs)

    monkeypatch.setattr(models, "load_model", tracked)
    monkeypatch.setattr(backends, "_optimize_and_quantize", checked)
    loader = load_bi_encoder if kind == "bi" else load_cross_encoder
    path = str(tiny_models["bi_plain" if kind == "bi" else "cross"])
    assert loader(path, backend="onnx-int8").backend == "onnx-int8"


def test_auto_falls_back_to_torch_when_the_export_fails(
    tiny_models: dict[str, Path], cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fails(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(backends, "_export", fails)
    with caplog.at_level(logging.WARNING):
        cross = load_cross_encoder(str(tiny_models["cross"]), backend="auto", device="cpu")
    assert cross.backend == "torch" and not isinstance(cross.model, backends.OnnxCrossEncoder)
    assert "unsupported operator" in caplog.text and "backend=torch" in caplog.text
    with pytest.raises(RuntimeError, match="unsupported operator"):  # asked for by name: no fallback
        load_cross_encoder(str(tiny_models["cross"]), backend="onnx-int8")


def test_cache_moves_with_a_model_folder_copied_with_its_times(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    """An export made ahead of time (e.g. on a bigger machine) is found for a copy of the model."""
    import shutil

    here = Path(shutil.copytree(tiny_models["cross"], tmp_path / "here" / "tiny-cross"))  # copy2 keeps times
    there = Path(shutil.copytree(here, tmp_path / "elsewhere" / "tiny-cross"))
    key = backends.cache_folder(str(here), "onnx-int8", "cross", tmp_path / "c")
    assert key == backends.cache_folder(str(there), "onnx-int8", "cross", tmp_path / "c")
    (there / "config.json").write_text((there / "config.json").read_text() + " ")
    assert key != backends.cache_folder(str(there), "onnx-int8", "cross", tmp_path / "c")


def test_large_models_are_saved_with_external_data(
    tiny_models: dict[str, Path], cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over protobuf's 2 GB the fp32 graph keeps its weights in a data file (threshold lowered here)."""
    monkeypatch.setattr(backends, "EXTERNAL_DATA_BYTES", 1000)
    ref = load_cross_encoder(str(tiny_models["cross"]), device="cpu")
    fast = load_cross_encoder(str(tiny_models["cross"]), backend="onnx")
    assert (fast.model.folder / (backends.MODEL_FILE + ".data")).is_file()
    assert (fast.model.folder / backends.MODEL_FILE).stat().st_size < 100_000
    np.testing.assert_allclose(fast.logits(QUERY, TEXTS), ref.logits(QUERY, TEXTS), atol=1e-4)
    assert sorted(p.name for p in fast.model.folder.iterdir()) == sorted(
        [backends.META_FILE, backends.MODEL_FILE, backends.MODEL_FILE + ".data", "tokenizer.json", "tokenizer_config.json"]
    )


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_on_a_gpu_runs_both_models_in_fp16(tiny_models: dict[str, Path]) -> None:
    import torch

    bi = load_bi_encoder(str(tiny_models["bi"]), backend="auto", device="auto")
    cross = load_cross_encoder(str(tiny_models["cross"]), backend="auto", device="auto")
    assert (bi.backend, cross.backend) == ("torch", "torch")
    assert next(bi.model.parameters()).dtype == next(cross.model.model.parameters()).dtype == torch.float16
    assert np.isfinite(cross.logits(QUERY, TEXTS)).all()


def test_no_export_is_announced_for_a_model_that_cannot_be_loaded(
    tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from babelrank import ModelNotFoundError

    with caplog.at_level(logging.WARNING), pytest.raises(ModelNotFoundError):
        load_cross_encoder("org/not-here", model_dir=tmp_path, backend="onnx-int8")
    assert "exporting" not in caplog.text
