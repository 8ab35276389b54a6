"""babelrank's settings and where they come from.

`Settings` configures the index (models, store, query defaults); `ServerSettings` the HTTP
layer. Each value is resolved in one order everywhere (`resolve_settings`,
`resolve_server_settings`):

    given values (command-line flags) > ``BABELRANK_*`` environment variables
    > a config file (``BABELRANK_CONFIG`` or an explicit path; TOML or JSON) > defaults

Also here: the ``auto``/``on``/``off`` per-query switch (`MODES`, `mode_flag`) and the one
serialised object that hands a server's settings to its worker processes (`dump_serve_config`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Mapping, get_args, get_origin, get_type_hints

from babelrank.errors import ConfigError

VERSION = "0.1.0"
"""The package version (also in pyproject.toml; `babelrank.__version__`)."""

ENV_PREFIX = "BABELRANK_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
"""The variable naming a config file (an explicit path, e.g. ``--config``, wins over it)."""

NeutralMode = Literal["auto", "on", "off"]
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
NO_RERANKER = frozenset({"none", "off", ""})
"""Values of `rerank_model` that switch rerank off."""
DedupMode = Literal["auto", "on", "off"]

DEFAULT_MIN_RELEVANCE = 0.5
"""Results whose relevance is below it are dropped, and a search with none at or above it is
not answerable. 0.5 is "more likely relevant than not" under the relevance calibration's even
prior odds (`babelrank.query.relevance`); it is not fitted to any labelled set."""

DEFAULT_NO_ANSWER = "The collection holds no answer to this question."
"""The query engine's answer when no result passes `min_relevance` (the LLM is not called)."""

# Bounds of one query's options, shared by the HTTP API's request model and the CLI's flags (least: 1).
TOP_K_MAX = 1000
"""Most candidates one query may fetch from the vector store (``k``/``top_k``, ``-k``)."""
TOP_N_MAX = 200
"""Most results one query may return (``top_n``, ``-n``)."""


class DefaultModel(str):
    """The default `Settings.embed_model`, marked as not chosen by anyone.

    It reads as the model name it holds everywhere; only `Settings.embed_model_given` tells it
    apart, so that a collection that remembers another model (after ``babelrank reindex``,
    see `babelrank.store.aliases`) opens with that one instead of failing on the default.
    """


DEFAULT_EMBED_MODEL = DefaultModel("e5-small")


@dataclass(frozen=True)
class Settings:
    """Everything babelrank can be configured with.

    Every field can be set by keyword, or by an environment variable named
    `BABELRANK_<FIELD>` (e.g. `BABELRANK_EMBED_MODEL`); keywords win over the environment.

    Attributes:
        embed_model: bi-encoder, as a preset name (see `babelrank.models.presets.PRESETS`), a model
            hub id, or a local folder. Unset (`DEFAULT_EMBED_MODEL`, e5-small), a collection
            reindexed to another model (``babelrank reindex``) opens with that model.
        rerank_model: cross-encoder (preset, hub id or folder); `"none"` switches rerank off;
            `"auto"` uses the default cross-encoder when it can be loaded and otherwise
            retrieves without rerank (with a warning).
        model_dir: folder of local models for offline use; a model named by hub id is looked
            up there (as `<dir>/<org>/<name>`, `<dir>/<name>` or `<dir>/<name>-<variant>`)
            before any hub is asked.
        store_path: folder of the embedded Chroma store (ignored when `chroma_host` is set).
        chroma_host, chroma_port: a Chroma server (`chroma run`) to use instead.
        collection: Chroma collection name.
        top_k: candidates fetched from Chroma per query.
        top_n: results returned after rerank.
        chunk_tokens: chunk size in tokens of the bi-encoder's tokenizer; None = the largest
            that fits the model (`max_seq_length` minus prompt and special tokens), capped at 256.
        chunk_overlap: overlap between consecutive chunks, in tokens (at most a quarter of a chunk).
        max_file_mb: files read from disk that are larger than this (MB of file) are skipped
            with that reason instead of ingested; None = no limit.
        embed_batch_size, rerank_batch_size: batch sizes of the two models.
        rerank_max_length: token limit of a (query, chunk) pair for the cross-encoder;
            None = the model's own limit.
        rerank_candidates: rerank at most this many of the `top_k` candidates (those with the
            best first-stage scores; the others are dropped); None = all. Rerank time is
            proportional to it.
        rerank_margin: rerank only candidates whose first-stage score is within this much of
            the best one (at least `top_n` of them); None = no such cut.
        device: "auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:1", "mps".
        backend: inference backend of both models: "auto" (torch in fp16 where a CUDA GPU is
            the device, else "onnx-int8" when ONNX Runtime is installed, else torch), "torch",
            "onnx" (ONNX Runtime fp32 with fused LayerNorm/GELU kernels) or "onnx-int8" (plus
            dynamic int8 weights; fastest on CPU). The ONNX backends run on CPU and export each
            model once into `cache_dir` (the embedding model when the index opens; the rerank
            model with `babelrank.models.cross_encoder.prepare_cross_encoder`, else at its first use).
        cache_dir: where exported ONNX models are cached; None = `~/.cache/babelrank/onnx`.
        trust_remote_code: let models that ship their own Python code run it (transformers'
            `trust_remote_code`; e.g. the `jina-reranker-v2` and `gte-reranker` presets need
            it). Off: such a model is refused with a message naming this setting.
        onnx_spinning: ONNX Runtime's worker threads spin while they wait for work (its own
            default; torch's threads do the same). Faster on cores babelrank has to itself
            (measured on 2 cores: rerank -8 to -16 %, encoding -13 % time), slower on cores
            shared with other busy processes (+44 % rerank time beside one CPU-bound
            process): set it false there.
        expected_languages: ISO 639-1 codes the collection holds (empty = any language);
            language detection only answers one of these (or "und").
        language_backend: language detector backend (see `babelrank.models.language.make_detector`).
        neutral: language-neutral scoring: "auto" (on when the collection holds more than
            one language), "on" or "off".
        neutral_scan_mb: neutral search scores every chunk exactly from an in-memory copy of
            the collection's vectors when they fit in this many MB (float32; 32 MB = 21k
            chunks of 384 dimensions, where a scan costs about what Chroma's over-fetch
            costs on 2 cores), else it over-fetches from Chroma; 0 = always Chroma.
        dedup: translation-aware results: collapse results that are translations or near
            duplicates of each other into one, keeping the query-language version and listing
            the others in its `alternates` metadata (see `babelrank.query.dedup`). "auto" (on when
            the collection holds more than one language and the threshold is known for the
            model), "on" or "off". Collections under 20 chunks are never deduplicated.
        dedup_threshold: centred cosine (stored passage vectors minus their language's
            centroid in the collection) at or above which two results are merged; None = the
            default calibrated for the embedding model (`babelrank.query.dedup.DEFAULT_THRESHOLDS`,
            0.61 for multilingual-e5-small); measure your own with
            `benchmarks/dedup_threshold.py --model PATH --data TATOEBA_DIR`.
        min_score: drop results whose final score is below this.
        min_relevance: drop results whose `relevance` (the calibrated probability that the
            chunk is relevant, `babelrank.query.relevance`) is below this, before rerank; a
            search with none left returns no results and `answerable: false`. None (``none``)
            keeps every result; `answerable` then uses `DEFAULT_MIN_RELEVANCE`.
        no_answer_message: what the llama-index query engine answers, without calling the
            LLM, when no result is left.
        progress: progress bars; None = only when stderr is a terminal.
    """

    embed_model: str = DEFAULT_EMBED_MODEL
    rerank_model: str = "auto"
    model_dir: Path | None = None
    store_path: Path = Path(".babelrank/chroma")
    chroma_host: str | None = None
    chroma_port: int = 8000
    collection: str = "babelrank"
    top_k: int = 50
    top_n: int = 5
    chunk_tokens: int | None = None
    chunk_overlap: int = 32
    max_file_mb: float | None = 100.0
    embed_batch_size: int = 32
    rerank_batch_size: int = 16
    rerank_max_length: int | None = None
    rerank_candidates: int | None = None
    rerank_margin: float | None = None
    device: str = "auto"
    backend: str = "auto"
    cache_dir: Path | None = None
    trust_remote_code: bool = False
    onnx_spinning: bool = True
    expected_languages: tuple[str, ...] = field(default_factory=tuple)
    language_backend: str = "auto"
    neutral: NeutralMode = "auto"
    neutral_scan_mb: int = 32
    dedup: DedupMode = "auto"
    dedup_threshold: float | None = None
    min_score: float | None = None
    min_relevance: float | None = DEFAULT_MIN_RELEVANCE
    no_answer_message: str = DEFAULT_NO_ANSWER
    progress: bool | None = None

    def __post_init__(self) -> None:
        for name in ("top_k", "top_n", "embed_batch_size", "rerank_batch_size", "chroma_port"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name, most in (("top_k", TOP_K_MAX), ("top_n", TOP_N_MAX)):
            if getattr(self, name) > most:
                raise ConfigError(f"{name} must be at most {most} (the per-query limit), got {getattr(self, name)}")
        if self.rerank_candidates is not None and self.rerank_candidates < 1:
            raise ConfigError(f"rerank_candidates must be >= 1, got {self.rerank_candidates}")
        if self.rerank_margin is not None and self.rerank_margin < 0:
            raise ConfigError(f"rerank_margin must be >= 0, got {self.rerank_margin}")
        if self.chunk_tokens is not None and self.chunk_tokens < 8:
            raise ConfigError(f"chunk_tokens must be >= 8, got {self.chunk_tokens}")
        if self.chunk_overlap < 0:
            raise ConfigError(f"chunk_overlap must be >= 0, got {self.chunk_overlap}")
        if self.max_file_mb is not None and not self.max_file_mb > 0:
            raise ConfigError(f"max_file_mb must be > 0 (or none: no limit), got {self.max_file_mb}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.neutral not in get_args(NeutralMode):
            raise ConfigError(f"neutral must be one of auto/on/off, got {self.neutral!r}")
        if self.neutral_scan_mb < 0:
            raise ConfigError(f"neutral_scan_mb must be >= 0, got {self.neutral_scan_mb}")
        if self.dedup not in get_args(DedupMode):
            raise ConfigError(f"dedup must be one of auto/on/off, got {self.dedup!r}")
        if self.dedup_threshold is not None and not -1.0 <= self.dedup_threshold <= 1.0:
            raise ConfigError(f"dedup_threshold is a cosine in [-1, 1], got {self.dedup_threshold}")
        if not self.collection.strip():
            raise ConfigError("collection name must not be empty")
        if self.min_relevance is not None and not 0.0 <= self.min_relevance <= 1.0:
            raise ConfigError(f"min_relevance is a probability in [0, 1] (or none), got {self.min_relevance}")

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> "Settings":
        """Build settings from `BABELRANK_*` variables, then apply keyword overrides."""
        return cls(**_values_from_env(cls, env, overrides, "setting"))

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some fields changed (values are coerced like `from_env` overrides)."""
        hints = get_type_hints(type(self))
        return dataclasses.replace(
            self, **{k: coerce_setting(k, v, hints[k]) if v is not None else v for k, v in changes.items()}
        )

    @property
    def embed_model_given(self) -> bool:
        """Whether `embed_model` was set (keyword, flag, environment, config file), not left at its default."""
        return not isinstance(self.embed_model, DefaultModel)

    def bi_encoder_options(self) -> dict[str, Any]:
        """Keyword arguments of `babelrank.models.bi_encoder.load_bi_encoder` (and of
        `load_cross_encoder`) besides the model name: where models are found and how they run.

        Returns:
            ``model_dir``, ``device``, ``backend``, ``cache_dir``, ``onnx_spinning`` and
            ``trust_remote_code``.
        """
        return {"model_dir": self.model_dir, "device": self.device, "backend": self.backend,
                "cache_dir": self.cache_dir, "onnx_spinning": self.onnx_spinning,
                "trust_remote_code": self.trust_remote_code}

    def cross_encoder_options(self) -> dict[str, Any]:
        """Keyword arguments of `babelrank.query.rerank.CrossEncoderReranker` besides the model name.

        Returns:
            `bi_encoder_options` plus ``top_n``, ``batch_size`` (`rerank_batch_size`),
            ``max_length`` (`rerank_max_length`), ``candidates`` (`rerank_candidates`) and
            ``margin`` (`rerank_margin`).
        """
        return {**self.bi_encoder_options(), "top_n": self.top_n, "batch_size": self.rerank_batch_size,
                "max_length": self.rerank_max_length, "candidates": self.rerank_candidates,
                "margin": self.rerank_margin}


def _base_type(tp: Any) -> Any:
    args = [a for a in get_args(tp) if a is not type(None)]
    if get_origin(tp) is Literal:
        return str
    if args and get_origin(tp) is not tuple:
        return _base_type(args[0])
    return tp


def parse_setting(name: str, raw: str, tp: Any) -> Any:
    """The value of setting `name` (type `tp`) from its ``BABELRANK_*`` text: 1/0, true/false, a, b, none."""
    base = _base_type(tp)
    if get_origin(base) is tuple or base is tuple:
        return tuple(x.strip() for x in raw.split(",") if x.strip())
    if base is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a boolean (use 1/0, true/false)")
    return coerce_setting(name, raw, tp)


def coerce_setting(name: str, value: Any, tp: Any) -> Any:
    """A keyword or config-file value of setting `name` as type `tp` (ConfigError when it cannot be);
    ``"none"`` is None for a number that may be None."""
    base = _base_type(tp)
    if isinstance(value, str) and value.strip().lower() == "none" and base in (int, float) and type(None) in get_args(tp):
        return None
    try:
        if get_origin(base) is tuple or base is tuple:
            if isinstance(value, str):
                return tuple(x.strip() for x in value.split(",") if x.strip())
            return tuple(value)
        if base is Path:
            return Path(value).expanduser()
        if base in (int, float) and isinstance(value, bool):
            raise TypeError
        if base in (int, float, str, bool):
            return base(value) if not isinstance(value, base) else value
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name!r}: cannot use {value!r} as {base.__name__}") from None
    return value


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Names a server always answers to (`ServerSettings.allowed_hosts` adds others)."""

SERVE_CONFIG_ENV = ENV_PREFIX + "SERVE_CONFIG"  # `dump_serve_config`, handed to the server process(es)


@dataclass(frozen=True)
class ServerSettings:
    """Settings of the HTTP layer only (the index is configured by `Settings`).

    Each can also be set by ``BABELRANK_<NAME>`` (e.g. ``BABELRANK_ALLOWED_ORIGINS``; lists are
    comma-separated; an empty variable counts as unset); keywords win.

    Attributes:
        api_token: when set, every endpoint except ``/health`` needs ``Authorization: Bearer <token>``.
            A blank token is refused (`ConfigError`) rather than read as "no token".
        max_body_bytes: largest request body accepted; larger ones get 413 (default 10 MiB).
        max_query_chars: longest query accepted; longer ones get 422 (default 2000).
        allowed_hosts: without a token, the names the server answers to besides the loopback
            names (``localhost``, ``127.0.0.1``, ``::1``) and the address a request arrived at
            (``babelrank serve --host NAME`` adds NAME); a request whose ``Host`` header names
            another gets 403, so a web page whose own name was made to resolve to this server
            (DNS rebinding) cannot use it. ``*`` = any name. Not checked when a token is set.
        allowed_origins: web origins (``https://app.example``) whose pages may call the API from
            a browser; ``*`` = any. A request whose ``Origin`` header names another origin than
            the server's own gets 403, token or not; requests without one (curl, programs) pass.
        expose_paths: show server file paths in answers (the store and model folders in
            ``/v1/collections``; the folders of files ingested on the server in results' ``source``,
            ``doc_id`` and chunk ids, which then show the file name only); None (default) = only
            when no token is set.
        ingest_slice_chars: an ingest request's documents go to the write thread in slices of
            about this many characters (a longer document alone), and a delete that arrives
            meanwhile runs between two slices instead of after the whole request (default
            20 000: some 20-25 chunks of 256 tokens). Queries have their own thread.
    """

    api_token: str | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    max_query_chars: int = 2000
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    expose_paths: bool | None = None
    ingest_slice_chars: int = 20_000

    def __post_init__(self) -> None:
        if self.api_token is not None and not self.api_token.strip():
            raise ConfigError(f"api_token ({ENV_PREFIX}API_TOKEN) is blank: set a real token "
                              "(e.g. `openssl rand -hex 32`), or unset it to serve without authentication")
        for name in ("max_body_bytes", "max_query_chars", "ingest_slice_chars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for origin in self.allowed_origins:
            if origin != "*" and "://" not in origin:
                raise ConfigError(f"allowed_origins: {origin!r} is not a web origin; write scheme://host[:port], "
                                  "e.g. https://app.example")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "ServerSettings":
        """Read the ``BABELRANK_<NAME>`` variables of these settings; keywords win."""
        return cls(**_values_from_env(cls, env, overrides, "server setting"))

    @property
    def shows_paths(self) -> bool:
        """Whether answers show server file paths (`expose_paths`, by default only without a token)."""
        return self.expose_paths if self.expose_paths is not None else self.api_token is None

def _values_from_env(cls: type, env: Mapping[str, str] | None, overrides: Mapping[str, Any], what: str) -> dict[str, Any]:
    """The field values of settings class `cls`: its non-empty ``BABELRANK_<NAME>`` variables
    (parsed), then the non-None `overrides` (coerced); an unknown override is a `ConfigError`."""
    env = os.environ if env is None else env
    hints = get_type_hints(cls)
    values = {f.name: parse_setting(f.name, raw, hints[f.name]) for f in fields(cls) if (raw := env.get(ENV_PREFIX + f.name.upper()))}
    for name, value in overrides.items():
        if name not in hints:
            raise ConfigError(f"unknown {what} {name!r}; known: {', '.join(sorted(hints))}")
        if value is not None:
            values[name] = coerce_setting(name, value, hints[name])
    return values


def dump_serve_config(settings: Settings, server: ServerSettings) -> str:
    """Both settings of a server as one JSON object, for its worker processes (`load_serve_config`)."""
    def plain(obj: Any) -> dict[str, Any]:
        return {f.name: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
                for f in dataclasses.fields(obj)
                if (v := getattr(obj, f.name)) is not None and not isinstance(v, DefaultModel)}  # unset stays unset

    return json.dumps({"settings": plain(settings), "server": plain(server)})


def load_serve_config(raw: str) -> tuple[Settings, ServerSettings]:
    """The settings written by `dump_serve_config` (the environment is not read)."""
    data = json.loads(raw)
    return Settings.from_env(env={}, **data["settings"]), ServerSettings.from_env(env={}, **data["server"])


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON config file of settings.

    Keys are `Settings` and `ServerSettings` field names; dashes are accepted (``embed-model``).
    A file holding a single ``[babelrank]`` table is read from that table. A file named neither
    ``.toml`` nor ``.json`` is read as JSON, else as TOML.

    Args:
        path: the file.

    Returns:
        The values by field name, as written (not yet coerced).

    Raises:
        ConfigError: the file is missing, malformed, not a table, or names an unknown setting.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    raw = path.read_bytes()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = _parse_toml(raw, path)
        elif suffix == ".json":
            data = json.loads(raw.decode("utf-8"))
        else:
            try:
                data = json.loads(raw.decode("utf-8"))
            except ValueError:
                data = _parse_toml(raw, path)
    except ConfigError:
        raise
    except ValueError as exc:  # JSONDecodeError, TOMLDecodeError, UnicodeDecodeError
        raise ConfigError(f"config file {path} is not valid {'TOML' if suffix == '.toml' else 'JSON'}: {exc}") from None
    if isinstance(data, dict) and set(data) == {"babelrank"} and isinstance(data["babelrank"], dict):
        data = data["babelrank"]
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table/object of settings")
    values = {str(k).replace("-", "_"): v for k, v in data.items()}
    known = {f.name for f in fields(Settings)} | {f.name for f in fields(ServerSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return values


def _parse_toml(raw: bytes, path: Path) -> Any:
    try:
        import tomllib  # Python >= 3.11
    except ImportError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise ConfigError(f"reading {path} needs Python >= 3.11 (or `pip install tomli`); or use a JSON config file") from None
    return tomllib.loads(raw.decode("utf-8"))


def _file_values(config_file: str | Path | None, env: Mapping[str, str], names: set[str]) -> dict[str, Any]:
    """The config file's values of the settings `names` whose environment variable is not set
    (the environment wins); the file is `config_file`, else the one ``BABELRANK_CONFIG`` names."""
    path = config_file or env.get(CONFIG_ENV)
    values = load_config_file(path) if path else {}
    return {k: v for k, v in values.items() if k in names and not env.get(ENV_PREFIX + k.upper())}


def resolve_settings(
    given: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> Settings:
    """`Settings` from given values > ``BABELRANK_*`` variables > a config file > defaults.

    A `store_path` among the given values means the embedded store: a `chroma_host` from the
    environment or the file is dropped.

    Args:
        given: values given explicitly (e.g. command-line flags) by field name; None = not given.
        env: the environment (default `os.environ`).
        config_file: a TOML or JSON file (`load_config_file`); None = the one named by
            ``BABELRANK_CONFIG``, if any.

    Returns:
        The settings.

    Raises:
        ConfigError: an unknown setting, a value of the wrong type or range, a bad config file.
    """
    env = os.environ if env is None else env
    given = {k: v for k, v in (given or {}).items() if v is not None}
    values = {**_file_values(config_file, env, {f.name for f in fields(Settings)}), **given}
    settings = Settings.from_env(env, **values)
    if "store_path" in given and "chroma_host" not in given and settings.chroma_host:
        settings = settings.replace(chroma_host=None)
    return settings


def resolve_server_settings(
    given: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> ServerSettings:
    """`ServerSettings` in the order of `resolve_settings` (given > environment > file > defaults).

    Args:
        given: values given explicitly by field name; None = not given.
        env: the environment (default `os.environ`).
        config_file: a TOML or JSON file; None = the one named by ``BABELRANK_CONFIG``, if any.

    Returns:
        The server settings.

    Raises:
        ConfigError: as for `resolve_settings`.
    """
    env = os.environ if env is None else env
    values = _file_values(config_file, env, {f.name for f in fields(ServerSettings)})
    values.update({k: v for k, v in (given or {}).items() if v is not None})
    return ServerSettings.from_env(env, **values)

MODES = ("auto", "on", "off")
"""A per-query switch: ``auto`` (as the collection calls for), ``on`` or ``off``."""
Mode = Literal["auto", "on", "off"]
_MODE_FLAGS: dict[str, bool | None] = {"auto": None, "on": True, "off": False}


def mode_flag(mode: str | None) -> bool | None:
    """A per-query ``auto``/``on``/``off`` as the retriever takes it (None = as configured)."""
    if mode is None:
        return None
    if mode not in _MODE_FLAGS:
        raise ValueError(f"expected one of {', '.join(MODES)}, got {mode!r}")
    return _MODE_FLAGS[mode]


def flag_mode(flag: bool | None) -> str | None:
    """The inverse of `mode_flag`: True/False as ``on``/``off``, None (as configured) as None."""
    return None if flag is None else ("on" if flag else "off")
