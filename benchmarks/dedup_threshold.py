"""Measure the centred-cosine threshold that tells translations apart from different content.

Translation-aware results (`babelrank.query.dedup`) collapse two results when the cosine of their
stored passage vectors, each centred on its language's centroid, is at or above a threshold.
The threshold is a property of the embedding model, so it is measured here on Tatoeba
(LASER files `tatoeba.<xxx>-eng.*`), passage prompt on both sides:

* positives: sentence i in xx and its English translation i;
* hardest cross-language non-pairs: for each sentence, the most similar sentence on the
  other side that is *not* its translation;
* hardest same-language non-pairs: for each sentence, the most similar *other* sentence of
  its own side.

Centroids are each side's mean vector (in babelrank: the collection's per-language centroid).
It prints percentiles of the three distributions and the equal-error point between positives
and the hardest non-pairs (both kinds), which is the suggested threshold. `--raw` adds the
same tables for the raw cosine, to show why babelrank centres.

Caveats, measured: Tatoeba sentences are short and the hardest "non-pairs" are often
paraphrases ("I'm sure Tom will..." / "I'm sure that Tom will...", cosine 0.999), which are
duplicates for dedup purposes, so the negative tail is pessimistic. `--xquad DIR` validates
the suggested threshold on XQuAD paragraphs (en vs ru/de/es at the same position =
translation; other paragraphs of the same article = hardest non-pairs) from `--xquad-skip`
on, so the paragraphs of the XQuAD dedup test are not used; nothing is fitted on XQuAD.

    python benchmarks/dedup_threshold.py --model /path/to/multilingual-e5-small-q4 \
        --data /path/to/tatoeba [--langs ukr,rus,deu,fra] [--xquad /path/to/xquad] [--raw]

Embeddings are cached as .npy under `--cache` (default /tmp/dedup_cache).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99)


def _embed(encoder, texts: Sequence[str], cache: Path, tag: str) -> np.ndarray:
    key = hashlib.sha256(("\x00".join(texts) + "\x01" + encoder.name + encoder.document_prompt).encode()).hexdigest()[:16]
    path = cache / f"{tag}-{key}.npy"
    if path.is_file():
        return np.load(path)
    vectors = encoder.encode_documents(list(texts), batch_size=32)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def hard_negatives(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each row of `a`, the highest cosine to a row of `b` other than its own index."""
    sims = a @ b.T
    np.fill_diagonal(sims, -np.inf)
    return sims.max(axis=1)


def equal_error_threshold(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """Threshold where the share of positives below equals the share of negatives at/above."""
    grid = np.unique(np.concatenate([pos, neg]))
    fnr = np.searchsorted(np.sort(pos), grid, side="left") / len(pos)
    fpr = 1 - np.searchsorted(np.sort(neg), grid, side="left") / len(neg)
    i = int(np.argmin(np.abs(fnr - fpr)))
    return float(grid[i]), float((fnr[i] + fpr[i]) / 2)


def _row(name: str, values: np.ndarray) -> str:
    return f"{name:<28}" + "".join(f"{np.percentile(values, p):7.3f}" for p in PERCENTILES)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _space(vectors: dict[str, np.ndarray], centred: bool) -> dict[str, np.ndarray]:
    """Raw vectors, or each language's vectors minus that language's mean, re-normalised."""
    return {k: _unit(v - v.mean(0)) if centred else v for k, v in vectors.items()}


def tatoeba(encoder, data: Path, langs: Sequence[str], n: int, cache: Path, centred: bool) -> dict:
    from babelrank.evaluation.datasets import load_tatoeba

    pos, cross, same, per_lang = [], [], [], {}
    for lang3 in langs:
        pair = load_tatoeba(data, lang3)
        raw = {"xx": _embed(encoder, pair.source[:n], cache, f"tatoeba-{lang3}-{lang3}"),
               "en": _embed(encoder, pair.english[:n], cache, f"tatoeba-{lang3}-eng")}
        v = _space(raw, centred)
        xx, en = v["xx"], v["en"]
        p = np.einsum("ij,ij->i", xx, en)
        c = np.concatenate([hard_negatives(xx, en), hard_negatives(en, xx)])
        s = np.concatenate([hard_negatives(xx, xx), hard_negatives(en, en)])
        per_lang[lang3] = (p, c, s)
        pos.append(p), cross.append(c), same.append(s)
    return {"pairs": np.concatenate(pos), "cross": np.concatenate(cross), "same": np.concatenate(same),
            "per_lang": per_lang}


def xquad(encoder, data: Path, langs: Sequence[str], skip: int, n: int, cache: Path, centred: bool) -> dict:
    """Paragraph-level validation: translations vs other paragraphs of the same article.

    Uses paragraphs `skip .. n-1` (file order), so the first `skip` (those of the XQuAD
    dedup test) stay out of it. Centroids come from the same paragraphs, as a collection's
    calibration would give them.
    """
    from babelrank.evaluation.datasets import xquad_paragraph_pool

    corpus = xquad_paragraph_pool(data, ["en", *langs], ["en"], limit=n)
    by_lang: dict[str, list] = {}
    for d in corpus.documents:
        by_lang.setdefault(d.language, []).append(d)
    raw = {lang: _embed(encoder, [d.text for d in docs], cache, f"xquad-{lang}-{n}")[skip:]
           for lang, docs in by_lang.items()}
    vecs = _space(raw, centred)
    articles = np.array([d.metadata["article"] for d in by_lang["en"]])[skip:]
    same_article = articles[:, None] == articles[None, :]
    np.fill_diagonal(same_article, False)
    pos, cross, same = [], [], []
    for lang in langs:
        sims = vecs[lang] @ vecs["en"].T
        pos.append(np.diag(sims))
        cross.append(np.where(same_article, sims, -np.inf).max(1))
    for lang, v in vecs.items():
        sims = v @ v.T
        same.append(np.where(same_article, sims, -np.inf).max(1))
    return {"pairs": np.concatenate(pos), "cross": np.concatenate(cross), "same": np.concatenate(same)}


def report(title: str, d: dict, threshold: float | None = None) -> None:
    print(f"\n{title}")
    print(f"{'percentile':<30}" + "".join(f"{p:>7}" for p in PERCENTILES))
    print(_row(f"translation pairs (n={len(d['pairs'])})", d["pairs"]))
    print(_row("hardest cross-lang non-pair", d["cross"]))
    print(_row("hardest same-lang non-pair", d["same"]))
    if threshold is not None:
        merged = float((d["pairs"] >= threshold).mean())
        wc, ws = float((d["cross"] >= threshold).mean()), float((d["same"] >= threshold).mean())
        print(f"at {threshold:.2f}: translation pairs merged {merged:.1%}; hardest non-pairs merged: "
              f"cross-lang {wc:.1%}, same-lang {ws:.1%}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="bi-encoder folder, preset or hub id")
    ap.add_argument("--data", required=True, type=Path, help="folder with LASER Tatoeba files")
    ap.add_argument("--langs", default="ukr,rus,deu,fra", help="ISO 639-3 codes paired with eng")
    ap.add_argument("--n", type=int, default=1000, help="sentences per language")
    ap.add_argument("--raw", action="store_true", help="also print the raw-cosine tables")
    ap.add_argument("--xquad", type=Path, help="XQuAD folder for a paragraph-level validation")
    ap.add_argument("--xquad-langs", default="ru,de,es")
    ap.add_argument("--xquad-skip", type=int, default=60, help="leave out the first paragraphs (the test's)")
    ap.add_argument("--xquad-n", type=int, default=240, help="paragraphs per language, skipped ones included")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/dedup_cache"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true", help="print the suggested threshold as JSON last")
    args = ap.parse_args(argv)

    from babelrank.models.bi_encoder import load_bi_encoder

    encoder = load_bi_encoder(args.model, device=args.device)
    langs = [x.strip() for x in args.langs.split(",") if x.strip()]
    xlangs = [x.strip() for x in args.xquad_langs.split(",") if x.strip()]
    suggested = None
    for centred in ([False] if args.raw else []) + [True]:
        space = "centred cosine" if centred else "raw cosine"
        t = tatoeba(encoder, args.data, langs, args.n, args.cache, centred)
        report(f"[{space}] Tatoeba {'+'.join(langs)} vs eng, {args.n} pairs each, {encoder.name}, passage prompt both sides", t)
        for lang3, (p, c, s) in t["per_lang"].items():
            print(f"  {lang3}: pairs p5 {np.percentile(p, 5):.3f} p50 {np.median(p):.3f}; "
                  f"hardest cross p95 {np.percentile(c, 95):.3f}; hardest same p95 {np.percentile(s, 95):.3f}")
        eer_all, err_all = equal_error_threshold(t["pairs"], np.concatenate([t["cross"], t["same"]]))
        eer_cross, err_cross = equal_error_threshold(t["pairs"], t["cross"])
        print(f"equal-error point, pairs vs hardest non-pairs (both kinds): {eer_all:.3f} (error {err_all:.1%})")
        print(f"equal-error point, pairs vs hardest cross-lang non-pairs:    {eer_cross:.3f} (error {err_cross:.1%})")
        if centred:
            suggested = round(eer_all, 2)
            print(f"suggested dedup_threshold (centred, equal-error point over both kinds): {suggested:.2f}")
        if args.xquad:
            x = xquad(encoder, args.xquad, xlangs, args.xquad_skip, args.xquad_n, args.cache, centred)
            report(f"[{space}] XQuAD paragraphs {args.xquad_skip}..{args.xquad_n - 1}, en vs {'+'.join(xlangs)} "
                   "(validation, not fitted; non-pairs = other paragraphs of the same article)", x,
                   suggested if centred else round(eer_all, 2))
    if args.json:
        print(json.dumps({"model": encoder.name, "suggested": suggested}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
