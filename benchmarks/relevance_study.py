"""Relevance study (issue #17): a calibrated `relevance` and "no answer here" on XQuAD.

Usage:
    python benchmarks/relevance_study.py --data ../shared/data/xquad \
        --model ../shared/models/multilingual-e5-small-q4 --minilm /tmp/all-MiniLM-L6-v2

Embeddings are cached as .npy under $RELEVANCE_CACHE (default /tmp/relevance_cache).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
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


_SENT = re.compile(r"(?<=[.!?])\s+(?=[\"'«„(]?[A-ZА-ЯЁÄÖÜÁÉÍÓÚÑ0-9])")


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` (a plain regex: a stop, space, then a capital or digit)."""
    return [s.strip() for s in _SENT.split(text) if s.strip()]


def pseudo_pairs(paragraphs: list[str], seed: int) -> tuple[list[str], list[str]]:
    """Per paragraph, one random sentence (the pseudo-query) and the paragraph without it.

    The inverse cloze task (Lee et al. 2019): the sentence asks about its context, which no
    longer contains it. A one-sentence paragraph keeps itself as its context.
    """
    rng = np.random.default_rng(seed)
    sents, rests = [], []
    for p in paragraphs:
        ss = split_sentences(p)
        j = int(rng.integers(len(ss)))
        sents.append(ss[j])
        rests.append(" ".join(ss[:j] + ss[j + 1:]) if len(ss) > 1 else p)
    return sents, rests


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
    """Per language: paragraph, question, pseudo-query and pseudo-context vectors plus labels."""
    out = {}
    for lang in langs:
        pars, qs, qpar, art = load_xquad(data, lang)
        sents, rests = pseudo_pairs(pars, SEED)
        out[lang] = {
            "P": embed(pars, "document", model), "Q": embed(qs, "query", model),
            "S": embed(sents, "query", model), "R": embed(rests, "document", model),
            "qpar": np.asarray(qpar), "art": np.asarray(art),
        }
    return out
