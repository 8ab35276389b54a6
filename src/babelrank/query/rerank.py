"""Cross-encoder rerank as a llama-index node postprocessor, usable in any query engine."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from babelrank.models.cross_encoder import CrossEncoderModel, load_cross_encoder
from babelrank.models.presets import DEFAULT_RERANKER
from babelrank.schema import SCORE_KEYS

logger = logging.getLogger(__name__)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


class CrossEncoderReranker(BaseNodePostprocessor):
    """Re-score nodes with a sentence-transformers cross-encoder and keep the best `top_n`.

    Each returned node's score is `rerank_score = sigmoid(logit)` in [0, 1]; its metadata
    keeps `rerank_score`, `rerank_logit` and the first-stage `retrieval_score` (the node's
    incoming score). Pairs longer than `max_length` tokens are cut and counted.

    Rerank time grows with the number of nodes. `candidates` and `margin` rerank fewer: the
    best nodes by first-stage score, at most `candidates` of them and only those within
    `margin` of the best first-stage score, but never fewer than `top_n`. The others are
    dropped.
    """

    model: str = Field(default=DEFAULT_RERANKER, description="Preset, hub id or folder of the cross-encoder.")
    top_n: int = Field(default=5, ge=1, description="Nodes kept after rerank.")
    batch_size: int = Field(default=16, ge=1, description="Pairs scored per forward pass.")
    max_length: int | None = Field(default=None, description="Token limit of a pair; None = the model's.")
    min_score: float | None = Field(default=None, description="Drop nodes whose rerank_score is lower.")
    candidates: int | None = Field(default=None, ge=1, description="Rerank at most this many nodes (best first-stage scores); None = all.")
    margin: float | None = Field(default=None, ge=0, description="Rerank only nodes within this much of the best first-stage score.")
    _encoder: CrossEncoderModel = PrivateAttr()

    def __init__(
        self,
        model: str = DEFAULT_RERANKER,
        *,
        top_n: int = 5,
        batch_size: int = 16,
        max_length: int | None = None,
        min_score: float | None = None,
        candidates: int | None = None,
        margin: float | None = None,
        model_dir: str | Path | None = None,
        device: str = "auto",
        backend: str = "auto",
        cache_dir: str | Path | None = None,
        onnx_spinning: bool = True,
        trust_remote_code: bool = False,
        cross_encoder: CrossEncoderModel | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model=model, top_n=top_n, batch_size=batch_size, max_length=max_length, min_score=min_score,
                         candidates=candidates, margin=margin, **kwargs)
        self._encoder = cross_encoder or load_cross_encoder(
            model, model_dir=model_dir, device=device, max_length=max_length, backend=backend,
            cache_dir=Path(cache_dir) if cache_dir else None, onnx_spinning=onnx_spinning,
            trust_remote_code=trust_remote_code,
        )

    @classmethod
    def class_name(cls) -> str:
        return "BabelrankCrossEncoderReranker"

    @property
    def truncated(self) -> int:
        """Pairs cut to `max_length` so far."""
        return self._encoder.truncated

    def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("CrossEncoderReranker needs the query (query_bundle is None)")
        return self.rerank(nodes, query_bundle.query_str, top_n=self.top_n, min_score=self.min_score)

    def select(self, nodes: list[NodeWithScore]) -> list[NodeWithScore]:
        """The nodes worth reranking under `candidates` and `margin` (all when neither is set)."""
        if self.candidates is None and self.margin is None:
            return nodes
        ranked = sorted(nodes, key=lambda n: -math.inf if n.score is None else n.score, reverse=True)
        keep = len(ranked) if self.candidates is None else self.candidates
        if self.margin is not None and ranked and ranked[0].score is not None:
            floor = ranked[0].score - self.margin
            keep = min(keep, sum(n.score is not None and n.score >= floor for n in ranked))
        return ranked[: max(keep, self.top_n)]

    def rerank(self, nodes: list[NodeWithScore], query: str, *, top_n: int, min_score: float | None = None) -> list[NodeWithScore]:
        """Score `nodes` against `query`; best `top_n` at or above `min_score`, best first."""
        nodes = self.select(nodes)
        if not nodes:
            return []
        texts = [n.node.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        logits = self._encoder.logits(query, texts, batch_size=self.batch_size)
        scores = sigmoid(logits)
        out = []
        for node, logit, score in zip(nodes, logits, scores):
            meta = node.node.metadata
            meta.setdefault("retrieval_score", None if node.score is None else float(node.score))
            meta["rerank_logit"] = float(logit)
            meta["rerank_score"] = float(score)
            for key in SCORE_KEYS:
                if key not in node.node.excluded_llm_metadata_keys:
                    node.node.excluded_llm_metadata_keys.append(key)
                    node.node.excluded_embed_metadata_keys.append(key)
            out.append(NodeWithScore(node=node.node, score=float(score)))
        out.sort(key=lambda n: n.score, reverse=True)
        if min_score is not None:
            out = [n for n in out if n.score >= min_score]
        return out[:top_n]
