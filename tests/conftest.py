"""Shared fixtures: tiny random models (built once per session) and temporary stores."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from tiny_models import build_bi_encoder, build_cross_encoder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODELS_ENV = "BABELRANK_TEST_MODELS"
DATA_ENV = "BABELRANK_TEST_DATA"
E5_FOLDER = "multilingual-e5-small-q4"


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "bi": build_bi_encoder(root / "tiny-bi", prompts={"query": "query: ", "document": "passage: "}),
        "bi_plain": build_bi_encoder(root / "tiny-bi-plain", seed=1),
        "cross": build_cross_encoder(root / "tiny-cross"),
    }


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("BABELRANK_") and key not in (MODELS_ENV, DATA_ENV):
            monkeypatch.delenv(key)
    # torch unless a test asks for another backend: the default "auto" runs onnx-int8 on CPU,
    # whose per-batch activation quantization moves vectors by ~1e-5 (tests compare at 1e-6);
    # test_backends.py covers "auto"
    monkeypatch.setenv("BABELRANK_BACKEND", "torch")
    # keep every result unless a test asks for relevance filtering (test_relevance_wiring.py):
    # a tiny random model's relevance is noise, and the other tests check other things
    monkeypatch.setenv("BABELRANK_MIN_RELEVANCE", "none")


@pytest.fixture
def make_index(tiny_models: dict[str, Path], tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Build `BabelIndex`es on tiny models and a temporary store; closed after the test."""
    from babelrank import BabelIndex

    opened: list[Any] = []

    def factory(**overrides: Any) -> Any:
        options = {
            "embed_model": str(tiny_models["bi"]),
            "rerank_model": str(tiny_models["cross"]),
            "store_path": tmp_path / "store",
            "progress": False,
        }
        options.update(overrides)
        index = BabelIndex(**options)
        opened.append(index)
        return index

    yield factory
    for index in opened:
        index.close()


def _shared(env: str, what: str) -> Path:
    value = os.environ.get(env)
    if not value or not Path(value).is_dir():
        pytest.skip(f"{what}: set {env} to the folder (e.g. ../shared/{'models' if env == MODELS_ENV else 'data'}); CI sets it")
    return Path(value)


@pytest.fixture(scope="session")
def real_models_dir() -> Path:
    return _shared(MODELS_ENV, "needs the real models")


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    return _shared(DATA_ENV, "needs the real evaluation data")


@pytest.fixture(scope="session")
def e5_path(real_models_dir: Path) -> Path:
    path = real_models_dir / E5_FOLDER
    if not path.is_dir():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture
def refuse(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path, object, str], None]:
    """`refuse(target, obj, name)` makes `obj.name(path)` raise PermissionError for `target`:
    tests run as root, which ignores file modes, so chmod cannot make a file or folder
    unreadable here."""

    def install(target: Path, obj: object, name: str) -> None:
        real = getattr(obj, name)

        def refusing(path: Any, *args: Any, **kwargs: Any) -> Any:
            if Path(path) == target:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *args, **kwargs)

        monkeypatch.setattr(obj, name, refusing)

    return install


@pytest.fixture
def pin_relevance() -> Callable[[Any], None]:
    """Give a collection (a `BabelIndex`'s store) a relevance calibration whose relevance is
    0.5 +- 0.01 for any result, so `min_relevance` tests do not depend on a tiny model's fit
    (whose log-odds can saturate a relevance at exactly 1.0)."""
    from babelrank.query.relevance import RelevanceCalibration
    from babelrank.store.chroma import RELEVANCE_KEY

    def pin(index: Any) -> None:
        counts = index.calibration.current().counts
        languages = tuple(sorted(x for x in counts if x != "und"))
        flat = RelevanceCalibration(0.0, 10.0, 0.01, 1.0, sum(counts.values()), 2, languages)
        index.store.update_meta(RELEVANCE_KEY, lambda _: flat.to_dict())

    return pin

