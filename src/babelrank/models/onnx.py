"""Fast CPU inference backends: ONNX Runtime in fp32 (`"onnx"`) or dynamic int8 (`"onnx-int8"`).

One option picks the backend for both models: `Settings.backend` / `BABELRANK_BACKEND`;
its default, `"auto"`, is torch (fp16) on a CUDA GPU and `"onnx-int8"` on CPU
(`resolve_backend`).

How a model gets there (once per model folder and backend; the files are cached). Each step
reads the previous step's file, and the torch model is freed before step 2, so that no two
copies of the weights are held at once beyond what one step needs (peak RSS for a 12-layer,
250k-vocabulary cross-encoder exported to int8: 5.6 GB when it all stayed in memory, 3.1 GB
now; `benchmarks/export_memory.py`):

1. the Hugging Face transformer inside the sentence-transformers model is exported with
   `torch.onnx.export`, dynamic batch and sequence axes (eager attention, so the graph has
   the textbook attention pattern);
2. `onnxruntime.transformers.optimizer.optimize_model(model_type="bert")` fuses LayerNorm,
   bias+GELU and the embedding layer into ONNX Runtime's fused CPU kernels. Attention and
   residual+LayerNorm are left unfused: ONNX Runtime's fused `Attention`/`QAttention` and
   `SkipLayerNormalization` CPU kernels were slower than the plain graph (measured with a
   12-layer H384 model on 2 cores, 200-token inputs: int8 -12 %, fp32 -5 % time unfused).
   Its shape inference is off: the same fusions without it, and 0.9 GB less memory;
3. for `"onnx-int8"`, `onnxruntime.quantization.quantize_dynamic` stores the weights in int8
   (activations are quantized per batch at run time).

The rest of the sentence-transformers pipeline (pooling, Dense, Normalize) runs in numpy.
The tokenizer, prompts and pipeline description are saved with the .onnx file, so a cached
model loads without torch weights. Graphs of 1.8 GB or more keep their weights in
`model.onnx.data`. Cache folder: `Settings.cache_dir` / `BABELRANK_CACHE_DIR`, default
`~/.cache/babelrank/onnx`, one sub-folder per `<model folder name>-<kind>-<backend>-<hash>`,
the hash of the model files' names, sizes and times (or of the hub revision), not of where
they are: a cache filled on another machine is found for the same files (`model_hash`).

The adapters (`OnnxSentenceEncoder`, `OnnxCrossEncoder`) have the small part of the
`SentenceTransformer` / `CrossEncoder` interface babelrank uses (`encode`/`predict`,
`tokenizer`, `max_seq_length`, `prompts`, `get_embedding_dimension`); both share one
batching: texts sorted by token length, batches of at most `batch_size` texts and
`BATCH_TOKENS` padded tokens, each padded only to its longest text. Sessions use one intra-op
thread per available core; idle threads spin unless `Settings.onnx_spinning` is false.
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from babelrank.config import BACKENDS
from babelrank.errors import ConfigError

logger = logging.getLogger(__name__)

CACHE_ENV = "BABELRANK_CACHE_DIR"
FORMAT_VERSION = 2  # bump when the exported files change meaning
META_FILE = "babelrank_onnx.json"
MODEL_FILE = "model.onnx"
RAW_DIR = "raw"  # the unfused graph while an export is being built
# Graphs whose weights reach this many bytes keep them in `<file>.data` (protobuf's 2 GB limit).
EXTERNAL_DATA_BYTES = 1_800_000_000
_OPSET = 17
# Padded tokens per batch at most (besides `batch_size` texts): small batches keep activations
# and attention scores in the CPU caches. On 2 cores (2 MB L2 each), e5-small int8 chunks of
# ~170 tokens encoded 17-20 % faster at 1024 than unlimited, 200-token rerank pairs 17 %
# faster; 512 was no better when idle. Short texts still batch by `batch_size`.
BATCH_TOKENS = 1024


class UnsupportedModel(Exception):
    """The model's pipeline has a part the ONNX backend does not reproduce (torch is used).

    `torch_model`: the model loaded to find that out, for the caller to run instead.
    """

    def __init__(self, reason: str, torch_model: Any = None) -> None:
        super().__init__(reason)
        self.torch_model = torch_model


def check_backend(name: str | None) -> str:
    """The normalised backend name; `ConfigError` for an unknown one."""
    backend = (name or "torch").strip().lower()
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    return backend


def onnx_installed() -> bool:
    """Whether ONNX Runtime and the onnx package (to export) are importable."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def resolve_backend(name: str | None, device: str) -> str:
    """The backend a model runs on: `"auto"` is torch on a GPU (`device` other than "cpu";
    fp16 there), else `"onnx-int8"` when ONNX Runtime and onnx are installed, else torch."""
    backend = check_backend(name)
    if backend != "auto":
        return backend
    return "onnx-int8" if device == "cpu" and onnx_installed() else "torch"


def require_onnx(backend: str, export: bool) -> None:
    """A clear error when ONNX Runtime (and, to export, the onnx package) is missing."""
    import importlib.util

    missing = [m for m in (("onnxruntime", "onnx") if export else ("onnxruntime",)) if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"backend {backend!r} needs {' and '.join(missing)} (babelrank's own dependencies): "
                          f"pip install {' '.join(missing)}, or use backend 'torch'")


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
    """Hash of a model folder's files (names, sizes, modification times) or of a hub model's
    revision (its snapshot folder in the hub cache).

    The folder's own path is not part of it: an export made elsewhere (e.g. ahead of time, on
    a machine with more memory) is found for a copy of the model folder that kept its files'
    times (`rsync -a`, `cp -a`), or for the same hub revision.
    """
    h = hashlib.sha256(f"v{FORMAT_VERSION}\0".encode())
    folder = Path(location)
    snapshot = None if folder.is_dir() else _hub_snapshot(location)
    if snapshot is not None:
        h.update(f"{location}\0{snapshot.name}".encode())
    elif folder.is_dir():
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            st = path.stat()
            h.update(f"\0{path.relative_to(folder).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    else:
        h.update(location.encode())
    return h.hexdigest()[:16]


def cache_folder(location: str, backend: str, kind: str, cache_dir: Path | str | None = None) -> Path:
    """Where the exported files of one model and backend live."""
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_root()
    base = Path(location).name or location.replace("/", "--")
    return root / f"{base}-{kind}-{backend}-{model_hash(location)}"


def make_session(path: Path, threads: int | None = None, spinning: bool = True) -> Any:
    """An ONNX Runtime CPU session: all graph optimizations, intra-op threads = cores.

    `spinning`: idle worker threads spin (ONNX Runtime's default) rather than sleep. Spinning
    saves the wake-up between the many small parallel sections of a transformer (measured on
    2 quiet cores: rerank 8-16 %, encoding 13 % less time) but takes cycles from other busy
    processes on the same cores (beside one CPU-bound process: rerank +44 % time).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or cpu_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
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


def _release_memory() -> None:
    """Collect garbage and give freed heap pages back to the OS (glibc keeps them otherwise)."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _dir_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def _fuse(raw: Path, out: Path, shape: dict[str, Any], external: bool) -> dict[str, int]:
    """Fuse LayerNorm, bias+GELU and embeddings (not attention) of `raw` into `out`; the
    fused operator counts. Fusion is a speed-up, never a requirement: on failure `out` is
    the unfused graph."""
    if shape["model_type"] in {"bert", "xlm-roberta", "roberta", "distilbert", "camembert", "electra"}:
        try:
            from onnxruntime.transformers.fusion_options import FusionOptions
            from onnxruntime.transformers.optimizer import optimize_model

            fusions = FusionOptions("bert")
            fusions.enable_attention = False  # slower fused on CPU: see the module docstring
            fusions.enable_skip_layer_norm = False
            fusions.enable_shape_inference = False  # 0.9 GB more for 250k-vocabulary models, same fusions
            opt = optimize_model(
                str(raw), model_type="bert", num_heads=shape["num_heads"], hidden_size=shape["hidden_size"],
                opt_level=0, use_gpu=False, optimization_options=fusions,
            )
            opt.save_model_to_file(str(out), use_external_data_format=external)
            return {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
        except Exception as exc:
            logger.warning("ONNX graph fusion failed (%s); using the unfused graph", exc)
    import onnx

    onnx.save(onnx.load(str(raw)), str(out), save_as_external_data=external, location=out.name + ".data")
    return {}


def _optimize_and_quantize(raw: Path, shape: dict[str, Any], backend: str, folder: Path) -> dict[str, Any]:
    """Turn the raw graph into `folder/model.onnx`: fused, then (`"onnx-int8"`) quantized.

    Each step reads the previous step's file and memory is released in between, so that no
    two copies of the weights are held at once beyond what one step needs.
    """
    size = _dir_bytes(raw.parent)
    target = folder / MODEL_FILE
    fused = raw.with_name("fused.onnx") if backend == "onnx-int8" else target
    info: dict[str, Any] = {"fused": _fuse(raw, fused, shape, size >= EXTERNAL_DATA_BYTES)}
    _release_memory()
    if backend == "onnx-int8":
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # fused ops (com.microsoft domain) defeat shape inference: tell the quantizer the default type
        quantize_dynamic(str(fused), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         use_external_data_format=size // 4 >= EXTERNAL_DATA_BYTES,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        info["quantization"] = "dynamic int8 (onnxruntime quantize_dynamic, per-channel QInt8 weights)"
        _release_memory()
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


def _export_transformer(hf: Any, tokenizer: Any, folder: Path, output: str, pairs: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Export a HF encoder's raw graph into `folder/raw/` and its tokenizer into `folder`.

    Returns the metadata both kinds share and the graph's shape (for the fusion step).
    """
    import torch

    names = [n for n in tokenizer.model_input_names if n in ("input_ids", "attention_mask", "token_type_ids")]
    if next(hf.parameters()).dtype != torch.float32:
        hf = hf.float()
    (folder / RAW_DIR).mkdir()
    _export(hf, tokenizer, names, output, folder / RAW_DIR / MODEL_FILE, pairs=pairs)
    tokenizer.save_pretrained(str(folder))
    config = hf.config
    shape = {"model_type": getattr(config, "model_type", "bert"),
             "num_heads": int(getattr(config, "num_attention_heads", 0) or 0),
             "hidden_size": int(getattr(config, "hidden_size", 0) or 0)}
    return {"format": FORMAT_VERSION, "inputs": names}, shape


def export_bi_encoder(st_model: Any, folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The torch part of an export: raw graph, tokenizer and pipeline arrays into `folder`;
    returns the metadata and the graph's shape. Raises `UnsupportedModel`."""
    pipeline, arrays = _describe_pipeline(st_model)
    transformer = st_model[0]
    hf = _hf_model(transformer)
    common, shape = _export_transformer(hf, st_model.tokenizer, folder, "last_hidden_state", pairs=False)
    if arrays:
        np.savez(folder / "pipeline.npz", **arrays)
    getter = getattr(st_model, "get_embedding_dimension", None) or st_model.get_sentence_embedding_dimension
    meta = {
        **common,
        "kind": "bi",
        "max_seq_length": int(st_model.max_seq_length),
        "do_lower_case": bool(getattr(transformer, "do_lower_case", False)),
        "prompts": dict(getattr(st_model, "prompts", {}) or {}),
        "default_prompt_name": getattr(st_model, "default_prompt_name", None),
        "dimension": int(getter()),
        "hidden_size": int(hf.config.hidden_size),
        **pipeline,
    }
    return meta, shape


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


def _length_batches(lengths: Sequence[int], batch_size: int, max_tokens: int = 0) -> list[np.ndarray]:
    """Indices grouped into batches of similar token length, longest first.

    A batch holds at most `batch_size` texts and, when `max_tokens` is set, at most that many
    tokens once padded (but at least one text).
    """
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches, i = [], 0
    while i < len(order):
        width = max(1, int(lengths[order[i]]))
        size = min(batch_size, max(1, max_tokens // width)) if max_tokens else batch_size
        batches.append(order[i : i + size])
        i += size
    return batches


def _pad(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(x) for x in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = x
        mask[row, : len(x)] = 1
    return input_ids, mask


class _OnnxModel:
    """What both adapters share: the exported files, tokenizer, session and the batching.

    Texts are tokenized once, sorted by token length and run in batches padded only to the
    longest text of the batch; results are put back in input order.
    """

    def __init__(self, folder: Path, threads: int | None = None, spinning: bool = True) -> None:
        from transformers import AutoTokenizer

        self.folder = Path(folder)
        self.meta = json.loads((self.folder / META_FILE).read_text())
        self.backend = self.meta["backend"]
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        self.session = make_session(self.folder / MODEL_FILE, threads, spinning)
        self.max_seq_length = int(self.meta["max_seq_length"])
        self.last_over_limit = 0
        self._inputs = list(self.meta["inputs"])
        pad = self.tokenizer.pad_token_id
        self._pad_id = int(pad if pad is not None else 0)

    def _tokenize(self, texts: Sequence[str], seconds: Sequence[str] | None = None) -> tuple[list[list[int]], list[list[int]] | None]:
        """Token ids (and token type ids, when the model takes them) of texts or text pairs.

        Cut to `max_seq_length` like the torch model (pairs: longest first). One tokenization
        also counts the inputs over the limit (`last_over_limit`, read by the model wrappers
        instead of tokenizing everything a second time); only those are tokenized again, cut.
        """
        kwargs = {"padding": False, "return_attention_mask": False, "verbose": False,
                  "return_token_type_ids": "token_type_ids" in self._inputs}
        columns = [list(texts)] if seconds is None else [list(texts), list(seconds)]
        enc = self.tokenizer(*columns, truncation=False, **kwargs)
        ids, types = enc["input_ids"], enc.get("token_type_ids")
        over = [i for i, x in enumerate(ids) if len(x) > self.max_seq_length]
        if over:
            cut = self.tokenizer(*[[c[i] for i in over] for c in columns], truncation=True, max_length=self.max_seq_length, **kwargs)
            for j, i in enumerate(over):
                ids[i] = cut["input_ids"][j]
                if types is not None:
                    types[i] = cut["token_type_ids"][j]
        self.last_over_limit = len(over)
        return ids, types

    @staticmethod
    def _plan(ids: Sequence[Sequence[int]], batch_size: int) -> list[np.ndarray]:
        """Rows of each batch: similar lengths, longest first, at most `BATCH_TOKENS` padded tokens."""
        return _length_batches([len(x) for x in ids], max(1, batch_size), BATCH_TOKENS)

    def _run(
        self, ids: Sequence[Sequence[int]], types: Sequence[Sequence[int]] | None, plan: Sequence[np.ndarray]
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """`(rows, first output, attention mask)` per batch of the plan."""
        for rows in plan:
            input_ids, mask = _pad([ids[i] for i in rows], self._pad_id)
            feed = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = _pad([types[i] for i in rows], 0)[0] if types is not None else np.zeros_like(input_ids)
            out = self.session.run(None, {n: feed[n] for n in self._inputs})[0]
            yield rows, np.asarray(out, dtype=np.float32), mask


class OnnxSentenceEncoder(_OnnxModel):
    """A `SentenceTransformer` look-alike running an exported model with ONNX Runtime."""

    def __init__(self, folder: Path, threads: int | None = None, spinning: bool = True) -> None:
        super().__init__(folder, threads, spinning)
        self.prompts = dict(self.meta.get("prompts") or {})
        self.default_prompt_name = self.meta.get("default_prompt_name")
        arrays = np.load(self.folder / "pipeline.npz") if (self.folder / "pipeline.npz").exists() else {}
        self._arrays = {k: np.asarray(arrays[k], dtype=np.float32) for k in (arrays.files if arrays else [])}
        self._steps = self.meta["steps"]

    def get_embedding_dimension(self) -> int:
        return int(self.meta["dimension"])

    get_sentence_embedding_dimension = get_embedding_dimension

    def half(self) -> "OnnxSentenceEncoder":
        return self

    def _prompt_length(self, prompt: str) -> int:
        ids = self.tokenizer([prompt.strip()], add_special_tokens=True)["input_ids"][0]
        return len(ids) - 1  # like sentence-transformers: prompt plus leading special token

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
        texts: list[str] = [sentences] if single else list(sentences)
        if prompt is None and (prompt_name or self.default_prompt_name):
            prompt = self.prompts.get(prompt_name or self.default_prompt_name, "")
        prompt = prompt or ""
        full = [(prompt + t).strip() for t in texts]
        ids, _ = self._tokenize([t.lower() for t in full] if self.meta.get("do_lower_case") else full)
        prompt_length = self._prompt_length(prompt) if prompt else 0
        out = np.zeros((len(texts), self.get_embedding_dimension()), dtype=np.float32)
        plan = self._plan(ids, batch_size)
        batches = self._run(ids, None, plan)
        if show_progress_bar:
            from tqdm.auto import tqdm

            batches = tqdm(batches, total=len(plan), desc="Batches")
        for rows, hidden, mask in batches:
            out[rows] = self._post(hidden, mask, prompt_length)
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
        if convert_to_tensor:
            import torch

            tensor = torch.from_numpy(out)
            return tensor[0] if single else tensor
        return out[0] if single else out


# --------------------------------------------------------------------------- cross-encoder


def export_cross_encoder(cross: Any, folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The torch part of an export: the sequence classifier's raw graph and its tokenizer into
    `folder`; returns the metadata and the graph's shape."""
    hf, tokenizer = cross.model, cross.tokenizer
    common, shape = _export_transformer(hf, tokenizer, folder, "logits", pairs=True)
    act = getattr(cross, "activation_fn", None)
    limit = getattr(cross, "max_seq_length", None) or getattr(cross, "max_length", None) or tokenizer.model_max_length
    meta = {
        **common,
        "kind": "cross",
        "max_seq_length": int(limit) if limit and limit < 100_000 else 512,
        "num_labels": int(getattr(hf.config, "num_labels", 1)),
        "activation": type(act).__name__ if act is not None else "Identity",
    }
    return meta, shape


class OnnxCrossEncoder(_OnnxModel):
    """A `CrossEncoder` look-alike running an exported classifier with ONNX Runtime."""

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
        ids, types = self._tokenize([p[0] for p in pairs], [p[1] for p in pairs])
        logits = np.zeros((len(pairs), int(self.meta.get("num_labels", 1))), dtype=np.float32)
        for rows, out, _ in self._run(ids, types, self._plan(ids, batch_size)):
            logits[rows] = out
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


def _torch_stage(kind: str, load_torch: Callable[[], Any], folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load the torch model and export its raw graph; the model is freed on return."""
    model = load_torch()
    try:
        return (export_bi_encoder if kind == "bi" else export_cross_encoder)(model, folder)
    except UnsupportedModel as exc:
        exc.torch_model = model
        raise


def _build(kind: str, load_torch: Callable[[], Any], backend: str, folder: Path) -> None:
    """Export one model into `folder` in steps: torch graph, fusion, int8 (see `_optimize_and_quantize`)."""
    started = time.perf_counter()
    meta, shape = _torch_stage(kind, load_torch, folder)
    _release_memory()
    logger.info("ONNX export: graph written in %.1f s; fusing%s", time.perf_counter() - started,
                " and quantizing" if backend == "onnx-int8" else "")
    meta.update(backend=backend, **_optimize_and_quantize(folder / RAW_DIR / MODEL_FILE, shape, backend, folder))
    shutil.rmtree(folder / RAW_DIR)
    meta["export_seconds"] = round(time.perf_counter() - started, 1)
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False))


def ensure_exported(
    kind: str, location: str, backend: str, load_torch: Callable[[], Any], cache_dir: Path | str | None = None
) -> Path:
    """The cache folder of a model's ONNX export, exported now from `load_torch()` when missing.

    `kind`: "bi" or "cross". The export runs once per model folder (or hub revision) and
    backend; the torch model is freed before the graph is fused and quantized.
    """
    folder = cache_folder(location, backend, kind, cache_dir)
    require_onnx(backend, export=not _is_complete(folder))
    if _is_complete(folder):
        return folder

    def load_and_announce() -> Any:
        model = load_torch()  # first: a model that cannot be loaded is not announced
        logger.warning("exporting %s model %s to ONNX (%s) into %s; done once per model, takes a while",
                       "embedding" if kind == "bi" else "rerank", location, backend, folder)
        return model

    started = time.perf_counter()
    _atomic_write(folder, lambda tmp: _build(kind, load_and_announce, backend, tmp))
    logger.warning("ONNX export of %s (%s) finished in %.1f s", location, backend, time.perf_counter() - started)
    return folder


def onnx_model(
    kind: str, location: str, backend: str, load_torch: Callable[[], Any], cache_dir: Path | str | None = None,
    threads: int | None = None, spinning: bool = True,
) -> OnnxSentenceEncoder | OnnxCrossEncoder:
    """The ONNX adapter of a bi-encoder (`kind="bi"`) or cross-encoder (`"cross"`), read from
    the cache or exported once (`ensure_exported`)."""
    folder = ensure_exported(kind, location, backend, load_torch, cache_dir)
    return (OnnxSentenceEncoder if kind == "bi" else OnnxCrossEncoder)(folder, threads, spinning)
