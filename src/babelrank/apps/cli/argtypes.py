"""argparse types of the command line: language codes, counts and probabilities, checked with the
bounds the HTTP API uses for the same options."""

from __future__ import annotations

import argparse
from typing import Callable

from babelrank.models.language import parse_language_code, parse_language_codes


def languages_arg(value: str) -> list[str]:
    """argparse type: a comma-separated list of language codes."""
    try:
        return parse_language_codes([value]) or []
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def language_arg(value: str) -> str:
    """argparse type: one language code."""
    try:
        return parse_language_code(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def probability_arg(value: str) -> float:
    """argparse type: a probability in [0, 1]."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {number}")
    return number


def relevance_arg(value: str) -> float | None:
    """argparse type: a probability in [0, 1], or ``none`` (keep every result)."""
    return None if value.strip().lower() == "none" else probability_arg(value)


def count_arg(most: int) -> Callable[[str], int]:
    """argparse type: an integer from 1 to `most` (the HTTP API's bounds of the same option)."""
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
        if not 1 <= number <= most:
            raise argparse.ArgumentTypeError(f"must be between 1 and {most}, got {number}")
        return number

    return parse
