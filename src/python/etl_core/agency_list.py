"""The `--agencies 1,2,3` flag of the jobs that take several agencies (backfill, maintain): the
flag, its value's problems and the agencies a job's settings name."""

from __future__ import annotations

import argparse
from collections.abc import Iterator


def add_agencies_argument(parser: argparse.ArgumentParser, *, help: str) -> None:
    """Add --agencies 1,2,3 (settings field `agencies`, a str; unset: None)."""
    parser.add_argument("--agencies", metavar="1,2,3", help=help)


def parse_agencies(text: str) -> tuple[int, ...] | None:
    """Sorted distinct ids of `1,2,3`; None if any item is not a non-negative integer."""
    items = [item.strip() for item in text.split(",")]
    if not all(item.isascii() and item.isdigit() for item in items):
        return None
    return tuple(sorted({int(item) for item in items}))


def agencies_problems(agencies: str | None) -> Iterator[tuple[str, str]]:
    """The (field, problem) of an `agencies` setting that names no agency ids."""
    if agencies is not None and parse_agencies(agencies) is None:
        yield "agencies", f"expected agency ids like 1,2,3, got {agencies!r}"


def agency_ids(agency_id: int | None, agencies: str | None) -> tuple[int, ...] | None:
    """The agencies --agency-id N or --agencies 1,2,3 name; None if neither does."""
    if agency_id is not None:
        return (agency_id,)
    return None if agencies is None else parse_agencies(agencies)
