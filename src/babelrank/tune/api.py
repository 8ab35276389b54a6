"""`tune`: the Python entry of `babelrank tune`, from a base model and examples to a guarded model folder.

The steps: load the base model the way babelrank embeds with it (`load_bi_encoder`, so the
prompts are the ones the `BiEncoder` applies), measure the held-out part (`Guard`), build the
method's `Plan`, train (`babelrank.tune.trainer`), measure again, save the tuned model into
``<output>/candidate`` with its card and the guard's table, and install it (move it into
``<output>``) unless ``require_improvement`` is set and the guard found it not better. A
refused model is left in ``<output>/candidate``; whatever ``<output>`` held stays as it was.

Layout of the output folder::

    <output>/                the installed model (a sentence-transformers folder): README.md
                             (the card), guard.json, guard.md
    <output>/checkpoints/    the trainer's checkpoints and run.json (a re-run resumes from them)
    <output>/candidate/      a tuned model the guard refused (only then)
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from babelrank.errors import ConfigError, NotImprovedError
from babelrank.tune.card import CardFacts, write_card
from babelrank.tune.examples import Example, TrainingData
from babelrank.tune.guard import REPORT_JSON, Guard, GuardReport
from babelrank.tune.methods import Plan, Prompts, make_plan
from babelrank.tune.trainer import TrainingRun, TrainOptions, data_digest, train

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
CANDIDATE = "candidate"


@dataclass
class TuneResult:
    """What `tune` did.

    Attributes:
        output: the output folder.
        model_path: the tuned model: `output` when installed, else ``output/candidate``.
        installed: whether the tuned model was installed in `output`.
        method: the method used.
        base: the base model as given.
        report: the guard's before/after table and decision.
        run: the training run (steps, time, losses, stop reason).
        counts: training examples per source and language pair.
    """

    output: Path
    model_path: Path
    installed: bool
    method: str
    base: str
    report: GuardReport
    run: TrainingRun
    counts: dict[str, dict[str, int]]

    @property
    def improved(self) -> bool:
        """Whether the guard found the tuned model better (see `babelrank.tune.guard`)."""
        return self.report.improved


def tune(
    base: str, train_data: TrainingData | Sequence[Example], held_out: TrainingData | Sequence[Example],
    output: str | Path, *, method: str = "contrastive", texts: Sequence[str] = (),
    options: TrainOptions | None = None, require_improvement: bool = False, min_gain: float = 0.0,
    model_dir: Path | None = None, trust_remote_code: bool = False,
) -> TuneResult:
    """Tune `base` on `train_data` with `method`; guard the result on `held_out`.

    Args:
        base: the base model: preset name, hub id or folder.
        train_data: the training examples (`TrainingData` or a list of `Example`).
        held_out: examples kept out of training, measured before and after.
        output: the output folder (created; a re-run with the same arguments resumes).
        method: "contrastive", "distill" or "layers" (`babelrank.tune.methods`).
        texts: extra passages, e.g. the collection's chunks (`distill` and `layers` use them).
        options: how to train (`TrainOptions`; defaults when None).
        require_improvement: install only a model the guard finds better; raise otherwise.
        min_gain: how much the mean held-out score must rise to count as better (negative:
            the loss accepted, e.g. for `layers`).
        model_dir: folder of local models (`Settings.model_dir`).
        trust_remote_code: allow a model's own Python code.

    Returns:
        The `TuneResult`.

    Raises:
        NotImprovedError: `require_improvement` and the tuned model is not better (exit code
            3); its ``result`` holds the `TuneResult`.
        ConfigError: an unknown method, no data, or an output folder that is not a tune's.
    """
    from babelrank.models.bi_encoder import load_bi_encoder
    from babelrank.models.loading import pick_device

    options = options or TrainOptions()
    output, data, held = Path(output).expanduser(), _data(train_data), _data(held_out)
    _check_output(output, base)
    _warn_overlap(data.examples, held.examples)
    logger.info("training examples per source and language pair: %s", data.counts())
    encoder = load_bi_encoder(base, model_dir=model_dir, device="cpu", backend="torch",
                              trust_remote_code=trust_remote_code)
    model = encoder.model.to(pick_device(options.device))
    prompts = Prompts(encoder.query_prompt, encoder.document_prompt)
    guard = Guard(held.examples, prompts, options.mini_batch_size)
    before = guard.measure(model)
    plan = make_plan(method, model, data.examples, prompts, texts=texts, batch_size=options.batch_size,
                     mini_batch_size=options.mini_batch_size)
    identity = {"method": method, "base": base,
                "data": data_digest([[asdict(e) for e in data.examples], list(texts)])}
    run = train(plan, options, output / CHECKPOINTS, identity)
    report = guard.report(before, guard.measure(plan.model), min_gain)
    facts = CardFacts(base, method, data.counts(), held.counts(), len(texts), plan.rows, plan.details,
                      options.identity(), prompts, run, report, report.improved or not require_improvement)
    return _deliver(plan, prompts, output, facts)


def _deliver(plan: Plan, prompts: Prompts, output: Path, facts: CardFacts) -> TuneResult:
    """Save the candidate; install it when `facts.installed`, else raise `NotImprovedError`."""
    candidate = _save(plan, prompts, output / CANDIDATE, facts)
    report = facts.report
    result = TuneResult(output, output if facts.installed else candidate, facts.installed, facts.method,
                        facts.base, report, facts.run, facts.counts)
    if not facts.installed:
        raise NotImprovedError(
            f"the tuned model is not better on the held-out part (mean {report.mean_before:.4f} -> "
            f"{report.mean_after:.4f}, change {report.gain:+.4f}, required > {report.min_gain:+.4f}); {output} is "
            f"unchanged, the refused model is in {candidate}", result)
    _install(candidate, output)
    if not report.improved:
        logger.warning("installed a model that is not better on the held-out part (mean change %+.4f); "
                       "--require-improvement refuses such a model", report.gain)
    return result


def _data(data: TrainingData | Iterable[Example]) -> TrainingData:
    if isinstance(data, TrainingData):
        return data
    out = TrainingData()
    out.extend(data)
    return out


def _check_output(output: Path, base: str) -> None:
    """Refuse an output folder that is the base model's or holds something other than a tune's."""
    if Path(base).expanduser().is_dir() and Path(base).expanduser().resolve() == output.resolve():
        raise ConfigError(f"the output folder {output} is the base model's own folder; choose another")
    ours = (output / CHECKPOINTS).is_dir() or (output / REPORT_JSON).exists()
    if output.is_dir() and any(output.iterdir()) and not ours:
        raise ConfigError(f"{output} is not empty and not the output of an earlier tune; choose a new folder")


def _warn_overlap(train_examples: Sequence[Example], held: Sequence[Example]) -> None:
    seen = {(e.anchor, e.positive) for e in train_examples}
    shared = sum((e.anchor, e.positive) in seen for e in held)
    if shared:
        logger.warning("%d held-out example(s) are also training examples: the guard overrates the tuned model",
                       shared)


def _save(plan: Plan, prompts: Prompts, folder: Path, facts: CardFacts) -> Path:
    """Save the tuned model with babelrank's prompts, its card and the guard's table into `folder`."""
    if folder.exists():
        shutil.rmtree(folder)
    model = plan.model
    if prompts.query or prompts.document:
        model.prompts = {**(model.prompts or {}), "query": prompts.query, "document": prompts.document}
    model.save(str(folder), create_model_card=False)
    facts.report.save(folder)
    write_card(folder, facts)
    return folder


def _install(candidate: Path, output: Path) -> None:
    """Move the candidate's files into `output`, replacing the files of the same names."""
    for item in sorted(candidate.iterdir()):
        target = output / item.name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        shutil.move(str(item), str(target))
    candidate.rmdir()
    logger.info("installed the tuned model in %s", output)


def describe(result: TuneResult) -> dict[str, Any]:
    """The JSON-ready summary of a `TuneResult` (the CLI's ``--json``)."""
    run = result.run
    return {
        "output": str(result.output), "model_path": str(result.model_path), "installed": result.installed,
        "improved": result.improved, "method": result.method, "base": result.base, "counts": result.counts,
        "steps": run.steps, "seconds": run.seconds, "rows_per_second": run.rows_per_second,
        "stopped_by": run.stopped_by, "resumed_from": run.resumed_from, "guard": result.report.as_dict(),
    }
