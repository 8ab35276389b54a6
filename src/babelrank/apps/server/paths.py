"""Server file paths in answers: with a token they are hidden by default (`ServerSettings.shows_paths`),
leaving the file name of ids and sources and the last folder name of store and model folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def hide_folders(value: str) -> str:
    """`value` without the folders of the absolute path it starts with (ids and sources of files):
    ``/srv/docs/notes.jsonl#market::0::3f2a`` -> ``notes.jsonl#market::0::3f2a``."""
    if not os.path.isabs(value):
        return value
    end = min((i for i in (value.find("#"), value.find("::")) if i >= 0), default=len(value))
    return Path(value[:end]).name + value[end:]


def result_without_folders(result: dict[str, Any]) -> dict[str, Any]:
    """A result (`babelrank.schema.result_dict`) whose id, doc_id, source and alternates' ids hide their folders."""
    out = {**result, **{k: hide_folders(result[k]) for k in ("id", "doc_id", "source") if isinstance(result.get(k), str)}}
    out["alternates"] = [{**a, "id": hide_folders(a["id"])} for a in result.get("alternates") or []]
    return out
