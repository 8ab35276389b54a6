"""An `EvalCorpus` from the user's own documents and judgements (`babelrank eval judgements`).

The documents are read as `babelrank ingest` reads them; their language is left to the
pipeline's detection. Each relevant entry of a judgement names documents: by full id, by path
relative to a given folder or to the working directory, by file name, by JSON record id, or (a
passage text) every document that contains it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from babelrank.errors import ConfigError, SourceError
from babelrank.evaluation.datasets import EvalCorpus, EvalDocument, EvalQuery, Judgement
from babelrank.ingest.sources import SourceDocument, read_paths
from babelrank.models.language import UNDETERMINED

logger = logging.getLogger(__name__)


def documents_from_sources(docs: Sequence[SourceDocument]) -> list[EvalDocument]:
    """User documents as eval documents; their language is unknown ("und") until the
    pipeline detects it (the runner then uses the detected language)."""
    return [
        EvalDocument(d.doc_id, d.text, UNDETERMINED, {**dict(d.metadata), "source": d.source}) for d in docs
    ]


def _normalise_space(text: str) -> str:
    return " ".join(text.split())


def user_corpus(
    doc_paths: Sequence[str | Path],
    *,
    judgements: Sequence[Judgement] | None = None,
    queries: Sequence[EvalQuery] | None = None,
    qrels: Mapping[str, Mapping[str, int]] | None = None,
    text_field: str = "text",
    name: str = "judgements",
) -> EvalCorpus:
    """An `EvalCorpus` from the user's own documents and judgements.

    Documents are read like `babelrank ingest` reads them (files and folders; a JSON/JSONL
    record is one document). Give either `judgements` (`load_user_judgements`: each relevant
    entry is a document id or a passage text) or `queries` + TREC `qrels` (document ids).

    A document is named by its full id (`/abs/path/file.txt`, `/abs/path/data.jsonl#7`), its
    path relative to a given folder or to the working directory, its file name, or (JSON
    records) its record id, each as long as it names one document. A passage text names every
    document that contains it (whitespace-insensitive).

    Args:
        doc_paths: files and folders of the documents.
        judgements: queries with their relevant entries (`load_user_judgements`).
        queries: queries of TREC `qrels` (`load_queries`); only judged queries are asked.
        qrels: graded judgements by query id and document name (`load_trec_qrels`).
        text_field: the text field of JSON/JSONL records.
        name: the corpus name.

    Returns:
        The corpus; its documents' language is "und" until the pipeline detects it.

    Raises:
        ConfigError: neither or both of `judgements` and `queries` + `qrels`, or a name that
            matches several documents.
        SourceError: no readable document, or a relevant entry that names no document.
    """
    if (judgements is None) == (queries is None or qrels is None):
        raise ConfigError("give either judgements, or queries together with qrels")
    paths = [Path(p).expanduser() for p in doc_paths]
    sources, skipped = read_paths(paths, text_field=text_field)
    for s in skipped:
        logger.warning("not evaluated: %s (%s)", s.source, s.reason)
    if not sources:
        raise SourceError(f"no readable documents in {', '.join(map(str, doc_paths))}")
    docs = documents_from_sources(sources)
    resolve = _resolver(sources, [p.resolve() for p in paths if p.is_dir()])
    if judgements is not None:
        return EvalCorpus(name, docs, [j.query for j in judgements], _judged_entries(judgements, docs, resolve))
    assert queries is not None and qrels is not None
    graded = _graded_qrels(queries, qrels, resolve)
    asked = [q for q in queries if q.id in graded]
    if len(asked) < len(queries):
        logger.warning("%d queries have no judgements; not asked", len(queries) - len(asked))
    return EvalCorpus(name, docs, asked, graded)  # type: ignore[arg-type]


def _judged_entries(
    judgements: Sequence[Judgement], docs: Sequence[EvalDocument], resolve: Callable[[str], set[str]]
) -> dict[str, set[str]]:
    """Relevant document ids of each judged query: its entries as document names, else as
    passages (`SourceError` for an entry that is neither)."""
    normalised = [(d.id, _normalise_space(d.text)) for d in docs]
    table: dict[str, set[str]] = {}
    for j in judgements:
        relevant: set[str] = set()
        for entry in j.relevant:
            found = resolve(entry)
            if not found:
                needle = _normalise_space(entry)
                found = {doc for doc, text in normalised if needle and needle in text}
            if not found:
                raise SourceError(
                    f"query {j.query.id!r}: relevant entry {entry[:80]!r} is neither a document id "
                    "nor a passage found in any document"
                )
            relevant |= found
        table[j.query.id] = relevant
    return table


def _graded_qrels(
    queries: Sequence[EvalQuery], qrels: Mapping[str, Mapping[str, int]], resolve: Callable[[str], set[str]]
) -> dict[str, dict[str, int]]:
    """TREC judgements of the known queries by document id (judged queries not among the
    queries are left out with a warning)."""
    known = {q.id for q in queries}
    unknown = sorted(set(qrels) - known)
    if unknown:
        logger.warning("%d judged queries are not in the queries file (e.g. %s); left out", len(unknown), unknown[:3])
    return {qid: _graded_row(qid, judged, resolve) for qid, judged in qrels.items() if qid in known}


def _graded_row(qid: str, judged: Mapping[str, int], resolve: Callable[[str], set[str]]) -> dict[str, int]:
    """One query's grades by document id; a document that is not there may only be judged not
    relevant, and a name must name one document (`SourceError`)."""
    row: dict[str, int] = {}
    for docid, grade in judged.items():
        found = resolve(docid)
        if not found:
            if grade > 0:
                raise SourceError(f"qrels: query {qid!r} names document {docid!r}, which is not among the documents")
            continue
        if len(found) > 1:
            raise SourceError(f"qrels: document {docid!r} of query {qid!r} names {len(found)} documents; use a full id")
        row[next(iter(found))] = grade
    return row


def _resolver(docs: Sequence[SourceDocument], roots: Sequence[Path]) -> Callable[[str], set[str]]:
    """name -> the ids of the documents it names: a full id, a path relative to one of `roots`
    or to the working directory, a file name, or a JSON record id (`ConfigError` when a name
    other than a full id names several documents)."""
    aliases: dict[str, set[str]] = {}
    cwd = Path.cwd()
    for d in docs:
        ids = {d.doc_id}
        suffix = d.doc_id[len(d.source):] if d.doc_id.startswith(d.source) else ""
        source = Path(d.source)
        names = {source.name}
        for root in (*roots, cwd):
            try:
                names.add(source.relative_to(root).as_posix())
            except ValueError:
                pass
        ids |= {n + suffix for n in names}
        if suffix.startswith("#"):
            ids.add(suffix[1:])
        for alias in ids:
            aliases.setdefault(alias, set()).add(d.doc_id)
    exact = {d.doc_id for d in docs}

    def resolve(name: str) -> set[str]:
        if name in exact:
            return {name}
        found = aliases.get(name, set())
        if len(found) > 1:
            raise ConfigError(f"{name!r} names {len(found)} documents ({sorted(found)[:3]}...); use a full id")
        return set(found)

    return resolve
