"""Language identification for chunks and queries.

Pipeline of the default (``"auto"``) detector:

1. Count letters per Unicode script. Too few letters -> ``und``; no script holding a
   clear majority (mixed text) -> ``und``.
2. Scripts used by one language (Armenian, Georgian, Greek, Hangul, Thai, kana, ...)
   answer directly; others give a candidate set (Arabic -> ar/fa/ur/..., Devanagari ->
   hi/mr/ne, ...).
3. Cyrillic: a language is dropped when the text uses letters its alphabet lacks
   (ї/є/ґ are Ukrainian, ы/э/ё/ъ are not, ў is Belarusian, ђ/ћ Serbian, ѓ/ќ/ѕ Macedonian,
   ә/ң/ө/ү/қ... Turkic). These are alphabet facts, not fitted thresholds. A long text may
   quote a few foreign words, so 2 % of its letters may fall outside the alphabet.
4. Declared (expected) languages narrow the candidates; a single survivor needs no model.
5. Otherwise a statistical model ranks the surviving candidates. ``auto``: a deterministic
   naive-Bayes pass over langdetect's own n-gram profiles (no random trials, 10-25x faster
   than ``langdetect.detect``); a language it leaves within 1:10^4 odds of the top one
   stays open, and when more than one stays open, lingua-language-detector (when installed)
   decides among them. Long text is settled by the profiles; short text, where their 1-3-gram
   profiles are weak (Ukrainian without і/ї/є reads as Russian), goes to lingua.
   ``fast``: the profiles alone; ``lingua``: lingua for every open decision. Frequent
   function words listed for exactly one candidate (uk ``це``/``ми``, ru ``это``/``мы``,
   en ``the``...) multiply that candidate's odds by a fixed factor.
6. A single word without a telling letter is often a word of several related languages
   (машина: uk, ru, bg, mk): a model must be 90 % sure to name one, else ``und``.

All detectors are deterministic and load their models once per process.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Iterable, Protocol

from llama_index.core.schema import BaseNode, TransformComponent
from pydantic import Field, PrivateAttr

from babelrank.schema import UNDETERMINED

logger = logging.getLogger(__name__)

__all__ = [
    "UNDETERMINED",
    "Detection",
    "LanguageDetector",
    "LanguageTagger",
    "lingua_available",
    "make_detector",
    "normalize_language_code",
]


@dataclass(frozen=True)
class Detection:
    """Detected language (ISO 639-1 code or ``und``) and a confidence in 0..1."""

    language: str
    confidence: float


class LanguageDetector(Protocol):
    """Anything that maps text to a :class:`Detection`."""

    def detect(self, text: str) -> Detection: ...

    def detect_many(self, texts: Sequence[str]) -> list[Detection]: ...

    def warm_up(self) -> None: ...


# --------------------------------------------------------------------------- codes

# Codes come from the ISO 639 tables of the `iso639-lang` package (every 639-1, 639-2/B,
# 639-3 and 639-5 code). What babelrank adds: the detectors' codes where they differ from
# ISO's own (Bokmål and Nynorsk are "no" to langdetect; Filipino is Tagalog's "tl").
_ALIASES: dict[str, str] = {"nb": "no", "nn": "no", "fil": "tl"}
_CODE = re.compile(r"[a-z]{2,3}")


def normalize_language_code(code: str) -> str:
    """Normalise a language code to ISO 639-1 where the language has one, else ISO 639-3.

    Accepts ISO 639-1, 639-2/B, 639-3 and 639-5 codes in any case, with region or script
    subtags (``"ukr"``, ``"UK"``, ``"en-US"``, ``"ger"``, ``"zh_Hant"``). An individual
    language of a macrolanguage that has a 639-1 code gets that code (``"cmn"`` -> ``"zh"``,
    ``"swh"`` -> ``"sw"``); a deprecated code gets its successor (``"iw"`` -> ``"he"``); a
    language without a 639-1 code keeps its 639-3 code (``"ast"``).

    Raises:
        ValueError: `code` is no ISO 639 code.
    """
    base = (code or "").strip().lower().replace("_", "-").split("-", 1)[0]
    resolved = _resolve_code(base) if _CODE.fullmatch(base) else None
    if resolved is None:
        raise ValueError(f"unknown language code {code!r}: expected an ISO 639-1 or 639-3 code "
                         f"such as 'uk'/'ukr', 'ru'/'rus', 'en'/'eng'")
    return _ALIASES.get(resolved, resolved)


@functools.lru_cache(maxsize=None)  # a pure function of the code: cached for the process
def _resolve_code(base: str) -> str | None:
    from iso639 import Lang
    from iso639.exceptions import DeprecatedLanguageValue, InvalidLanguageValue

    try:
        lang = Lang(base)
    except DeprecatedLanguageValue as exc:
        return _resolve_code(exc.change_to) if exc.change_to else None
    except InvalidLanguageValue:
        return None
    macro = lang.macro()
    return lang.pt1 or (macro.pt1 if macro else "") or lang.pt3 or lang.pt5 or None


# --------------------------------------------------------------------------- scripts

# (first code point, last code point, script); scanned once per distinct character.
_SCRIPT_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0041, 0x024F, "Latn"), (0x1E00, 0x1EFF, "Latn"), (0x2C60, 0x2C7F, "Latn"),
    (0xA720, 0xA7FF, "Latn"), (0xFF21, 0xFF5A, "Latn"),
    (0x0370, 0x03FF, "Grek"), (0x1F00, 0x1FFF, "Grek"),
    (0x0400, 0x052F, "Cyrl"), (0x1C80, 0x1C8F, "Cyrl"), (0x2DE0, 0x2DFF, "Cyrl"),
    (0xA640, 0xA69F, "Cyrl"),
    (0x0530, 0x058F, "Armn"), (0xFB13, 0xFB17, "Armn"),
    (0x0590, 0x05FF, "Hebr"), (0xFB1D, 0xFB4F, "Hebr"),
    (0x0600, 0x06FF, "Arab"), (0x0750, 0x077F, "Arab"), (0x08A0, 0x08FF, "Arab"),
    (0xFB50, 0xFDFF, "Arab"), (0xFE70, 0xFEFF, "Arab"),
    (0x0780, 0x07BF, "Thaa"), (0x0900, 0x097F, "Deva"), (0x0980, 0x09FF, "Beng"),
    (0x0A00, 0x0A7F, "Guru"), (0x0A80, 0x0AFF, "Gujr"), (0x0B00, 0x0B7F, "Orya"),
    (0x0B80, 0x0BFF, "Taml"), (0x0C00, 0x0C7F, "Telu"), (0x0C80, 0x0CFF, "Knda"),
    (0x0D00, 0x0D7F, "Mlym"), (0x0D80, 0x0DFF, "Sinh"), (0x0E00, 0x0E7F, "Thai"),
    (0x0E80, 0x0EFF, "Laoo"), (0x0F00, 0x0FFF, "Tibt"), (0x1000, 0x109F, "Mymr"),
    (0x10A0, 0x10FF, "Geor"), (0x1C90, 0x1CBF, "Geor"), (0x2D00, 0x2D2F, "Geor"),
    (0x1100, 0x11FF, "Hang"), (0x3130, 0x318F, "Hang"), (0xAC00, 0xD7AF, "Hang"),
    (0x1200, 0x139F, "Ethi"), (0x1780, 0x17FF, "Khmr"),
    (0x3040, 0x30FF, "Kana"), (0x31F0, 0x31FF, "Kana"), (0xFF66, 0xFF9F, "Kana"),
    (0x3400, 0x4DBF, "Hani"), (0x4E00, 0x9FFF, "Hani"), (0xF900, 0xFAFF, "Hani"),
    (0x20000, 0x2FA1F, "Hani"),
)

# Script -> languages written in it (ISO 639-1). One language: answered without a model.
_SCRIPT_LANGUAGES: dict[str, tuple[str, ...]] = {
    "Grek": ("el",), "Armn": ("hy",), "Geor": ("ka",), "Hang": ("ko",), "Thai": ("th",),
    "Laoo": ("lo",), "Khmr": ("km",), "Mymr": ("my",), "Sinh": ("si",), "Tibt": ("bo",),
    "Thaa": ("dv",), "Guru": ("pa",), "Gujr": ("gu",), "Orya": ("or",), "Taml": ("ta",),
    "Telu": ("te",), "Knda": ("kn",), "Mlym": ("ml",), "Kana": ("ja",),
    "Hebr": ("he", "yi"), "Ethi": ("am", "ti"), "Beng": ("bn", "as"),
    "Deva": ("hi", "mr", "ne", "sa"),
    "Arab": ("ar", "fa", "ur", "ps", "ku", "sd", "ug"),
    "Hani": ("zh", "ja"),
    "Cyrl": ("ru", "uk", "be", "bg", "mk", "sr", "kk", "ky", "tt", "ba", "mn", "tg", "uz"),
    "Latn": ("af", "az", "bs", "ca", "cs", "cy", "da", "de", "en", "eo", "es", "et", "eu", "fi",
             "fr", "ga", "gl", "hr", "hu", "id", "is", "it", "la", "lg", "lt", "lv", "mi", "ms",
             "nl", "no", "pl", "pt", "ro", "sk", "sl", "sn", "so", "sq", "st", "sv", "sw", "tl",
             "tn", "tr", "ts", "uz", "vi", "xh", "yo", "zu", "sr", "tt", "ku"),
}

_RU = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
# Lower-case alphabets; "'" stands for the apostrophe used as a letter before iotated vowels.
_CYRILLIC_ALPHABETS: dict[str, frozenset[str]] = {
    "ru": frozenset(_RU),
    "uk": frozenset("абвгґдеєжзиіїйклмнопрстуфхцчшщьюя'"),
    "be": frozenset("абвгдеёжзійклмнопрстуўфхцчшыьэюя'"),
    "bg": frozenset("абвгдежзийклмнопрстуфхцчшщъьюяѝ"),
    "mk": frozenset("абвгдѓежзѕијклљмнњопрстќуфхцчџшѐѝ"),
    "sr": frozenset("абвгдђежзијклљмнњопрстћуфхцчџш"),
    "kk": frozenset(_RU + "әғқңөұүһі"),
    "ky": frozenset(_RU + "ңөү"),
    "tt": frozenset(_RU + "әөүҗңһ"),
    "ba": frozenset(_RU + "ғҙҡңөҫүһә"),
    "mn": frozenset(_RU + "өү"),
    "tg": frozenset("абвгғдеёжзиӣйкқлмнопрстуӯфхҳчҷшъэюя"),
    "uz": frozenset("абвгдеёжзийклмнопрстуфхцчшъьэюяўқғҳ"),
}
# Apostrophe between a consonant and an iotated vowel: Ukrainian (п'ять) and Belarusian.
_CYR_APOSTROPHE = re.compile(r"(?<=[бпвмфрдтзскгґжчшхнлщц])['’ʼ](?=[яюєїеёі])", re.IGNORECASE)
_ASCII_LETTERS = re.compile(r"[A-Za-z]+")
_FOREIGN_LETTER_SHARE = 0.02  # quoted names/loanwords a long text may carry
_MAJORITY_SHARE = 0.6  # below this no script dominates -> mixed text


def _script_of(ch: str) -> str | None:
    cp = ord(ch)
    for lo, hi, script in _SCRIPT_RANGES:
        if lo <= cp <= hi:
            return script
    return None


_SCRIPT_CACHE: dict[str, str | None] = {}  # character -> script: a pure function's results, shared by the process


def _letter_scripts(text: str) -> tuple[Counter[str], Counter[str]]:
    """Return (letters per script, count of each distinct letter)."""
    chars = Counter(text)
    scripts: Counter[str] = Counter()
    letters: Counter[str] = Counter()
    for ch, n in chars.items():
        if not ch.isalpha():
            continue
        script = _SCRIPT_CACHE.get(ch, "?")
        if script == "?":
            script = _SCRIPT_CACHE[ch] = _script_of(ch)
        if script is not None:
            scripts[script] += n
            letters[ch] += n
    return scripts, letters


def _cyrillic_candidates(text: str, letters: Counter[str], n_letters: int) -> set[str]:
    """Cyrillic languages whose alphabet covers the letters of ``text`` (with tolerance)."""
    used: Counter[str] = Counter()
    for ch, n in letters.items():
        if _SCRIPT_CACHE.get(ch) == "Cyrl":
            used[ch.lower()] += n
    apostrophes = len(_CYR_APOSTROPHE.findall(text)) if "'" in text or "’" in text or "ʼ" in text else 0
    if apostrophes:
        used["'"] += apostrophes
    tolerance = int(_FOREIGN_LETTER_SHARE * n_letters)
    out = set()
    for lang, alphabet in _CYRILLIC_ALPHABETS.items():
        foreign = sum(n for ch, n in used.items() if ch not in alphabet)
        if foreign <= tolerance:
            out.add(lang)
    return out


# Frequent function words (pronouns, conjunctions, particles, prepositions, auxiliaries).
# A word listed for exactly one of the candidate languages counts as evidence for it.
_FUNCTION_WORDS: dict[str, str] = {
    "uk": "а і й та але або бо що як де коли чи ще вже дуже тут там це цей ця ці той те ті я ти "
          "він вона воно ми ви вони мене мені тебе тобі його йому її їй нас нам вас вам їх їм них "
          "ним ній себе собі мій моя моє мої твій твоя твоє твої свій своя своє свої наш наша ваш "
          "ваша в у на з із зі до від для без при про по за під над перед через між після біля не "
          "ні так був була було були є буде будуть бути можу може можна треба хочу знаю лише "
          "тільки теж також щоб якщо хто чому навіть ось адже чого нічого щось хтось завжди "
          "ніколи зараз сьогодні завтра вчора який яка яке які якого же ну б би ж все всі усе "
          "усі весь вся тому того сам сама самі більше о",
    "ru": "а и или но да нет что как где когда ли ещё еще уже очень тут там здесь это этот эта эти "
          "тот та то те я ты он она оно мы вы они меня мне тебя тебе его ему её ее ей нас нам вас "
          "вам их им них ним ней себя себе мой моя моё мое мои твой твоя твоё твое твои свой своя "
          "своё свое свои наш наша ваш ваша в во у на с со к ко до от для без при про по за под "
          "над перед через между после около не ни так был была было были есть будет будут быть "
          "могу может можно надо нужно хочу знаю лишь только тоже также чтобы если кто почему "
          "даже вот ведь чего ничего всегда никогда сейчас сегодня завтра вчера какой какая "
          "какое какие который которая которое которые же ну бы б ж всё все весь вся тому того "
          "сам сама сами больше о об",
    "bg": "и а но или да не ни че как какво къде кога дали ли още вече много тук там това този "
          "тази тези онзи аз ти той тя то ние вие те мен ме мене теб него го нея я нас ни вас ви "
          "тях ги им му ми си се мой моя мое мои твой твоя свой своя наш наша ваш ваша в във у на "
          "с със към до от за без при през по под над пред между след около съм е сме сте са "
          "бях беше бяха бил била било били ще има няма може мога трябва искам знам само също "
          "защото ако кой коя кое кои кого защо ето нещо нищо някой винаги никога сега днес утре "
          "вчера който която което които всичко всички сам сама же бе що",
    "mk": "и а но или да не ни дека како што каде кога дали ли уште веќе многу тука таму ова овој "
          "оваа овие тоа тој таа тие јас ти ние вие мене ме тебе те него го неа ја нас вас ве нив "
          "ги им му ми си се мој моја мое мои твој твоја свој своја наш наша ваш ваша во в на со "
          "кон до од за без при преку по под над пред меѓу после околу сум е сме сте бев беше беа "
          "бил била било биле ќе има нема може можам треба сакам знам само исто затоа ако кој "
          "која кое кои кого зошто ете нешто ништо некој секогаш никогаш сега денес утре вчера "
          "сите сè сам сама же бе",
    # English words that are not frequent words of another Latin-script language.
    "en": "the and you that with have this what they are it there their been has had your she him "
          "them our but from about which who when where why how could should would very just "
          "some any because than then these those were does did being into only other many too "
          "here don't doesn't didn't isn't aren't wasn't won't can't i'm it's you're we're "
          "they're that's there's i've i'll i'd you'll he's she's let's what's",
}
_WORD_LANGS: dict[str, frozenset[str]] = {}  # function word -> its languages (built once from _FUNCTION_WORDS)
for _lang, _words in _FUNCTION_WORDS.items():
    for _w in _words.split():
        _WORD_LANGS[_w] = _WORD_LANGS.get(_w, frozenset()) | {_lang}
_WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
_LEXICAL_ODDS = 20.0  # a frequent function word of L is far likelier in L-text than elsewhere
# One word without a telling letter is often a word of several related languages (машина,
# вода, школа: uk, ru, bg, mk alike): a model must be sure (9:1 odds) to name one.
_ONE_WORD_CONFIDENCE = 0.9

# Latin letters typed inside Cyrillic words (``менi`` with a Latin i) are homoglyphs.
_HOMOGLYPHS = str.maketrans("aceiopxyAEIOPCXKMHTBïÏ", "асеіорхуАЕІОРСХКМНТВїЇ")
_MIXED_WORD = re.compile(r"\b(?=\w*[а-яёіїєґА-ЯЁІЇЄҐ])(?=\w*[A-Za-zïÏ])\w+\b")


def _fix_homoglyphs(text: str) -> str:
    """Map Latin look-alike letters inside Cyrillic words to Cyrillic."""
    return _MIXED_WORD.sub(lambda m: m.group(0).translate(_HOMOGLYPHS), text)


def _lexical_hits(text: str, candidates: frozenset[str]) -> Counter[str]:
    """Function words of ``text`` listed for exactly one candidate language."""
    hits: Counter[str] = Counter()
    for word in _WORD_RE.findall(text.lower().replace("’", "'")):
        langs = _WORD_LANGS.get(word)
        if langs:
            own = langs & candidates
            if len(own) == 1:
                hits[next(iter(own))] += 1
    return hits


# --------------------------------------------------------------------------- models

_LANGDETECT_TO_ISO = {"zh-cn": "zh", "zh-tw": "zh"}
_LOCK = threading.Lock()  # process-wide: guards the lazy loading of the detectors' shared, read-only models


_TWO_CAPS = re.compile(r"[A-ZÀ-ÖØ-ÞА-ЯЁЇІЄҐЎΑ-Ω]{2}")  # two capitals in a row: an acronym


class _NormTable(dict):
    """``str.translate`` table applying langdetect's per-character normalisation lazily."""

    def __init__(self, normalize: Any) -> None:
        super().__init__()
        self._normalize = normalize

    def __missing__(self, code: int) -> str:
        value = self[code] = self._normalize(chr(code))
        return value


def _gram_key(gram: str) -> int:
    """An n-gram of up to three characters as one integer (code points need 21 bits)."""
    key = 0
    for ch in gram:
        key = (key << 21) | ord(ch)
    return key


class _LangdetectProfiles:
    """langdetect's n-gram profiles, loaded once, with a deterministic naive-Bayes scorer."""

    _instance: _LangdetectProfiles | None = None

    def __init__(self) -> None:
        import numpy as np
        from langdetect.detector import Detector
        from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
        from langdetect.utils.ngram import NGram

        factory = DetectorFactory()
        factory.load_profile(PROFILES_DIRECTORY)
        factory.set_seed(0)
        self.factory = factory
        self.codes = [_LANGDETECT_TO_ISO.get(c, c) for c in factory.langlist]
        self.languages = frozenset(self.codes)
        self._ngram = NGram
        self._url_re, self._mail_re = Detector.URL_RE, Detector.MAIL_RE
        grams = list(factory.word_lang_prob_map)
        # Each n-gram (n <= 3) as one integer, code points packed 21 bits apart; sorted for lookup.
        keys = np.asarray([_gram_key(g) for g in grams], dtype=np.uint64)
        order = np.argsort(keys)
        self._keys, self._key_rows = keys[order], order
        probs = np.asarray([factory.word_lang_prob_map[g] for g in grams], dtype=np.float64)
        # Same per-n-gram update as langdetect (prob *= alpha/BASE_FREQ + p), in log space.
        weight = Detector.ALPHA_DEFAULT / Detector.BASE_FREQ
        self.logp = np.log(probs + weight).astype(np.float32)
        self._np = np
        self._norm = _NormTable(NGram.normalize)

    @classmethod
    def get(cls) -> _LangdetectProfiles:
        with _LOCK:
            if cls._instance is None:
                logger.debug("loading langdetect profiles")
                cls._instance = cls()
            return cls._instance

    def columns(self, allowed: frozenset[str]) -> list[int]:
        return [i for i, c in enumerate(self.codes) if c in allowed]

    def _rows(self, text: str, max_chars: int) -> Any:
        """Profile rows of the text's 1-, 2- and 3-grams (one per occurrence), as langdetect
        extracts them."""
        np = self._np
        text = self._mail_re.sub(" ", self._url_re.sub(" ", text[:max_chars]))
        text = self._ngram.normalize_vi(text).translate(self._norm)
        # acronyms / all-caps words are skipped, by langdetect too
        words = [w for w in text.split() if len(w) < 2 or not _TWO_CAPS.search(w)]
        # Every word padded by spaces; n-grams across a space never occur in the profiles.
        cps = np.frombuffer(f" {' '.join(words)} ".encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        keys = np.concatenate([cps, (cps[:-1] << 21) | cps[1:],
                               (cps[:-2] << 42) | (cps[1:-1] << 21) | cps[2:]])
        pos = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        return self._key_rows[pos[self._keys[pos] == keys]]

    def preload(self, codes: frozenset[str] | None = None) -> None:
        """Nothing to do: the profiles are loaded with the instance."""

    def score(self, text: str, allowed: frozenset[str], max_chars: int) -> list[tuple[str, float]]:
        """Posterior over ``allowed`` languages, best first; empty when no known n-gram."""
        np = self._np
        cols = self.columns(allowed)
        rows = self._rows(text, max_chars)
        if not cols or not len(rows):
            return []
        loglik = self.logp[rows].sum(axis=0, dtype=np.float64)[cols]
        # Temper: n-grams of one text overlap heavily, so they are far from independent.
        loglik = loglik / 3.0
        loglik -= loglik.max()
        post = np.exp(loglik)
        post /= post.sum()
        merged: dict[str, float] = {}
        for c, p in zip((self.codes[i] for i in cols), post.tolist()):
            merged[c] = merged.get(c, 0.0) + p
        return sorted(merged.items(), key=lambda kv: -kv[1])

    def plain(self, text: str, allowed: frozenset[str] | None) -> list[tuple[str, float]]:
        """Classic seeded langdetect (random trials), optionally restricted by a prior map."""
        from langdetect.lang_detect_exception import LangDetectException

        det = self.factory.create()
        if allowed is not None:
            det.set_prior_map({c: 1.0 for c in self.factory.langlist
                               if _LANGDETECT_TO_ISO.get(c, c) in allowed})
        det.append(text)
        try:
            probs = det.get_probabilities()
        except LangDetectException:
            return []
        merged: dict[str, float] = {}
        for lp in probs:
            code = _LANGDETECT_TO_ISO.get(lp.lang, lp.lang)
            merged[code] = merged.get(code, 0.0) + lp.prob
        return sorted(merged.items(), key=lambda kv: -kv[1])


def lingua_available() -> bool:
    """Whether the optional lingua-language-detector package can be imported."""
    try:
        import lingua
    except ImportError:
        return False
    return hasattr(lingua, "LanguageDetectorBuilder")


class _LinguaModel:
    """lingua-language-detector, imported lazily: one detector per candidate set.

    lingua keeps its n-gram models in a process-wide cache and loads a language's models the
    first time a detector needs them (about 10-20 MB and 0.1-0.5 s per language), so a
    detector per candidate set costs little and only languages that occur get loaded.
    """

    _instance: _LinguaModel | None = None
    _MAX_DETECTORS = 256  # distinct candidate sets kept (each holds only a language list)

    def __init__(self) -> None:
        try:
            import lingua
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("backend 'lingua' needs the optional dependency "
                              "lingua-language-detector: pip install 'babelrank[lingua]'") from exc
        self._builder = lingua.LanguageDetectorBuilder
        by_code = {lang.iso_code_639_1.name.lower(): lang for lang in lingua.Language.all()}
        by_code["no"] = by_code.pop("nb", lingua.Language.BOKMAL)
        by_code.pop("nn", None)  # Nynorsk is reported as Norwegian ("no") through Bokmal
        self._by_code = by_code
        self._code = {lang: code for code, lang in by_code.items()}
        self.languages = frozenset(by_code)
        self._detectors: dict[frozenset[str], Any] = {}

    @classmethod
    def get(cls) -> _LinguaModel:
        with _LOCK:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _detector(self, langs: frozenset[str]) -> Any:
        with _LOCK:
            det = self._detectors.get(langs)
            if det is None:
                if len(self._detectors) >= self._MAX_DETECTORS:
                    self._detectors.clear()
                det = self._builder.from_languages(*(self._by_code[c] for c in sorted(langs))).build()
                self._detectors[langs] = det
            return det

    def preload(self, codes: frozenset[str] | None = None) -> None:
        """Load the models of these languages (every language lingua knows when None) now.

        All of them take about 5 s and 1 GB; a short query left open among many languages
        would otherwise load most of them lazily, taking seconds.
        """
        langs = sorted(self.languages if codes is None else codes & self.languages)
        if len(langs) >= 2:
            started = time.perf_counter()
            self._builder.from_languages(*(self._by_code[c] for c in langs)).with_preloaded_language_models().build()
            logger.info("lingua models of %d languages loaded in %.1f s", len(langs), time.perf_counter() - started)

    def _values(self, det: Any, text: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for value in det.compute_language_confidence_values(text):
            code = self._code.get(value.language)
            if code is not None:
                out[code] = out.get(code, 0.0) + value.value
        return out

    def score(self, text: str, allowed: frozenset[str], max_chars: int) -> list[tuple[str, float]]:
        """Posterior over ``allowed`` languages, best first; empty when lingua knows none."""
        langs = frozenset(allowed & self.languages)
        if len(langs) <= 1:
            return [(c, 1.0) for c in langs]
        det = self._detector(langs)
        head = text[:max_chars]
        values = self._values(det, head)
        if "uk" in langs and not values.get("uk") and _SHCHA.search(head):
            # lingua 2.1's letter rule lists щ for ru/bg/kk/mn but not for Ukrainian (fixed
            # upstream in pemistahl/lingua#193), so a word with щ can rule Ukrainian out with
            # certainty. Ask again with щ spelled шч, the sound it stands for.
            values = self._values(det, _SHCHA.sub(lambda m: "Шч" if m.group(0) == "Щ" else "шч", head))
        total = sum(values.values())
        if total <= 0:
            return []
        return sorted(((c, p / total) for c, p in values.items()), key=lambda kv: -kv[1])


_SHCHA = re.compile("[щЩ]")


class _Cascade:
    """langdetect's profiles first; lingua decides what they leave open.

    The profiles (fast, about 55 languages) rank the candidates. A language whose posterior
    is below 1/``_DECISIVE_ODDS`` of the top one is ruled out; when one language is left the
    profiles decide. Otherwise lingua (1- to 5-gram models, far better on short text) ranks
    the languages left, plus declared languages the profiles do not know. Long texts are
    almost always decided by the profiles alone, so lingua's cost is paid on short text.
    """

    def __init__(self, first: _LangdetectProfiles, second: _LinguaModel,
                 expected: frozenset[str] | None) -> None:
        self.first, self.second = first, second
        self.expected = expected or frozenset()
        self.languages = first.languages | second.languages

    def preload(self, codes: frozenset[str] | None = None) -> None:
        """Preload lingua's models (the profiles are loaded already)."""
        self.second.preload(codes)

    def score(self, text: str, allowed: frozenset[str], max_chars: int) -> list[tuple[str, float]]:
        """Posterior over ``allowed`` languages, best first."""
        known = allowed & self.first.languages
        ranked = self.first.score(text, known, max_chars) if known else []
        # Languages the profiles cannot judge: those declared, or all when they know none.
        unknown = allowed - self.first.languages
        if ranked:
            unknown &= self.expected
        top = ranked[0][1] if ranked else 0.0
        open_ = {c for c, p in ranked if p * _DECISIVE_ODDS >= top} | unknown
        if len(open_) <= 1 and not unknown:
            return ranked
        second = self.second.score(text, frozenset(open_), max_chars)
        return second or ranked


_DECISIVE_ODDS = 1e4  # odds at which the profiles' answer stands without lingua


# --------------------------------------------------------------------------- detectors


def _min_letters_ok(n_letters: int, min_chars: int) -> bool:
    return n_letters >= max(1, min_chars)


class _BaseDetector:
    def detect(self, text: str) -> Detection:  # pragma: no cover - abstract
        raise NotImplementedError

    def detect_many(self, texts: Sequence[str]) -> list[Detection]:
        """Detect each text in order."""
        return [self.detect(t) for t in texts]

    def warm_up(self) -> None:
        """Load what the first detections would load lazily (nothing, unless lingua is used)."""


class _PlainLangdetect(_BaseDetector):
    """Seeded langdetect with an optional prior map: the baseline, no script cues."""

    def __init__(self, expected: frozenset[str] | None, min_confidence: float, min_chars: int):
        self.model = _LangdetectProfiles.get()
        self.allowed = None if expected is None else expected & self.model.languages
        if self.allowed is not None and not self.allowed:
            raise ValueError(f"langdetect supports none of {sorted(expected or ())}")
        self.min_confidence, self.min_chars = min_confidence, min_chars

    def detect(self, text: str) -> Detection:
        """Detect ``text`` with classic langdetect."""
        if sum(ch.isalpha() for ch in text) < max(1, self.min_chars):
            return Detection(UNDETERMINED, 0.0)
        ranked = self.model.plain(text, self.allowed)
        if not ranked:
            return Detection(UNDETERMINED, 0.0)
        lang, p = ranked[0]
        return Detection(lang if p >= self.min_confidence else UNDETERMINED, round(p, 4))


class _CueDetector(_BaseDetector):
    """Script and alphabet cues first, a statistical model for what they leave open."""

    def __init__(self, model: Any, expected: frozenset[str] | None, min_confidence: float,
                 min_chars: int, max_chars: int = 600, use_cues: bool = True):
        self.model = model
        self.expected = expected
        self.min_confidence, self.min_chars, self.max_chars = min_confidence, min_chars, max_chars
        self.use_cues = use_cues
        self.known = frozenset(model.languages) | {
            lang for langs in _SCRIPT_LANGUAGES.values() if len(langs) == 1 for lang in langs
        } | frozenset(_CYRILLIC_ALPHABETS)
        if expected is not None and not expected & self.known:
            raise ValueError(f"no supported language among {sorted(expected)}")

    def warm_up(self) -> None:
        """Preload the model's lazily loaded parts for every language it may be asked about."""
        self.model.preload(self.expected)

    def _restrict(self, candidates: set[str]) -> set[str]:
        """Intersect with the expected languages unless that rules out everything."""
        if self.expected is None:
            return candidates
        narrowed = candidates & self.expected
        return narrowed or candidates  # the script rules out every declared language

    def detect(self, text: str) -> Detection:
        """Detect the language of ``text`` (a query or a chunk)."""
        head = text[: self.max_chars]
        scripts, letters = _letter_scripts(head)
        if self.use_cues and scripts.get("Cyrl") and scripts.get("Latn"):
            head = _fix_homoglyphs(head)
            scripts, letters = _letter_scripts(head)
        n_letters = sum(scripts.values())
        if not _min_letters_ok(n_letters, self.min_chars):
            return Detection(UNDETERMINED, 0.0)
        if scripts.get("Kana") and scripts.get("Hani"):
            scripts["Kana"] += scripts.pop("Hani")  # Japanese mixes kanji and kana
        script, count = scripts.most_common(1)[0]
        share = count / n_letters
        if share < _MAJORITY_SHARE:
            return Detection(UNDETERMINED, round(share / 2, 4))
        if not self.use_cues:
            candidates = set(self.known)
        else:
            candidates = set(_SCRIPT_LANGUAGES.get(script, ()))
            if script == "Cyrl":
                candidates &= _cyrillic_candidates(head, letters, count)
            elif script == "Hani":
                candidates = {"zh"}  # no kana at all: not Japanese
        candidates = self._restrict(candidates)
        if self.use_cues and len(candidates) == 1:
            return Detection(next(iter(candidates)), round(0.99 * share, 4))
        scorable = frozenset(candidates & self.model.languages)
        if not scorable:
            return Detection(UNDETERMINED, 0.0)
        if script != "Latn":
            head = _ASCII_LETTERS.sub(" ", head)  # stray Latin words, as langdetect does
        ranked = self.model.score(head, scorable, self.max_chars)
        if self.use_cues and len(ranked) > 1:
            hits = _lexical_hits(head, scorable)
            if hits:
                ranked = sorted(((c, p * _LEXICAL_ODDS ** hits.get(c, 0)) for c, p in ranked),
                                key=lambda kv: -kv[1])
        if not ranked:
            return Detection(UNDETERMINED, 0.0)
        lang, p1 = ranked[0]
        p2 = ranked[1][1] if len(ranked) > 1 else 0.0
        # Confidence against the runner-up: a spread over many unlikely languages is no doubt.
        conf = round(share * p1 / (p1 + p2), 4) if p1 > 0 else 0.0
        needed = self.min_confidence
        if len(_WORD_RE.findall(head)) == 1:
            needed = max(needed, _ONE_WORD_CONFIDENCE)
        return Detection(lang if conf >= needed else UNDETERMINED, conf)


_BACKENDS = ("auto", "langdetect", "fast", "lingua")


def make_detector(backend: str = "auto", expected_languages: Sequence[str] | None = None,
                  min_confidence: float = 0.55, min_chars: int = 3) -> LanguageDetector:
    """Build a deterministic language detector.

    backend: ``"auto"`` (script/alphabet cues, then langdetect's profiles scored in one
    deterministic pass; when lingua-language-detector is installed, lingua decides whatever
    the profiles leave open), ``"fast"`` (cues + profiles only, never lingua),
    ``"langdetect"`` (plain seeded langdetect, the baseline, no cues), ``"lingua"`` (cues +
    lingua for every open decision; needs the ``lingua`` extra).
    expected_languages: languages the collection declares (ISO 639-1 or 639-3 codes).
    min_confidence: below it the answer is ``und`` (the confidence is still reported). The
    confidence of a model decision is p(top) / (p(top) + p(runner-up)) times the share of
    letters in the main script; an alphabet/script decision reports 0.99 times that share.
    A single word decided by a model needs at least 0.9 (``машина`` is uk, ru, bg alike).
    min_chars: texts with fewer letters are ``und``.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"unknown language-detection backend {backend!r}; "
                         f"choose one of {', '.join(_BACKENDS)}")
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError("min_confidence must be in [0, 1]")
    expected = (frozenset(normalize_language_code(c) for c in expected_languages)
                if expected_languages else None)
    if backend == "langdetect":
        return _PlainLangdetect(expected, min_confidence, min_chars)
    model: Any
    if backend == "lingua":
        model = _LinguaModel.get()
    elif backend == "auto" and lingua_available():
        model = _Cascade(_LangdetectProfiles.get(), _LinguaModel.get(), expected)
    else:
        if backend == "auto":
            logger.debug("lingua-language-detector is not installed: 'auto' uses langdetect's "
                         "profiles alone (pip install 'babelrank[lingua]' for short texts)")
        model = _LangdetectProfiles.get()
    return _CueDetector(model, expected, min_confidence, min_chars)


# --------------------------------------------------------------------------- llama-index


class LanguageTagger(TransformComponent):
    """Sets ``metadata["language"]`` and ``metadata["language_confidence"]`` on nodes."""

    backend: str = Field(default="auto", description="detector backend, see make_detector")
    expected_languages: list[str] | None = Field(default=None, description="declared languages")
    min_confidence: float = Field(default=0.55, ge=0.0, le=1.0)
    min_chars: int = Field(default=3, ge=0)
    overwrite: bool = Field(default=True, description="re-detect nodes already tagged")
    _detector: LanguageDetector = PrivateAttr()

    def model_post_init(self, __context: Any) -> None:
        self._detector = make_detector(self.backend, self.expected_languages,
                                       self.min_confidence, self.min_chars)

    @classmethod
    def class_name(cls) -> str:
        return "LanguageTagger"

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        todo = [n for n in nodes if self.overwrite or "language" not in n.metadata]
        from llama_index.core.schema import MetadataMode

        found = self._detector.detect_many([n.get_content(metadata_mode=MetadataMode.NONE)
                                            for n in todo])
        for node, det in zip(todo, found):
            node.metadata["language"] = det.language
            node.metadata["language_confidence"] = det.confidence
        logger.debug("tagged %d nodes", len(todo))
        return nodes


def parse_language_code(code: str) -> str:
    """One language code as stored on chunks: ISO 639-1 (``ukr``/``UK`` -> ``uk``) or ``und``."""
    raw = str(code).strip().lower()
    return UNDETERMINED if raw == UNDETERMINED else normalize_language_code(raw)


def parse_language_codes(values: Iterable[str] | None) -> list[str] | None:
    """Codes from values that may each hold several, comma-separated; None when there are none.

    Raises ValueError naming the first unknown code.
    """
    out = [parse_language_code(code) for v in values or () for code in str(v).split(",") if code.strip()]
    return list(dict.fromkeys(out)) or None
