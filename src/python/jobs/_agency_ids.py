"""The `--agencies 1,2,3` flag value of the jobs that take several agencies (backfill, maintain)."""

from __future__ import annotations


def parse_agencies(text: str) -> tuple[int, ...] | None:
    """Sorted distinct ids of `1,2,3`; None if any item is not a non-negative integer."""
    items = [item.strip() for item in text.split(",")]
    if not all(item.isascii() and item.isdigit() for item in items):
        return None
    return tuple(sorted({int(item) for item in items}))
