"""Tiny random-weight bi-/cross-encoders built on the fly for unit tests.

The tokenizer is a real WordPiece tokenizer trained in milliseconds on a small uk/ru/en
corpus plus every Latin and Cyrillic letter, so Cyrillic and Latin text tokenize without
`[UNK]` floods and token counts behave like a real model's.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import (
    Tokenizer,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    PreTrainedTokenizerFast,
)

_CORPUS = [
    "The red car is parked outside the house near the river.",
    "A blue house stands by the river and the old bridge.",
    "Червоний автомобіль стоїть біля будинку на вулиці.",
    "Синій будинок біля річки, поруч старий міст і парк.",
    "Красная машина стоит возле дома у реки.",
    "Синий дом у реки, рядом старый мост и парк.",
    "The kettle boils water in the kitchen every morning.",
    "Чайник кип'ятить воду на кухні щоранку.",
    "Чайник кипятит воду на кухне каждое утро.",
]
_LETTERS = (
    "abcdefghijklmnopqrstuvwxyz"
    "абвгґдеєжзиіїйклмнопрстуфхцчшщьюяыэъё"
    "0123456789.,;:!?'\"()-"
)


def _tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=600,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        initial_alphabet=list(_LETTERS),
    )
    tok.train_from_iterator(_CORPUS * 3 + [" ".join(_LETTERS)], trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def _config(vocab_size: int, max_positions: int, **extra: object) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
        **extra,
    )


def _embedding_dimension(module: object) -> int:
    getter = getattr(module, "get_embedding_dimension", None) or module.get_word_embedding_dimension
    return int(getter())


def build_bi_encoder(
    path: Path,
    *,
    dim: int = 32,
    max_seq_length: int = 64,
    prompts: dict[str, str] | None = None,
    pooling: str = "mean",
    seed: int = 0,
) -> Path:
    """Write a sentence-transformers bi-encoder (BERT -> pooling [-> dense] -> normalize) to `path`.

    `pooling="cls"` with `dim` different from the hidden size gives LaBSE's shape
    (CLS pooling, dense projection with tanh, normalize).
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers import models as st_models

    torch.manual_seed(seed)
    raw = path / "_hf"
    tokenizer = _tokenizer()
    BertModel(_config(len(tokenizer), max_seq_length + 2)).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    transformer = st_models.Transformer(str(raw), max_seq_length=max_seq_length)
    hidden = _embedding_dimension(transformer)
    modules = [transformer, st_models.Pooling(hidden, pooling)]
    if dim != hidden:
        modules.append(st_models.Dense(hidden, dim, activation_function=torch.nn.Tanh()))
    modules.append(st_models.Normalize())
    model = SentenceTransformer(modules=modules, prompts=prompts or {}, device="cpu")
    model.save(str(path))
    return path


def build_raw_bert(path: Path, *, max_seq_length: int = 64, seed: int = 0) -> Path:
    """Write a bare Hugging Face BERT (no sentence-transformers files), like smaller-LaBSE."""
    torch.manual_seed(seed)
    tokenizer = _tokenizer()
    BertModel(_config(len(tokenizer), max_seq_length + 2)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_cross_encoder(path: Path, *, max_length: int = 64, seed: int = 0) -> Path:
    """Write a one-logit BERT sequence classifier loadable by `CrossEncoder(path)`."""
    torch.manual_seed(seed)
    tokenizer = _tokenizer()
    model = BertForSequenceClassification(_config(len(tokenizer), max_length + 2, num_labels=1))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "PROVENANCE.md").write_text("Tiny random-weight cross-encoder for tests.\n")
    cfg = json.loads((path / "config.json").read_text())
    cfg["sentence_transformers"] = {"activation_fn": "torch.nn.modules.activation.Sigmoid"}
    (path / "config.json").write_text(json.dumps(cfg))
    return path
