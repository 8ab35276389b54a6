"""The bi-encoder: query and document embeddings with the right prompt on each side."""

from __future__ import annotations

import collections
import logging
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from babelrank.models.loading import (
    backend_and_device,
    load_model,
    on_backend,
    quiet_loading,
)
from babelrank.models.presets import E5_PROMPTS, Preset, resolve_model

logger = logging.getLogger(__name__)


class FifoLock:
    """A lock granted in the order it was asked for.

    `threading.Lock` lets the thread that releases it take it straight back: an ingest
    embedding one piece after another kept a waiting query out for several pieces (3.4 s) in
    `benchmarks/query_during_ingest.py`. Here the query, asking first, goes next.
    """

    def __init__(self) -> None:
        self._state = threading.Condition()
        self._queue: collections.deque[object] = collections.deque()
        self._held = False

    def __enter__(self) -> None:
        ticket = object()
        with self._state:
            self._queue.append(ticket)
            while self._held or self._queue[0] is not ticket:
                self._state.wait()
            self._queue.popleft()
            self._held = True

    def __exit__(self, *exc: object) -> None:
        with self._state:
            self._held = False
            self._state.notify_all()


class BiEncoder:
    """A sentence-transformers bi-encoder with the right prompt on each side.

    Embeddings are float32 and L2-normalised, so the inner product is the cosine similarity.
    `backend` is the one the model runs on ("torch", "onnx", "onnx-int8"; "auto" resolved).
    """

    def __init__(self, model: Any, name: str, preset: Preset | None = None, backend: str = "torch") -> None:
        self.model = model
        self.name = name
        self.backend = backend
        prompts = dict(getattr(model, "prompts", {}) or {})
        query = prompts.get("query", "")
        document = prompts.get("document", prompts.get("passage", ""))
        if not query and not document:
            if preset and (preset.query_prompt or preset.document_prompt):
                query, document = preset.query_prompt, preset.document_prompt
            elif "e5" in name.lower().replace("_", "-").split("/")[-1]:
                query, document = E5_PROMPTS
        self.query_prompt = query
        self.document_prompt = document
        self.truncated = 0
        self.lock = FifoLock()
        """Held while the model or its tokenizer runs (neither is safe across threads); share
        it with anything else that calls `tokenizer` (the chunker)."""

    @property
    def dimension(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def special_tokens(self) -> int:
        """How many special tokens the tokenizer adds to a single text."""
        with self.lock:
            return len(self.tokenizer("", add_special_tokens=True)["input_ids"])

    def prompt_tokens(self, prompt: str) -> int:
        """Token count of a prompt without special tokens."""
        if not prompt:
            return 0
        with self.lock:
            return len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def fingerprint(self) -> dict[str, str | int]:
        """What identifies the vector space this model writes (stored with the collection).

        The backend is left out on purpose: torch, onnx and onnx-int8 run the same weights
        into the same space (fp32 ONNX matches torch to 2e-5; int8 keeps cosine > 0.98 to it),
        so a collection may be written and queried with any of them.
        """
        return {
            "model": self.name,
            "dimension": self.dimension,
            "query_prompt": self.query_prompt,
            "document_prompt": self.document_prompt,
        }

    def _encode(self, texts: Sequence[str], prompt: str, batch_size: int, progress: bool) -> np.ndarray:
        """Embed under `lock`, one call of the model for all `texts`.

        The ingest embeds a slice of four batches per call, so a query on another thread
        waits for at most one slice. The model (or the ONNX adapter) sorts and batches the
        texts itself: a finer split would change which texts share a batch, and with
        ``onnx-int8`` (activations quantised per batch) the vectors with it (dedup on XQuAD
        fell from 99 % to 85 % five-different-paragraph answers when batches were cut here).
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self.lock:
            vectors, over = self._encode_locked(list(texts), prompt, batch_size, progress)
        self._count_truncated(over)
        return vectors

    def _encode_locked(self, texts: list[str], prompt: str, batch_size: int, progress: bool) -> tuple[np.ndarray, int]:
        """Unit vectors of `texts` and how many were truncated (hold `lock`)."""
        # the ONNX adapter counts over-long texts from its own tokenization (no second pass)
        counted = hasattr(self.model, "last_over_limit")
        if not counted:
            lengths = self.tokenizer([prompt + t for t in texts], add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
            over = sum(len(ids) > self.max_seq_length for ids in lengths)
        vectors = self.model.encode(
            texts, prompt=prompt or None, batch_size=batch_size, show_progress_bar=progress,
            normalize_embeddings=True, convert_to_numpy=True,
        )
        if counted:
            over = int(self.model.last_over_limit)
        return np.asarray(vectors, dtype=np.float32), over

    def _count_truncated(self, over: int) -> None:
        if over:
            self.truncated += over
            logger.warning(
                "%d text(s) exceed %s's limit of %d tokens and were truncated for embedding",
                over, self.name, self.max_seq_length,
            )

    def encode_documents(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Embed chunks with the document prompt (sentence-transformers sorts by length)."""
        return self._encode(texts, self.document_prompt, batch_size, progress)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embed queries with the query prompt."""
        return self._encode(texts, self.query_prompt, batch_size, False)



def _raw_transformer(location: str, device: str) -> Any:
    """A sentence-transformers model over a bare Hugging Face encoder folder (no modules.json).

    BERT-style models with a trained pooler (e.g. smaller-LaBSE) embed as the pooler output
    (tanh(dense(CLS))), L2-normalised; models without pooler weights use mean pooling.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers import models as st_models

    transformer = st_models.Transformer(location)
    hidden = transformer.auto_model.config.hidden_size
    pooler = getattr(transformer.auto_model, "pooler", None)
    dense = getattr(pooler, "dense", None)
    if dense is not None and bool(torch.count_nonzero(dense.weight)):
        head = st_models.Dense(hidden, hidden, bias=True, activation_function=torch.nn.Tanh())
        head.linear.load_state_dict(dense.state_dict())
        modules = [transformer, st_models.Pooling(hidden, "cls"), head, st_models.Normalize()]
        logger.info("%s has no sentence-transformers config: using its pooler output", location)
    else:
        modules = [transformer, st_models.Pooling(hidden, "mean"), st_models.Normalize()]
        logger.info("%s has no sentence-transformers config and no pooler: using mean pooling", location)
    return SentenceTransformer(modules=modules, device=device)



def load_bi_encoder(
    name: str, *, model_dir: Path | None = None, device: str = "auto", backend: str = "torch",
    cache_dir: Path | None = None, onnx_spinning: bool = True, trust_remote_code: bool = False,
) -> BiEncoder:
    """Load a bi-encoder by preset name, hub id or folder (raises `ModelNotFoundError`).

    Args:
        name: preset name (`PRESETS`), model hub id or folder.
        model_dir: folder of local models looked in first (`Settings.model_dir`).
        device: "auto", "cpu", "cuda", ... (the torch backend's device; ONNX runs on CPU).
        backend: "auto", "torch", "onnx" or "onnx-int8" (see `Settings.backend` and
            `babelrank.models.onnx`); ONNX models are exported once into `cache_dir`. On CUDA
            the torch model runs in fp16.
        cache_dir: cache of ONNX exports (None = `~/.cache/babelrank/onnx`).
        onnx_spinning: as in `Settings`.
        trust_remote_code: allow a model's own Python code (as in `Settings`).
    """
    from sentence_transformers import SentenceTransformer

    asked, backend, dev = backend_and_device(backend, device)
    location, preset = resolve_model(name, model_dir)

    def load_torch() -> Any:
        folder = Path(location)
        if folder.is_dir() and not (folder / "modules.json").exists() and (folder / "config.json").exists():
            with quiet_loading():
                return _raw_transformer(location, dev)
        return load_model(SentenceTransformer, name, model_dir, "embedding model", trust_remote_code, device=dev)[0]

    model, backend = on_backend("bi", name, location, asked, backend, load_torch, cache_dir, onnx_spinning)
    if backend == "torch" and dev.startswith("cuda"):
        model.half()
    logger.info("loaded embedding model %s from %s on %s (backend %s)", name, location, dev, backend)
    return BiEncoder(model, preset.hub_id if preset and not Path(name).is_dir() else name, preset, backend)
