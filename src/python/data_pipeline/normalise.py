"""Field normalisers of the silver row: numbers, badge, officer name and tags (WORKLOAD.md)."""

from __future__ import annotations

import math
import re
from typing import Final

from data_pipeline.silver_schema import WHITESPACE

# A plain decimal number: what "is a number" means for lat/lon/amount text. Deliberately narrower
# than float(): no "nan"/"inf", no "1_000", no non-ASCII digits.
_DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WHITESPACE_RUN: Final = re.compile(r"[ \t\r\n]+")


def number_from_text(text: str) -> float | None:
    """The finite float a decimal string spells, else None. The caller trims first."""
    if _DECIMAL.fullmatch(text) is None:
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def number_from_json(value: object) -> float | None:
    """A JSON number (int or float, not bool) as a finite float, else None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return None
    return None


def coordinate(value: object) -> float | None:
    """lat/lon: a JSON number or a decimal string after trim, else None."""
    if isinstance(value, str):
        return number_from_text(value.strip(WHITESPACE))
    return number_from_json(value)


def badge(value: object) -> str | None:
    """Trimmed, leading zeros stripped, all-zero (or empty) => "0"; non-string => None."""
    if not isinstance(value, str):
        return None
    return value.strip(WHITESPACE).lstrip("0") or "0"


def _name_part(part: str) -> str | None:
    collapsed = _WHITESPACE_RUN.sub(" ", part.strip(WHITESPACE))
    return collapsed.lower().title() if collapsed else None


def officer_name(value: object) -> tuple[str | None, str | None]:
    """(last, first) of "LAST, FIRST": split at the first comma, trim, collapse, title-case."""
    if not isinstance(value, str):
        return None, None
    last, comma, first = value.partition(",")
    return _name_part(last), (_name_part(first) if comma else None)


def tags(value: object) -> list[str]:
    """Each string element trimmed and lower-cased, order and duplicates kept; else []."""
    if not isinstance(value, list):
        return []
    return [tag.strip(WHITESPACE).lower() for tag in value if isinstance(tag, str)]
