"""Relevance study (issue #17): a calibrated `relevance` and "no answer here" on XQuAD.

Usage:
    python benchmarks/relevance_study.py --data ../shared/data/xquad \
        --model ../shared/models/multilingual-e5-small-q4 --minilm /tmp/all-MiniLM-L6-v2

Setup. One collection of the XQuAD paragraphs of en+ru+de+es (e5; one paragraph = one chunk)
and one of the English paragraphs only (e5 and MiniLM), with the paragraphs of a random half
of the paragraph ids removed in every language (seed 0): the questions about them have no
answer in any language. Every question is searched with babelrank's neutral scoring
(`NeutralScorer`, calibrated on the collection) and its top 10 get a `relevance`
(`babelrank.query.relevance`), calibrated on pseudo-queries drawn from the collection itself
(one random sentence of each of up to 256 random chunks; no XQuAD label is used).

Reported per question language, on the development articles 0-35, the held-out articles 36-47
and all: AUROC of the top-1 relevance (answerable vs not) and of the baselines (raw top-1
cosine, top-1 per-language z); at the default min_relevance the share of answerable questions
whose answer paragraph (any language) passes and of unanswerable ones with nothing passing;
ECE (10 bins) of top-1 relevance for "the top result is the answer paragraph or a translation";
the extra cost per query. The method's choices were made on articles 0-35 only.

Embeddings are cached as .npy under $RELEVANCE_CACHE (default /tmp/relevance_cache); the first
run embeds about 8k texts (about 15 minutes on 2 busy cores).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

log = logging.getLogger("relevance_study")
LANGS = ["en", "ru", "de", "es"]
E5 = "/work/shared/models/multilingual-e5-small-q4"
MINILM_DEFAULT = "/tmp/all-MiniLM-L6-v2"
CACHE = Path(os.environ.get("RELEVANCE_CACHE", "/tmp/relevance_cache"))
SEED = 0

_models: dict[str, object] = {}


def load_xquad(data: Path, lang: str) -> tuple[list[str], list[str], list[int], list[int]]:
    """`(paragraphs, questions, paragraph index per question, article index per paragraph)`."""
    d = json.loads((data / f"xquad.{lang}.json").read_text(encoding="utf-8"))
    pars: list[str] = []
    qs: list[str] = []
    qpar: list[int] = []
    art: list[int] = []
    for a, article in enumerate(d["data"]):
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                qs.append(qa["question"].strip())
                qpar.append(len(pars))
            pars.append(p["context"].strip())
            art.append(a)
    return pars, qs, qpar, art


def _model(path: str):
    if path not in _models:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        _models[path] = SentenceTransformer(path, device="cpu")
    return _models[path]


def embed(texts: list[str], prompt: str, model_path: str) -> np.ndarray:
    """Unit vectors of `texts` with `prompt` in {"query", "document"} when the model has
    prompts (e5), else plain; cached under CACHE."""
    h = hashlib.sha1(("\n".join(texts) + "\x00" + prompt + "\x00" + model_path).encode()).hexdigest()[:16]
    f = CACHE / f"{Path(model_path).name}.{prompt}.{h}.npy"
    if f.exists():
        return np.load(f)
    m = _model(model_path)
    kw = {"prompt_name": prompt} if prompt in (getattr(m, "prompts", None) or {}) else {}
    log.info("embedding %d texts (%s, %s)", len(texts), prompt, Path(model_path).name)
    v = m.encode(texts, normalize_embeddings=True, batch_size=32, convert_to_numpy=True, **kw).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(f, v)
    return v


def load_embeddings(data: Path, model: str, langs: list[str]) -> dict:
    """Per language: paragraph texts, paragraph and question vectors, plus labels."""
    out = {}
    for lang in langs:
        pars, qs, qpar, art = load_xquad(data, lang)
        out[lang] = {"texts": pars, "P": embed(pars, "document", model), "Q": embed(qs, "query", model),
                     "qpar": np.asarray(qpar), "art": np.asarray(art)}
    return out


# ---------------------------------------------------------------- babelrank parts


def _babelrank():
    """`(LanguageCalibration, NeutralScorer, apply_maps, encode_languages, relevance module)`."""
    from babelrank.query import relevance as rel
    from babelrank.query.neutral import NeutralScorer, apply_maps, encode_languages
    from babelrank.store.calibration import LanguageCalibration

    return LanguageCalibration, NeutralScorer, apply_maps, encode_languages, rel


def _translation_threshold(model: str) -> float | None:
    """The dedup threshold the product would use (None: no translation detection)."""
    from babelrank.query.dedup import default_threshold

    value, calibrated = default_threshold(model)
    return value if calibrated else None


class Pool:
    """A collection of chunk vectors with babelrank's neutral calibration and scorer."""

    def __init__(self, vectors: np.ndarray, langs: np.ndarray, pids: np.ndarray) -> None:
        LanguageCalibration, NeutralScorer, apply_maps, language_codes, _ = _babelrank()
        self.P, self.langs, self.pids = vectors.astype(np.float64), np.asarray(langs), np.asarray(pids)
        self.cal = LanguageCalibration(self.P.shape[1])
        self.cal.add(self.P, list(self.langs))
        self.scorer = NeutralScorer(self.cal)
        self._apply, (self.codes, self.names) = apply_maps, language_codes(list(self.langs))
        self.names_arr = np.asarray(self.names)

    def language_stats(self, qv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per calibrated language (order of `names`): mean and spread of cosines along `qv`."""
        means = np.array([qv @ self.cal.centroid(x) for x in self.names])
        spreads = np.sqrt(np.array([(qv * qv) @ self.cal.variance(x) for x in self.names]))
        return means, spreads

    def score(self, q: np.ndarray, qlang: str) -> dict:
        """Search vector, cosines, neutral scores and z of every chunk for one query."""
        qv = self.scorer.query_vector(q, qlang).astype(np.float64)
        cos = self.P @ qv
        means, spreads = self.language_stats(qv)
        neutral = self._apply(self.scorer.maps(q, qlang), cos, self.codes, self.names)
        return {"qv": qv, "cos": cos, "neutral": neutral, "means": means, "spreads": spreads,
                "z": (cos - means[self.codes]) / spreads[self.codes]}



# ---------------------------------------------------------------- calibration (no labels)


def calibrate(pool: Pool, texts: list[str], threshold: float | None, model: str):
    """The product's `RelevanceCalibration` of the pool (`babelrank.query.relevance_fit.fit_relevance`:
    its pseudo-queries, drawn from the pool's own texts, embedded with the study's cache)."""
    from babelrank.query.relevance_fit import CollectionVectors, fit_relevance

    ids = [f"{i:06d}" for i in range(len(pool.P))]
    documents = [f"{lang}:{pid}" for lang, pid in zip(pool.langs, pool.pids)]  # one chunk per paragraph
    coll = CollectionVectors(ids, documents, list(pool.langs), pool.P, pool.scorer, threshold)
    return fit_relevance(coll, lambda some: [texts[int(i)] for i in some],
                         lambda q: embed(q, "query", model), lambda d: embed(d, "document", model))


# ---------------------------------------------------------------- evaluation

TOP_K = 10


def search(pool: Pool, Q: np.ndarray, qlang: str, rcal, rel) -> dict:
    """Per question: the neutral top 10, their relevance, and the baselines' top-1 statistics."""
    top, relv, raw1, z1 = [], [], [], []
    for q in Q.astype(np.float64):
        s = pool.score(q, qlang)
        o = np.argsort(-s["neutral"])[:TOP_K]
        top.append(o)
        relv.append(rel.relevance(s["z"][o], rcal, len(pool.P)))
        raw1.append(float((pool.P @ (q / np.linalg.norm(q))).max()))
        z1.append(s["z"][o[0]])
    return {"top": np.array(top), "relevance": np.array(relv), "raw": np.array(raw1), "z": np.array(z1)}


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    return float(greater + 0.5 * (pos[:, None] == neg[None, :]).mean())


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over `bins` equal-width bins of `p`."""
    b = np.minimum((np.asarray(p) * bins).astype(int), bins - 1)
    return float(sum((b == i).mean() * abs(p[b == i].mean() - y[b == i].mean()) for i in range(bins) if (b == i).any()))


def metrics(res: dict, relevant: np.ndarray, answerable: np.ndarray, rows: np.ndarray, min_rel: float) -> dict:
    """The table's numbers for the questions in `rows` (`relevant[i, j]`: result j of question i is the answer)."""
    a, rv, rl = answerable[rows], res["relevance"][rows], relevant[rows]
    top1 = rv[:, 0]
    return {"n": f"{a.sum()}/{(~a).sum()}",
            "AUROC raw cos": auroc(res["raw"][rows][a], res["raw"][rows][~a]),
            "AUROC z": auroc(res["z"][rows][a], res["z"][rows][~a]),
            "AUROC relevance": auroc(top1[a], top1[~a]),
            "kept": float((rl[a] & (rv[a] >= min_rel)).any(1).mean()),
            "refused": float((rv[~a].max(1) < min_rel).mean()),
            "ECE": ece(top1, rl[:, 0].astype(float)),
            "hit@1": float(rl[a, 0].mean())}


def cost_per_query(pool: Pool, Q: np.ndarray, qlang: str, rcal, rel, repeats: int = 2000) -> float:
    """Median seconds of the query-time extra: per-language mean and spread along the search
    vector, z of the top 10, relevance, answerable (the search itself is not counted)."""
    import time

    qvs = [pool.scorer.query_vector(q, qlang).astype(np.float64) for q in Q[:50]]
    cos = [pool.P @ qv for qv in qvs]
    times = []
    for i in range(repeats):
        qv, c = qvs[i % len(qvs)], cos[i % len(qvs)]
        top = np.argpartition(-c, TOP_K)[:TOP_K]
        t0 = time.perf_counter()
        means, spreads = pool.language_stats(qv)
        b = pool.codes[top]
        r = rel.relevance(rel.standing(c[top], means[b], spreads[b]), rcal, len(pool.P))
        rel.answerable(r)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run_setting(data: Path, model: str, langs: list[str], label: str, min_rel: float | None) -> tuple[list, dict]:
    """Rows of the table for one model and collection, and the calibration used."""
    *_, rel = _babelrank()
    min_rel = rel.DEFAULT_MIN_RELEVANCE if min_rel is None else min_rel
    emb = load_embeddings(data, model, langs)
    n_par = len(emb[langs[0]]["P"])
    removed = np.zeros(n_par, bool)
    removed[np.random.default_rng(SEED).choice(n_par, n_par // 2, replace=False)] = True
    kept = np.flatnonzero(~removed)
    pool = Pool(np.vstack([emb[x]["P"][kept] for x in langs]), np.repeat(langs, len(kept)), np.tile(kept, len(langs)))
    texts = [emb[x]["texts"][i] for x in langs for i in kept]
    rcal = calibrate(pool, texts, _translation_threshold(model), model)
    rows = []
    for qlang in langs:
        e = emb[qlang]
        res = search(pool, e["Q"], qlang, rcal, rel)
        ans = ~removed[e["qpar"]]
        relevant = (pool.pids[res["top"]] == e["qpar"][:, None]) & ans[:, None]
        art = e["art"][e["qpar"]]
        for split, sel in (("dev 0-35", art < 36), ("test 36-47", art >= 36), ("all", np.ones(len(art), bool))):
            rows.append({"setting": label, "split": split, "lang": qlang, **metrics(res, relevant, ans, sel, min_rel)})
    cost = cost_per_query(pool, emb[langs[0]]["Q"], langs[0], rcal, rel)
    return rows, {"setting": label, "chunks": len(pool.P), "cost_us": cost * 1e6, **rcal.to_dict()}


def markdown(rows: list[dict]) -> str:
    keys = list(rows[0])
    fmt = [lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)][0]
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    out += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(out)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/xquad"))
    ap.add_argument("--model", default=E5, help="multilingual e5 folder (query:/passage: prompts)")
    ap.add_argument("--minilm", default=MINILM_DEFAULT, help="all-MiniLM-L6-v2 folder (English only)")
    ap.add_argument("--min-relevance", type=float, default=None, help="default: the module's DEFAULT_MIN_RELEVANCE")
    ap.add_argument("--languages", default=",".join(LANGS),
                    help="XQuAD languages of the multilingual collection (default: the issue's en,ru,de,es)")
    args = ap.parse_args()
    langs = [x.strip() for x in args.languages.split(",") if x.strip()]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows, cals = [], []
    for model, setting_langs, label in ((args.model, langs, "e5 " + "+".join(langs)), (args.model, ["en"], "e5 en"),
                                        (args.minilm, ["en"], "MiniLM en")):
        r, c = run_setting(args.data, model, setting_langs, label, args.min_relevance)
        rows += r
        cals.append(c)
    print(markdown(rows))
    print()
    print(markdown(cals))


if __name__ == "__main__":
    main()
