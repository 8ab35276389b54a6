"""Encode speed of the `layers` student (every other layer, 12 -> 6) against its 12-layer teacher.

    python benchmarks/student_speed.py --model ../shared/models/multilingual-e5-small-q4 \
        --xquad ../shared/data/xquad [--student DIR] [--paragraphs 512] [--runs 3] [--backends torch,onnx-int8]

Speed depends on the model's shape, not its weights, so the student is the `layers` method's
initialisation (`babelrank.tune.methods.reduce_layers` on the base model, saved as a
sentence-transformers folder with the base model's prompts), not a trained one; a trained
student (`babelrank tune --method layers`) can be given with `--student`. Both models are
loaded through babelrank's `load_bi_encoder(folder, backend=...)` (onnx-int8: exported once
into the ONNX cache) and encode the same XQuAD paragraphs (all languages of the folder in file
order, the first `--paragraphs`) as documents, batch 32, one warm-up call, then `--runs` timed
runs; the table shows the median, every run, and the load average before and after each
backend, all in one process, alternating teacher and student run by run so that a change of
load hits both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from babelrank.models.bi_encoder import load_bi_encoder


def paragraphs(folder: Path, n: int) -> list[str]:
    """The first `n` XQuAD contexts, English first, then the other languages in name order."""
    files = sorted(folder.glob("xquad.*.json"), key=lambda p: (p.name != "xquad.en.json", p.name))
    texts: list[str] = []
    for path in files:
        for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
            texts += [p["context"] for p in article["paragraphs"]]
    return texts[:n]


def make_student(base: str, folder: Path) -> tuple[int, list[int]]:
    """Save the `layers` student of `base` (untrained) in `folder`."""
    from babelrank.tune.methods import reduce_layers

    encoder = load_bi_encoder(base, device="cpu", backend="torch")
    model = encoder.model
    teacher_layers, kept = reduce_layers(model)
    if encoder.query_prompt or encoder.document_prompt:
        model.prompts = {**(model.prompts or {}), "query": encoder.query_prompt, "document": encoder.document_prompt}
    model.save(str(folder), create_model_card=False)
    return teacher_layers, kept


def timed(encoder, texts: list[str]) -> float:
    start = time.perf_counter()
    encoder.encode_documents(texts, batch_size=32)
    return time.perf_counter() - start


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the teacher (12 layers)")
    parser.add_argument("--xquad", type=Path, required=True)
    parser.add_argument("--student", type=Path, help="a student folder (default: build the layers initialisation)")
    parser.add_argument("--paragraphs", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", default="torch,onnx-int8")
    args = parser.parse_args()
    texts = paragraphs(args.xquad, args.paragraphs)
    with tempfile.TemporaryDirectory(prefix="babelrank-student-") as tmp:
        student = args.student
        note = "given"
        if student is None:
            student = Path(tmp) / "student"
            layers, kept = make_student(args.model, student)
            note = f"layers {kept} of {layers}, untrained"
        rows = []
        for backend in args.backends.split(","):
            before = load()
            encoders = {"teacher": load_bi_encoder(args.model, device="cpu", backend=backend),
                        # a built student's ONNX export goes into the temporary folder, not the cache
                        "student": load_bi_encoder(str(student), device="cpu", backend=backend,
                                                   cache_dir=None if args.student else Path(tmp) / "onnx")}
            for enc in encoders.values():
                enc.encode_documents(texts[:32], batch_size=32)  # warm-up
            times: dict[str, list[float]] = {name: [] for name in encoders}
            for _ in range(args.runs):
                for name, enc in encoders.items():
                    times[name].append(timed(enc, texts))
            after = load()
            median = {name: statistics.median(t) for name, t in times.items()}
            for name in encoders:
                rows.append((backend, name, median[name], times[name], len(texts) / median[name],
                             median["teacher"] / median[name], before, after))
            del encoders
    print(f"student: {note}; {len(texts)} XQuAD paragraphs, batch 32, median of {args.runs} runs; "
          f"{os.cpu_count()} CPUs")
    print()
    print("| backend | model | median s | runs s | paragraphs/s | speed-up vs teacher | load avg before | after |")
    print("|---|---|---|---|---|---|---|---|")
    for backend, name, med, runs, rate, speedup, before, after in rows:
        print(f"| {backend} | {name} | {med:.1f} | {' / '.join(f'{t:.1f}' for t in runs)} | {rate:.1f} | "
              f"{speedup:.2f}× | {before} | {after} |")


if __name__ == "__main__":
    main()
