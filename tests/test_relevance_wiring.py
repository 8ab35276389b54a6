"""`relevance`, `answerable`, `min_relevance` and "no answer here" on every interface (tiny models),
and a real-model check of the relevance on an XQuAD slice (CI).

The tiny random model's relevance is noise: these tests check the wiring (the field, the
filter, the empty answer, the calibration's life cycle), not its quality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from llama_index.core.llms import MockLLM

from babelrank import BabelIndex
from babelrank.query.relevance_fit import PSEUDO_QUERIES, cloze, split_sentences
from babelrank.store.chroma import RELEVANCE_KEY

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"


TOPICS = ["rivers and bridges", "bread and honey at the market", "the library on Saturdays", "a blue bicycle",
          "trains at the station", "umbrellas in the rain"]
MORE = [f"Note {i} is about {TOPICS[i % len(TOPICS)]}. It adds detail number {i}." for i in range(40)]
"""With examples/data (31 chunks on the tiny model): over `MIN_CHUNKS` (50), so relevance is calibrated."""
SIXTY = MORE + [f"Extra text {i} on {TOPICS[i % 6]}. Second sentence {i}." for i in range(20)]


@pytest.fixture
def index(make_index: Callable[..., BabelIndex]) -> BabelIndex:
    idx = make_index(rerank_model="none")
    idx.ingest([DATA])
    idx.ingest_texts(MORE)
    return idx


def test_every_result_has_a_relevance_and_the_search_says_whether_it_is_answerable(index: BabelIndex) -> None:
    calibration = index.relevance.current()
    assert calibration is not None and calibration.reference_size == index.store.count()
    assert calibration.queries == min(PSEUDO_QUERIES, index.store.count())
    assert {"uk", "ru", "en"} <= set(calibration.languages)
    result = index.search("Червоний автомобіль стоїть біля будинку", top_k=200, top_n=200, min_relevance=None)
    values = [n.node.metadata["relevance"] for n in result.nodes]
    assert len(values) == index.store.count() and all(0.0 <= v <= 1.0 for v in values)
    assert result.answerable == (max(values) >= 0.5)  # every candidate is shown here
    assert "relevance" in result.timings


def test_min_relevance_drops_results_below_it(index: BabelIndex, pin_relevance: Callable[[Any], None]) -> None:
    pin_relevance(index)
    query = "the library opens on Saturdays"
    everything = index.search(query, top_k=200, top_n=200, min_relevance=None).nodes
    values = sorted(n.node.metadata["relevance"] for n in everything)
    cut = values[len(values) // 2]
    kept = index.search(query, top_k=200, top_n=200, min_relevance=cut)
    assert kept.nodes and all(n.node.metadata["relevance"] >= cut for n in kept.nodes)
    assert len(kept.nodes) == sum(v >= cut for v in values) < len(everything)
    assert kept.answerable == (values[-1] >= cut)
    none = index.search(query, min_relevance=1.0)
    assert none.nodes == [] and none.answerable is False
    assert index.search(query, min_relevance=0.0).answerable is True


def test_the_setting_is_the_default_and_is_checked(make_index: Callable[..., BabelIndex],
                                                   pin_relevance: Callable[[Any], None]) -> None:
    idx = make_index(rerank_model="none", min_relevance=0.9)
    idx.ingest([DATA])
    idx.ingest_texts(MORE)
    pin_relevance(idx)
    assert idx.search("river").nodes == []
    assert idx.search("river", min_relevance=None).nodes
    from babelrank.errors import ConfigError

    with pytest.raises(ConfigError, match="min_relevance"):
        make_index(min_relevance=1.5)
    with pytest.raises(ValueError, match="min_relevance"):
        idx.search("river", min_relevance=-0.1)


class CountingLLM(MockLLM):
    calls: int = 0

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        type(self).calls += 1
        return super().complete(prompt, formatted=formatted, **kwargs)


def test_the_query_engine_does_not_call_the_llm_when_nothing_is_relevant(
    index: BabelIndex, pin_relevance: Callable[[Any], None]
) -> None:
    pin_relevance(index)
    CountingLLM.calls = 0
    empty = index.as_query_engine(llm=CountingLLM(max_tokens=8), min_relevance=1.0).query("river")
    assert str(empty) == index.settings.no_answer_message and empty.source_nodes == []
    assert empty.metadata == {"answerable": False} and CountingLLM.calls == 0
    custom = index.as_query_engine(llm=CountingLLM(max_tokens=8), min_relevance=1.0, no_answer_message="Nothing.")
    assert str(custom.query("river")) == "Nothing."
    answered = index.as_query_engine(llm=CountingLLM(max_tokens=8), min_relevance=None).query("river")
    assert answered.source_nodes and CountingLLM.calls >= 1


def test_async_query_engine_no_answer(index: BabelIndex, pin_relevance: Callable[[Any], None]) -> None:
    import asyncio

    pin_relevance(index)
    engine = index.as_query_engine(llm=CountingLLM(max_tokens=8), min_relevance=1.0, no_answer_message="none here")
    assert str(asyncio.run(engine.aquery("river"))) == "none here"


def test_the_calibration_is_refit_when_the_collection_doubles_not_before(make_index: Callable[..., BabelIndex]) -> None:
    idx = make_index(rerank_model="none")
    idx.ingest_texts(MORE[:30])
    assert idx.relevance.current() is None  # under MIN_CHUNKS
    idx.ingest_texts(MORE[30:] + [f"Text number {i} speaks of rivers. It has a second sentence {i}." for i in range(20)])
    first = idx.relevance.current()
    assert first is not None and first.reference_size == 60
    idx.ingest_texts(["One more text about a mill. Near the water."])
    assert idx.relevance.current() == first  # 61 chunks: not stale
    idx.ingest_texts([f"Another text {i} on bridges. Old and new {i}." for i in range(60)])
    assert idx.relevance.current().reference_size == 121
    idx.delete(sorted(idx.documents())[0])
    assert idx.relevance.current().reference_size == 121  # one fewer: not stale


def test_the_calibration_survives_reopening_and_is_made_for_an_old_collection(
    make_index: Callable[..., BabelIndex], tmp_path: Path
) -> None:
    idx = make_index(rerank_model="none", store_path=tmp_path / "s")
    idx.ingest_texts(SIXTY)
    saved = idx.relevance.current()
    assert saved is not None
    idx.store.update_meta(RELEVANCE_KEY, lambda _: {})  # as a collection written before relevance existed
    idx.close()
    again = make_index(rerank_model="none", store_path=tmp_path / "s")
    assert again.relevance.current() == saved  # refit on open; the same draw gives the same fit


def test_a_fit_embeds_in_slices_of_four_batches(make_index: Callable[..., BabelIndex], monkeypatch: pytest.MonkeyPatch) -> None:
    idx = make_index(rerank_model="none", embed_batch_size=2)
    sizes: list[int] = []
    real = idx.encoder._encode_locked

    def counting(texts: list[str], prompt: str, batch_size: int, progress: bool) -> Any:
        sizes.append(len(texts))
        return real(texts, prompt, batch_size, progress)

    idx.ingest_texts(SIXTY)
    monkeypatch.setattr(idx.encoder, "_encode_locked", counting)
    idx.store.update_meta(RELEVANCE_KEY, lambda _: {})
    assert idx.relevance.refresh() is not None
    assert len(sizes) >= 2 * 8 and max(sizes) <= 4 * 2  # 60 pseudo-queries and 60 clozes, eight at a time


def test_a_tiny_collection_has_no_relevance_and_filters_nothing(make_index: Callable[..., BabelIndex]) -> None:
    idx = make_index(rerank_model="none", min_relevance=0.99)
    idx.ingest([DATA])
    result = idx.search("river")
    assert idx.relevance.current() is None and result.answerable is None
    assert result.nodes and all("relevance" not in n.node.metadata for n in result.nodes)


def test_a_pseudo_query_holds_out_its_whole_document(make_index: Callable[..., BabelIndex]) -> None:
    from babelrank.query.relevance_fit import CollectionVectors

    idx = make_index(rerank_model="none", chunk_tokens=16, chunk_overlap=0)
    idx.ingest_texts([" ".join(f"Sentence {j} of document {i} tells of rivers and bridges." for j in range(6))
                      for i in range(12)])
    coll = CollectionVectors.from_store(idx.store, idx.searcher.scorer("on"), None)
    k = 0
    same = coll.documents == coll.documents[k]
    assert same.sum() > 1 and (coll.held_out(k) == same).all()  # no translation test: the document only
    one = make_index(rerank_model="none", chunk_tokens=16, chunk_overlap=0, store_path=idx.settings.store_path.parent / "one")
    one.ingest_texts([" ".join(f"Sentence {j} tells of a single long document." for j in range(80))])
    assert one.store.count() >= 50 and one.relevance.current() is None  # every chunk is the document: no null


def test_sentences_and_cloze() -> None:
    assert split_sentences("The cat sat. The dog ran! Why? 42 is it.") == ["The cat sat.", "The dog ran!", "Why?", "42 is it."]
    assert split_sentences("Кіт сидів. Пес біг.") == ["Кіт сидів.", "Пес біг."]
    assert split_sentences("猫坐着。狗跑了。") == ["猫坐着。", "狗跑了。"]
    assert split_sentences("e.g. not a split here") == ["e.g. not a split here"]
    sentence, rest = cloze("One. Two. Three.", np.random.default_rng(0))
    assert sentence in {"One.", "Two.", "Three."} and sentence not in rest and len(rest.split()) == 2
    assert cloze("Single sentence", np.random.default_rng(0)) == ("Single sentence", "Single sentence")


# ---- real model (CI) -------------------------------------------------------------------


def _auroc(pos: list[float], neg: list[float]) -> float:
    p, n = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float((p > n).mean() + 0.5 * (p == n).mean())


@pytest.mark.real_model
def test_relevance_separates_answerable_from_unanswerable_questions_on_xquad(
    e5_path: Path, real_data_dir: Path, tmp_path: Path
) -> None:
    """XQuAD en+ru, 60 paragraph ids, the paragraphs of half of them removed in both languages;
    English and Russian questions: the top result's relevance ranks answerable above
    unanswerable ones (study level on the whole set: AUROC 0.91; chance 0.5)."""
    from babelrank.evaluation import xquad_paragraph_pool
    from babelrank.ingest.sources import SourceDocument

    corpus = xquad_paragraph_pool(real_data_dir / "xquad", ["en", "ru"], ["en", "ru"], limit=60)
    position = lambda doc_id: doc_id.split(":", 2)[-1]  # noqa: E731  "<article>:<paragraph>", the same in every language
    pids = sorted({position(d.id) for d in corpus.documents})
    removed = set(np.random.default_rng(0).permutation(pids)[: len(pids) // 2])
    kept = [d for d in corpus.documents if position(d.id) not in removed]
    with BabelIndex(embed_model=str(e5_path), rerank_model="none", store_path=tmp_path / "s", progress=False,
                    backend="torch", min_relevance="none") as idx:
        idx.ingest_documents([SourceDocument(d.id, d.text, "xquad", {}) for d in kept])
        top = {True: [], False: []}
        for q in corpus.queries[::3]:
            answerable = any(position(doc) not in removed for doc in corpus.qrels[q.id])
            nodes = idx.search(q.text, top_n=1).nodes
            top[answerable].append(nodes[0].node.metadata["relevance"])
    auroc = _auroc(top[True], top[False])
    print(f"XQuAD en+ru slice: AUROC {auroc:.3f} ({len(top[True])} answerable, {len(top[False])} not)")
    assert len(top[True]) >= 20 and len(top[False]) >= 20
    assert auroc >= 0.8
