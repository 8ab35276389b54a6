"""Peak memory of the one-time ONNX export of a cross-encoder with a 250k-token vocabulary.

The model has mmarco-mMiniLMv2-L12-H384's shape (XLM-R: 12 layers, hidden 384, 250,002-token
vocabulary, 118M parameters) with random weights, and the tokenizer of a model with the
XLM-R vocabulary (multilingual-e5-small). Each backend is exported in a fresh process into
an empty cache; the table shows that process's peak RSS (getrusage) and wall time.

    python benchmarks/export_memory.py --tokenizer ../shared/models/multilingual-e5-small-q4

Run it with another checkout's code first on PYTHONPATH (e.g. `PYTHONPATH=/tmp/old/src`) to
compare versions.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build_model(tokenizer: Path, out: Path) -> Path:
    """A random-weight XLM-R sequence classifier of mmarco-mMiniLMv2-L12-H384's shape."""
    import torch
    from transformers import (
        AutoTokenizer,
        XLMRobertaConfig,
        XLMRobertaForSequenceClassification,
    )

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(tokenizer))
    config = XLMRobertaConfig(vocab_size=len(tok), hidden_size=384, num_hidden_layers=12, num_attention_heads=12,
                              intermediate_size=1536, max_position_embeddings=514, type_vocab_size=1, num_labels=1)
    XLMRobertaForSequenceClassification(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def worker(model: str, backend: str, cache: str) -> None:
    """Export (and load) the model in this process; print one JSON line."""
    from babelrank.models.cross_encoder import load_cross_encoder

    started = time.perf_counter()
    cross = load_cross_encoder(model, backend=backend, device="cpu", cache_dir=Path(cache))
    cross.logits("query", ["a text", "другий текст"])
    print(json.dumps({"backend": backend, "seconds": round(time.perf_counter() - started, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", type=Path, required=True, help="folder of a model with the XLM-R vocabulary")
    ap.add_argument("--backends", default="onnx,onnx-int8")
    ap.add_argument("--worker", nargs=3, metavar=("MODEL", "BACKEND", "CACHE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(args.tokenizer, Path(tmp) / "xlmr-cross")
        print("| backend | export + load, s | peak RSS, MB |\n|---|---:|---:|")
        for backend in args.backends.split(","):
            cache = Path(tmp) / f"cache-{backend}"
            run = subprocess.run([sys.executable, __file__, "--tokenizer", str(args.tokenizer), "--worker",
                                  str(model), backend, str(cache)], capture_output=True, text=True, check=True)
            result = json.loads(run.stdout.strip().splitlines()[-1])
            print(f"| {backend} | {result['seconds']} | {result['peak_rss_mb']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
