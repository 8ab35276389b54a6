from pathlib import Path

import numpy as np
import pytest

from babelrank import ModelNotFoundError
from babelrank.models.bi_encoder import load_bi_encoder
from babelrank.models.cross_encoder import load_cross_encoder
from babelrank.models.presets import resolve_model


def test_hub_id_is_found_in_model_dir_by_name_or_variant(tmp_path: Path) -> None:
    (tmp_path / "multilingual-e5-small-q4").mkdir()
    (tmp_path / "sentence-transformers" / "LaBSE").mkdir(parents=True)
    assert resolve_model("e5-small", tmp_path)[0] == str(tmp_path / "multilingual-e5-small-q4")
    assert resolve_model("sentence-transformers/LaBSE", tmp_path)[0] == str(tmp_path / "sentence-transformers" / "LaBSE")
    assert resolve_model("minilm", tmp_path)[0] == "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2"


def test_missing_model_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        load_bi_encoder("org/no-such-model", model_dir=tmp_path)
    msg = str(err.value)
    assert "org/no-such-model" in msg and "BABELRANK_MODEL_DIR" in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_bi_encoder(str(tmp_path / "nope" / "model"))


def test_bi_encoder_prompts_fingerprint_and_normalised_vectors(tiny_models: dict[str, Path]) -> None:
    enc = load_bi_encoder(str(tiny_models["bi"]), device="cpu")
    assert (enc.query_prompt, enc.document_prompt) == ("query: ", "passage: ")
    assert enc.fingerprint()["dimension"] == 32
    docs = enc.encode_documents(["червоний автомобіль", "red car"])
    assert docs.shape == (2, 32) and docs.dtype == np.float32
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    # the prompt really is applied: the same text embeds differently on the two sides
    assert not np.allclose(enc.encode_queries(["red car"])[0], docs[1])


def test_over_long_texts_are_counted_as_truncated(tiny_models: dict[str, Path]) -> None:
    enc = load_bi_encoder(str(tiny_models["bi"]), device="cpu")
    enc.encode_documents(["word " * 500, "short"])
    assert enc.truncated == 1


def test_cross_encoder_returns_raw_logits(tiny_models: dict[str, Path]) -> None:
    ce = load_cross_encoder(str(tiny_models["cross"]), device="cpu")
    logits = ce.logits("red car", ["червоний автомобіль", "a blue house", "x " * 300])
    assert logits.shape == (3,)
    assert ce.truncated == 1


def test_labse_shape_cls_dense_normalize(tmp_path: Path) -> None:
    from tiny_models import build_bi_encoder

    enc = load_bi_encoder(str(build_bi_encoder(tmp_path / "labse-like", dim=48, pooling="cls")), device="cpu")
    assert enc.dimension == 48 and (enc.query_prompt, enc.document_prompt) == ("", "")
    vecs = enc.encode_documents(["червоний автомобіль", "red car"])
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_raw_bert_folder_embeds_as_normalised_pooler_output(tmp_path: Path) -> None:
    import torch
    from tiny_models import build_raw_bert
    from transformers import AutoModel, AutoTokenizer

    folder = build_raw_bert(tmp_path / "smaller-labse-like")
    enc = load_bi_encoder(str(folder), device="cpu")
    texts = ["Червоний автомобіль стоїть біля будинку.", "The red car is parked."]
    got = enc.encode_documents(texts)
    tok, bert = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        pooled = bert(**tok(texts, padding=True, return_tensors="pt")).pooler_output
    want = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    assert np.allclose(got, want, atol=1e-5)


def test_short_context_model_gets_chunks_that_fit(tmp_path: Path, make_index) -> None:
    """Like paraphrase-multilingual-MiniLM-L12-v2 (128 tokens): chunks fit, nothing is cut."""
    from tiny_models import build_bi_encoder

    folder = build_bi_encoder(tmp_path / "short-context", max_seq_length=24)
    index = make_index(embed_model=str(folder), rerank_model="none")
    enc = index.encoder
    assert index.chunker.max_tokens == 24 - enc.special_tokens() - enc.prompt_tokens(enc.document_prompt)
    report = index.ingest_texts(["Червоний автомобіль стоїть біля будинку на вулиці. " * 20])
    assert report.chunks_written > 5 and report.truncated == 0


# --- reranker presets and models that run their own code ------------------------------------


def test_multilingual_reranker_presets() -> None:
    from babelrank.models.presets import PRESETS

    hub_ids = {name: (p.hub_id, p.kind, p.trust_remote_code) for name, p in PRESETS.items() if p.kind == "cross"}
    assert hub_ids["bge-reranker-v2-m3"] == ("BAAI/bge-reranker-v2-m3", "cross", False)
    assert hub_ids["jina-reranker-v2"] == ("jinaai/jina-reranker-v2-base-multilingual", "cross", True)
    assert hub_ids["gte-reranker"] == ("Alibaba-NLP/gte-multilingual-reranker-base", "cross", True)
    assert resolve_model("bge-reranker-v2-m3")[0] == "BAAI/bge-reranker-v2-m3"


def _custom_code_cross_encoder(folder: Path) -> Path:
    """A tiny cross-encoder whose architecture lives in Python files of its own folder."""
    import json

    from tiny_models import build_cross_encoder

    build_cross_encoder(folder)
    (folder / "configuration_babel_tiny.py").write_text(
        "from transformers import BertConfig\n\n\nclass BabelTinyConfig(BertConfig):\n    model_type = 'babel-tiny'\n"
    )
    (folder / "modeling_babel_tiny.py").write_text(
        "from transformers import BertForSequenceClassification\n\n"
        "from .configuration_babel_tiny import BabelTinyConfig\n\n\n"
        "class BabelTinyForSequenceClassification(BertForSequenceClassification):\n    config_class = BabelTinyConfig\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="babel-tiny", architectures=["BabelTinyForSequenceClassification"], auto_map={
        "AutoConfig": "configuration_babel_tiny.BabelTinyConfig",
        "AutoModelForSequenceClassification": "modeling_babel_tiny.BabelTinyForSequenceClassification",
    })
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture
def modules_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers copies a model's own code into its modules cache: a temporary one here."""
    import transformers.dynamic_module_utils as dynamic

    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "hf-modules"))


@pytest.mark.parametrize("name", ["jinaai/jina-reranker-v2-base-multilingual", "local folder"])
def test_model_with_its_own_code_needs_trust_remote_code(tmp_path: Path, name: str, modules_cache: None) -> None:
    from babelrank import ConfigError

    folder = _custom_code_cross_encoder(tmp_path / "models" / "jina-reranker-v2-base-multilingual")
    model = str(folder) if name == "local folder" else name
    with pytest.raises(ConfigError, match=r"trust_remote_code.*BABELRANK_TRUST_REMOTE_CODE=1"):
        load_cross_encoder(model, model_dir=tmp_path / "models", device="cpu")
    ce = load_cross_encoder(model, model_dir=tmp_path / "models", device="cpu", trust_remote_code=True)
    assert type(ce.model.model).__name__ == "BabelTinyForSequenceClassification"
    assert ce.logits("red car", ["червоний автомобіль", "a blue house"]).shape == (2,)


def test_trust_remote_code_setting_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from babelrank.config import Settings

    assert Settings().trust_remote_code is False
    monkeypatch.setenv("BABELRANK_TRUST_REMOTE_CODE", "1")
    assert Settings.from_env().trust_remote_code is True


def test_fifo_lock_serves_a_waiting_thread_before_the_one_that_released_it() -> None:
    import threading
    import time

    from babelrank.models.bi_encoder import FifoLock

    lock, order = FifoLock(), []

    def other() -> None:
        with lock:
            order.append("waiting thread")

    with lock:
        waiter = threading.Thread(target=other)
        waiter.start()
        deadline = time.monotonic() + 10
        while not lock._queue and time.monotonic() < deadline:  # the waiter has asked
            time.sleep(0.001)
    with lock:  # asks again at once, as an ingest does batch after batch
        order.append("releasing thread")
    waiter.join()
    assert order == ["waiting thread", "releasing thread"]
