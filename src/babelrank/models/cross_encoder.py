"""The cross-encoder: raw relevance logits of (query, text) pairs."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from babelrank.models.loading import backend_and_device, load_model, on_backend
from babelrank.models.presets import resolve_model

logger = logging.getLogger(__name__)


class CrossEncoderModel:
    """A sentence-transformers cross-encoder returning raw logits for (query, text) pairs.

    `backend` is the one the model runs on ("torch", "onnx", "onnx-int8"; "auto" resolved).
    """

    def __init__(self, model: Any, name: str, max_length: int | None = None, backend: str = "torch") -> None:
        self.model = model
        self.name = name
        self.backend = backend
        limit = getattr(model, "max_seq_length", None) or getattr(model.tokenizer, "model_max_length", 512)
        self.max_length = int(min(max_length or limit, limit if limit < 100_000 else 512))
        self.truncated = 0
        self._lock = threading.Lock()  # tokenizers and models are not safe across threads

    def count_truncated(self, query: str, texts: Sequence[str]) -> int:
        """How many pairs exceed `max_length` tokens (they are cut when scored)."""
        encoded = self.model.tokenizer([query] * len(texts), list(texts), truncation=False, verbose=False)["input_ids"]
        return sum(len(ids) > self.max_length for ids in encoded)

    def logits(self, query: str, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        """Raw relevance logits, one per text (thread-safe)."""
        with self._lock:
            return self._logits_locked(query, texts, batch_size)

    def _logits_locked(self, query: str, texts: Sequence[str], batch_size: int) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros(0, dtype=np.float32)
        # the ONNX adapter counts over-long pairs from its own tokenization (no second pass)
        counted = hasattr(self.model, "last_over_limit")
        if not counted:
            self._count_truncated(self.count_truncated(query, texts))
        scores = self.model.predict(
            [(query, t) for t in texts],
            batch_size=batch_size,
            activation_fn=torch.nn.Identity(),
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        if counted:
            self._count_truncated(int(self.model.last_over_limit))
        return np.asarray(scores, dtype=np.float32).reshape(len(texts), -1)[:, 0]

    def _count_truncated(self, over: int) -> None:
        if over:
            self.truncated += over
            logger.info("%d (query, chunk) pair(s) cut to %d tokens for rerank", over, self.max_length)


def _cross_encoder(
    name: str, model_dir: Path | None, device: str, backend: str, cache_dir: Path | None, spinning: bool,
    trust_remote_code: bool, open_model: bool,
) -> tuple[Any, str, str, str]:
    """(model or None, backend, device, location) of a cross-encoder (see `_on_backend`)."""
    from sentence_transformers import CrossEncoder

    asked, backend, dev = backend_and_device(backend, device)
    location, _ = resolve_model(name, model_dir)

    def load_torch() -> Any:
        return load_model(CrossEncoder, name, model_dir, "rerank model", trust_remote_code, device=dev)[0]

    model, backend = on_backend("cross", name, location, asked, backend, load_torch, cache_dir, spinning, open_model)
    return model, backend, dev, location


def load_cross_encoder(
    name: str, *, model_dir: Path | None = None, device: str = "auto", max_length: int | None = None,
    backend: str = "torch", cache_dir: Path | None = None, onnx_spinning: bool = True,
    trust_remote_code: bool = False,
) -> CrossEncoderModel:
    """Load a cross-encoder by preset name, hub id or folder (raises `ModelNotFoundError`).

    Args:
        name, model_dir, device, backend, cache_dir, onnx_spinning, trust_remote_code: as
            for `load_bi_encoder` (on CUDA the torch model runs in fp16).
        max_length: token limit of a (query, text) pair; None = the model's own.
    """
    model, backend, dev, location = _cross_encoder(
        name, model_dir, device, backend, cache_dir, onnx_spinning, trust_remote_code, open_model=True
    )
    if backend == "torch" and dev.startswith("cuda"):
        model.half()
    if max_length:
        model.max_seq_length = max_length
    logger.info("loaded rerank model %s from %s on %s (backend %s)", name, location, dev, backend)
    return CrossEncoderModel(model, name, max_length, backend)


def prepare_cross_encoder(
    name: str, *, model_dir: Path | None = None, device: str = "auto", backend: str = "auto",
    cache_dir: Path | None = None, trust_remote_code: bool = False,
) -> str:
    """Export a cross-encoder to ONNX now if its backend needs an export the cache lacks.

    The export (once per model and backend) would otherwise happen when the reranker is
    first loaded, in the middle of a first query: call this where waiting is expected
    (ingest, server start). Nothing stays loaded; a cached export is not even opened.

    Args:
        name, model_dir, device, backend, cache_dir, trust_remote_code: as for
            `load_cross_encoder`.

    Returns:
        The backend the cross-encoder will run on ("torch" when no export is needed).
    """
    return _cross_encoder(name, model_dir, device, backend, cache_dir, True, trust_remote_code, open_model=False)[1]
