"""`babelrank compare ...`: two tiny random models (and two backends) side by side on small
generated XQuAD-R and Tatoeba files: table, JSON, PNG plot, cache reuse, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from eval_cli_data import parser as _parser
from eval_cli_data import run_cli as _run
from eval_cli_data import write_data

from babelrank.errors import ConfigError, ModelNotFoundError, SourceError
from babelrank.models.bi_encoder import BiEncoder

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_data(tmp_path / "data")


@pytest.fixture
def common(tmp_path: Path) -> list[str]:
    return ["--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]


@pytest.fixture
def two_models(tiny_models: dict[str, Path]) -> list[str]:
    return ["--model", str(tiny_models["bi"]), "--model", str(tiny_models["bi_plain"])]


@pytest.fixture
def encode_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Texts embedded with the document prompt, per model name (counted at the encoder)."""
    calls: dict[str, int] = {}
    original = BiEncoder.encode_documents

    def counting(self: BiEncoder, texts: Any, *args: Any, **kwargs: Any) -> Any:
        calls[self.name] = calls.get(self.name, 0) + len(texts)
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(BiEncoder, "encode_documents", counting)
    return calls


def test_two_models_json_plot_and_same_numbers_as_eval(
    data: Path, common: list[str], two_models: list[str], tiny_models: dict[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("matplotlib")
    png, report = tmp_path / "plots" / "compare.png", tmp_path / "compare.json"
    out = json.loads(_run(["compare", "xquad-r", "--data", str(data / "xquad-r"), "--languages", "en,ru", *two_models,
                           "--reranker", "none", "--json", "--plot", str(png), "--output", str(report), *common], capsys))
    assert out == json.loads(report.read_text(encoding="utf-8"))
    assert out["benchmark"] == "xquad-r:en+ru" and out["metrics"] == ["map@20", "recall@1", "recall@10"]
    assert out["documents"] == 12 and out["queries"] == 6 and out["plot"] == str(png)
    configs = out["configurations"]
    assert [c["model"] for c in configs] == [str(tiny_models["bi"]), str(tiny_models["bi_plain"])]
    assert len({c["label"] for c in configs}) == 2
    for c in configs:
        assert {"label", "model", "backend", "reranker", "dimension", "metrics", "per_language", "latency_ms",
                "ingest", "index_bytes", "stores"} <= set(c)
        assert c["backend"] == "torch" and c["reranker"] == "none" and c["dimension"] == 32
        assert {"map@20", "recall@1", "recall@10", "same_language@10"} <= set(c["metrics"])
        assert set(c["per_language"]) == {"en", "ru"}
        assert set(c["latency_ms"]) == {"embed", "search", "total"}
        assert 0 < c["latency_ms"]["total"]["p50"] <= c["latency_ms"]["total"]["p95"]
        assert c["ingest"]["chunks"] == 12 and c["ingest"]["chunks_embedded"] == 12 and not c["ingest"]["cached"]
        assert c["ingest"]["chunks_per_s"] > 0
        assert len(c["stores"]) == 1 and c["index_bytes"] > 0
    assert configs[0]["stores"] != configs[1]["stores"]

    # each configuration is exactly what `babelrank eval` measures for that model
    for model, c in zip(two_models[1::2], configs):
        single = json.loads(_run(["eval", "xquad-r", "--data", str(data / "xquad-r"), "--languages", "en,ru",
                                  "--model", model, "--reranker", "none", "--json", *common], capsys))
        assert {k: c["metrics"][k] for k in ("map@20", "recall@1", "recall@10")} == \
            {k: single[k] for k in ("map@20", "recall@1", "recall@10")}
        assert single["ingest"]["chunks_embedded"] == 0  # and it reuses the store compare built

    assert png.read_bytes()[:8] == PNG_SIGNATURE
    from matplotlib.image import imread

    height, width, _ = imread(png).shape
    assert (width, height) == (960, 600)


def test_markdown_table_side_by_side(data: Path, common: list[str], two_models: list[str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    text = _run(["compare", "xquad-r", "--data", str(data / "xquad-r"), *two_models, "--reranker", "none", *common], capsys)
    lines = text.splitlines()
    assert lines[0].startswith("**xquad-r:en+ru** · 12 documents · 6 queries")
    header = lines[2]
    assert "tiny-bi · torch · no rerank" in header and "tiny-bi-plain · torch · no rerank" in header
    assert lines[3] == "|---|---:|---:|"
    rows = {line.split("|")[1].strip(): line for line in lines[4:] if line.startswith("| ")}
    assert {"map@20", "recall@1", "recall@10", "ingest chunks/s", "chunks (embedded now)",
            "query embed ms p50 / p95", "query search ms p50 / p95", "query total ms p50 / p95",
            "index size MB", "embedding dim"} <= set(rows)
    assert "query rerank ms p50 / p95" not in rows
    assert rows["embedding dim"].count("32") == 2 and rows["chunks (embedded now)"].count("12 (12)") == 2


def test_second_run_reuses_the_cache_for_every_configuration(
    data: Path, common: list[str], two_models: list[str], tiny_models: dict[str, Path],
    encode_calls: dict[str, int], capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["compare", "tatoeba-mixed", "--data", str(data / "tatoeba"), "--languages", "ukr", *two_models,
            "--reranker", "none", "--reranker", str(tiny_models["cross"]), "--json", *common]
    first = json.loads(_run(argv, capsys))
    assert len(first["configurations"]) == 4  # 2 models x 2 rerankers
    models = [str(tiny_models["bi"]), str(tiny_models["bi_plain"])]
    # per model: 8 mixed-pool + 4 English-only documents, embedded once for both rerankers
    assert encode_calls == {m: 12 for m in models}
    assert [c["ingest"]["chunks_embedded"] for c in first["configurations"]] == [12, 0, 12, 0]
    assert [c["ingest"]["cached"] for c in first["configurations"]] == [False, True, False, True]

    encode_calls.clear()
    second = json.loads(_run(argv, capsys))
    assert encode_calls == {}
    for before, after in zip(first["configurations"], second["configurations"]):
        assert after["ingest"]["chunks_embedded"] == 0 and after["ingest"]["cached"]
        assert after["ingest"]["chunks"] == before["ingest"]["chunks"] == 12
        assert after["ingest"]["chunks_per_s"] == before["ingest"]["chunks_per_s"] > 0  # as measured when built
        assert after["stores"] == before["stores"] and after["metrics"] == before["metrics"]
        assert after["index_bytes"] == before["index_bytes"]
    reranked = [c for c in second["configurations"] if c["reranker"] != "none"]
    assert len(reranked) == 2 and all("rerank" in c["latency_ms"] for c in reranked)
    assert first["metrics"] == ["accuracy@1", "accuracy@1_english_only", "recall@10"]
    row = first["configurations"][0]
    assert set(row["per_language"]) == {"ukr"} and row["per_language"]["ukr"]["queries"] == 4
    assert row["metrics"]["accuracy@1"] == row["per_language"]["ukr"]["accuracy@1"]


def test_backends_of_one_model(data: Path, common: list[str], tiny_models: dict[str, Path], tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from babelrank.models import onnx as backends

    monkeypatch.setenv(backends.CACHE_ENV, str(tmp_path / "onnx"))
    out = json.loads(_run(["compare", "tatoeba-mixed", "--data", str(data / "tatoeba"), "--languages", "ukr,rus",
                           "--model", str(tiny_models["bi"]), "--backend", "torch,onnx-int8", "--reranker", "none",
                           "--json", *common], capsys))
    assert out["benchmark"] == "tatoeba-mixed" and out["queries"] == 2 * (4 + 4)
    torch_run, int8 = out["configurations"]
    assert (torch_run["backend"], int8["backend"]) == ("torch", "onnx-int8")
    assert set(torch_run["stores"]).isdisjoint(int8["stores"])  # one store per backend: int8 vectors differ
    assert torch_run["ingest"]["chunks_embedded"] == int8["ingest"]["chunks_embedded"] == 2 * 12
    for c in out["configurations"]:
        rows = c["per_language"]
        assert {lang: row["language"] for lang, row in rows.items()} == {"ukr": "uk", "rus": "ru"}
        assert c["metrics"]["accuracy@1"] == pytest.approx((rows["ukr"]["accuracy@1"] + rows["rus"]["accuracy@1"]) / 2)
        assert c["metrics"]["accuracy@1_english_only"] == pytest.approx(
            (rows["ukr"]["accuracy@1_english_only"] + rows["rus"]["accuracy@1_english_only"]) / 2)


def test_no_cache_keeps_nothing(data: Path, two_models: list[str], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    out = json.loads(_run(["compare", "xquad-r", "--data", str(data / "xquad-r"), *two_models, "--reranker", "none",
                           "--device", "cpu", "--no-progress", "--no-cache", "--json",
                           "--cache-dir", str(tmp_path / "unused")], capsys))
    assert all(c["index_bytes"] > 0 and c["stores"] == [] for c in out["configurations"])
    assert not (tmp_path / "unused").exists()


def test_errors(data: Path, common: list[str], two_models: list[str], tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> None:
    parser = _parser()
    xquad_r = ["compare", "xquad-r", "--data", str(data / "xquad-r"), "--reranker", "none", *common]
    cases: list[tuple[list[str], type[Exception], str]] = [
        (xquad_r, ConfigError, "name at least one embedding model"),
        ([*xquad_r, *two_models, "--model", str(tmp_path / "no-such-model")], ModelNotFoundError, "does not exist"),
        ([*xquad_r, *two_models, "--k", "5"], ConfigError, "--k must be at least 10"),
        (["compare", "xquad-r", "--data", str(tmp_path / "missing"), *two_models, *common], SourceError, "not found"),
        (["compare", "tatoeba-mixed", "--data", str(data / "tatoeba"), "--languages", "uk", *two_models, *common],
         ConfigError, "ISO 639-3"),
    ]
    for argv, error, message in cases:
        args = parser.parse_args(argv)
        with pytest.raises(error, match=message):
            args.func(args)
    with pytest.raises(SystemExit):
        parser.parse_args([*xquad_r, *two_models, "--backend", "torch,tpu"])

    # without matplotlib, --plot fails before any data or model is touched
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    args = parser.parse_args(["compare", "xquad-r", "--data", str(tmp_path / "missing"), *two_models,
                              "--plot", str(tmp_path / "p.png"), *common])
    with pytest.raises(ConfigError, match=r"pip install 'babelrank\[plot\]'"):
        args.func(args)


def test_through_the_main_cli(data: Path, tiny_models: dict[str, Path], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    main_cli = pytest.importorskip("babelrank.apps.cli")
    code = main_cli.main(["compare", "xquad-r", "--data", str(data / "xquad-r"), "--model", str(tiny_models["bi"]),
                          "--reranker", "none", "--device", "cpu", "--json", "-q", "--cache-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert [c["model"] for c in json.loads(captured.out)["configurations"]] == [str(tiny_models["bi"])]
    code = main_cli.main(["compare", "xquad-r", "--data", str(data / "xquad-r"), "--reranker", "none"])
    assert code == 2 and "babelrank: error: nothing to compare" in capsys.readouterr().err
    code = main_cli.main(["compare", "xquad-r", "--data", str(data / "xquad-r"), "--model", str(tmp_path / "nope"),
                          "--reranker", "none", "--cache-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "model folder" in err and "does not exist" in err
