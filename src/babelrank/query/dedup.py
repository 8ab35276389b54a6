"""Translation-aware results: collapse results that are translations or near duplicates.

A multilingual collection often holds one text in several languages; five results that are
one fact in three languages waste an LLM's context. `collapse_translations` groups the
candidates whose stored passage vectors (bi-encoder, passage prompt) have a centred cosine
(below) at or above a threshold, keeps one representative per group and lists the others.

Grouping ("leader" clustering). Candidates are visited best score first; a candidate joins
the first group whose leader (its best-scored member) it reaches `threshold` with, else it
starts a new group. Comparing with the leader only (not with every member) stops chains
(A-en ~ A-ru ~ B-ru) from merging different texts.

Representative. The best-scored member in the first preferred language the group holds
(the retriever passes `answer_language`, then `prefer_languages`, then the detected query
language), else the leader. The representative keeps its *own* score, so results stay
ordered by their own scores; the others become its `alternates` (`{id, language, score}`,
best first).

Centred cosine. Raw e5 cosines are all high (any two e5-small passages score ~0.75-0.85),
and same-language texts sit closer than translations of each other, so a raw threshold
cannot tell translations from neighbours (Tatoeba: equal error 37 %). Each stored vector is
therefore centred on its language's centroid in the collection (the centroids the
language-neutral calibration already keeps, `babelrank.query.neutral`; the collection's global
mean for a language with fewer than 20 chunks: `language_centres`) and re-normalised before the
cosine (`centred_unit_vectors`): ``cos(d1 - mu_L1, d2 - mu_L2)``. That removes the shared "e5 direction" and each language's
own offset; what is left is content. Measured with e5-small: Tatoeba equal error 19 %
(raw 37 %); XQuAD paragraphs (held out) 92 % of translations merge and 0.7 % / 4.2 % of the
hardest cross-/same-language other paragraphs of the same article do (raw cosine at its own
Tatoeba equal-error point 0.90: 46 %, 0 %, 8.5 %).

Threshold. A property of the embedding model, measured by `benchmarks/dedup_threshold.py` on
Tatoeba translation pairs vs the hardest non-pairs (see `DEFAULT_THRESHOLDS`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from babelrank.store.calibration import LanguageCalibration

logger = logging.getLogger(__name__)

MIN_DEDUP_CHUNKS = 20
"""Fewest chunks in a collection for dedup (its centred cosine needs collection centroids),
and in a language for dedup to centre on that language's own centroid (else the whole
collection's): two chunks centred on their own centroid become opposite vectors."""

DEFAULT_THRESHOLDS: dict[str, float] = {
    # multilingual-e5-small (the shared 4-bit-dequantised copy), passage prompt both sides,
    # centred cosine. Equal-error point of Tatoeba ukr/rus/deu/fra-eng translation pairs
    # (1000 each) vs the hardest non-pairs (cross- and same-language): 0.605, error 19 %.
    # Only this model was measured; other e5 sizes are not listed on purpose.
    "multilingual-e5-small": 0.61,
}
"""Calibrated centred-cosine thresholds by model name (matched against the last path/hub-id
component). Measure another model with `benchmarks/dedup_threshold.py --model PATH --data DIR`."""

FALLBACK_THRESHOLD = 0.61
"""Used with `dedup="on"` for models without a calibrated threshold (with a warning): e5-small's
value. Under `dedup="auto"` such models are not deduplicated unless `dedup_threshold` is set."""


def default_threshold(model_name: str) -> tuple[float, bool]:
    """`(threshold, calibrated)` for a model hub id or folder path.

    The longest key of `DEFAULT_THRESHOLDS` contained in the name's last component wins
    (e.g. `intfloat/multilingual-e5-small` and `.../multilingual-e5-small-q4` both match
    `multilingual-e5-small`); otherwise `FALLBACK_THRESHOLD`, uncalibrated.
    """
    base = Path(str(model_name).rstrip("/")).name.lower()
    keys = sorted((k for k in DEFAULT_THRESHOLDS if k in base), key=len, reverse=True)
    if keys:
        return DEFAULT_THRESHOLDS[keys[0]], True
    return FALLBACK_THRESHOLD, False


def language_centres(calibration: LanguageCalibration, languages: Sequence[str]) -> np.ndarray:
    """(n, d) centre of each vector of `languages` for the centred cosine (see above).

    Its language's centroid in `calibration` when the collection holds at least
    `MIN_DEDUP_CHUNKS` chunks of it, else the collection's global mean.
    """
    overall = calibration.global_centroid()
    centre = {lang: calibration.centroid(lang) if calibration.counts.get(lang, 0) >= MIN_DEDUP_CHUNKS else None
              for lang in set(languages)}
    return np.stack([c if (c := centre[lang]) is not None else overall for lang in languages])


def centred_unit_vectors(vectors: np.ndarray, centres: np.ndarray | None) -> np.ndarray:
    """Rows of `vectors` normalised, less their `centres` (None: none), normalised again.

    The dot product of two rows is their centred cosine ``cos(d1 - mu_L1, d2 - mu_L2)``.
    """
    v = np.asarray(vectors, dtype=np.float32)
    if centres is not None:
        c = np.asarray(centres, dtype=np.float32)
        if c.shape != v.shape:
            raise ValueError(f"centres have shape {c.shape}, vectors {v.shape}")
        v = v / np.linalg.norm(v, axis=1, keepdims=True).clip(min=1e-12) - c
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms == 0, 1.0, norms)


@dataclass
class Group:
    """One collapsed result: `members` are candidate indices, best score first."""

    representative: int
    members: list[int] = field(default_factory=list)

    @property
    def others(self) -> list[int]:
        return [m for m in self.members if m != self.representative]


def collapse_translations(
    vectors: np.ndarray,
    scores: Sequence[float],
    languages: Sequence[str | None],
    threshold: float,
    prefer_language: str | Sequence[str] | None = None,
    centres: np.ndarray | None = None,
) -> list[Group]:
    """Group candidates that are translations / near duplicates of each other.

    Args:
        vectors: (n, d) stored passage vectors of the candidates (normalised here again).
        scores: the candidates' scores (higher is better); any order.
        languages: each candidate's language code (None/"und" when unknown).
        threshold: cosine at or above which two candidates are the same content.
        prefer_language: language (or languages, first preferred) whose version should
            represent a group when present.
        centres: (n, d) vector subtracted from each candidate before the cosine — its
            language's centroid in the collection (see "Centred cosine" above); None = raw
            cosine.

    Returns the groups ordered by their representative's score (best first); every candidate
    is in exactly one group.
    """
    v = np.asarray(vectors, dtype=np.float32)
    n = len(scores)
    if v.ndim != 2 or len(v) != n or len(languages) != n:
        raise ValueError(f"{len(v)} vectors, {n} scores and {len(languages)} languages must match")
    if n == 0:
        return []
    v = centred_unit_vectors(v, centres)
    sims = v @ v.T
    order = sorted(range(n), key=lambda i: -float(scores[i]))
    groups: list[Group] = []
    leaders: list[int] = []
    for i in order:
        for g, leader in zip(groups, leaders):
            if sims[i, leader] >= threshold:
                g.members.append(i)
                break
        else:
            groups.append(Group(representative=i, members=[i]))
            leaders.append(i)
    wanted = [prefer_language] if isinstance(prefer_language, str) else list(prefer_language or [])
    for g in groups:
        for lang in wanted:
            preferred = [m for m in g.members if languages[m] == lang]
            if preferred:
                g.representative = preferred[0]  # members are best score first
                break
    groups.sort(key=lambda g: -float(scores[g.representative]))
    return groups


def alternates(groups_member_ids: Sequence[tuple[str, str | None, float]]) -> list[dict[str, object]]:
    """`[{id, language, score}]` records for a representative's metadata, best score first."""
    return [
        {"id": cid, "language": lang or "und", "score": float(score)}
        for cid, lang, score in sorted(groups_member_ids, key=lambda t: -t[2])
    ]
