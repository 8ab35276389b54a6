"""Data loading and cached embeddings for the language-neutral scoring study."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

TATOEBA_LANGS = ["ukr", "rus", "deu", "fra", "slk", "mkd", "lit", "est", "afr", "hrv", "srp",
                 "hye", "kat", "aze", "uzb", "tat"]
XQR_LANGS = ["en", "ru", "de", "es"]
CACHE = Path(os.environ.get("NEUTRAL_CACHE", "/tmp/neutral_cache"))

_model = None


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").rstrip("\n").split("\n")


def tatoeba(data: Path, lang: str) -> tuple[list[str], list[str]]:
    d = data / "tatoeba"
    xx = read_lines(d / f"tatoeba.{lang}-eng.{lang}")
    en = read_lines(d / f"tatoeba.{lang}-eng.eng")
    assert len(xx) == len(en)
    return xx, en


def xquad_r(data: Path, lang: str) -> tuple[list[str], list[str], list[str], list[int]]:
    """Return (sentences, question ids, questions, relevant sentence index per question)."""
    d = json.loads((data / "xquad-r" / f"{lang}.json").read_text(encoding="utf-8"))
    sents: list[str] = []
    qids: list[str] = []
    qs: list[str] = []
    rel: list[int] = []
    for art in d["data"]:
        for p in art["paragraphs"]:
            base = len(sents)
            sents.extend(s.strip().lstrip("\ufeff") for s in p["sentences"])
            for qa in p["qas"]:
                a = qa["answers"][0]["answer_start"]
                idx = None
                for j, (s, e) in enumerate(p["sentence_breaks"]):
                    if s <= a <= e:
                        idx = j
                        break
                if idx is None:  # answer after last break: take the closest sentence
                    idx = len(p["sentence_breaks"]) - 1
                qids.append(qa["id"])
                qs.append(qa["question"])
                rel.append(base + idx)
    return sents, qids, qs, rel


def embed(texts: list[str], prompt: str, model_path: str, key: str) -> np.ndarray:
    """Embed with `prompt` in {"query", "document"}; cached under CACHE/key.npy."""
    h = hashlib.sha1(("\n".join(texts) + prompt + model_path).encode()).hexdigest()[:10]
    f = CACHE / f"{key}.{prompt}.{h}.npy"
    if f.exists():
        return np.load(f)
    global _model
    if _model is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        _model = SentenceTransformer(model_path, device="cpu")
    log.info("embedding %s (%d texts, %s)", key, len(texts), prompt)
    v = _model.encode(texts, prompt_name=prompt, normalize_embeddings=True, batch_size=64,
                      convert_to_numpy=True).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(f, v)
    return v
