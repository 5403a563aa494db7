"""Bronze -> silver for one file: pure functions a job can run per file in worker processes.

transform_batch is the hot path (columnar: data_pipeline.columnar decides the rows it can,
validate.validate_line the rest); transform_file is the per-row reference, whose rows are
ValidRow tuples (records.py and the agency export fold those).
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Iterator, Mapping, Sequence
from itertools import repeat
from typing import Any

import attrs
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from etl_core.model import DeadLetter

from data_pipeline.agencies import Agency
from data_pipeline.columnar import validate_objects
from data_pipeline.layout import partition_of, relative_to_bronze
from data_pipeline.silver_arrow import VALID_SCHEMA, valid_table
from data_pipeline.validate import AgencyInfo, Rejected, ValidRow, agency_infos, validate_line

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


@attrs.frozen
class FileBatch:
    """What one bronze file yields, column by column: its valid rows (VALID_SCHEMA), its dead
    letters and its counts."""

    source: str  # the key relative to bronze/, as dead-letter and silver rows name it
    dt: str  # the file's partition date, which every silver row from it carries
    rows_in: int  # non-blank lines
    bytes_in: int  # stored bytes (compressed if gzip)
    valid: pa.Table
    dead_letters: tuple[DeadLetter, ...]

    def valid_keys(self) -> Iterator[tuple[str, int, int]]:
        """(record_id, updated_at in epoch microseconds, line) of every valid row."""
        columns = (self.valid[name].to_pylist() for name in ("record_id", "_updated_us", "_line"))
        return zip(*columns, strict=True)


def transform_batch(
    source_key: str, body: bytes, agencies: Mapping[int, Agency], agency_id: int | None = None
) -> FileBatch:
    """transform_file's outcome, column by column. With agency_id, a valid row naming another
    agency becomes a dead letter of reason AGENCY_MISMATCH (a one-agency run writes only its own).
    """
    _, day = partition_of(source_key)
    source = relative_to_bronze(source_key)
    infos = agency_infos(agencies)
    lines = decompress(body).split(b"\n")
    numbers = [n for n, line in enumerate(lines, 1) if line[:1] == b"{" or line.strip(_BLANK)]
    kept = [lines[n - 1] for n in numbers] if len(numbers) != len(lines) else lines
    table, accepted = _validate_columns(_parse(kept), infos)
    line_numbers = pa.array(numbers, pa.int64())
    table = table.append_column("_line", pc.take(line_numbers, table["_index"])).drop_columns(
        "_index"
    )
    table = table.append_column("dt", pa.repeat(dt.date.fromisoformat(day), table.num_rows))
    rows: list[ValidRow] = []
    dead: list[DeadLetter] = []
    for index in pc.indices_nonzero(pc.invert(accepted)).to_pylist():
        outcome = validate_line(kept[index], numbers[index], day, infos)
        if isinstance(outcome, Rejected):
            dead.append(_dead_letter(source, numbers[index], kept[index], outcome))
        else:
            rows.append(outcome)
    valid = table.select(VALID_SCHEMA.names).cast(VALID_SCHEMA)
    if rows:
        checked = valid_table(
            [row.silver for row in rows],
            [row.updated_us for row in rows],
            [row.line_no for row in rows],
            day,
        )
        valid = pa.concat_tables([valid, checked])
    batch = FileBatch(source, day, len(numbers), len(body), valid, tuple(dead))
    return batch if agency_id is None else _own_agency(batch, lines, agency_id)


def _parse(lines: Sequence[bytes]) -> list[Any]:
    """orjson's value of each line; None where orjson refuses it (validate_line decides those)."""
    try:
        return list(map(orjson.loads, lines))
    except orjson.JSONDecodeError:
        return [_loads(line) for line in lines]


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def _validate_columns(objects: list[Any], infos: Mapping[int, AgencyInfo]) -> Any:
    ids = sorted(infos)
    return validate_objects(
        objects,
        ids,
        [infos[i].name for i in ids],
        [infos[i].state for i in ids],
        {i: infos[i].zone for i in ids},
    )


AGENCY_MISMATCH = "agency_mismatch"
"""A valid row whose agency_id names another agency than the file's path: a one-agency run must
not write another agency's partition, so the row is dead-lettered (never generated)."""


def _own_agency(batch: FileBatch, lines: Sequence[bytes], agency_id: int) -> FileBatch:
    own = pc.equal(batch.valid["agency_id"], agency_id)
    if pc.all(own).as_py():
        return batch
    others = batch.valid.filter(pc.invert(own))
    dead = [
        DeadLetter(
            reason=AGENCY_MISMATCH,
            source=batch.source,
            raw=lines[line - 1].decode("utf-8", errors="replace"),
            detail=f"{batch.source}:{line}: {AGENCY_MISMATCH} {other}",
            line=line,
        )
        for line, other in zip(
            others["_line"].to_pylist(), others["agency_id"].to_pylist(), strict=True
        )
    ]
    return attrs.evolve(
        batch, valid=batch.valid.filter(own), dead_letters=batch.dead_letters + tuple(dead)
    )


def _dead_letter(source: str, line_no: int, line: bytes, rejected: Rejected) -> DeadLetter:
    detail = f"{source}:{line_no}: {rejected.reason}"
    if rejected.value:
        detail += f" {rejected.value[:200]}"
    raw = line.decode("utf-8", errors="replace")
    return DeadLetter(reason=rejected.reason, source=source, raw=raw, detail=detail, line=line_no)
