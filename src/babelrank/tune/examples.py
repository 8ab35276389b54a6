"""Training examples for `babelrank tune`: one shape for every data source.

An `Example` is an (anchor, positive[, negative]) triple with the language of each side and
the source it came from: the user's own pairs (`pairs`), parallel text (`parallel`) or pairs
mined from the collection (`mined`). `TrainingData` holds the examples of all sources and
counts them per source and language pair, which `babelrank tune` reports before it trains.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

SOURCES = ("pairs", "parallel", "mined")


@dataclass(frozen=True)
class Example:
    """One training example.

    Attributes:
        anchor: the query (user pairs) or the source sentence (parallel text, mined pairs).
        positive: the passage that answers the query, or the translation of the anchor.
        negative: an optional hard negative passage.
        anchor_language: ISO 639-1 code of the anchor ("und" when unknown).
        positive_language: ISO 639-1 code of the positive ("und" when unknown).
        source: one of `SOURCES`.
    """

    anchor: str
    positive: str
    negative: str | None = None
    anchor_language: str = "und"
    positive_language: str = "und"
    source: str = "pairs"

    @property
    def language_pair(self) -> str:
        """``"<anchor language>-<positive language>"``, e.g. ``"ru-en"``."""
        return f"{self.anchor_language}-{self.positive_language}"


@dataclass
class TrainingData:
    """The examples of every source, with per-source, per-language-pair counts."""

    examples: list[Example] = field(default_factory=list)

    def extend(self, examples: Iterable[Example]) -> None:
        """Add examples (of any source)."""
        self.examples.extend(examples)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{source: {language pair: number of examples}}``, sources with no example left out."""
        out: dict[str, Counter[str]] = {}
        for ex in self.examples:
            out.setdefault(ex.source, Counter())[ex.language_pair] += 1
        return {source: dict(sorted(c.items())) for source, c in out.items()}

    def __len__(self) -> int:
        return len(self.examples)
