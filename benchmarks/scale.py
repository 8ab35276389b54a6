"""babelrank at scale: one synthetic multilingual collection grown through 1k -> 10k -> 100k chunks.

    python benchmarks/scale.py --model ../shared/models/multilingual-e5-small-q4 --data ../shared/data \
        [--sizes 1000,10000,100000] [--backend onnx-int8] [--store DIR] [--out DIR]

Documents are 2-4 (`--sentences`) sentences recombined from XQuAD-R (en/ru/de/es, one language
per document); all but about 1 % fit one chunk. The collection grows in steps of `--step` documents; after
each size in `--sizes` (documents) it measures query latency (embed, search with language-neutral
scoring, rerank of k=50 -> top-5 with a 12-layer cross-encoder of mmarco-mMiniLMv2-L12-H384's
shape and random weights), store size on disk, current and peak RSS. Every step and size is
appended to `<out>/scale-<time>.jsonl` as it is measured, so a run cut short keeps what it
measured (`--render FILE` prints the table of a results file); re-running with the same
`--store` resumes (stored documents are skipped).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from run import build_shaped_cross_encoder, dir_size_mb, ms, peak_rss_mb  # noqa: E402

LANGUAGES = ("en", "ru", "de", "es")
log = logging.getLogger("scale")


def synthetic_collection(data: Path, n_chunks: int, seed: int = 0, sentences: tuple[int, int] = (2, 4)) -> list[tuple[str, str, str]]:
    """`[(id, language, text)]`: n documents of `sentences` (min, max) XQuAD-R sentences of one language each."""
    rng = random.Random(seed)
    pools: dict[str, list[str]] = {}
    for lang in LANGUAGES:
        doc = json.loads((data / "xquad-r" / f"{lang}.json").read_text())
        pools[lang] = [s for a in doc["data"] for p in a["paragraphs"] for s in p["sentences"] if len(s) > 20]
    return [
        (f"syn-{i}", LANGUAGES[i % len(LANGUAGES)], " ".join(rng.sample(pools[LANGUAGES[i % len(LANGUAGES)]], rng.randint(*sentences))))
        for i in range(n_chunks)
    ]


def questions(data: Path, per_language: int) -> list[str]:
    """XQuAD questions, languages interleaved."""
    by_lang = []
    for lang in LANGUAGES:
        doc = json.loads((data / "xquad" / f"xquad.{lang}.json").read_text())
        qs = [p["qas"][0]["question"] for a in doc["data"] for p in a["paragraphs"]]
        by_lang.append(qs[::max(1, len(qs) // per_language)][:per_language])
    return [q for group in zip(*by_lang) for q in group]


def current_rss_mb() -> float:
    """Resident set size of this process now, in MB (NaN where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def measure_queries(index: Any, queries: list[str], rerank_queries: int) -> dict[str, Any]:
    """Latency by stage: embed + search (neutral and raw) for every query, full path with rerank for some."""
    out: dict[str, Any] = {}
    index.search(queries[0], rerank=False)
    for mode in ("on", "off"):
        embed, search = [], []
        for q in queries:
            r = index.search(q, rerank=False, neutral=mode == "on")
            embed.append(r.timings["embed"])
            search.append(r.timings["search"])
        out[f"neutral_{mode}"] = {"embed": ms(embed), "search": ms(search)}
    if rerank_queries:
        index.search(queries[0])
        stages: dict[str, list[float]] = {"embed": [], "search": [], "rerank": [], "total": []}
        for q in queries[:rerank_queries]:
            t = time.perf_counter()
            r = index.search(q)
            stages["total"].append(time.perf_counter() - t)
            for k in ("embed", "search", "rerank"):
                stages[k].append(r.timings[k])
        out["with_rerank"] = {k: ms(v) for k, v in stages.items()}
    return out


def render(rows: list[dict[str, Any]]) -> str:
    """Markdown table: one line per measured size, ingest speed over the steps that led to it."""
    out = ["| documents | chunks | ingest chunks/s | search p50 / p95 ms (neutral) | search p50 ms (raw) | rerank p50 ms "
           "| total p50 ms | store MB | RSS MB (peak) |", "|---|---|---|---|---|---|---|---|---|"]
    embedded = seconds = 0.0
    for row in rows:
        if row["event"] == "ingest":
            embedded, seconds = embedded + row["embedded"], seconds + row["seconds"]
        elif row["event"] == "size":
            q = row["query"]
            rerank = q.get("with_rerank", {})
            out.append(
                f"| {row['documents']:,} | {row['chunks']:,} | {embedded / seconds if seconds else float('nan'):.1f} "
                f"| {q['neutral_on']['search']['p50']:.0f} / {q['neutral_on']['search']['p95']:.0f} | {q['neutral_off']['search']['p50']:.0f} "
                f"| {rerank.get('rerank', {}).get('p50', float('nan')):.0f} | {rerank.get('total', {}).get('p50', float('nan')):.0f} "
                f"| {row['store_mb']:.0f} | {row['rss_mb']} ({row['peak_rss_mb']}) |"
            )
            embedded = seconds = 0.0
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="embedding model folder (multilingual-e5-small-q4)")
    ap.add_argument("--data", type=Path, help="folder holding xquad/ and xquad-r/")
    ap.add_argument("--sizes", default="1000,10000,100000", help="collection sizes (chunks) at which queries are measured")
    ap.add_argument("--step", type=int, default=2000, help="documents per ingest call (one progress line each)")
    ap.add_argument("--sentences", default="2,4", help="sentences per document: MIN,MAX (2,2 halves the encoder time)")
    ap.add_argument("--backend", default="onnx-int8")
    ap.add_argument("--queries", type=int, default=40, help="queries for embed/search latency")
    ap.add_argument("--rerank-queries", type=int, default=5, help="queries with rerank (0: none)")
    ap.add_argument("--store", type=Path, help="Chroma store folder (default: a new one under --out); reuse it to resume")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--render", type=Path, help="print the table of a results .jsonl and exit")
    args = ap.parse_args(argv)
    if args.render:
        print(render([json.loads(line) for line in args.render.read_text().splitlines() if line.strip()]))
        return 0
    if not args.model or not args.data:
        ap.error("--model and --data are required")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)

    from babelrank import BabelIndex

    sizes = sorted(int(x) for x in args.sizes.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = args.out / f"scale-{stamp}.jsonl"
    store = args.store or args.out / f"scale-store-{stamp}"
    cross = build_shaped_cross_encoder(args.model, args.out / "models" / "cross-L12-H384-xlmr-vocab")
    low, high = (int(x) for x in args.sentences.split(","))
    docs = synthetic_collection(args.data, sizes[-1], sentences=(low, high))
    queries = questions(args.data, max(1, args.queries // len(LANGUAGES)))

    def record(row: dict[str, Any]) -> None:
        with results.open("a") as f:
            f.write(json.dumps(row) + "\n")
        log.info("%s", json.dumps(row))

    t0 = time.perf_counter()
    index = BabelIndex(embed_model=str(args.model), rerank_model=str(cross), store_path=store, backend=args.backend,
                       device="cpu", progress=False, top_k=50, top_n=5)
    record({"event": "start", "backend": args.backend, "sentences": [low, high], "model": args.model.name, "store": str(store), "sizes": sizes,
            "stored_chunks": index.store.count(),
            "load_s": round(time.perf_counter() - t0, 1), "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "load_avg": os.getloadavg()})
    ingest_s, done = 0.0, 0
    try:
        for size in sizes:
            while done < size:
                batch = docs[done : min(size, done + args.step)]
                t = time.perf_counter()
                report = index.ingest_texts([d[2] for d in batch], ids=[d[0] for d in batch])
                seconds = time.perf_counter() - t
                ingest_s += seconds
                done += len(batch)
                if report.chunks_embedded:  # steps a resumed run finds stored already are skipped quickly
                    record({"event": "ingest", "documents": done, "embedded": report.chunks_embedded, "seconds": round(seconds, 1),
                            "chunks_per_s": round(report.chunks_embedded / seconds, 1), "rss_mb": round(current_rss_mb()),
                            "peak_rss_mb": round(peak_rss_mb()), "load_avg": os.getloadavg()[0]})
            record({"event": "size", "documents": done, "chunks": index.store.count(), "ingest_s_this_run": round(ingest_s, 1),
                    "languages": index.info()["languages"], "store_mb": round(dir_size_mb(Path(store)), 1),
                    "rss_mb": round(current_rss_mb()), "peak_rss_mb": round(peak_rss_mb()),
                    "query": measure_queries(index, queries, args.rerank_queries), "load_avg": os.getloadavg()[0]})
    finally:
        index.close()
    print(render([json.loads(line) for line in results.read_text().splitlines() if line.strip()]))
    print(f"written: {results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
