"""A tiny XQuAD-R / XQuAD / Tatoeba data folder and a runner for the eval CLI (shared by the eval tests)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from babelrank.apps.cli.evaluation import register

SENTENCES = {
    "en": [["The red car is parked near the house.", "It belongs to my brother."],
           ["The kettle boils water.", "We drink tea every morning."],
           ["The old bridge crosses the river.", "A park lies beside it."]],
    "ru": [["Красная машина стоит возле дома.", "Она принадлежит моему брату."],
           ["Чайник кипятит воду.", "Мы пьём чай каждое утро."],
           ["Старый мост пересекает реку.", "Рядом с ним парк."]],
}
QUESTIONS = {"en": ["Whose car is it?", "What do we drink?", "What crosses the river?"],
             "ru": ["Чья это машина?", "Что мы пьём?", "Что пересекает реку?"]}
ANSWER_SENTENCE = [1, 1, 0]


def squad(lang: str) -> dict[str, Any]:
    """One XQuAD-format file: three paragraphs of two sentences, one question each."""
    paragraphs = []
    for p, sentences in enumerate(SENTENCES[lang]):
        starts = [sum(len(s) + 1 for s in sentences[:i]) for i in range(len(sentences))]
        paragraphs.append({
            "context": " ".join(sentences),
            "sentences": sentences,
            "sentence_breaks": [[st, st + len(s)] for st, s in zip(starts, sentences)],
            "qas": [{"id": f"q{p}", "question": QUESTIONS[lang][p],
                     "answers": [{"text": "x", "answer_start": starts[ANSWER_SENTENCE[p]]}]}],
        })  # fmt: skip
    return {"version": "1.1", "data": [{"title": "T", "paragraphs": paragraphs}]}


def write_data(root: Path) -> Path:
    """Write xquad-r/, xquad/ and tatoeba/ (ukr, rus) under `root`."""
    for sub in ("xquad-r", "xquad", "tatoeba"):
        (root / sub).mkdir(parents=True)
    for lang in SENTENCES:
        text = json.dumps(squad(lang), ensure_ascii=False)
        (root / "xquad-r" / f"{lang}.json").write_text(text, encoding="utf-8")
        (root / "xquad" / f"xquad.{lang}.json").write_text(text, encoding="utf-8")
    pairs = {"ukr": ["Червоний автомобіль.", "Чайник кипить.", "Старий міст.", "Кіт спить."],
             "rus": ["Красная машина.", "Чайник кипит.", "Старый мост.", "Кот спит."]}
    english = ["A red car.", "The kettle boils.", "An old bridge.", "The cat sleeps."]
    for lang3, lines in pairs.items():
        (root / "tatoeba" / f"tatoeba.{lang3}-eng.{lang3}").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (root / "tatoeba" / f"tatoeba.{lang3}-eng.eng").write_text("\n".join(english) + "\n", encoding="utf-8")
    return root


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="babelrank")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run an eval/compare command line; its stdout."""
    args = parser().parse_args(argv)
    assert args.func(args) == 0
    return capsys.readouterr().out
