"""Training speed of `babelrank tune` on a real model: rows (pairs) per second over a short run.

    python benchmarks/tune_speed.py --model ../shared/models/multilingual-e5-small-q4 \
        --xquad ../shared/data/xquad --steps 30 --max-length 256 [--method contrastive] [--train-embeddings]

XQuAD question-paragraph pairs across en and ru (articles 0-35, `babelrank.tune.data.xquad_pairs`),
batch 16, frozen word embeddings unless asked; prints the training rows per second (the
guard's evaluations not counted), the steps, the trainable parameters and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from babelrank.tune.api import tune
from babelrank.tune.data import split_held_out, xquad_pairs
from babelrank.tune.trainer import TrainOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--xquad", type=Path, required=True)
    parser.add_argument("--languages", default="en,ru")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--method", default="contrastive")
    parser.add_argument("--train-embeddings", action="store_true")
    parser.add_argument("--max-length", type=int, help="truncate training texts to this many tokens")
    parser.add_argument("--held-out", type=int, default=32, help="held-out pairs measured (kept small)")
    args = parser.parse_args()
    data = xquad_pairs(args.xquad, args.languages.split(","))
    train, held = split_held_out(data, 0.1, 0)
    options = TrainOptions(batch_size=args.batch_size, max_steps=args.steps, train_embeddings=args.train_embeddings,
                           max_length=args.max_length, save_steps=10_000, progress=False, device="cpu")
    with tempfile.TemporaryDirectory() as out:
        result = tune(args.model, train, held.examples[: args.held_out], Path(out) / "tuned", method=args.method,
                      options=options, min_gain=-1.0)
    run = result.run
    print(json.dumps({
        "model": args.model, "method": args.method, "steps": run.steps, "batch_size": args.batch_size,
        "max_length": args.max_length, "seconds": round(run.seconds, 1), "rows_per_second": round(run.rows_per_second, 2),
        "trainable_parameters": run.trainable_parameters, "frozen_parameters": run.frozen_parameters,
        "load_average": os.getloadavg(), "cpus": os.cpu_count(),
        "held_out_mean": [round(result.report.mean_before, 4), round(result.report.mean_after, 4)],
    }))


if __name__ == "__main__":
    main()
