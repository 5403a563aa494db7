"""RecordSource records as bronze lines, validated by the bronze transform's own line validator."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import orjson
from etl_core.errors import DataError
from etl_core.model import DeadLetter
from etl_core.raw_records import payload, provenance, raw_text

from data_pipeline.silver.file_transform import FileResult
from data_pipeline.silver.reasons import DeadLetterReason
from data_pipeline.silver.timeparse import parse_occurred_at
from data_pipeline.silver.validate import AgencyInfo, Rejected, ValidRow, validate_line

_PARTITION_DAY = "/dt="


class UnserialisableRecord(DataError):
    """A record holding values that have no JSON form at all (not from any real source)."""


def record_line(record: Mapping[str, Any]) -> bytes:
    """The bronze line of a record (no newline). Raises UnserialisableRecord.

    A mapping becomes the line a bronze file would hold (orjson; the standard json module for
    what orjson cannot write: non-finite floats as NaN/Infinity, ints beyond 64 bits, lone
    surrogates); a raw record (etl_core.raw_records) is its exact text. Either line then goes
    through data_pipeline.silver.validate.validate_line, so every reason and every silver field is
    exactly what bronze -> silver would produce for it.
    """
    text = raw_text(record)
    if text is not None:
        try:  # surrogateescape restores the undecodable bytes a bronze source carried
            return text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a genuine lone surrogate: bytes that are not UTF-8
            return text.encode("utf-8", "surrogatepass")
    fields = dict(payload(record))
    if not _has_non_finite(fields):
        try:
            return orjson.dumps(fields)
        except orjson.JSONEncodeError:
            pass
    try:
        return json.dumps(fields, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError, RecursionError) as exc:
        raise UnserialisableRecord(f"record has no JSON form: {exc}") from None


def _has_non_finite(value: Any) -> bool:
    # orjson writes NaN and Infinity as null, which would turn a broken record into a valid one.
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(item) for item in value)
    return False


@attrs.define
class RecordValidator:
    """Validates one agency's records into FileResults the Deduper folds, batch by batch.

    A record whose source named its file and line (`__source__`) keeps that file's dt and
    source path, as bronze -> silver would; any other record is named `label` and numbered in
    arrival order (so a later record wins an updated_at tie), and its dt is the agency-local
    date of its occurred_at. A valid record of another agency is dead-lettered as
    agency_mismatch, as bronze -> silver does.
    """

    agencies: Mapping[int, AgencyInfo]
    agency_id: int
    label: str
    seen: int = 0
    _digest: Any = attrs.field(factory=hashlib.sha256, init=False, repr=False)

    @property
    def fingerprint(self) -> str:
        """sha256 of every line validated so far, in order: what the run read."""
        return str(self._digest.hexdigest())

    def validate(self, records: Iterable[Mapping[str, Any]]) -> list[FileResult]:
        """One FileResult per (source, dt) among records, in first-seen order."""
        groups: dict[tuple[str, str], _Group] = {}
        for record in records:
            self.seen += 1
            outcome: ValidRow | Rejected
            where = provenance(record)
            source, line_no = where if where is not None else (self.label, self.seen)
            try:
                line = record_line(record)
            except UnserialisableRecord:
                line = repr(dict(record)).encode("utf-8", "surrogatepass")
                day = ""
                outcome = Rejected(DeadLetterReason.INVALID_JSON, "")
            else:
                day = (_file_day(source) if where is not None else None) or _local_day(
                    record, line, self.agencies
                )
                outcome = validate_line(line, line_no, day, self.agencies)
            if isinstance(outcome, ValidRow) and outcome.agency_id != self.agency_id:
                outcome = Rejected(DeadLetterReason.AGENCY_MISMATCH, repr(outcome.agency_id))
            self._digest.update(line + b"\n")
            group = groups.setdefault((source, day), _Group(source, day))
            group.add(line, line_no, outcome)
        return [group.result() for group in groups.values()]


@attrs.define
class _Group:
    source: str
    day: str
    rows_in: int = 0
    bytes_in: int = 0
    valid: list[ValidRow] = attrs.field(factory=list)
    dead: list[DeadLetter] = attrs.field(factory=list)

    def add(self, line: bytes, line_no: int, outcome: ValidRow | Rejected) -> None:
        self.rows_in += 1
        self.bytes_in += len(line) + 1
        if isinstance(outcome, ValidRow):
            self.valid.append(outcome)
            return
        detail = f"{self.source}:{line_no}: {outcome.reason}"
        if outcome.value:
            detail += f" {outcome.value[:200]}"
        raw = line.decode("utf-8", errors="replace")
        self.dead.append(DeadLetter(outcome.reason, self.source, raw, detail=detail))

    def result(self) -> FileResult:
        return FileResult(
            self.source, self.day, self.rows_in, self.bytes_in, tuple(self.valid), tuple(self.dead)
        )


def _file_day(source: str) -> str | None:
    """The dt of a source path under agency_id=<id>/dt=<YYYY-MM-DD>/, else None."""
    _, found, rest = source.partition(_PARTITION_DAY)
    day = rest[:10]
    if not found or len(day) != 10:
        return None
    try:
        return dt.date.fromisoformat(day).isoformat()
    except ValueError:
        return None


def _local_day(record: Mapping[str, Any], line: bytes, agencies: Mapping[int, AgencyInfo]) -> str:
    """The agency-local date of occurred_at; "" when the record will fail validation anyway."""
    fields: Any = record if raw_text(record) is None else _parsed(line)
    if not isinstance(fields, Mapping):
        return ""
    agency_id = fields.get("agency_id")
    if not isinstance(agency_id, int) or isinstance(agency_id, bool):
        return ""
    agency = agencies.get(agency_id)
    if agency is None:
        return ""
    seconds = parse_occurred_at(fields.get("occurred_at"), agency.zone)
    if seconds is None:
        return ""
    return dt.datetime.fromtimestamp(seconds, agency.zone).date().isoformat()


def _parsed(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            return json.loads(line.decode("utf-8"))
        except (ValueError, RecursionError):
            return None
