"""Language-identification benchmark: accuracy and speed per backend.

    python benchmarks/language_id.py --data ../shared/data [--no-lingua]

Sentences: Tatoeba (LASER) uk / ru / en, 1000 each. Chunks: 5-8 consecutive Tatoeba
sentences joined, plus XQuAD paragraphs (en, ru; de and es only when no language is
declared). Settings: languages declared (uk, ru, en) vs none. Any ``und`` counts as wrong.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from babelrank.language import (
    LanguageDetector,
    _CueDetector,
    _LangdetectProfiles,
    make_detector,
)

EXPECTED = ("uk", "ru", "en")
SENTENCE_FILES = {"uk": "tatoeba.ukr-eng.ukr", "ru": "tatoeba.rus-eng.rus", "en": "tatoeba.ukr-eng.eng"}
OTHER_FILES = {"mk": "tatoeba.mkd-eng.mkd", "de": "tatoeba.deu-eng.deu", "fr": "tatoeba.fra-eng.fra",
               "sk": "tatoeba.slk-eng.slk", "hr": "tatoeba.hrv-eng.hrv", "lt": "tatoeba.lit-eng.lit",
               "et": "tatoeba.est-eng.est", "af": "tatoeba.afr-eng.afr", "hy": "tatoeba.hye-eng.hye",
               "ka": "tatoeba.kat-eng.kat"}


def read_lines(path: Path) -> list[str]:
    """Non-empty lines of a UTF-8 file."""
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def make_chunks(sentences: Sequence[str], sizes: Sequence[int] = (5, 6, 7, 8)) -> list[str]:
    """Join consecutive sentences into chunks of 5-8 sentences (deterministic sizes)."""
    out, i, k = [], 0, 0
    while i + sizes[k % len(sizes)] <= len(sentences):
        n = sizes[k % len(sizes)]
        out.append(" ".join(sentences[i:i + n]))
        i, k = i + n, k + 1
    return out


def xquad_paragraphs(path: Path) -> list[str]:
    """All paragraph contexts of an XQuAD file."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [p["context"].lstrip("\ufeff") for art in data for p in art["paragraphs"]]


def load(data: Path) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, list[str]]]:
    """Sentences per language, chunks per language, other-language sentences."""
    tat = data / "tatoeba"
    sentences = {lang: read_lines(tat / f) for lang, f in SENTENCE_FILES.items()}
    chunks = {lang: make_chunks(s) for lang, s in sentences.items()}
    for lang in ("en", "ru", "de", "es"):
        f = data / "xquad" / f"xquad.{lang}.json"
        if f.exists():
            chunks.setdefault(lang, []).extend(xquad_paragraphs(f))
    others = {lang: read_lines(tat / f) for lang, f in OTHER_FILES.items() if (tat / f).exists()}
    return sentences, chunks, others


def accuracy(det: LanguageDetector, texts: Sequence[str], lang: str) -> tuple[float, float]:
    """(share detected as ``lang``, seconds)."""
    t0 = time.perf_counter()
    found = det.detect_many(texts)
    dt = time.perf_counter() - t0
    return sum(d.language == lang for d in found) / max(1, len(texts)), dt


def evaluate(name: str, factory: Callable[[Sequence[str] | None], LanguageDetector],
             sentences: dict[str, list[str]], chunks: dict[str, list[str]],
             others: dict[str, list[str]]) -> list[dict]:
    """Rows for both settings (declared uk/ru/en, none)."""
    rows = []
    for setting, expected in (("uk/ru/en", EXPECTED), ("none", None)):
        det = factory(expected)
        det.detect_many(["warm up", "прогрів моделі"])
        row: dict = {"backend": name, "declared": setting}
        n_s = t_s = 0.0
        for lang, texts in sentences.items():
            acc, dt = accuracy(det, texts, lang)
            row[lang] = acc
            n_s, t_s = n_s + len(texts), t_s + dt
        correct = n_c = t_c = 0.0
        for lang, texts in chunks.items():
            if expected is not None and lang not in expected:
                continue
            acc, dt = accuracy(det, texts, lang)
            correct, n_c, t_c = correct + acc * len(texts), n_c + len(texts), t_c + dt
        row["chunk"] = correct / max(1, n_c)
        row["n_chunk"] = int(n_c)
        row["ms_sent"] = 1000 * t_s / n_s
        row["ms_chunk"] = 1000 * t_c / max(1, n_c)
        if expected is None:
            row["others"] = {lang: accuracy(det, texts, lang)[0] for lang, texts in others.items()}
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder holding tatoeba/ and xquad/")
    ap.add_argument("--no-lingua", action="store_true", help="skip the lingua rows")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sentences, chunks, others = load(args.data)

    def no_cues(expected: Sequence[str] | None) -> LanguageDetector:
        det = make_detector("auto", expected)
        assert isinstance(det, _CueDetector)
        return _CueDetector(_LangdetectProfiles.get(), det.expected, det.min_confidence,
                            det.min_chars, use_cues=False)

    def lingua_no_cues(expected: Sequence[str] | None) -> LanguageDetector:
        det = make_detector("lingua", expected)
        assert isinstance(det, _CueDetector)
        return _CueDetector(det.model, det.expected, det.min_confidence, det.min_chars,
                            use_cues=False)

    backends: list[tuple[str, Callable]] = [
        ("langdetect (baseline)", lambda e: make_detector("langdetect", e)),
        ("auto: profiles NB, no cues", no_cues),
        ("auto (cues + profiles NB)", lambda e: make_detector("auto", e)),
    ]
    if not args.no_lingua:
        backends += [("lingua, no cues", lingua_no_cues),
                     ("lingua (cues + lingua)", lambda e: make_detector("lingua", e))]
    rows = [r for name, f in backends for r in evaluate(name, f, sentences, chunks, others)]

    n_chunks = {k: len(v) for k, v in chunks.items()}
    print(f"Sentences: Tatoeba uk/ru/en x 1000. Chunks: {n_chunks} "
          "(Tatoeba 5-8 sentences joined + XQuAD paragraphs; de/es only when none declared).\n")
    print("| backend | declared | uk | ru | en | chunk | ms/sentence | ms/chunk |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['backend']} | {r['declared']} | {100 * r['uk']:.1f} | {100 * r['ru']:.1f} | "
              f"{100 * r['en']:.1f} | {100 * r['chunk']:.2f} ({r['n_chunk']}) | "
              f"{r['ms_sent']:.3f} | {r['ms_chunk']:.3f} |")
    langs = list(others)
    print("\nOther Tatoeba languages, nothing declared (sentence accuracy, %):\n")
    print("| backend | " + " | ".join(langs) + " |")
    print("|---|" + "---:|" * len(langs))
    for r in rows:
        if "others" in r:
            print(f"| {r['backend']} | " + " | ".join(f"{100 * r['others'][l]:.1f}" for l in langs) + " |")


if __name__ == "__main__":
    main()
