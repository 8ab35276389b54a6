"""Reading documents from folders, files, raw strings and llama-index `Document`s."""

from __future__ import annotations

import errno
import fnmatch
import io
import json
import logging
import os
import stat
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
_RECORD_SEP = "#"
"""A JSON/JSONL record's document id is `<file's absolute path>#<record id>`."""
_FILE, _FOLDER, _MISSING = "file", "folder", "missing"
_LINKED_FOLDER = "symbolic link to a folder, not followed (name the folder itself to read it)"


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


def read_paths(
    paths: Iterable[str | Path],
    *,
    include: Sequence[str] = ("*",),
    exclude: Sequence[str] = (),
    text_field: str = "text",
    id_field: str = "id",
    max_file_mb: float | None = None,
) -> tuple[list[SourceDocument], list[Skipped]]:
    """Read files and folders (recursive), never stopping at a bad input.

    A folder's files are read when they have a supported suffix, match any `include` glob
    and no `exclude` glob (each matched against the path relative to the folder and the
    name); hidden files and folders are left out. What cannot be read is returned as
    `Skipped` with its reason, never dropped silently: files that fail `read_file`, folders
    that cannot be listed, symbolic link loops, broken links, links to folders (not
    followed), FIFOs and other special files.

    Raises:
        SourceError: a path that does not exist.
    """
    docs: list[SourceDocument] = []
    skipped: list[Skipped] = []
    for raw in paths:
        for entry, kind in _entries(raw, include, exclude):
            if kind != _FILE:
                skipped.append(_skip(entry, kind))
                continue
            try:
                docs.extend(read_file(entry, text_field=text_field, id_field=id_field, max_file_mb=max_file_mb))
            except SourceError as exc:
                skipped.append(_skip(entry.resolve(), str(exc)))
    return docs, skipped


def _entries(raw: str | Path, include: Sequence[str], exclude: Sequence[str]) -> Iterable[tuple[Path, str]]:
    """`(path, kind)` of a path given to `read_paths`: the entries of a folder, or itself."""
    path = Path(raw).expanduser()
    kind = _kind(path)
    if kind == _MISSING:
        raise SourceError(f"no such file or folder: {raw}")
    if kind in (_FOLDER, _LINKED_FOLDER):
        return _walk(path.resolve(), path.resolve(), include, exclude)
    return [(path.parent.resolve() / path.name, kind)]


def _walk(folder: Path, root: Path, include: Sequence[str], exclude: Sequence[str]) -> Iterator[tuple[Path, str]]:
    """`(path, kind)` of the entries under `folder` to read (`_FILE`) or to list as skipped
    (kind = the reason), depth first in name order."""
    try:
        with os.scandir(folder) as it:
            names = sorted(entry.name for entry in it)
    except OSError as exc:
        yield folder, f"cannot read folder: {exc.strerror or exc}"
        return
    for name in names:
        if name.startswith("."):
            continue
        path = folder / name
        kind = _kind(path)
        if kind == _MISSING:  # deleted since the folder was listed
            continue
        if kind == _FOLDER:
            yield from _walk(path, root, include, exclude)
        elif kind == _LINKED_FOLDER:
            if _wanted(path, root, include, exclude):
                yield path, kind
        elif path.suffix.lower() in SUPPORTED_SUFFIXES and _wanted(path, root, include, exclude):
            yield path, kind


def _kind(path: Path) -> str:
    """`_FILE`, `_FOLDER`, `_MISSING`, or why the entry can be read as neither."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "broken symbolic link (its target does not exist)" if os.path.islink(path) else _MISSING
    except OSError as exc:
        return "symbolic link loop" if exc.errno == errno.ELOOP else f"cannot read: {exc.strerror or exc}"
    if stat.S_ISDIR(mode):
        return _LINKED_FOLDER if os.path.islink(path) else _FOLDER
    if stat.S_ISREG(mode):
        return _FILE
    return "not a regular file (a FIFO, socket or device)"


def _wanted(path: Path, root: Path, include: Sequence[str], exclude: Sequence[str]) -> bool:
    names = (path.relative_to(root).as_posix(), path.name)
    return any(fnmatch.fnmatch(n, g) for n in names for g in include) and not any(fnmatch.fnmatch(n, g) for n in names for g in exclude)


def _skip(path: Path, reason: str) -> Skipped:
    logger.warning("skipping %s: %s", _printable(path), reason)
    return Skipped(_printable(path), reason)


def _printable(path: Path | str) -> str:
    """The path as text, bytes that are not UTF-8 written as `\\xNN`."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def read_file(
    path: Path, *, text_field: str = "text", id_field: str = "id", max_file_mb: float | None = None
) -> list[SourceDocument]:
    """Read one file into documents (JSON/JSONL files give one document per record).

    Raises:
        SourceError: the file cannot be read or holds no document (the reason is the message).
    """
    source = str(path.resolve())
    if source != _printable(source):
        raise SourceError("file name is not valid UTF-8; rename it (e.g. `convmv -f cp1251 -t utf-8 --notest FILE`)")
    data = _read_bytes(path, max_file_mb)
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return [_document(source, source, _read_pdf(data), {"file_name": path.name})]
    text = _decode(data)
    if suffix in HTML_SUFFIXES:
        text = html_to_text(text)
    elif suffix in {".json", ".jsonl", ".ndjson"}:
        try:
            return _read_records(path, source, text, text_field, id_field)
        except RecursionError:
            raise SourceError("JSON nested too deeply; at most a few hundred levels can be read") from None
    return [_document(source, source, text, {"file_name": path.name})]


def _read_bytes(path: Path, max_file_mb: float | None) -> bytes:
    try:
        size = path.stat().st_size
        if max_file_mb is not None and size > max_file_mb * 2**20:
            raise SourceError(
                f"{size / 2**20:.1f} MB, over the max_file_mb limit of {max_file_mb:g} MB "
                "(raise it with BABELRANK_MAX_FILE_MB)"
            )
        return path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read file: {exc.strerror or exc}") from None


def vanished(
    stored: Mapping[str, str], roots: Sequence[Path], docs: Sequence[SourceDocument], skipped: Sequence[Skipped]
) -> list[str]:
    """Ids of the stored documents that a `read_paths` of `roots` shows are gone (for prune).

    A file's documents are the file itself, or for JSON/JSONL its records. A stored document
    (`{doc_id: source}`) from a file at or under a root is gone when its file was not read
    (deleted, or no longer matching the globs), or when its file was read and no longer holds
    it (a record removed, or whose text is now empty). A file or folder that could not be
    read (in `skipped`) is no evidence of anything: its documents stay, all of them.
    """
    read_ids = {d.doc_id for d in docs}
    read_sources = {d.source for d in docs}
    root_paths = [str(r.resolve()) for r in roots]
    kept = [s.source for s in skipped]
    return [
        doc_id for doc_id, source in stored.items()
        if doc_id not in read_ids and _under(source, root_paths) and not _under(source, kept)
        and (source not in read_sources or doc_id.startswith(source + _RECORD_SEP))
    ]


def _under(path: str, folders: Iterable[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


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
        docs.append(_document(f"{source}{_RECORD_SEP}{rid}", source, record[text_field], meta))
    if not docs:
        raise SourceError(f"no records with text in field {text_field!r}")
    return docs


def _read_pdf(data: bytes) -> str:
    try:
        from pypdf import PdfReader
    except ImportError:
        raise SourceError("reading PDF needs pypdf: pip install 'babelrank[pdf]'") from None
    try:
        reader = PdfReader(io.BytesIO(data))
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
