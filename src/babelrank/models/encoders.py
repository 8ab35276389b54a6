"""Loading bi-encoders and cross-encoders by preset, hub id or local folder, offline-friendly."""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import socket
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from babelrank.errors import BabelrankError, ConfigError, ModelNotFoundError

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
    # stronger multilingual rerankers (README, "Choosing a model": sizes and published scores)
    "bge-reranker-v2-m3": Preset("BAAI/bge-reranker-v2-m3", "cross"),
    "jina-reranker-v2": Preset("jinaai/jina-reranker-v2-base-multilingual", "cross", trust_remote_code=True),
    "gte-reranker": Preset("Alibaba-NLP/gte-multilingual-reranker-base", "cross", trust_remote_code=True),
}
DEFAULT_RERANKER = "mmarco-minilm"
_E5_PROMPTS = ("query: ", "passage: ")


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


def _not_found(name: str, location: str, model_dir: Path | None, kind: str, cause: Exception) -> ModelNotFoundError:
    where = f" or in BABELRANK_MODEL_DIR={model_dir}" if model_dir else ""
    return ModelNotFoundError(
        f"{kind} {name!r} could not be loaded: not a local folder{where}, and the model hub "
        f"did not provide {location!r} ({type(cause).__name__}: {str(cause).splitlines()[0][:200] if str(cause) else ''}). "
        f"Download it where a hub is reachable (e.g. `huggingface-cli download {location}`), "
        f"then point BABELRANK_MODEL_DIR at a folder holding it, or pass the model folder path."
    )


def pick_device(device: str) -> str:
    """Resolve "auto" to "cuda" when a GPU is visible, else "cpu"."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


_LOAD_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_loading() -> Any:
    """Load one model at a time, without per-tensor progress bars or hub retry chatter."""
    from transformers.utils import logging as hf_logging

    hub_logger = logging.getLogger("huggingface_hub")
    with _LOAD_LOCK:
        was, level = hf_logging.is_progress_bar_enabled(), hub_logger.level
        hf_logging.disable_progress_bar()
        hub_logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            hub_logger.setLevel(level)
            if was:
                hf_logging.enable_progress_bar()


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the model hub's host answers a TCP connection within `timeout` seconds."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urllib.parse.urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname or "", port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _remote_code_refused(kind: str, name: str) -> ConfigError:
    return ConfigError(
        f"{kind} {name!r} runs Python code that comes with the model, which babelrank allows only "
        f"when asked: if you trust its authors, set trust_remote_code=True (BABELRANK_TRUST_REMOTE_CODE=1)"
    )


def _load(
    cls: type, name: str, model_dir: Path | None, kind: str, trust_remote_code: bool = False, **kwargs: Any
) -> tuple[Any, str, Preset | None]:
    location, preset = resolve_model(name, model_dir)
    if preset is not None and preset.trust_remote_code and not trust_remote_code:
        raise _remote_code_refused(kind, name)
    local = Path(location).is_dir()
    if not local and not _hub_offline() and not _hub_reachable():
        raise _not_found(name, location, model_dir, kind, ConnectionError("the model hub is unreachable"))
    try:
        with _quiet_loading():
            model = cls(location, local_files_only=local or _hub_offline(), trust_remote_code=trust_remote_code, **kwargs)
    except ModelNotFoundError:
        raise
    except Exception as exc:  # the hub client raises many types; one clear message instead
        if "trust_remote_code" in str(exc) and not trust_remote_code:
            raise _remote_code_refused(kind, name) from None
        if local:
            raise ModelNotFoundError(f"{kind} folder {location!r} could not be loaded: {exc}") from exc
        raise _not_found(name, location, model_dir, kind, exc) from None
    return model, location, preset


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


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}


class FifoLock:
    """A lock granted in the order it was asked for.

    `threading.Lock` lets the thread that releases it take it straight back: an ingest
    embedding batch after batch kept a waiting query out for 3.4 s (three batches) in
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
                query, document = _E5_PROMPTS
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
        """Embed longest texts first, one batch per hold of `lock`, so that a query on another
        thread waits for at most one batch of a long ingest, not for all of it."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        size = max(1, batch_size)
        parts, over = [], 0
        for start in tqdm(range(0, len(texts), size), desc="embed", unit="batch", disable=not progress or len(texts) <= size):
            with self.lock:
                vectors, batch_over = self._encode_batch([texts[i] for i in order[start : start + size]], prompt)
            parts.append(vectors)
            over += batch_over
        self._count_truncated(over)
        out = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        out[order] = np.concatenate(parts)
        return out

    def _encode_batch(self, texts: list[str], prompt: str) -> tuple[np.ndarray, int]:
        """Unit vectors of one batch and how many of its texts were truncated (hold `lock`)."""
        # the ONNX adapter counts over-long texts from its own tokenization (no second pass)
        counted = hasattr(self.model, "last_over_limit")
        if not counted:
            lengths = self.tokenizer([prompt + t for t in texts], add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
            over = sum(len(ids) > self.max_seq_length for ids in lengths)
        vectors = self.model.encode(
            texts, prompt=prompt or None, batch_size=len(texts), show_progress_bar=False,
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


def _backend_and_device(backend: str, device: str) -> tuple[str, str, str]:
    """(backend asked for, backend to run, device): ONNX backends run on the CPU."""
    from babelrank.models.onnx import check_backend, resolve_backend

    asked = check_backend(backend)
    dev = pick_device(device)
    run = resolve_backend(asked, dev)
    return asked, run, dev if run == "torch" else "cpu"


def _on_backend(
    kind: str, name: str, location: str, asked: str, backend: str, load_torch: Callable[[], Any],
    cache_dir: Path | None, spinning: bool, open_model: bool = True,
) -> tuple[Any, str]:
    """(model, backend it runs on): the ONNX adapter, exported once into `cache_dir`, or the
    torch model when torch is asked for or ONNX cannot run the model. `open_model=False`
    only exports (the model is None).

    A failed export falls back to torch, with a warning, under `"auto"`; it raises under a
    backend asked for by name.
    """
    from babelrank.models.onnx import UnsupportedModel, ensure_exported, onnx_model

    if backend == "torch":
        return (load_torch() if open_model else None), "torch"
    try:
        if open_model:
            return onnx_model(kind, location, backend, load_torch, cache_dir, spinning=spinning), backend
        ensure_exported(kind, location, backend, load_torch, cache_dir)
        return None, backend
    except UnsupportedModel as exc:
        logger.warning("backend %s cannot run %s (%s); using torch", backend, name, exc)
        if not open_model:
            return None, "torch"
        return (exc.torch_model if exc.torch_model is not None else load_torch()), "torch"
    except BabelrankError:
        raise
    except Exception as exc:
        if asked != "auto":
            raise
        logger.warning("ONNX export of %s failed (%s: %s); using torch (set backend=torch to skip the attempt)",
                       name, type(exc).__name__, exc)
        return (load_torch() if open_model else None), "torch"


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

    asked, backend, dev = _backend_and_device(backend, device)
    location, preset = resolve_model(name, model_dir)

    def load_torch() -> Any:
        folder = Path(location)
        if folder.is_dir() and not (folder / "modules.json").exists() and (folder / "config.json").exists():
            with _quiet_loading():
                return _raw_transformer(location, dev)
        return _load(SentenceTransformer, name, model_dir, "embedding model", trust_remote_code, device=dev)[0]

    model, backend = _on_backend("bi", name, location, asked, backend, load_torch, cache_dir, onnx_spinning)
    if backend == "torch" and dev.startswith("cuda"):
        model.half()
    logger.info("loaded embedding model %s from %s on %s (backend %s)", name, location, dev, backend)
    return BiEncoder(model, preset.hub_id if preset and not Path(name).is_dir() else name, preset, backend)


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

    asked, backend, dev = _backend_and_device(backend, device)
    location, _ = resolve_model(name, model_dir)

    def load_torch() -> Any:
        return _load(CrossEncoder, name, model_dir, "rerank model", trust_remote_code, device=dev)[0]

    model, backend = _on_backend("cross", name, location, asked, backend, load_torch, cache_dir, spinning, open_model)
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
