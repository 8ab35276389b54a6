"""How long a query waits while the server ingests: many documents in one request, or one big document.

    python benchmarks/query_during_ingest.py --model ../shared/models/multilingual-e5-small-q4 \\
        [--mb 0.5] [--backend onnx-int8] [--every 3]

The server app (`create_app`) runs in this process over a fresh embedded store with no
reranker. For each case, a 0.5 MB ingest request goes in (`many`: 100 documents of
Ukrainian, Russian and English paragraphs; `one`: the same text as a single document), and
while it runs a query is sent every `--every` seconds, each after the previous one answered.
The table gives the ingest's time and the queries' wait (median and max), with the wait of
the same query on the idle server (after the ingest) as the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bigfile import _PARAGRAPHS  # noqa: E402

QUERY = "Куди поїхав власник червоного автомобіля?"


def _text(mb: float) -> str:
    paragraphs, size, n = [], 0, 0
    while size < mb * 2**20:
        p = f"{n}. {_PARAGRAPHS[n % len(_PARAGRAPHS)]}"
        paragraphs.append(p)
        size += len(p.encode("utf-8")) + 2
        n += 1
    return "\n\n".join(paragraphs)


def _documents(case: str, mb: float) -> list[dict[str, str]]:
    text = _text(mb)
    if case == "one":
        return [{"id": "big", "text": text}]
    step = len(text) // 100 + 1
    return [{"id": f"doc-{i}", "text": text[i * step : (i + 1) * step]} for i in range(100)]


async def _measure(app: object, docs: list[dict[str, str]], every: float) -> dict[str, float]:
    import httpx

    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=3600) as client:
            start = time.perf_counter()
            ingest = asyncio.create_task(client.post("/v1/documents", json={"documents": docs}))
            waits = []
            while not ingest.done():
                await asyncio.sleep(every)
                sent = time.perf_counter()
                answer = await client.post("/v1/query", json={"query": QUERY})
                answer.raise_for_status()
                if not ingest.done():
                    waits.append(time.perf_counter() - sent)
            (await ingest).raise_for_status()
            ingest_s = time.perf_counter() - start
            idle = []
            for _ in range(5):
                sent = time.perf_counter()
                (await client.post("/v1/query", json={"query": QUERY})).raise_for_status()
                idle.append(time.perf_counter() - sent)
    print("waits (s):", " ".join(f"{w:.2f}" for w in waits), file=sys.stderr)
    return {"ingest_s": ingest_s, "queries": len(waits), "median_s": statistics.median(waits) if waits else float("nan"),
            "max_s": max(waits, default=float("nan")), "idle_s": statistics.median(idle)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="bi-encoder folder or name")
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--mb", type=float, default=0.5, help="size of the ingest request's text")
    parser.add_argument("--every", type=float, default=3.0, help="seconds between the answer of one query and the next")
    parser.add_argument("--cases", default="many,one")
    args = parser.parse_args(argv)

    from babelrank import BabelIndex
    from babelrank.apps.server.app import ServerSettings, create_app

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", file=sys.stderr)
    rows = []
    for case in args.cases.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            index = BabelIndex(store_path=tmp, embed_model=args.model, backend=args.backend, rerank_model="none")
            try:
                row = asyncio.run(_measure(create_app(index=index, server_settings=ServerSettings()), _documents(case, args.mb), args.every))
            finally:
                index.close()
        rows.append((case, row))
        print(f"{case}: {row}", file=sys.stderr)
    print(f"\n{args.mb} MB ingest request, {args.backend}, load average after {os.getloadavg()[0]:.1f}\n")
    print("| request | ingest (s) | queries during it | query wait median (s) | max (s) | idle server (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for case, r in rows:
        label = "100 documents" if case == "many" else "one document"
        print(f"| {label} | {r['ingest_s']:.0f} | {r['queries']} | {r['median_s']:.2f} | {r['max_s']:.2f} | {r['idle_s']:.3f} |")


if __name__ == "__main__":
    main()
