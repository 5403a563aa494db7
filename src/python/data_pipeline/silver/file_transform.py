"""Bronze -> silver for one file: pure functions a job can run per file in worker processes.

transform_batch is the hot path (columnar: data_pipeline.silver.columnar decides the rows it can,
validate.validate_line the rest); transform_file is the per-row reference, whose rows are
ValidRow tuples (records.py and the agency export fold those).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from typing import Any

import attrs
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from etl_core.model import DeadLetter

from data_pipeline.silver import native_scan
from data_pipeline.silver.agencies import Agency
from data_pipeline.silver.arrow import VALID_SCHEMA, valid_table
from data_pipeline.silver.bronze_body import UnreadableFile, decompress
from data_pipeline.silver.columnar import validate_fields
from data_pipeline.silver.field_columns import FieldColumns, ObjectFields
from data_pipeline.silver.native_rows import rows_table
from data_pipeline.silver.reasons import DeadLetterReason
from data_pipeline.silver.schema import RECORD_TYPES, STATUSES
from data_pipeline.silver.validate import (
    AgencyInfo,
    Rejected,
    ValidRow,
    agency_infos,
    validate_line,
)
from data_pipeline.store.layout import partition_of, relative_to_bronze

_BLANK = b" \t\r\n"
_PYTHON_PATH = re.compile(re.escape(bytes([native_scan.PYTHON_PATH])))
KERNEL_MIN_ROWS = 128
"""A file's lines the scanner leaves go through the columnar kernels only from this many: the
kernels cost ~4 ms a file whatever its rows (~170 calls), the reference ~15 us a line."""


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


def transform_file(source_key: str, body: bytes, agencies: Mapping[int, Agency]) -> FileResult:
    """Validate and normalise every non-blank line of one bronze object (plain or gzip).

    source_key is the object key (bronze/agency_id=<id>/dt=<day>/part-<n>.ndjson[.gz]); its dt
    is the silver rows' dt. Raises DataError when the key names no partition, UnreadableFile
    (naming the key) when the body is broken gzip.
    """
    _, day = partition_of(source_key)
    source = relative_to_bronze(source_key)
    try:
        text = decompress(body)
    except UnreadableFile as exc:
        raise UnreadableFile(f"{source_key}: {exc}") from None
    infos = agency_infos(agencies)
    valid: list[ValidRow] = []
    dead: list[DeadLetter] = []
    rows_in = 0
    for line_no, line in enumerate(text.split(b"\n"), start=1):
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
    source_key: str,
    body: bytes,
    agencies: Mapping[int, Agency],
    agency_id: int | None = None,
    *,
    etag: str | None = None,
) -> FileBatch:
    """transform_file's outcome, column by column. With agency_id, a valid row naming another
    agency becomes a dead letter of reason agency_mismatch (a one-agency run writes only its own).
    A body that cannot be read at all is one file-level dead letter (unreadable_batch).
    """
    _, day = partition_of(source_key)
    source = relative_to_bronze(source_key)
    try:
        text = decompress(body)
    except UnreadableFile as exc:
        return unreadable_batch(source, day, len(body), etag, str(exc))
    infos = agency_infos(agencies)
    parts: list[pa.Table] = []
    undecided: list[int] = []  # numbers of the lines validate_line decides
    vocabulary = _vocabulary(infos)
    scanned = native_scan.scan(text, vocabulary.ids, RECORD_TYPES, STATUSES)
    line: Callable[[int], bytes]
    if scanned is not None:  # the lines it finished straight into columns, the rest as before
        v = vocabulary
        table, handed_back = rows_table(
            scanned.rows, v.ids, v.names, v.states, v.zones, RECORD_TYPES, STATUSES
        )
        parts.append(table)
        undecided += handed_back.to_pylist()
        status = scanned.status
        rows_in = len(status) - status.count(native_scan.BLANK)
        others = [match.start() + 1 for match in _PYTHON_PATH.finditer(status)]
        line = scanned.line
    else:
        lines = text.split(b"\n")
        others = [n for n, raw in enumerate(lines, 1) if raw[:1] == b"{" or raw.strip(_BLANK)]
        rows_in = len(others)
        line = functools.partial(_line_of, lines)
    if len(others) < KERNEL_MIN_ROWS:  # the kernels' fixed cost is more than the reference's
        undecided += others
    elif others:
        with _cycle_collection_paused():
            values = _parse([line(n) for n in others])
            table, accepted = _validate_columns(ObjectFields.of(values), vocabulary)
        line_numbers = pa.array(others, pa.int64())
        parts.append(_numbered(table, line_numbers))
        undecided += _rejected(accepted, line_numbers)
    table = pa.concat_tables(parts) if len(parts) > 1 else parts[0] if parts else None
    rows: list[ValidRow] = []
    dead: list[DeadLetter] = []
    for number in sorted(undecided):
        outcome = validate_line(line(number), number, day, infos)
        if isinstance(outcome, Rejected):
            dead.append(_dead_letter(source, number, line(number), outcome))
        else:
            rows.append(outcome)
    if table is None:
        valid = VALID_SCHEMA.empty_table()
    else:
        table = table.append_column("dt", pa.repeat(dt.date.fromisoformat(day), table.num_rows))
        valid = table.select(VALID_SCHEMA.names).cast(VALID_SCHEMA)
    if rows:
        checked = valid_table(
            [row.silver for row in rows],
            [row.updated_us for row in rows],
            [row.line_no for row in rows],
            day,
        )
        valid = pa.concat_tables([valid, checked])
    batch = FileBatch(source, day, rows_in, len(body), valid, tuple(dead))
    return batch if agency_id is None else _own_agency(batch, line, agency_id)


@contextlib.contextmanager
def _cycle_collection_paused() -> Iterator[None]:
    """No cyclic garbage collection while a file's parsed lines are alive: they are ~4 containers
    a row, none in a cycle, and collections walking them cost ~10% of a transform. Refcounting
    still frees everything. The switch is the process's: it is turned back on only if it was on
    (of two transforms in threads at once, the first to pause resumes it)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _numbered(table: pa.Table, line_numbers: pa.Array) -> pa.Table:
    """table's `_index` (into line_numbers) replaced by `_line`, the row's line number."""
    lines = pc.take(line_numbers, table["_index"])
    return table.append_column("_line", lines).drop_columns("_index")


def _rejected(accepted: pa.Array, line_numbers: pa.Array) -> list[int]:
    """The line numbers of the rows the kernels did not accept."""
    rejected: list[int] = pc.take(line_numbers, pc.indices_nonzero(pc.invert(accepted))).to_pylist()
    return rejected


def _parse(lines: Iterable[bytes]) -> list[Any]:
    """orjson's value of each line; None where orjson refuses it (validate_line decides those).

    Lines are parsed by map in C; a refused line stops the map after the values before it were
    appended, so it is marked None and the map goes on from the next line.
    """
    values: list[Any] = []
    remaining = iter(lines)
    while True:
        try:
            values.extend(map(orjson.loads, remaining))
        except orjson.JSONDecodeError:
            values.append(None)
        else:
            return values


def _line_of(lines: Sequence[bytes], number: int) -> bytes:
    return lines[number - 1]


@attrs.frozen
class _Vocabulary:
    """The agencies of agencies.csv side by side, in id order."""

    ids: list[int]
    names: list[str]
    states: list[str]
    zones: dict[int, dt.tzinfo]


def _vocabulary(infos: Mapping[int, AgencyInfo]) -> _Vocabulary:
    ids = sorted(infos)
    return _Vocabulary(
        ids,
        [infos[i].name for i in ids],
        [infos[i].state for i in ids],
        {i: infos[i].zone for i in ids},
    )


def _validate_columns(fields: FieldColumns, vocabulary: _Vocabulary) -> tuple[pa.Table, pa.Array]:
    v = vocabulary
    return validate_fields(fields, v.ids, v.names, v.states, v.zones)


def unreadable_batch(
    source: str, day: str, bytes_in: int, etag: str | None, error: str
) -> FileBatch:
    """The FileBatch of a file that cannot be read: it counts as one input row and one dead
    letter (its lines are unknown), so rows_in = out + duplicate + dead-letter still holds and
    the dead-letter table holds exactly the rows the counts name. Fixing the file in bronze gives
    it a new etag, and the next run reads it again (the fold ledger sees it changed: a rebuild).
    """
    detail = (
        f"{source}: {DeadLetterReason.UNREADABLE_FILE} (etag {etag}, {bytes_in} bytes): {error}"
    )
    dead = DeadLetter(
        reason=DeadLetterReason.UNREADABLE_FILE, source=source, raw="", detail=detail, line=None
    )
    return FileBatch(source, day, 1, bytes_in, VALID_SCHEMA.empty_table(), (dead,))


def _own_agency(batch: FileBatch, line: Callable[[int], bytes], agency_id: int) -> FileBatch:
    own = pc.equal(batch.valid["agency_id"], agency_id)
    if pc.all(own).as_py():
        return batch
    others = batch.valid.filter(pc.invert(own))
    dead = [
        DeadLetter(
            reason=DeadLetterReason.AGENCY_MISMATCH,
            source=batch.source,
            raw=_text(line(number)),
            detail=f"{batch.source}:{number}: {DeadLetterReason.AGENCY_MISMATCH} {other}",
            line=number,
        )
        for number, other in zip(
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
    try:
        raw, exact = line.decode("utf-8"), None
    except UnicodeDecodeError:
        # raw shows the line with U+FFFD, which cannot be encoded back: keep its bytes too.
        raw, exact = line.decode("utf-8", errors="replace"), line
    return DeadLetter(
        reason=rejected.reason,
        source=source,
        raw=raw,
        detail=detail,
        line=line_no,
        raw_bytes=exact,
    )


def _text(line: bytes) -> str:
    # A valid row's line: orjson and the standard parser accept only UTF-8, so this is exact.
    return line.decode("utf-8", errors="replace")
