"""Reading documents from folders, files, raw strings and llama-index `Document`s."""

from __future__ import annotations

import fnmatch
import json
import logging
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from babelrank.errors import SourceError

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".text"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".json", ".jsonl", ".ndjson", ".pdf"}
_METADATA_TYPES = (str, int, float, bool)


@dataclass(frozen=True)
class SourceDocument:
    """One document to ingest. `doc_id` is its stable identity across runs."""

    doc_id: str
    text: str
    source: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """An input that was not ingested, and why."""

    source: str
    reason: str


def iter_files(root: Path, include: Sequence[str] = ("*",), exclude: Sequence[str] = ()) -> Iterator[Path]:
    """Supported files under `root` (recursive), matching any `include` and no `exclude` glob."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            continue
        if not any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(path.name, g) for g in include):
            continue
        if any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(path.name, g) for g in exclude):
            continue
        yield path


def read_paths(
    paths: Iterable[str | Path],
    *,
    include: Sequence[str] = ("*",),
    exclude: Sequence[str] = (),
    text_field: str = "text",
    id_field: str = "id",
) -> tuple[list[SourceDocument], list[Skipped]]:
    """Read files and folders. Unreadable inputs are returned as `Skipped`, never dropped silently."""
    docs: list[SourceDocument] = []
    skipped: list[Skipped] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            files: Iterable[Path] = iter_files(path, include, exclude)
        elif path.is_file():
            files = [path]
        else:
            raise SourceError(f"no such file or folder: {raw}")
        for file in files:
            try:
                docs.extend(read_file(file, text_field=text_field, id_field=id_field))
            except SourceError as exc:
                logger.warning("skipping %s: %s", file, exc)
                skipped.append(Skipped(str(file.resolve()), str(exc)))
    return docs, skipped


def read_file(path: Path, *, text_field: str = "text", id_field: str = "id") -> list[SourceDocument]:
    """Read one file into documents (JSON/JSONL files give one document per record)."""
    source = str(path.resolve())
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return [_document(source, source, _read_pdf(path), {"file_name": path.name})]
    text = _decode(path.read_bytes())
    if suffix in HTML_SUFFIXES:
        text = html_to_text(text)
    elif suffix in {".json", ".jsonl", ".ndjson"}:
        return _read_records(path, source, text, text_field, id_field)
    return [_document(source, source, text, {"file_name": path.name})]


def _document(doc_id: str, source: str, text: str, metadata: Mapping[str, Any]) -> SourceDocument:
    if not text.strip():
        raise SourceError("empty document (no text)")
    return SourceDocument(doc_id, text, source, clean_metadata(metadata))


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise SourceError("binary file (contains NUL bytes); only text, HTML, JSON and PDF are read")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "convert the file to UTF-8, e.g. `iconv -f cp1251 -t utf-8`"
        ) from None


def _read_records(path: Path, source: str, text: str, text_field: str, id_field: str) -> list[SourceDocument]:
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SourceError(f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
        records = data if isinstance(data, list) else [data]
        numbered = list(enumerate(records))
    else:
        numbered = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    numbered.append((n, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise SourceError(f"invalid JSON on line {n}: {exc.msg}") from None
    docs = []
    for n, record in numbered:
        if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
            raise SourceError(f"record {n} has no string field {text_field!r}")
        rid = record.get(id_field, n)
        meta = {k: v for k, v in record.items() if k not in (text_field,)}
        meta["file_name"] = path.name
        if not record[text_field].strip():
            logger.warning("%s: record %s has empty %r; skipped", path, rid, text_field)
            continue
        docs.append(_document(f"{source}#{rid}", source, record[text_field], meta))
    if not docs:
        raise SourceError(f"no records with text in field {text_field!r}")
    return docs


def _read_pdf(path: Path) -> str:
    try:
        from pypdf import PdfReader
    except ImportError:
        raise SourceError("reading PDF needs pypdf: pip install 'babelrank[pdf]'") from None
    try:
        reader = PdfReader(str(path))
        return "\n\n".join((page.extract_text() or "") for page in reader.pages)
    except Exception as exc:  # pypdf raises many types on damaged files
        raise SourceError(f"unreadable PDF: {exc}") from None


class _TextExtractor(HTMLParser):
    _SKIP = {"script", "style", "noscript", "template", "head"}
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre", "blockquote", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML page, paragraphs separated by blank lines."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    paragraphs = (" ".join(p.split()) for p in "".join(parser.parts).split("\n\n"))
    return "\n\n".join(p for p in paragraphs if p)


def clean_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata Chroma can store: scalars kept, None dropped, anything else as JSON text."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if value is None:
            continue
        out[str(key)] = value if isinstance(value, _METADATA_TYPES) else json.dumps(value, ensure_ascii=False, default=str)
    return out


def from_texts(
    texts: Sequence[str], ids: Sequence[str] | None = None, metadata: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None
) -> list[SourceDocument]:
    """Documents from raw strings; ids default to a hash of the text."""
    import hashlib

    if ids is not None and len(ids) != len(texts):
        raise SourceError(f"got {len(texts)} texts but {len(ids)} ids")
    metas = metadata if isinstance(metadata, Sequence) else [metadata or {}] * len(texts)
    if len(metas) != len(texts):
        raise SourceError(f"got {len(texts)} texts but {len(metas)} metadata entries")
    docs = []
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise SourceError(f"text {i} is empty")
        doc_id = ids[i] if ids is not None else "text:" + hashlib.sha256(text.encode()).hexdigest()[:16]
        docs.append(SourceDocument(doc_id, text, "text", clean_metadata(metas[i])))
    return docs


def from_llama_documents(documents: Iterable[Any]) -> list[SourceDocument]:
    """Documents from llama-index `Document`s (their `doc_id` is kept)."""
    docs = []
    for d in documents:
        text = d.get_content()
        if not text.strip():
            raise SourceError(f"document {d.doc_id} is empty")
        meta = clean_metadata(d.metadata)
        docs.append(SourceDocument(d.doc_id, text, str(meta.get("file_path", meta.get("source", "document"))), meta))
    return docs
