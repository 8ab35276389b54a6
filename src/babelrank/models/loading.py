"""What loading any model shares: one load at a time, quietly, offline-friendly, on the right backend.

`load_model` opens a sentence-transformers class from a folder or the model hub with one clear
`ModelNotFoundError` for every way that fails; `on_backend` puts a model on torch or ONNX
(exported once into a cache), falling back to torch where "auto" asked and ONNX cannot.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import urllib.parse
from pathlib import Path
from typing import Any, Callable

from babelrank.errors import BabelrankError, ConfigError, ModelNotFoundError
from babelrank.models.presets import Preset, resolve_model

logger = logging.getLogger(__name__)


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
# process-wide on purpose: loading two models at once only competes for memory and cores


@contextlib.contextmanager
def quiet_loading() -> Any:
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


def load_model(
    cls: type, name: str, model_dir: Path | None, kind: str, trust_remote_code: bool = False, **kwargs: Any
) -> tuple[Any, str, Preset | None]:
    location, preset = resolve_model(name, model_dir)
    if preset is not None and preset.trust_remote_code and not trust_remote_code:
        raise _remote_code_refused(kind, name)
    local = Path(location).is_dir()
    if not local and not _hub_offline() and not _hub_reachable():
        raise _not_found(name, location, model_dir, kind, ConnectionError("the model hub is unreachable"))
    try:
        with quiet_loading():
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


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}


def backend_and_device(backend: str, device: str) -> tuple[str, str, str]:
    """(backend asked for, backend to run, device): ONNX backends run on the CPU."""
    from babelrank.models.onnx import check_backend, resolve_backend

    asked = check_backend(backend)
    dev = pick_device(device)
    run = resolve_backend(asked, dev)
    return asked, run, dev if run == "torch" else "cpu"


def on_backend(
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
