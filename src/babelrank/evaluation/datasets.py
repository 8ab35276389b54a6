"""Evaluation data as typed corpora with stable ids: Tatoeba, XQuAD, XQuAD-R and user files.

Every benchmark loader returns an `EvalCorpus`: documents to index, queries to ask, the
relevant document ids of each query (`qrels`) and, where a query's own text sits in the pool,
the ids a runner must drop from that query's results (`exclude`). Language codes are the
package's (`babelrank.models.language.normalize_language_code`): ISO 639-1 ("uk", "de", "en") where
a language has one; a runner scores the document ids it gets back, so chunk ids must
be mapped back to `EvalDocument.id` first.
"""

from __future__ import annotations

import json
import logging
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from babelrank.errors import SourceError
from babelrank.models.language import UNDETERMINED, normalize_language_code

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class EvalDocument:
    """One document of an evaluation pool."""

    id: str
    text: str
    language: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalQuery:
    """One query; `language` is None when the source does not say (user data). `metadata`
    holds what a benchmark knows about it (XQuAD: `article`, `paragraph`)."""

    id: str
    text: str
    language: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalCorpus:
    """Documents, queries and judgements of one evaluation.

    `exclude[query_id]` lists documents that must not count for that query (its own sentence
    in a mixed pool): a runner drops them from the ranking before scoring (`filter_run`), so it
    should fetch `k + len(exclude[q])` results to keep k. A query whose `qrels` entry is empty
    has no answer in the pool (`xquad_unanswerable_pool`); ranking metrics leave it out.
    """

    name: str
    documents: list[EvalDocument]
    queries: list[EvalQuery]
    qrels: dict[str, set[str]]
    exclude: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        doc_ids = {d.id for d in self.documents}
        query_ids = {q.id for q in self.queries}
        if len(doc_ids) != len(self.documents) or len(query_ids) != len(self.queries):
            raise ValueError(f"{self.name}: document and query ids must be unique")
        for label, table in (("qrels", self.qrels), ("exclude", self.exclude)):
            for qid, docs in table.items():
                if qid not in query_ids:
                    raise ValueError(f"{self.name}: {label} names unknown query {qid!r}")
                unknown = sorted(set(docs) - doc_ids)
                if unknown:
                    raise ValueError(f"{self.name}: {label}[{qid!r}] names unknown documents {unknown[:3]}")

    def filter_run(self, run: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        """The run without each query's excluded documents."""
        return {q: [d for d in ranked if d not in self.exclude.get(q, ())] for q, ranked in run.items()}

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of documents and of queries per language ("und" for queries without one)."""
        return {
            "documents": dict(Counter(d.language for d in self.documents)),
            "queries": dict(Counter(q.language or UNDETERMINED for q in self.queries)),
        }


@dataclass(frozen=True)
class BitextPair:
    """One Tatoeba pair: `source[i]` translates `english[i]`, both from line `lines[i]`
    (0-based) of their files; `lang` is the package's code ("uk")."""

    lang: str
    source: list[str]
    english: list[str]
    lang3: str
    lines: list[int]


@dataclass(frozen=True)
class Judgement:
    """A user query and its relevant documents, given as document ids or passage texts."""

    query: EvalQuery
    relevant: tuple[str, ...]


class _Defect(Exception):
    """One record of a published data file cannot be used as it is."""


def _report_defects(name: str, what: str, skipped: Sequence[str], total: int) -> None:
    """Warn once with the count of records left out (and the first reasons); none left: error."""
    if skipped and len(skipped) == total:
        raise SourceError(f"{name}: no usable {what}; every one has a defect, e.g. {skipped[0]}")
    if skipped:
        more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
        logger.warning("%s: skipped %d of %d %s with defects, evaluating the rest: %s%s",
                       name, len(skipped), total, what, "; ".join(skipped[:3]), more)


def head_queries(corpus: EvalCorpus, n: int) -> EvalCorpus:
    """The first `n` queries per query language (documents unchanged)."""
    seen: dict[str | None, int] = {}
    queries = []
    for q in corpus.queries:
        if seen.get(q.language, 0) < n:
            seen[q.language] = seen.get(q.language, 0) + 1
            queries.append(q)
    keep = {q.id for q in queries}
    return EvalCorpus(
        corpus.name,
        list(corpus.documents),
        queries,
        {q: r for q, r in corpus.qrels.items() if q in keep},
        {q: e for q, e in corpus.exclude.items() if q in keep},
    )


# --- Tatoeba -------------------------------------------------------------------------------


def _language_label(lang3: str) -> str:
    """The package-wide code of a Tatoeba file's language (`normalize_language_code`)."""
    try:
        return normalize_language_code(lang3)
    except ValueError as exc:
        logger.warning("%s; the Tatoeba pair %r is labelled with it as is", exc, lang3)
        return lang3


def _read_lines(path: Path) -> list[str]:
    """Lines of a one-sentence-per-line UTF-8 file (split on \\n only, unlike splitlines)."""
    lines = [line.rstrip("\r") for line in path.read_text(encoding="utf-8").split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def available_tatoeba_languages(data_dir: str | Path) -> list[str]:
    """ISO 639-3 codes of the complete `tatoeba.<xxx>-eng.*` pairs in `data_dir`."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"Tatoeba folder not found: {data_dir}")
    langs = {p.name.split(".")[1].removesuffix("-eng") for p in data_dir.glob("tatoeba.*-eng.eng")}
    return sorted(x for x in langs if (data_dir / f"tatoeba.{x}-eng.{x}").is_file())


def load_tatoeba(data_dir: str | Path, lang3: str) -> BitextPair:
    """Read the LASER pair `tatoeba.<lang3>-eng.<lang3>` / `tatoeba.<lang3>-eng.eng`.

    A line pair with an empty side is left out (a warning counts them); files of different
    lengths are a `SourceError` (their pairs would be misaligned).
    """
    data_dir = Path(data_dir)
    paths = [data_dir / f"tatoeba.{lang3}-eng.{side}" for side in (lang3, "eng")]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(
                f"Tatoeba file not found: {path} (expected LASER files tatoeba.{lang3}-eng.{lang3} "
                f"and tatoeba.{lang3}-eng.eng in {data_dir})"
            )
    source, english = (_read_lines(p) for p in paths)
    if len(source) != len(english):
        raise SourceError(f"{paths[0]} has {len(source)} lines but {paths[1]} has {len(english)}")
    defects: dict[int, str] = {}
    for path, side in zip(paths, (source, english)):
        for n, line in enumerate(side):
            if not line.strip():
                defects.setdefault(n, f"{path}:{n + 1}: empty line")
    _report_defects(f"tatoeba {lang3}-eng", "line pairs", [defects[n] for n in sorted(defects)], len(source))
    lines = [n for n in range(len(source)) if n not in defects]
    return BitextPair(_language_label(lang3), [source[n] for n in lines], [english[n] for n in lines], lang3, lines)


def _tatoeba_corpus(data_dir: str | Path, lang3: str, mixed: bool) -> EvalCorpus:
    pair = load_tatoeba(data_dir, lang3)
    prefix = f"tatoeba:{lang3}-eng"
    documents = [
        EvalDocument(f"{prefix}:eng:{i}", text, "en", {"pair": f"{lang3}-eng", "line": i})
        for i, text in zip(pair.lines, pair.english)
    ]
    if mixed:
        documents += [
            EvalDocument(f"{prefix}:{lang3}:{i}", text, pair.lang, {"pair": f"{lang3}-eng", "line": i})
            for i, text in zip(pair.lines, pair.source)
        ]
    queries = [EvalQuery(f"{prefix}:q:{i}", text, pair.lang) for i, text in zip(pair.lines, pair.source)]
    qrels = {q.id: {f"{prefix}:eng:{i}"} for i, q in zip(pair.lines, queries)}
    exclude = {q.id: {f"{prefix}:{lang3}:{i}"} for i, q in zip(pair.lines, queries)} if mixed else {}
    name = f"tatoeba-{'mixed' if mixed else 'english'}:{lang3}"
    logger.info("%s: %d documents, %d queries", name, len(documents), len(queries))
    return EvalCorpus(name, documents, queries, qrels, exclude)


def tatoeba_mixed_pool(data_dir: str | Path, lang3: str) -> EvalCorpus:
    """xx->en retrieval from a pool of both sides: every English and every xx sentence.

    Query i is xx sentence i; its answer is English sentence i. Its own xx sentence is in the
    pool, so `exclude` lists it (id `tatoeba:<xxx>-eng:<xxx>:<i>`); every other xx sentence
    stays a same-language distractor.
    """
    return _tatoeba_corpus(data_dir, lang3, mixed=True)


def tatoeba_english_only(data_dir: str | Path, lang3: str) -> EvalCorpus:
    """xx->en retrieval from the English side only (the classic LASER/LaBSE setting)."""
    return _tatoeba_corpus(data_dir, lang3, mixed=False)


def head_tatoeba(corpus: EvalCorpus, n: int) -> EvalCorpus:
    """The first `n` sentence pairs of a Tatoeba corpus (both sides of the pool)."""
    documents = [d for d in corpus.documents if int(d.metadata.get("line", 0)) < n]
    queries = [q for q in corpus.queries if int(q.id.rsplit(":", 1)[1]) < n]
    keep = {q.id for q in queries}
    return EvalCorpus(
        corpus.name,
        documents,
        queries,
        {q: r for q, r in corpus.qrels.items() if q in keep},
        {q: e for q, e in corpus.exclude.items() if q in keep},
    )


# --- XQuAD / XQuAD-R ----------------------------------------------------------------------


def _read_squad(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"SQuAD-format file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SourceError(f"{path}: not a SQuAD-format JSON file ({exc})") from exc


def _load_parallel(paths: Mapping[str, Path]) -> dict[str, list[dict[str, Any]]]:
    """Read one SQuAD file per language and check they share articles, paragraphs and qids."""
    data = {lang: _read_squad(path) for lang, path in paths.items()}
    shapes = {
        lang: [[[qa["id"] for qa in p["qas"]] for p in a["paragraphs"]] for a in articles]
        for lang, articles in data.items()
    }
    ref_lang = next(iter(data))
    for lang, shape in shapes.items():
        if shape != shapes[ref_lang]:
            raise SourceError(
                f"{paths[lang]} is not parallel to {paths[ref_lang]}: "
                "articles, paragraphs or question ids differ"
            )
    return data


def _positions(articles: list[dict[str, Any]], limit: int | None) -> Iterator[tuple[int, int]]:
    """(article, paragraph) indices in file order, at most `limit` of them."""
    count = 0
    for a, article in enumerate(articles):
        for p in range(len(article["paragraphs"])):
            if limit is not None and count >= limit:
                return
            count += 1
            yield a, p


def _unique(langs: Sequence[str]) -> list[str]:
    if isinstance(langs, str):
        raise TypeError(f"give languages as a list, e.g. [{langs!r}], not a string")
    if not langs:
        raise ValueError("at least one language is needed")
    return list(dict.fromkeys(langs))


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Defect(f"{what} is not a non-empty string")
    return value


def _questions(paragraph: dict[str, Any]) -> list[tuple[str, str]]:
    """(question id, question) of a paragraph; `_Defect` when a question is no text."""
    return [(qa["id"], _text(qa.get("question"), f"question {qa['id']}")) for qa in paragraph["qas"]]


def xquad_paragraph_pool(
    data_dir: str | Path,
    doc_languages: Sequence[str],
    query_languages: Sequence[str],
    limit: int | None = None,
) -> EvalCorpus:
    """Questions in `query_languages` against XQuAD paragraphs in `doc_languages`.

    Documents: every paragraph of `xquad.<lang>.json` per doc language, id
    `xquad:<lang>:<article>:<paragraph>`. Queries: every question per query language, id
    `<qid>:<lang>`. Relevant: the paragraph at the same position in every doc language.
    `limit` keeps the first `limit` paragraphs (and their questions). A paragraph of one
    language whose context or a question is not text is left out with its questions (a
    warning counts them); the same paragraph in the other languages stays.
    """
    doc_languages, query_languages = _unique(doc_languages), _unique(query_languages)
    langs = _unique(doc_languages + query_languages)
    data = _load_parallel({lang: Path(data_dir) / f"xquad.{lang}.json" for lang in langs})
    documents, queries, qrels, skipped, total = [], [], {}, [], 0
    for a, p in _positions(data[langs[0]], limit):
        records: dict[str, tuple[str, list[tuple[str, str]]]] = {}
        for lang in langs:
            total += 1
            paragraph = data[lang][a]["paragraphs"][p]
            try:
                records[lang] = (_text(paragraph.get("context"), "context"), _questions(paragraph))
            except _Defect as exc:
                skipped.append(f"xquad.{lang}.json article {a} paragraph {p}: {exc}")
        ids = {lang: f"xquad:{lang}:{a}:{p}" for lang in doc_languages if lang in records}
        for lang, doc_id in ids.items():
            meta = {"title": data[lang][a]["title"], "article": a, "paragraph": p}
            documents.append(EvalDocument(doc_id, records[lang][0], lang, meta))
        for lang in (x for x in query_languages if x in records and ids):
            for qid, question in records[lang][1]:
                queries.append(EvalQuery(f"{qid}:{lang}", question, lang))
                qrels[queries[-1].id] = set(ids.values())
    name = f"xquad-paragraphs:{'+'.join(query_languages)}->{'+'.join(doc_languages)}"
    _report_defects(name, "paragraph records", skipped, total)
    logger.info("%s: %d documents, %d queries", name, len(documents), len(queries))
    return EvalCorpus(name, documents, queries, qrels)


def xquad_unanswerable_pool(
    data_dir: str | Path,
    doc_languages: Sequence[str],
    query_languages: Sequence[str] | None = None,
    *,
    removed: float = 0.5,
    seed: int = 0,
    limit: int | None = None,
) -> EvalCorpus:
    """XQuAD paragraphs with a random share of paragraph positions removed in every language.

    `xquad_paragraph_pool`, then the paragraphs of `int(removed * n)` of its n positions
    (article, paragraph), drawn with ``numpy.random.default_rng(seed).choice(n, ..., replace=False)``
    over the positions in file order, are dropped in every document language: the questions
    about them have no answer in the collection, and their `qrels` entry is empty. Every
    question of the query languages (default: the document languages) is kept; its
    `metadata` holds `article`, `paragraph` and `answerable`. The same files, seed and share
    always remove the same positions (with seed 0 and 0.5, those of
    `benchmarks/relevance_study.py`).

    Raises:
        ValueError: `removed` outside [0, 1).
    """
    if not 0.0 <= removed < 1.0:
        raise ValueError(f"removed is the share of paragraph positions to remove, in [0, 1), got {removed}")
    query_languages = doc_languages if query_languages is None else query_languages
    pool = xquad_paragraph_pool(data_dir, doc_languages, query_languages, limit=limit)
    where = {d.id: (int(d.metadata["article"]), int(d.metadata["paragraph"])) for d in pool.documents}
    positions = sorted(set(where.values()))
    drawn = np.random.default_rng(seed).choice(len(positions), int(removed * len(positions)), replace=False)
    gone = {positions[i] for i in drawn.tolist()}
    queries, qrels = [], {}
    for q in pool.queries:
        a, p = where[next(iter(pool.qrels[q.id]))]
        queries.append(replace(q, metadata={"article": a, "paragraph": p, "answerable": (a, p) not in gone}))
        qrels[q.id] = set() if (a, p) in gone else set(pool.qrels[q.id])
    documents = [d for d in pool.documents if where[d.id] not in gone]
    name = (f"xquad-unanswerable:{'+'.join(_unique(query_languages))}->{'+'.join(_unique(doc_languages))}"
            f":removed={removed:g}:seed={seed}")
    logger.info("%s: %d of %d paragraph positions removed; %d documents, %d queries (%d answerable)",
                name, len(gone), len(positions), len(documents), len(queries), sum(bool(r) for r in qrels.values()))
    return EvalCorpus(name, documents, queries, qrels)


def _breaks_match(context: str, breaks: Any, sentences: Sequence[str]) -> bool:
    try:
        return len(breaks) == len(sentences) and all(context[s:e] == t for (s, e), t in zip(breaks, sentences))
    except (TypeError, ValueError):  # breaks that are no [start, end] pairs of integers
        return False


def _sentence_spans(paragraph: dict[str, Any]) -> tuple[list[tuple[int, int]], bool]:
    """[start, end) of each sentence in the context, and whether they had to be rebuilt.

    The published `sentence_breaks` when they cut the context into the `sentences`;
    otherwise each sentence is searched for in the context, in order (`_Defect` when one is
    not there, e.g. in a context with mojibake).
    """
    context = _text(paragraph.get("context"), "context")
    sentences = paragraph.get("sentences")
    if not isinstance(sentences, list) or not sentences:
        raise _Defect("no sentences")
    sentences = [_text(t, f"sentence {i}") for i, t in enumerate(sentences)]
    breaks = paragraph.get("sentence_breaks")
    if _breaks_match(context, breaks, sentences):
        return [(int(s), int(e)) for s, e in breaks], False
    spans, end = [], 0
    for i, sentence in enumerate(sentences):
        start = context.find(sentence, end)
        if start < 0:
            raise _Defect(f"sentence_breaks do not match the sentences, and sentence {i} is not in the context")
        end = start + len(sentence)
        spans.append((start, end))
    return spans, True


def _answer_sentence(spans: Sequence[tuple[int, int]], qa: dict[str, Any]) -> int:
    """Index of the sentence whose [start, end) span holds the first answer's `answer_start`."""
    try:
        answer_start = int(qa["answers"][0]["answer_start"])
    except (KeyError, IndexError, TypeError, ValueError):
        raise _Defect(f"question {qa['id']} has no answer_start") from None
    i = bisect_right([start for start, _ in spans], answer_start) - 1
    if i < 0 or answer_start >= spans[i][1]:
        raise _Defect(f"question {qa['id']}: answer_start {answer_start} lies in no sentence span")
    return i


def _xquad_r_record(
    article: dict[str, Any], a: int, p: int, lang: str
) -> tuple[list[EvalDocument], dict[str, str], list[tuple[str, str]], bool]:
    """One paragraph of one language: its sentences as documents, question id -> relevant
    sentence id, its questions, and whether its sentence spans were rebuilt."""
    paragraph = article["paragraphs"][p]
    spans, rebuilt = _sentence_spans(paragraph)
    questions = _questions(paragraph)
    answers = {qa["id"]: f"xquad-r:{lang}:{a}:{p}:{_answer_sentence(spans, qa)}" for qa in paragraph["qas"]}
    documents = [
        EvalDocument(f"xquad-r:{lang}:{a}:{p}:{s}", text, lang,
                     {"title": article["title"], "article": a, "paragraph": p, "sentence": s})
        for s, text in enumerate(paragraph["sentences"])
    ]
    return documents, answers, questions, rebuilt


def xquad_r_sentence_pool(
    data_dir: str | Path, languages: Sequence[str], limit: int | None = None
) -> EvalCorpus:
    """LAReQA XQuAD-R: every question in every language against all sentences of all languages.

    Documents: every sentence of every paragraph of `<lang>.json`, id
    `xquad-r:<lang>:<article>:<paragraph>:<sentence>` (text verbatim from `sentences`).
    Queries: every question per language, id `<qid>:<lang>`. Relevant: per language, the
    sentence whose span holds the answer's `answer_start`, so each query has one relevant
    sentence per language. `limit` keeps the first `limit` paragraphs.

    Published defects are tolerated, and a warning counts them: `sentence_breaks` that do
    not cut the context into the `sentences` (LAReQA's Turkish article 9 paragraph 3 is two
    characters off) are rebuilt by finding each sentence in the context; a paragraph of one
    language that still cannot be used (a sentence not in its context, an answer in no
    sentence) is left out with its questions, and its other languages stay.
    """
    languages = _unique(languages)
    data = _load_parallel({lang: Path(data_dir) / f"{lang}.json" for lang in languages})
    documents, queries, qrels, skipped, rebuilt, total = [], [], {}, [], [], 0
    for a, p in _positions(data[languages[0]], limit):
        relevant: dict[str, set[str]] = {}
        asked: dict[str, list[tuple[str, str]]] = {}
        for lang in languages:
            total += 1
            where = f"{lang}.json article {a} paragraph {p}"
            try:
                docs, answers, asked[lang], fixed = _xquad_r_record(data[lang][a], a, p, lang)
            except _Defect as exc:
                skipped.append(f"{where}: {exc}")
                continue
            documents += docs
            rebuilt += [where] if fixed else []
            for qid, doc_id in answers.items():
                relevant.setdefault(qid, set()).add(doc_id)
        for lang, questions in asked.items():
            for qid, question in questions:
                queries.append(EvalQuery(f"{qid}:{lang}", question, lang))
                qrels[queries[-1].id] = set(relevant[qid])
    name = f"xquad-r:{'+'.join(languages)}"
    if rebuilt:
        logger.warning("%s: sentence_breaks of %d record(s) did not match their sentences; rebuilt by finding "
                       "the sentences in the context: %s", name, len(rebuilt), "; ".join(rebuilt[:3]))
    _report_defects(name, "paragraph records", skipped, total)
    corpus = EvalCorpus(name, documents, queries, qrels)
    logger.info("%s: %s", corpus.name, corpus.counts())
    return corpus


# --- user data ----------------------------------------------------------------------------


def _nonblank_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                yield n, line.rstrip("\r\n")


def _json_object(path: str | Path, n: int, line: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise SourceError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _text_field(path: str | Path, n: int, obj: Mapping[str, Any], *keys: str) -> str:
    value = next((obj[k] for k in keys if k in obj), None)
    if not isinstance(value, str) or not value.strip():
        raise SourceError(f"{path}:{n}: {'/'.join(repr(k) for k in keys)} must be a non-empty string")
    return value


def _optional_id_and_language(path: str | Path, n: int, obj: Mapping[str, Any]) -> tuple[str, str | None]:
    qid, language = obj.get("id", f"q{n}"), obj.get("language")
    if not isinstance(qid, (str, int)) or isinstance(qid, bool) or str(qid) == "":
        raise SourceError(f"{path}:{n}: 'id' must be a non-empty string or an integer")
    if language is not None and (not isinstance(language, str) or not language):
        raise SourceError(f"{path}:{n}: 'language' must be a language code such as \"uk\"")
    return str(qid), language


def _check_new(path: str | Path, n: int, seen: set[str], key: str, what: str) -> None:
    if key in seen:
        raise SourceError(f"{path}:{n}: duplicate {what} {key!r}")
    seen.add(key)


def load_user_judgements(path: str | Path) -> list[Judgement]:
    """Read JSONL lines `{"query": str, "relevant": [str, ...], "id"?: str, "language"?: str}`.

    `relevant` entries (document ids or passage texts) are kept verbatim for the runner to
    resolve; a missing id becomes `q<line number>`. Blank lines are skipped.
    """
    judgements: list[Judgement] = []
    seen: set[str] = set()
    for n, line in _nonblank_lines(path):
        obj = _json_object(path, n, line)
        text = _text_field(path, n, obj, "query")
        relevant = obj.get("relevant")
        valid = isinstance(relevant, list) and all(isinstance(r, str) and r.strip() for r in relevant)
        if not (valid and relevant):
            raise SourceError(f"{path}:{n}: 'relevant' must be a non-empty list of non-empty strings")
        qid, language = _optional_id_and_language(path, n, obj)
        _check_new(path, n, seen, qid, "query id")
        judgements.append(Judgement(EvalQuery(qid, text, language), tuple(relevant)))
    return judgements


def load_trec_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """Read TREC qrels (`qid iteration docid relevance`) as {qid: {docid: relevance}}.

    Relevance 0 or below means judged not relevant; the metrics treat only > 0 as relevant.
    """
    qrels: dict[str, dict[str, int]] = {}
    for n, line in _nonblank_lines(path):
        fields = line.split()
        if len(fields) != 4:
            raise SourceError(
                f"{path}:{n}: expected 'qid iteration docid relevance', got {len(fields)} fields"
            )
        qid, _, docid, rel = fields
        try:
            grade = int(rel)
        except ValueError:
            raise SourceError(f"{path}:{n}: relevance {rel!r} is not an integer") from None
        if docid in qrels.setdefault(qid, {}):
            raise SourceError(f"{path}:{n}: duplicate judgement for query {qid!r}, document {docid!r}")
        qrels[qid][docid] = grade
    return qrels


def load_queries(path: str | Path) -> list[EvalQuery]:
    """Read queries for TREC qrels: `.jsonl` lines `{"id", "text" (or "query"), "language"?}`,
    any other file as TSV `qid<TAB>text[<TAB>language]`."""
    queries: list[EvalQuery] = []
    seen: set[str] = set()
    jsonl = Path(path).suffix == ".jsonl"
    for n, line in _nonblank_lines(path):
        if jsonl:
            obj = _json_object(path, n, line)
            if "id" not in obj:
                raise SourceError(f"{path}:{n}: missing 'id'")
            text = _text_field(path, n, obj, "text", "query")
            qid, language = _optional_id_and_language(path, n, obj)
        else:
            fields = line.split("\t")
            if len(fields) not in (2, 3) or not fields[0].strip() or not fields[1].strip():
                raise SourceError(f"{path}:{n}: expected 'qid<TAB>text[<TAB>language]'")
            qid, text = fields[0].strip(), fields[1]
            language = (fields[2].strip() or None) if len(fields) == 3 else None
        _check_new(path, n, seen, qid, "query id")
        queries.append(EvalQuery(qid, text, language))
    return queries
