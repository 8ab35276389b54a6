"""Answerability (issue #17): `score_answerability` on a hand-made run with hand-computed figures,
and `babelrank eval / compare xquad-unanswerable` end to end on a tiny fake XQuAD (tiny models)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from eval_cli_data import run_cli as _run

from babelrank.config import Settings
from babelrank.evaluation.answerability import score_answerability, summary
from babelrank.evaluation.datasets import (
    EvalCorpus,
    EvalDocument,
    EvalQuery,
    xquad_unanswerable_pool,
)
from babelrank.evaluation.runner import EvalReport, evaluate

COLUMNS = {"answerable", "unanswerable", "auroc", "auroc_retrieval_score", "kept", "refused", "ece", "hit@1", "hit@10"}

# --- scoring a hand-made run -------------------------------------------------------------------

#: query id -> (language, (article, paragraph), relevant docs, ranked docs, relevances, retrieval scores)
RUN = {
    "q1": ("en", (0, 0), {"d0"}, ["d0", "d1"], [0.9, 0.3], [0.8, 0.5]),
    "q2": ("en", (1, 0), {"d1"}, ["d0", "d1"], [0.7, 0.6], [0.7, 0.6]),
    "q3": ("en", (0, 1), set(), ["d0", "d1"], [0.4, 0.1], [0.85, 0.2]),
    "q4": ("en", (1, 1), set(), ["d0", "d1"], [0.8, 0.2], [0.6, 0.1]),
    "q5": ("de", (1, 2), {"d2"}, ["d2"], [0.2], [0.9]),
}


def _hand_made(relevance: bool = True) -> tuple[EvalCorpus, EvalReport]:
    docs = [EvalDocument(f"d{i}", f"text {i}", "en") for i in range(3)]
    queries = [EvalQuery(q, f"question {q}?", lang, {"article": a, "paragraph": p})
               for q, (lang, (a, p), *_) in RUN.items()]
    corpus = EvalCorpus("hand", docs, queries, {q: set(r[2]) for q, r in RUN.items()})
    signals = {q: {"relevance": r[4] if relevance else [None] * len(r[4]), "retrieval_score": r[5], "answerable": None}
               for q, r in RUN.items()}
    report = EvalReport(corpus="hand", model="m", reranker=None, neutral=None, neutral_active=True, k=20, metrics={},
                        per_language={}, latency_ms={}, ingest={}, counts={},
                        run={q: r[3] for q, r in RUN.items()}, signals=signals)
    return corpus, report


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def test_score_answerability_by_hand() -> None:
    corpus, report = _hand_made()
    out = score_answerability(corpus, report, min_relevance=0.5, dev_articles=1)
    en, de = out["per_language"]["en"], out["per_language"]["de"]
    # en: relevance 0.9, 0.7 (answerable) vs 0.4, 0.8: 3 of 4 pairs; scores 0.8, 0.7 vs 0.85, 0.6: 2 of 4
    assert en["answerable"] == 2 and en["unanswerable"] == 2
    assert en["auroc"] == 0.75 and en["auroc_retrieval_score"] == 0.5
    assert en["kept"] == 1.0  # q2's answer ranks 2nd at 0.6
    assert en["refused"] == 0.5  # q3 (max 0.4) is refused, q4 (0.8) is not
    assert en["hit@1"] == 0.5 and en["hit@10"] == 1.0
    # one item per bin: |0.9 - 1|, |0.7 - 0|, |0.4 - 0|, |0.8 - 0|
    assert en["ece"] == pytest.approx((0.1 + 0.7 + 0.4 + 0.8) / 4)
    # de: one answerable question whose answer is first, at relevance 0.2: found, not kept
    assert de["hit@1"] == 1.0 and de["kept"] == 0.0 and de["ece"] == pytest.approx(0.8)
    assert _is_nan(de["auroc"]) and _is_nan(de["refused"])
    # all: 0.9, 0.7, 0.2 vs 0.4, 0.8: 3 of 6 pairs
    assert out["auroc"] == 0.5 and out["kept"] == pytest.approx(2 / 3) and out["refused"] == 0.5
    assert out["ece"] == pytest.approx((0.1 + 0.7 + 0.4 + 0.8 + 0.8) / 5)
    assert out["positions"] == 5 and out["positions_removed"] == 2 and out["min_relevance"] == 0.5
    assert set(out["splits"]) == {"articles 0-0", "articles 1-1"}
    dev = out["splits"]["articles 0-0"]
    assert set(dev["per_language"]) == {"en"} and dev["all"]["auroc"] == 1.0  # q1 0.9 vs q3 0.4
    assert out["splits"]["articles 1-1"]["all"]["answerable"] == 2
    assert score_answerability(corpus, report, dev_articles=None)["splits"] == {}
    # a stricter threshold keeps less and refuses more
    strict = score_answerability(corpus, report, min_relevance=0.85)
    assert strict["kept"] == pytest.approx(1 / 3) and strict["refused"] == 1.0


def test_summary_for_compare() -> None:
    corpus, report = _hand_made()
    metrics, per_language = summary(score_answerability(corpus, report, min_relevance=0.5))
    assert set(per_language) == {"en", "de"}
    assert metrics["auroc_mean"] == metrics["auroc_worst"] == 0.75  # de has no unanswerable question
    assert metrics["kept_mean"] == 0.5 and metrics["kept_worst"] == 0.0
    assert metrics["refused_mean"] == metrics["refused_worst"] == 0.5
    assert metrics["ece_mean"] == pytest.approx(0.65) and metrics["ece_worst"] == pytest.approx(0.8)


def test_without_relevance_nothing_is_filtered() -> None:
    corpus, report = _hand_made(relevance=False)
    out = score_answerability(corpus, report, min_relevance=0.5)
    assert _is_nan(out["auroc"]) and _is_nan(out["ece"])
    assert out["kept"] == 1.0 and out["refused"] == 0.0  # as in the product: no calibration, no filter
    assert out["auroc_retrieval_score"] == pytest.approx(4 / 6)  # 0.8, 0.7, 0.9 vs 0.85, 0.6


# --- the command on a tiny fake XQuAD -----------------------------------------------------------

PER_ARTICLE = 26
"""Paragraphs per article: two articles, half removed, leave 2 x 26 chunks in two languages, over
the 50 below which a collection has no relevance calibration."""
TEMPLATES = {"en": ("Paragraph {n} is about topic {n}. People read it often.", "What is paragraph {n} about?"),
             "ru": ("Абзац {n} рассказывает о теме {n}. Его часто читают.", "О чём абзац {n}?")}


def _write_xquad(folder: Path) -> Path:
    """Two articles of `PER_ARTICLE` paragraphs, one question each, in en and ru."""
    folder.mkdir(parents=True)
    for lang, (context, question) in TEMPLATES.items():
        articles = [{"title": f"A{a}", "paragraphs": [
            {"context": context.format(n=PER_ARTICLE * a + p),
             "qas": [{"id": f"q{a}-{p}", "question": question.format(n=PER_ARTICLE * a + p),
                      "answers": [{"text": "x", "answer_start": 0}]}]}
            for p in range(PER_ARTICLE)]} for a in range(2)]
        (folder / f"xquad.{lang}.json").write_text(json.dumps({"version": "1.1", "data": articles}, ensure_ascii=False),
                                                   encoding="utf-8")
    return folder


@pytest.fixture
def xquad(tmp_path: Path) -> Path:
    return _write_xquad(tmp_path / "xquad")


@pytest.fixture
def common(tiny_models: dict[str, Path], tmp_path: Path) -> list[str]:
    return ["--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--reranker", "none"]


def _stored_doc_ids(store: str, model: Path) -> set[str]:
    from babelrank import BabelIndex

    index = BabelIndex(store_path=store, collection="eval", embed_model=str(model), rerank_model="none", progress=False)
    try:
        return {str(m["doc_id"]) for _, metas, _ in index.store.iter_all() for m in metas}
    finally:
        index.close()


def test_evaluate_keeps_every_result_and_records_its_relevance(xquad: Path, tiny_models: dict[str, Path]) -> None:
    """Rankings are scored unfiltered whatever the min_relevance setting (here 1.0, which drops all)."""
    corpus = xquad_unanswerable_pool(xquad, ["en"], removed=0.0)
    settings = Settings(embed_model=str(tiny_models["bi"]), rerank_model="none", device="cpu", progress=False,
                        min_relevance=1.0)
    report = evaluate(corpus, settings, rerank=False, neutral=None, k=10, cache=False)
    assert report.metrics["hit@10"] > 0
    for q in corpus.queries:
        signals = report.signals[q.id]
        assert len(report.run[q.id]) == len(signals["relevance"]) == len(signals["retrieval_score"]) == 10
        assert all(0.0 <= r <= 1.0 for r in signals["relevance"]) and signals["answerable"] in (True, False)
        assert signals["retrieval_score"] == sorted(signals["retrieval_score"], reverse=True)


def test_eval_xquad_unanswerable_json(xquad: Path, common: list[str], tiny_models: dict[str, Path],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval", "xquad-unanswerable", "--data", str(xquad), "--languages", "en,ru", "--dev-articles", "1",
            "--model", str(tiny_models["bi"]), "--json", *common]
    out = json.loads(_run(argv, capsys))
    assert out["benchmark"] == "xquad-unanswerable" and out["languages"] == ["en", "ru"]
    assert out["removed"] == 0.5 and out["seed"] == 0 and out["min_relevance"] == 0.5 and out["k"] == 10
    assert out["positions"] == 52 and out["positions_removed"] == 26
    assert set(out["per_language"]) == {"en", "ru"} and COLUMNS <= set(out)
    for figures in out["per_language"].values():
        assert COLUMNS <= set(figures)
        assert figures["answerable"] == figures["unanswerable"] == 26
        assert 0.0 <= figures["auroc"] <= 1.0 and 0.0 <= figures["ece"] <= 1.0
        assert 0.0 <= figures["kept"] <= figures["hit@10"] <= 1.0
    assert set(out["splits"]) == {"articles 0-0", "articles 1-1"}
    assert sum(s["all"]["answerable"] + s["all"]["unanswerable"] for s in out["splits"].values()) == 104
    # the removed paragraphs are absent from the store, in every language
    corpus = xquad_unanswerable_pool(xquad, ["en", "ru"])
    assert _stored_doc_ids(out["store"], tiny_models["bi"]) == {d.id for d in corpus.documents}
    assert out["ingest"]["documents"] == 52 and out["counts"]["documents"] == {"en": 26, "ru": 26}
    # deterministic: the same split and figures again, from the cached store
    again = json.loads(_run(argv, capsys))
    assert again["ingest"]["chunks_embedded"] == 0
    assert {k: again[k] for k in ("per_language", "splits")} == {k: out[k] for k in ("per_language", "splits")}
    other = json.loads(_run([*argv, "--seed", "1", "--removed", "0.25", "--min-relevance", "0.9"], capsys))
    assert other["positions_removed"] == 13 and other["min_relevance"] == 0.9 and other["store"] != out["store"]


def test_eval_xquad_unanswerable_markdown(xquad: Path, common: list[str], tiny_models: dict[str, Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    text = _run(["eval", "xquad-unanswerable", "--data", str(xquad), "--languages", "en,ru", "--model",
                 str(tiny_models["bi"]), *common], capsys)
    assert text.startswith("**xquad-unanswerable:en+ru->en+ru:removed=0.5:seed=0**")
    assert "26 of 52 paragraph positions removed (share 0.5, seed 0) · min_relevance 0.5 · top 10 results" in text
    assert "| | answerable | unanswerable | auroc | auroc_retrieval_score | kept | refused | ece | hit@1 | hit@10 |" in text
    assert "| en | 26 | 26 |" in text and "| all | 52 | 52 |" in text
    assert "articles" not in text  # every article is below the default 36: no held-out split, no split table


def test_compare_xquad_unanswerable(xquad: Path, common: list[str], tiny_models: dict[str, Path],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    names = ["auroc_mean", "auroc_worst", "kept_mean", "kept_worst", "refused_mean", "refused_worst",
             "ece_mean", "ece_worst"]
    argv = ["compare", "xquad-unanswerable", "--data", str(xquad), "--languages", "en,ru",
            "--model", str(tiny_models["bi"]), "--model", str(tiny_models["bi_plain"]), *common]
    out = json.loads(_run([*argv, "--json"], capsys))
    assert out["metrics"] == names and len(out["configurations"]) == 2
    for c in out["configurations"]:
        assert set(names) <= set(c["metrics"]) and set(c["per_language"]) == {"en", "ru"}
        per = c["per_language"]
        assert c["metrics"]["auroc_worst"] == pytest.approx(min(m["auroc"] for m in per.values()), abs=1e-6)
        assert c["metrics"]["ece_worst"] == pytest.approx(max(m["ece"] for m in per.values()), abs=1e-6)
        assert c["metrics"]["kept_mean"] == pytest.approx(sum(m["kept"] for m in per.values()) / 2, abs=1e-6)
    text = _run(argv, capsys)
    assert "| auroc_mean |" in text and "| refused_worst |" in text and "| ece_worst |" in text
