"""NDJSON bodies of silver and dead-letter objects."""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from etl_core.model import DeadLetter


def join_lines(lines: Iterable[bytes]) -> bytes:
    """One object per line, each line newline-terminated (b"" for no lines)."""
    body = b"\n".join(lines)
    return body + b"\n" if body else b""


def dead_letter_line(dead_letter: DeadLetter, run_id: str | None = None) -> bytes:
    """{"reason", "source", "raw"} plus run_id and detail when known."""
    row: dict[str, str] = {
        "reason": dead_letter.reason,
        "source": dead_letter.source,
        "raw": dead_letter.raw,
    }
    run = run_id if run_id is not None else dead_letter.run_id
    if run is not None:
        row["run_id"] = run
    if dead_letter.detail is not None:
        row["detail"] = dead_letter.detail
    return orjson.dumps(row)


def dead_letters_ndjson(dead_letters: Iterable[DeadLetter], run_id: str | None = None) -> bytes:
    """NDJSON body of dead-letter rows."""
    return join_lines(dead_letter_line(row, run_id) for row in dead_letters)
