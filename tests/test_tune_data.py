"""Training data of `babelrank tune`: user pairs, parallel text, XQuAD, mining, held-out split."""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from babelrank.errors import ConfigError, SourceError
from babelrank.models.language import make_detector
from babelrank.store.calibration import LanguageCalibration
from babelrank.store.chroma import ChromaStore
from babelrank.tune.data import (
    ParallelSpec,
    parse_parallel_spec,
    read_pairs,
    read_parallel,
    split_held_out,
    xquad_pairs,
)
from babelrank.tune.examples import Example, TrainingData
from babelrank.tune.mining import mine_from_index, mine_pairs, mutual_nearest

UK = "Червоний автомобіль стоїть біля будинку на вулиці."
RU = "Красная машина стоит возле дома у реки."
EN = "The red car is parked outside the house near the river."


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- user pairs ---------------------------------------------------------------------------


def test_jsonl_pairs_with_alias_negative_and_detected_languages(tmp_path: Path) -> None:
    path = _write(tmp_path / "pairs.jsonl", "\n".join([
        json.dumps({"query": EN, "positive": UK, "negative": RU, "query_language": "eng"}),
        "",
        json.dumps({"anchor": RU, "positive": EN, "positive_language": "en"}),
    ]) + "\n")
    first, second = read_pairs(path, detector=make_detector(expected_languages=["uk", "ru", "en"]))
    assert first == Example(EN, UK, RU, "en", "uk", "pairs")
    assert second == Example(RU, EN, None, "ru", "en", "pairs")


def test_tsv_pairs_with_header_and_optional_negative(tmp_path: Path) -> None:
    path = _write(tmp_path / "pairs.tsv", f"query\tpositive\tnegative\n{EN}\t{UK}\n{EN}\t{RU}\t{UK}\n")
    examples = read_pairs(path)
    assert [(e.anchor, e.positive, e.negative) for e in examples] == [(EN, UK, None), (EN, RU, UK)]
    assert [e.language_pair for e in examples] == ["en-uk", "en-ru"]
    assert TrainingData(examples).counts() == {"pairs": {"en-ru": 1, "en-uk": 1}}


def test_undetectable_language_is_und(tmp_path: Path) -> None:
    (example,) = read_pairs(_write(tmp_path / "p.tsv", f"42\t{EN}\n"))
    assert (example.anchor_language, example.positive_language) == ("und", "en")


@pytest.mark.parametrize("name, lines, line, words", [
    ("p.jsonl", ['{"query": "a b c", "positive": "d e f"}', "{not json"], 2, "not valid JSON"),
    ("p.jsonl", ['{"query": "a b c"}'], 1, "'positive'"),
    ("p.jsonl", ['["a", "b"]'], 1, "JSON object"),
    ("p.jsonl", ['{"query": "a", "anchor": "b", "positive": "c"}'], 1, "'anchor'"),
    ("p.jsonl", ['{"query": "a", "positive": "c", "query_language": "zz9"}'], 1, "query_language"),
    ("p.tsv", [f"{EN}\t{UK}", "", f"{EN}"], 3, "query<TAB>positive"),
    ("p.tsv", [f"{EN}\t{UK}\t{RU}\textra"], 1, "4 fields"),
    ("p.tsv", [f"\t{UK}"], 1, "the query"),
])
def test_bad_pair_lines_name_file_and_line(tmp_path: Path, name: str, lines: list[str], line: int, words: str) -> None:
    path = _write(tmp_path / name, "\n".join(lines) + "\n")
    with pytest.raises(SourceError, match=rf"{name}:{line}: .*{words}"):
        read_pairs(path)


def test_pairs_file_not_utf8_empty_or_missing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(f"{EN}\t{UK}\n".encode() + b"caf\xe9\tx\n")
    with pytest.raises(SourceError, match="bad.tsv:2: not UTF-8"):
        read_pairs(bad)
    with pytest.raises(SourceError, match="no pairs"):
        read_pairs(_write(tmp_path / "empty.tsv", "query\tpositive\n\n"))
    with pytest.raises(FileNotFoundError):
        read_pairs(tmp_path / "missing.tsv")


# --- parallel text ------------------------------------------------------------------------


def test_parse_parallel_spec() -> None:
    assert parse_parallel_spec("ru-en:data/pairs.tsv") == ParallelSpec(Path("data/pairs.tsv"), ("ru", "en"))
    assert parse_parallel_spec("ukr-eng:p.tsv").languages == ("uk", "en")
    assert parse_parallel_spec("data/tatoeba") == ParallelSpec(Path("data/tatoeba"))
    with pytest.raises(ConfigError):
        parse_parallel_spec("qq-en:p.tsv")
    with pytest.raises(ConfigError):
        parse_parallel_spec("  ")


def test_parallel_tsv_anchor_is_the_pivot_side(tmp_path: Path) -> None:
    path = _write(tmp_path / "ru-en.tsv", f"{RU}\t{EN}\nПривет.\tHello.\n")
    examples = read_parallel(f"ru-en:{path}")
    assert [(e.anchor, e.positive, e.language_pair, e.source) for e in examples] == [
        (EN, RU, "en-ru", "parallel"), ("Hello.", "Привет.", "en-ru", "parallel")]
    no_pivot = read_parallel(path, languages=["ru", "uk"])
    assert no_pivot[0] == Example(RU, EN, None, "ru", "uk", "parallel")
    with pytest.raises(ConfigError, match="give the languages"):
        read_parallel(path)
    with pytest.raises(ConfigError, match="two languages"):
        read_parallel(path, languages=["ru", "en", "uk"])


def test_parallel_tsv_bad_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.tsv", f"{RU}\t{EN}\n{RU}\n")
    with pytest.raises(SourceError, match=r"p.tsv:2: .*1 fields"):
        read_parallel(ParallelSpec(path, ("ru", "en")))


def test_parallel_tatoeba_folder_and_file(tmp_path: Path) -> None:
    _write(tmp_path / "tatoeba.ukr-eng.ukr", f"{UK}\nДобрий день.\n")
    _write(tmp_path / "tatoeba.ukr-eng.eng", f"{EN}\nGood afternoon.\n")
    _write(tmp_path / "tatoeba.rus-eng.rus", f"{RU}\n")
    _write(tmp_path / "tatoeba.rus-eng.eng", f"{EN}\n")
    everything = read_parallel(tmp_path)
    assert TrainingData(everything).counts() == {"parallel": {"en-ru": 1, "en-uk": 2}}
    assert Example(EN, UK, None, "en", "uk", "parallel") in everything
    assert read_parallel(tmp_path / "tatoeba.ukr-eng.eng") == read_parallel(tmp_path, languages=["uk", "en"])
    assert read_parallel(tmp_path, languages=["uk", "ru"]) == everything
    assert [e.anchor for e in read_parallel(tmp_path / "tatoeba.rus-eng.rus", pivot=None)] == [RU]
    with pytest.raises(ConfigError, match="no Tatoeba pair"):
        read_parallel(tmp_path, languages=["de", "en"])


# --- XQuAD --------------------------------------------------------------------------------


def _squad(path: Path, lang: str, articles: int) -> None:
    data = [{"title": f"t{a}", "paragraphs": [{
        "context": f"{lang} paragraph {a}.{p}",
        "qas": [{"id": f"q{a}{p}", "question": f"{lang} question {a}.{p}?",
                 "answers": [{"text": "x", "answer_start": 0}]}],
    } for p in range(2)]} for a in range(articles)]
    path.write_text(json.dumps({"data": data}), encoding="utf-8")


def test_xquad_pairs_cross_language_training_articles_only(tmp_path: Path, caplog) -> None:
    for lang in ("en", "ru", "de"):
        _squad(tmp_path / f"xquad.{lang}.json", lang, 3)
    examples = xquad_pairs(tmp_path, ["en", "ru", "de"], articles=range(0, 2))
    assert len(examples) == 2 * 2 * 6  # articles x paragraphs x ordered language pairs
    assert all(e.anchor_language != e.positive_language and e.source == "pairs" for e in examples)
    assert all(e.anchor.split()[2].rstrip("?") == e.positive.split()[2] for e in examples)  # same paragraph
    assert not any(" 2." in e.anchor for e in examples)
    assert Example("ru question 0.1?", "de paragraph 0.1", None, "ru", "de", "pairs") in examples
    with caplog.at_level(logging.WARNING):
        xquad_pairs(tmp_path, ["en", "ru"], articles=[0, 40])
    assert "evaluation articles" in caplog.text
    with pytest.raises(ConfigError):
        xquad_pairs(tmp_path, ["en", "eng"])


# --- held-out split -----------------------------------------------------------------------


def _chained_examples() -> list[Example]:
    examples = []
    for i in range(300):  # groups of 3: a-b, b-c share "b"; plus a parallel pair sharing "c"
        examples += [Example(f"a{i}", f"b{i}", source="pairs"), Example(f"c{i}", f"b{i}", source="mined"),
                     Example(f"c{i}", f"d{i}", source="parallel")]
    return examples + [Example(f"solo{i}", f"x{i}", source="pairs") for i in range(300)]


def test_split_held_out_no_text_on_both_sides_and_deterministic() -> None:
    examples = _chained_examples()
    train, held = split_held_out(TrainingData(examples), fraction=0.2, seed=7)
    assert len(train) + len(held) == len(examples)
    train_texts = {t for e in train.examples for t in (e.anchor, e.positive)}
    held_texts = {t for e in held.examples for t in (e.anchor, e.positive)}
    assert not train_texts & held_texts
    share = Counter(e.source for e in held.examples)
    assert 0.1 < share["parallel"] / 300 < 0.3 and 0.1 < share["mined"] / 300 < 0.3
    shuffled = examples[:]
    random.Random(1).shuffle(shuffled)
    again_train, again_held = split_held_out(shuffled, fraction=0.2, seed=7)
    assert set(again_held.examples) == set(held.examples)
    assert set(split_held_out(examples, 0.2, seed=8)[1].examples) != set(held.examples)
    assert len(split_held_out(examples, 0.0)[1]) == 0
    with pytest.raises(ConfigError):
        split_held_out(examples, 1.0)


# --- mining -------------------------------------------------------------------------------


def test_mutual_nearest_keeps_only_mutual_pairs_over_the_threshold() -> None:
    a = np.eye(3, dtype=np.float32)
    b = np.asarray([[1, 0, 0], [0.9, 0.1, 0], [0, 0.6, 0.8]], dtype=np.float32)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    # a0-b0 mutual; b1's best is a0 (taken): no pair; a1's best b2 prefers a2 -> a2-b2 only
    assert [(i, j) for i, j, _ in mutual_nearest(a, b, 0.0, block=1)] == [(0, 0), (2, 2)]
    assert [(i, j) for i, j, _ in mutual_nearest(a, b, 0.9)] == [(0, 0)]
    assert mutual_nearest(a[:0], b, 0.0) == []


LANGS = ("en", "ru", "uk")


def _synthetic_store(tmp_path: Path, n: int = 40, seed: int = 0) -> ChromaStore:
    """`n` contents in en/ru/uk (vector = content + language offset + noise), each language
    with its own 10 extra chunks, 5 undetermined chunks and one text tagged twice."""
    rng = np.random.default_rng(seed)
    d = 32
    content = rng.normal(size=(n, d))
    offsets = {lang: rng.normal(size=d) for lang in LANGS}
    store = ChromaStore("tune-mining", {"model": "synthetic"}, path=tmp_path / "store")
    for lang in LANGS:
        own = rng.normal(size=(10, d))
        vectors = np.concatenate([content, own]) + offsets[lang] + 0.3 * rng.normal(size=(n + 10, d))
        ids = [f"{lang}:{i}" for i in range(n)] + [f"{lang}:own{i}" for i in range(10)]
        texts = [f"content {i} ({lang})" for i in range(n)] + [f"own {i} ({lang})" for i in range(10)]
        store.upsert(ids, (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32),
                     texts, [{"language": lang}] * len(ids))
    und = rng.normal(size=(5, d)).astype(np.float32)
    store.upsert([f"und:{i}" for i in range(5)], und, [f"und {i}" for i in range(5)], [{"language": "und"}] * 5)
    same = rng.normal(size=d)  # one text in two languages: a mutual pair, left out
    store.upsert(["en:same", "ru:same"], np.stack([same + offsets["en"], same + offsets["ru"]]).astype(np.float32),
                 ["2024", "2024"], [{"language": "en"}, {"language": "ru"}])
    return store


def _content(text: str) -> str:
    return text.split(" (")[0]


def test_mining_finds_cross_language_translations_once_each(tmp_path: Path) -> None:
    with _synthetic_store(tmp_path) as store:
        examples = mine_pairs(store, threshold=0.61)
        counts = TrainingData(examples).counts()["mined"]
        assert set(counts) == {"en-ru", "en-uk", "ru-uk"}  # English anchors; ru before uk
        assert all(count >= 36 for count in counts.values()), counts
        assert all(e.anchor_language != e.positive_language and e.source == "mined" for e in examples)
        correct = sum(_content(e.anchor) == _content(e.positive) for e in examples)
        assert correct / len(examples) >= 0.95
        assert not any("und" in (e.anchor + e.positive) or e.anchor == "2024" for e in examples)
        for pair in counts:  # mutual: a chunk is in at most one pair per other language
            chosen = [e for e in examples if e.language_pair == pair]
            assert len({e.anchor for e in chosen}) == len({e.positive for e in chosen}) == len(chosen)
        assert all(e.negative is None for e in examples)


def test_mining_hard_negatives_and_given_calibration(tmp_path: Path) -> None:
    with _synthetic_store(tmp_path) as store:
        calibration = LanguageCalibration(32)
        for _, metadatas, vectors in store.iter_all(include_embeddings=True):
            calibration.add(vectors, [m["language"] for m in metadatas])
        plain = mine_pairs(store, 0.61)
        examples = mine_pairs(store, 0.61, calibration=calibration, hard_negatives=True, block=7)
        assert [(e.anchor, e.positive) for e in examples] == [(e.anchor, e.positive) for e in plain]
        assert all(e.negative is not None for e in examples)
        for e in examples:
            assert e.negative != e.positive and (e.negative.endswith(f"({e.positive_language})") or e.negative == "2024")
            assert _content(e.negative) != _content(e.anchor)
        pivotless = mine_pairs(store, 0.61, pivot=None)
        assert set(TrainingData(pivotless).counts()["mined"]) == {"en-ru", "en-uk", "ru-uk"}
        russian_pivot = mine_pairs(store, 0.61, pivot="ru")
        assert set(TrainingData(russian_pivot).counts()["mined"]) == {"ru-en", "ru-uk", "en-uk"}


def test_mining_a_tiny_collection_gives_nothing(tmp_path: Path, caplog) -> None:
    with ChromaStore("tune-tiny", {"model": "synthetic"}, path=tmp_path) as store:
        store.upsert(["a", "b"], np.eye(2, 4, dtype=np.float32), ["x", "y"], [{"language": "en"}, {"language": "ru"}])
        with caplog.at_level(logging.WARNING):
            assert mine_pairs(store, 0.61) == []
    assert "fewer than" in caplog.text


def test_mine_from_index_on_an_ingested_collection(make_index) -> None:
    """Wiring on a tiny random model (its vectors mean nothing, so any mutual pair counts)."""
    index = make_index(expected_languages=["uk", "ru", "en"])
    texts = [f"{t} {i}" for i in range(8) for t in (UK, RU, EN)]
    index.ingest_texts(texts)
    examples = mine_from_index(index, threshold=-1.0)
    assert examples and all(e.anchor_language != e.positive_language for e in examples)
    assert set(TrainingData(examples).counts()["mined"]) <= {"en-ru", "en-uk", "ru-uk"}
    for pair in {e.language_pair for e in examples}:
        chosen = [e for e in examples if e.language_pair == pair]
        assert len({e.anchor for e in chosen}) == len({e.positive for e in chosen}) == len(chosen)


# --- real data ----------------------------------------------------------------------------

REAL_PARAGRAPHS = 30


@pytest.mark.real_model
def test_mining_xquad_with_e5_finds_true_translations(e5_path: Path, real_data_dir: Path, tmp_path: Path) -> None:
    """XQuAD en+ru, first 30 paragraphs each, ingested with the real e5 (torch): mined pairs are
    chunks of one paragraph (measured on 40 paragraphs: 37 pairs, all right; full figures in
    `babelrank.tune.mining`)."""
    from babelrank import BabelIndex
    from babelrank.evaluation import xquad_paragraph_pool
    from babelrank.ingest.sources import SourceDocument

    corpus = xquad_paragraph_pool(real_data_dir / "xquad", ["en", "ru"], ["en"], limit=REAL_PARAGRAPHS)
    start = time.perf_counter()
    with BabelIndex(embed_model=str(e5_path), rerank_model="none", store_path=tmp_path, progress=False) as index:
        index.ingest_documents([SourceDocument(d.id, d.text, "xquad", {}) for d in corpus.documents])
        examples = mine_from_index(index, hard_negatives=True)
        texts = {d.text: d.id.split(":", 2)[2] for d in corpus.documents}

    def where(text: str) -> str:
        return texts.get(text) or next(d.id.split(":", 2)[2] for d in corpus.documents if text in d.text)

    correct = sum(where(e.anchor) == where(e.positive) for e in examples)
    print(f"mined {len(examples)} pairs, {correct} of the same paragraph, {time.perf_counter() - start:.1f} s")
    assert {e.language_pair for e in examples} == {"en-ru"}
    assert len(examples) >= 0.6 * REAL_PARAGRAPHS
    assert correct / len(examples) >= 0.8


def _unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float32)


def test_hard_negative_is_never_the_positives_neighbouring_chunk(tmp_path: Path) -> None:
    """Chunk 1 of the positive's document (sharing its overlap) scores highest under the
    threshold; the negative is the next best, from another document."""
    rng = np.random.default_rng(3)
    content = rng.normal(size=(24, 64))
    offsets = {lang: rng.normal(size=64) for lang in ("en", "ru")}
    with ChromaStore("tune-negatives", {"model": "synthetic"}, path=tmp_path) as store:
        for lang in ("en", "ru"):
            store.upsert([f"{lang}:{i}" for i in range(24)], _unit(content + offsets[lang]),
                         [f"{lang} {i}" for i in range(24)],
                         [{"language": lang, "doc_id": f"{lang}-doc", "chunk_index": i} for i in range(24)])
        noise = _unit(rng.normal(size=(2, 64))) * np.linalg.norm(content[0])
        near, far = content[0] + 0.8 * noise[0], content[0] + 1.5 * noise[1]  # cosine to it ~0.78, ~0.55
        store.upsert(["ru:1", "ru:other"], _unit(np.stack([near, far]) + offsets["ru"]),
                     ["ru next", "ru other"], [{"language": "ru", "doc_id": "ru-doc", "chunk_index": 1},
                                               {"language": "ru", "doc_id": "ru-else", "chunk_index": 0}])
        (plain,) = [e for e in mine_pairs(store, 0.9, hard_negatives=True) if e.anchor == "en 0"]
        store.upsert(["ru:1"], _unit(content[1] + offsets["ru"])[None], ["ru 1"],
                     [{"language": "ru", "doc_id": "ru-doc-2", "chunk_index": 1}])
        store.upsert(["ru:next"], _unit(near + offsets["ru"])[None], ["ru next"],
                     [{"language": "ru", "doc_id": "ru-else", "chunk_index": 5}])
        (moved,) = [e for e in mine_pairs(store, 0.9, hard_negatives=True) if e.anchor == "en 0"]
    assert plain.positive == moved.positive == "ru 0"
    assert (plain.negative, moved.negative) == ("ru other", "ru next")
