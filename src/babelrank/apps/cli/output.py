"""What the commands print: plain-text tables of ingest reports, search results and
collection statistics (the ``--json`` forms are written by the commands themselves)."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Sequence

PROG = "babelrank"
"""The program's name, as usage and error messages show it."""


def format_table(rows: Sequence[Sequence[Any]], headers: Sequence[str] | None = None, align: str = "") -> str:
    """A plain-text table.

    Args:
        rows: the cells of each row (None shows as ``-``, floats with 3 decimals).
        headers: column titles, underlined; None = no header.
        align: ``l`` or ``r`` per column; a column left out is right-aligned when all its
            cells are numbers.

    Returns:
        The table's lines joined by newlines ("" without rows and headers).
    """
    body = [[_cell(c) for c in row] for row in rows]
    all_rows = ([list(headers)] if headers else []) + body
    if not all_rows:
        return ""
    ncols = max(len(r) for r in all_rows)
    widths = [max(len(r[i]) if i < len(r) else 0 for r in all_rows) for i in range(ncols)]
    numeric = [all(_is_number(r[i]) for r in body if i < len(r)) and bool(body) for i in range(ncols)]
    lines = []
    for n, row in enumerate(all_rows):
        cells = []
        for i in range(ncols):
            text = row[i] if i < len(row) else ""
            right = (align[i] == "r") if i < len(align) else numeric[i]
            cells.append(text.rjust(widths[i]) if right else text.ljust(widths[i]))
        lines.append("  ".join(cells).rstrip())
        if headers and n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text == "-"
    return True


def shorten(text: str, width: int, left: bool = False) -> str:
    """`text` on one line, cut to `width` characters with an ellipsis (at the start when `left`)."""
    text = " ".join(str(text).split())
    if len(text) <= width:
        return text
    return ("…" + text[-(width - 1):]) if left else (text[: width - 1] + "…")


def display_source(source: str) -> str:
    """A source path relative to the working folder when it lies below it, else as given."""
    try:
        rel = os.path.relpath(source)
    except ValueError:
        return source
    return rel if not rel.startswith("..") else source


def ingest_text(report: Any, where: str) -> str:
    """An `IngestReport` (ingested into `where`) as a table of counts, and the skipped inputs."""
    languages = ", ".join(f"{lang} {n}" for lang, n in report.languages.most_common()) or "-"
    rows = [
        ("documents", report.documents),
        ("added", report.added),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
        ("deleted", report.deleted),
        ("chunks written", report.chunks_written),
        ("chunks embedded", report.chunks_embedded),
        ("chunks deleted", report.chunks_deleted),
    ]
    if report.truncated:
        rows.append(("chunks truncated", report.truncated))
    rows += [("languages (chunks)", languages), ("seconds", f"{report.seconds:.2f}")]
    text = f"Ingested into {where}\n" + format_table(rows, align="lr")
    if report.skipped:
        skipped = [(display_source(s.source), s.reason) for s in report.skipped]
        text += f"\n\nSkipped {len(report.skipped)} input(s):\n" + format_table(skipped, ("file", "reason"), align="ll")
    return text


def empty_result_text(answerable: bool | None) -> str:
    """The one line ``query`` prints when no result is left."""
    if answerable is False:
        return "No answer here: no chunk of the collection reaches min_relevance."
    return "No results."


def results_table(nodes: Sequence[Any]) -> str:
    """Search results (llama-index ``NodeWithScore``) as a table that fits the terminal's width:
    rank, scores, relevance (when the collection has a relevance calibration), language, merged
    translations, source and a snippet (headers only without results)."""
    reranked = any(n.node.metadata.get("rerank_score") is not None for n in nodes)
    rated = any("relevance" in n.node.metadata for n in nodes)
    merged = any(n.node.metadata.get("alternates") for n in nodes)
    rows = []
    for rank, node in enumerate(nodes, 1):
        meta = node.node.metadata
        scores = [node.score, meta.get("retrieval_score")] if reranked else [node.score]
        also = [",".join(a["language"] for a in meta.get("alternates") or []) or "-"] if merged else []
        rows.append([rank, *scores, *([meta.get("relevance")] if rated else []), meta.get("language"), *also,
                     shorten(_result_source(meta), 32, left=True), node.node.get_content()])
    headers = ["#", "rerank", "retrieval"] if reranked else ["#", "score"]
    headers += ["relevance"] if rated else []
    headers += ["lang", "also"] if merged else ["lang"]
    headers += ["source", "snippet"]
    align = "r" * (len(headers) - 3 - merged) + "l" * (3 + merged)
    fixed = len(format_table([r[:-1] for r in rows], headers[:-1], align=align).splitlines()[0]) + 2
    width = max(30, shutil.get_terminal_size((120, 24)).columns - fixed)
    for row in rows:
        row[-1] = shorten(row[-1], width)
    return format_table(rows, headers, align=align)


def _result_source(meta: dict[str, Any]) -> str:
    """A result's source as shown: the file (or record id) and the chunk number of a long document."""
    source, doc_id = str(meta.get("source", "")), str(meta.get("doc_id", ""))
    source = display_source(doc_id if doc_id.startswith(source + "#") else source)
    if meta.get("chunk_count", 1) not in (1, None) or meta.get("chunk_index"):
        source += f" #{meta.get('chunk_index')}"
    return source


INFO_KEYS = ("collection", "physical_collection", "store", "model", "dimension", "query_prompt", "document_prompt",
             "chunk_tokens", "rerank_model", "backend", "language_backend", "documents", "chunks")
"""The statistics `info_text` shows first, in this order."""


def info_text(info: dict[str, Any], documents: dict[str, str] | None = None) -> str:
    """Collection statistics (`BabelIndex.info`) as tables: settings and counts, chunks per
    language with their calibration, and the documents when given."""
    rows = [(k.replace("_", " "), repr(info[k]) if "prompt" in k else info[k]) for k in INFO_KEYS if k in info]
    for k, v in info.items():
        if k in INFO_KEYS or k == "languages":
            continue
        if k == "neutral" and isinstance(v, dict):
            v = f"{v.get('mode')} ({'active' if v.get('active') else 'inactive'})"
        elif isinstance(v, (dict, list)):
            v = json.dumps(v, ensure_ascii=False, default=str)
        rows.append((k.replace("_", " ") + (" scoring" if k == "neutral" else ""), v))
    parts = [format_table(rows, align="ll")]
    languages = info.get("languages") or {}
    if languages:
        calibration = (info.get("neutral") or {}).get("calibration") or {}

        def centroid(lang: str) -> str:
            c = calibration.get(lang) or {}
            return f"yes (norm {c['centroid_norm']})" if c.get("centroid") else "no (collection mean)"

        by_size = sorted(languages.items(), key=lambda kv: -kv[1])
        parts.append("\nChunks per language and language-neutral calibration:\n"
                     + format_table([(lang, n, centroid(lang)) for lang, n in by_size],
                                    ("language", "chunks", "centroid"), align="lrl"))
    if documents is not None:
        parts.append(f"\nDocuments ({len(documents)}):\n"
                     + (format_table(sorted(documents.items()), ("doc_id", "source"), align="ll") if documents else "(none)"))
    return "\n".join(parts)
