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


def test_resolution_order_given_env_file_defaults(tmp_path: Path) -> None:
    from babelrank.config import resolve_server_settings, resolve_settings

    conf = tmp_path / "babelrank.toml"
    conf.write_text('[babelrank]\ncollection = "file"\ntop_n = 7\nmax-query-chars = 50\napi_token = "t"\n')
    env = {"BABELRANK_CONFIG": str(conf), "BABELRANK_TOP_N": "3"}
    s = resolve_settings({"collection": None}, env)
    assert (s.collection, s.top_n, s.top_k) == ("file", 3, Settings().top_k)  # file, env over file, default
    assert resolve_settings({"collection": "given"}, env).collection == "given"
    assert resolve_settings({}, {}, config_file=conf).collection == "file"  # an explicit path without the variable
    server = resolve_server_settings({"max_query_chars": None}, env)
    assert (server.api_token, server.max_query_chars) == ("t", 50)
    assert resolve_server_settings({"max_query_chars": 9}, {**env, "BABELRANK_API_TOKEN": "e"}).api_token == "e"
    # a given store path means the embedded store, whatever the environment says
    s = resolve_settings({"store_path": "here"}, {"BABELRANK_CHROMA_HOST": "db"})
    assert s.chroma_host is None and s.store_path == Path("here")


def test_a_config_file_takes_every_setting(tmp_path: Path) -> None:
    import dataclasses
    import json

    from babelrank.config import ServerSettings, load_config_file

    names = {f.name for f in dataclasses.fields(Settings)} | {f.name for f in dataclasses.fields(ServerSettings)}
    conf = tmp_path / "all.json"
    conf.write_text(json.dumps({name: None for name in names}))
    assert set(load_config_file(conf)) == names
    conf.write_text(json.dumps({"colour": "red"}))
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) colour"):
        load_config_file(conf)


def test_model_options_come_from_the_settings() -> None:
    s = Settings(model_dir=Path("m"), device="cpu", backend="onnx", rerank_batch_size=4, rerank_candidates=9)
    assert s.bi_encoder_options() == {"model_dir": Path("m"), "device": "cpu", "backend": "onnx", "cache_dir": None,
                                      "onnx_spinning": True, "trust_remote_code": False}
    options = s.cross_encoder_options()
    assert options.items() >= s.bi_encoder_options().items()
    assert (options["top_n"], options["batch_size"], options["max_length"], options["candidates"],
            options["margin"]) == (5, 4, None, 9, None)


def test_mode_flag() -> None:
    from babelrank.config import mode_flag

    assert [mode_flag(m) for m in ("auto", "on", "off", None)] == [None, True, False, None]
    with pytest.raises(ValueError):
        mode_flag("maybe")
