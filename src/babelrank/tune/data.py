"""Training data for `babelrank tune` from files: the user's pairs, parallel text, XQuAD, and the
held-out split of any of them.

User pairs (`read_pairs`): a query and the passage that answers it, optionally a hard
negative, as JSONL or TSV. Whatever language a line does not give is detected with the
package's detector (`babelrank.models.language`), so counts per language pair are right
without the user tagging anything.

Parallel text (`read_parallel`): sentences and their translations, the supervision a
multilingual bi-encoder is distilled on (LaBSE, multilingual-e5). Tatoeba's LASER files
(`tatoeba.<xxx>-eng.<xxx>` / `.eng`, read by `babelrank.evaluation.datasets.load_tatoeba`) or
any two-column TSV. The anchor is the side in the pivot language (default English) and the
positive its translation, so the pivot, the language most collections share, is what other
languages are pulled toward; between two other languages the first named is the anchor.

XQuAD (`xquad_pairs`): each question in language A with its paragraph in language B, for
every A != B: cross-language question-answer pairs (source "pairs", the shape of the user's
pairs) for the benchmarks' training runs. Only articles 0-35 of the 48 (file order) are for training; 36-47 are the
benchmarks' held-out evaluation articles (`XQUAD_TRAIN_ARTICLES`).

Held-out split (`split_held_out`): an example's texts must not appear on both sides, or the
held-out score measures memory. Examples are grouped by shared text (two examples are in one
group when they share an anchor or a positive, transitively, whatever their sources: the
translations of one mined text, the questions and paragraph translations of one XQuAD
paragraph), and a group is held out when a seeded hash of its smallest text falls under
`fraction`. So each source has about `fraction` of its groups held out, and the same data and
seed give the same split on any machine and in any order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babelrank.errors import ConfigError, SourceError
from babelrank.evaluation.datasets import (
    available_tatoeba_languages,
    load_tatoeba,
    xquad_paragraph_pool,
)
from babelrank.models.language import (
    LanguageDetector,
    make_detector,
    parse_language_code,
)
from babelrank.tune.examples import Example, TrainingData

logger = logging.getLogger(__name__)

XQUAD_TRAIN_ARTICLES = range(0, 36)
"""The XQuAD / XQuAD-R articles (file order) that training may use; 36-47 are held out for
the benchmarks."""

_TSV_HEADERS = (["query", "positive"], ["anchor", "positive"])
_TATOEBA_FILE = re.compile(r"tatoeba\.([a-z]{3})-eng\.(?:\1|eng)")
_SPEC = re.compile(r"([A-Za-z]{2,3}(?:_[A-Za-z]+)?)-([A-Za-z]{2,3}(?:_[A-Za-z]+)?):(.+)")


# --- lines and fields ---------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) of each non-blank line of a UTF-8 file (a BOM is dropped)."""
    if not path.is_file():
        raise FileNotFoundError(f"training data file not found: {path}")
    for n, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8").rstrip("\r").removeprefix("\ufeff" if n == 1 else "")
        except UnicodeDecodeError:
            raise SourceError(f"{path}:{n}: not UTF-8 text") from None
        if line.strip():
            yield n, line


def _text(where: str, value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SourceError(f"{where}: {what} must be a non-empty string")
    return value


def _language(where: str, value: Any, what: str) -> str | None:
    """A language code given in the data (normalised), or None when not given."""
    if value is None or value == "":
        return None
    try:
        return parse_language_code(str(value))
    except ValueError as exc:
        raise SourceError(f"{where}: {what}: {exc}") from None


def _code(value: str) -> str:
    """A language code given as an argument (normalised); `ConfigError` when it is none."""
    try:
        return parse_language_code(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


# --- user pairs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """One pair as read, languages None where the file does not give them."""

    query: str
    positive: str
    negative: str | None
    query_language: str | None
    positive_language: str | None


def _json_row(where: str, line: str) -> _Row:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise SourceError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if ("query" in obj) == ("anchor" in obj):
        raise SourceError(f"{where}: give the query as 'query' (or its alias 'anchor'), once")
    negative = obj.get("negative")
    return _Row(
        _text(where, obj.get("query", obj.get("anchor")), "'query'"),
        _text(where, obj.get("positive"), "'positive'"),
        None if negative is None else _text(where, negative, "'negative'"),
        _language(where, obj.get("query_language", obj.get("anchor_language")), "'query_language'"),
        _language(where, obj.get("positive_language"), "'positive_language'"),
    )


def _tsv_row(where: str, line: str) -> _Row:
    fields = line.split("\t")
    if len(fields) not in (2, 3):
        raise SourceError(f"{where}: expected 'query<TAB>positive[<TAB>negative]', got {len(fields)} fields")
    negative = fields[2] if len(fields) == 3 and fields[2].strip() else None
    return _Row(_text(where, fields[0], "the query"), _text(where, fields[1], "the positive"), negative, None, None)


def _is_header(line: str) -> bool:
    return [f.strip().lower() for f in line.split("\t")[:2]] in _TSV_HEADERS


def _detected(texts: Sequence[str], detector: LanguageDetector | None) -> list[str]:
    """The detected language of each text ("und" where the detector cannot tell)."""
    if not texts:
        return []
    detector = detector or make_detector()
    return [d.language for d in detector.detect_many(list(texts))]


def read_pairs(path: str | Path, detector: LanguageDetector | None = None) -> list[Example]:
    """Read the user's (query, positive[, negative]) pairs.

    A `.jsonl` / `.json` file holds one object a line: `{"query": str, "positive": str,
    "negative"?: str, "query_language"?: str, "positive_language"?: str}` ("anchor" and
    "anchor_language" are accepted for "query" and "query_language"). Any other file is TSV:
    `query<TAB>positive[<TAB>negative]`, with an optional header line `query<TAB>positive...`.
    Blank lines are skipped. A language not given is detected ("und" when it cannot be told).

    Args:
        path: the file.
        detector: the language detector for languages not given; None: `make_detector()`.

    Returns:
        One `Example` (source "pairs") per line, in file order.

    Raises:
        SourceError: a line is malformed (the message names the file and line); nothing is
            returned then.
        FileNotFoundError: `path` is not a file.
    """
    path = Path(path)
    jsonl = path.suffix.lower() in (".jsonl", ".json")
    rows: list[_Row] = []
    for n, line in _lines(path):
        if not jsonl and not rows and _is_header(line):
            continue
        rows.append((_json_row if jsonl else _tsv_row)(f"{path}:{n}", line))
    if not rows:
        raise SourceError(f"{path}: no pairs in the file")
    missing = list(dict.fromkeys(t for r in rows for t, lang in ((r.query, r.query_language),
                                                                 (r.positive, r.positive_language)) if lang is None))
    found = dict(zip(missing, _detected(missing, detector)))
    examples = [
        Example(r.query, r.positive, r.negative, r.query_language or found[r.query],
                r.positive_language or found[r.positive], source="pairs")
        for r in rows
    ]
    logger.info("%s: %d pairs %s", path, len(examples), TrainingData(examples).counts().get("pairs", {}))
    return examples


# --- parallel text ------------------------------------------------------------------------


@dataclass(frozen=True)
class ParallelSpec:
    """Where parallel text is: a path, and for a TSV file the languages of its two columns."""

    path: Path
    languages: tuple[str, str] | None = None


def parse_parallel_spec(spec: str) -> ParallelSpec:
    """Parse a command-line parallel-text argument: `PATH` or `SRC-TGT:PATH` (e.g. `ru-en:pairs.tsv`).

    Raises:
        ConfigError: a language code is unknown or the path is empty.
    """
    match = _SPEC.fullmatch(spec.strip())
    if match is None:
        if not spec.strip():
            raise ConfigError("empty parallel-text argument; give PATH or SRC-TGT:PATH, e.g. ru-en:pairs.tsv")
        return ParallelSpec(Path(spec.strip()))
    return ParallelSpec(Path(match.group(3)), (_code(match.group(1)), _code(match.group(2))))


def _two(path: Path, languages: Sequence[str] | None) -> tuple[str, str]:
    """The two column languages of a TSV file of parallel text."""
    if languages is None:
        raise ConfigError(f"{path}: give the languages of its two columns, e.g. ru-en:{path}")
    if len(languages) != 2:
        raise ConfigError(f"{path}: a TSV file of parallel text has two languages, got {list(languages)}")
    return languages[0], languages[1]


def _oriented(first: str, second: str, languages: tuple[str, str], pivot: str | None, source: str) -> Example:
    """An example with the pivot-language side as anchor (else `first`)."""
    if languages[1] == pivot and languages[0] != pivot:
        return Example(second, first, None, languages[1], languages[0], source=source)
    return Example(first, second, None, languages[0], languages[1], source=source)


def _read_parallel_tsv(path: Path, languages: tuple[str, str], pivot: str | None) -> list[Example]:
    examples = []
    for n, line in _lines(path):
        fields = line.split("\t")
        where = f"{path}:{n}"
        if len(fields) != 2:
            raise SourceError(f"{where}: expected '{languages[0]} sentence<TAB>{languages[1]} sentence', "
                              f"got {len(fields)} fields")
        first, second = _text(where, fields[0], "the first column"), _text(where, fields[1], "the second column")
        examples.append(_oriented(first, second, languages, pivot, "parallel"))
    if not examples:
        raise SourceError(f"{path}: no sentence pairs in the file")
    return examples


def _read_tatoeba(data_dir: Path, lang3: str, pivot: str | None) -> list[Example]:
    pair = load_tatoeba(data_dir, lang3)
    return [_oriented(src, eng, (pair.lang, "en"), pivot, "parallel") for src, eng in zip(pair.source, pair.english)]


def _tatoeba_languages(folder: Path, languages: Sequence[str] | None) -> list[str]:
    """The ISO 639-3 codes of the folder's Tatoeba pairs, those of `languages` when given."""
    available = available_tatoeba_languages(folder)
    if languages is None:
        return available
    wanted = {code for code in languages if code != "en"}
    chosen = [x for x in available if parse_language_code(x) in wanted]
    if not chosen:
        raise ConfigError(f"{folder}: no Tatoeba pair for {'-'.join(languages)} (it has {', '.join(available)})")
    return chosen


def read_parallel(spec: str | Path | ParallelSpec, languages: Sequence[str] | None = None,
                  pivot: str | None = "en") -> list[Example]:
    """Read parallel text as (anchor, translation) examples.

    Args:
        spec: a `ParallelSpec`, a `SRC-TGT:PATH` string (`parse_parallel_spec`) or a path:
            a folder of Tatoeba LASER pairs (`tatoeba.<xxx>-eng.<xxx>` / `.eng`; every pair,
            or those of `languages`), one file of such a pair (either side), or a TSV file
            `source<TAB>target` (needs its two languages).
        languages: the two languages of a TSV file's columns (overrides the spec's); for
            a Tatoeba folder, the languages whose pairs to read (e.g. ["uk", "ru"]).
        pivot: the language whose side is the anchor when a pair has it (None: the first
            column, or the non-English side of Tatoeba).

    Returns:
        One `Example` (source "parallel") per sentence pair, in file order.

    Raises:
        ConfigError: a TSV file without its languages, or an unknown language code.
        SourceError: a malformed line (file and line named) or Tatoeba files of different lengths.
    """
    if not isinstance(spec, ParallelSpec):
        spec = parse_parallel_spec(str(spec)) if isinstance(spec, str) else ParallelSpec(Path(spec))
    given = [_code(x) for x in languages] if languages is not None else spec.languages
    pivot = _code(pivot) if pivot else None
    path, match = spec.path, _TATOEBA_FILE.fullmatch(spec.path.name)
    if path.is_dir():
        examples = [ex for lang3 in _tatoeba_languages(path, given) for ex in _read_tatoeba(path, lang3, pivot)]
    elif match:
        examples = _read_tatoeba(path.parent, match.group(1), pivot)
    else:
        examples = _read_parallel_tsv(path, _two(path, given), pivot)
    logger.info("%s: %d sentence pairs %s", path, len(examples),
                TrainingData(examples).counts().get("parallel", {}))
    return examples


# --- XQuAD --------------------------------------------------------------------------------


def xquad_pairs(data_dir: str | Path, languages: Sequence[str],
                articles: Iterable[int] = XQUAD_TRAIN_ARTICLES) -> list[Example]:
    """(question in A, its paragraph in B) for every two different languages A, B of XQuAD.

    Args:
        data_dir: the folder of `xquad.<lang>.json`.
        languages: at least two XQuAD languages.
        articles: article indices (file order) to use; the default `XQUAD_TRAIN_ARTICLES`
            leaves the benchmarks' evaluation articles out (a warning when others are asked for).

    Returns:
        Examples of source "pairs" (queries and the passages that answer them, the shape of the
        user's pairs), in file order of the questions.
    """
    wanted = set(articles)
    if wanted - set(XQUAD_TRAIN_ARTICLES):
        logger.warning("xquad_pairs: articles %s are the benchmarks' evaluation articles; results measured "
                       "on them after training are not comparable", sorted(wanted - set(XQUAD_TRAIN_ARTICLES)))
    languages = [_code(x) for x in languages]
    if len(set(languages)) < 2:
        raise ConfigError(f"xquad_pairs needs two languages or more, got {languages}")
    corpus = xquad_paragraph_pool(data_dir, languages, languages)
    documents = {d.id: d for d in corpus.documents if d.metadata["article"] in wanted}
    examples = []
    for query in corpus.queries:
        for doc_id in sorted(corpus.qrels[query.id]):
            doc = documents.get(doc_id)
            if doc is not None and doc.language != query.language:
                examples.append(Example(query.text, doc.text, None, str(query.language), doc.language,
                                        source="pairs"))
    logger.info("xquad: %d question-paragraph pairs from %d articles", len(examples), len(wanted))
    return examples


# --- held-out split -----------------------------------------------------------------------


def _groups(examples: Sequence[Example]) -> list[list[int]]:
    """Indices of `examples` grouped by shared anchor or positive text (union-find)."""
    parent = list(range(len(examples)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, ex in enumerate(examples):
        for text in (ex.anchor, ex.positive):
            if text in owner:
                parent[root(i)] = root(owner[text])
            else:
                owner[text] = i
    members: dict[int, list[int]] = {}
    for i in range(len(examples)):
        members.setdefault(root(i), []).append(i)
    return list(members.values())


def _held_out(texts: Iterable[str], fraction: float, seed: int) -> bool:
    key = min(texts).encode("utf-8")
    digest = hashlib.sha256(seed.to_bytes(8, "little", signed=True) + key).digest()
    return int.from_bytes(digest[:8], "little") / 2**64 < fraction


def split_held_out(data: TrainingData | Sequence[Example], fraction: float = 0.1,
                   seed: int = 0) -> tuple[TrainingData, TrainingData]:
    """Split examples into (train, held out) with no anchor or positive text on both sides.

    Args:
        data: the examples (any sources).
        fraction: the expected share of text groups held out, in [0, 1).
        seed: changes which groups are held out.

    Returns:
        (train, held out), each in the order of `data`. Examples sharing an anchor or a
        positive (transitively, across sources) are on one side; each group's side is a
        seeded hash of its texts, so every source has about `fraction` of its groups held out
        and the split does not depend on the order of `data`.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"the held-out fraction must be in [0, 1), got {fraction}")
    examples = list(data.examples if isinstance(data, TrainingData) else data)
    held = [False] * len(examples)
    for group in _groups(examples):
        out = _held_out((t for i in group for t in (examples[i].anchor, examples[i].positive)), fraction, seed)
        for i in group:
            held[i] = out
    train, held_out = TrainingData(), TrainingData()
    for ex, h in zip(examples, held):
        (held_out if h else train).examples.append(ex)
    logger.info("held out %d of %d examples (fraction %.2f, seed %d): %s", len(held_out), len(examples),
                fraction, seed, held_out.counts())
    return train, held_out
