"""Validation of Chroma `where` filters (one function for the CLI and the HTTP API)."""

from __future__ import annotations

from typing import Any

import pytest

from babelrank.errors import FilterError
from babelrank.query.filters import validate_where


@pytest.mark.parametrize("where", [
    {"topic": "places"},
    {"topic": "places", "year": 2024},  # several fields: all must match
    {"flag": True},
    {"score": {"$gte": 0.5}},
    {"language": {"$in": ["uk", "ru"]}},
    {"language": {"$nin": ["en"]}},
    {"topic": {"$ne": "food"}},
    {"$and": [{"topic": "places"}, {"language": "uk"}]},
    {"$or": [{"topic": "places"}, {"$and": [{"year": {"$lt": 2000}}, {"language": {"$eq": "ru"}}]}]},
])
def test_valid_filters_pass_unchanged(where: dict[str, Any]) -> None:
    assert validate_where(where) == where


def test_no_filter() -> None:
    assert validate_where(None) is None
    assert validate_where({}) is None


@pytest.mark.parametrize("where, fragments", [
    (["topic", "places"], ["must be a JSON object", "list"]),
    ("places", ["must be a JSON object", "str"]),
    ({"$in": "ru"}, ["'$in'", "$and or $or", '{"field": {"$in": [...]}}']),
    ({"language": {"$in": "ru"}}, ["language", "$in", "non-empty list", 'got "ru"']),
    ({"language": {"$in": []}}, ["language", "$in", "non-empty list"]),
    ({"language": {"$in": ["ru", 1]}}, ["language", "$in", "same type"]),
    ({"language": {"$in": [["ru"]]}}, ["language", "$in", "str, int, float or bool"]),
    ({"language": ["uk", "ru"]}, ["language", '{"$in": [...]}']),
    ({"topic": None}, ["topic", "null"]),
    ({"topic": {"$bogus": 1}}, ["topic", "unknown operator '$bogus'", "$eq"]),
    ({"topic": {"place": "x"}}, ["topic", "unknown operator 'place'"]),
    ({"topic": {}}, ["topic", "exactly one operator"]),
    ({"topic": {"$eq": 1, "$ne": 2}}, ["topic", "exactly one operator", "$and"]),
    ({"year": {"$gt": "2000"}}, ["year", "$gt", "number"]),
    ({"year": {"$lte": True}}, ["year", "$lte", "number"]),
    ({"topic": {"$eq": {"a": 1}}}, ["topic", "$eq", "str, int, float or bool"]),
    ({"$and": {"topic": "x"}}, ["$and", "list of at least two"]),
    ({"$or": [{"topic": "x"}]}, ["$or", "list of at least two"]),
    ({"$or": [{"topic": "x"}, "y"]}, ["$or[1]", "must be a JSON object"]),
    ({"$and": [{"topic": "x"}, {"a": 1, "b": 2}]}, ["$and[1]", "exactly one field or operator"]),
    ({"$and": [{"topic": "x"}, {"y": 1}], "topic": "z"}, ["'$and'", "only key"]),
    ({"$not": [{"topic": "x"}]}, ["'$not'"]),
    ({"": "x"}, ["field name", "empty"]),
])
def test_malformed_filters_say_what_is_wrong(where: Any, fragments: list[str]) -> None:
    with pytest.raises(FilterError) as caught:
        validate_where(where)
    message = str(caught.value)
    assert message.startswith("invalid where filter: ")
    for fragment in fragments:
        assert fragment in message, message
    assert isinstance(caught.value, ValueError)  # callers map it to 422 / exit code 2
