from pathlib import Path

import pytest

from babelrank import ConfigError, Settings


def test_env_vars_fill_settings_and_keywords_win() -> None:
    env = {
        "BABELRANK_TOP_K": "20",
        "BABELRANK_STORE_PATH": "/tmp/x",
        "BABELRANK_EXPECTED_LANGUAGES": "uk, ru,en",
        "BABELRANK_PROGRESS": "off",
        "BABELRANK_MIN_SCORE": "0.25",
        "BABELRANK_TOP_N": "3",
    }
    s = Settings.from_env(env, top_n=7)
    assert s.top_k == 20 and s.top_n == 7
    assert s.store_path == Path("/tmp/x")
    assert s.expected_languages == ("uk", "ru", "en")
    assert s.progress is False and s.min_score == 0.25


@pytest.mark.parametrize(
    "env",
    [{"BABELRANK_TOP_K": "many"}, {"BABELRANK_PROGRESS": "maybe"}, {"BABELRANK_TOP_N": "0"}, {"BABELRANK_NEUTRAL": "half"}],
)
def test_bad_values_give_config_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(env)


def test_unknown_keyword_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'topk'"):
        Settings.from_env({}, topk=3)


def test_replace_coerces() -> None:
    s = Settings().replace(top_k="12", store_path="~/store")
    assert s.top_k == 12 and s.store_path == Path("~/store").expanduser()


def test_rerank_candidates_and_margin() -> None:
    s = Settings.from_env({"BABELRANK_RERANK_CANDIDATES": "20", "BABELRANK_RERANK_MARGIN": "0.05"})
    assert (s.rerank_candidates, s.rerank_margin) == (20, 0.05)
    assert Settings.from_env({"BABELRANK_RERANK_CANDIDATES": "none"}).rerank_candidates is None
    assert (Settings().rerank_candidates, Settings().rerank_margin) == (None, None)
    with pytest.raises(ConfigError, match="rerank_candidates must be >= 1"):
        Settings(rerank_candidates=0)
    with pytest.raises(ConfigError, match="rerank_margin must be >= 0"):
        Settings.from_env({"BABELRANK_RERANK_MARGIN": "-0.1"})


@pytest.mark.parametrize("field, value", [("top_k", 1001), ("top_n", 201)])
def test_settings_take_the_per_query_limits(field: str, value: int, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=f"{field} must be at most"):
        Settings(**{field: value})
    monkeypatch.setenv(f"BABELRANK_{field.upper()}", str(value))
    with pytest.raises(ConfigError, match=f"{field} must be at most"):
        Settings.from_env()
