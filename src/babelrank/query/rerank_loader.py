"""The reranker that settings name: the one reading of `Settings.rerank_model` into a loaded model.

`rerank_model` is a cross-encoder (preset, hub id or folder), one of `NO_RERANKER` (rerank off)
or ``"auto"``: the default preset (`DEFAULT_RERANKER`) when it can be loaded, else no rerank,
with one warning. `load_reranker` loads it now; `RerankerLoader` loads it once, on first use,
and can export its ONNX model ahead of that (`prepare`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from babelrank.config import NO_RERANKER, Settings
from babelrank.errors import ModelNotFoundError
from babelrank.models.cross_encoder import prepare_cross_encoder
from babelrank.models.presets import DEFAULT_RERANKER
from babelrank.query.rerank import CrossEncoderReranker

logger = logging.getLogger(__name__)


def _with_model(settings: Settings, use: Callable[[str], Any]) -> Any:
    """`use(model)` for the cross-encoder `settings` name; None when rerank is off, or when "auto"
    finds no default reranker (with a warning)."""
    name = settings.rerank_model
    if name.strip().lower() in NO_RERANKER:
        return None
    try:
        return use(DEFAULT_RERANKER if name == "auto" else name)
    except ModelNotFoundError as exc:
        if name != "auto":
            raise
        logger.warning("rerank is off: %s (set the rerank model to 'none' to silence: BABELRANK_RERANK_MODEL=none)", exc)
        return None


def load_reranker(settings: Settings) -> CrossEncoderReranker | None:
    """The reranker `settings.rerank_model` names, configured by `settings`.

    Returns:
        The reranker; None when rerank is off, or when "auto" finds no default reranker.

    Raises:
        ModelNotFoundError: a reranker named explicitly cannot be loaded.
    """
    options = settings.cross_encoder_options()
    return _with_model(settings, lambda model: CrossEncoderReranker(model, **options))


class RerankerLoader:
    """The reranker of an index: loaded once, on first use, by any number of threads.

    Args:
        settings: name the reranker and configure it (see `load_reranker`).
        reranker: an already loaded reranker to use instead (nothing is loaded then).
    """

    def __init__(self, settings: Settings, reranker: CrossEncoderReranker | None = None) -> None:
        self.settings = settings
        self._reranker = reranker
        self._loaded = reranker is not None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the reranker (or that there is none) is settled."""
        return self._loaded

    def get(self) -> CrossEncoderReranker | None:
        """The reranker, loaded on first use (None when rerank is off)."""
        with self._lock:
            if not self._loaded:
                self._reranker = load_reranker(self.settings)
                self._loaded = True
            return self._reranker

    def prepare(self) -> None:
        """Export the reranker to ONNX now if its backend needs an export the cache lacks.

        The one-time export (15-50 s) then happens where waiting is expected (ingest, server
        start) and never in the middle of a first query; a cached export is not opened.
        """
        with self._lock:
            if self._loaded:
                return
            s = self.settings
            found = _with_model(s, lambda model: prepare_cross_encoder(
                model, model_dir=s.model_dir, device=s.device, backend=s.backend, cache_dir=s.cache_dir,
                trust_remote_code=s.trust_remote_code,
            ))
            if found is None:  # no rerank: nothing for a query to load either
                self._loaded = True
