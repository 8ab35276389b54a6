"""What ``babelrank eval`` and ``compare`` print: markdown tables of a report's metrics, or
the report as JSON (``--json``; also written to a file with ``--output``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

#: metrics shown in the markdown tables, in order
TABLE_METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "map@20", "same_language@10", "queries")
#: columns of the answerability table (``eval xquad-unanswerable``), in order
ANSWERABILITY_COLUMNS = ("answerable", "unanswerable", "auroc", "auroc_retrieval_score", "kept", "refused", "ece",
                         "hit@1", "hit@10")


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def markdown_table(rows: dict[str, dict[str, Any]], columns: Sequence[str]) -> str:
    """A markdown table: one row per key of `rows`, the given columns (missing ones left out)."""
    cols = [c for c in columns if any(c in r for r in rows.values())]
    lines = ["| | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def emit(result: dict[str, Any], markdown: str, *, as_json: bool, path: Path | None) -> int:
    """Print a command's result (as JSON, else its markdown) and write the JSON to `path`.

    Args:
        result: the result; NaN and infinities are written as null.
        markdown: the same result as markdown.
        as_json: print the JSON instead of the markdown (``--json``).
        path: also write the JSON to this file (``--output``); None = no file.

    Returns:
        The exit code (0).
    """
    text = json.dumps(_clean(result), ensure_ascii=False, indent=2)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    print(text if as_json else markdown)
    return 0


def header(result: dict[str, Any]) -> str:
    """The first line of a report: benchmark, model, reranker and neutral scoring."""
    parts = [f"**{result.get('corpus') or result.get('benchmark')}**", f"model `{result['model']}`",
             f"reranker `{result['reranker']}`", f"neutral {result['neutral']}"]
    if "neutral_active" in result:
        parts[-1] += " (active)" if result["neutral_active"] else " (inactive)"
    return " · ".join(parts)


def _spread_line(spread: dict[str, Any]) -> str:
    return (f"{spread['metric']} across query languages: worst {spread['worst']} {spread['worst_value']:.3f}, "
            f"best {spread['best']} {spread['best_value']:.3f}, worst/best {spread['worst_to_best']:.2f}")


def _latency_line(latency: dict[str, dict[str, float]]) -> str:
    return "latency ms (p50/p95): " + ", ".join(f"{s} {v['p50']:.1f}/{v['p95']:.1f}" for s, v in latency.items())


def report_text(result: dict[str, Any]) -> str:
    """One run's report (`EvalReport.as_dict`) as markdown: a header, one table row per query
    language and one for all, the spread across languages, latency and ingest figures."""
    rows = _language_rows(result)
    lines = [
        header(result),
        "",
        markdown_table(rows, TABLE_METRICS),
        "",
        *([_spread_line(result["language_spread"])] if "language_spread" in result else []),
        _latency_line(result["latency_ms"]),
        _ingest_line(result["ingest"]),
    ]
    return "\n".join(lines)


def _language_rows(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One table row per query language and one for all (the report's top-level figures)."""
    return {**result["per_language"], "all": {k: v for k, v in result.items() if not isinstance(v, dict)}}


def _ingest_line(ingest: dict[str, Any]) -> str:
    return (f"ingest: {ingest['documents']} documents, {ingest['chunks']} chunks, {ingest['chunks_embedded']} embedded"
            + (f" ({ingest['chunks_per_s']} chunks/s)" if ingest.get("chunks_per_s") else ""))


def answerability_text(result: dict[str, Any]) -> str:
    """An answerability report (``eval xquad-unanswerable``) as markdown: a header, one row per
    query language and one for all, the same per article split, latency and ingest figures."""
    rows = _language_rows(result)
    split_rows = {f"{lang} · {name}": figures for name, split in result["splits"].items()
                  for lang, figures in {**split["per_language"], "all": split["all"]}.items()}
    removed = (f"{result['positions_removed']} of {result['positions']} paragraph positions removed "
               f"(share {result['removed']}, seed {result['seed']})") if result.get("positions") else "no positions"
    lines = [
        header(result),
        "",
        f"{removed} · min_relevance {result['min_relevance']} · top {result['k']} results",
        "",
        markdown_table(rows, ANSWERABILITY_COLUMNS),
        *(["", markdown_table(split_rows, ANSWERABILITY_COLUMNS)] if split_rows else []),
        "",
        _latency_line(result["latency_ms"]),
        _ingest_line(result["ingest"]),
    ]
    return "\n".join(lines)
