"""The guard of `babelrank tune`: the held-out examples measured before and after, per language.

Definition. The held-out examples are grouped by task and language pair; each group is a row:

* ``retrieval`` (the user's pairs): each held-out query (query prompt) searches every
  held-out passage (document prompt; all positives and negatives of all pairs, every
  language mixed, as in a collection) with sentence-transformers' `InformationRetrievalEvaluator`.
  The row's score is MRR@10 of the queries of that language pair; recall@1 is shown beside it.
* ``translation`` (parallel text, mined pairs): Tatoeba-style accuracy with
  sentence-transformers' `TranslationEvaluator`: each sentence's nearest neighbour among the
  other side's sentences of the same language pair must be its translation, both ways,
  averaged. Both sides are read as passages (document prompt), as the collection stores them.
  A group needs two pairs (with one, the nearest neighbour is always right).

The tuned model is *better* when the mean of the rows' scores, every row weighing the same,
rises by more than ``min_gain``: ``mean(after) - mean(before) > min_gain`` (default 0: any
rise). A row may fall while the mean rises; the table shows every row. ``layers`` trades
quality for speed, so it is accepted only with a negative ``min_gain`` (the loss one accepts,
e.g. -0.02), and the table shows the evaluation time before and after.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from babelrank.errors import ConfigError
from babelrank.tune.examples import Example
from babelrank.tune.methods import Prompts

logger = logging.getLogger(__name__)

REPORT_JSON = "guard.json"
REPORT_MARKDOWN = "guard.md"


@dataclass
class Task:
    """One row of the guard: an evaluator over one language pair's held-out examples."""

    task: str
    languages: str
    examples: int
    metric: str
    evaluator: Any
    key: str
    extra: dict[str, str]


@dataclass
class Row:
    """One row of the before/after table."""

    task: str
    languages: str
    examples: int
    metric: str
    before: float
    after: float
    extra_before: dict[str, float]
    extra_after: dict[str, float]

    @property
    def change(self) -> float:
        return self.after - self.before


@dataclass
class GuardReport:
    """The before/after table and the decision."""

    rows: list[Row]
    min_gain: float
    seconds_before: float
    seconds_after: float

    @property
    def mean_before(self) -> float:
        return sum(r.before for r in self.rows) / len(self.rows)

    @property
    def mean_after(self) -> float:
        return sum(r.after for r in self.rows) / len(self.rows)

    @property
    def gain(self) -> float:
        return self.mean_after - self.mean_before

    @property
    def improved(self) -> bool:
        """``mean(after) - mean(before) > min_gain`` (see the module docstring)."""
        return self.gain > self.min_gain

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "rows": [{**asdict(r), "change": r.change} for r in self.rows],
            "mean_before": self.mean_before, "mean_after": self.mean_after, "gain": self.gain,
            "min_gain": self.min_gain, "improved": self.improved,
            "rule": "improved = mean over rows of (after) - mean over rows of (before) > min_gain",
            "evaluation_seconds": {"before": self.seconds_before, "after": self.seconds_after},
        }

    def markdown(self) -> str:
        """The before/after table in markdown, with the mean and the decision."""
        lines = ["| task | languages | held-out | metric | before | after | change |", "|---|---|---|---|---|---|---|"]
        for r in self.rows:
            extra = "".join(f"; {k} {r.extra_before[k]:.3f} → {r.extra_after[k]:.3f}" for k in r.extra_before)
            lines.append(f"| {r.task} | {r.languages} | {r.examples} | {r.metric}{extra} | "
                         f"{r.before:.3f} | {r.after:.3f} | {r.change:+.3f} |")
        lines.append(f"| **mean** | | | | **{self.mean_before:.3f}** | **{self.mean_after:.3f}** | **{self.gain:+.3f}** |")
        verdict = "better" if self.improved else "not better"
        lines += ["", f"Decision: {verdict} (mean change {self.gain:+.4f}, required > {self.min_gain:+.4f}). "
                  f"Evaluation time {self.seconds_before:.1f} s before, {self.seconds_after:.1f} s after."]
        return "\n".join(lines)

    def save(self, folder: Path) -> None:
        """Write ``guard.json`` and ``guard.md`` into `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / REPORT_JSON).write_text(json.dumps(self.as_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        (folder / REPORT_MARKDOWN).write_text(self.markdown() + "\n", encoding="utf-8")


class Guard:
    """The held-out evaluators, built once, measured on any model.

    Args:
        held_out: the held-out examples (none of them trained on).
        prompts: the base model's prompts.
        batch_size: embedding batch size.

    Raises:
        ConfigError: no group of the held-out examples can be measured.
    """

    def __init__(self, held_out: Sequence[Example], prompts: Prompts, batch_size: int = 32) -> None:
        pairs = [e for e in held_out if e.source == "pairs"]
        translations = [e for e in held_out if e.source != "pairs"]
        self.tasks = _retrieval_tasks(pairs, prompts, batch_size) + _translation_tasks(translations, prompts, batch_size)
        if not self.tasks:
            raise ConfigError(f"the held-out part ({len(held_out)} examples) is too small to measure: it needs "
                              "two passages for retrieval or two pairs of one language pair for translation")

    def measure(self, model: Any) -> tuple[dict[tuple[str, str], dict[str, float]], float]:
        """Every task's metrics on `model` (keyed by (task, languages)) and the seconds it took."""
        started = time.monotonic()
        scores = {}
        for task in self.tasks:
            metrics = task.evaluator(model)
            scores[(task.task, task.languages)] = {"score": float(metrics[task.key]),
                                                   **{n: float(metrics[k]) for n, k in task.extra.items()}}
        return scores, time.monotonic() - started

    def report(self, before: tuple[dict, float], after: tuple[dict, float], min_gain: float) -> GuardReport:
        """The table of `before` and `after` (two `measure` results) and the decision."""
        rows = []
        for t in self.tasks:
            b, a = before[0][(t.task, t.languages)], after[0][(t.task, t.languages)]
            rows.append(Row(t.task, t.languages, t.examples, t.metric, b["score"], a["score"],
                            {k: b[k] for k in t.extra}, {k: a[k] for k in t.extra}))
        return GuardReport(rows, min_gain, before[1], after[1])


def _groups(examples: Sequence[Example]) -> dict[str, list[Example]]:
    groups: dict[str, list[Example]] = {}
    for ex in examples:
        groups.setdefault(ex.language_pair, []).append(ex)
    return dict(sorted(groups.items()))


def _retrieval_tasks(pairs: Sequence[Example], prompts: Prompts, batch_size: int) -> list[Task]:
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )

    passages = list(dict.fromkeys(t for e in pairs for t in (e.positive, e.negative) if t))
    if len(passages) < 2:
        return []
    corpus = {f"d{i}": text for i, text in enumerate(passages)}
    ids = {text: cid for cid, text in corpus.items()}
    tasks = []
    for languages, group in _groups(pairs).items():
        queries = {f"q{i}": e.anchor for i, e in enumerate(group)}
        relevant = {f"q{i}": {ids[e.positive]} for i, e in enumerate(group)}
        evaluator = InformationRetrievalEvaluator(
            queries, corpus, relevant, mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[1], precision_recall_at_k=[1],
            map_at_k=[10], batch_size=batch_size, write_csv=False, query_prompt=prompts.query or None,
            corpus_prompt=prompts.document or None, name="")
        tasks.append(Task("retrieval", languages, len(group), "MRR@10", evaluator, "cosine_mrr@10",
                          {"recall@1": "cosine_recall@1"}))
    return tasks


def _translation_tasks(examples: Sequence[Example], prompts: Prompts, batch_size: int) -> list[Task]:
    from sentence_transformers.sentence_transformer.evaluation import (
        TranslationEvaluator,
    )

    tasks = []
    for languages, group in _groups(examples).items():
        if len(group) < 2:
            logger.warning("held-out %s has one translation pair: left out of the guard", languages)
            continue
        evaluator = TranslationEvaluator([prompts.document + e.anchor for e in group],
                                         [prompts.document + e.positive for e in group],
                                         batch_size=batch_size, write_csv=False, name="")
        tasks.append(Task("translation", languages, len(group), "accuracy", evaluator, "mean_accuracy",
                          {"src→trg": "src2trg_accuracy", "trg→src": "trg2src_accuracy"}))
    return tasks
