"""Peak memory of reading and chunking one big text file, by file size.

    python benchmarks/bigfile.py --model ../shared/models/multilingual-e5-small-q4 [--sizes 10,50,100]

For each size (MB of UTF-8) it writes a text file of Ukrainian, Russian and English
paragraphs, then, in a fresh subprocess, reads it with `read_file` and chunks it with the
model's tokenizer as ingest does (`TokenChunker.split_many`, 256 tokens, the default
overlap) and reports the process's peak RSS against its RSS before reading (Python,
babelrank and the tokenizer loaded). Embedding and the Chroma write are left out:
they take hours for 100 MB on a CPU, and they hold one vector per chunk, not the text's
tokens. `--src` imports another checkout's `src` folder (an older revision, to compare).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_PARAGRAPHS = [
    "Червоний автомобіль стоїть біля будинку на вулиці. Сусіди кажуть, що власник поїхав до моря.",
    "Красная машина стоит возле дома у реки. Соседи говорят, что хозяин уехал на море!",
    "The red car is parked outside the house near the river. The neighbours say its owner went to the sea?",
    "- a list item about the library\n- another item: opening hours 9 to 18",
]


def write_text(path: Path, mb: float) -> None:
    """A UTF-8 file of about `mb` MB (2**20 bytes) of numbered paragraphs."""
    block = "\n\n".join(f"{n}. {_PARAGRAPHS[n % len(_PARAGRAPHS)]}" for n in range(4000)) + "\n\n"
    data = block.encode("utf-8")
    with path.open("wb") as f:
        for _ in range(max(1, round(mb * 2**20 / len(data)))):
            f.write(data)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def worker(path: Path, model: str) -> dict[str, float]:
    """Read and chunk one file (in this process); its sizes, time and peak RSS."""
    from transformers import AutoTokenizer

    from babelrank.config import Settings
    from babelrank.index import DEFAULT_CHUNK_TOKENS
    from babelrank.ingest.chunking import TokenChunker
    from babelrank.ingest.sources import read_file

    chunker = TokenChunker(AutoTokenizer.from_pretrained(model), DEFAULT_CHUNK_TOKENS, Settings().chunk_overlap)
    before = _rss_mb()
    start = time.perf_counter()
    (doc,) = read_file(path)
    (chunks,) = chunker.split_many([doc.text])
    return {"file_mb": path.stat().st_size / 2**20, "characters": len(doc.text), "chunks": len(chunks),
            "seconds": time.perf_counter() - start, "rss_before_mb": before, "peak_rss_mb": _peak_mb()}


def run(sizes: Sequence[float], model: str, src: Path) -> list[dict[str, float]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="babelrank-bigfile-") as tmp:
        for mb in sizes:
            path = Path(tmp) / f"big-{mb:g}mb.txt"
            write_text(path, mb)
            cmd = [sys.executable, __file__, "--worker", str(path), "--model", model, "--src", str(src)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            path.unlink()
            print(f"{mb:g} MB done", file=sys.stderr)
    return rows


def table(rows: list[dict[str, float]]) -> str:
    head = "| file MB | characters | chunks | seconds | RSS before read, MB | peak RSS, MB | peak - before, MB |"
    lines = [head, "|" + "---:|" * 7]
    for r in rows:
        lines.append(f"| {r['file_mb']:.0f} | {r['characters']:,} | {r['chunks']:,} | {r['seconds']:.0f} | "
                     f"{r['rss_before_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['peak_rss_mb'] - r['rss_before_mb']:.0f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="bi-encoder folder (its tokenizer chunks the file)")
    ap.add_argument("--sizes", default="10,50,100", help="comma list of file sizes in MB")
    ap.add_argument("--src", type=Path, default=ROOT / "src", help="the babelrank src folder to import")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(args.src.resolve()))
    if args.worker:
        print(json.dumps(worker(args.worker, args.model)))
        return 0
    print(table(run([float(s) for s in args.sizes.split(",")], args.model, args.src)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
