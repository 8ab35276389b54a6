"""Translation-aware results: the pure grouping logic, the retriever wiring, language preferences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from llama_index.core.schema import MetadataMode

from babelrank.config import Settings
from babelrank.errors import ConfigError
from babelrank.models.bi_encoder import BiEncoder, load_bi_encoder
from babelrank.query.dedup import (
    FALLBACK_THRESHOLD,
    alternates,
    collapse_translations,
    default_threshold,
)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# ---- collapse_translations ------------------------------------------------------------------


def test_translations_collapse_and_distinct_content_stays() -> None:
    a, b = np.eye(4)[0], np.eye(4)[1]
    vectors = _unit(np.stack([a, a + 0.1 * np.eye(4)[2], b, a + 0.12 * np.eye(4)[3]]))
    groups = collapse_translations(vectors, [0.9, 0.8, 0.85, 0.7], ["en", "ru", "en", "de"], threshold=0.9)
    assert [(g.representative, g.members) for g in groups] == [(0, [0, 1, 3]), (2, [2])]
    assert groups[0].others == [1, 3]


def test_query_language_version_represents_the_group_and_keeps_its_own_score_order() -> None:
    a, b = np.eye(3)[0], np.eye(3)[1]
    vectors = _unit(np.stack([a, a + 0.05 * np.eye(3)[2], b]))
    scores = [0.90, 0.80, 0.85]
    groups = collapse_translations(vectors, scores, ["en", "uk", "en"], 0.9, prefer_language="uk")
    # the uk version represents group A; groups are ordered by their representative's score
    assert [g.representative for g in groups] == [2, 1]
    # no uk version: the best-scored member represents; priority list picks the first present
    groups = collapse_translations(vectors, scores, ["en", "de", "en"], 0.9, prefer_language=["fr", "de"])
    assert [g.representative for g in groups] == [2, 1]
    assert collapse_translations(vectors, scores, ["en", "de", "en"], 0.9, prefer_language="fr")[0].representative == 0


def test_leader_grouping_does_not_chain() -> None:
    # x0 ~ x1 and x1 ~ x2 but x0 !~ x2: x2 must not join x0's group through x1
    angles = np.radians([0.0, 20.0, 40.0])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    threshold = float(np.cos(np.radians(25)))
    groups = collapse_translations(vectors, [0.9, 0.8, 0.7], ["en", "ru", "de"], threshold)
    assert [g.members for g in groups] == [[0, 1], [2]]


def test_threshold_is_inclusive_and_edge_cases() -> None:
    v = _unit(np.array([[1.0, 0.0], [0.6, 0.8]]))  # cosine 0.6
    assert len(collapse_translations(v, [1, 0.5], ["en", "ru"], 0.6)) == 1
    assert len(collapse_translations(v, [1, 0.5], ["en", "ru"], 0.61)) == 2
    assert collapse_translations(np.zeros((0, 2)), [], [], 0.9) == []
    with pytest.raises(ValueError, match="must match"):
        collapse_translations(v, [1.0], ["en", "ru"], 0.9)
    # unnormalised input is normalised; a zero vector groups with nothing
    groups = collapse_translations(np.array([[3.0, 0.0], [0.0, 0.0], [2.0, 0.0]]), [0.9, 0.8, 0.7], ["en", "ru", "de"], 0.9)
    assert [g.members for g in groups] == [[0, 2], [1]]


def test_alternates_records_and_default_thresholds() -> None:
    assert alternates([("b", "ru", 0.5), ("c", None, 0.7)]) == [
        {"id": "c", "language": "und", "score": 0.7}, {"id": "b", "language": "ru", "score": 0.5}]
    assert default_threshold("intfloat/multilingual-e5-small") == default_threshold("/models/multilingual-e5-small-q4/")
    assert default_threshold("intfloat/multilingual-e5-small")[1] is True
    assert default_threshold("/tmp/tiny-bi") == (FALLBACK_THRESHOLD, False)


def test_settings_fields() -> None:
    assert Settings().dedup == "auto" and Settings().dedup_threshold is None
    assert Settings.from_env({"BABELRANK_DEDUP": "off", "BABELRANK_DEDUP_THRESHOLD": "0.85"}).dedup_threshold == 0.85
    with pytest.raises(ConfigError, match="dedup"):
        Settings(dedup="maybe")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="dedup_threshold"):
        Settings(dedup_threshold=1.5)


# ---- retriever wiring (designed vectors, real language detection) ---------------------------

TOPICS = {
    "car": ["The red car is parked outside the house near the river every evening.",
            "Червоний автомобіль стоїть біля будинку на вулиці кожного вечора.",
            "Красная машина стоит возле дома у реки каждый вечер."],
    "kettle": ["The kettle boils water in the kitchen every morning before breakfast.",
               "Чайник кипятит воду на кухне каждое утро перед завтраком."],
    "bridge": ["The old stone bridge over the river was built three hundred years ago."],
}
QUERIES = {"where is the red car": "car", "де стоїть червоний автомобіль": "car", "kettle": "kettle"}
TOPIC = {"kind": "topic"}
FILLER = [f"This is a short English note number {i} about the weather and the garden." for i in range(20)]


class TopicEncoder(BiEncoder):
    """The tiny model's tokenizer with designed vectors: translations share a topic vector."""

    def __init__(self, base: BiEncoder, name: str) -> None:
        super().__init__(base.model, name)
        rng = np.random.default_rng(0)
        self.basis = {t: _unit(rng.normal(size=base.dimension)) for t in TOPICS}
        self.lang_noise = {text: 0.15 * _unit(rng.normal(size=base.dimension)) for texts in TOPICS.values() for text in texts}
        self.filler = {text: _unit(rng.normal(size=base.dimension)) for text in FILLER}

    def _vector(self, text: str) -> np.ndarray:
        for topic, texts in TOPICS.items():
            for t in texts:
                if t.strip() == text.strip():
                    return _unit(self.basis[topic] + self.lang_noise[t])
        if text.strip() in self.filler:
            return self.filler[text.strip()]
        return self.basis[QUERIES[text]]

    def encode_documents(self, texts, batch_size=32, progress=False):  # type: ignore[override]
        return np.stack([self._vector(t) for t in texts]).astype(np.float32)

    def encode_queries(self, texts, batch_size=32):  # type: ignore[override]
        return np.stack([self._vector(t) for t in texts]).astype(np.float32)


@pytest.fixture
def topic_index(make_index, tiny_models: dict[str, Path]):
    def build(name: str = "multilingual-e5-small-designed", **overrides):
        encoder = TopicEncoder(load_bi_encoder(str(tiny_models["bi"]), device="cpu"), name)
        index = make_index(encoder=encoder, collection=name.replace("/", "-"), **overrides)
        ids = [f"{topic}-{i}" for topic, texts in TOPICS.items() for i in range(len(texts))]
        # 20 filler notes: dedup needs >= 20 chunks for collection centroids; queries skip them
        index.ingest_texts([t for texts in TOPICS.values() for t in texts] + FILLER,
                           ids=ids + [f"filler-{i}" for i in range(len(FILLER))],
                           metadata=[{"kind": "topic"}] * len(ids) + [{"kind": "filler"}] * len(FILLER))
        return index
    return build


def _groups(nodes) -> list[str]:
    return [n.node.metadata["doc_id"].rsplit("-", 1)[0] for n in nodes]


def test_dedup_auto_collapses_translations_before_rerank(topic_index) -> None:
    index = topic_index(top_k=6, top_n=6)
    assert {"en", "uk", "ru"} <= set(index.calibration.languages())
    off = index.search("where is the red car", where=TOPIC, dedup=False)
    assert sorted(_groups(off.nodes)) == sorted(["car"] * 3 + ["kettle"] * 2 + ["bridge"])
    on = index.search("where is the red car", where=TOPIC)  # auto: >1 language and a calibrated model name
    assert sorted(_groups(on.nodes)) == ["bridge", "car", "kettle"]
    car = next(n for n in on.nodes if _groups([n]) == ["car"])
    assert car.node.metadata["language"] == on.query_language == "en"
    alts = car.node.metadata["alternates"]
    assert {a["language"] for a in alts} == {"uk", "ru"} and all(set(a) == {"id", "language", "score"} for a in alts)
    assert [a["score"] for a in alts] == sorted((a["score"] for a in alts), reverse=True)
    # rerank ran on the representatives only; alternates stay out of the LLM's metadata text
    assert all("rerank_score" in n.node.metadata for n in on.nodes)
    assert "alternates" not in car.node.get_content(metadata_mode=MetadataMode.LLM)
    assert "alternates" not in car.node.get_content(metadata_mode=MetadataMode.EMBED)


def test_query_language_and_answer_language_pick_the_representative(topic_index) -> None:
    index = topic_index(top_k=6, top_n=3, rerank_model="none")
    uk = index.search("де стоїть червоний автомобіль", where=TOPIC)
    assert uk.query_language == "uk" and uk.nodes[0].node.metadata["language"] == "uk"
    ru = index.query("where is the red car", where=TOPIC, answer_language="ru")
    car = [n for n in ru if _groups([n]) == ["car"]][0]
    assert car.node.metadata["language"] == "ru" and {a["language"] for a in car.node.metadata["alternates"]} == {"en", "uk"}
    kettle = [n for n in index.query("kettle", where=TOPIC, prefer_languages=["ru"]) if _groups([n]) == ["kettle"]][0]
    assert kettle.node.metadata["language"] == "ru"


def test_dedup_modes_and_thresholds(topic_index) -> None:
    # an uncalibrated model name: auto stays off, "on" or an explicit threshold turns it on
    index = topic_index(name="designed-model", top_k=6, top_n=6, rerank_model="none")
    assert len(index.query("where is the red car", where=TOPIC)) == 6
    assert len(index.query("where is the red car", where=TOPIC, dedup=True)) == 3
    assert len(index.query("where is the red car", where=TOPIC, dedup_threshold=0.8)) == 3
    assert len(index.query("where is the red car", where=TOPIC, dedup=True, dedup_threshold=0.999)) == 6
    off = topic_index(name="multilingual-e5-small-off", dedup="off", top_k=6, top_n=6, rerank_model="none")
    assert len(off.query("where is the red car", where=TOPIC)) == 6 and len(off.query("where is the red car", where=TOPIC, dedup=True)) == 3
    with pytest.raises(ValueError, match="dedup_threshold"):
        index.query("car", dedup_threshold=2.0)


def test_no_dedup_in_a_collection_too_small_for_centroids(make_index, tiny_models) -> None:
    encoder = TopicEncoder(load_bi_encoder(str(tiny_models["bi"]), device="cpu"), "multilingual-e5-small-tiny")
    index = make_index(encoder=encoder, collection="tiny", top_k=6, top_n=6, rerank_model="none")
    texts = [t for texts in TOPICS.values() for t in texts]
    index.ingest_texts(texts, ids=[f"d{i}" for i in range(len(texts))])
    assert len(index.query("where is the red car", dedup=True)) == 6


def test_dedup_with_neutral_scoring_keeps_vectors(topic_index) -> None:
    index = topic_index(top_k=6, top_n=6, rerank_model="none", neutral="on")
    assert index.neutral_scorer() is not None
    assert sorted(_groups(index.query("where is the red car", where=TOPIC))) == ["bridge", "car", "kettle"]


# ---- language preferences --------------------------------------------------------------------


def test_prefer_languages_reorders_within_the_margin_without_changing_scores(topic_index) -> None:
    index = topic_index(top_k=6, top_n=6, rerank_model="none", dedup="off")
    base = index.query("where is the red car", where=TOPIC)
    by_id = {n.node.node_id: n.score for n in base}
    cars = [n for n in base if _groups([n]) == ["car"]]
    assert cars[0].node.metadata["language"] == "en"
    gap = cars[0].score - min(n.score for n in cars if n.node.metadata["language"] == "ru")
    assert 0 < gap < 0.5
    pref = index.query("where is the red car", where=TOPIC, prefer_languages=["ru"], prefer_margin=gap + 0.01)
    assert pref[0].node.metadata["language"] == "ru"
    assert {n.node.node_id: n.score for n in pref} == by_id  # scores are never changed
    # a margin smaller than the gap keeps the better-scored English version first
    assert index.query("where is the red car", where=TOPIC, prefer_languages=["ru"], prefer_margin=gap / 2)[0].node.metadata["language"] == "en"
    # a far worse result in the preferred language does not jump ahead of a much better one
    ranked = [n.node.metadata["doc_id"] for n in index.query("where is the red car", where=TOPIC, prefer_languages="ru")]
    assert ranked[0] == "car-2" and ranked.index("kettle-1") > max(ranked.index(f"car-{i}") for i in range(3))
    with pytest.raises(ValueError, match="prefer_margin"):
        index.query("car", prefer_languages=["ru"], prefer_margin=-1)


def test_min_score_applies_to_the_unboosted_final_score(topic_index) -> None:
    index = topic_index(top_k=6, top_n=6, rerank_model="none", dedup="off")
    scores = sorted((n.score for n in index.query("where is the red car", where=TOPIC)), reverse=True)
    cut = scores[2]
    kept = index.query("where is the red car", where=TOPIC, prefer_languages=["ru"], prefer_margin=1.0, min_score=cut)
    assert len(kept) == 3 and all(n.score >= cut for n in kept)
    assert kept[0].node.metadata["language"] == "ru"


# ---- real model: XQuAD en+ru+de+es paragraphs ------------------------------------------------

XQUAD_PARAGRAPHS = 60  # x 4 languages = 240 chunks, ~1-2 min of ingest on 2 CPU cores
XQUAD_QUESTIONS = 40  # per question language
# One chunk per paragraph (e5 allows ~500 tokens): with 256-token chunks a long paragraph
# splits at different places in each language, and half a paragraph is not a translation
# of the whole one, so "distinct paragraphs" would mix dedup with chunk alignment.
XQUAD_CHUNK_TOKENS = 500


@pytest.fixture(scope="module")
def xquad_four(e5_path: Path, real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from babelrank import BabelIndex
    from babelrank.evaluation import xquad_paragraph_pool
    from babelrank.ingest.sources import SourceDocument

    langs = ["en", "ru", "de", "es"]
    corpus = xquad_paragraph_pool(real_data_dir / "xquad", langs, langs, limit=XQUAD_PARAGRAPHS)
    # module scope: set up before conftest's per-test environment, so min_relevance is given here (ranking only)
    index = BabelIndex(embed_model=str(e5_path), rerank_model="none", store_path=tmp_path_factory.mktemp("xquad4"),
                       progress=False, device="cpu", chunk_tokens=XQUAD_CHUNK_TOKENS, min_relevance="none")
    index.ingest_documents([SourceDocument(d.id, d.text, "xquad") for d in corpus.documents])
    yield index, corpus
    index.close()


def _position(node) -> str:
    return node.node.metadata["doc_id"].split(":", 2)[2]  # xquad:<lang>:<article>:<paragraph>


@pytest.mark.real_model
def test_xquad_dedup_gives_five_different_paragraphs_and_better_recall(xquad_four) -> None:
    index, corpus = xquad_four
    assert set(index.calibration.languages()) >= {"en", "ru", "de", "es"}
    per_lang: dict[str, int] = {}
    stats = {d: {"distinct": [], "all5": [], "recall@1": [], "recall@2": [], "recall@5": []} for d in (True, False)}
    same_language_rep = kept = 0
    for q in corpus.queries:
        if per_lang.get(q.language, 0) >= XQUAD_QUESTIONS:
            continue
        per_lang[q.language] = per_lang.get(q.language, 0) + 1
        relevant = {d.split(":", 2)[2] for d in corpus.qrels[q.id]}
        for dedup in (True, False):
            result = index.search(q.text, top_k=50, top_n=5, dedup=dedup)
            nodes = result.nodes
            positions = [_position(n) for n in nodes]
            stats[dedup]["distinct"].append(len(set(positions)))
            stats[dedup]["all5"].append(len(set(positions)) == 5)
            for k in (1, 2, 5):  # by paragraph: the question's paragraph, in any language
                stats[dedup][f"recall@{k}"].append(bool(relevant & set(positions[:k])))
            if dedup:
                for n in nodes:
                    langs = {n.node.metadata["language"]} | {a["language"] for a in n.node.metadata["alternates"]}
                    if result.query_language in langs:
                        kept += 1
                        same_language_rep += n.node.metadata["language"] == result.query_language
    summary = {dedup: {k: sum(v) / len(v) for k, v in s.items()} for dedup, s in stats.items()}
    print(f"\nXQuAD {XQUAD_PARAGRAPHS} paragraphs x en/ru/de/es, {sum(per_lang.values())} questions, top-5:",
          {("on" if d else "off"): {k: round(v, 3) for k, v in m.items()} for d, m in summary.items()},
          f"query-language representative {same_language_rep}/{kept}")
    on, off = summary[True], summary[False]
    assert on["all5"] >= 0.95 and on["distinct"] >= 4.9  # five different paragraphs, not translations
    assert off["distinct"] < 3.0  # without dedup the top-5 is mostly one paragraph in several languages
    # recall by paragraph: @5 is already 1.0 without dedup on this pool (the answer paragraph is
    # always in the top-3 in some language), so dedup must keep it; it gains where slots are few
    assert on["recall@5"] >= off["recall@5"] - 0.01
    assert on["recall@2"] > off["recall@2"] and on["recall@1"] >= off["recall@1"]
    assert same_language_rep == kept  # a group holding the query's language is shown in it
