"""Metadata filters (Chroma ``where``): checked, built and read here only.

`validate_where` checks a user's filter, `build_where` joins it with a language list into the
filter the store gets, and `language_filter` reads a filter back as a test of a chunk's
language (so neutral search can apply a language-only filter to its in-memory scan exactly as
Chroma would).

The CLI (``--where``) and the HTTP API (``"where"``) both call `validate_where`, so a malformed
filter is refused with the same message everywhere (exit code 2, HTTP 422) instead of failing
deep in the query path or silently matching nothing.

The grammar is Chroma's, with one convenience: the top level may hold several fields, all of
which must match (babelrank joins them with ``$and``)::

    where      := {}  |  {field: condition, ...}  |  {"$and" | "$or": [expression, expression, ...]}
    expression := {field: condition}  |  {"$and" | "$or": [expression, expression, ...]}
    condition  := scalar  |  {operator: operand}
    scalar     := str | int | float | bool
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, NoReturn, Sequence

from babelrank.errors import FilterError

LOGICAL = ("$and", "$or")
SCALAR_OPERATORS = ("$eq", "$ne", "$contains", "$not_contains")
NUMBER_OPERATORS = ("$gt", "$gte", "$lt", "$lte")
LIST_OPERATORS = ("$in", "$nin")
OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$contains", "$not_contains")
_SCALARS = (str, int, float, bool)
_SCALAR_NAMES = "a str, int, float or bool"


def validate_where(where: Any) -> dict[str, Any] | None:
    """Check a ``where`` filter; return it as a dict, or None when it is empty or None.

    Raises:
        FilterError: the filter is malformed; the message says where and how to write it.
    """
    if where is None:
        return None
    if not isinstance(where, Mapping):
        _fail(f"must be a JSON object such as {{\"topic\": \"places\"}}, got {_kind(where)}")
    if not where:
        return None
    logical = [key for key in where if key in LOGICAL]
    if logical and len(where) > 1:
        _fail(f"'{logical[0]}' must be the only key of its object; put the other conditions inside its list")
    for key, value in where.items():
        _check_entry(str(key), value, str(key))
    return dict(where)


def _check_expression(expression: Any, path: str) -> None:
    """One element of a ``$and``/``$or`` list: exactly one field or logical operator."""
    if not isinstance(expression, Mapping):
        _fail(f"'{path}': must be a JSON object such as {{\"topic\": \"places\"}}, got {_kind(expression)}")
    if len(expression) != 1:
        _fail(f"'{path}': a condition inside $and/$or holds exactly one field or operator, got "
              f"{len(expression)} keys; give each its own condition")
    key, value = next(iter(expression.items()))
    _check_entry(str(key), value, f"{path}.{key}")


def _check_entry(key: str, value: Any, path: str) -> None:
    if key in LOGICAL:
        if not isinstance(value, list) or len(value) < 2:
            _fail(f"'{path}' needs a list of at least two conditions, got {_show(value)}")
        for i, expression in enumerate(value):
            _check_expression(expression, f"{path}[{i}]")
    elif key.startswith("$"):
        operand = "[...]" if key in LIST_OPERATORS else "..."
        hint = f"; write {{\"field\": {{\"{key}\": {operand}}}}}" if key in OPERATORS else ""
        _fail(f"'{key}' is not a field name, and only $and or $or may combine conditions{hint}")
    elif not key:
        _fail("a field name must not be empty")
    else:
        _check_condition(key, value, path)


def _check_condition(field: str, value: Any, path: str) -> None:
    if value is None:
        _fail(f"'{path}': null is not a value you can filter on (metadata holds no nulls)")
    if isinstance(value, list):
        _fail(f"'{path}': a list is not a value; to match any of several write {{\"{field}\": {{\"$in\": [...]}}}}")
    if isinstance(value, _SCALARS):
        return
    if not isinstance(value, Mapping):
        _fail(f"'{path}': expected {_SCALAR_NAMES} or an operator object, got {_kind(value)}")
    if len(value) != 1:
        _fail(f"'{path}': an operator object needs exactly one operator, e.g. {{\"$eq\": \"x\"}}, got "
              f"{_show(value)}; combine several with {{\"$and\": [{{\"{field}\": ...}}, {{\"{field}\": ...}}]}}")
    operator, operand = next(iter(value.items()))
    _check_operand(str(operator), operand, path)


def _check_operand(operator: str, operand: Any, path: str) -> None:
    where = f"'{path}': '{operator}'"
    if operator in LIST_OPERATORS:
        if not isinstance(operand, list) or not operand:
            _fail(f"{where} needs a non-empty list, e.g. {{\"{operator}\": [\"a\", \"b\"]}}, got {_show(operand)}")
        if not all(isinstance(v, _SCALARS) for v in operand):
            _fail(f"{where} values must each be {_SCALAR_NAMES}, got {_show(operand)}")
        if len({type(v) for v in operand}) > 1:
            _fail(f"{where} needs values of the same type, got {_show(operand)}")
    elif operator in NUMBER_OPERATORS:
        if isinstance(operand, bool) or not isinstance(operand, (int, float)):
            _fail(f"{where} compares numbers, got {_show(operand)}")
    elif operator in SCALAR_OPERATORS:
        if not isinstance(operand, _SCALARS):
            _fail(f"{where} needs {_SCALAR_NAMES}, got {_show(operand)}")
    else:
        _fail(f"'{path}': unknown operator '{operator}'; use one of {', '.join(OPERATORS)}")


def _fail(message: str) -> NoReturn:
    raise FilterError(f"invalid where filter: {message}")


def _kind(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def _show(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def build_where(languages: Sequence[str] | None, where: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The Chroma `where` filter of a query: its languages and its metadata filter, all to match.

    Args:
        languages: chunk languages to keep (any of them); None or empty keeps all.
        where: a metadata filter (see `validate_where`); several top-level fields are joined
            with ``$and``.

    Returns:
        One filter, or None when there is nothing to filter on.
    """
    clauses: list[dict[str, Any]] = []
    if languages:
        clauses.append({"language": {"$in": list(languages)}})
    if where and any(k.startswith("$") for k in where):
        clauses.append(dict(where))
    elif where:
        clauses.extend({k: v} for k, v in where.items())
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


_LANGUAGE_TESTS: dict[str, Callable[[str, Any], bool]] = {
    "$eq": lambda lang, v: lang == v,
    "$ne": lambda lang, v: lang != v,
    "$in": lambda lang, v: lang in v,
    "$nin": lambda lang, v: lang not in v,
}


def language_filter(where: Mapping[str, Any]) -> Callable[[str], bool] | None:
    """A test of a chunk's language tag equivalent to `where`, when `where` constrains nothing
    but the `language` key; None when it constrains anything else.

    Covers every form Chroma accepts for a field (`{"language": "ru"}`, `$eq`, `$ne`, `$in`,
    `$nin`) and `$and`/`$or` of such clauses, so language-only filters can be applied to an
    in-memory scan exactly as Chroma would apply them.
    """
    if len(where) != 1:
        return None
    (key, value), = where.items()
    if key in ("$and", "$or") and isinstance(value, list):
        tests = [language_filter(c) if isinstance(c, Mapping) else None for c in value]
        if not tests or any(t is None for t in tests):
            return None
        combine = all if key == "$and" else any
        return lambda lang: combine(t(lang) for t in tests)  # type: ignore[misc]
    if key != "language":
        return None
    if not isinstance(value, Mapping):
        return lambda lang: lang == value
    if len(value) != 1 or next(iter(value)) not in _LANGUAGE_TESTS:
        return None
    (op, operand), = value.items()
    test = _LANGUAGE_TESTS[op]
    return lambda lang: test(lang, operand)


def with_language(language: str, where: Mapping[str, Any] | None) -> dict[str, Any]:
    """`where` narrowed to chunks in one language (a filter of that language when `where` is None)."""
    clause: dict[str, Any] = {"language": language}
    return {"$and": [clause, dict(where)]} if where else clause
