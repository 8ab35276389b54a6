"""Language-neutral scoring study: Tatoeba mixed pool and XQuAD-R (en+ru+de+es, then every language in DATA/xquad-r).

Usage:
    python benchmarks/neutral_study.py --data ../shared/data \
        --model ../shared/models/multilingual-e5-small-q4

Embeddings are cached as .npy under $NEUTRAL_CACHE (default /tmp/neutral_cache); the first run
embeds ~70k texts with torch (about an hour on 2 busy cores). Every calibration is computed
from the evaluated pool itself (the product setting), or from 2/3/5/10/20/100 random chunks per
language (the first-chunks rows).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import neutral_data as nd  # noqa: E402

from babelrank.query.neutral import (  # noqa: E402
    IDENTITY,
    NeutralScorer,
    apply_maps,
    encode_languages,
)
from babelrank.store.calibration import DEFAULT_MIN_COUNT, LanguageCalibration  # noqa: E402

log = logging.getLogger("neutral_study")
N_PSEUDO = 100  # pseudo-queries per language, only for recognising untagged queries
RNG_SEED = 0
SMALL = (2, 3, 5, 10)  # chunks per language for the first-chunks rows


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class PreviousScorer(NeutralScorer):
    """The score before the lean removal (lift + spread on the raw query), for comparison."""

    def _projected(self, query: np.ndarray, language: str | None) -> np.ndarray:
        return _unit(np.asarray(query, dtype=np.float64))


def method_scores(Q: np.ndarray, qlangs, P: np.ndarray, plangs, cal: LanguageCalibration,
                  previous: bool = False) -> tuple[np.ndarray, list[dict], np.ndarray]:
    """Neutral scores of every pool vector for every query, the maps, and the cosines with the
    search vector (`NeutralScorer.query_vector`, what Chroma is asked with).

    `previous` scores with the method before the lean removal (for comparison).
    """
    sc = (PreviousScorer if previous else NeutralScorer)(cal)
    codes, names = encode_languages(plangs)
    S, C, all_maps = np.empty((len(Q), len(P))), np.empty((len(Q), len(P))), []
    for i in range(len(Q)):
        lang = qlangs[i] if qlangs is not None else None
        C[i] = P @ sc.query_vector(Q[i], lang).astype(np.float64)
        maps = sc.maps(Q[i], lang)
        S[i] = apply_maps(maps, C[i], codes, names)
        all_maps.append(maps)
    return S, all_maps, C


def fixed_cos(Q, qlangs, P, plangs, mu: dict, s: float) -> np.ndarray:
    """Brief's baseline: cos(q - s mu_A, d - s mu_B)."""
    Qc = _unit(Q - s * np.stack([mu[a] for a in qlangs]))
    Pc = _unit(P - s * np.stack([mu[b] for b in plangs]))
    return Qc @ Pc.T


def extra_queries(raw: np.ndarray, neutral: np.ndarray, maps: list[dict], plangs, k: int, fetch: int) -> np.ndarray:
    """Per query: the per-language queries `babelrank.query.search.Searcher.search` adds to its first one.

    First query: the raw top `fetch`. A language L needs its own query when its unseen chunks
    could still reach the neutral top-k: map_L(lowest fetched raw score) > k-th neutral score
    among the fetched.
    """
    langs = list(dict.fromkeys(np.asarray(plangs).tolist()))
    n = min(fetch, raw.shape[1] - 1)
    out = np.zeros(len(raw), dtype=int)
    for i in range(len(raw)):
        order = np.argsort(-raw[i])[:n]
        floor, kth = raw[i, order[-1]], np.sort(neutral[i, order])[::-1][k - 1]
        out[i] = sum(bool(maps[i].get(lang, maps[i].get("und", IDENTITY))(floor) > kth + 1e-12) for lang in langs)
    return out


def calibrate(P, plangs, pq=None, pq_langs=None, min_count: int = DEFAULT_MIN_COUNT) -> LanguageCalibration:
    cal = LanguageCalibration(P.shape[1], min_count)
    cal.add(P, plangs)
    if pq is not None:
        cal.add_pseudo_queries(pq, pq_langs)
    return cal


def tatoeba_study(data: Path, model: str) -> tuple[list, list]:
    rows, pools = [], []
    rng = np.random.default_rng(RNG_SEED)
    for lang in nd.TATOEBA_LANGS:
        xx, en = nd.tatoeba(data, lang)
        Q = nd.embed(xx, "query", model, f"tat_{lang}_xx")
        X = nd.embed(xx, "document", model, f"tat_{lang}_xx")
        E = nd.embed(en, "document", model, f"tat_{lang}_en")
        n = len(Q)
        # pseudo-queries: N_PSEUDO sampled chunks per language, query prompt
        sx, se = rng.choice(n, min(N_PSEUDO, n), replace=False), rng.choice(n, min(N_PSEUDO, n), replace=False)
        EQs = nd.embed([en[i] for i in se], "query", model, f"tat_{lang}_en_pq{N_PSEUDO}")
        P = np.vstack([E, X]).astype(np.float64)
        plangs = ["eng"] * n + [lang] * n
        ql = [lang] * n
        own = (np.arange(n), n + np.arange(n))

        def acc(S):
            S = S.copy()
            S[own] = -np.inf
            return float(np.mean(S.argmax(1) == np.arange(n))), float(np.mean(S.argmax(1) >= n))

        cal = calibrate(P, plangs, np.vstack([Q[sx], EQs]), [lang] * len(sx) + ["eng"] * len(se))
        mu = {"eng": E.mean(0), lang: X.mean(0)}
        raw = Q @ P.T
        r = {"lang": lang, "n": n}
        r["raw"], r["raw_same"] = acc(raw)
        for s in (0.5, 0.75, 1.0):
            r[f"cos{s}"] = acc(fixed_cos(Q, ql, P, plangs, mu, s))[0]
        r["full"] = acc(raw + (Q @ (X.mean(0) - E.mean(0)))[:, None] * (np.arange(2 * n) < n))[0]
        Sm, maps, C = method_scores(Q, ql, P, plangs, cal)
        r["method"], r["method_same"] = acc(Sm)
        r["previous"] = acc(method_scores(Q, ql, P, plangs, cal, previous=True)[0])[0]
        r["method_unk"] = acc(method_scores(Q, None, P, plangs, cal)[0])[0]
        for m in SMALL:
            pick = np.concatenate([rng.choice(n, m, replace=False), n + rng.choice(n, m, replace=False)])
            small = calibrate(P[pick], [plangs[i] for i in pick], min_count=m)
            r[f"method_{m}"] = acc(method_scores(Q, ql, P, plangs, small)[0])[0]
        # English-only pool: raw vs method calibrated on the English-only collection
        calE = calibrate(E.astype(np.float64), ["eng"] * n)
        r["en_raw"] = float(np.mean((Q @ E.T).argmax(1) == np.arange(n)))
        r["en_method"] = float(np.mean(method_scores(Q, ql, E, ["eng"] * n, calE)[0].argmax(1) == np.arange(n)))
        S = Sm.copy()
        S[own] = -np.inf
        C[own] = -np.inf
        pools.append((C, S, maps, plangs))
        rows.append(r)
        log.info("%s done", lang)
    return rows, pools


def xquad_study(data: Path, model: str, langs: list[str]) -> tuple[dict, tuple]:
    rng = np.random.default_rng(RNG_SEED)
    P, PL, Q, QL, rel, PQ, PQL = [], [], [], [], [], [], []
    byid: dict[str, list[int]] = {}
    parts = {}
    off = 0
    for lang in langs:
        s, qid, q, rl = nd.xquad_r(data, lang)
        P.append(nd.embed(s, "document", model, f"xqr_{lang}_sent"))
        PL += [lang] * len(s)
        pick = rng.choice(len(s), N_PSEUDO, replace=False)
        PQ.append(nd.embed([s[i] for i in pick], "query", model, f"xqr_{lang}_sent_pq{N_PSEUDO}"))
        PQL += [lang] * N_PSEUDO
        for i, r_ in zip(qid, rl):
            byid.setdefault(i, []).append(off + r_)
        parts[lang] = (q, qid)
        off += len(s)
    for lang in langs:
        q, qid = parts[lang]
        Q.append(nd.embed(q, "query", model, f"xqr_{lang}_q"))
        QL += [lang] * len(q)
        rel += [byid[i] for i in qid]
    P, Q, PL_a, QL_a = np.vstack(P).astype(np.float64), np.vstack(Q).astype(np.float64), np.array(PL), np.array(QL)

    def metrics(S, k=20):
        top = np.argsort(-S, axis=1)[:, :k]
        aps, r1, same = [], [], []
        for i in range(len(S)):
            rs, h, ap = set(rel[i]), 0, 0.0
            for j, d in enumerate(top[i]):
                if d in rs:
                    h += 1
                    ap += h / (j + 1)
            aps.append(ap / min(len(rs), k))
            r1.append(top[i][0] in rs)
            same.append(np.mean(PL_a[top[i][:10]] == QL_a[i]))
        aps, same = np.asarray(aps), np.asarray(same)
        per = {lang: float(aps[QL_a == lang].mean()) for lang in langs}
        return {"mAP@20": float(np.mean(aps)), "R@1": float(np.mean(r1)), "same@10": float(np.mean(same)),
                "worst same@10": max(float(same[QL_a == lang].mean()) for lang in langs),
                "worst/best": min(per.values()) / max(per.values()), **per}

    cal = calibrate(P, PL, np.vstack(PQ), PQL)
    mu = {lang: P[PL_a == lang].mean(0) for lang in langs}
    raw = Q @ P.T
    out = {"raw": metrics(raw)}
    out["documents centred <q, d - mu_B>"] = metrics(raw - np.stack([Q @ mu[b] for b in PL], axis=1))
    Sm, maps, C = method_scores(Q, QL, P, PL, cal)
    out["method"] = metrics(Sm)
    out["previous (lift + spread on the raw query)"] = metrics(method_scores(Q, QL, P, PL, cal, previous=True)[0])
    out["method, query lang unknown"] = metrics(method_scores(Q, None, P, PL, cal)[0])
    for m in (*SMALL, 20, 100):
        sub = np.concatenate([rng.choice(np.flatnonzero(PL_a == lang), m, replace=False) for lang in langs])
        c = calibrate(P[sub], PL_a[sub].tolist(), min_count=min(m, DEFAULT_MIN_COUNT))
        out[f"method, statistics from {m}/lang"] = metrics(method_scores(Q, QL, P, PL, c)[0])
    return out, (C, Sm, maps, PL)


def extra_row(name: str, pools: list[tuple], k: int, fetch: int) -> str:
    e = np.concatenate([extra_queries(r, s, m, p, k, fetch) for r, s, m, p in pools])
    return (f"| {name} | {k} | {fetch} | {np.mean(e == 0):.3f} | {np.mean(e):.2f} | "
            f"{np.mean(1 + e):.2f} | {e.max()} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=os.environ.get("BABELRANK_TEST_DATA"), required="BABELRANK_TEST_DATA" not in os.environ)
    ap.add_argument("--model", default=os.path.join(os.environ.get("BABELRANK_TEST_MODELS", ""), "multilingual-e5-small-q4"))
    ap.add_argument("--languages", type=lambda v: v.split(","), default=None,
                    help="XQuAD-R languages (default: every <lang>.json in DATA/xquad-r)")
    args = ap.parse_args()
    args.languages = args.languages or sorted(p.stem for p in (args.data / "xquad-r").glob("*.json"))
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    rows, tpools = tatoeba_study(args.data, args.model)
    cols = ["raw", "cos0.5", "cos0.75", "cos1.0", "full", "previous", "method", "method_unk",
            *(f"method_{m}" for m in SMALL), "raw_same", "method_same", "en_raw", "en_method"]
    print("\n## Tatoeba mixed pool, acc@1 (pool = all English + other xx sentences)\n")
    print("cosK = cos(q - K mu_A, d - K mu_B); full = unclipped centring <q, d - mu_B>; "
          "previous = lift + spread on the raw query (before the lean removal); method = the product's score; method_unk = query language estimated; "
          "method_N = statistics from N random chunks per language; *_same = top-1 in query "
          "language; en_* = English-only pool\n")
    print("| lang | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for r in rows:
        print(f"| {r['lang']} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")
    worst = min(r["method"] - r["raw"] for r in rows)
    print(f"\nworst method - raw: {worst:+.3f}; worst method_unk - raw: "
          f"{min(r['method_unk'] - r['raw'] for r in rows):+.3f}")

    for langs in ([x for x in ("en", "ru", "de", "es") if x in args.languages], args.languages):
        xq, xpool = xquad_study(args.data, args.model, langs)
        print(f"\n## XQuAD-R {'+'.join(langs)} sentence pool\n")
        print("| scoring | mAP@20 | R@1 | same-language@10 (mean / worst language) | worst/best language | "
              + " | ".join(langs) + " |\n" + "|---" * (5 + len(langs)) + "|")
        for k, v in xq.items():
            print(f"| {k} | {v['mAP@20']:.3f} | {v['R@1']:.3f} | {v['same@10']:.2f} / {v['worst same@10']:.2f} | "
                  f"{v['worst/best']:.2f} | " + " | ".join(f"{v[x]:.3f}" for x in langs) + " |")

    print("\n## Neutral search cost: Chroma queries per search (the first query fetches `fetch`)\n")
    print("| pool | k | fetch | share with one query | extra queries (mean) | queries (mean) | max extra |")
    print("|---|---|---|---|---|---|---|")
    for k in (20, 50):
        for fetch in (8 * k, 500, 1000):
            print(extra_row(f"XQuAD-R {len(args.languages)} langs", [xpool], k, fetch))
            print(extra_row("Tatoeba 16 pools (~2000 chunks each)", tpools, k, fetch))


if __name__ == "__main__":
    main()
