"""In-memory fakes of the table ports (SilverTable, DeadLetterTable); rows in and out are pyarrow
Tables. Tests import them from etl_core.testing.fakes with the other fakes."""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Mapping
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from etl_core.errors import TableError
from etl_core.model import MergeOutcome

Row = dict[str, Any]
_ORDER = ("updated_at", "_source", "_line")  # which version of a key is newer, in this order


def _check_failure(failures: Mapping[str, BaseException], operation: str) -> None:
    if operation in failures:
        raise failures[operation]


def _agency_rows(what: str, rows: Any, agency_id: int) -> list[Row]:
    """rows as dicts, after the checks the Delta adapters make (same error types)."""
    if not isinstance(rows, pa.Table):
        raise TypeError(f"{what} rows must be a pyarrow.Table, got {type(rows).__name__}")
    if rows.num_rows and pc.any(pc.not_equal(rows["agency_id"], agency_id)).as_py():
        raise TableError(f"{what} for agency {agency_id} holds rows of another agency")
    return rows.to_pylist()  # type: ignore[no-any-return]


def _newer(row: Row, stored: Row) -> bool:
    """Whether row is a newer version than stored: greater (updated_at, _source, _line); a null
    in the deciding field is never newer (SQL comparison, as the Delta adapter's)."""
    for name in _ORDER:
        mine, theirs = row[name], stored[name]
        if mine is None or theirs is None:
            return False
        if mine != theirs:
            return bool(mine > theirs)
    return False


def _per_day(counts: collections.Counter[dt.date]) -> dict[dt.date, int]:
    return dict(sorted(counts.items()))


@attrs.define
class FakeSilverTable:
    """SilverTable in memory.

    `rows[agency_id][record_id]` is each stored row as a dict (values as pyarrow's to_pylist
    gives them); `versions[agency_id]` the agency's fold version; `schema` the first commit's
    schema: until a commit there is no table and read() is None. With `dry_run` a merge decides
    and counts but stores nothing. `fail_on["merge"] = TableConflict("lost")` makes merge raise
    until removed (likewise "version" and "read").
    """

    rows: dict[int, dict[str, Row]] = attrs.field(factory=dict)
    versions: dict[int, int] = attrs.field(factory=dict)
    schema: pa.Schema | None = None
    dry_run: bool = False
    fail_on: dict[str, BaseException] = attrs.field(factory=dict)

    async def version(self, agency_id: int) -> int:
        """The agency's last committed fold version; 0 before its first commit."""
        _check_failure(self.fail_on, "version")
        return self.versions.get(agency_id, 0)

    async def merge(
        self, agency_id: int, version: int, rows: Any, *, replace: bool = False
    ) -> MergeOutcome:
        """See SilverTable.merge. Raises TypeError for rows that are not a pyarrow.Table."""
        _check_failure(self.fail_on, "merge")
        incoming = _agency_rows("silver merge", rows, agency_id)
        if len({row["record_id"] for row in incoming}) != len(incoming):
            raise TableError(f"silver merge for agency {agency_id}: record_ids are not unique")
        stored = {} if replace else self.rows.get(agency_id, {})
        merged = dict(stored)
        inserted: collections.Counter[dt.date] = collections.Counter()
        updated: collections.Counter[dt.date] = collections.Counter()
        older: collections.Counter[dt.date] = collections.Counter()
        for row in incoming:
            key, current = row["record_id"], stored.get(row["record_id"])
            if current is None:
                inserted[row["dt"]] += 1
                merged[key] = row
            elif _newer(row, current):
                updated[row["dt"]] += 1
                merged[key] = row
            else:
                older[row["dt"]] += 1
        if not self.dry_run:
            self.schema = self.schema or rows.schema
            self.rows[agency_id] = merged
            self.versions[agency_id] = version
        return MergeOutcome(
            inserted=_per_day(inserted), updated=_per_day(updated), older=_per_day(older)
        )

    async def read(self, agency_id: int | None = None) -> Any:
        """The committed rows of one agency (or all), by agency, dt, record_id; None if no table."""
        _check_failure(self.fail_on, "read")
        if self.schema is None:
            return None
        agencies = sorted(self.rows) if agency_id is None else [agency_id]
        out = [
            row
            for agency in agencies
            for row in sorted(
                self.rows.get(agency, {}).values(), key=lambda r: (r["dt"], r["record_id"])
            )
        ]
        return pa.Table.from_pylist(out, schema=self.schema)


@attrs.define
class FakeDeadLetterTable:
    """DeadLetterTable in memory.

    `rows[agency_id][version]` holds the rows (dicts) that fold `version` of the agency wrote, so
    writing a version again replaces its earlier attempt; `versions`, `schema`, `dry_run` and
    `fail_on` ("write", "version", "read") as FakeSilverTable's. Like the Delta adapter, a write
    whose rows carry columns the schema lacks adds them (rows stored before read null there).
    """

    rows: dict[int, dict[int, list[Row]]] = attrs.field(factory=dict)
    versions: dict[int, int] = attrs.field(factory=dict)
    schema: pa.Schema | None = None
    dry_run: bool = False
    fail_on: dict[str, BaseException] = attrs.field(factory=dict)
    # history[agency_id][version]: the agency's rows as that fold left them (read_fold).
    history: dict[int, dict[int, list[Row]]] = attrs.field(factory=dict)

    async def version(self, agency_id: int) -> int:
        """The agency's last committed fold version here; 0 before its first commit."""
        _check_failure(self.fail_on, "version")
        return self.versions.get(agency_id, 0)

    async def write(self, agency_id: int, version: int, rows: Any, *, replace: bool = False) -> int:
        """See DeadLetterTable.write. Raises TypeError for rows that are not a pyarrow.Table."""
        _check_failure(self.fail_on, "write")
        incoming = _agency_rows("dead-letter write", rows, agency_id)
        if not self.dry_run:
            self.schema = _widened(self.schema, rows.schema)
            folds = {} if replace else dict(self.rows.get(agency_id, {}))
            folds[version] = incoming
            self.rows[agency_id] = folds
            self.versions[agency_id] = version
            left = [row for _, written in sorted(folds.items()) for row in written]
            self.history.setdefault(agency_id, {})[version] = left
        return len(incoming)

    async def read(self, agency_id: int | None = None) -> Any:
        """The committed rows of one agency (or all), by agency and version; None if no table."""
        _check_failure(self.fail_on, "read")
        if self.schema is None:
            return None
        agencies = sorted(self.rows) if agency_id is None else [agency_id]
        out = [
            row
            for agency in agencies
            for _, written in sorted(self.rows.get(agency, {}).items())
            for row in written
        ]
        return pa.Table.from_pylist(out, schema=self.schema)

    async def read_fold(self, agency_id: int, fold: int) -> Any:
        """See DeadLetterTable.read_fold. Raises TableError for a fold never written."""
        _check_failure(self.fail_on, "read")
        if self.schema is None:
            return None
        left = [] if fold == 0 else self.history.get(agency_id, {}).get(fold)
        if left is None:
            raise TableError(f"dead letters: agency {agency_id} has no fold {fold}")
        return pa.Table.from_pylist(left, schema=self.schema)


def _widened(schema: pa.Schema | None, incoming: pa.Schema) -> pa.Schema:
    """schema with the fields of incoming it lacks appended (incoming itself when None)."""
    if schema is None:
        return incoming
    missing = [field for field in incoming if field.name not in schema.names]
    return pa.schema([*schema, *missing]) if missing else schema


@attrs.frozen
class FakeTables:
    """SilverTables over the two fakes."""

    silver: FakeSilverTable = attrs.Factory(FakeSilverTable)
    deadletter: FakeDeadLetterTable = attrs.Factory(FakeDeadLetterTable)

    def dry_run(self) -> FakeTables:
        """Dry-run tables that decide on the same state but store nothing."""
        return FakeTables(
            attrs.evolve(self.silver, dry_run=True), attrs.evolve(self.deadletter, dry_run=True)
        )
