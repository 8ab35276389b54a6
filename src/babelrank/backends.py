"""Fast CPU inference backends: ONNX Runtime in fp32 (`"onnx"`) or dynamic int8 (`"onnx-int8"`).

One option picks the backend for both models: `Settings.backend` / `BABELRANK_BACKEND`.

How a model gets there (once per model folder and backend; the files are cached):

1. the Hugging Face transformer inside the sentence-transformers model is exported with
   `torch.onnx.export`, dynamic batch and sequence axes (eager attention, so the graph has
   the textbook attention pattern);
2. `onnxruntime.transformers.optimizer.optimize_model(model_type="bert")` fuses attention,
   LayerNorm, GELU and the embedding layer into ONNX Runtime's fused CPU kernels;
3. for `"onnx-int8"`, `onnxruntime.quantization.quantize_dynamic` stores the weights in int8
   (activations are quantized per batch at run time).

The rest of the sentence-transformers pipeline (pooling, Dense, Normalize) runs in numpy.
The tokenizer, prompts and pipeline description are saved with the .onnx file, so a cached
model loads without torch weights. Cache folder: `Settings.cache_dir` /
`BABELRANK_CACHE_DIR`, default `~/.cache/babelrank/onnx`, one sub-folder per
`<model folder name>-<backend>-<hash of the model folder's files>`.

The adapters (`OnnxSentenceEncoder`, `OnnxCrossEncoder`) have the small part of the
`SentenceTransformer` / `CrossEncoder` interface babelrank uses (`encode`/`predict`,
`tokenizer`, `max_seq_length`, `prompts`, `get_embedding_dimension`). Batches are built from
texts sorted by token length and padded only to the longest text of the batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from babelrank.config import BACKENDS
from babelrank.errors import ConfigError

logger = logging.getLogger(__name__)

CACHE_ENV = "BABELRANK_CACHE_DIR"
FORMAT_VERSION = 1  # bump when the exported files change meaning
META_FILE = "babelrank_onnx.json"
MODEL_FILE = "model.onnx"
_OPSET = 17


class UnsupportedModel(Exception):
    """The model's pipeline has a part the ONNX backend does not reproduce (torch is used)."""


def check_backend(name: str | None) -> str:
    """The normalised backend name; `ConfigError` for an unknown one."""
    backend = (name or "torch").strip().lower()
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    return backend


def require_onnx(backend: str, export: bool) -> None:
    """A clear error when ONNX Runtime (and, to export, the onnx package) is missing."""
    import importlib.util

    missing = [m for m in (("onnxruntime", "onnx") if export else ("onnxruntime",)) if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"backend {backend!r} needs {' and '.join(missing)}: pip install 'babelrank[onnx]'")


def cpu_threads() -> int:
    """Cores this process may run on (intra-op threads of every session)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path("~/.cache/babelrank/onnx").expanduser()


def _hub_snapshot(hub_id: str) -> Path | None:
    """The local snapshot folder of a hub model, when the hub cache holds one."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(hub_id, "config.json")
    except Exception:
        return None
    return Path(found).parent if isinstance(found, str) else None


def model_hash(location: str) -> str:
    """Hash of a model folder (every file's name, size and mtime) or of a hub id's snapshot."""
    folder = Path(location)
    if not folder.is_dir():
        folder = _hub_snapshot(location) or folder
    h = hashlib.sha256(f"v{FORMAT_VERSION}\0".encode())
    if folder.is_dir():
        h.update(str(folder.resolve()).encode())
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            st = path.stat()
            h.update(f"\0{path.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    else:
        h.update(location.encode())
    return h.hexdigest()[:16]


def cache_folder(location: str, backend: str, kind: str, cache_dir: Path | str | None = None) -> Path:
    """Where the exported files of one model and backend live."""
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_root()
    base = Path(location).name or location.replace("/", "--")
    return root / f"{base}-{kind}-{backend}-{model_hash(location)}"


def make_session(path: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session: all graph optimizations, intra-op threads = cores."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or cpu_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- export


def _first_output_module(model: Any, names: Sequence[str]) -> Any:
    import torch

    class FirstOutput(torch.nn.Module):
        """Calls a HF model with positional inputs and returns its first output tensor."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(names, inputs)), return_dict=True)[0]

    return FirstOutput()


def _export(model: Any, tokenizer: Any, names: list[str], output: str, path: Path, pairs: bool) -> None:
    """torch.onnx.export of a HF encoder with dynamic batch and sequence axes."""
    import torch

    try:  # the eager attention graph is the one ONNX Runtime's fusions recognise
        model.set_attn_implementation("eager")
    except Exception:
        model.config._attn_implementation = "eager"
    model.eval()
    sample = ["A short text.", "Ще один, трохи довший приклад тексту для експорту моделі."]
    enc = tokenizer(sample, sample[::-1], padding=True, return_tensors="pt") if pairs else tokenizer(sample, padding=True, return_tensors="pt")
    inputs = tuple(enc[n] for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes[output] = {0: "batch", 1: "sequence"} if output == "last_hidden_state" else {0: "batch"}
    wrapper = _first_output_module(model, names)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about constant shapes checks: expected
        torch.onnx.export(
            wrapper, inputs, str(path), input_names=names, output_names=[output],
            dynamic_axes=axes, opset_version=_OPSET, do_constant_folding=True, dynamo=False,
        )


def _optimize_and_quantize(path: Path, config: Any, backend: str, workdir: Path) -> dict[str, Any]:
    """Fuse attention & co. (model_type="bert"), then quantize to int8 when asked; in place."""
    info: dict[str, Any] = {}
    model_type = getattr(config, "model_type", "bert")
    if model_type in {"bert", "xlm-roberta", "roberta", "distilbert", "camembert", "electra"}:
        try:
            from onnxruntime.transformers.optimizer import optimize_model

            opt = optimize_model(
                str(path), model_type="bert",
                num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
                hidden_size=int(getattr(config, "hidden_size", 0) or 0),
                opt_level=0, use_gpu=False,
            )
            fused = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
            opt.save_model_to_file(str(path))
            info["fused"] = fused
        except Exception as exc:  # fusion is a speed-up, never a requirement
            logger.warning("ONNX graph fusion failed (%s); using the unfused graph", exc)
            info["fused"] = {}
    if backend == "onnx-int8":
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        out = workdir / "model.int8.onnx"
        # fused ops (com.microsoft domain) defeat shape inference: tell the quantizer the default type
        quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        out.replace(path)
        info["quantization"] = "dynamic int8 (onnxruntime quantize_dynamic, per-channel QInt8 weights)"
    return info


def _atomic_write(target: Path, build: Callable[[Path], None]) -> None:
    """Build a cache folder in a temporary sibling and move it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:  # someone else finished first: theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _is_complete(folder: Path) -> bool:
    meta = folder / META_FILE
    if not meta.is_file() or not (folder / MODEL_FILE).is_file():
        return False
    try:
        return json.loads(meta.read_text()).get("format") == FORMAT_VERSION
    except ValueError:
        return False


# --------------------------------------------------------------------------- bi-encoder


def _describe_pipeline(st_model: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The modules after the transformer as data (numpy can run them); raises UnsupportedModel."""
    modules = list(st_model)
    if not modules or type(modules[0]).__name__ != "Transformer":
        raise UnsupportedModel("first module is not a Hugging Face transformer")
    steps: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    for i, module in enumerate(modules[1:], start=1):
        kind = type(module).__name__
        if kind == "Pooling":
            modes = module.pooling_mode
            modes = [modes] if isinstance(modes, str) else list(modes)
            steps.append({"type": "pooling", "modes": modes, "include_prompt": bool(module.include_prompt)})
        elif kind == "Dense":
            if getattr(module, "use_residual", False):
                raise UnsupportedModel("Dense with a residual connection")
            act = type(module.activation_function).__name__ if module.activation_function is not None else "Identity"
            if act not in {"Tanh", "Identity", "ReLU", "Sigmoid", "GELU"}:
                raise UnsupportedModel(f"Dense activation {act}")
            arrays[f"dense{i}_weight"] = module.linear.weight.detach().float().cpu().numpy()
            if module.linear.bias is not None:
                arrays[f"dense{i}_bias"] = module.linear.bias.detach().float().cpu().numpy()
            steps.append({"type": "dense", "name": f"dense{i}", "activation": act})
        elif kind == "Normalize":
            steps.append({"type": "normalize"})
        else:
            raise UnsupportedModel(f"module {kind}")
    if not any(s["type"] == "pooling" for s in steps):
        raise UnsupportedModel("no pooling module")
    return {"steps": steps}, arrays


def _hf_model(module: Any) -> Any:
    return getattr(module, "auto_model", None) or module.model


def export_bi_encoder(st_model: Any, folder: Path, backend: str) -> None:
    """Write `folder`: model.onnx (+ fusion, + int8), tokenizer, pipeline description."""
    import torch

    pipeline, arrays = _describe_pipeline(st_model)
    transformer = st_model[0]
    hf = _hf_model(transformer)
    tokenizer = st_model.tokenizer
    names = [n for n in tokenizer.model_input_names if n in ("input_ids", "attention_mask", "token_type_ids")]
    started = time.perf_counter()
    if next(hf.parameters()).dtype != torch.float32:
        hf = hf.float()
    _export(hf, tokenizer, names, "last_hidden_state", folder / MODEL_FILE, pairs=False)
    info = _optimize_and_quantize(folder / MODEL_FILE, hf.config, backend, folder)
    tokenizer.save_pretrained(str(folder))
    if arrays:
        np.savez(folder / "pipeline.npz", **arrays)
    getter = getattr(st_model, "get_embedding_dimension", None) or st_model.get_sentence_embedding_dimension
    meta = {
        "format": FORMAT_VERSION,
        "kind": "bi",
        "backend": backend,
        "inputs": names,
        "max_seq_length": int(st_model.max_seq_length),
        "do_lower_case": bool(getattr(transformer, "do_lower_case", False)),
        "prompts": dict(getattr(st_model, "prompts", {}) or {}),
        "default_prompt_name": getattr(st_model, "default_prompt_name", None),
        "dimension": int(getter()),
        "hidden_size": int(hf.config.hidden_size),
        "export_seconds": round(time.perf_counter() - started, 1),
        **pipeline,
        **info,
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False))


def _activation(name: str, x: np.ndarray) -> np.ndarray:
    if name == "Tanh":
        return np.tanh(x)
    if name == "ReLU":
        return np.maximum(x, 0)
    if name == "Sigmoid":
        return 1 / (1 + np.exp(-x))
    if name == "GELU":
        import torch

        return torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
    return x


def _pool(hidden: np.ndarray, mask: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """sentence-transformers Pooling over a right-padded batch, in float32."""
    m = mask.astype(np.float32)[:, :, None]
    lengths = np.maximum(m.sum(axis=1), 1e-9)
    out = []
    for mode in modes:
        if mode == "cls":
            out.append(hidden[:, 0])
        elif mode == "mean":
            out.append((hidden * m).sum(axis=1) / lengths)
        elif mode == "mean_sqrt_len_tokens":
            out.append((hidden * m).sum(axis=1) / np.sqrt(lengths))
        elif mode == "max":
            out.append(np.where(m > 0, hidden, -1e9).max(axis=1))
        elif mode == "weightedmean":
            w = np.cumsum(mask, axis=1).astype(np.float32) * mask  # positions from the first real token
            w = w[:, :, None]
            out.append((hidden * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-9))
        elif mode == "lasttoken":
            last = np.maximum(mask.sum(axis=1).astype(int) - 1, 0)
            out.append(hidden[np.arange(len(hidden)), last])
        else:  # pragma: no cover - rejected at export
            raise UnsupportedModel(f"pooling mode {mode}")
    return np.concatenate(out, axis=-1)


def _length_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar token length (longest first)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _pad(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(x) for x in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = x
        mask[row, : len(x)] = 1
    return input_ids, mask


class OnnxSentenceEncoder:
    """A `SentenceTransformer` look-alike running an exported model with ONNX Runtime."""

    def __init__(self, folder: Path, threads: int | None = None) -> None:
        from transformers import AutoTokenizer

        self.folder = Path(folder)
        self.meta = json.loads((self.folder / META_FILE).read_text())
        self.backend = self.meta["backend"]
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        self.session = make_session(self.folder / MODEL_FILE, threads)
        self.max_seq_length = int(self.meta["max_seq_length"])
        self.prompts = dict(self.meta.get("prompts") or {})
        self.default_prompt_name = self.meta.get("default_prompt_name")
        self._inputs = list(self.meta["inputs"])
        arrays = np.load(self.folder / "pipeline.npz") if (self.folder / "pipeline.npz").exists() else {}
        self._arrays = {k: np.asarray(arrays[k], dtype=np.float32) for k in (arrays.files if arrays else [])}
        self._steps = self.meta["steps"]
        self.last_over_limit = 0
        pad = self.tokenizer.pad_token_id
        self._pad_id = int(pad if pad is not None else 0)

    def get_embedding_dimension(self) -> int:
        return int(self.meta["dimension"])

    get_sentence_embedding_dimension = get_embedding_dimension

    def half(self) -> "OnnxSentenceEncoder":
        return self

    def tokenize_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, truncated to `max_seq_length`, unpadded.

        One tokenization also counts the texts over the limit (`last_over_limit`, read by
        `BiEncoder` instead of tokenizing everything a second time); only those are
        tokenized again, with truncation.
        """
        texts = [t.lower() for t in texts] if self.meta.get("do_lower_case") else list(texts)
        kwargs = {"padding": False, "return_attention_mask": False, "return_token_type_ids": False, "verbose": False}
        ids = self.tokenizer(texts, truncation=False, **kwargs)["input_ids"]
        over = [i for i, x in enumerate(ids) if len(x) > self.max_seq_length]
        if over:
            cut = self.tokenizer([texts[i] for i in over], max_length=self.max_seq_length, truncation=True, **kwargs)["input_ids"]
            for i, x in zip(over, cut):
                ids[i] = x
        self.last_over_limit = len(over)
        return ids

    def _prompt_length(self, prompt: str) -> int:
        ids = self.tokenizer([prompt.strip()], add_special_tokens=True)["input_ids"][0]
        return len(ids) - 1  # like sentence-transformers: prompt plus leading special token

    def _forward(self, ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        input_ids, mask = _pad(ids, self._pad_id)
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        hidden = self.session.run(None, {n: feed[n] for n in self._inputs})[0]
        return np.asarray(hidden, dtype=np.float32), mask

    def _post(self, hidden: np.ndarray, mask: np.ndarray, prompt_length: int) -> np.ndarray:
        x = hidden
        for step in self._steps:
            if step["type"] == "pooling":
                pool_mask = mask
                if not step["include_prompt"] and prompt_length:
                    pool_mask = mask.copy()
                    pool_mask[:, :prompt_length] = 0
                x = _pool(hidden, pool_mask, step["modes"])
            elif step["type"] == "dense":
                w = self._arrays[step["name"] + "_weight"]
                b = self._arrays.get(step["name"] + "_bias")
                x = x @ w.T + (b if b is not None else 0.0)
                x = _activation(step["activation"], x)
            elif step["type"] == "normalize":
                x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
        return x.astype(np.float32, copy=False)

    def encode(
        self,
        sentences: str | Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        normalize_embeddings: bool = False,
        **_: Any,
    ) -> Any:
        """Embed texts like `SentenceTransformer.encode` (length-sorted, per-batch padding)."""
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        if prompt is None and (prompt_name or self.default_prompt_name):
            prompt = self.prompts.get(prompt_name or self.default_prompt_name, "")
        prompt = prompt or ""
        ids = self.tokenize_ids([(prompt + t).strip() for t in texts])
        prompt_length = self._prompt_length(prompt) if prompt else 0
        out = np.zeros((len(texts), self.get_embedding_dimension()), dtype=np.float32)
        batches = _length_batches([len(x) for x in ids], max(1, batch_size))
        bar = None
        if show_progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(batches), desc="Batches")
        for batch in batches:
            hidden, mask = self._forward([ids[i] for i in batch])
            out[batch] = self._post(hidden, mask, prompt_length)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
        if convert_to_tensor:
            import torch

            tensor = torch.from_numpy(out)
            return tensor[0] if single else tensor
        return out[0] if single else out


def onnx_bi_encoder(
    location: str, backend: str, load_torch: Callable[[], Any], cache_dir: Path | str | None = None,
    threads: int | None = None,
) -> OnnxSentenceEncoder:
    """The ONNX adapter of a bi-encoder: from the cache, or exported from `load_torch()` once."""
    folder = cache_folder(location, backend, "bi", cache_dir)
    require_onnx(backend, export=not _is_complete(folder))
    if not _is_complete(folder):
        logger.warning("exporting embedding model %s to ONNX (%s) into %s; done once per model", location, backend, folder)
        st_model = load_torch()
        started = time.perf_counter()
        _atomic_write(folder, lambda tmp: export_bi_encoder(st_model, tmp, backend))
        logger.warning("ONNX export of %s (%s) finished in %.1f s", location, backend, time.perf_counter() - started)
        del st_model
    return OnnxSentenceEncoder(folder, threads)


# --------------------------------------------------------------------------- cross-encoder


def export_cross_encoder(cross: Any, folder: Path, backend: str) -> None:
    """Write `folder`: the sequence classifier as model.onnx (+ fusion, + int8) and its tokenizer."""
    import torch

    hf = cross.model
    tokenizer = cross.tokenizer
    names = [n for n in tokenizer.model_input_names if n in ("input_ids", "attention_mask", "token_type_ids")]
    started = time.perf_counter()
    if next(hf.parameters()).dtype != torch.float32:
        hf = hf.float()
    _export(hf, tokenizer, names, "logits", folder / MODEL_FILE, pairs=True)
    info = _optimize_and_quantize(folder / MODEL_FILE, hf.config, backend, folder)
    tokenizer.save_pretrained(str(folder))
    act = getattr(cross, "activation_fn", None)
    limit = getattr(cross, "max_seq_length", None) or getattr(cross, "max_length", None) or tokenizer.model_max_length
    meta = {
        "format": FORMAT_VERSION,
        "kind": "cross",
        "backend": backend,
        "inputs": names,
        "max_seq_length": int(limit) if limit and limit < 100_000 else 512,
        "num_labels": int(getattr(hf.config, "num_labels", 1)),
        "activation": type(act).__name__ if act is not None else "Identity",
        "export_seconds": round(time.perf_counter() - started, 1),
        **info,
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False))


class OnnxCrossEncoder:
    """A `CrossEncoder` look-alike running an exported classifier with ONNX Runtime."""

    def __init__(self, folder: Path, threads: int | None = None) -> None:
        from transformers import AutoTokenizer

        self.folder = Path(folder)
        self.meta = json.loads((self.folder / META_FILE).read_text())
        self.backend = self.meta["backend"]
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        self.session = make_session(self.folder / MODEL_FILE, threads)
        self.max_seq_length = int(self.meta["max_seq_length"])
        self._inputs = list(self.meta["inputs"])
        pad = self.tokenizer.pad_token_id
        self._pad_id = int(pad if pad is not None else 0)

    @property
    def max_length(self) -> int:
        return self.max_seq_length

    @max_length.setter
    def max_length(self, value: int) -> None:
        self.max_seq_length = int(value)

    def _default_activation(self, logits: np.ndarray) -> np.ndarray:
        name = self.meta.get("activation", "Identity")
        return 1 / (1 + np.exp(-logits)) if name == "Sigmoid" else logits

    def predict(
        self,
        inputs: Sequence[Sequence[str]],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Callable | None = None,
        apply_softmax: bool | None = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        **_: Any,
    ) -> Any:
        """Scores of (query, text) pairs like `CrossEncoder.predict` (length-sorted batches)."""
        single = len(inputs) == 2 and all(isinstance(x, str) for x in inputs)
        pairs = [tuple(inputs)] if single else [tuple(p) for p in inputs]
        enc = self.tokenizer(
            [p[0] for p in pairs], [p[1] for p in pairs], truncation=True, max_length=self.max_seq_length,
            padding=False, return_attention_mask=False, verbose=False,
        )
        ids = enc["input_ids"]
        types = enc.get("token_type_ids")
        logits = np.zeros((len(pairs), int(self.meta.get("num_labels", 1))), dtype=np.float32)
        for batch in _length_batches([len(x) for x in ids], max(1, batch_size)):
            input_ids, mask = _pad([ids[i] for i in batch], self._pad_id)
            feed = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                tt = np.zeros_like(input_ids)
                if types is not None:
                    for row, i in enumerate(batch):
                        tt[row, : len(types[i])] = types[i]
                feed["token_type_ids"] = tt
            logits[batch] = self.session.run(None, {n: feed[n] for n in self._inputs})[0]
        if activation_fn is not None:
            import torch

            scores = activation_fn(torch.from_numpy(logits)).detach().numpy()
        else:
            scores = self._default_activation(logits)
        if apply_softmax and scores.shape[1] > 1:
            e = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores = e / e.sum(axis=1, keepdims=True)
        if scores.shape[1] == 1:
            scores = scores[:, 0]
        if convert_to_tensor:
            import torch

            return torch.from_numpy(scores)
        return scores[0] if single else scores


def onnx_cross_encoder(
    location: str, backend: str, load_torch: Callable[[], Any], cache_dir: Path | str | None = None,
    threads: int | None = None,
) -> OnnxCrossEncoder:
    """The ONNX adapter of a cross-encoder: from the cache, or exported from `load_torch()` once."""
    folder = cache_folder(location, backend, "cross", cache_dir)
    require_onnx(backend, export=not _is_complete(folder))
    if not _is_complete(folder):
        logger.warning("exporting rerank model %s to ONNX (%s) into %s; done once per model", location, backend, folder)
        cross = load_torch()
        started = time.perf_counter()
        _atomic_write(folder, lambda tmp: export_cross_encoder(cross, tmp, backend))
        logger.warning("ONNX export of %s (%s) finished in %.1f s", location, backend, time.perf_counter() - started)
        del cross
    return OnnxCrossEncoder(folder, threads)
