"""babelrank tune on tiny random models: each method trains (loss goes down), the folder loads
back with babelrank's loader, the guard refuses a model made worse on purpose, the time budget
stops and saves, an interrupted run resumes to the same weights, and the CLI runs end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterator

import pytest
import torch
from safetensors.torch import load_file

from babelrank.apps.cli import main
from babelrank.errors import ConfigError, NotImprovedError
from babelrank.models.bi_encoder import load_bi_encoder
from babelrank.tune import Example, TrainOptions, tune
from babelrank.tune.guard import GuardReport, Row
from babelrank.tune.trainer import TimeBudget

WORDS = "red car house river bridge kettle water kitchen morning park blue old".split()
UK = "червоний автомобіль будинок річка міст чайник вода кухня ранок парк синій старий".split()


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One torch thread: tiny models gain nothing from two, and lose much when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _pairs(start: int = 0, count: int = 48, source: str = "pairs") -> list[Example]:
    """Query "a b" with its passage "the a and the b here" (learnable, all distinct)."""
    combos = [(a, b) for a in WORDS for b in WORDS if a != b][start:start + count]
    return [Example(f"{a} {b}", f"the {a} and the {b} here", None, "en", "en", source) for a, b in combos]


def _parallel(start: int = 0, count: int = 40) -> list[Example]:
    """English "a b" with its Ukrainian word-for-word translation."""
    combos = [(i, j) for i in range(len(WORDS)) for j in range(len(WORDS)) if i != j][start:start + count]
    return [Example(f"{WORDS[i]} {WORDS[j]}", f"{UK[i]} {UK[j]}", None, "en", "uk", "parallel") for i, j in combos]


def _options(**overrides: object) -> TrainOptions:
    values = {"batch_size": 8, "max_steps": 8, "learning_rate": 1e-3, "logging_steps": 1, "progress": False,
              "save_steps": 4, "device": "cpu"}
    values.update(overrides)
    return TrainOptions(**values)  # type: ignore[arg-type]


def _went_down(losses: list[tuple[int, float]]) -> bool:
    values = [loss for _, loss in losses]
    return sum(values[-3:]) / 3 < sum(values[:3]) / 3


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_contrastive_trains_and_the_folder_loads_back(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    train = [Example(e.anchor, e.positive, f"the {e.anchor} nowhere", e.anchor_language, e.positive_language)
             if i % 3 == 0 else e for i, e in enumerate(_pairs(0, 64))]  # some hard negatives
    result = tune(str(tiny_models["bi"]), train, _pairs(100, 16), tmp_path / "out", options=_options())
    assert _went_down(result.run.losses), result.run.losses
    assert result.installed and result.model_path == tmp_path / "out" and result.run.steps == 8
    base = load_bi_encoder(str(tiny_models["bi"]), backend="torch", device="cpu")
    tuned = load_bi_encoder(str(tmp_path / "out"), backend="torch", device="cpu")
    assert (tuned.query_prompt, tuned.document_prompt) == ("query: ", "passage: ")
    assert tuned.max_seq_length == base.max_seq_length and tuned.dimension == base.dimension
    assert tuned.model[1].get_config_dict() == base.model[1].get_config_dict()  # pooling
    assert [type(m).__name__ for m in tuned.model] == [type(m).__name__ for m in base.model]
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert str(tiny_models["bi"]) in card and "contrastive" in card and "| pairs | en-en | 64 |" in card
    guard = json.loads((tmp_path / "out" / "guard.json").read_text(encoding="utf-8"))
    assert guard["rows"][0]["task"] == "retrieval" and guard["rows"][0]["examples"] == 16
    assert (tmp_path / "out" / "guard.md").exists() and not (tmp_path / "out" / "candidate").exists()
    word_embeddings = "0.auto_model.embeddings.word_embeddings.weight"
    before = _weights(tiny_models["bi"])
    after = _weights(tmp_path / "out")
    key = next(k for k in after if k.endswith("word_embeddings.weight"))
    assert torch.equal(before[key], after[key]), f"{word_embeddings} is frozen by default"
    assert not torch.equal(before[key.replace("word_embeddings", "position_embeddings")],
                           after[key.replace("word_embeddings", "position_embeddings")])


def test_distill_keeps_the_prompts_babelrank_applies(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    # an e5-named folder without prompts in its files: BiEncoder applies e5's; the tuned model must keep them
    base = tmp_path / "tiny-e5-small"
    shutil.copytree(tiny_models["bi_plain"], base)
    assert load_bi_encoder(str(base), backend="torch", device="cpu").query_prompt == "query: "
    result = tune(str(base), _parallel(0, 64), _parallel(100, 12), tmp_path / "distilled", method="distill",
                  options=_options(learning_rate=2e-3))
    assert _went_down(result.run.losses), result.run.losses
    assert result.report.rows[0].task == "translation" and result.report.rows[0].languages == "en-uk"
    saved = json.loads((tmp_path / "distilled" / "config_sentence_transformers.json").read_text())
    assert saved["prompts"] == {"query": "query: ", "document": "passage: "}
    tuned = load_bi_encoder(str(tmp_path / "distilled"), backend="torch", device="cpu")
    assert (tuned.query_prompt, tuned.document_prompt) == ("query: ", "passage: ")


def test_layers_student_has_half_the_layers(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    result = tune(str(tiny_models["bi_plain"]), _pairs(0, 48), _pairs(100, 12), tmp_path / "half", method="layers",
                  texts=["Червоний автомобіль стоїть біля будинку.", "Синий дом у реки."],
                  options=_options(learning_rate=3e-3), min_gain=-1.0, require_improvement=True)
    assert _went_down(result.run.losses), result.run.losses
    config = json.loads((tmp_path / "half" / "config.json").read_text())
    assert config["num_hidden_layers"] == 1  # the tiny teacher has 2
    tuned = load_bi_encoder(str(tmp_path / "half"), backend="torch", device="cpu")
    assert len(tuned.model[0].auto_model.encoder.layer) == 1
    assert '"student layers": 1' in (tmp_path / "half" / "README.md").read_text(encoding="utf-8")


def test_guard_rule_is_the_mean_over_rows() -> None:
    rows = [Row("retrieval", "uk-en", 10, "MRR@10", 0.50, 0.70, {}, {}),
            Row("translation", "ru-en", 10, "accuracy", 0.80, 0.65, {}, {})]
    assert GuardReport(rows, 0.0, 1.0, 1.0).gain == pytest.approx(0.025)
    assert GuardReport(rows, 0.0, 1.0, 1.0).improved
    assert not GuardReport(rows, 0.03, 1.0, 1.0).improved
    assert not GuardReport(rows[:1] + [Row("translation", "ru-en", 10, "accuracy", 0.8, 0.55, {}, {})],
                           0.0, 1.0, 1.0).improved


def test_guard_refuses_a_model_made_worse_and_keeps_the_old_one(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    tune(str(tiny_models["bi"]), _pairs(0, 32), _pairs(100, 12), out, options=_options(max_steps=2))
    installed = (out / "model.safetensors").read_bytes()
    held = _pairs(100, 16)
    # made worse on purpose: every query is paired with the passage of two other words (on six
    # builds of the tiny model, whose tokenizer varies, the held-out mean fell by 0.25 to 0.76)
    pairs = _pairs(0, 48)
    shifted = {w: WORDS[(i + 6) % len(WORDS)] for i, w in enumerate(WORDS)}
    shuffled = [Example(e.anchor, " ".join(shifted.get(w, w) for w in e.positive.split()), None, "en", "en")
                for e in pairs]
    with pytest.raises(ConfigError, match="other arguments"):
        tune(str(tiny_models["bi"]), shuffled, held, out, options=_options(learning_rate=2e-2, max_steps=16))
    shutil.rmtree(out / "checkpoints")
    with pytest.raises(NotImprovedError) as refused:
        tune(str(tiny_models["bi"]), shuffled, held, out, require_improvement=True,
             options=_options(learning_rate=2e-2, max_steps=16))
    result = refused.value.result
    assert not result.installed and result.report.gain < 0 and refused.value.exit_code == 3
    assert (out / "model.safetensors").read_bytes() == installed  # the old model is kept
    assert result.model_path == out / "candidate" and (out / "candidate" / "guard.json").exists()
    assert "NOT installed" in (out / "candidate" / "README.md").read_text(encoding="utf-8")


def test_time_budget_stops_saves_and_a_rerun_goes_on(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = tune(str(tiny_models["bi"]), _pairs(0, 64), _pairs(100, 8), out, options=_options(time_budget=0))
    assert first.run.stopped_by == "time budget" and first.run.steps == 1
    assert (out / "checkpoints" / "checkpoint-1").is_dir()
    second = tune(str(tiny_models["bi"]), _pairs(0, 64), _pairs(100, 8), out, options=_options())
    assert second.run.resumed_from and second.run.resumed_from.endswith("checkpoint-1") and second.run.steps == 8


def test_an_interrupted_run_resumes_to_the_same_weights(tiny_models: dict[str, Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    data, held = _pairs(0, 64), _pairs(100, 8)
    tune(str(tiny_models["bi"]), data, held, tmp_path / "whole", options=_options())
    real = TimeBudget.on_step_end

    def crash_at_step_6(self: TimeBudget, args: object, state: object, control: object, **kw: object) -> object:
        if state.global_step == 6:  # type: ignore[attr-defined]
            raise KeyboardInterrupt  # as if the process were killed after the step-4 checkpoint
        return real(self, args, state, control, **kw)

    monkeypatch.setattr(TimeBudget, "on_step_end", crash_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        tune(str(tiny_models["bi"]), data, held, tmp_path / "cut", options=_options())
    monkeypatch.setattr(TimeBudget, "on_step_end", real)
    resumed = tune(str(tiny_models["bi"]), data, held, tmp_path / "cut", options=_options())
    assert resumed.run.resumed_from and resumed.run.resumed_from.endswith("checkpoint-4")
    whole, cut = _weights(tmp_path / "whole"), _weights(tmp_path / "cut")
    assert whole.keys() == cut.keys()
    for name in whole:
        assert torch.equal(whole[name], cut[name]), name


def test_cli_tune_end_to_end(tiny_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = tmp_path / "pairs.jsonl"
    with pairs.open("w", encoding="utf-8") as f:
        for e in _pairs(0, 60):
            f.write(json.dumps({"query": e.anchor, "positive": e.positive, "query_language": "en",
                                "positive_language": "en"}) + "\n")
    common = ["tune", "--embed-model", str(tiny_models["bi"]), "--pairs", str(pairs), "--held-out", "0.3",
              "--max-steps", "3", "--batch-size", "8", "--max-length", "16", "--device", "cpu", "-q"]
    assert main(common + ["--output", str(tmp_path / "tuned")]) == 0
    printed = capsys.readouterr().out
    assert "| retrieval | en-en |" in printed and "--embed-model " + str(tmp_path / "tuned") in printed
    assert "babelrank reindex" in printed
    assert load_bi_encoder(str(tmp_path / "tuned"), backend="torch", device="cpu").query_prompt == "query: "
    code = main(common + ["--output", str(tmp_path / "refused"), "--require-improvement", "--min-gain", "1"])
    assert code == 3
    assert "Not installed" in capsys.readouterr().out
    assert not (tmp_path / "refused" / "modules.json").exists() and (tmp_path / "refused" / "candidate").is_dir()


def test_an_output_folder_that_is_not_a_tunes_is_refused(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        tune(str(tiny_models["bi"]), _pairs(0, 8), _pairs(100, 4), tmp_path / "mine", options=_options())
    with pytest.raises(ConfigError, match="base model's own folder"):
        tune(str(tiny_models["bi"]), _pairs(0, 8), _pairs(100, 4), tiny_models["bi"], options=_options())
