"""Field normalisers of the silver row: numbers, badge, officer name and tags (WORKLOAD.md)."""

from __future__ import annotations

import math
import re
from typing import Final

from data_pipeline.silver.schema import WHITESPACE

_WHITESPACE_RUN: Final = re.compile(r"[ \t\r\n]+")
_CACHE_LIMIT: Final = 50_000  # memo tables are cleared past this, bounding hostile input
_names: dict[str, tuple[str | None, str | None]] = {}


def number_from_text(text: str) -> float | None:
    """The finite float a plain decimal string spells (`[+-]?(d+[.d*]|.d+)([eE][+-]?d+)?`, ASCII
    digits), else None. The caller trims first. Narrower than float(): no "nan"/"inf", no
    "1_000", no non-ASCII digits, no surrounding control whitespace."""
    try:
        value = float(text)
    except ValueError:
        return None
    # float() accepted it; refuse what it accepts beyond the plain decimal form.
    if value - value != 0.0 or "_" in text or not text.isascii():  # nan/inf; 1_0; Unicode
        return None
    if text[0] <= " " or text[-1] <= " ":  # ASCII control whitespace float() would skip
        return None
    return value


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


def enum_value(value: object, allowed: frozenset[str], known: dict[str, str]) -> str | None:
    """lower(trim(value)) when it is one of allowed, else None; known memoises raw -> value."""
    if not isinstance(value, str):
        return None
    normal = known.get(value)
    if normal is None:
        normal = value.strip(WHITESPACE).lower()
        if normal not in allowed:
            return None
        if len(known) >= _CACHE_LIMIT:
            known.clear()
        known[value] = normal
    return normal


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
    part = part.strip(WHITESPACE)
    if "  " in part or "\t" in part or "\r" in part or "\n" in part:
        part = _WHITESPACE_RUN.sub(" ", part)
    return part.lower().title() if part else None


def officer_name(value: object) -> tuple[str | None, str | None]:
    """(last, first) of "LAST, FIRST": split at the first comma, trim, collapse, title-case."""
    if not isinstance(value, str):
        return None, None
    cached = _names.get(value)  # officers recur across records; names are worth remembering
    if cached is None:
        last, comma, first = value.partition(",")
        cached = _name_part(last), (_name_part(first) if comma else None)
        if len(_names) >= _CACHE_LIMIT:
            _names.clear()
        _names[value] = cached
    return cached


def tags(value: object) -> list[str]:
    """Each string element trimmed and lower-cased, order and duplicates kept; else []."""
    if not isinstance(value, list) or not value:
        return []
    return [tag.strip(WHITESPACE).lower() for tag in value if isinstance(tag, str)]
