"""Dataset loaders on tiny hand-written files, and on the real files under BABELRANK_TEST_DATA."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from babelrank.errors import SourceError
from babelrank.evaluation.datasets import (
    EvalCorpus,
    EvalDocument,
    EvalQuery,
    available_tatoeba_languages,
    load_queries,
    load_tatoeba,
    load_trec_qrels,
    load_user_judgements,
    tatoeba_english_only,
    tatoeba_mixed_pool,
    xquad_paragraph_pool,
    xquad_r_sentence_pool,
    xquad_unanswerable_pool,
)
from babelrank.evaluation.metrics import evaluate_by_group, evaluate_run

# --- Tatoeba --------------------------------------------------------------------------------


@pytest.fixture
def tatoeba_dir(tmp_path: Path) -> Path:
    ukr = "Привіт.\nЯ тут\u2028зараз.\nДякую!\n"  # U+2028 is no line break in these files
    (tmp_path / "tatoeba.ukr-eng.ukr").write_text(ukr, encoding="utf-8")
    (tmp_path / "tatoeba.ukr-eng.eng").write_text("Hello.\nI am here now.\nThanks!\n", encoding="utf-8")
    (tmp_path / "tatoeba.rus-eng.eng").write_text("Only one side.\n", encoding="utf-8")
    return tmp_path


def test_load_tatoeba(tatoeba_dir: Path):
    pair = load_tatoeba(tatoeba_dir, "ukr")
    assert (pair.lang, pair.lang3) == ("uk", "ukr")
    assert pair.english == ["Hello.", "I am here now.", "Thanks!"]
    assert pair.source[1] == "Я тут\u2028зараз."  # split on \n only
    assert available_tatoeba_languages(tatoeba_dir) == ["ukr"]  # rus lacks its .rus file


@pytest.mark.parametrize("lang3,lang", [("bel", "be"), ("bul", "bg"), ("ces", "cs"), ("ita", "it"),
                                         ("kaz", "kk"), ("pol", "pl"), ("spa", "es"), ("tur", "tr")])
def test_tatoeba_languages_get_the_package_wide_iso_639_1_code(
    tmp_path: Path, lang3: str, lang: str, caplog: pytest.LogCaptureFixture
):
    (tmp_path / f"tatoeba.{lang3}-eng.{lang3}").write_text("Один.\nДва.\n", encoding="utf-8")
    (tmp_path / f"tatoeba.{lang3}-eng.eng").write_text("One.\nTwo.\n", encoding="utf-8")
    with caplog.at_level("WARNING"):
        corpus = tatoeba_mixed_pool(tmp_path, lang3)
    assert not caplog.records
    assert {q.language for q in corpus.queries} == {lang}
    assert corpus.counts()["documents"] == {"en": 2, lang: 2}


def test_tatoeba_unknown_language_code_is_kept_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    (tmp_path / "tatoeba.qqx-eng.qqx").write_text("Un.\n", encoding="utf-8")
    (tmp_path / "tatoeba.qqx-eng.eng").write_text("One.\n", encoding="utf-8")
    with caplog.at_level("WARNING"):
        assert load_tatoeba(tmp_path, "qqx").lang == "qqx"
    assert "unknown language code 'qqx'" in caplog.text


def test_load_tatoeba_errors(tatoeba_dir: Path):
    with pytest.raises(FileNotFoundError, match=r"tatoeba\.rus-eng\.rus"):
        load_tatoeba(tatoeba_dir, "rus")
    with pytest.raises(FileNotFoundError, match="Tatoeba folder"):
        available_tatoeba_languages(tatoeba_dir / "nope")
    (tatoeba_dir / "tatoeba.ukr-eng.eng").write_text("Hello.\n", encoding="utf-8")
    with pytest.raises(SourceError, match="has 3 lines but"):
        load_tatoeba(tatoeba_dir, "ukr")


def test_tatoeba_pair_with_an_empty_side_is_skipped(tatoeba_dir: Path, caplog: pytest.LogCaptureFixture):
    (tatoeba_dir / "tatoeba.ukr-eng.eng").write_text("Hello.\n \nThanks!\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="babelrank.evaluation.datasets"):
        corpus = tatoeba_mixed_pool(tatoeba_dir, "ukr")
    assert "skipped 1 of 3" in caplog.text and "tatoeba.ukr-eng.eng:2" in caplog.text
    # the other pairs keep the ids of their lines
    assert [q.id for q in corpus.queries] == ["tatoeba:ukr-eng:q:0", "tatoeba:ukr-eng:q:2"]
    assert corpus.qrels["tatoeba:ukr-eng:q:2"] == {"tatoeba:ukr-eng:eng:2"}
    assert {d.id for d in corpus.documents} == {f"tatoeba:ukr-eng:{side}:{i}" for side in ("ukr", "eng") for i in (0, 2)}
    assert load_tatoeba(tatoeba_dir, "ukr").lines == [0, 2]


def test_tatoeba_mixed_pool(tatoeba_dir: Path):
    corpus = tatoeba_mixed_pool(tatoeba_dir, "ukr")
    assert corpus.counts() == {"documents": {"en": 3, "uk": 3}, "queries": {"uk": 3}}
    query = corpus.queries[0]
    assert (query.id, query.text, query.language) == ("tatoeba:ukr-eng:q:0", "Привіт.", "uk")
    assert corpus.qrels[query.id] == {"tatoeba:ukr-eng:eng:0"}
    assert corpus.exclude[query.id] == {"tatoeba:ukr-eng:ukr:0"}
    docs = {d.id: d for d in corpus.documents}
    assert docs["tatoeba:ukr-eng:ukr:0"].text == query.text  # the query's own sentence is in the pool
    run = {query.id: ["tatoeba:ukr-eng:ukr:0", "tatoeba:ukr-eng:ukr:2", "tatoeba:ukr-eng:eng:0"]}
    assert corpus.filter_run(run) == {query.id: ["tatoeba:ukr-eng:ukr:2", "tatoeba:ukr-eng:eng:0"]}


def test_tatoeba_english_only(tatoeba_dir: Path):
    corpus = tatoeba_english_only(tatoeba_dir, "ukr")
    assert [d.id for d in corpus.documents] == [f"tatoeba:ukr-eng:eng:{i}" for i in range(3)]
    assert {d.language for d in corpus.documents} == {"en"}
    assert corpus.exclude == {}
    assert corpus.qrels["tatoeba:ukr-eng:q:2"] == {"tatoeba:ukr-eng:eng:2"}


def test_eval_corpus_validates_ids():
    doc, query = EvalDocument("d", "text", "en"), EvalQuery("q", "text", "en")
    with pytest.raises(ValueError, match="unknown documents"):
        EvalCorpus("c", [doc], [query], {"q": {"d", "missing"}})
    with pytest.raises(ValueError, match="unknown query"):
        EvalCorpus("c", [doc], [query], {"q": {"d"}}, exclude={"other": {"d"}})
    with pytest.raises(ValueError, match="unique"):
        EvalCorpus("c", [doc, doc], [query], {})


# --- XQuAD / XQuAD-R ------------------------------------------------------------------------


def _squad(lang: str) -> dict:
    """Two articles, three paragraphs, four questions; German splits "beta one." in two."""
    beta = ["beta", "one.", "beta two."] if lang == "de" else ["beta one.", "beta two."]
    spec = [  # per article: (sentences, [(question id, sentence holding its answer)])
        [(["alpha one.", "alpha two."], [("qa", 0)]), (beta, [("qb", len(beta) - 1)])],
        [(["gamma one.", "gamma two."], [("qc", 1), ("qd", 0)])],
    ]
    data = []
    for a, paragraphs in enumerate(spec):
        out = []
        for sentences, qas in paragraphs:
            sentences = [f"{lang} {s}" for s in sentences]
            starts = [sum(len(s) + 1 for s in sentences[:i]) for i in range(len(sentences))]
            out.append({
                "context": " ".join(sentences),
                "sentences": sentences,
                "sentence_breaks": [[st, st + len(s)] for st, s in zip(starts, sentences)],
                # answers start exactly at a sentence start, except qd (3 characters in)
                "qas": [
                    {"id": qid, "question": f"{lang} {qid}?",
                     "answers": [{"text": "?", "answer_start": starts[i] + (3 if qid == "qd" else 0)}]}
                    for qid, i in qas
                ],
            })  # fmt: skip
        data.append({"title": f"T{a}", "paragraphs": out})
    return {"version": "1.1", "data": data}


@pytest.fixture
def squad_dir(tmp_path: Path) -> Path:
    for lang in ("en", "de"):
        text = json.dumps(_squad(lang), ensure_ascii=False)
        (tmp_path / f"xquad.{lang}.json").write_text(text, encoding="utf-8")
        (tmp_path / f"{lang}.json").write_text(text, encoding="utf-8")
    return tmp_path


def test_xquad_paragraph_pool(squad_dir: Path):
    corpus = xquad_paragraph_pool(squad_dir, ["en", "de"], ["de"])
    assert corpus.counts() == {"documents": {"en": 3, "de": 3}, "queries": {"de": 4}}
    docs = {d.id: d for d in corpus.documents}
    assert docs["xquad:de:1:0"].text == "de gamma one. de gamma two."
    assert docs["xquad:de:1:0"].metadata == {"title": "T1", "article": 1, "paragraph": 0}
    assert corpus.qrels["qc:de"] == {"xquad:en:1:0", "xquad:de:1:0"}
    assert [q.text for q in corpus.queries] == ["de qa?", "de qb?", "de qc?", "de qd?"]
    limited = xquad_paragraph_pool(squad_dir, ["en"], ["en", "de"], limit=2)
    assert [d.id for d in limited.documents] == ["xquad:en:0:0", "xquad:en:0:1"]
    assert sorted(limited.qrels) == ["qa:de", "qa:en", "qb:de", "qb:en"]


def test_xquad_unanswerable_pool(squad_dir: Path):
    corpus = xquad_unanswerable_pool(squad_dir, ["en", "de"], seed=3)
    assert corpus.name == "xquad-unanswerable:en+de->en+de:removed=0.5:seed=3"
    gone = {(q.metadata["article"], q.metadata["paragraph"]) for q in corpus.queries if not q.metadata["answerable"]}
    assert len(gone) == 1  # int(0.5 * 3) of the 3 positions, in every language
    kept = {(d.metadata["article"], d.metadata["paragraph"]) for d in corpus.documents}
    assert kept == {(0, 0), (0, 1), (1, 0)} - gone and corpus.counts()["documents"] == {"en": 2, "de": 2}
    assert corpus.counts()["queries"] == {"en": 4, "de": 4}  # every question is asked
    full = xquad_paragraph_pool(squad_dir, ["en", "de"], ["en", "de"])
    for q in corpus.queries:
        position = (q.metadata["article"], q.metadata["paragraph"])
        assert q.metadata["answerable"] == (position not in gone) == bool(corpus.qrels[q.id])
        assert corpus.qrels[q.id] == (set() if position in gone else full.qrels[q.id])
    # the same seed removes the same positions; the share and seed are options
    again = xquad_unanswerable_pool(squad_dir, ["en", "de"], seed=3)
    assert again.qrels == corpus.qrels and [d.id for d in again.documents] == [d.id for d in corpus.documents]
    draws = {frozenset(d.id for d in xquad_unanswerable_pool(squad_dir, ["en"], seed=s).documents) for s in range(8)}
    assert len(draws) > 1 and all(len(d) == 2 for d in draws)
    assert len(xquad_unanswerable_pool(squad_dir, ["en"], removed=0.0).documents) == 3
    assert len(xquad_unanswerable_pool(squad_dir, ["en"], removed=0.7).documents) == 1  # int(2.1) removed
    only_de = xquad_unanswerable_pool(squad_dir, ["en"], ["de"], seed=3)
    assert only_de.counts() == {"documents": {"en": 2}, "queries": {"de": 4}}
    with pytest.raises(ValueError, match="removed"):
        xquad_unanswerable_pool(squad_dir, ["en"], removed=1.0)


def test_xquad_r_sentence_pool(squad_dir: Path):
    corpus = xquad_r_sentence_pool(squad_dir, ["en", "de"])
    assert corpus.counts() == {"documents": {"en": 6, "de": 7}, "queries": {"en": 4, "de": 4}}
    # one relevant sentence per language, found by answer_start, whatever the sentence split
    assert corpus.qrels["qb:en"] == corpus.qrels["qb:de"] == {"xquad-r:en:0:1:1", "xquad-r:de:0:1:2"}
    assert corpus.qrels["qd:de"] == {"xquad-r:en:1:0:0", "xquad-r:de:1:0:0"}
    assert corpus.qrels["qc:en"] == {"xquad-r:en:1:0:1", "xquad-r:de:1:0:1"}
    docs = {d.id: d for d in corpus.documents}
    assert docs["xquad-r:de:0:1:1"].text == "de one."
    assert docs["xquad-r:de:0:1:1"].metadata == {"title": "T0", "article": 0, "paragraph": 1, "sentence": 1}
    limited = xquad_r_sentence_pool(squad_dir, ["en"], limit=1)
    assert len(limited.documents) == 2 and list(limited.qrels) == ["qa:en"]
    # per-language breakdown of an oracle run: recall@1 is 1/2 (two relevant), map@20 is 1
    oracle = {q: sorted(rel) for q, rel in corpus.qrels.items()}
    by_lang = evaluate_by_group(oracle, corpus.qrels, {q.id: q.language for q in corpus.queries}, ks=(1,))
    assert by_lang["de"]["recall@1"] == 0.5 and by_lang["de"]["map@20"] == 1.0


def test_xquad_errors(squad_dir: Path):
    with pytest.raises(FileNotFoundError, match=r"xquad\.ru\.json"):
        xquad_paragraph_pool(squad_dir, ["en"], ["ru"])
    with pytest.raises(TypeError, match="as a list"):
        xquad_r_sentence_pool(squad_dir, "en")
    broken = _squad("ru")
    del broken["data"][1]["paragraphs"][0]["qas"][1]
    (squad_dir / "ru.json").write_text(json.dumps(broken), encoding="utf-8")
    with pytest.raises(SourceError, match="not parallel"):
        xquad_r_sentence_pool(squad_dir, ["en", "ru"])
    (squad_dir / "ru.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(SourceError, match="not a SQuAD-format"):
        xquad_r_sentence_pool(squad_dir, ["ru"])


def _write(folder: Path, name: str, data: dict) -> None:
    (folder / name).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def test_xquad_r_breaks_off_by_two_are_repaired_from_the_sentences(squad_dir: Path, caplog: pytest.LogCaptureFixture):
    """Like LAReQA's Turkish article 9 paragraph 3: every break two characters late."""
    clean = xquad_r_sentence_pool(squad_dir, ["en", "de"])
    shifted = _squad("de")
    paragraph = shifted["data"][1]["paragraphs"][0]
    paragraph["sentence_breaks"] = [[s + 2, e + 2] for s, e in paragraph["sentence_breaks"]]
    _write(squad_dir, "de.json", shifted)
    with caplog.at_level("WARNING", logger="babelrank.evaluation.datasets"):
        repaired = xquad_r_sentence_pool(squad_dir, ["en", "de"])
    assert repaired.qrels == clean.qrels and repaired.documents == clean.documents
    assert "1 record" in caplog.text and "de.json article 1 paragraph 0" in caplog.text


@pytest.mark.parametrize("defect", ["mojibake", "answer outside", "no answers"])
def test_xquad_r_unrepairable_record_is_skipped_and_the_rest_evaluated(
    squad_dir: Path, defect: str, caplog: pytest.LogCaptureFixture
):
    broken = _squad("de")
    paragraph = broken["data"][1]["paragraphs"][0]
    if defect == "mojibake":  # the context garbled (ö -> Ã¶), its sentences and breaks as published
        paragraph["context"] = paragraph["context"].replace("gamma", "gÃ¶mma")
    elif defect == "answer outside":
        paragraph["qas"][0]["answers"][0]["answer_start"] = 999
    else:
        del paragraph["qas"][1]["answers"]
    _write(squad_dir, "de.json", broken)
    with caplog.at_level("WARNING", logger="babelrank.evaluation.datasets"):
        corpus = xquad_r_sentence_pool(squad_dir, ["en", "de"])
    # German paragraph (1, 0) is left out: its two sentences and its two questions
    assert corpus.counts() == {"documents": {"en": 6, "de": 5}, "queries": {"en": 4, "de": 2}}
    assert "qc:de" not in corpus.qrels and "xquad-r:de:1:0:0" not in {d.id for d in corpus.documents}
    assert corpus.qrels["qc:en"] == {"xquad-r:en:1:0:1"}  # relevant in the languages that remain
    assert corpus.qrels["qa:de"] == {"xquad-r:en:0:0:0", "xquad-r:de:0:0:0"}
    assert "skipped 1 of 6" in caplog.text and "de.json article 1 paragraph 0" in caplog.text


def test_xquad_r_with_every_record_broken_is_an_error(squad_dir: Path):
    broken = _squad("de")
    for article in broken["data"]:
        for paragraph in article["paragraphs"]:
            paragraph["context"] = "garbled"
    _write(squad_dir, "de.json", broken)
    with pytest.raises(SourceError, match="no usable paragraph"):
        xquad_r_sentence_pool(squad_dir, ["de"])


def test_xquad_paragraph_with_a_defect_is_skipped(squad_dir: Path, caplog: pytest.LogCaptureFixture):
    broken = _squad("de")
    broken["data"][0]["paragraphs"][1]["context"] = None
    _write(squad_dir, "xquad.de.json", broken)
    with caplog.at_level("WARNING", logger="babelrank.evaluation.datasets"):
        corpus = xquad_paragraph_pool(squad_dir, ["en", "de"], ["en", "de"])
    assert corpus.counts() == {"documents": {"en": 3, "de": 2}, "queries": {"en": 4, "de": 3}}
    assert corpus.qrels["qb:en"] == {"xquad:en:0:1"}
    assert "skipped 1 of 6" in caplog.text and "xquad.de.json article 0 paragraph 1" in caplog.text


# --- user data ------------------------------------------------------------------------------


def test_load_user_judgements(tmp_path: Path):
    path = tmp_path / "judgements.jsonl"
    lines = [
        {"query": "Де міст?", "relevant": ["doc-1", "Міст біля річки."], "id": "bridge", "language": "uk"},
        {"query": "kettle", "relevant": ["doc-7"], "id": 5},
    ]
    text = json.dumps(lines[0], ensure_ascii=False) + "\n\n" + json.dumps(lines[1]) + "\n"
    path.write_text(text, encoding="utf-8")
    first, second = load_user_judgements(path)
    assert (first.query.id, first.query.language) == ("bridge", "uk")
    assert first.relevant == ("doc-1", "Міст біля річки.")
    assert (second.query.id, second.query.text, second.query.language) == ("5", "kettle", None)
    path.write_text(json.dumps({"query": "a", "relevant": ["d"]}) + "\n", encoding="utf-8")
    assert load_user_judgements(path)[0].query.id == "q1"


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"relevant": ["d"]}', "'query' must be"),
        ('{"query": "q", "relevant": []}', "'relevant' must be"),
        ('{"query": "q", "relevant": "d"}', "'relevant' must be"),
        ('{"query": "q", "relevant": ["d"], "language": 7}', "'language' must be"),
        ('{"query": "q", "relevant": ["d"], "id": "ok"}', "duplicate query id 'ok'"),
    ],
)
def test_load_user_judgements_bad_line(tmp_path: Path, bad_line: str, message: str):
    path = tmp_path / "judgements.jsonl"
    path.write_text('{"query": "q", "relevant": ["d"], "id": "ok"}\n\n' + bad_line + "\n", encoding="utf-8")
    with pytest.raises(SourceError, match=rf"judgements\.jsonl:3: {message}"):
        load_user_judgements(path)


def test_load_trec_qrels_and_queries(tmp_path: Path):
    qrels_path = tmp_path / "qrels.txt"
    qrels_path.write_text("q1 0 d1 1\nq1 0 d2 0\n\nq2\tQ0\td3\t2\n", encoding="utf-8")
    assert load_trec_qrels(qrels_path) == {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}
    tsv = tmp_path / "queries.tsv"
    tsv.write_text("q1\tДе міст?\tuk\nq2\twhere is the bridge?\n", encoding="utf-8")
    assert load_queries(tsv) == [EvalQuery("q1", "Де міст?", "uk"), EvalQuery("q2", "where is the bridge?", None)]
    jsonl = tmp_path / "queries.jsonl"
    jsonl.write_text('{"id": "q1", "text": "a", "language": "en"}\n{"id": 2, "query": "b"}\n', encoding="utf-8")
    assert load_queries(jsonl) == [EvalQuery("q1", "a", "en"), EvalQuery("2", "b", None)]
    run = {"q1": ["d2", "d1"], "q2": ["d3"]}
    assert evaluate_run(run, load_trec_qrels(qrels_path), ks=(1,))["recall@1"] == 0.5


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("qrels.txt", "q1 0 d1 1\nq1 0 d1\n", r"qrels\.txt:2: expected 'qid iteration docid relevance'"),
        ("qrels.txt", "q1 0 d1 1\nq1 0 d2 high\n", r"qrels\.txt:2: relevance 'high' is not an integer"),
        ("qrels.txt", "q1 0 d1 1\nq1 0 d1 0\n", r"qrels\.txt:2: duplicate judgement"),
        ("queries.tsv", "q1\ta\nq2 no tab\n", r"queries\.tsv:2: expected 'qid<TAB>text"),
        ("queries.tsv", "q1\ta\nq1\tb\n", r"queries\.tsv:2: duplicate query id 'q1'"),
        ("queries.jsonl", '{"id": "q1", "text": "a"}\n{"text": "b"}\n', r"queries\.jsonl:2: missing 'id'"),
    ],
)
def test_trec_files_bad_line(tmp_path: Path, name: str, content: str, message: str):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    loader = load_trec_qrels if name.startswith("qrels") else load_queries
    with pytest.raises(SourceError, match=message):
        loader(path)


# --- real data ------------------------------------------------------------------------------

TATOEBA_LINES = {
    "ukr": 1000, "rus": 1000, "deu": 1000, "fra": 1000, "slk": 1000, "mkd": 1000, "lit": 1000, "est": 1000,
    "afr": 1000, "hrv": 1000, "srp": 1000, "hye": 742, "kat": 746, "aze": 1000, "uzb": 428, "tat": 1000,
}  # fmt: skip


@pytest.fixture(scope="module")
def data_dir() -> Path:
    root = os.environ.get("BABELRANK_TEST_DATA")
    if not root:
        pytest.skip("set BABELRANK_TEST_DATA to a folder holding tatoeba/, xquad/ and xquad-r/ to run real-data tests")
    return Path(root)


def test_real_tatoeba(data_dir: Path):
    folder = data_dir / "tatoeba"
    assert available_tatoeba_languages(folder) == sorted(TATOEBA_LINES)
    for lang3, n in TATOEBA_LINES.items():
        corpus = tatoeba_mixed_pool(folder, lang3)
        lang = corpus.queries[0].language
        assert lang is not None and len(lang) == 2, f"{lang3} has no ISO 639-1 code"
        assert corpus.counts() == {"documents": {"en": n, lang: n}, "queries": {lang: n}}
        assert len(tatoeba_english_only(folder, lang3).documents) == n


def test_real_xquad_r_counts(data_dir: Path):
    sentences = {"en": 1180, "ru": 1219, "de": 1276, "es": 1215}  # LAReQA README / SOURCE.md
    corpus = xquad_r_sentence_pool(data_dir / "xquad-r", list(sentences))
    assert corpus.counts() == {"documents": sentences, "queries": {lang: 1190 for lang in sentences}}
    assert all(len(rel) == 4 and {r.split(":")[1] for r in rel} == set(sentences) for rel in corpus.qrels.values())
    docs = {d.id: d for d in corpus.documents}
    # "How many points did the Panthers defense surrender?" -> the sentence holding "308"
    (en_answer,) = [d for d in corpus.qrels["56beb4343aeaaa14008c925b:ru"] if d.startswith("xquad-r:en:")]
    assert "308 points" in docs[en_answer].text


def test_real_xquad_paragraphs(data_dir: Path):
    corpus = xquad_paragraph_pool(data_dir / "xquad", ["en", "ru", "de", "es"], ["ru"])
    assert corpus.counts() == {"documents": {lang: 240 for lang in ("en", "ru", "de", "es")}, "queries": {"ru": 1190}}
