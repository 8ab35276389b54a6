"""Running a `Plan` on sentence-transformers' `SentenceTransformerTrainer`, practical on a CPU.

What this adds to the trainer, and why:

* A memory bound: the word-embedding matrix is frozen unless asked otherwise, and
  ``max_length`` caps the tokens of a training text (activations, not weights, dominate
  on long passages: e5-small on XQuAD paragraphs, batch 16, full length, grew past 9 GB). In
  multilingual-e5-small it is 96M of the 118M parameters (a 250k-row vocabulary); frozen,
  it needs no gradient (0.38 GB) and no AdamW moments (0.77 GB), and the issue's probe
  trained the rest at ~10 pairs/s on 2 cores. The rows of words a tuning set does not
  contain would move only through weight decay anyway.
* Checkpoints in ``<output>/checkpoints`` every `TrainOptions.save_steps` steps and when
  training stops; a re-run with the same arguments resumes from the latest one (the trainer
  restores weights, optimizer, scheduler, RNG state and the position in the data), so an
  interrupted run ends in the same state as an uninterrupted one. ``run.json`` there records
  the arguments; checkpoints of other arguments are refused rather than mixed.
* A time budget (`TimeBudget`): training stops after the first step that ends past it, and
  saves, so a later run can go on.
* A progress bar with ETA and the running loss (the trainer's tqdm, without its per-log
  lines); on CUDA, fp16 mixed precision.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from babelrank.errors import ConfigError
from babelrank.tune.methods import Plan

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"


@dataclass
class TrainOptions:
    """How to train (every field but `device`, `time_budget` and `progress` must match to resume).

    Attributes:
        batch_size: examples per step (in-batch negatives grow with it).
        mini_batch_size: `contrastive` computes at most this many examples at once (above it,
            the cached loss).
        learning_rate: AdamW's peak learning rate (linear warm-up, then linear decay).
        epochs: passes over the data when `max_steps` is None.
        max_steps: stop after this many steps (the schedule spans them).
        warmup: fraction of the steps of linear warm-up.
        time_budget: stop (and save) after the first step that ends past this many seconds.
        save_steps: a checkpoint every this many steps (and one when training stops).
        seed: seeds weights' dropout, data order and sampling.
        device: "auto" (CUDA when present), "cpu", "cuda", ...
        train_embeddings: also train the word-embedding matrix (more memory, slower).
        max_length: truncate training texts to this many tokens (None: the model's maximum);
            activation memory and time grow with it.
        logging_steps: record (and show) the loss every this many steps.
        progress: show a progress bar with ETA.
    """

    batch_size: int = 16
    mini_batch_size: int = 32
    learning_rate: float = 2e-5
    epochs: float = 1.0
    max_steps: int | None = None
    warmup: float = 0.1
    time_budget: float | None = None
    save_steps: int = 100
    seed: int = 42
    device: str = "auto"
    train_embeddings: bool = False
    max_length: int | None = None
    logging_steps: int = 10
    progress: bool = True

    def identity(self) -> dict[str, Any]:
        """The options a resumed run must share with the run it continues."""
        out = asdict(self)
        for volatile in ("device", "time_budget", "progress", "save_steps", "logging_steps"):
            out.pop(volatile)
        return out


@dataclass
class TrainingRun:
    """What training did.

    Attributes:
        steps: optimizer steps done in all (a resumed run counts the earlier ones too).
        seconds: wall time of this process's training.
        rows_per_second: training rows per second in this process (0 when no step ran).
        losses: ``(step, loss)`` as logged, this process only.
        stopped_by: "done", "max steps" or "time budget".
        resumed_from: the checkpoint this run started from, if any.
        trainable_parameters: parameters the optimizer updated.
        frozen_parameters: parameters kept fixed (the word embeddings unless trained).
    """

    steps: int
    seconds: float
    rows_per_second: float
    losses: list[tuple[int, float]] = field(default_factory=list)
    stopped_by: str = "done"
    resumed_from: str | None = None
    trainable_parameters: int = 0
    frozen_parameters: int = 0


class TimeBudget(TrainerCallback):
    """Stop training, and save, after the first step that ends `seconds` after training began."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self.spent = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.seconds is not None and time.monotonic() - self.started >= self.seconds:
            self.spent = True
            control.should_training_stop = True
            control.should_save = True
        return control


class LossLog(TrainerCallback):
    """Collects the logged training loss as ``(step, loss)``."""

    def __init__(self) -> None:
        self.losses: list[tuple[int, float]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            self.losses.append((int(state.global_step), float(logs["loss"])))


class LossBar(ProgressCallback):
    """The trainer's progress bar (steps, ETA) with the last loss beside it, not printed per log."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if self.training_bar is not None and logs and "loss" in logs:
            self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)


def freeze_word_embeddings(model: Any) -> tuple[int, int]:
    """Freeze the input word-embedding matrix of every transformer in `model`.

    Returns:
        (trainable, frozen) parameter counts after freezing.
    """
    for module in model.modules():
        getter = getattr(module, "get_input_embeddings", None)
        if getter is not None and hasattr(module, "config"):
            embeddings = getter()
            if embeddings is not None:
                embeddings.weight.requires_grad_(False)
    return parameter_counts(model)


def parameter_counts(model: Any) -> tuple[int, int]:
    """(trainable, frozen) parameter counts of `model`."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters()) - trainable


def data_digest(parts: Sequence[Any]) -> str:
    """A short digest of the training data (anything JSON can write), to recognise a re-run."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, ensure_ascii=False, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def check_run(checkpoints: Path, identity: dict[str, Any]) -> str | None:
    """Record `identity` in ``run.json``; the latest checkpoint to resume from, if any.

    Raises:
        ConfigError: `checkpoints` holds checkpoints of a run with other arguments.
    """
    from transformers.trainer_utils import get_last_checkpoint

    checkpoints.mkdir(parents=True, exist_ok=True)
    record = checkpoints / RUN_FILE
    latest = get_last_checkpoint(str(checkpoints))
    if latest and record.exists():
        previous = json.loads(record.read_text(encoding="utf-8"))
        changed = sorted(k for k in set(previous) | set(identity) if previous.get(k) != identity.get(k))
        if changed:
            raise ConfigError(
                f"{checkpoints} holds checkpoints of a run with other arguments ({', '.join(changed)} "
                f"changed); remove that folder to start over, or choose another output folder")
    record.write_text(json.dumps(identity, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return latest


def train(plan: Plan, options: TrainOptions, checkpoints: Path, identity: dict[str, Any]) -> TrainingRun:
    """Train `plan.model` in place with `SentenceTransformerTrainer`, resuming when possible.

    Args:
        plan: the method's model, data, loss and prompts.
        options: how to train.
        checkpoints: the checkpoint folder (``<output>/checkpoints``).
        identity: what identifies this run besides `options` (method, base model, data digest).
    """
    if not options.train_embeddings:
        freeze_word_embeddings(plan.model)
    trainable, frozen = parameter_counts(plan.model)
    logger.info("training %d parameters, %d frozen", trainable, frozen)
    latest = check_run(checkpoints, {**identity, **options.identity()})
    budget, losses = TimeBudget(options.time_budget), LossLog()
    trainer = _trainer(plan, options, checkpoints, [budget, losses])
    if latest:
        logger.info("resuming from %s", latest)
    started = time.monotonic()
    before = _resumed_step(latest)
    trainer.train(resume_from_checkpoint=latest)
    seconds = time.monotonic() - started
    steps = int(trainer.state.global_step)
    rows = (steps - before) * options.batch_size
    stopped = "time budget" if budget.spent else "max steps" if options.max_steps else "done"
    return TrainingRun(steps, seconds, rows / seconds if rows and seconds else 0.0, losses.losses, stopped,
                       latest, trainable, frozen)


def _resumed_step(checkpoint: str | None) -> int:
    if not checkpoint:
        return 0
    state = Path(checkpoint) / "trainer_state.json"
    return int(json.loads(state.read_text(encoding="utf-8")).get("global_step", 0)) if state.exists() else 0


def _trainer(plan: Plan, options: TrainOptions, checkpoints: Path, callbacks: list[TrainerCallback]) -> Any:
    """The `SentenceTransformerTrainer` of `plan` with babelrank's arguments and callbacks."""
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.data_collator import (
        SentenceTransformerDataCollator,
    )
    from transformers.trainer_callback import PrinterCallback

    from babelrank.models.loading import pick_device

    cuda = pick_device(options.device).startswith("cuda")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints), per_device_train_batch_size=options.batch_size,
        learning_rate=options.learning_rate, num_train_epochs=options.epochs,
        max_steps=options.max_steps or -1, warmup_steps=options.warmup, seed=options.seed,
        data_seed=options.seed, save_strategy="steps", save_steps=options.save_steps, save_total_limit=2,
        logging_steps=options.logging_steps, report_to="none", disable_tqdm=not options.progress,
        use_cpu=not cuda, fp16=cuda, prompts=plan.prompts or None, dataloader_num_workers=0,
        batch_sampler=BatchSamplers.NO_DUPLICATES if plan.no_duplicates else BatchSamplers.BATCH_SAMPLER,
    )
    collator = SentenceTransformerDataCollator(plan.model.preprocess, prompts=args.prompts, max_length=options.max_length)
    class Trainer(SentenceTransformerTrainer):
        def add_model_card_callback(self, default_args_dict: dict[str, Any]) -> None:
            """None: babelrank writes its own card (the default one embeds "widget" examples at start)."""

    trainer = Trainer(model=plan.model, args=args, train_dataset=plan.dataset, loss=plan.loss,
                      callbacks=callbacks, data_collator=collator)
    trainer.remove_callback(PrinterCallback)  # prints every log line
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(LossBar())
    return trainer
