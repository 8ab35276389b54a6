"""The three ways `babelrank tune` trains a bi-encoder, each as a `Plan` for the trainer.

Every method reads an example the way babelrank uses the model: the anchor is a query (the
query prompt, e.g. e5's ``"query: "``), the positive, the negative and any extra text (the
collection's chunks) are passages (the document prompt, ``"passage: "``). For parallel and
mined examples the anchor is the source sentence, so "a sentence finds its translation
among the passages", which is what cross-language retrieval in a mixed collection asks.

* ``contrastive``: MultipleNegativesRankingLoss over (anchor, positive[, negative]): every
  other positive of the batch is a negative, and so is the example's own hard negative.
  Batches hold no text twice (``NO_DUPLICATES``: a duplicate would be a false negative).
  Above `Plan`'s ``mini_batch_size`` the cached form (GradCache) computes the same loss and
  gradients over the whole batch with the memory of one mini-batch.
* ``distill``: multilingual knowledge distillation (Reimers & Gurevych, EMNLP 2020,
  arXiv:2004.09813). The teacher is the base model, frozen: its vectors are computed once,
  before training, and stored as labels. The student starts as the base model and is
  trained with MSELoss so that the pivot text (the anchor) and its translation both map to
  the teacher's vector of the pivot text. This is done once per prompt (query side and
  document side) so the student keeps the teacher's query-passage geometry. User pairs
  have no translation; their texts are kept at the teacher's own vectors, which holds the
  student to the teacher on in-domain text.
* ``layers``: layer-reduction distillation for speed. The student is the base model with
  every other transformer layer (12 -> 6; counted from the top, so the last layer, whose
  output the pooling reads, is kept), trained with MSELoss to reproduce the teacher's
  vector of every training text and chunk (anchors as queries, the rest as passages).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from babelrank.errors import ConfigError
from babelrank.tune.examples import Example

logger = logging.getLogger(__name__)

METHODS = ("contrastive", "distill", "layers")


@dataclass(frozen=True)
class Prompts:
    """The prompts babelrank's `BiEncoder` puts before queries and documents ("" = none)."""

    query: str = ""
    document: str = ""


@dataclass
class Plan:
    """What the trainer needs: the model to train, its data set(s), loss and column prompts.

    Attributes:
        model: the SentenceTransformer that is trained (the student).
        dataset: a `datasets.Dataset`, or a `DatasetDict` of named parts.
        loss: the sentence-transformers loss module.
        prompts: the trainer's ``prompts`` argument (per column or per dataset part).
        no_duplicates: batches must hold no text twice (in-batch negatives).
        rows: training rows in all parts (an example may give several).
        details: what the model card says about the method (layers kept, loss, ...).
    """

    model: Any
    dataset: Any
    loss: Any
    prompts: dict[str, Any]
    no_duplicates: bool
    rows: int
    details: dict[str, Any] = field(default_factory=dict)


def make_plan(
    method: str, model: Any, examples: Sequence[Example], prompts: Prompts, *,
    texts: Sequence[str] = (), batch_size: int = 16, mini_batch_size: int = 32,
) -> Plan:
    """The `Plan` of one method.

    Args:
        method: one of `METHODS`.
        model: the base SentenceTransformer (also the teacher; `layers` cuts it in place).
        examples: the training examples.
        prompts: the base model's query and document prompts.
        texts: extra passages (the collection's chunks) for `layers` and `distill`.
        batch_size: examples per step (`contrastive` chooses its loss from it).
        mini_batch_size: the largest batch `contrastive` computes at once.

    Raises:
        ConfigError: an unknown method, or no training text.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown tuning method {method!r}; choose one of {', '.join(METHODS)}")
    if not examples and not texts:
        raise ConfigError("no training data: give pairs, parallel text or mined pairs")
    if method == "contrastive":
        if not examples:
            raise ConfigError("contrastive tuning needs pairs (query, positive), not bare texts")
        return contrastive_plan(model, examples, prompts, batch_size, mini_batch_size)
    if method == "distill":
        return distill_plan(model, examples, prompts, texts)
    return layers_plan(model, examples, prompts, texts)


def contrastive_plan(model: Any, examples: Sequence[Example], prompts: Prompts, batch_size: int,
                     mini_batch_size: int) -> Plan:
    """MNRL (or its cached form above `mini_batch_size`) over (anchor, positive[, negative])."""
    from datasets import Dataset, DatasetDict
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    with_negative = [e for e in examples if e.negative]
    without = [e for e in examples if not e.negative]
    parts = {}
    if with_negative:
        parts["triplets"] = Dataset.from_dict({
            "anchor": [e.anchor for e in with_negative], "positive": [e.positive for e in with_negative],
            "negative": [e.negative for e in with_negative]})
    if without:
        parts["pairs"] = Dataset.from_dict({"anchor": [e.anchor for e in without],
                                            "positive": [e.positive for e in without]})
    dataset = next(iter(parts.values())) if len(parts) == 1 else DatasetDict(parts)
    cached = batch_size > mini_batch_size
    loss = (CachedMultipleNegativesRankingLoss(model, mini_batch_size=mini_batch_size) if cached
            else MultipleNegativesRankingLoss(model))
    column_prompts = {"anchor": prompts.query, "positive": prompts.document, "negative": prompts.document}
    return Plan(model, dataset, loss, {k: v for k, v in column_prompts.items() if v}, True, len(examples),
                {"loss": type(loss).__name__, "hard negatives": len(with_negative)})


def distill_plan(model: Any, examples: Sequence[Example], prompts: Prompts, texts: Sequence[str]) -> Plan:
    """MSELoss: pivot and translation onto the teacher's vector of the pivot, on each prompt side."""
    from sentence_transformers.sentence_transformer.losses import MSELoss

    query_rows, document_rows = [], []
    for ex in examples:
        if ex.source == "pairs":
            query_rows.append((ex.anchor, ex.anchor))
            document_rows.extend((t, t) for t in (ex.positive, ex.negative) if t)
        else:
            query_rows.append((ex.anchor, ex.positive))
            document_rows.append((ex.anchor, ex.positive))
    document_rows.extend((t, t) for t in texts)
    views = {"query": (prompts.query, query_rows), "document": (prompts.document, document_rows)}
    dataset, column_prompts = _labelled(model, views, ("pivot", "translation"))
    rows = len(query_rows) + len(document_rows)
    return Plan(model, dataset, MSELoss(model), column_prompts, False, rows,
                {"loss": "MSELoss", "teacher": "the base model, frozen"})


def layers_plan(model: Any, examples: Sequence[Example], prompts: Prompts, texts: Sequence[str]) -> Plan:
    """MSELoss: the half-depth student reproduces the teacher's vector of every text."""
    from sentence_transformers.sentence_transformer.losses import MSELoss

    queries = list(dict.fromkeys(e.anchor for e in examples))
    documents = list(dict.fromkeys(_passages(examples, texts)))
    views = {"query": (prompts.query, [(q,) for q in queries]),
             "document": (prompts.document, [(d,) for d in documents])}
    dataset, column_prompts = _labelled(model, views, ("text",))  # teacher labels before the cut
    teacher_layers, kept = reduce_layers(model)
    return Plan(model, dataset, MSELoss(model), column_prompts, False, len(queries) + len(documents),
                {"loss": "MSELoss", "teacher layers": teacher_layers, "student layers": len(kept),
                 "layers kept": kept})


def _passages(examples: Iterable[Example], texts: Iterable[str]) -> Iterable[str]:
    for ex in examples:
        yield ex.positive
        if ex.negative:
            yield ex.negative
    yield from texts


def _labelled(model: Any, views: dict[str, tuple[str, list[tuple[str, ...]]]],
              columns: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
    """Rows of each prompt side with the teacher's vector of their first text as ``label``.

    Sides with the same prompt (a model without prompts) are merged into one data set.
    Returns the data set (a `DatasetDict` of sides when prompts differ) and the trainer's
    prompts (per side: one prompt for every column of that side).
    """
    from datasets import Dataset, DatasetDict

    merged: dict[str, list[tuple[str, ...]]] = {}
    for prompt, rows in views.values():
        merged.setdefault(prompt, []).extend(rows)
    names = {prompt: name for name, (prompt, _) in reversed(list(views.items()))}
    parts = {}
    for prompt, rows in merged.items():
        if not rows:
            continue
        labels = model.encode([r[0] for r in rows], prompt=prompt or None, convert_to_numpy=True,
                              show_progress_bar=False, batch_size=32)
        data = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
        parts[names[prompt]] = Dataset.from_dict({**data, "label": labels.tolist()})
    if len(parts) == 1:
        (name, dataset), = parts.items()
        prompt = views[name][0]
        return dataset, ({c: prompt for c in columns} if prompt else {})
    return DatasetDict(parts), {name: views[name][0] for name in parts if views[name][0]}


def reduce_layers(model: Any) -> tuple[int, list[int]]:
    """Keep every other transformer layer of `model` in place, counted from the last one.

    Returns the teacher's layer count and the indices kept (12 layers: 1, 3, ..., 11).

    Raises:
        ConfigError: the model's layer list cannot be found (not a Hugging Face encoder).
    """
    import torch

    auto_model = model[0].auto_model
    config = auto_model.config
    count = int(getattr(config, "num_hidden_layers", 0))
    holder = next(((parent, name) for parent in auto_model.modules()
                   for name, child in parent.named_children()
                   if isinstance(child, torch.nn.ModuleList) and len(child) == count), None)
    if holder is None or count < 2:
        raise ConfigError(f"cannot find {count} transformer layers to halve in {type(auto_model).__name__}")
    parent, name = holder
    kept = sorted(range(count - 1, -1, -2))
    setattr(parent, name, torch.nn.ModuleList([getattr(parent, name)[i] for i in kept]))
    config.num_hidden_layers = len(kept)
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = [config.layer_types[i] for i in kept]
    logger.info("layer-reduction student: kept layers %s of %d", kept, count)
    return count, kept
