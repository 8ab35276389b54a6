"""Language-identification benchmark: accuracy, abstention and speed per backend.

    python benchmarks/language_id.py --data ../shared/data [--no-lingua] [--json]

Sentences: Tatoeba (LASER) uk / ru / en, 1000 each. Chunks: 5-8 consecutive Tatoeba
sentences joined, plus XQuAD paragraphs (en, ru; de and es too when no language is
declared). Settings: languages declared (uk, ru, en) vs none. Accuracy counts ``und`` as
wrong; the abstention column is the share of ``und``. Speed is CPU time per text (process
time, so other load on the machine does not inflate it), measured after every model the
texts need is loaded; ``x faster`` compares with plain langdetect in the same setting.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from babelrank.models.language import (
    LanguageDetector,
    _CueDetector,
    _LangdetectProfiles,
    lingua_available,
    make_detector,
)

EXPECTED = ("uk", "ru", "en")
SENTENCE_FILES = {"uk": "tatoeba.ukr-eng.ukr", "ru": "tatoeba.rus-eng.rus", "en": "tatoeba.ukr-eng.eng"}
OTHER_FILES = {"mk": "tatoeba.mkd-eng.mkd", "de": "tatoeba.deu-eng.deu", "fr": "tatoeba.fra-eng.fra",
               "sk": "tatoeba.slk-eng.slk", "hr": "tatoeba.hrv-eng.hrv", "lt": "tatoeba.lit-eng.lit",
               "et": "tatoeba.est-eng.est", "af": "tatoeba.afr-eng.afr", "az": "tatoeba.aze-eng.aze",
               "hy": "tatoeba.hye-eng.hye", "ka": "tatoeba.kat-eng.kat"}
logger = logging.getLogger("language_id")


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


def measure(det: LanguageDetector, sets: dict[str, list[str]]) -> dict[str, Any]:
    """Accuracy and abstention per language, overall, and CPU milliseconds per text."""
    for texts in sets.values():
        det.detect_many(texts[:100])  # load the models these texts need (lingua loads lazily)
    out: dict[str, Any] = {"n": 0, "correct": 0, "und": 0, "cpu": 0.0}
    for lang, texts in sets.items():
        t0 = time.process_time()
        found = det.detect_many(texts)
        out["cpu"] += time.process_time() - t0
        correct = sum(d.language == lang for d in found)
        und = sum(d.language == "und" for d in found)
        out[lang] = {"accuracy": correct / len(texts), "und": und / len(texts), "n": len(texts)}
        out["n"] += len(texts)
        out["correct"] += correct
        out["und"] += und
    out["accuracy"] = out["correct"] / max(1, out["n"])
    out["abstention"] = out["und"] / max(1, out["n"])
    out["ms"] = 1000 * out.pop("cpu") / max(1, out["n"])
    return out


def evaluate(name: str, factory: Callable[[Sequence[str] | None], LanguageDetector],
             sentences: dict[str, list[str]], chunks: dict[str, list[str]],
             others: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Rows for both settings (declared uk/ru/en, none)."""
    rows = []
    for setting, expected in (("uk,ru,en", EXPECTED), ("none", None)):
        logger.info("%s, declared %s", name, setting)
        det = factory(expected)
        chunk_sets = {k: v for k, v in chunks.items() if expected is None or k in expected}
        row: dict[str, Any] = {"backend": name, "declared": setting,
                               "sentences": measure(det, sentences), "chunks": measure(det, chunk_sets)}
        if expected is None:
            row["others"] = {lang: measure(det, {lang: texts})[lang] for lang, texts in others.items()}
        rows.append(row)
    return rows


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def print_tables(rows: list[dict[str, Any]], sentences: dict[str, list[str]], chunks: dict[str, list[str]]) -> None:
    """Markdown tables: sentences and chunks per backend and setting, then other languages."""
    base = {r["declared"]: r for r in rows if r["backend"].startswith("langdetect")}
    n_sentences = {k: len(v) for k, v in sentences.items()}
    n_chunks = {k: len(v) for k, v in chunks.items()}
    print(f"Sentences: Tatoeba {n_sentences}. Chunks: {n_chunks} (5-8 Tatoeba sentences joined "
          "+ XQuAD paragraphs; de/es only when none declared). Accuracy counts `und` as wrong; "
          "und = share abstained; ms = CPU ms per text.\n")
    print("| backend | declared | uk | ru | en | und (sent.) | ms/sent. | x faster | chunks | und (chunks) "
          "| ms/chunk | x faster |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        s, c = r["sentences"], r["chunks"]
        ref = base.get(r["declared"])
        fs = f"{ref['sentences']['ms'] / s['ms']:.1f}" if ref else "-"
        fc = f"{ref['chunks']['ms'] / c['ms']:.1f}" if ref else "-"
        print(f"| {r['backend']} | {r['declared']} | {_pct(s['uk']['accuracy'])} | {_pct(s['ru']['accuracy'])} | "
              f"{_pct(s['en']['accuracy'])} | {_pct(s['abstention'])} | {s['ms']:.3f} | {fs} | "
              f"{100 * c['accuracy']:.2f} | {_pct(c['abstention'])} | {c['ms']:.3f} | {fc} |")
    print("\nPer language, sentences (accuracy / und, %):\n")
    print("| backend | declared | uk | ru | en |")
    print("|---|---|---|---|---|")
    for r in rows:
        s = r["sentences"]
        print(f"| {r['backend']} | {r['declared']} | " + " | ".join(
            f"{_pct(s[lang]['accuracy'])} / {_pct(s[lang]['und'])}" for lang in EXPECTED) + " |")
    with_others = [r for r in rows if "others" in r]
    if with_others and with_others[0]["others"]:
        langs = list(with_others[0]["others"])
        print("\nOther Tatoeba languages, nothing declared (sentence accuracy, %):\n")
        print("| backend | " + " | ".join(langs) + " |")
        print("|---|" + "---:|" * len(langs))
        for r in with_others:
            print(f"| {r['backend']} | " + " | ".join(_pct(r["others"][lang]["accuracy"]) for lang in langs) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder holding tatoeba/ and xquad/")
    ap.add_argument("--no-lingua", action="store_true", help="skip the rows that need lingua")
    ap.add_argument("--json", action="store_true", help="print the measurements as JSON instead")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sentences, chunks, others = load(args.data)

    def no_cues(expected: Sequence[str] | None) -> LanguageDetector:
        det = make_detector("fast", expected)
        assert isinstance(det, _CueDetector)
        return _CueDetector(_LangdetectProfiles.get(), det.expected, det.min_confidence,
                            det.min_chars, use_cues=False)

    backends: list[tuple[str, Callable[[Sequence[str] | None], LanguageDetector]]] = [
        ("langdetect (plain, baseline)", lambda e: make_detector("langdetect", e)),
        ("profiles, no cues", no_cues),
        ("fast (cues + profiles)", lambda e: make_detector("fast", e)),
    ]
    if lingua_available() and not args.no_lingua:
        backends += [("**auto** (cues + profiles + lingua)", lambda e: make_detector("auto", e)),
                     ("lingua (cues + lingua)", lambda e: make_detector("lingua", e))]
    elif not args.no_lingua:
        logger.warning("lingua-language-detector is not installed: 'auto' is the same as 'fast' "
                       "and the lingua rows are skipped (pip install 'babelrank[lingua]')")
    rows = [r for name, f in backends for r in evaluate(name, f, sentences, chunks, others)]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print_tables(rows, sentences, chunks)


if __name__ == "__main__":
    main()
