"""Known models (presets) and where a model name, hub id or folder is found, offline-friendly."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from babelrank.errors import ModelNotFoundError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preset:
    """A known model: its hub id, the prompts it needs when its files do not define them, and
    whether it runs Python code of its own (loads only with `Settings.trust_remote_code`)."""

    hub_id: str
    kind: str  # "bi" or "cross"
    query_prompt: str = ""
    document_prompt: str = ""
    trust_remote_code: bool = False


PRESETS: dict[str, Preset] = {
    "e5-small": Preset("intfloat/multilingual-e5-small", "bi", "query: ", "passage: "),
    "e5-base": Preset("intfloat/multilingual-e5-base", "bi", "query: ", "passage: "),
    "e5-large": Preset("intfloat/multilingual-e5-large", "bi", "query: ", "passage: "),
    "labse": Preset("sentence-transformers/LaBSE", "bi"),
    "smaller-labse": Preset("setu4993/smaller-LaBSE", "bi"),
    "minilm": Preset("sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2", "bi"),
    "mmarco-minilm": Preset("cross-encoder/mmarco-mMiniLMv2-L12-H384-v1", "cross"),
    # stronger multilingual rerankers (docs/choosing-a-model.md: sizes and published scores)
    "bge-reranker-v2-m3": Preset("BAAI/bge-reranker-v2-m3", "cross"),
    "jina-reranker-v2": Preset("jinaai/jina-reranker-v2-base-multilingual", "cross", trust_remote_code=True),
    "gte-reranker": Preset("Alibaba-NLP/gte-multilingual-reranker-base", "cross", trust_remote_code=True),
}
DEFAULT_RERANKER = "mmarco-minilm"
"""The preset loaded for `rerank_model="auto"`."""
E5_PROMPTS = ("query: ", "passage: ")
"""(query, document) prompts of an e5 model whose files define none."""


def resolve_model(name: str, model_dir: Path | None = None) -> tuple[str, Preset | None]:
    """Turn a preset name, hub id or folder into a loadable location.

    Returns `(location, preset)` where location is an existing folder or a hub id that is
    worth asking the hub for. A hub id is first looked up in `model_dir`.
    """
    preset = PRESETS.get(name)
    hub_id = preset.hub_id if preset else name
    if preset is None:
        preset = next((p for p in PRESETS.values() if p.hub_id == name), None)
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path), preset
    if model_dir is not None:
        local = _find_in_model_dir(hub_id, Path(model_dir).expanduser())
        if local is not None:
            return str(local), preset
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(
            f"model folder {name!r} does not exist; give an existing folder or a model hub id"
        )
    return hub_id, preset


def _find_in_model_dir(hub_id: str, model_dir: Path) -> Path | None:
    base = hub_id.rsplit("/", 1)[-1]
    for candidate in (model_dir / hub_id, model_dir / base, model_dir / hub_id.replace("/", "--")):
        if candidate.is_dir():
            return candidate
    variants = sorted(p for p in model_dir.glob(f"{base}-*") if p.is_dir()) if model_dir.is_dir() else []
    if variants:
        if len(variants) > 1:
            logger.warning("several folders match %s in %s; using %s", hub_id, model_dir, variants[0])
        logger.info("using %s for %s", variants[0], hub_id)
        return variants[0]
    return None
