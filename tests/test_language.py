"""Tests for babelrank.models.language (unit tests + accuracy floors on Tatoeba/XQuAD data).

Accuracy floors read the data folder from ``BABELRANK_TEST_DATA`` (e.g. /work/shared/data).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from babelrank.models import language
from babelrank.models.language import (
    UNDETERMINED,
    Detection,
    LanguageTagger,
    lingua_available,
    make_detector,
    normalize_language_code,
)

HAS_LINGUA = lingua_available()
UK_RU_EN = ["uk", "ru", "en"]
needs_lingua = pytest.mark.skipif(not HAS_LINGUA, reason="lingua-language-detector not installed "
                                  "(pip install 'babelrank[lingua]'; the dev extras include it)")


# ----------------------------------------------------------------------------- unit


@pytest.mark.parametrize("backend", ["auto", "langdetect"])
@pytest.mark.parametrize("text", ["", "   ", "ok", "12345 !!", "--", "Я"])
def test_short_or_empty_text_is_und(backend: str, text: str) -> None:
    det = make_detector(backend).detect(text)
    assert det == Detection(UNDETERMINED, 0.0)


def test_mixed_script_text_is_und_with_low_confidence() -> None:
    det = make_detector("auto").detect("Hello world привет мир")
    assert det.language == UNDETERMINED
    assert det.confidence < 0.5


def test_ambiguous_short_cyrillic_is_not_guessed() -> None:
    # "Так" is a word of uk, ru, bg, mk alike: no wild guess without declared languages.
    assert make_detector("auto").detect("Так").language == UNDETERMINED


@pytest.mark.parametrize("backend", ["auto", "fast"])
@pytest.mark.parametrize("word", ["машина", "Машина", "вода", "школа", "мама"])
def test_one_ambiguous_word_is_not_guessed(backend: str, word: str) -> None:
    # Each is a word of uk and ru (and bg/mk): one such word names no language (it was "mk").
    det = make_detector(backend).detect(word)
    assert det.language == UNDETERMINED and det.confidence < 0.9, det
    declared = make_detector(backend, ["uk", "ru"]).detect(word)
    assert declared.language in (UNDETERMINED, "uk", "ru"), declared
    if backend == "auto" or word.lower() == "машина":
        assert declared.language == UNDETERMINED, declared


@pytest.mark.parametrize("backend", ["auto", "fast"])
def test_one_word_with_hard_evidence_is_answered(backend: str) -> None:
    assert make_detector(backend).detect("хліб").language == "uk"  # і: Ukrainian among uk/ru/bg/mk
    assert make_detector(backend).detect("Київ").language == "uk"
    assert make_detector(backend, UK_RU_EN).detect("bread").language == "en"  # the only Latin-script one
    assert make_detector(backend, UK_RU_EN).detect("съешь").language == "ru"  # ъ, ы


@pytest.mark.parametrize("text", ["Ви п'єте каву?", "Їжак живе в лісі.", "Ґанок новий.",
                                  "Це моє місто.", "Він знає її."])
def test_ukrainian_only_letters_decide_uk(text: str) -> None:
    for expected in (None, UK_RU_EN):
        det = make_detector("auto", expected).detect(text)
        assert det.language == "uk", (text, expected, det)
        assert det.confidence >= 0.9


@pytest.mark.parametrize("text", ["Мы съели всё.", "Это большой дом.", "Вы были там?"])
def test_russian_only_letters_decide_ru_among_declared(text: str) -> None:
    assert make_detector("auto", UK_RU_EN).detect(text).language == "ru"


def test_latin_homoglyphs_inside_cyrillic_words() -> None:
    # Latin "i" typed for Cyrillic "і" is still Ukrainian.
    assert make_detector("auto", UK_RU_EN).detect("Посмiхнись менi зараз!").language == "uk"


def test_other_alphabets_and_scripts() -> None:
    det = make_detector("auto")
    assert det.detect("Ја сам ђак и нећу да идем.").language == "sr"  # ђ, ћ: Serbian
    assert det.detect("Тоа е ѓубре, ќе го фрлам.").language == "mk"  # ѓ, ќ: Macedonian
    assert det.detect("Я ўстаў рана і пайшоў.").language == "be"  # ў: Belarusian
    assert det.detect("Բարև, ինչպե՞ս ես").language == "hy"
    assert det.detect("გამარჯობა, როგორ ხარ?").language == "ka"
    assert det.detect("Καλημέρα, τι κάνεις;").language == "el"
    assert det.detect("안녕하세요 만나서 반갑습니다").language == "ko"
    assert det.detect("今日はいい天気ですね").language == "ja"
    assert det.detect("สวัสดีครับ ยินดีที่ได้รู้จัก").language == "th"


def test_expected_language_restriction() -> None:
    text = "Ich habe heute keine Zeit."
    assert make_detector("auto").detect(text).language == "de"
    # Only one Latin-script language declared: no model needed, answer is that language.
    assert make_detector("auto", ["uk", "ru", "en"]).detect(text).language == "en"
    assert make_detector("langdetect", ["en", "uk"]).detect(text).language == "en"
    # A script that rules out every declared language falls back to the script's language.
    assert make_detector("auto", ["en"]).detect("Բարև, ինչպե՞ս ես").language == "hy"


def test_uk_ru_pair_with_declared_languages() -> None:
    det = make_detector("auto", ["ukr", "rus"])
    assert det.detect("Ми це розуміємо і дуже цьому раді.").language == "uk"
    assert det.detect("Мы это понимаем и очень этому рады.").language == "ru"


@pytest.mark.parametrize("backend", ["auto", "langdetect"])
def test_deterministic(backend: str) -> None:
    texts = ["Я бы поел.", "Ти злий?", "I need sleep.", "Das ist gut.", "Minutku prosím."]
    first = make_detector(backend).detect_many(texts)
    for _ in range(3):
        assert make_detector(backend).detect_many(texts) == first
        assert [make_detector(backend).detect(t) for t in texts] == first


def test_detect_many_matches_detect() -> None:
    det = make_detector("auto", UK_RU_EN)
    texts = ["Привіт, як справи?", "Как дела?", "How are you?"]
    assert det.detect_many(texts) == [det.detect(t) for t in texts]
    assert [d.language for d in det.detect_many(texts)] == ["uk", "ru", "en"]


def test_unknown_backend_and_language_errors() -> None:
    with pytest.raises(ValueError, match="unknown language-detection backend"):
        make_detector("fasttext")
    with pytest.raises(ValueError, match="unknown language code"):
        make_detector("auto", ["xx"])
    with pytest.raises(ValueError, match="min_confidence"):
        make_detector("auto", min_confidence=2.0)


@pytest.mark.parametrize("code,expected", [("ukr", "uk"), ("UK", "uk"), ("rus", "ru"),
                                           ("eng", "en"), ("en-US", "en"), ("pt_BR", "pt"),
                                           ("deu", "de"), ("ger", "de"), ("zh-CN", "zh"),
                                           (" Ru ", "ru"), ("nob", "no")])
def test_normalize_language_code(code: str, expected: str) -> None:
    assert normalize_language_code(code) == expected


@pytest.mark.parametrize("code", ["", "xx", "english", "zzz", "mo"])
def test_normalize_language_code_rejects_unknown(code: str) -> None:
    with pytest.raises(ValueError, match="unknown language code"):
        normalize_language_code(code)


@pytest.mark.parametrize("code,expected", [
    # the Tatoeba languages a partial table missed (issue 19, item 10)
    ("bel", "be"), ("bul", "bg"), ("ces", "cs"), ("ita", "it"), ("kaz", "kk"), ("pol", "pl"),
    ("spa", "es"), ("tur", "tr"),
    # individual languages of a macrolanguage that has a 639-1 code: that code
    ("cmn", "zh"), ("swh", "sw"), ("pes", "fa"), ("arb", "ar"), ("ekk", "et"),
    # deprecated codes with a successor; languages without a 639-1 code keep their 639-3 code
    ("iw", "he"), ("kzj", "dtp"), ("ast", "ast"), ("hsb", "hsb"), ("Yue-HK", "zh"),
])
def test_normalize_language_code_knows_all_of_iso_639_3(code: str, expected: str) -> None:
    assert normalize_language_code(code) == expected


def test_every_iso_639_1_language_normalises_from_its_639_3_code() -> None:
    from iso639 import iter_langs

    pairs = [(lang.pt3, lang.pt1) for lang in iter_langs() if lang.pt1 and lang.pt3]
    assert len(pairs) >= 180  # ISO 639-1 has 183 codes
    wrong = {three: normalize_language_code(three) for three, one in pairs
             if normalize_language_code(three) != normalize_language_code(one)}
    assert not wrong
    assert all(normalize_language_code(one) == one for _, one in pairs if one not in ("nb", "nn"))


@needs_lingua
def test_lingua_backend() -> None:
    det = make_detector("lingua", UK_RU_EN)
    assert [d.language for d in det.detect_many(["Ми це розуміємо.", "Мы это понимаем.",
                                                 "We understand."])] == ["uk", "ru", "en"]


@needs_lingua
@pytest.mark.parametrize("backend", ["lingua", "auto"])
def test_lingua_shcha_rule_does_not_rule_out_ukrainian(backend: str) -> None:
    # lingua 2.1's letter rule omits щ for Ukrainian; with і (uk or kk) it answered "kk" at 1.0.
    for text in ("Тобі дуже пощастило.", "Що хочете на Різдво?", "Ви будете щасливі."):
        assert make_detector(backend).detect(text).language == "uk", text


@needs_lingua
def test_auto_asks_lingua_only_when_the_profiles_are_unsure(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[frozenset[str]] = []
    real = language._LinguaModel.score

    def spy(self: object, text: str, allowed: frozenset[str], max_chars: int) -> list[tuple[str, float]]:
        calls.append(allowed)
        return real(self, text, allowed, max_chars)  # type: ignore[arg-type]

    monkeypatch.setattr(language._LinguaModel, "score", spy)
    det = make_detector("auto")
    bulgarian = ("София е столицата и най-големият град на България. Градът е разположен в "
                 "подножието на планината Витоша и има богата история, много музеи и паркове.")
    assert det.detect(bulgarian).language == "bg"
    assert det.detect("The weather in the mountains changes quickly, so pack a warm jacket.").language == "en"
    assert calls == []  # long or clear text: langdetect's profiles decide alone
    assert det.detect("Том добрий друг.").language == "uk"
    assert calls and calls[-1] <= {"uk", "ru", "bg", "mk"} and "uk" in calls[-1]


def test_auto_without_lingua_is_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(language, "lingua_available", lambda: False)
    texts = ["Том добрий друг.", "Я бы поел.", "I need sleep.", "Das ist gut.", "машина"]
    assert make_detector("auto").detect_many(texts) == make_detector("fast").detect_many(texts)


def test_language_tagger_sets_metadata() -> None:
    from llama_index.core.schema import TextNode, TransformComponent

    tagger = LanguageTagger(expected_languages=["uk", "ru", "en"])
    assert isinstance(tagger, TransformComponent)
    nodes = [TextNode(text="Київ — столиця України."), TextNode(text="Москва — столица России."),
             TextNode(text="The kettle boils water."), TextNode(text="42")]
    out = tagger(nodes)
    assert out is nodes
    assert [n.metadata["language"] for n in nodes] == ["uk", "ru", "en", UNDETERMINED]
    assert all(0.0 <= n.metadata["language_confidence"] <= 1.0 for n in nodes)
    # keeps existing tags when asked to
    nodes[0].metadata["language"] = "xx"
    LanguageTagger(overwrite=False)(nodes[:1])
    assert nodes[0].metadata["language"] == "xx"


def test_language_tagger_rejects_bad_backend() -> None:
    with pytest.raises(ValueError):
        LanguageTagger(backend="nope")


# ----------------------------------------------------------------------------- data


def _data_dir() -> Path:
    raw = os.environ.get("BABELRANK_TEST_DATA")
    if not raw:
        pytest.skip("BABELRANK_TEST_DATA is not set (point it at a folder holding tatoeba/)")
    path = Path(raw)
    if not (path / "tatoeba" / "tatoeba.ukr-eng.ukr").is_file():
        pytest.skip(f"BABELRANK_TEST_DATA={raw} has no tatoeba/tatoeba.ukr-eng.ukr")
    return path


def _lines(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def sentences() -> dict[str, list[str]]:
    tat = _data_dir() / "tatoeba"
    return {"uk": _lines(tat / "tatoeba.ukr-eng.ukr"), "ru": _lines(tat / "tatoeba.rus-eng.rus"),
            "en": _lines(tat / "tatoeba.ukr-eng.eng")}


@pytest.fixture(scope="module")
def chunks(sentences: dict[str, list[str]]) -> dict[str, list[str]]:
    out = {lang: [" ".join(s[i:i + 6]) for i in range(0, len(s) - 5, 6)]
           for lang, s in sentences.items()}
    for lang in ("en", "ru"):
        f = _data_dir() / "xquad" / f"xquad.{lang}.json"
        if f.is_file():
            data = json.loads(f.read_text(encoding="utf-8"))["data"]
            out[lang] += [p["context"] for a in data for p in a["paragraphs"]]
    return out


def _accuracy(backend: str, expected: list[str] | None, texts: list[str], lang: str) -> float:
    found = make_detector(backend, expected).detect_many(texts)
    return sum(d.language == lang for d in found) / len(texts)


# The goals: >= 98 % uk, >= 98 % ru, >= 99 % en with uk/ru/en declared; >= 95 % each
# with nothing declared (und counts as wrong). "auto" and "lingua" meet them when lingua is
# installed. Without lingua, "auto" is "fast" (cues + langdetect profiles), which does not:
# its floors sit just under its measured accuracy (benchmarks/language_id.py).
GOALS = {"declared": {"uk": 0.98, "ru": 0.98, "en": 0.99}, "none": {"uk": 0.95, "ru": 0.95, "en": 0.95}}
FLOORS = {
    ("auto", "declared"): GOALS["declared"],
    ("auto", "none"): GOALS["none"],
    ("lingua", "declared"): GOALS["declared"],
    ("lingua", "none"): GOALS["none"],
    ("fast", "declared"): {"uk": 0.92, "ru": 0.98, "en": 0.99},
    ("fast", "none"): {"uk": 0.88, "ru": 0.93, "en": 0.95},
}


@pytest.mark.slow
@pytest.mark.parametrize("backend,setting", list(FLOORS))
def test_sentence_accuracy_floors(backend: str, setting: str,
                                  sentences: dict[str, list[str]]) -> None:
    if backend in ("auto", "lingua") and not HAS_LINGUA:
        pytest.skip(f"{backend!r} meets the goals with lingua-language-detector, which is not installed")
    expected = UK_RU_EN if setting == "declared" else None
    for lang, floor in FLOORS[(backend, setting)].items():
        acc = _accuracy(backend, expected, sentences[lang], lang)
        assert acc >= floor, f"{backend}/{setting}/{lang}: {acc:.3f} < {floor}"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["auto", "fast"])
@pytest.mark.parametrize("expected", [UK_RU_EN, None])
def test_chunk_accuracy_floor(backend: str, expected: list[str] | None, chunks: dict[str, list[str]]) -> None:
    for lang, texts in chunks.items():
        acc = _accuracy(backend, expected, texts, lang)
        assert acc >= 0.995, f"chunks/{backend}/{lang}/{expected}: {acc:.4f}"


def _cpu_seconds(det: object, texts: list[str]) -> float:
    det.detect_many(texts[:50])  # type: ignore[attr-defined]  # loads what these texts need
    best = float("inf")
    for _ in range(2):
        t0 = time.process_time()
        det.detect_many(texts)  # type: ignore[attr-defined]
        best = min(best, time.process_time() - t0)
    return best


@pytest.mark.slow
@pytest.mark.parametrize("expected", [UK_RU_EN, None])
def test_faster_than_plain_langdetect(expected: list[str] | None, sentences: dict[str, list[str]],
                                      chunks: dict[str, list[str]]) -> None:
    texts = sentences["uk"][:300] + sentences["ru"][:300] + sentences["en"][:300]
    long = chunks["uk"][:100] + chunks["ru"][-100:] + chunks["en"][-100:]
    plain, auto = make_detector("langdetect", expected), make_detector("auto", expected)
    for what, batch in (("sentences", texts), ("chunks", long)):
        t_plain, t_auto = _cpu_seconds(plain, batch), _cpu_seconds(auto, batch)
        assert t_auto * 5 <= t_plain, f"{what}: auto {t_auto:.3f}s vs langdetect {t_plain:.3f}s"


class _RecordingBuilder:
    """Stands in for lingua's LanguageDetectorBuilder and records what was built."""

    def __init__(self, built: list) -> None:
        self.built, self.languages, self.preloaded = built, (), False

    def from_languages(self, *languages):
        self.languages = languages
        return self

    def with_preloaded_language_models(self):
        self.preloaded = True
        return self

    def build(self) -> None:
        self.built.append((frozenset(lang.iso_code_639_1.name.lower() for lang in self.languages), self.preloaded))


@needs_lingua
def test_warm_up_preloads_lingua_for_the_languages_it_may_be_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list = []
    model = language._LinguaModel.get()
    monkeypatch.setattr(model, "_builder", _RecordingBuilder(built))
    make_detector("auto", ["uk", "ru", "en"]).warm_up()
    assert built == [(frozenset({"uk", "ru", "en"}), True)]
    make_detector("lingua").warm_up()  # no declared languages: every language lingua knows
    assert built[-1][1] and len(built[-1][0]) == len(model.languages)
    built.clear()
    make_detector("fast").warm_up()  # no lingua: nothing to load
    make_detector("langdetect").warm_up()
    assert built == []
