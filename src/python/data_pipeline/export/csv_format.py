"""Silver rows as RFC 4180 CSV: the silver keys as header, tags joined with '|'."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from typing import IO, Any, Final

import orjson

from data_pipeline.silver.schema import SILVER_FIELDS

TAG_SEPARATOR: Final = "|"
HEADER: Final = SILVER_FIELDS


def join_tags(tags: Sequence[str]) -> str:
    """Tags joined with '|', escaping '\\' and '|' inside a tag with a backslash:
    `["a|b", "c"]` is `a\\|b|c`."""
    return TAG_SEPARATOR.join(
        tag.replace("\\", "\\\\").replace(TAG_SEPARATOR, "\\" + TAG_SEPARATOR) for tag in tags
    )


def split_tags(cell: str) -> list[str]:
    """The inverse of join_tags (an empty cell is no tags)."""
    if not cell:
        return []
    tags, current, chars = [], [], iter(cell)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == TAG_SEPARATOR:
            tags.append("".join(current))
            current = []
        else:
            current.append(char)
    tags.append("".join(current))
    return tags


def csv_cells(row: Mapping[str, Any]) -> list[str]:
    """The CSV cells of one silver row, in HEADER order."""
    cells = []
    for name in HEADER:
        value = row.get(name)
        if value is None:
            cells.append("")
        elif name == "tags":
            cells.append(join_tags(value))
        else:
            cells.append(str(value))
    return cells


class CsvWriter:
    """Writes the header, then one record per silver row (JSON bytes), to a text file opened
    with newline="".

    Cells: null is an empty cell; numbers are written as in the NDJSON (Python's shortest
    repr); tags are joined by join_tags. The NDJSON artifact is the lossless one: in CSV, `[]`
    and `[""]` both give an empty cell. Quoting is minimal (fields holding `,`, `"`, CR or LF
    are quoted, quotes doubled), records end with CRLF, the encoding is UTF-8 without a BOM.
    """

    def __init__(self, file: IO[str]) -> None:
        self._writer = csv.writer(file, dialect="excel", lineterminator="\r\n")
        self._writer.writerow(HEADER)
        self.rows = 0

    def write(self, silver: bytes) -> None:
        """Append one silver row."""
        self._writer.writerow(csv_cells(orjson.loads(silver)))
        self.rows += 1
