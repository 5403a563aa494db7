"""Bronze -> silver for one file: a pure function a job can run per file in worker processes."""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from itertools import repeat
from typing import Any

import attrs
from etl_core.model import DeadLetter

from data_pipeline.agencies import Agency
from data_pipeline.layout import partition_of, relative_to_bronze
from data_pipeline.validate import Rejected, ValidRow, agency_infos, validate_line

_GZIP_MAGIC = b"\x1f\x8b"
_BLANK = b" \t\r\n"


@attrs.frozen
class FileResult:
    """What one bronze file yields: valid rows for dedupe, dead letters, and its counts."""

    source: str  # the key relative to bronze/, as dead-letter rows name it
    dt: str  # the file's partition date, which every silver row from it carries
    rows_in: int  # non-blank lines
    bytes_in: int  # stored bytes (compressed if gzip)
    valid_rows: tuple[ValidRow, ...]
    dead_letters: tuple[DeadLetter, ...]

    def __reduce__(self) -> tuple[Any, ...]:
        # Results cross from worker processes to the one parent: sent column by column, rows
        # pickle about twice as fast as a tuple of row objects.
        columns = tuple(zip(*self.valid_rows, strict=True))
        fields = (self.source, self.dt, self.rows_in, self.bytes_in, columns, self.dead_letters)
        return _unpickle_file_result, fields


def _unpickle_file_result(
    source: str,
    dt: str,
    rows_in: int,
    bytes_in: int,
    columns: tuple[tuple[Any, ...], ...],
    dead_letters: tuple[DeadLetter, ...],
) -> FileResult:
    # tuple.__new__ builds each row in C; ValidRow(...) would run a Python __new__ per row.
    rows = tuple(map(tuple.__new__, repeat(ValidRow), zip(*columns, strict=True)))
    return FileResult(source, dt, rows_in, bytes_in, rows, dead_letters)


def decompress(body: bytes) -> bytes:
    """The NDJSON text of a bronze object, gunzipped when it is gzip (by magic, not by name)."""
    return gzip.decompress(body) if body[:2] == _GZIP_MAGIC else body


def transform_file(source_key: str, body: bytes, agencies: Mapping[int, Agency]) -> FileResult:
    """Validate and normalise every non-blank line of one bronze object (plain or gzip).

    source_key is the object key (bronze/agency_id=<id>/dt=<day>/part-<n>.ndjson[.gz]); its dt
    is the silver rows' dt. Raises DataError when the key names no partition.
    """
    _, day = partition_of(source_key)
    source = relative_to_bronze(source_key)
    infos = agency_infos(agencies)
    valid: list[ValidRow] = []
    dead: list[DeadLetter] = []
    rows_in = 0
    for line_no, line in enumerate(decompress(body).split(b"\n"), start=1):
        if line[:1] != b"{" and not line.strip(_BLANK):
            continue
        rows_in += 1
        outcome = validate_line(line, line_no, day, infos)
        if isinstance(outcome, Rejected):
            dead.append(_dead_letter(source, line_no, line, outcome))
        else:
            valid.append(outcome)
    return FileResult(source, day, rows_in, len(body), tuple(valid), tuple(dead))


def _dead_letter(source: str, line_no: int, line: bytes, rejected: Rejected) -> DeadLetter:
    detail = f"{source}:{line_no}: {rejected.reason}"
    if rejected.value:
        detail += f" {rejected.value[:200]}"
    raw = line.decode("utf-8", errors="replace")
    return DeadLetter(reason=rejected.reason, source=source, raw=raw, detail=detail, line=line_no)
