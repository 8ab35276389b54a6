"""`babelrank eval ...` through `register` on a parser of our own (tiny models, synthetic files);
with BABELRANK_TEST_MODELS / BABELRANK_TEST_DATA set, a short real XQuAD-R and Tatoeba run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_cli_data import QUESTIONS, SENTENCES, write_data
from eval_cli_data import parser as _parser
from eval_cli_data import run_cli as _run

from babelrank.apps.cli import main
from babelrank.apps.cli.eval_output import markdown_table
from babelrank.errors import BabelrankError, ConfigError, SourceError

KEYS = {"map@20", "recall@1", "recall@10", "same_language@10"}

@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_data(tmp_path / "data")


@pytest.fixture
def common(tiny_models: dict[str, Path], tmp_path: Path) -> list[str]:
    return ["--model", str(tiny_models["bi"]), "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]


def test_xquad_r_json(data: Path, common: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    out = json.loads(_run(["eval", "xquad-r", "--data", str(data / "xquad-r"), "--languages", "en,ru",
                           "--reranker", "none", "--json", *common], capsys))
    assert KEYS <= set(out) and set(out["per_language"]) == {"en", "ru"}
    for m in out["per_language"].values():
        assert KEYS <= set(m) and m["queries"] == 3
    assert out["queries"] == 6 and out["reranker"] == "none" and out["neutral"] == "default"
    assert out["ingest"]["documents"] == 12 and out["counts"]["documents"] == {"en": 6, "ru": 6}
    assert {"embed", "search", "total"} <= set(out["latency_ms"])
    spread = out["language_spread"]
    per = {lang: m["map@20"] for lang, m in out["per_language"].items()}
    assert spread["metric"] == "map@20" and spread["worst_value"] == min(per.values())
    assert spread["best_value"] == max(per.values()) and per[spread["worst"]] <= per[spread["best"]]


def test_xquad_r_default_languages_limit_and_markdown(data: Path, common: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    text = _run(["eval", "xquad-r", "--data", str(data / "xquad-r"), "--limit", "2", "--reranker", "none", *common], capsys)
    assert text.startswith("**xquad-r:en+ru**")
    assert "| en |" in text and "| ru |" in text and "| all |" in text and "map@20" in text
    assert "latency ms (p50/p95)" in text and "ingest: 8 documents" in text
    assert "map@20 across query languages: worst " in text and "worst/best" in text


def test_tatoeba_mixed_json(data: Path, common: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval", "tatoeba-mixed", "--data", str(data / "tatoeba"), "--languages", "ukr,rus",
            "--reranker", "none", "--neutral", "off", "--json", "--output", str(tmp_path / "r.json"), *common]
    out = json.loads(_run(argv, capsys))
    assert out == json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert set(out["per_language"]) == {"ukr", "rus"} and out["neutral"] == "off"
    for lang, row in out["per_language"].items():
        assert {"accuracy@1", "accuracy@1_english_only", "same_language@10", "recall@10"} <= set(row)
        assert row["language"] == {"ukr": "uk", "rus": "ru"}[lang] and row["queries"] == 4
        assert 0.0 <= row["accuracy@1"] <= 1.0 and 0.0 <= row["accuracy@1_english_only"] <= 1.0
    assert out["accuracy@1"] == pytest.approx(sum(r["accuracy@1"] for r in out["per_language"].values()) / 2, abs=1e-6)
    assert out["chunks_embedded"] == 2 * (8 + 4)  # mixed pool + English-only pool, per language
    again = json.loads(_run(argv, capsys))
    assert again["chunks_embedded"] == 0

    def scores(result: dict) -> dict:
        return {lang: {k: v for k, v in row.items() if not k.startswith("latency")} for lang, row in result["per_language"].items()}

    assert scores(again) == scores(out)


def test_tatoeba_limit_and_all_languages(data: Path, common: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    out = json.loads(_run(["eval", "tatoeba-mixed", "--data", str(data / "tatoeba"), "--limit", "2",
                           "--reranker", "none", "--json", *common], capsys))
    assert set(out["per_language"]) == {"rus", "ukr"}
    assert all(row["queries"] == 2 and row["documents"] == 4 for row in out["per_language"].values())


def test_xquad_paragraphs_with_rerank(data: Path, common: list[str], tiny_models: dict[str, Path],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = json.loads(_run(["eval", "xquad", "--data", str(data / "xquad"), "--doc-languages", "en",
                           "--query-languages", "ru,en", "--reranker", str(tiny_models["cross"]),
                           "--neutral", "on", "--json", *common], capsys))
    assert set(out["per_language"]) == {"en", "ru"} and out["ingest"]["documents"] == 3
    assert out["reranker"] == str(tiny_models["cross"]) and "rerank" in out["latency_ms"]
    assert out["neutral"] == "on"
    assert out["same_language@10"] == pytest.approx(0.5)  # all 3 docs are English; half the queries are


def test_judgements(tmp_path: Path, common: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, sentences in enumerate(SENTENCES["en"]):
        (docs / f"d{i}.txt").write_text(" ".join(sentences), encoding="utf-8")
    (tmp_path / "j.jsonl").write_text(
        "".join(json.dumps({"query": q, "relevant": [f"d{i}.txt"]}) + "\n" for i, q in enumerate(QUESTIONS["ru"])),
        encoding="utf-8",
    )
    out = json.loads(_run(["eval", "judgements", "--queries", str(tmp_path / "j.jsonl"), "--docs", str(docs),
                           "--reranker", "none", "--json", *common], capsys))
    assert out["queries"] == 3 and out["ingest"]["documents"] == 3
    # TREC qrels + queries file
    (tmp_path / "q.tsv").write_text("a\tWhose car is it?\tru\nb\tWhat do we drink?\n", encoding="utf-8")
    (tmp_path / "qrels").write_text("a 0 d0.txt 1\nb 0 d1.txt 1\n", encoding="utf-8")
    out = json.loads(_run(["eval", "judgements", "--queries", str(tmp_path / "q.tsv"), "--qrels", str(tmp_path / "qrels"),
                           "--docs", str(docs), "--reranker", "none", "--limit", "1", "--json", *common], capsys))
    assert out["queries"] == 2  # --limit 1 keeps one query per language: "ru" and the undetermined one


def test_errors_are_babelrank_errors(data: Path, common: list[str], tmp_path: Path) -> None:
    parser = _parser()
    cases = [
        (["eval", "xquad-r", "--data", str(tmp_path / "missing"), "--reranker", "none", *common], SourceError),
        (["eval", "xquad-r", "--data", str(data / "xquad-r"), "--languages", "en,xx", "--reranker", "none", *common], SourceError),
        (["eval", "tatoeba-mixed", "--data", str(data / "tatoeba"), "--languages", "uk", "--reranker", "none", *common], ConfigError),
        (["eval", "tatoeba-mixed", "--data", str(data / "tatoeba"), "--languages", "deu", "--reranker", "none", *common], SourceError),
        (["eval", "xquad-r", "--data", str(data / "xquad-r"), "--k", "5", "--reranker", "none", *common], ConfigError),
        (["eval", "xquad-r", "--data", str(data / "xquad-r"), "--reranker", str(tmp_path / "no-model"), *common], BabelrankError),
    ]
    for argv, error in cases:
        args = parser.parse_args(argv)
        with pytest.raises(error):
            args.func(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "xquad-r", "--data", "x", "--neutral", "maybe"])
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "tatoeba-mixed", "--data", "x", "--limit", "0"])


def test_markdown_table() -> None:
    table = markdown_table({"en": {"recall@1": 0.5, "queries": 3}, "all": {"recall@1": float("nan")}}, ["recall@1", "queries", "x"])
    assert table.splitlines() == ["| | recall@1 | queries |", "|---|---:|---:|", "| en | 0.5000 | 3 |", "| all | – | – |"]


# --- real model and data (CI) ---------------------------------------------------------------


@pytest.mark.real_model
def test_real_exact_issue_commands(e5_path: Path, real_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue-tracker forms, shortened with --limit so CI stays quick."""
    extra = ["--cache-dir", str(tmp_path), "--no-progress", "--device", "cpu", "--limit", "2"]
    out = json.loads(_run(["eval", "xquad-r", "--data", str(real_data_dir / "xquad-r"), "--languages", "en,ru,de,es",
                           "--model", str(e5_path), "--reranker", "none", "--json", *extra], capsys))
    assert set(out["per_language"]) == {"en", "ru", "de", "es"}
    assert all(KEYS <= set(m) for m in (out, *out["per_language"].values()))
    assert out["recall@10"] > 0.5
    out = json.loads(_run(["eval", "tatoeba-mixed", "--data", str(real_data_dir / "tatoeba"), "--languages", "ukr,rus",
                           "--model", str(e5_path), "--reranker", "none", "--json", *extra[:-1], "20"], capsys))
    assert set(out["per_language"]) == {"ukr", "rus"}
    for row in out["per_language"].values():
        assert row["accuracy@1_english_only"] >= 0.7 and row["queries"] == 20


def test_through_the_main_cli(data: Path, tiny_models: dict[str, Path], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    """`babelrank --embed-model X eval ...`: options given before the command reach the run."""
    code = main(["--embed-model", str(tiny_models["bi"]), "--device", "cpu", "eval", "xquad-r",
                          "--data", str(data / "xquad-r"), "--reranker", "none", "--json", "-q",
                          "--cache-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert out["model"] == str(tiny_models["bi"]) and out["queries"] == 6
    code = main(["eval", "xquad-r", "--data", str(tmp_path / "missing"), "--reranker", "none",
                          "--model", str(tiny_models["bi"])])
    assert code == 2 and "XQuAD-R folder not found" in capsys.readouterr().err
