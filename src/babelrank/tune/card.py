"""The model card (``README.md``) of a tuned model: what it was trained from, on and how, and
the guard's before/after table, so the folder says by itself what it is and what it is worth."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babelrank.tune.guard import GuardReport
from babelrank.tune.methods import Prompts
from babelrank.tune.trainer import TrainingRun

METHOD_NAMES = {
    "contrastive": "contrastive fine-tuning (MultipleNegativesRankingLoss: in-batch and hard negatives)",
    "distill": "multilingual knowledge distillation (Reimers & Gurevych 2020; MSELoss onto the frozen base "
               "model's vector of the pivot text)",
    "layers": "layer-reduction distillation (every other layer of the base model; MSELoss onto its vectors)",
}


@dataclass
class CardFacts:
    """Everything the card states.

    Attributes:
        base: the base model as given (preset, hub id or folder).
        method: the tuning method.
        counts: training examples per source and language pair (`TrainingData.counts`).
        held_out: held-out examples per source and language pair.
        texts: extra passages trained on (the collection's chunks).
        rows: training rows the method made of them.
        details: the method's own facts (loss, layers kept, ...).
        options: the training options.
        prompts: the saved query and document prompts.
        run: what training did.
        report: the guard's table and decision.
        installed: whether the model was installed in the output folder.
    """

    base: str
    method: str
    counts: dict[str, dict[str, int]]
    held_out: dict[str, dict[str, int]]
    texts: int
    rows: int
    details: dict[str, Any]
    options: dict[str, Any]
    prompts: Prompts
    run: TrainingRun
    report: GuardReport
    installed: bool


def card_text(facts: CardFacts) -> str:
    """The markdown of the card."""
    run = facts.run
    lines = [
        "---", "library_name: sentence-transformers", "tags: [sentence-transformers, babelrank, multilingual]", "---",
        "", f"# Tuned from {facts.base}", "",
        f"Made by `babelrank tune` with **{facts.method}**: {METHOD_NAMES[facts.method]}.", "",
        f"- base model: `{facts.base}`",
        f"- prompts: query {facts.prompts.query!r}, document {facts.prompts.document!r}",
        f"- method details: {json.dumps(facts.details, ensure_ascii=False)}",
        f"- training rows: {facts.rows}; extra passages (collection chunks): {facts.texts}",
        f"- steps: {run.steps} ({run.stopped_by}{'; resumed from ' + Path(run.resumed_from).name if run.resumed_from else ''}), "
        f"{run.seconds:.0f} s in the last run, {run.rows_per_second:.1f} rows/s",
        f"- parameters trained: {run.trainable_parameters:,}; frozen: {run.frozen_parameters:,}",
        f"- options: {json.dumps(facts.options, ensure_ascii=False)}",
        f"- status: {'installed' if facts.installed else 'NOT installed (the guard found it not better)'}",
        "", "## Training data (examples per source and language pair)", "", _counts_table(facts.counts),
        "", "## Held-out data", "", _counts_table(facts.held_out),
        "", "## Before and after (held-out part)", "", facts.report.markdown(),
        "", "## Use", "", "```bash", "babelrank ingest DOCS --embed-model <this folder> --collection NEW_NAME",
        "babelrank reindex --to-model <this folder>   # rewrite an existing collection's vectors", "```", "",
    ]
    return "\n".join(lines)


def _counts_table(counts: dict[str, dict[str, int]]) -> str:
    if not counts:
        return "(none)"
    rows = ["| source | languages | examples |", "|---|---|---|"]
    rows += [f"| {source} | {pair} | {n} |" for source, pairs in counts.items() for pair, n in pairs.items()]
    return "\n".join(rows)


def write_card(folder: Path, facts: CardFacts) -> Path:
    """Write the card as `folder`/README.md (over sentence-transformers' own) and return its path."""
    path = folder / "README.md"
    path.write_text(card_text(facts), encoding="utf-8")
    return path
